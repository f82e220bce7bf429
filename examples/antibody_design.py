"""A design campaign: redesign trastuzumab's CDR-H3 under constraints, sampled exactly.

Target: AntiBERTy's energy times Sapiens-H's (a product of two antibody MLMs over the
same residues), restricted to sequences with

- at most 3 mutations from trastuzumab over the CDR-H3 (``max-mutations``), and
- no sequence liability touching the CDR-H3 (``forbid:preset=liabilities``:
  N-glycosylation N[^P][ST], DG isomerisation, NG deamidation, an unpaired cysteine).

Trastuzumab's own CDR-H3 (SRWGGDGFYAMDY) holds a DG, the isomerisation site known for
this antibody, so the constraint refuses it as a start: the chains start from D102E
(SRWGGEGFYAMDY, one of the three mutations allowed) and may move anywhere in the
constrained set. The run writes the ranked designs (designs.csv, designs.fasta), a logo
of the CDR-H3 (logo.png), per-position marginals, and the usual convergence report.

    pip install torch==2.13.0 && pip install ".[antiberty]" && pip install --no-deps sapiens==1.0.5
    python examples/antibody_design.py --out runs/design

It runs this command (printed first), so the same campaign runs from the shell:

    pyro-mlm sample --model antiberty --sequence <D102E> --free cdrh3 --chains 4 \\
        --warmup 20 --samples 80 --expert 'mlm:model=sapiens-h;weight=1' \\
        --expert 'max-mutations:k=3;parent=<trastuzumab VH>' \\
        --expert forbid:preset=liabilities --top 10 --out runs/design
"""

from __future__ import annotations

import argparse
import shlex
import sys

from pyro_mlm.cli import main as pyro_mlm

TRASTUZUMAB_VH = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQ"
    "MNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
)
D102E = TRASTUZUMAB_VH.replace("SRWGGDGFYAMDY", "SRWGGEGFYAMDY")


def command(args: argparse.Namespace) -> list[str]:
    """The ``pyro-mlm sample`` arguments of the campaign."""
    return [
        "sample",
        "--model", args.model,
        "--sequence", D102E,
        "--free", "cdrh3",
        "--chains", str(args.chains),
        "--warmup", str(args.warmup),
        "--samples", str(args.samples),
        "--seed", str(args.seed),
        "--expert", f"mlm:model={args.second};weight={args.weight}",
        "--expert", f"max-mutations:k={args.mutations};parent={TRASTUZUMAB_VH}",
        "--expert", "forbid:preset=liabilities",
        "--top", "10",
        "--out", args.out,
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="antiberty", help="the sampled MLM")
    parser.add_argument("--second", default="sapiens-h", help="the second MLM (an expert)")
    parser.add_argument("--weight", type=float, default=1.0, help="the second MLM's weight")
    parser.add_argument("--mutations", type=int, default=3, help="most mutations allowed")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--samples", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/design")
    args = parser.parse_args(argv)
    argv_cli = command(args)
    print("pyro-mlm " + " ".join(shlex.quote(a) for a in argv_cli), file=sys.stderr)
    return pyro_mlm(argv_cli)


if __name__ == "__main__":
    raise SystemExit(main())
