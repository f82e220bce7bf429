"""The ``pyro-mlm`` argument parser, built without importing torch (so ``--help`` is instant).

Every choice comes from its owner: the sampler names, their options and capabilities from
:mod:`pyro_mlm.samplers.options`, the packaged models from :mod:`pyro_mlm.models.packaged`,
energies, scans, ``--energy-over`` and backends from :mod:`pyro_mlm.run.spec`, numbering
schemes from :mod:`pyro_mlm.design.numbering`, the ``--free`` grammar from
:mod:`pyro_mlm.design.sites`.
"""

from __future__ import annotations

import argparse
from typing import Any

from pyro_mlm import __version__
from pyro_mlm.cli.parser_score import ENERGY_HELP, THREADS_HELP, add_scan_parser, add_score_parser
from pyro_mlm.design.numbering import SCHEMES
from pyro_mlm.design.sites import FREE_HELP
from pyro_mlm.experts.declared import EXPERTS_HELP
from pyro_mlm.models.packaged import PACKAGED
from pyro_mlm.run.spec import BACKENDS, ENERGIES, ENERGY_OVER, SCANS
from pyro_mlm.samplers.options import LENGTH_SAMPLERS


def unknown_flags(parser: argparse.ArgumentParser, command: str, extra: list[str]) -> str:
    """``unrecognized arguments`` with the closest valid flag of ``command`` for each."""
    import difflib

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        command
    ]
    flags = [o for action in sub._actions for o in action.option_strings]
    hints = []
    for word in extra:
        close = difflib.get_close_matches(word.split("=")[0], flags, n=1, cutoff=0.6)
        if word.startswith("-") and close:
            hints.append(f"{word}: did you mean {close[0]}?")
    return f"unrecognized arguments: {' '.join(extra)}" + (
        f" ({'; '.join(hints)})" if hints else ""
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, built without importing torch (so ``--help`` is instant)."""
    models = ", ".join(sorted(PACKAGED))
    parser = argparse.ArgumentParser(
        allow_abbrev=False,  # --chain is a typo of --chains, never an abbreviation of it
        prog="pyro-mlm",
        description="Sample sequences from a masked language model's energy with exact "
        "Metropolis-Hastings (Goyal et al., ICLR 2022), and score sequences.",
    )
    parser.add_argument("--version", action="version", version=f"pyro-mlm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    model_help = (
        f"packaged model ({models}; sapiens: Sapiens' heavy or light model, picked from the "
        "start's chain), a local directory, or a Hugging Face hub id (default: sapiens)"
    )

    s = sub.add_parser(
        "sample", help="draw sequences with MH (or masked Gibbs)", allow_abbrev=False
    )
    s.add_argument("--model", default=None, help=model_help)
    s.add_argument("--sequence", action="append", help="starting sequence (repeat: one per chain)")
    s.add_argument("--sequences-file", help="starting sequences, FASTA or one per line")
    s.add_argument("--length", type=int, help="start from N mask tokens, all free")
    s.add_argument(
        "--from-scan",
        metavar="DIR",
        help="start from a mutant of a finished pyro-mlm scan (its model, --free and energy "
        "unless given)",
    )
    s.add_argument(
        "--mutant-rank", type=int, default=1, help="with --from-scan: the mutant's rank (default 1)"
    )
    s.add_argument("--free", help=f"positions to sample: {FREE_HELP}")
    s.add_argument("--energy", choices=ENERGIES, help=ENERGY_HELP)
    s.add_argument(
        "--energy-over",
        choices=ENERGY_OVER,
        help="sum the MLM energy over the free positions (default; the paper's) or over "
        "every position, the whole sequence's pseudo-log-likelihood (more rows per proposal)",
    )
    s.add_argument(
        "--numbering",
        choices=SCHEMES,
        help="scheme of numbered regions in --free, through ANARCI (default imgt)",
    )
    s.add_argument(
        "--expert",
        action="append",
        metavar="NAME[:key=value;...]",
        help=f"an expert multiplied into the target (repeatable): {EXPERTS_HELP}",
    )
    s.add_argument("--top", type=int, default=10, help="ranked designs to print (default 10)")
    v = s.add_argument_group("variable-length region (exact insert and delete moves)")
    v.add_argument(
        "--lengths",
        metavar="MIN-MAX",
        help="sample the free region's length too, from MIN to MAX (one contiguous region; "
        f"samplers {', '.join(LENGTH_SAMPLERS)})",
    )
    v.add_argument(
        "--length-prior",
        metavar="PRIOR",
        help="lambda(n): uniform (default), penalty:VALUE (log lambda = -VALUE n) or a file of "
        "'LENGTH WEIGHT' lines",
    )
    v.add_argument(
        "--length-moves",
        type=int,
        metavar="N",
        help="insert-or-delete proposals per sweep (default ceil(MAX / 4))",
    )
    r = s.add_argument_group("scale-out (a run's chains split into shards)")
    r.add_argument(
        "--backend",
        choices=BACKENDS,
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
    s.add_argument(
        "--samples",
        type=int,
        help="kept sweeps per chain (default 100; with --until-converged the most, default none)",
    )
    s.add_argument(
        "--until-converged",
        action="store_true",
        default=None,
        help="sample until R-hat <= 1.01 and bulk ESS >= 400 for the energy and the Hamming "
        "distance (checked as it goes; the first quarter of the sweeps is warm-up), or until "
        "--max-minutes; --resume continues under the same rule",
    )
    s.add_argument(
        "--max-minutes",
        type=float,
        metavar="M",
        help="stop sampling after M minutes of this session (resumable; default: no budget)",
    )
    s.add_argument("--temperature", type=float, help="T of exp(-E/T) (default 1)")
    s.add_argument("--proposal-temperature", type=float, help="proposal temperature (default 1)")
    s.add_argument("--scan", choices=SCANS, help="position order (default random)")
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
        "optimize",
        help="lowest-energy sequences by simulated annealing (not a sampler)",
        allow_abbrev=False,
    )
    o.add_argument("--model", default="sapiens", help=model_help)
    o.add_argument("--sequence", action="append", help="starting sequence (repeat: one per chain)")
    o.add_argument("--sequences-file", help="starting sequences, FASTA or one per line")
    o.add_argument("--free", help=f"positions to optimise: {FREE_HELP}")
    o.add_argument("--energy", choices=ENERGIES, default="norm", help=ENERGY_HELP)
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

    add_score_parser(sub, models)
    add_scan_parser(sub, model_help)
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
