"""ArviZ bridge: InferenceData from a finished run, and convergence summaries.

Token ids are integers and permutation-invariant labels, so R-hat and ESS are computed
on float summaries of the chain instead: the energy and the Hamming distance to the
chain's start. (Pyro's ``MCMC.summary()`` calls ``.var()`` on integer sites and
``arviz.from_pyro`` needs a trace-based kernel; neither fits this sampler.)
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

import numpy as np
import torch

SUMMARY_VARS = ("energy", "hamming")
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


def draws_by_chain(mcmc: Any) -> dict[str, np.ndarray]:
    """Per-draw arrays ``[chain, draw, ...]`` from a finished ``pyro.infer.MCMC`` run.

    Chains are pyro's chains times the kernel's vectorised chains (pyro chain ``p``,
    vectorised chain ``c`` becomes chain ``p * C + c``).
    """
    from pyro_mlm.kernel import SamplerKernel

    if not isinstance(getattr(mcmc, "kernel", None), SamplerKernel):
        raise TypeError(
            "to_inference_data expects a pyro.infer.MCMC that ran a pyro_mlm kernel "
            "(MaskedMH or MaskedGibbs, or any SamplerKernel), "
            f"got {type(mcmc).__name__}"
        )
    diags = getattr(mcmc, "_diagnostics", None)
    if not diags or any(d is None for d in diags) or mcmc._samples is None:
        raise ValueError("the MCMC has no samples yet: call mcmc.run() first")
    tokens = mcmc.get_samples(group_by_chain=True)["tokens"]  # [P, S, (C,) L]
    if tokens.dim() == 3:
        tokens = tokens.unsqueeze(2)
    pyro_chains, draws, chains, length = tokens.shape
    tokens = tokens.permute(0, 2, 1, 3).reshape(pyro_chains * chains, draws, length)

    def stacked(key: str) -> np.ndarray:
        rows = [d[key].reshape(draws, chains).T for d in diags]  # [C, S] each
        return torch.cat(rows).double().numpy()

    start = torch.cat([d["initial_tokens"].reshape(chains, length) for d in diags])
    distance = hamming(tokens, start.unsqueeze(1))
    temperature = float(diags[0]["temperature"])
    energy = stacked("energy")
    mlm = mcmc.kernel.energy.mlm
    sequence = np.array([[mlm.decode(row) for row in chain] for chain in tokens], dtype=object)
    return {
        "tokens": tokens.numpy(),
        "sequence": sequence,
        "energy": energy,
        "hamming": distance.double().numpy(),
        "lp": log_density(energy, temperature),
        "acceptance_rate": stacked("acceptance_rate"),
        "is_novel": stacked("is_novel"),
        "accept_prob": stacked("accept_prob"),
        **{k: stacked(k) for k in ("rows", "seconds") if diags[0][k].numel()},
    }


def to_inference_data(mcmc: Any) -> Any:
    """ArviZ ``InferenceData`` of a ``MaskedMH`` / ``MaskedGibbs`` run.

    Groups
    ------
    posterior
        ``tokens`` (chain, draw, position) int64; ``sequence`` (the decoded text);
        ``energy`` (total energy, not
        divided by temperature); ``hamming`` (positions differing from the chain's
        start).
    sample_stats
        ``lp`` (:math:`-E/T`, the log target up to a constant; ``-energy`` at
        :math:`T = 1`), ``acceptance_rate`` and ``is_novel`` (fractions of the
        draw's proposals accepted / accepted and new), ``accept_prob`` (mean
        :math:`\\min(1, \\alpha)`).

    >>> idata = to_inference_data(mcmc)                          # doctest: +SKIP
    >>> summary(idata)                                          # doctest: +SKIP
    """
    data = draws_by_chain(mcmc)
    first = torch.as_tensor(data["tokens"][0, 0])
    return inference_data_from_draws(data, residue=mcmc.kernel.energy.mlm.residue_numbers(first))


def inference_data_from_draws(data: dict[str, np.ndarray], residue: Any = None) -> Any:
    """ArviZ ``InferenceData`` from per-draw arrays ``[chain, draw, ...]``.

    ``data`` holds ``tokens``, ``energy`` and ``hamming`` and any of ``sequence`` and
    ``free_region`` (strings) for the posterior, and any of ``lp``,
    ``acceptance_rate``, ``is_novel``, ``accept_prob`` (sample stats), as
    :func:`draws_by_chain` returns them or as the command line reads them back from
    ``samples.jsonl``. ``residue [L]``, when given, becomes a coordinate of the
    ``position`` axis: the 1-based content numbering that ``--free`` uses (0 at
    special tokens).
    """
    missing = {"tokens", "energy", "hamming"} - set(data)
    if missing:
        raise ValueError(f"draws lack {sorted(missing)}")
    variables = ("tokens", "sequence", "free_region", "energy", "hamming")
    posterior = {k: np.asarray(data[k]) for k in variables if k in data}
    for key in ("sequence", "free_region"):
        if key in posterior:  # fixed-width unicode, which netCDF stores without pickling
            posterior[key] = posterior[key].astype(str)
    names = ("lp", "acceptance_rate", "is_novel", "accept_prob", "rows", "seconds", "swap_rate")
    stats = {k: np.asarray(data[k]) for k in names if k in data}
    dims = {"tokens": ["position"]}
    az = _arviz()
    with warnings.catch_warnings():
        # a short run (fewer draws than chains) is valid; ArviZ suspects a transposed array
        warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
        if _arviz_major() >= 1:  # pragma: no cover - ArviZ 1.x needs Python >= 3.12
            idata = az.from_dict({"posterior": posterior, "sample_stats": stats}, dims=dims)
        else:
            idata = az.from_dict(posterior=posterior, sample_stats=stats, dims=dims)
    if residue is not None:
        numbers = np.asarray(residue, dtype=np.int64)
        idata.posterior = idata.posterior.assign_coords(residue=("position", numbers))
    return idata


def summary(
    idata: Any, var_names: tuple[str, ...] = SUMMARY_VARS, seconds: float | None = None
) -> Any:
    """Mean, sd, HDI, MCSE, bulk and tail ESS and R-hat of float summaries (a DataFrame).

    With the cost recorded (``rows`` per draw in ``sample_stats``), also the bulk ESS per
    1000 masked rows of the kept draws, and with their wall time (``seconds`` per draw
    in ``sample_stats``, or the total ``seconds`` given) the bulk ESS per minute: the
    numbers to compare samplers by. With replica exchange, one row ``swap_rate[r]`` per pair of
    neighbouring replicas holds its mean swap rate. With fewer than ``MIN_DRAWS`` (4)
    draws per chain, MCSE, ESS and R-hat cannot be computed and are NaN (the caller
    says why: see :func:`draws_per_chain`).
    """
    table = _diagnostics_table(idata, var_names)
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and "rows" in stats:
        rows = float(np.asarray(stats["rows"]).sum())
        table["ess_per_1k_rows"] = table["ess_bulk"] / (rows / 1000) if rows else np.nan
    if seconds is None and stats is not None and "seconds" in stats:
        seconds = float(np.asarray(stats["seconds"]).mean(axis=0).sum())  # shared by chains
    if seconds:
        table["ess_per_min"] = table["ess_bulk"] / (seconds / 60)
    if stats is not None and "swap_rate" in stats:
        rates = np.asarray(stats["swap_rate"]).reshape(-1, stats["swap_rate"].shape[-1])
        for pair, rate in enumerate(rates.mean(0)):
            table.loc[f"swap_rate[{pair}-{pair + 1}]", "mean"] = float(rate)
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
