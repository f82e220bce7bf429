"""ArviZ InferenceData from per-draw arrays, and convergence summaries.

Token ids are permutation-invariant labels, so the library's R-hat and ESS are computed
on float summaries of the chain: the energy and the Hamming distance to one fixed
reference, the first chain's start, for every chain (each chain's own start would be a
different function in each chain where the starts differ). A ``pyro.infer.MCMC`` run
is converted by :mod:`pyro_mlm.pyro.conversion`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from pyro_mlm.report import arviz_compat
from pyro_mlm.samplers.statistics import NOT_READ, sweep_statistics

SUMMARY_VARS = ("energy", "hamming")
TEXT_VARS = ("sequence", "free_region")  # per-draw strings: posterior coordinates
POSTERIOR_VARS = ("energy", "hamming")  # the token ids are in the sequences group
# posterior variables of some runs: the region's length where it varies (--lengths)
OPTIONAL_POSTERIOR_VARS = ("length",)
# per-sweep statistics that are not summary rows (the cost has its own columns)
NOT_SUMMARY_STATS = NOT_READ
MIN_DRAWS = 4  # ArviZ's R-hat and ESS need at least 4 draws per chain


def log_density(energy: Any, temperature: float) -> Any:
    """ArviZ's ``lp``: the log target up to a constant, :math:`-E/T`."""
    return -energy / temperature


def hamming(tokens: Any, start: Any) -> Any:
    """Positions where ``tokens [..., L]`` differ from ``start`` (broadcast), summed over L."""
    return (tokens != start).sum(-1)


def inference_data_from_draws(data: dict[str, np.ndarray], residue: Any = None) -> Any:
    """The installed ArviZ's object (``InferenceData`` on 0.x, ``DataTree`` on 1.x) from
    per-draw arrays ``[chain, draw, ...]``, with the same groups, variables and coordinates
    on both lines (:mod:`pyro_mlm.report.arviz_compat`).

    ``data`` holds ``tokens``, ``energy`` and ``hamming`` and any of ``length``,
    ``sequence`` and ``free_region`` (strings). The posterior holds the chain's summaries
    (``energy``, ``hamming``, ``length``: float64), so ArviZ's defaults (``az.summary``,
    ``az.plot_trace``, ``az.plot_rank``) show a few rows and panels; the token ids
    ``[chain, draw, position]`` (int64) are the ``tokens`` variable of a ``sequences``
    group, one call away (``idata["sequences"]["tokens"]``, :func:`tokens_of`), which
    ArviZ's defaults do not read. Every other array is a per-sweep statistic and goes to
    ``sample_stats``
    (``lp``, ``acceptance_rate``, ``is_novel``, ``accept_prob``, ``rows``, ``seconds`` and
    whatever the sampler records: ``swap_rate``, ``regenerations``, ...), as
    :func:`pyro_mlm.pyro.conversion.draws_by_chain` returns
    them or as the command line reads them back from ``samples.jsonl``. The strings
    become coordinates over ``(chain, draw)`` of the posterior, not variables, so
    ArviZ's defaults (``az.summary``, ``az.rhat``, ``az.plot_trace``, ...) compute on
    the numeric variables alone. ``residue [L]``, when given, is the ``constant_data``
    variable ``residue`` over the ``position`` axis: the 1-based content numbering that
    ``--free`` uses (0 at special tokens). It is not a posterior coordinate, because
    ArviZ 1.x's ``az.summary`` refuses a coordinate that only some variables have.
    """
    missing = {"tokens", "energy", "hamming"} - set(data)
    if missing:
        raise ValueError(f"draws lack {sorted(missing)}")
    names = POSTERIOR_VARS + tuple(k for k in OPTIONAL_POSTERIOR_VARS if k in data)
    posterior = {k: np.asarray(data[k], dtype=np.float64) for k in names}
    sequences = {"tokens": np.asarray(data["tokens"], dtype=np.int64)}
    stats = {k: np.asarray(v) for k, v in data.items() if k not in (*names, *TEXT_VARS, "tokens")}
    constant = {} if residue is None else {"residue": np.asarray(residue, dtype=np.int64)}
    # fixed-width unicode, which netCDF stores without pickling
    text: dict[str, tuple[Any, np.ndarray]] = {
        k: (("chain", "draw"), np.asarray(data[k]).astype(str)) for k in TEXT_VARS if k in data
    }
    return arviz_compat.build(
        {"posterior": posterior, "sample_stats": stats, "constant_data": constant,
         "sequences": sequences},
        dims={"tokens": ["position"], "residue": ["position"]},
        posterior_coords=text,
    )  # fmt: skip


