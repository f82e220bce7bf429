"""Benchmark: mixing per unit of compute, every registered sampler at an equal row budget.

Task: re-sample the 13-residue CDR-H3 of trastuzumab's VH (framework fixed, ``norm``
energy) with a packaged model. Eight chains per sampler: four from the native CDR-H3,
four from random CDR-H3s (the same for every sampler). The samplers run interleaved in
one process, one sweep each in turn, until each has spent the same masked-row budget
per chain; the first quarter of each sampler's sweeps is warm-up and dropped.

Columns: sweeps, rows and seconds spent; acceptance and novel rates (swap rates for
replica exchange); mean energy +- MCSE; bulk ESS and R-hat of the energy and of the
Hamming distance to a fixed random CDR-H3 (as DISCS measures it); ESS of the energy per
1000 rows and per minute, with a 90% chain-bootstrap interval on ESS per 1000 rows (the
8 chains resampled with replacement, 200 times). Exact samplers must agree on the mean
energy within Monte Carlo error: the script reports each one's z-score against
single-site MH (masked Gibbs is inexact and only shown).

Mode crossing: ``--starts modes`` starts the chains round-robin in distinct low-energy
CDR-H3s (``MODES``); every sweep's draw is assigned to the nearest mode within Hamming
distance ``RADIUS`` (or to none), and a crossing is a chain's arrival in a mode other
than the last one it was in. Columns ``cross/1k`` (crossings per 1000 rows per chain) and
``crossed`` (chains that reached a second mode); ``H/1k`` is the Hamming ESS per 1000 rows.

    python bench/mixing.py --model sapiens-h --rows 60000 --json bench/results/mixing-sapiens-h.json

On a GPU, ``--device cuda --dtype bfloat16 --jobs 7`` runs each sampler in its own process
(one thread each, the GPU shared) and ``--minutes M`` stops each at a wall-time limit;
then the row counts differ and ESS per 1000 rows is the column to compare.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import arviz as az
import numpy as np
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

# (label, registered sampler, options): every registered sampler, block at two settings
SETTINGS: list[tuple[str, str, dict[str, Any]]] = [
    ("mh", "mh", {}),
    ("block k=2", "block", {"block_size": 2}),
    ("block k={1,2}", "block", {"block_size": (1, 2)}),
    ("metropolised", "metropolised", {}),
    ("replica-exchange R=4", "replica-exchange", {"replicas": 4, "t_max": 3.0}),
    ("tuned", "tuned", {}),
    ("regenerate p=0.25", "regenerate", {}),
    ("regenerate p=0.5", "regenerate", {"regen_prob": 0.5}),
    ("regenerate window 4", "regenerate", {"regen_block": "window", "regen_size": 4}),
    ("gibbs (inexact)", "gibbs", {}),
    # after the others, so that their seeds (--seed + index) stay those of earlier tables
    ("reference-tempering R=3", "reference-tempering", {"replicas": 3}),
    ("reference-tempering R=4", "reference-tempering", {"replicas": 4}),
]
# distinct low-energy CDR-H3s of trastuzumab (the native last); --starts modes puts the
# chains in them round-robin, and the crossing table counts moves between them
MODES = ("AKDYGSGSYYFDY", "ARSYYDSSNWFDP", "SRWGGDGFYAMDY")
RADIUS = 3  # a draw is "in" a mode within this Hamming distance of it (13 residues)


@dataclass
class Row:
    sampler: str
    sweeps: int
    rows_per_chain: float
    seconds: float
    acceptance: float
    novel: float
    swap_rates: list[float]
    mean_energy: float
    mcse_energy: float
    ess_energy: float
    ess_hamming: float
    rhat_energy: float
    rhat_hamming: float
    ess_per_1k_rows: float
    ess_per_1k_rows_lo: float
    ess_per_1k_rows_hi: float
    ess_per_min: float
    ess_h_per_1k_rows: float
    z_vs_mh: float
    crossings: int  # arrivals in a mode other than the chain's last one (all chains)
    crossings_per_1k_rows: float  # per chain
    chains_crossed: int  # chains that reached a mode other than their first
    regen_acceptance: float  # regenerate: mean min(1, alpha) of the kept regenerations
    tau_r: float  # regenerate: the frozen regeneration temperature
    frozen: bool  # adaptation stopped (replica exchange, tuned) before the budget ran out


class Chains:
    """One sampler's chains, stepped one sweep at a time, with its records."""

    def __init__(self, label: str, name: str, options: dict[str, Any], target: Target,
                 free: torch.Tensor, start: torch.Tensor, seed: int) -> None:  # fmt: skip
        self.label = label
        self.sampler = build_sampler(name, target, free, **options)
        self.generator = torch.Generator(device=start.device).manual_seed(seed)
        self.state = self.sampler.init(start)
        self.name = name
        self.frozen = False  # replica exchange and tuned adapt until a quarter of the budget
        self.energy: list[torch.Tensor] = []
        self.tokens: list[torch.Tensor] = []
        self.accept: list[torch.Tensor] = []
        self.novel: list[torch.Tensor] = []
        self.swaps: list[torch.Tensor] = []
        self.regen: list[torch.Tensor] = []  # [2, chains] per sweep: regenerations, accepted
        self.tau_r = float("nan")
        self.seconds = 0.0
        self.sweeps = 0

    @property
    def rows(self) -> float:
        return float(self.state.rows.double().mean())

    def sweep(self, warmup_rows: float) -> None:
        tick = time.perf_counter()
        self.state, info = self.sampler.step(self.state, self.generator)
        energy = self.sampler.energy(self.state).cpu()  # waits for the device
        self.seconds += time.perf_counter() - tick
        if not self.frozen and self.rows >= warmup_rows:
            self.state = self.sampler.end_warmup(self.state)  # adaptation stops here
            self.frozen = True
        self.sweeps += 1
        self.energy.append(energy)
        self.tokens.append(self.state.tokens.cpu())
        self.accept.append(info.acceptance_rate.cpu())
        self.novel.append(info.is_novel.cpu())
        swap = getattr(info, "swap_rate", None)
        if swap is not None:
            self.swaps.append(swap.cpu())
        if hasattr(info, "regenerations"):
            self.regen.append(torch.stack([info.regenerations, info.regen_accepted]).cpu())
            self.tau_r = float(info.regen_temperature[0])

    def records(
        self, reference: torch.Tensor, free: torch.Tensor, modes: torch.Tensor
    ) -> dict[str, Any]:
        """What the summary needs, as plain tensors (one process can hand it to another)."""
        tokens = torch.stack(self.tokens)
        region = tokens[..., free.cpu()]  # [sweeps, chains, n]
        distance = (region.unsqueeze(2) != modes.cpu()).sum(-1)  # [sweeps, chains, modes]
        nearest = distance.min(-1)
        return {
            "modes": torch.where(nearest.values <= RADIUS, nearest.indices, -1),
            "label": self.label,
            "name": self.name,
            "energy": torch.stack(self.energy),  # [sweeps, chains]
            "hamming": ((tokens != reference.cpu()) & free.cpu()).sum(-1),  # [sweeps, chains]
            "accept": torch.stack(self.accept),
            "novel": torch.stack(self.novel),
            "swaps": torch.stack(self.swaps) if self.swaps else None,
            "regen": torch.stack(self.regen) if self.regen else None,
            "tau_r": self.tau_r,
            "seconds": self.seconds,
            "sweeps": self.sweeps,
            "rows": self.rows,
            "frozen": self.frozen,
        }


