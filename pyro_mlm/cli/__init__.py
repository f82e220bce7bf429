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
    pyro-mlm scan --sequence EVQLVESGG...WGQGTLVTVSS --free cdrh3 --out runs/h3-scan
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pyro_mlm.cli.inputs import UsageError, read_sequences
from pyro_mlm.cli.parser import build_parser, unknown_flags
from pyro_mlm.cli.threads import set_threads

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
        set_threads(args.threads)
        if args.command == "sample":
            from pyro_mlm.cli.sample import sample

            return sample(args)
        if args.command == "optimize":
            from pyro_mlm.cli.optimize import optimize

            return optimize(args)
        if args.command == "scan":
            from pyro_mlm.cli.scan import scan

            return scan(args)
        from pyro_mlm.cli.score import score

        return score(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _finish_args(args: argparse.Namespace) -> argparse.Namespace:
    if args.command == "sample":
        args.out_given = args.out is not None
        if args.out is None:
            args.out = "runs/sample"
    return args