def tokens_of(idata: Any) -> np.ndarray:
    """The token ids ``[chain, draw, position]`` of ``idata`` (int64): its ``sequences``
    group, or its posterior where a file written before 0.3 holds them."""
    group = "sequences" if arviz_compat.has_group(idata, "sequences") else "posterior"
    return np.asarray(arviz_compat.dataset(idata, group)["tokens"]).astype(np.int64)


def summary(
    idata: Any, var_names: tuple[str, ...] = SUMMARY_VARS, seconds: float | None = None
) -> Any:
    """Mean, sd, 94% HDI, MCSE, bulk and tail ESS and R-hat of float summaries (a DataFrame).

    The columns and their definitions are ArviZ 0.x's ``az.summary`` (``hdi_3%``,
    ``hdi_97%``, ``mcse_mean``, ``mcse_sd``, ``ess_bulk``, ``ess_tail``, ``r_hat``), computed
    here through :mod:`pyro_mlm.report.arviz_compat` so that both ArviZ lines give the same
    numbers, unrounded (a verdict such as R-hat <= 1.01 must not be decided on a value
    rounded to two decimals). ArviZ 1.x's own ``az.summary`` shows an 89% equal-tailed
    interval (``eti89_lb``, ``eti89_ub``) instead of the HDI; every other column agrees.

    With the cost recorded (``rows`` per draw in ``sample_stats``), also the bulk ESS per
    1000 masked rows of the kept draws, and with their wall time (``seconds`` per draw
    in ``sample_stats``, or the total ``seconds`` given) the bulk ESS per minute: the
    numbers to compare samplers by. Every other per-sweep statistic a sampler records has
    a row in the ``mean`` column, named and computed as on the progress line
    (:func:`pyro_mlm.samplers.statistics.sweep_statistics`): a rate or value's mean over
    chains and draws (``acceptance_rate``, ``novel_rate``, ``swap_rate[i]`` for replicas i
    and i+1, ``regen_temperature``), a declared ratio of counts as the ratio of their totals
    (``regen_acceptance``) with the counts per sweep (``regenerations_per_sweep``). With
    fewer than ``MIN_DRAWS`` (4) draws per chain, MCSE, ESS and R-hat cannot be computed
    and are NaN (the caller says why: see :func:`draws_per_chain`).
    """
    posterior = arviz_compat.dataset(idata, "posterior")
    extra = tuple(k for k in OPTIONAL_POSTERIOR_VARS if k in posterior and k not in var_names)
    table = _diagnostics_table(posterior, var_names + extra)
    stats = (
        arviz_compat.dataset(idata, "sample_stats")
        if arviz_compat.has_group(idata, "sample_stats")
        else None
    )
    if stats is not None and "rows" in stats:
        rows = float(np.asarray(stats["rows"]).sum())
        table["ess_per_1k_rows"] = table["ess_bulk"] / (rows / 1000) if rows else np.nan
    if seconds is None and stats is not None and "seconds" in stats:
        seconds = float(np.asarray(stats["seconds"]).mean(axis=0).sum())  # shared by chains
    if seconds:
        table["ess_per_min"] = table["ess_bulk"] / (seconds / 60)
    if stats is not None:
        totals = {
            name: np.asarray(stats[name], dtype=np.float64).sum(axis=(0, 1))
            for name in stats.data_vars
            if name not in NOT_SUMMARY_STATS and name not in table.index
        }
        chain_sweeps = int(stats.sizes["chain"]) * int(stats.sizes["draw"])
        for name, value in sweep_statistics(totals, chain_sweeps).items():
            table.loc[name, "mean"] = value
    return table


R_HAT_BAR, ESS_BAR = 1.01, 400.0  # the verdict: R-hat <= 1.01 and bulk ESS >= 400


def judged(table: Any) -> list[str]:
    """The summaries the verdict covers: the energy, the Hamming distance, and every other
    summary the run defines (the region's ``length`` under ``--lengths``)."""
    return list(SUMMARY_VARS) + [k for k in OPTIONAL_POSTERIOR_VARS if k in table.index]


