"""Pictures of a run: energy traces with the running R-hat, and rank plots.

Both read the draws :mod:`pyro_mlm.report.diagnostics` builds (either ArviZ line's object)
and draw with matplotlib alone, so the pictures are the same on ArviZ 0.x and 1.x; each
saves a PNG when given a path.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from pyro_mlm.report import arviz_compat
from pyro_mlm.report.diagnostics import MIN_DRAWS, OPTIONAL_POSTERIOR_VARS, SUMMARY_VARS


def running_rhat(values: np.ndarray, points: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """R-hat of the first ``n`` draws of ``values [chains, draws]`` at up to ``points`` n's."""
    draws = values.shape[1]
    if draws < MIN_DRAWS or values.shape[0] < 2:
        return np.zeros(0, dtype=int), np.zeros(0)
    ends = np.unique(np.linspace(MIN_DRAWS, draws, min(points, draws - MIN_DRAWS + 1)).astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = np.array([arviz_compat.rhat(values[:, :n]) for n in ends])
    return ends, rhat


def plot_energy_trace(idata: Any, path: str | None = None, warmup: int = 0) -> Any:
    """Traces per chain of every summary the verdict covers (the energy, the Hamming
    distance, the region's length under ``--lengths``), their marginals, and the running
    R-hat of each; saves a PNG.

    The x axis counts sweeps from the start of the run, in whole sweeps; only kept draws
    are plotted, so the axis starts after the ``warmup`` sweeps (named in its label, not
    shaded: there is nothing of warm-up to see). The lower panel shows each summary's R-hat
    over the draws so far, against the 1.01 and 1.05 lines (always in view), so a reader
    sees convergence come (or not).
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    posterior = arviz_compat.dataset(idata, "posterior")
    names = [*SUMMARY_VARS, *(k for k in OPTIONAL_POSTERIOR_VARS if k in posterior)]
    labels = {"energy": "energy E(X)", "hamming": "Hamming to start", "length": "length"}
    chains, draws = np.asarray(posterior["energy"]).shape
    sweeps = warmup + 1 + np.arange(draws)
    fig, axes = plt.subplots(
        len(names) + 1, 2, figsize=(10, 2.2 * len(names) + 2.4), sharex="col",
        gridspec_kw={"width_ratios": [3, 1], "height_ratios": [3] + [2] * len(names)},
        constrained_layout=True,
    )  # fmt: skip
    for k, name in enumerate(names):
        ax_trace, ax_hist = axes[k]
        for c, row in enumerate(np.asarray(posterior[name], dtype=float)):
            ax_trace.plot(sweeps, row, lw=0.8, label=f"chain {c}")
            bins = min(30, max(5, len(row) // 4))
            ax_hist.hist(row, bins=bins, histtype="step", orientation="horizontal")
        ax_trace.set_ylabel(labels.get(name, name))
        ax_hist.set_xlabel("count" if k == len(names) - 1 else "")
    axes[0, 0].set_title("traces (kept draws)")
    if chains <= 8:
        axes[0, 0].legend(fontsize="small", ncol=2)
    ax_rhat = axes[-1, 0]
    axes[-1, 1].axis("off")
    top = 1.06
    for name in names:
        ends, rhat = running_rhat(np.asarray(posterior[name], dtype=float))
        if len(ends):
            ax_rhat.plot(warmup + ends, rhat, marker=".", lw=1, label=name)
            finite = rhat[np.isfinite(rhat)]
            top = max(top, float(finite.max()) + 0.01) if len(finite) else top
    for level, style in ((1.01, "-"), (1.05, "--")):
        ax_rhat.axhline(level, color="0.4", lw=0.8, ls=style, label=f"R-hat {level}")
    ax_rhat.set_ylim(0.98, top)  # both lines in view, whatever the chains did
    ax_rhat.set_xlim(warmup + 0.5, sweeps[-1] + 0.5)
    ax_rhat.xaxis.set_major_locator(MaxNLocator(integer=True))  # sweeps are whole
    ax_rhat.set_xlabel(f"sweep (after {warmup} warm-up sweeps, not kept)" if warmup else "sweep")
    ax_rhat.set_ylabel("R-hat so far")
    ax_rhat.legend(fontsize="small", ncol=2)
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values [chains, draws]`` among all draws pooled, ties averaged (1-based)."""
    flat = np.asarray(values, dtype=float).ravel()
    order = np.argsort(flat, kind="stable")
    _, first, counts = np.unique(flat[order], return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0  # the mean of the 1-based ranks a tie spans
    out = np.empty(len(flat))
    out[order] = np.repeat(average, counts)
    return out.reshape(np.shape(values))


def plot_rank(idata: Any, path: str | None = None, var_names: tuple[str, ...] | None = None) -> Any:
    """Rank plots of the float summaries: each chain's histogram of its draws' ranks among
    all chains' draws (Vehtari et al. 2021), flat when the chains agree; each dashed line is
    the height a uniform rank would give that chain. Drawn from the ranks alone, the same on both
    ArviZ lines (ArviZ 1.x's ``plot_rank`` draws ECDFs and takes no axes)."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    posterior = arviz_compat.dataset(idata, "posterior")
    if var_names is None:  # every summary the verdict covers
        var_names = (*SUMMARY_VARS, *(k for k in OPTIONAL_POSTERIOR_VARS if k in posterior))
    fig, axes = plt.subplots(
        1, len(var_names), figsize=(5 * len(var_names), 3.2), constrained_layout=True
    )
    for ax, name in zip(np.atleast_1d(axes), var_names, strict=True):
        values = np.asarray(posterior[name], dtype=float)
        chains, draws = values.shape
        rank = ranks(values)
        bins = max(2, int(np.ceil(np.log2(draws))) + 1)  # Sturges, as ArviZ 0.x
        edges = np.linspace(0.5, chains * draws + 0.5, bins + 1)
        counts = np.array([np.histogram(rank[c], bins=edges)[0] for c in range(chains)])
        scale = 0.9 / max(int(counts.max()), 1)  # the tallest bar fills 0.9 of a chain's band
        for c in range(chains):
            ax.bar(
                edges[:-1],
                counts[c] * scale,
                width=np.diff(edges),
                bottom=c,
                align="edge",
                alpha=0.8,
                color=f"C{c % 10}",
                edgecolor="white",
                lw=0.5,
            )
            ax.axhline(c + draws / bins * scale, color="0.3", lw=0.8, ls="--")  # uniform
        ax.set_yticks(np.arange(chains), [str(c) for c in range(chains)])
        ax.set_ylim(-0.1, chains)
        ax.set_ylabel("chain")
        ax.set_xlabel("rank (all chains)")
        ax.set_title(name)
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
