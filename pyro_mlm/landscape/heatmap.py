r"""The scan's heatmap: positions across, tokens down, the exact :math:`\Delta E` in
diverging colours centred at 0 (blue: the model prefers the mutant; red: the wild type),
the wild type marked in each column, forbidden cells hatched, region boundaries and names
along the top."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def landscape_matrix(
    rows: Sequence[dict[str, Any]], tokens: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    r"""``(values [K, P], forbidden [K, P], sites)`` of one record's rows: ``values`` the
    total :math:`\Delta E` (the MLM part where a mutant is forbidden), NaN at the wild type;
    ``sites`` one ``{"position", "label", "region", "wild_type"}`` per column in order."""
    sites: list[dict[str, Any]] = []
    column: dict[int, int] = {}
    for row in rows:
        if row["position"] not in column:
            column[row["position"]] = len(sites)
            sites.append({k: row[k] for k in ("position", "label", "region", "wild_type")})
    index = {token: k for k, token in enumerate(tokens)}
    values = np.full((len(tokens), len(sites)), np.nan)
    forbidden = np.zeros(values.shape, dtype=bool)
    for row in rows:
        k, p = index[row["mutant"]], column[row["position"]]
        values[k, p] = row["delta_mlm"] if row["forbidden"] else row["delta_energy"]
        forbidden[k, p] = bool(row["forbidden"])
    return values, forbidden, sites


def plot_landscape(
    rows: Sequence[dict[str, Any]], tokens: Sequence[str], path: str, title: str = ""
) -> str:
    """Draw one record's landscape into ``path`` (PNG); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    values, forbidden, sites = landscape_matrix(rows, tokens)
    finite = np.abs(values[np.isfinite(values)])
    limit = float(np.quantile(finite, 0.98)) if finite.size else 1.0
    limit = max(limit, 1e-6)
    width = min(max(4.0, 0.22 * len(sites) + 2.0), 40.0)
    fig, ax = plt.subplots(figsize=(width, 0.22 * len(tokens) + 2.2))
    norm = TwoSlopeNorm(vmin=-limit, vcenter=0.0, vmax=limit)
    image = ax.imshow(
        np.clip(values, -limit, limit), cmap="RdBu_r", norm=norm, aspect="auto",
        interpolation="nearest",
    )  # fmt: skip
    for k, p in zip(*np.nonzero(forbidden), strict=True):
        ax.add_patch(
            plt.Rectangle((p - 0.5, k - 0.5), 1, 1, fill=False, hatch="///", lw=0, color="0.3")
        )
    row_of = {token: k for k, token in enumerate(tokens)}
    for p, site in enumerate(sites):  # the wild type: a dot in its own cell
        if site["wild_type"] in row_of:
            ax.plot(p, row_of[site["wild_type"]], "o", ms=3.5, color="black")
    ax.set_yticks(range(len(tokens)), list(tokens), fontsize=7)
    ticks = [f"{s['wild_type']}{s['label']}" for s in sites]
    ax.set_xticks(range(len(sites)), ticks, rotation=90, fontsize=6 if len(sites) > 40 else 8)
    regions = [s["region"] for s in sites]
    starts = [p for p in range(len(sites)) if p == 0 or regions[p] != regions[p - 1]]
    for n, first in enumerate(starts):
        last = (starts[n + 1] if n + 1 < len(starts) else len(sites)) - 1
        if first:
            ax.axvline(first - 0.5, color="black", lw=0.8)
        if regions[first]:
            ax.text((first + last) / 2, -0.9, regions[first], ha="center", va="bottom", fontsize=7)
    ax.set_xlabel("position (wild type and number)")
    ax.set_ylabel("mutant")
    bar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    bar.set_label("exact dE = E(mutant) - E(wild type)\n(blue: the model prefers the mutant)")
    ax.set_title(
        (title + "\n" if title else "") + "dot: wild type; hatched: forbidden by an expert",
        fontsize=9, pad=22,
    )  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