def converged(
    table: Any, r_hat: float = R_HAT_BAR, ess: float = ESS_BAR, draws: int | None = None
) -> bool:
    """R-hat <= ``r_hat`` and bulk ESS >= ``ess`` for every judged summary, decided on the
    unrounded values (a NaN fails). With ``draws`` (chains x draws per chain), an ESS above
    it is read as ``draws`` (as the table's ``*`` says): short runs overestimate the ESS,
    and no verdict rests on more effective draws than there are draws."""
    names = judged(table)
    r_hats = np.asarray(table.loc[names, "r_hat"], dtype=float)
    sizes = np.asarray(table.loc[names, "ess_bulk"], dtype=float)
    if draws is not None:
        sizes = np.minimum(sizes, float(draws))
    return bool((r_hats <= r_hat).all() and (sizes >= ess).all())  # NaN compares False


def plan(
    table: Any,
    draws: int,
    seconds_per_sweep: float,
    r_hat: float = R_HAT_BAR,
    ess: float = ESS_BAR,
    chains: int = 1,
) -> tuple[int, float]:
    """Estimated further sweeps (and minutes) to reach ``r_hat`` and bulk ``ess``.

    Assumes the chains keep mixing at the measured rate: ESS grows in proportion to
    the draws, and R-hat - 1 shrinks like 1 / draws. A chain stuck in one mode breaks
    both assumptions, so the estimate is a lower bound to check, not a promise. An ESS
    above the ``chains x draws`` draws (ArviZ's estimate exceeds them for anticorrelated
    draws, and short runs overestimate) is counted as the draws: the plan never
    extrapolates from more effective draws than there are draws.
    Returns ``(more_sweeps, minutes)``; ``(0, 0.0)`` when both targets are met.
    """
    worst_ess = min(float(table.loc[judged(table), "ess_bulk"].min()), float(draws * chains))
    worst_rhat = float(table.loc[judged(table), "r_hat"].max())
    if not (worst_ess > 0 and np.isfinite(worst_rhat)):
        raise ValueError("R-hat or ESS is not finite (a chain never moved): no estimate")
    needed = max(draws * ess / worst_ess, draws * max(worst_rhat - 1.0, 0.0) / (r_hat - 1.0))
    more = max(int(np.ceil(needed)) - draws, 0)
    return more, more * seconds_per_sweep / 60.0


COLUMNS = ("mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail")


def hdi(values: np.ndarray, prob: float = 0.94) -> tuple[float, float]:
    """The narrowest interval holding ``prob`` of the pooled draws (ArviZ's HDI for one
    mode: of the sorted draws x, the pair (x[i], x[i + floor(prob * n)]) of least width)."""
    x = np.sort(np.asarray(values, dtype=float).ravel())
    inside = int(np.floor(prob * len(x)))
    widths = x[inside:] - x[: len(x) - inside]
    i = int(np.argmin(widths))
    return float(x[i]), float(x[i + inside])


def _diagnostics_table(posterior: Any, var_names: tuple[str, ...]) -> Any:
    """One row per variable of ``posterior`` (an xarray Dataset over ``(chain, draw)``)."""
    return diagnose({name: np.asarray(posterior[name], dtype=float) for name in var_names})


def diagnose(values: Mapping[str, np.ndarray]) -> Any:
    """Mean, sd, 94% HDI, MCSE, bulk and tail ESS and R-hat of each ``[chain, draw]`` array
    (a DataFrame, one row per name): the summary table's numbers, which the verdict reads,
    also for the stop rule's checks on draws held in memory (:mod:`pyro_mlm.run.until`)."""
    import pandas as pd

    rows = {}
    for name, array in values.items():
        array = np.asarray(array, dtype=float)
        enough = array.shape[1] >= MIN_DRAWS
        low, high = hdi(array)
        row = {"mean": array.mean(), "sd": array.std(ddof=1), "hdi_3%": low, "hdi_97%": high}
        diagnostics = dict.fromkeys(("mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"))
        if enough:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # constant chains: NaN
                diagnostics = {
                    "mcse_mean": arviz_compat.mcse(array, "mean"),
                    "mcse_sd": arviz_compat.mcse(array, "sd"),
                    "ess_bulk": arviz_compat.ess(array, "bulk"),
                    "ess_tail": arviz_compat.ess(array, "tail"),
                    "r_hat": arviz_compat.rhat(array),
                }
        rows[name] = {**row, **diagnostics}
    return pd.DataFrame.from_dict(rows, orient="index", dtype=float)


def draws_per_chain(idata: Any) -> int:
    """Draws per chain of the posterior (either ArviZ line's object)."""
    return int(arviz_compat.dataset(idata, "posterior").sizes["draw"])
