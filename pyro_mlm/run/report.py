"""A run's report, rebuilt from its ``samples.jsonl``: InferenceData, summary and plots.

``posterior.nc`` holds, per chain and draw, the token ids, the decoded sequence, the
free region's text, the energy and the Hamming distance to the start; its
``position`` axis carries a ``residue`` coordinate numbered like ``--free`` (1-based
over the sequence's content, 0 at special tokens). ``summary.csv`` holds the mean,
sd, HDI, MCSE, bulk and tail ESS and R-hat of the energy and the Hamming distance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pyro_mlm.diagnostics import inference_data_from_draws, log_density, summary
from pyro_mlm.plots import plot_energy_trace, plot_rank
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.run.store import SAMPLES_FILE, read_draws

if TYPE_CHECKING:
    import torch

    from pyro_mlm.vocabulary import Vocabulary


@dataclass(frozen=True)
class RunResult:
    """What a finished or interrupted run produced."""

    directory: str
    draws: int
    completed: bool
    seconds: float
    acceptance_rate: float
    novel_rate: float
    summary: Any
    idata: Any
    sampling_seconds: float | None = None


def write_report(
    directory: str,
    spec: RunSpec,
    vocab: Vocabulary,
    free: torch.Tensor,
    completed: bool,
    seconds: float,
    rates: tuple[float, float],
    sampling_seconds: float | None = None,
) -> RunResult:
    """Write posterior.nc, summary.csv, trace.png and rank.png from ``samples.jsonl``.

    ``free [C, L]`` is the run's free mask; ``rates`` the acceptance and novel rates;
    ``sampling_seconds`` the wall time of the kept sweeps over every session (kept out
    of ``samples.jsonl`` so that a replayed run's draws stay byte-identical).
    """
    data = read_draws(os.path.join(directory, SAMPLES_FILE), spec.chains)
    draws = 0 if data is None else data["energy"].shape[1]
    table = idata = None
    if data is not None:
        data["lp"] = log_density(data["energy"], spec.temperature)
        data["free_region"] = free_regions(data["tokens"], free.cpu().numpy(), vocab)
        first = data["tokens"][0, 0]
        residue = vocab.residue_numbers(_as_tensor(first)).numpy()
        idata = inference_data_from_draws(data, residue=residue)
        idata.to_netcdf(os.path.join(directory, "posterior.nc"))
        table = summary(idata, seconds=sampling_seconds)
        table.to_csv(os.path.join(directory, "summary.csv"))
        plot_energy_trace(idata, os.path.join(directory, "trace.png"), warmup=spec.warmup)
        if draws >= 2:
            plot_rank(idata, os.path.join(directory, "rank.png"))
    return RunResult(
        directory=directory,
        draws=draws,
        completed=completed,
        seconds=seconds,
        acceptance_rate=rates[0],
        novel_rate=rates[1],
        summary=table,
        idata=idata,
        sampling_seconds=sampling_seconds,
    )


def free_regions(tokens: np.ndarray, free: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """``[C, S]`` text of each draw's free positions (``tokens [C, S, L]``, ``free [C, L]``)."""
    out = np.empty(tokens.shape[:2], dtype=object)
    for c in range(tokens.shape[0]):
        for s in range(tokens.shape[1]):
            out[c, s] = vocab.region_text(tokens[c, s][free[c]].tolist())
    return out


def _as_tensor(row: np.ndarray) -> torch.Tensor:
    import torch

    return torch.as_tensor(np.asarray(row, dtype=np.int64))