def ess_rhat(x: np.ndarray) -> tuple[float, float]:
    """Bulk ESS and rank-normalised R-hat of ``x [chains, draws]``."""
    return float(az.ess(np.ascontiguousarray(x))), float(az.rhat(np.ascontiguousarray(x)))


def bootstrap_ess(x: np.ndarray, rows: float, rng: np.random.Generator) -> tuple[float, float]:
    """90% interval of ESS per 1000 rows with the chains resampled (rows: per chain)."""
    chains = x.shape[0]
    values = []
    for _ in range(200):
        pick = rng.integers(chains, size=chains)
        values.append(float(az.ess(np.ascontiguousarray(x[pick]))) / (chains * rows / 1000))
    return float(np.percentile(values, 5)), float(np.percentile(values, 95))


def crossings(modes: torch.Tensor) -> tuple[int, int]:
    """``(crossings, chains that crossed)`` of ``modes [sweeps, chains]`` (-1: in none).

    A crossing is an arrival in a mode other than the last one the chain was in.
    """
    total, crossed = 0, 0
    for chain in modes.T.tolist():
        visited = [m for m in chain if m >= 0]
        changes = sum(a != b for a, b in itertools.pairwise(visited))
        total += changes
        crossed += int(changes > 0)
    return total, crossed


