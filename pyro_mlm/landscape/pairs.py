r"""Pairs among the best single mutants (``pyro-mlm scan --pairs K``): the exact energy change
of each double mutant and its epistasis.

For single mutants :math:`m = (t, a)` and :math:`n = (u, b)` at two positions :math:`t \ne u`,

.. math::

    \Delta E(m, n) = E(X^{t \to a,\, u \to b}) - E(X), \qquad
    \Delta\Delta E(m, n) = \Delta E(m, n) - \Delta E(m) - \Delta E(n),

with :math:`E` the whole target (MLM + experts). :math:`\Delta\Delta E = 0` when the two
mutations act independently; negative when they help each other. A double mutant has no row in
common with the wild type's evaluation (the row masking :math:`t` holds :math:`b` at :math:`u`),
so each costs :math:`|S|` masked rows: :math:`\binom{K}{2} |S|` in all, a few seconds for
:math:`K = 10` on a CDR. Pairs at one position are not double mutants and are left out.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

from pyro_mlm.landscape.mutants import WildType
from pyro_mlm.target import Target


def best_singles(rows: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The ``k`` allowed single mutants of lowest rank (forbidden ones are never paired)."""
    allowed = [r for r in rows if not r["forbidden"]]
    return sorted(allowed, key=lambda r: r["rank"])[:k]


def pair_mutants(
    target: Target, wild: WildType, singles: Sequence[dict[str, Any]], t_of: dict[int, int]
) -> list[dict[str, Any]]:
    """Every pair of ``singles`` at two positions, with ``delta_energy`` (the double mutant's,
    ``inf`` when an expert forbids it), the singles' changes and ``epistasis``.

    ``t_of`` maps a row's residue ``position`` to its token index.
    """
    pairs = [
        (m, n) for m, n in itertools.combinations(singles, 2) if m["position"] != n["position"]
    ]
    if not pairs:
        return []
    vocab = target.mlm
    batch = wild.tokens.repeat(len(pairs), 1)
    for row, (m, n) in enumerate(pairs):
        for single in (m, n):
            batch[row, t_of[single["position"]]] = vocab.tokenizer.convert_tokens_to_ids(
                single["mutant"]
            )
    free = wild.free.repeat(len(pairs), 1)
    with torch.no_grad():
        total = target.evaluate(batch, free, keep_conditionals=False).energy
    base = wild.energy + sum(wild.experts.values())
    out = []
    for row, (m, n) in enumerate(pairs):
        delta = float(total[row]) - base
        out.append(
            {
                "mutation_a": m["mutation"], "mutation_b": n["mutation"], "delta_energy": delta,
                "delta_a": m["delta_energy"], "delta_b": n["delta_energy"],
                "epistasis": delta - m["delta_energy"] - n["delta_energy"],
                "forbidden": delta == float("inf"),
            }
        )  # fmt: skip
    return sorted(out, key=lambda p: p["delta_energy"])


def pairs_report(name: str, pairs: Sequence[dict[str, Any]], top: int = 5) -> str:
    """The printed part: the best pairs and the strongest epistasis either way."""
    if not pairs:
        return f"{name}: no pair of the best single mutants sits at two positions"
    lines = [f"{name}: {len(pairs)} double mutants of the best single mutants; best {top}:"]
    for p in pairs[:top]:
        lines.append(
            f"  {p['mutation_a']}+{p['mutation_b']}: dE {p['delta_energy']:.3f} "
            f"(singles {p['delta_a']:.3f} + {p['delta_b']:.3f}, epistasis {p['epistasis']:+.3f})"
        )
    finite = [p for p in pairs if p["epistasis"] == p["epistasis"] and not p["forbidden"]]
    if finite:
        low = min(finite, key=lambda p: p["epistasis"])
        high = max(finite, key=lambda p: p["epistasis"])
        lines.append(
            f"  strongest epistasis: {low['mutation_a']}+{low['mutation_b']} "
            f"{low['epistasis']:+.3f} (they help each other), {high['mutation_a']}+"
            f"{high['mutation_b']} {high['epistasis']:+.3f}"
        )
    return "\n".join(lines)


def plot_pairs(pairs: Sequence[dict[str, Any]], path: str, title: str = "") -> str:
    """A small heatmap of the epistasis :math:`\\Delta\\Delta E` between the paired singles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    names: list[str] = []
    for p in pairs:
        for key in ("mutation_a", "mutation_b"):
            if p[key] not in names:
                names.append(p[key])
    grid = np.full((len(names), len(names)), np.nan)
    for p in pairs:
        i, j = names.index(p["mutation_a"]), names.index(p["mutation_b"])
        if not p["forbidden"]:
            grid[i, j] = grid[j, i] = p["epistasis"]
    finite = np.abs(grid[np.isfinite(grid)])
    limit = max(float(finite.max()) if finite.size else 1.0, 1e-6)
    fig, ax = plt.subplots(figsize=(0.45 * len(names) + 2.5, 0.45 * len(names) + 1.5))
    image = ax.imshow(grid, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit))
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.046, label="epistasis ddE (blue: they help each other)")
    ax.set_title(title or "epistasis of the best single mutants", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
