"""Benchmark: MH time per sweep on AntiBERTy as the length and the number of chains grow.

Every position is free, so a sweep is L proposals; a proposal that changes a token
evaluates one masked row per free position of each moving chain (L rows of L tokens),
and a self-proposal costs nothing. So the cost of a sweep depends on how often the
model proposes a new token, and the script times whole sweeps (``--sweeps``, after
two warm-up proposals from the real sequence, random scan, seed 0). It fits the
exponent ``b`` of ``time ~ a L^b`` (chains fixed) and ``time ~ a C^b``
(length fixed), prints a table, writes JSON and saves ``bench/scaling.png``.

    python bench/scaling.py --json bench/results/scaling.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _report import machine, write_json

from pyro_mlm import MaskedLM, MLMEnergy, Target
from pyro_mlm.samplers import build_sampler

VH = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQ"
    "MNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
)  # trastuzumab VH, 120 residues; length L uses its first L


def seconds_per_sweep(mlm: MaskedLM, length: int, chains: int, sweeps: int) -> float:
    """Mean wall time of a full sweep (L proposals in every chain)."""
    ids = mlm.encode(VH[:length])
    generator = torch.Generator().manual_seed(0)
    free = ~mlm.special_mask(ids).expand(chains, -1)
    target = Target(MLMEnergy(mlm))
    warm = build_sampler("mh", target, free, proposals_per_sweep=2)
    state = warm.init(ids.repeat(chains, 1))
    state, _ = warm.step(state, generator)  # warm-up: two proposals
    sampler = build_sampler("mh", target, free)  # one step is one sweep
    start = time.perf_counter()
    for _ in range(sweeps):
        state, _ = sampler.step(state, generator)
    return (time.perf_counter() - start) / sweeps


def exponent(x: list[int], y: list[float]) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[20, 40, 80, 120])
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--length-for-chains", type=int, default=40)
    parser.add_argument("--sweeps", type=int, default=1)
    parser.add_argument("--json", default="bench/results/scaling.json")
    parser.add_argument("--plot", default="bench/scaling.png")
    args = parser.parse_args(argv)
    mlm = MaskedLM.antiberty()
    by_length = [seconds_per_sweep(mlm, n, 1, args.sweeps) for n in args.lengths]
    by_chains = [
        seconds_per_sweep(mlm, args.length_for_chains, c, args.sweeps) for c in args.chains
    ]
    b_length, b_chains = exponent(args.lengths, by_length), exponent(args.chains, by_chains)
    print(f"AntiBERTy MH, all positions free, cpu, {torch.get_num_threads()} threads")
    print(f"{'L':>5} {'chains':>6} {'s/sweep':>9}")
    for n, t in zip(args.lengths, by_length, strict=True):
        print(f"{n:5d} {1:6d} {t:9.2f}")
    for c, t in zip(args.chains, by_chains, strict=True):
        print(f"{args.length_for_chains:5d} {c:6d} {t:9.2f}")
    print(f"time per sweep ~ L^{b_length:.2f} (1 chain); ~ C^{b_chains:.2f} (L = "
          f"{args.length_for_chains})")  # fmt: skip
    result = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "sweeps_timed": args.sweeps,
        "by_length": dict(zip(map(str, args.lengths), by_length, strict=True)),
        "by_chains": dict(zip(map(str, args.chains), by_chains, strict=True)),
        "length_for_chains": args.length_for_chains,
        "exponent_length": b_length,
        "exponent_chains": b_chains,
    }
    write_json(args.json, result)
    plot(args, by_length, by_chains, b_length, b_chains)
    print(f"wrote {args.plot}")
    return 0


def plot(args, by_length, by_chains, b_length, b_chains) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_l, ax_c) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    ax_l.loglog(args.lengths, by_length, "o-")
    ax_l.set_xlabel("length L (all free)")
    ax_l.set_ylabel("seconds per sweep")
    ax_l.set_title(f"1 chain: ~ L^{b_length:.2f}")
    ax_c.loglog(args.chains, by_chains, "o-")
    ax_c.set_xlabel("vectorised chains C")
    ax_c.set_title(f"L = {args.length_for_chains}: ~ C^{b_chains:.2f}")
    fig.savefig(args.plot, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
