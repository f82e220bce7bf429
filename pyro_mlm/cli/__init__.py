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

from pyro_mlm.cli.inputs import UsageError, read_sequences
from pyro_mlm.cli.parser import build_parser, unknown_flags

__all__ = ["UsageError", "main", "read_sequences"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyro-mlm``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parsed, extra = parser.parse_known_args(argv)
    if extra:  # a mistyped flag: the closest valid one suggested
        parser.error(unknown_flags(parser, parsed.command, extra))
    args = _finish_args(parsed)
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
    if threads is None and preset.isdecimal() and int(preset) > 0:
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


def _finish_args(args: argparse.Namespace) -> argparse.Namespace:
    if args.command == "sample":
        args.out_given = args.out is not None
        if args.out is None:
            args.out = "runs/sample"
    return args
