"""Benchmark: masked positions scored per second for the ``norm`` energy on AntiBERTy.

Compares, in one run on the same heavy chains (L ~ 120-130 tokens):

- ``pyro_mlm``: ``MLMEnergy(mlm).evaluate`` on the whole batch of sequences (rows
  chunked by the row budget, LM head only at each row's masked position);
- ``pll-reference``: the way PLL scorers such as mlm-scoring and minicons do it: one
  sequence at a time, its L masked copies as one batch, the LM head over every
  position, then the masked position's log-softmax picked out.

It also reports the achieved fp32 FLOP rate as a fraction of a matrix-multiply peak
measured in the same run. FLOPs are counted from the model's shapes, per masked row
of length L: each encoder layer costs ``2 L (4 H^2 + 2 H I)`` for its linear maps plus
``4 L^2 H`` for the attention products; the LM head costs ``2 (H^2 + H V)`` per
position it is applied at (1 for pyro_mlm, L for the reference). Embeddings,
softmax, LayerNorm and GELU are not counted (they are not matmuls).

    python bench/energy.py --repeats 3 --json bench/results/energy.json

For the GPU (issue 27), ``--copies K`` scores K copies of the five chains in one call
(larger row batches), ``--model sapiens-h`` the smaller model, ``--row-budget`` overrides the
tokens per forward, ``--compile`` wraps the model in ``torch.compile`` and ``--profile
PATH`` writes where one evaluation's time goes (torch.profiler: the top operators by self
time on the device, the kernel launches, and the device's busy fraction of the wall time);
``bench/gpu.sh`` runs the whole plan in one go.
"""

from __future__ import annotations

import argparse
import time

import torch
from _report import machine, write_json

from pyro_mlm import MaskedLM, MLMEnergy
from pyro_mlm.energy import default_row_budget

HEAVY_CHAINS = {  # real VH domains: four therapeutics and a germline
    "trastuzumab": (
        "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAY"
        "LQMNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
    ),
    "adalimumab": (
        "EVQLVESGGGLVQPGRSLRLSCAASGFTFDDYAMHWVRQAPGKGLEWVSAITWNSGHIDYADSVEGRFTISRDNAKNSLY"
        "LQMNSLRAEDTAVYYCAKVSYLSTASSLDYWGQGTLVTVSS"
    ),
    "pembrolizumab": (
        "QVQLVQSGVEVKKPGASVKVSCKASGYTFTNYYMYWVRQAPGQGLEWMGGINPSNGGTNFNEKFKNRVTLTTDSSTTTAY"
        "MELKSLQFDDTAVYYCARRDYRFDMGFDYWGQGTTVTVSS"
    ),
    "nivolumab": (
        "QVQLVESGGGVVQPGRSLRLDCKASGITFSNSGMHWVRQAPGKGLEWVAVIWYDGSKRYYADSVKGRFTISRDNSKNTLF"
        "LQMNSLRAEDTAVYYCATNDDYWGQGTLVTVSS"
    ),
    "IGHV3-23": (
        "EVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMSWVRQAPGKGLEWVSAISGSGGSTYYADSVKGRFTISRDNSKNTLY"
        "LQMNSLRAEDTAVYYCAKDRGYSSGWYFDYWGQGTLVTVSS"
    ),
}


