"""Benchmark: MH proposals/s and ESS of the energy per minute against the paper as written.

Two tasks on AntiBERTy with trastuzumab VH (120 residues, norm energy, random scan):
the CDR-H3 infill (13 free positions, the framework fixed) and the full heavy chain
(all 120 residues free). For each, in one run:

- ``reference``: the algorithm as Goyal et al. write it, one chain at a time. Every
  proposal recomputes the current energy (T masked rows, T = free positions), the
  proposal's masked conditional (1 row) and the proposed energy (T rows): 2T + 1 rows,
  self-proposals included. The uniform for the accept test is drawn only when the
  proposal changes the token: for a self-proposal both energies come from identical
  rows, so the ratio is exactly 1 and the draw could not change the decision. This
  keeps the reference's random stream aligned with pyro_mlm's, so the script can check
  that both take the *identical* path from the same seed (the same chain law, shown
  draw by draw).
- ``pyro_mlm``: the registered ``mh`` sampler (what ``MaskedMH`` and the command line
  run), driven by its ``step`` with 1 and with 8 vectorised chains: the current energy
  and conditionals are cached, a self-proposal costs nothing, a changed token costs T
  rows, and all chains share each forward pass.

Columns: chain-proposals per second, novel (accepted and changed) proposals per second,
masked rows per proposal, the bulk ESS of the per-proposal energy trace (ArviZ,
chains pooled) and ESS per minute. Because the 1-chain pyro_mlm path is checked to be
identical to the reference's over the reference's proposals, the reference's ESS over
``--proposals`` is that same path's ESS; when the reference ran fewer proposals (the
full chain: 241 rows per proposal), its time for ``--proposals`` is extrapolated from
its per-proposal time, which is constant because every proposal costs the same rows.

    python bench/mh.py --json bench/results/mh.json
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass

import arviz as az
import numpy as np
import torch
from _report import machine, write_json

from pyro_mlm import MaskedLM, MLMEnergy, Target
from pyro_mlm.design.sites import parse_free
from pyro_mlm.samplers import build_sampler
from pyro_mlm.samplers.proposals import masked_conditional_proposal
from pyro_mlm.samplers.transitions import accept_reject, log_acceptance_ratio

VH = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQ"
    "MNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
)  # trastuzumab VH


@dataclass
class Row:
    task: str
    method: str
    chains: int
    proposals: int  # per chain
    seconds: float
    proposals_per_s: float
    novel_per_s: float
    rows_per_proposal: float
    acceptance: float
    novel_acceptance: float
    ess: float
    ess_per_min: float


class RowCounter:
    """Counts masked rows sent through ``mlm.masked_logits``."""

    def __init__(self, mlm: MaskedLM) -> None:
        self.rows = 0
        inner = mlm.masked_logits

        def counted(ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
            self.rows += ids.shape[0]
            return inner(ids, attn, pos)

        mlm.masked_logits = counted  # type: ignore[method-assign]


def run_pyro_mlm(
    energy: MLMEnergy, ids: torch.Tensor, free: torch.Tensor, chains: int, proposals: int
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """``proposals`` MH proposals in ``chains`` vectorised chains.

    Returns seconds, tokens ``[P, C, L]``, energies ``[P, C]`` after each proposal and
    the per-proposal (accepted, novel) counts ``[P, 2]``.
    """
    generator = torch.Generator().manual_seed(0)
    sampler = build_sampler("mh", Target(energy), free.expand(chains, -1), proposals_per_sweep=1)
    state = sampler.init(ids.repeat(chains, 1))
    tokens, energies, counts = [], [], []
    start = time.perf_counter()
    for _ in range(proposals):
        state, info = sampler.step(state, generator)
        tokens.append(state.tokens.cpu())
        energies.append(sampler.energy(state).cpu())
        counts.append([float(info.acceptance_rate.sum()), float(info.is_novel.sum())])
    return _trace(time.perf_counter() - start, tokens, energies, counts)


def run_reference(
    energy: MLMEnergy, ids: torch.Tensor, free: torch.Tensor, proposals: int
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The paper as written: 2T + 1 masked rows per proposal, one chain, nothing cached."""
    generator = torch.Generator().manual_seed(0)
    proposable = energy.mlm.proposable_ids
    x = ids.unsqueeze(0).clone()
    mask = free.unsqueeze(0)
    table = free.nonzero().squeeze(-1)
    count = torch.tensor([table.numel()])
    tokens, energies, counts = [], [], []
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(proposals):
            u = torch.rand(count.shape, generator=generator)
            index = torch.minimum((u * count).long(), count - 1)
            t = table[index]
            current = energy.evaluate(x, mask).energy  # T rows
            logits = energy.conditionals(x, t)  # 1 row
            proposal = masked_conditional_proposal(logits, x[0, t], proposable, 1.0, generator)
            candidate = x.clone()
            candidate[0, t] = proposal.new_tokens
            proposed = energy.evaluate(candidate, mask).energy  # T rows, self-proposals too
            log_ratio = log_acceptance_ratio(
                current, proposed, proposal.log_q_forward, proposal.log_q_reverse
            )
            moved = bool(proposal.new_tokens != x[0, t])
            accepted = True
            if moved:
                log_u = torch.rand(1, generator=generator).log()
                accepted = bool(accept_reject(log_ratio, log_u)[1])
            if accepted:
                x = candidate
            tokens.append(x.clone())
            energies.append(proposed if accepted else current)
            counts.append([float(accepted), float(accepted and moved)])
    return _trace(time.perf_counter() - start, tokens, energies, counts)


