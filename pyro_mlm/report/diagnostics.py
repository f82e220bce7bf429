"""ArviZ InferenceData from per-draw arrays, and convergence summaries.

Token ids are permutation-invariant labels, so the library's R-hat and ESS are computed
on float summaries of the chain: the energy and the Hamming distance to one fixed
reference, the first chain's start, for every chain (each chain's own start would be a
different function in each chain where the starts differ). A ``pyro.infer.MCMC`` run
is converted by :mod:`pyro_mlm.pyro.conversion`.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

import numpy as np

SUMMARY_VARS = ("energy", "hamming")
TEXT_VARS = ("sequence", "free_region")  # per-draw strings: posterior coordinates
POSTERIOR_VARS = ("tokens", "energy", "hamming")
# posterior variables of some runs: the region's length where it varies (--lengths)
OPTIONAL_POSTERIOR_VARS = ("length",)
# per-sweep statistics that are not summary rows: the cost (its own columns), the log
# density, and the acceptance rates the command prints
NOT_SUMMARY_STATS = ("lp", "rows", "seconds", "acceptance_rate", "is_novel", "accept_prob")
MIN_DRAWS = 4  # ArviZ's R-hat and ESS need at least 4 draws per chain


def log_density(energy: Any, temperature: float) -> Any:
    """ArviZ's ``lp``: the log target up to a constant, :math:`-E/T`."""
    return -energy / temperature


def hamming(tokens: Any, start: Any) -> Any:
    """Positions where ``tokens [..., L]`` differ from ``start`` (broadcast), summed over L."""
    return (tokens != start).sum(-1)


def _arviz() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # 0.23's refactor notice
        import arviz

    return arviz


def _arviz_major() -> int:
    return int(_arviz().__version__.split(".")[0])


def inference_data_from_draws(data: dict[str, np.ndarray], residue: Any = None) -> Any:
    """ArviZ ``InferenceData`` from per-draw arrays ``[chain, draw, ...]``.

    ``data`` holds ``tokens``, ``energy`` and ``hamming`` (the numeric posterior
    variables, stored as float64: token ids stay exact, and ArviZ's rank plot, which
    fails on an integer variable that never changes such as a special token's id,
    ranks them as it ranks any float) and any of ``sequence`` and ``free_region``
    (strings); every other array is a per-sweep statistic and goes to ``sample_stats``
    (``lp``, ``acceptance_rate``, ``is_novel``, ``accept_prob``, ``rows``, ``seconds`` and
    whatever the sampler records: ``swap_rate``, ``regenerations``, ...), as
    :func:`pyro_mlm.pyro.conversion.draws_by_chain` returns
    them or as the command line reads them back from ``samples.jsonl``. The strings
    become coordinates over ``(chain, draw)`` of the posterior, not variables, so
    ArviZ's defaults (``az.summary``, ``az.rhat``, ``az.plot_trace``, ...) compute on
    the numeric variables alone. ``residue [L]``, when given, becomes a coordinate of
    the ``position`` axis: the 1-based content numbering that ``--free`` uses (0 at
    special tokens).
    """
    missing = {"tokens", "energy", "hamming"} - set(data)
    if missing:
        raise ValueError(f"draws lack {sorted(missing)}")
    names = POSTERIOR_VARS + tuple(k for k in OPTIONAL_POSTERIOR_VARS if k in data)
    posterior = {k: np.asarray(data[k], dtype=np.float64) for k in names}
    stats = {k: np.asarray(v) for k, v in data.items() if k not in names + TEXT_VARS}
    dims = {"tokens": ["position"]}
    az = _arviz()
    with warnings.catch_warnings():
        # a short run (fewer draws than chains) is valid; ArviZ suspects a transposed array
        warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
        if _arviz_major() >= 1:  # pragma: no cover - ArviZ 1.x needs Python >= 3.12
            idata = az.from_dict({"posterior": posterior, "sample_stats": stats}, dims=dims)
        else:
            idata = az.from_dict(posterior=posterior, sample_stats=stats, dims=dims)
    # fixed-width unicode, which netCDF stores without pickling
    text: dict[str, tuple[Any, np.ndarray]] = {
        k: (("chain", "draw"), np.asarray(data[k]).astype(str)) for k in TEXT_VARS if k in data
    }
    if residue is not None:
        text["residue"] = ("position", np.asarray(residue, dtype=np.int64))
    if text:
        idata.posterior = idata.posterior.assign_coords(text)
    return idata


