"""The ``pyro-mlm`` command line: ``sample`` from a masked LM's energy, ``score`` sequences.

No maths here: arguments become a :class:`pyro_mlm.run.spec.RunSpec` or a scoring
call. Everything that does not need the model's weights (sequences, free positions,
lengths, the seed, the run directory, the device) is checked first, from the model's
tokenizer alone, so a typo costs a second, not a model load. Every user error
(``ValueError``, ``TypeError``, ``OSError``) becomes one ``error:`` line on stderr
with exit status 2; anything else is a bug and shows its traceback.

    pyro-mlm sample --sequence EVQLVESGG...WGQGTLVTVSS --free cdrh3 --chains 4 --out runs/h3
    pyro-mlm sample --resume runs/h3
    pyro-mlm score EVQLVESGG... QVQLQQSGA... --format json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from pyro_mlm import __version__
from pyro_mlm.cli.inputs import UsageError, read_sequences
from pyro_mlm.packaged import PACKAGED
from pyro_mlm.sites import FREE_HELP

__all__ = ["UsageError", "main", "read_sequences"]

EXPERTS_HELP = (
    "max-mutations:k=3 (at most k mutations from the start over the free positions); "
    "'forbid:pattern=N[^P][ST]' or forbid:preset=liabilities (motifs that may not occur); "
    "allowed:98-101:DEKR (per-position alphabets, also restricting the proposal); "
    "'composition:property=charge;target=0;weight=1' (or hydrophobicity); "
    "'mlm:model=sapiens-h;weight=1' (a second MLM's energy); "
    "'classifier:model=DIR;label=1;weight=1' (a sequence classifier's -log p)"
)
ENERGY_HELP = (
    "norm: E(X) = -sum_t log p(x_t | X without t), the negative pseudo-log-likelihood "
    "(default); raw: E(X) = -sum_t s_t(X)[x_t], the MLM's raw logit (Goyal et al. 2022)"
)
THREADS_HELP = (
    "torch threads (default: the cores this process may use, or 1 when the load average "
    "already exceeds them; give 1 per process when several share the cores: 2 threads "
    "each on 2 shared cores ran 3-10x slower)"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyro-mlm``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = _finish_args(parser.parse_args(argv))
    try:
        _set_threads(args.threads)
        if args.command == "sample":
            from pyro_mlm.cli.sample import sample

            return sample(args)
        if args.command == "optimize":
            from pyro_mlm.cli.optimize import optimize

            return optimize(args)
        from pyro_mlm.cli.score import score

        return score(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2


THREAD_NOTE: list[str] = []  # said once the model loads (not before an input error)


def say_thread_note() -> None:
    """Print the note on threads that :func:`_set_threads` left, once, on stderr."""
    while THREAD_NOTE:
        print(THREAD_NOTE.pop(), file=sys.stderr)


def _set_threads(threads: int | None) -> None:
    """torch's intra-op threads: ``--threads``, else ``OMP_NUM_THREADS`` if set, else the
    cores this process may use, or one thread (said once a model loads) when the
    machine's load already exceeds those cores.

    Several processes each running as many threads as there are cores ran 3-10x slower
    here than one thread each. Without torch imported yet (so a bad input is reported
    first), the count goes to ``OMP_NUM_THREADS``, which torch reads when it loads.
    """
    import os

    THREAD_NOTE.clear()
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    preset = os.environ.get("OMP_NUM_THREADS", "")
    if threads is None and preset.isdigit() and int(preset) > 0:
        threads = int(preset)  # the environment's explicit choice, as torch would read it
    if threads is None:
        affinity = getattr(os, "sched_getaffinity", None)
        cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        threads = cores
        if cores > 1 and load > cores:
            threads = 1
            THREAD_NOTE[:] = [
                f"note: the load average ({load:.1f}) exceeds this machine's {cores} cores, "
                "so torch runs 1 thread (several processes with a thread per core each ran "
                "3-10x slower here); --threads N overrides"
            ]
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _parser() -> argparse.ArgumentParser:
    """The argument parser, built without importing torch (so ``--help`` is instant)."""
    models = ", ".join(sorted(PACKAGED))
    parser = argparse.ArgumentParser(
        prog="pyro-mlm",
        description="Sample sequences from a masked language model's energy with exact "
        "Metropolis-Hastings (Goyal et al., ICLR 2022), and score sequences.",
    )
    parser.add_argument("--version", action="version", version=f"pyro-mlm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    model_help = (
        f"packaged model ({models}), a local directory, or a Hugging Face hub id "
        "(default: antiberty)"
    )

    s = sub.add_parser("sample", help="draw sequences with MH (or masked Gibbs)")
    s.add_argument("--model", default=None, help=model_help)
    s.add_argument("--sequence", action="append", help="starting sequence (repeat: one per chain)")
    s.add_argument("--sequences-file", help="starting sequences, FASTA or one per line")
    s.add_argument("--length", type=int, help="start from N mask tokens, all free")
    s.add_argument("--free", help=f"positions to sample: {FREE_HELP}")
    s.add_argument("--energy", choices=["norm", "raw"], help=ENERGY_HELP)
    s.add_argument(
        "--energy-over",
        choices=["free", "all"],
        help="sum the MLM energy over the free positions (default; the paper's) or over "
        "every position, the whole sequence's pseudo-log-likelihood (more rows per proposal)",
    )
    s.add_argument(
        "--numbering",
        choices=["imgt", "kabat"],
        help="scheme of numbered regions in --free, through ANARCI (default imgt)",
    )
    s.add_argument(
        "--expert",
        action="append",
        metavar="NAME[:key=value;...]",
        help=f"an expert multiplied into the target (repeatable): {EXPERTS_HELP}",
    )
    s.add_argument("--top", type=int, default=10, help="ranked designs to print (default 10)")
    r = s.add_argument_group("scale-out (a run's chains split into shards)")
    r.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="local: in this process (default); ray: one Ray actor per shard (pip install "
        "'pyro-mlm[ray]')",
    )
    r.add_argument(
        "--workers",
        type=int,
        help="shards (default 1; with --backend local they run in turn, giving the same draws "
        "as on Ray)",
    )
    r.add_argument(
        "--campaign",
        action="store_true",
        help="each starting sequence is its own run of --chains chains (DIR/runs/K), spread "
        "over the workers; campaign.csv summarises them",
    )
    r.add_argument("--address", help="Ray cluster to join (default: start a local instance)")
    r.add_argument("--gpus-per-worker", type=float, help="GPUs per Ray actor (default 0)")
    r.add_argument("--threads-per-worker", type=int, help="torch threads per actor (default 1)")
    _sampler_arguments(s)
    s.add_argument("--chains", type=int, help="vectorised chains (default 4)")
    s.add_argument("--warmup", type=int, help="warm-up sweeps, not kept (default 20)")
    s.add_argument("--samples", type=int, help="kept sweeps per chain (default 100)")
    s.add_argument("--temperature", type=float, help="T of exp(-E/T) (default 1)")
    s.add_argument("--proposal-temperature", type=float, help="proposal temperature (default 1)")
    s.add_argument(
        "--scan", choices=["random", "systematic"], help="position order (default random)"
    )
    s.add_argument("--seed", type=int, help="random seed, 0 to 2**32-1 (default 0)")
    s.add_argument("--out", default=None, help="output directory (default runs/sample)")
    s.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    s.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    s.add_argument("--threads", type=int, help=THREADS_HELP)
    s.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress (default: a bar on a terminal, a line every 30 s in a log)",
    )

    o = sub.add_parser(
        "optimize", help="lowest-energy sequences by simulated annealing (not a sampler)"
    )
    o.add_argument("--model", default="antiberty", help=model_help)
    o.add_argument("--sequence", action="append", help="starting sequence (repeat: one per chain)")
    o.add_argument("--sequences-file", help="starting sequences, FASTA or one per line")
    o.add_argument("--free", help=f"positions to optimise: {FREE_HELP}")
    o.add_argument("--energy", choices=["norm", "raw"], default="norm", help=ENERGY_HELP)
    o.add_argument(
        "--expert",
        action="append",
        metavar="NAME[:key=value;...]",
        help=f"an expert added to the energy annealed (repeatable), as in sample: {EXPERTS_HELP}",
    )
    _sampler_arguments(o, annealable=True)
    o.add_argument(
        "--chains",
        type=int,
        help="chains annealed side by side (default 4, or one per starting sequence)",
    )
    o.add_argument("--sweeps", type=int, default=200, help="sweeps of the schedule (default 200)")
    o.add_argument("--t-start", type=float, default=2.0, help="first temperature (default 2)")
    o.add_argument("--t-end", type=float, default=0.05, help="last temperature (default 0.05)")
    o.add_argument("--top", type=int, default=10, help="distinct sequences to print (default 10)")
    o.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    o.add_argument("--out", help="CSV file for the ranked sequences")
    o.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    o.add_argument("--threads", type=int, help=THREADS_HELP)
    o.add_argument("--no-progress", action="store_true", help="no progress on stderr")

    c = sub.add_parser("score", help="energies of sequences (norm = negative PLL, raw)")
    c.add_argument("sequences", nargs="*", help="sequences to score")
    c.add_argument("--file", help="FASTA or one sequence per line ('-' for stdin)")
    c.add_argument("--model", default="antiberty", help=model_help)
    c.add_argument(
        "--energy",
        choices=["norm", "raw", "both"],
        default="both",
        help=ENERGY_HELP.replace("(default)", "") + "; both: the two from one set of masked "
        "passes (default)",
    )
    c.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="table: aligned columns for reading (default); json: a list with one object per "
        "sequence (its text, positions and energies)",
    )
    c.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    c.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    c.add_argument("--threads", type=int, help=THREADS_HELP)
    c.add_argument(
        "--out",
        help="write rows to this CSV as they are scored; a re-run skips the rows already there",
    )
    c.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="ray: Ray Data over a pool of model actors (needs --out)",
    )
    c.add_argument("--workers", type=int, help="model actors (Ray; default 1)")
    c.add_argument("--threads-per-worker", type=int, help="torch threads per actor (default 1)")
    c.add_argument("--address", help="Ray cluster to join (default: a local instance)")
    return parser


def _sampler_arguments(parser: argparse.ArgumentParser, annealable: bool = False) -> None:
    """``--kernel`` with the registry's names, and every registered sampler's options."""
    from pyro_mlm.samplers.options import ANNEALABLE, SAMPLER_OPTIONS  # no torch

    names = list(ANNEALABLE) if annealable else sorted(SAMPLER_OPTIONS)
    parser.add_argument(
        "--kernel",
        choices=names,
        help="sampler moved along the schedule (default block)"
        if annealable
        else "sampler (default mh; gibbs is the inexact masked-Gibbs baseline)",
    )
    owners: dict[str, list[str]] = {}
    options: dict[str, Any] = {}
    for name in names:
        for key, option in SAMPLER_OPTIONS[name].items():
            owners.setdefault(key, []).append(name)
            options.setdefault(key, option)
    group = parser.add_argument_group("sampler options")
    for key, option in options.items():
        group.add_argument(
            "--" + key.replace("_", "-"),
            dest="opt_" + key,
            metavar=option.metavar,
            help=f"{option.help} (--kernel {'/'.join(owners[key])}; default {option.default})",
        )


def _finish_args(args: argparse.Namespace) -> argparse.Namespace:
    if args.command == "sample":
        args.out_given = args.out is not None
        if args.out is None:
            args.out = "runs/sample"
    return args
