"""The end of a run: its outputs rebuilt from its ``samples.jsonl`` (InferenceData, summary,
designs), the room ``report/`` doing the computing and drawing.

:func:`write_report` reads the draws back, computes what the report files show (the
InferenceData, the diagnostics table, the ranked designs, the marginals, the diversity)
once, and hands them to every writer of the artifact registry
(:mod:`pyro_mlm.run.artifacts`, which lists the files and what each holds).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pyro_mlm.design.sites import label_free
from pyro_mlm.report.designs import Design, rank_designs
from pyro_mlm.report.diagnostics import inference_data_from_draws, log_density, summary
from pyro_mlm.report.marginals import entropy_bits, marginals, mean_pairwise_hamming
from pyro_mlm.run.artifacts import SAMPLES_FILE, Report, write_all
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.run.store import read_draws
from pyro_mlm.run.until import burn_in
from pyro_mlm.target import expert_name

if TYPE_CHECKING:
    import torch

    from pyro_mlm.models.vocabulary import Vocabulary


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
    designs: list[Design] | None = None
    diversity: dict[str, float] | None = None
    # chain 0's start's energy over the run's region, by the draws' measure (None where
    # the start was filled from mask tokens)
    start_energy: float | None = None
    # why the run ended before its cap: "converged" (the stop rule), "budget" (--max-minutes)
    stopped: str = ""
    check_seconds: float = 0.0  # the stop rule's checks, in all
    burn_in: int = 0  # leading written draws the report dropped (the stop rule's warm-up)


def write_report(
    directory: str,
    spec: RunSpec,
    vocab: Vocabulary,
    free: torch.Tensor,
    completed: bool,
    seconds: float,
    rates: tuple[float, float],
    sampling_seconds: float | None = None,
    start: torch.Tensor | None = None,
    experts: Sequence[Any] = (),
) -> RunResult:
    """Write every report file of the artifact registry from ``samples.jsonl``.

    ``free [C, L]`` is the run's free mask; ``rates`` the acceptance and novel rates;
    ``sampling_seconds`` the wall time of the kept sweeps over every session (kept out
    of ``samples.jsonl`` so that a replayed run's draws stay byte-identical).
    """
    data = read_draws(os.path.join(directory, SAMPLES_FILE), spec.chains)
    drop = 0
    if data is not None and spec.until_converged:  # the stop rule's burn-in, as it judged
        drop = burn_in(spec.warmup, data["energy"].shape[1])
        data = {name: values[:, drop:] for name, values in data.items()}
    draws = 0 if data is None else data["energy"].shape[1]
    table = idata = designs = diversity = None
    variable = None
    lengths = spec.length_range
    if data is not None and lengths:  # the region left-aligned, gaps (pads) after it
        from pyro_mlm.region.layout import Region

        assert vocab.pad_token_id is not None  # the run's checks refuse --lengths without one
        variable = Region.of(free.cpu(), lengths, vocab.pad_token_id)
        data["tokens"] = variable.align(data["tokens"])
        free = variable.aligned_mask(free.shape[0])
        start = None if start is None else _as_tensor(variable.align(start.cpu().numpy()))
    if data is not None:
        data["lp"] = log_density(data["energy"], spec.temperature)
        data["free_region"] = free_regions(data["tokens"], free.cpu().numpy(), vocab)
        first = data["tokens"][0, 0]
        residue = vocab.residue_numbers(_as_tensor(first)).numpy()
        idata = inference_data_from_draws(data, residue=residue)
        table = summary(idata, seconds=sampling_seconds)
        if variable is not None:
            table = length_marginal(table, data["length"], variable.lengths)
        begin = data["tokens"][0, 0] if start is None else start[0].cpu().numpy()
        labels = spec.resolved_free or label_free(
            spec.free, _as_tensor(begin), free[0].cpu(), vocab, spec.numbering
        )
        if variable is not None:
            labels = {}  # the region's columns are slots of the aligned region, not residues
        designs, shown, diversity = design_summaries(
            data, free.cpu().numpy(), begin, vocab, experts, labels, variable is not None
        )
        for design in designs:  # numbered as in samples.jsonl, burn-in included
            design.first_draw += drop
        write_all(
            Report(
                directory,
                spec.warmup + drop,
                data,
                idata,
                table,
                designs,
                shown,
                labels,
                diversity,
            )
        )
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
        designs=designs,
        diversity=diversity,
        burn_in=drop,
    )


def design_summaries(
    data: dict[str, Any],
    free: np.ndarray,
    start: np.ndarray,
    vocab: Vocabulary,
    experts: Sequence[Any] = (),
    labels: dict[str, Any] | None = None,
    variable: bool = False,
) -> tuple[list[Design], tuple[Any, Any, Any, Any], dict[str, float]]:
    """The ranked designs, the marginals ``(numbers, letters, freq, start_text)`` and the
    diversity of the draws: what designs.*, marginals.csv, logo.png and diversity.csv show."""
    import torch

    soft = [e for e in experts if not getattr(e, "hard", False)]

    def expert_energies(ids: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for k, expert in enumerate(soft):
            describe = getattr(expert, "describe", None)
            name = describe() if callable(describe) else expert_name(expert, k, len(soft))
            device = getattr(getattr(vocab, "model", None), "device", "cpu")
            values = [
                expert(torch.as_tensor(ids[i : i + 256], device=device)).cpu().numpy()
                for i in range(0, len(ids), 256)
            ]
            out[name] = np.concatenate(values)
        return out

    tokens = data["tokens"]
    designs = rank_designs(
        tokens, data["energy"], free, start, vocab, expert_energies, labels, variable
    )
    numbers, letters, freq = marginals(tokens, free, vocab, gap=variable)
    start_text = [
        "-" if i == vocab.pad_token_id and variable else vocab.tokens_text([i])
        for i in start[free[0]].tolist()
    ]
    n = tokens.shape[0] * tokens.shape[1]
    diversity = {
        "distinct designs": float(len(designs)),
        "mean pairwise hamming": mean_pairwise_hamming(freq, n),
        "mean entropy per position (bits)": float(entropy_bits(freq).mean()),
    }
    return designs, (numbers, letters, freq, start_text), diversity


def length_marginal(table: Any, length: np.ndarray, lengths: tuple[int, int]) -> Any:
    """The summary table plus a row ``P(length=n)`` per length: its frequency over the kept
    draws, with a 95% interval and the effective draws behind it
    (:func:`~pyro_mlm.report.designs.frequency_interval` of the indicator)."""
    import pandas as pd

    from pyro_mlm.report.designs import frequency_interval

    rows = {}
    for n in range(lengths[0], lengths[1] + 1):
        indicator = (np.asarray(length) == n).astype(float)
        low, high, ess = frequency_interval(indicator)
        rows[f"P(length={n})"] = {
            "mean": float(indicator.mean()), "low_95": low, "high_95": high, "ess_bulk": ess,
        }  # fmt: skip
    return pd.concat([table, pd.DataFrame.from_dict(rows, orient="index")])


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