def summary(
    idata: Any, var_names: tuple[str, ...] = SUMMARY_VARS, seconds: float | None = None
) -> Any:
    """Mean, sd, HDI, MCSE, bulk and tail ESS and R-hat of float summaries (a DataFrame).

    With the cost recorded (``rows`` per draw in ``sample_stats``), also the bulk ESS per
    1000 masked rows of the kept draws, and with their wall time (``seconds`` per draw
    in ``sample_stats``, or the total ``seconds`` given) the bulk ESS per minute: the
    numbers to compare samplers by. Every other per-sweep statistic a sampler records has
    a row holding its mean over chains and draws (``name[i]`` for each entry of a vector
    statistic: ``swap_rate[0]`` is the swap rate of replicas 0 and 1), e.g.
    ``regenerations``, ``regen_accepted``, ``regen_temperature``. With fewer than ``MIN_DRAWS`` (4)
    draws per chain, MCSE, ESS and R-hat cannot be computed and are NaN (the caller
    says why: see :func:`draws_per_chain`).
    """
    extra = tuple(k for k in OPTIONAL_POSTERIOR_VARS if k in idata.posterior and k not in var_names)
    table = _diagnostics_table(idata, var_names + extra)
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and "rows" in stats:
        rows = float(np.asarray(stats["rows"]).sum())
        table["ess_per_1k_rows"] = table["ess_bulk"] / (rows / 1000) if rows else np.nan
    if seconds is None and stats is not None and "seconds" in stats:
        seconds = float(np.asarray(stats["seconds"]).mean(axis=0).sum())  # shared by chains
    if seconds:
        table["ess_per_min"] = table["ess_bulk"] / (seconds / 60)
    names = [] if stats is None else list(stats.data_vars)
    for name in names:
        if name in NOT_SUMMARY_STATS:
            continue
        assert stats is not None
        values = np.asarray(stats[name], dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (e.g. during warm-up)
            if values.ndim <= 2:
                table.loc[name, "mean"] = float(np.nanmean(values))
            else:
                flat = values.reshape(-1, values.shape[-1])
                for i, value in enumerate(np.nanmean(flat, axis=0)):
                    table.loc[f"{name}[{i}]", "mean"] = float(value)
    return table


def plan(
    table: Any,
    draws: int,
    seconds_per_sweep: float,
    r_hat: float = 1.01,
    ess: float = 400.0,
) -> tuple[int, float]:
    """Estimated further sweeps (and minutes) to reach ``r_hat`` and bulk ``ess``.

    Assumes the chains keep mixing at the measured rate: ESS grows in proportion to
    the draws, and R-hat - 1 shrinks like 1 / draws. A chain stuck in one mode breaks
    both assumptions, so the estimate is a lower bound to check, not a promise.
    Returns ``(more_sweeps, minutes)``; ``(0, 0.0)`` when both targets are met.
    """
    worst_ess = float(table.loc[list(SUMMARY_VARS), "ess_bulk"].min())
    worst_rhat = float(table.loc[list(SUMMARY_VARS), "r_hat"].max())
    if not (worst_ess > 0 and np.isfinite(worst_rhat)):
        raise ValueError("R-hat or ESS is not finite (a chain never moved): no estimate")
    needed = max(draws * ess / worst_ess, draws * max(worst_rhat - 1.0, 0.0) / (r_hat - 1.0))
    more = max(int(np.ceil(needed)) - draws, 0)
    return more, more * seconds_per_sweep / 60.0


def _diagnostics_table(idata: Any, var_names: tuple[str, ...]) -> Any:
    import logging

    arviz_log = logging.getLogger("arviz")
    level = arviz_log.level
    arviz_log.setLevel(logging.ERROR)  # ArviZ logs its shape and NaN checks as warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # constant chains: r_hat is NaN
            if draws_per_chain(idata) >= MIN_DRAWS:
                return _arviz().summary(idata, var_names=list(var_names), kind="all")
            table = _arviz().summary(idata, var_names=list(var_names), kind="stats")
    finally:
        arviz_log.setLevel(level)
    for column in ("mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"):
        table[column] = np.nan
    return table


def draws_per_chain(idata: Any) -> int:
    """Draws per chain of an InferenceData's posterior."""
    return int(idata.posterior.sizes["draw"])