def _trace(
    seconds: float,
    tokens: list[torch.Tensor],
    energies: list[torch.Tensor],
    counts: list[list[float]],
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Per-proposal records stacked: ``(seconds, tokens, energies, counts)``."""
    return seconds, torch.stack(tokens).numpy(), torch.stack(energies).numpy(), np.array(counts)


def ess(energies: np.ndarray) -> float:
    """Bulk ESS of an energy trace ``[P, C]`` (chains pooled, ArviZ's rank-normalised)."""
    return float(az.ess(np.ascontiguousarray(energies.T)))


def bench_task(
    name: str,
    energy: MLMEnergy,
    counter: RowCounter,
    ids: torch.Tensor,
    free: torch.Tensor,
    proposals: int,
    reference_proposals: int,
    many: int,
) -> tuple[list[Row], dict[str, object]]:
    n_free = int(free.sum())
    rows: list[Row] = []
    counter.rows = 0
    ref_s, ref_tokens, _, ref_counts = run_reference(energy, ids, free, reference_proposals)
    ref_rows = counter.rows / reference_proposals
    results = {}
    for chains in (1, many):
        counter.rows = 0
        seconds, tokens, energies, counts = run_pyro_mlm(energy, ids, free, chains, proposals)
        results[chains] = (seconds, tokens, energies, counts, counter.rows)
    _, one_tokens, one_energy, _, _ = results[1]
    n_check = min(reference_proposals, proposals)
    same_path = bool(np.array_equal(ref_tokens[:n_check, :, :], one_tokens[:n_check, :, :]))
    # the reference's path is the 1-chain path: its ESS over `proposals` is that path's
    ref_time = ref_s / reference_proposals * proposals
    one_ess = ess(one_energy)
    rows.append(
        Row(
            name,
            "reference (paper as written)",
            1,
            reference_proposals,
            ref_s,
            reference_proposals / ref_s,
            ref_counts[:, 1].sum() / ref_s,
            ref_rows,
            float(ref_counts[:, 0].mean()),
            float(ref_counts[:, 1].mean()),
            one_ess if same_path else float("nan"),
            one_ess / (ref_time / 60) if same_path else float("nan"),
        )
    )
    for chains, (seconds, _, energies, counts, n_rows) in results.items():
        total = chains * proposals
        value = ess(energies)
        rows.append(
            Row(
                name,
                f"pyro_mlm, {chains} chain{'s' if chains > 1 else ''}",
                chains,
                proposals,
                seconds,
                total / seconds,
                counts[:, 1].sum() / seconds,
                (n_rows - chains * n_free) / total,  # less the start state's evaluation
                float(counts[:, 0].sum() / total),
                float(counts[:, 1].sum() / total),
                value,
                value / (seconds / 60),
            )
        )
    extra = {
        "free_positions": n_free,
        "identical_path_over_reference_proposals": same_path,
        "proposals_checked": n_check,
        "reference_seconds_per_proposal": ref_s / reference_proposals,
        "reference_time_for_ess_s": ref_time,
    }
    return rows, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=8, help="vectorised chains (besides 1)")
    parser.add_argument("--cdr-proposals", type=int, default=150)
    parser.add_argument("--cdr-reference-proposals", type=int, default=150)
    parser.add_argument("--full-proposals", type=int, default=40)
    parser.add_argument("--full-reference-proposals", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--json", default="bench/results/mh.json")
    args = parser.parse_args(argv)
    mlm = MaskedLM.antiberty(device=args.device, dtype=getattr(torch, args.dtype))
    counter = RowCounter(mlm)
    energy = MLMEnergy(mlm, "norm")
    ids = mlm.encode(VH).to(args.device)
    tasks = [
        ("CDR-H3", "cdrh3", args.cdr_proposals, args.cdr_reference_proposals),
        ("full VH", "all", args.full_proposals, args.full_reference_proposals),
    ]
    table: list[Row] = []
    extras = {}
    for name, spec, proposals, ref_proposals in tasks:
        free = parse_free(spec, ids.cpu(), mlm).to(args.device)
        rows, extra = bench_task(
            name, energy, counter, ids, free, proposals, ref_proposals, args.chains
        )
        table += rows
        extras[name] = extra
    print(
        f"AntiBERTy MH, trastuzumab VH, norm energy, {args.dtype} on {args.device}, "
        f"{torch.get_num_threads()} threads"
    )
    header = (
        f"{'task':8} {'method':29} {'props':>6} {'s':>7} {'prop/s':>7} {'novel/s':>8} "
        f"{'rows/prop':>9} {'acc':>5} {'novel':>6} {'ESS':>6} {'ESS/min':>8} {'x prop/s':>8} "
        f"{'x ESS/min':>9}"
    )
    print(header)
    for row in table:
        ref = next(r for r in table if r.task == row.task)
        print(
            f"{row.task:8} {row.method:29} {row.proposals * row.chains:6d} {row.seconds:7.1f} "
            f"{row.proposals_per_s:7.2f} {row.novel_per_s:8.3f} {row.rows_per_proposal:9.1f} "
            f"{row.acceptance:5.2f} {row.novel_acceptance:6.3f} {row.ess:6.1f} "
            f"{row.ess_per_min:8.2f} {row.proposals_per_s / ref.proposals_per_s:7.1f}x "
            f"{row.ess_per_min / ref.ess_per_min:8.1f}x"
        )
    for name, extra in extras.items():
        print(
            f"{name}: reference and 1-chain pyro_mlm paths identical over the first "
            f"{extra['proposals_checked']} proposals: "
            f"{extra['identical_path_over_reference_proposals']}"
        )
    result = {
        "machine": machine(),
        "device": args.device,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "rows": [asdict(r) for r in table],
        "tasks": extras,
    }
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