def summarise(rec: dict[str, Any], rng: np.random.Generator, mh: Row | None) -> Row:
    sweeps = rec["sweeps"]
    keep = slice(sweeps // 4, None)  # the first quarter is warm-up
    energy = rec["energy"][keep].T.double().numpy()
    hamming = rec["hamming"][keep].T.double().numpy()
    ess_e, rhat_e = ess_rhat(energy)
    ess_h, rhat_h = ess_rhat(hamming)
    kept_fraction = energy.shape[1] / sweeps
    rows = rec["rows"] * kept_fraction  # rows per chain spent on the kept sweeps
    minutes = rec["seconds"] * kept_fraction / 60
    mcse = float(energy.std() / math.sqrt(ess_e))
    lo, hi = bootstrap_ess(energy, rows, rng)
    mean = float(energy.mean())
    z = float("nan") if mh is None else (mean - mh.mean_energy) / math.hypot(mcse, mh.mcse_energy)
    swaps = rec["swaps"][keep].mean((0, 1)).tolist() if rec["swaps"] is not None else []
    crossed, chains_crossed = crossings(rec["modes"])  # every sweep: crossing is the point
    regen = rec.get("regen")
    regen_acc = float("nan")
    if regen is not None and float(regen[keep, 0].sum()) > 0:
        regen_acc = float(regen[keep, 1].sum() / regen[keep, 0].sum())
    return Row(
        rec["label"],
        sweeps,
        rec["rows"],
        rec["seconds"],
        float(rec["accept"].float().mean()),
        float(rec["novel"].float().mean()),
        [round(s, 3) for s in swaps],
        mean,
        mcse,
        ess_e,
        ess_h,
        rhat_e,
        rhat_h,
        ess_e / (energy.shape[0] * rows / 1000),
        lo,
        hi,
        ess_e / minutes if minutes else float("nan"),
        ess_h / (energy.shape[0] * rows / 1000),
        z,
        crossed,
        crossed / (rec["modes"].shape[1] * rec["rows"] / 1000),
        chains_crossed,
        regen_acc,
        rec.get("tau_r", float("nan")),
        rec["frozen"],
    )


def run_here(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the chosen samplers in this process, interleaved so their row counts stay equal."""
    dtype = getattr(torch, args.dtype)
    mlm = load_model(args.model, device=args.device, dtype=dtype)
    ids = mlm.encode(VH)
    free = parse_free("cdrh3", ids, mlm)
    generator = torch.Generator().manual_seed(args.seed)
    proposable = mlm.proposable_ids.cpu()

    def random_cdr() -> torch.Tensor:
        x = ids.clone()
        pick = torch.randint(len(proposable), (int(free.sum()),), generator=generator)
        x[free] = proposable[pick]
        return x

    modes = torch.stack([mlm.encode(cdr).cpu() for cdr in MODES])  # plain residue strings
    modes = modes[:, 1:-1] if modes.shape[1] == len(MODES[0]) + 2 else modes  # drop specials
    if args.starts == "modes":
        rows = []
        for c in range(args.chains):
            x = ids.clone()
            x[free] = modes[c % len(MODES)].to(x)
            rows.append(x)
        start = torch.stack(rows)
    else:
        half = args.chains // 2
        start = torch.stack([ids] * half + [random_cdr() for _ in range(args.chains - half)])
    reference = random_cdr()
    target = Target(MLMEnergy(mlm))
    mask = free.expand(args.chains, -1).to(mlm.device)
    runs = [
        Chains(label, name, options, target, mask, start.to(mlm.device), args.seed + k)
        for k, (label, name, options) in enumerate(SETTINGS)
        if not args.only or label in args.only
    ]
    began = time.perf_counter()
    last = began
    deadline = began + 60 * args.minutes if args.minutes else float("inf")
    while time.perf_counter() < deadline:
        active = [c for c in runs if c.rows < args.rows]
        if not active:
            break
        # fewest rows first; warm-up (adaptation) ends at a quarter of the rows or of the time
        warmup = args.rows / 4 if time.perf_counter() < began + (deadline - began) / 4 else 0.0
        min(active, key=lambda c: c.rows).sweep(warmup_rows=warmup)
        if time.perf_counter() - last > 60:
            last = time.perf_counter()
            done = ", ".join(f"{c.label} {c.rows / args.rows:.0%}" for c in runs)
            print(f"[{(last - began) / 60:.1f} min] {done}", flush=True)
    if time.perf_counter() >= deadline:
        print(f"stopped at the {args.minutes}-minute limit before the row budget", flush=True)
    return [c.records(reference, free, modes) for c in runs]


def run_in_processes(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One process per sampler (``--jobs`` at a time), e.g. to share one GPU between them."""
    labels = args.only or [label for label, _, _ in SETTINGS]
    common = ["--model", args.model, "--rows", str(args.rows), "--chains", str(args.chains),
              "--seed", str(args.seed), "--device", args.device, "--dtype", args.dtype,
              "--minutes", str(args.minutes or 0), "--threads", str(args.threads or 1),
              "--starts", args.starts]  # fmt: skip
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        pending = list(enumerate(labels))
        running: list[tuple[subprocess.Popen[bytes], str]] = []
        while pending or running:
            while pending and len(running) < args.jobs:
                k, label = pending.pop(0)
                dump = os.path.join(folder, f"{k}.pt")
                command = [sys.executable, __file__, *common, "--only", label, "--dump", dump]
                running.append((subprocess.Popen(command), dump))
            process, dump = running.pop(0)
            if process.wait() != 0:  # the others' results still count; this one is reported
                print(f"a sampler's process failed (exit {process.returncode}): {process.args}")
                continue
            records.extend(torch.load(dump, weights_only=False))
    order = {label: k for k, label in enumerate(labels)}
    return sorted(records, key=lambda r: order[r["label"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sapiens-h")
    parser.add_argument("--rows", type=float, default=60000, help="masked rows per chain")
    parser.add_argument("--chains", type=int, default=8, help="half native, half random starts")
    parser.add_argument(
        "--starts", choices=["native-random", "modes"], default="native-random",
        help="native-random: half native, half random CDRs; modes: round-robin over MODES",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--minutes", type=float, default=0, help="wall limit (0: none)")
    parser.add_argument("--jobs", type=int, default=1, help="processes at once (one GPU shared)")
    parser.add_argument("--only", nargs="*", help="labels of the samplers to run (default all)")
    parser.add_argument("--dump", help="write this process's records to a file (a worker)")
    parser.add_argument(
        "--records", nargs="*",
        help="summarise saved --dump files instead of running (runs made apart, one table)",
    )  # fmt: skip
    parser.add_argument("--json", default="bench/results/mixing.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.perf_counter()
    if args.records:
        order = {label: k for k, (label, _, _) in enumerate(SETTINGS)}
        records = [r for path in args.records for r in torch.load(path, weights_only=False)]
        records.sort(key=lambda r: order[r["label"]])
    elif args.jobs > 1 and not args.dump:
        records = run_in_processes(args)
    else:
        records = run_here(args)
    if args.dump:
        torch.save(records, args.dump)
        return 0
    rng = np.random.default_rng(args.seed)
    mh = None
    rows: list[Row] = []
    for rec in records:
        row = summarise(rec, rng, mh)
        if rec["name"] == "mh":
            mh = row
            row.z_vs_mh = 0.0
        rows.append(row)
    if mh is not None:  # samplers summarised before MH get their z now
        for row in rows:
            if row.z_vs_mh != row.z_vs_mh:
                row.z_vs_mh = (row.mean_energy - mh.mean_energy) / math.hypot(
                    row.mcse_energy, mh.mcse_energy
                )
    header = (
        f"{'sampler':<22}{'sweeps':>7}{'rows':>9}{'s':>8}{'acc':>6}{'novel':>6}"
        f"{'E +- MCSE':>16}{'ESS E':>7}{'ESS H':>7}{'Rh E':>6}{'Rh H':>6}"
        f"{'ESS/1k rows [90%]':>24}{'H/1k':>7}{'ESS/min':>9}{'z vs mh':>8}{'cross/1k':>9}"
        f"{'crossed':>8}  swaps"
    )
    print(
        f"{args.model}, trastuzumab CDR-H3, {args.chains} chains ({args.starts} starts), "
        f"{args.rows:.0f} rows per chain, {args.device} {args.dtype}; modes {', '.join(MODES)} "
        f"(radius {RADIUS})"
    )
    print(header)
    for r in rows:
        print(
            f"{r.sampler:<22}{r.sweeps:>7}{r.rows_per_chain:>9.0f}{r.seconds:>8.1f}"
            f"{r.acceptance:>6.2f}{r.novel:>6.2f}{r.mean_energy:>9.2f} +- {r.mcse_energy:<4.2f}"
            f"{r.ess_energy:>7.0f}{r.ess_hamming:>7.0f}{r.rhat_energy:>6.2f}{r.rhat_hamming:>6.2f}"
            f"{r.ess_per_1k_rows:>9.3f} [{r.ess_per_1k_rows_lo:.3f}, {r.ess_per_1k_rows_hi:.3f}]"
            f"{r.ess_h_per_1k_rows:>7.3f}{r.ess_per_min:>9.1f}{r.z_vs_mh:>8.2f}"
            f"{r.crossings_per_1k_rows:>9.3f}{r.chains_crossed:>5}/{args.chains:<2}  "
            f"{r.swap_rates or ''}"
            + (f" regen {r.regen_acceptance:.2f} tau_r {r.tau_r:g}" if r.tau_r == r.tau_r else "")
            + ("" if r.frozen else "  (warm-up never ended: budget cut by --minutes)")
        )
    result = {
        "command": "python bench/mixing.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": args.model,
        "rows_per_chain": args.rows,
        "chains": args.chains,
        "starts": args.starts,
        "modes": list(MODES),
        "mode_radius": RADIUS,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "dtype": args.dtype,
        "wall_minutes": (time.perf_counter() - began) / 60,
        "machine": machine(),
        "rows": [asdict(r) for r in rows],
    }
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