def matmul_peak(dtype: torch.dtype, device: str, size: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of a square ``size`` matmul, best of repeated timings."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    best = float("inf")
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def row_flops(config: object, length: int, head_positions: int) -> float:
    """Matmul FLOPs of one masked row (formula in the module docstring)."""
    h = config.hidden_size  # type: ignore[attr-defined]
    inter = config.intermediate_size  # type: ignore[attr-defined]
    layers = config.num_hidden_layers  # type: ignore[attr-defined]
    vocab = config.vocab_size  # type: ignore[attr-defined]
    encoder = layers * (2 * length * (4 * h * h + 2 * h * inter) + 4 * length * length * h)
    return encoder + head_positions * 2 * (h * h + h * vocab)


def pll_reference(mlm: MaskedLM, ids: torch.Tensor) -> torch.Tensor:
    """Negative PLL the mlm-scoring / minicons way: L masked copies, head everywhere."""
    length = len(ids)
    positions = torch.arange(1, length - 1)  # content tokens
    rows = ids.repeat(len(positions), 1)
    rows[torch.arange(len(positions)), positions] = mlm.mask_token_id
    with torch.inference_mode():
        logits = mlm.model(input_ids=rows.to(mlm.device)).logits  # [L-2, L, V]
        logp = torch.log_softmax(logits[torch.arange(len(positions)), positions].float(), -1)
    return -logp[torch.arange(len(positions)), ids[positions].to(mlm.device)].sum()


def profile_one(fn, device: str, path: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Where one evaluation's time goes: the top operators by self time (on the device
    where there is one), the kernel launches, and the device's busy share of the wall
    time (kernel time / wall time: well below 1 means launch-bound or waiting on the host).
    Writes the table to ``path`` (JSON) and returns its summary."""
    import json

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    fn()  # warm-up (and compilation)
    _sync(device)
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    wall = time.perf_counter() - t0
    on_device = device.startswith("cuda")
    key = "self_device_time_total" if on_device else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)
    top = [
        {"name": e.key, "count": e.count, "self_us": float(getattr(e, key, 0))} for e in events[:20]
    ]
    launches = sum(e.count for e in events if "LaunchKernel" in e.key)
    busy_us = sum(float(getattr(e, key, 0)) for e in events) if on_device else float("nan")
    summary = {
        "wall_s": wall,
        "kernel_launches": launches,
        "device_busy_fraction": busy_us / 1e6 / wall if on_device else None,
        "top": top,
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    print(f"profile: {wall:.3f} s wall, {launches} kernel launches -> {path}")
    for row in top[:8]:
        print(f"  {row['self_us'] / 1e3:9.2f} ms  x{row['count']:<5} {row['name'][:70]}")
    return {k: v for k, v in summary.items() if k != "top"}


def timed(fn, repeats: int, device: str) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    out = fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--json", default="bench/results/energy.json")
    parser.add_argument("--model", choices=["antiberty", "sapiens-h"], default="antiberty")
    parser.add_argument("--copies", type=int, default=1, help="copies of the 5 chains per call")
    parser.add_argument("--row-budget", type=int, help="tokens per forward (default: the energy's)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--profile", help="write one evaluation's profile (JSON) here")
    parser.add_argument("--no-reference", action="store_true", help="skip the PLL reference")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    if args.model == "antiberty":
        mlm = MaskedLM.antiberty(device=args.device, dtype=dtype)
    else:
        mlm = MaskedLM.sapiens("H", device=args.device, dtype=dtype)
    if args.compile:
        mlm.model = torch.compile(mlm.model, dynamic=False)
    config = mlm.model.config
    seqs = [mlm.encode(s) for s in HEAVY_CHAINS.values()] * args.copies
    width = max(len(s) for s in seqs)
    batch = torch.full((len(seqs), width), mlm.pad_token_id or 0, dtype=torch.long)
    for i, s in enumerate(seqs):
        batch[i, : len(s)] = s
    batch = batch.to(args.device)
    free = ~mlm.special_mask(batch)
    positions = int(free.sum())
    budget = args.row_budget // width if args.row_budget else None
    energy = MLMEnergy(mlm, "norm", row_budget=budget)
    rows_per_call = budget or default_row_budget(width, batch.device)

    def ours_fn() -> torch.Tensor:
        return energy.evaluate(batch, free, keep_conditionals=False).energy

    ours_s, ours = timed(ours_fn, args.repeats, args.device)
    if args.no_reference:
        ref_s, ref = float("nan"), ours
    else:
        ref_s, ref = timed(
            lambda: torch.stack([pll_reference(mlm, s) for s in seqs]), args.repeats, args.device
        )
    agree = float((ours.cpu() - ref.cpu()).abs().max())  # type: ignore[union-attr]
    profile = profile_one(ours_fn, args.device, args.profile) if args.profile else None
    # pyro_mlm runs padded rows of the batch width; the reference runs each sequence's own length
    ours_flops = positions * row_flops(config, width, 1)
    ref_flops = sum((len(s) - 2) * row_flops(config, len(s), len(s)) for s in seqs)
    peak = matmul_peak(dtype, args.device, size=8192 if args.device.startswith("cuda") else 2048)
    rows = [
        ("pyro_mlm", positions / ours_s, ours_flops / ours_s),
        ("pll-reference", positions / ref_s, ref_flops / ref_s),
    ]
    print(
        f"{args.model} norm energy, {len(seqs)} heavy chains (L={min(map(len, seqs))}-{width}), "
        f"{positions} masked positions, {args.dtype} on {args.device}, "
        f"{torch.get_num_threads()} threads; matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    print(f"{'method':15} {'positions/s':>12} {'GFLOP/s':>9} {'of peak':>8} {'speed-up':>9}")
    for name, rate, flops in rows:
        print(
            f"{name:15} {rate:12.1f} {flops / 1e9:9.1f} {flops / peak:8.1%} "
            f"{rate / rows[1][1]:9.2f}x"
        )
    print(f"max |E_pyro_mlm - E_reference| = {agree:.2e}")
    result = {
        "machine": machine(),
        "device": args.device,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "matmul_peak_flops": peak,
        "positions": positions,
        "methods": {
            n: {"positions_per_s": r, "flops_per_s": f, "fraction_of_peak": f / peak}
            for n, r, f in rows
        },
        "speedup_vs_reference": rows[0][1] / rows[1][1],
        "max_energy_difference": agree,
        "model": args.model,
        "copies": args.copies,
        "rows_per_call": rows_per_call,
        "attention": getattr(config, "_attn_implementation", None),
        "compiled": args.compile,
        "profile": profile,
    }
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
