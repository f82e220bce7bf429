"""Benchmark: the cost of ``--energy-over all`` against ``free`` (trastuzumab CDR-H3).

``free`` sums the MLM's terms over the 13 CDR-H3 residues (one masked row each per
evaluated proposal); ``all`` over every residue of the heavy chain (one row per residue,
about 120). Both run single-site MH, 4 chains, from the same start and seed, with the
sweeps interleaved; the table gives masked rows and seconds per sweep and their ratio.

    python bench/energy_over.py --sweeps 3 --json bench/results/energy-over.json
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _report import machine, write_json

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.design.sites import parse_free
from pyro_mlm.models.load import load_model
from pyro_mlm.samplers import build_sampler

VH = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQ"
    "MNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
)  # trastuzumab VH


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sapiens-h", "antiberty"])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--sweeps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default="bench/results/energy-over.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for model in args.models:
        mlm = load_model(model)
        ids = mlm.encode(VH)
        free = parse_free("cdrh3", ids, mlm).expand(args.chains, -1)
        start = ids.expand(args.chains, -1).clone()
        runs = {}
        for over in ("free", "all"):
            sampler = build_sampler("mh", Target(MLMEnergy(mlm), over=over), free)
            runs[over] = [sampler, sampler.init(start), torch.Generator().manual_seed(args.seed)]
            runs[over].append(0.0)
        for _ in range(args.sweeps):  # interleaved, so load on the machine hits both alike
            for run in runs.values():
                tick = time.perf_counter()
                run[1], _info = run[0].step(run[1], run[2])
                run[3] += time.perf_counter() - tick
        for over, (_sampler, state, _gen, seconds) in runs.items():
            rows.append(
                {
                    "model": model,
                    "over": over,
                    "free_positions": int(free[0].sum()),
                    "rows_per_sweep": float(state.rows.double().mean()) / args.sweeps,
                    "seconds_per_sweep": seconds / args.sweeps,
                }
            )
    print(f"{'model':<11}{'over':<6}{'rows/sweep/chain':>18}{'s/sweep':>10}{'x rows':>8}{'x s':>7}")
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["over"] == "free")
        row["rows_ratio"] = row["rows_per_sweep"] / base["rows_per_sweep"]
        row["seconds_ratio"] = row["seconds_per_sweep"] / base["seconds_per_sweep"]
        print(
            f"{row['model']:<11}{row['over']:<6}{row['rows_per_sweep']:>18.0f}"
            f"{row['seconds_per_sweep']:>10.2f}{row['rows_ratio']:>8.1f}{row['seconds_ratio']:>7.1f}"
        )
    result = {
        "command": "python bench/energy_over.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "chains": args.chains,
        "sweeps": args.sweeps,
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
