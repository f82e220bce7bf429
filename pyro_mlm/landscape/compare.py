r"""How far the masked-marginal heuristic is from the exact :math:`\Delta E`, and the printed
report of a scan.

Both statistics compare the MLM's own numbers, :math:`\Delta E_\text{MLM}(t, a)` against
the heuristic :math:`M(t, a)` (experts are not the heuristic's business):

- Spearman's rank correlation of :math:`-\Delta E_\text{MLM}` and :math:`M` over every
  mutant (1: the heuristic orders the mutants as the exact energy does);
- the top-N overlap: the share of the N mutants with the lowest :math:`\Delta E_\text{MLM}`
  that are also among the N with the highest :math:`M`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def agreement(rows: Sequence[dict[str, Any]], top: int = 10) -> dict[str, float]:
    """``{"spearman": rho, "overlap": share, "top": N}`` of one record's rows.

    >>> rows = [{"delta_mlm": -d, "masked_marginal": m} for d, m in [(3, 3), (2, 1), (1, 2)]]
    >>> agreement(rows, top=1)
    {'spearman': 0.5, 'overlap': 1.0, 'top': 1}
    """
    import pandas as pd

    exact = pd.Series([-float(r["delta_mlm"]) for r in rows])
    heuristic = pd.Series([float(r["masked_marginal"]) for r in rows])
    n = min(top, len(rows))
    rho = float(exact.corr(heuristic, method="spearman")) if len(rows) > 1 else float("nan")
    best = set(exact.sort_values(ascending=False, kind="stable").index[:n])
    liked = set(heuristic.sort_values(ascending=False, kind="stable").index[:n])
    return {"spearman": round(rho, 4), "overlap": len(best & liked) / n if n else 0.0, "top": n}


def report(name: str, rows: Sequence[dict[str, Any]], experts: Sequence[str], top: int) -> str:
    r"""The printed part of a scan for one record: the best ``top`` mutations by
    :math:`\Delta E`, then the agreement with the heuristic."""
    ranked = sorted(rows, key=lambda r: r["rank"])
    by_heuristic = sorted(range(len(rows)), key=lambda i: -rows[i]["masked_marginal"])
    heuristic_rank = {id(rows[i]): r for r, i in enumerate(by_heuristic, start=1)}
    forbidden = sum(bool(r["forbidden"]) for r in rows)
    head = ["rank", "mutation", "region", "dE", "dE_mlm", "masked_marg", "heur_rank"]
    head += [e.removeprefix("expert_") for e in experts]
    lines = [f"{name}: {len(rows)} single mutants ({forbidden} forbidden); best {top} by dE:"]
    lines.append("  ".join(f"{h:>11}" for h in head))
    for row in ranked[:top]:
        cells = [
            row["rank"], row["mutation"], row["region"] or "-", f"{row['delta_energy']:.3f}",
            f"{row['delta_mlm']:.3f}", f"{row['masked_marginal']:.3f}", heuristic_rank[id(row)],
            *(f"{row[e]:.3f}" for e in experts),
        ]  # fmt: skip
        lines.append("  ".join(f"{c!s:>11}" for c in cells))
    stats = agreement(rows, top)
    lines.append(
        f"exact dE_mlm vs masked marginal: Spearman {stats['spearman']:.3f}; top-{stats['top']} "
        f"overlap {stats['overlap']:.0%} ({round(stats['overlap'] * stats['top'])} of "
        f"{stats['top']})"
    )
    return "\n".join(lines)
