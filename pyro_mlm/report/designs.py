r"""What a design campaign reads off the draws: the ranked designs.

From the draws after warm-up (``samples.jsonl``), so they estimate the target: the
distinct sequences with their count and frequency (the posterior estimate of each, with
an interval from the ESS), the first draw that saw them, mean energy, each expert's
energy and the Hamming distance to the start over the free positions; sorted by
frequency, energy breaking ties. Per-position marginals, diversity and the logo are in
:mod:`pyro_mlm.report.marginals`.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pyro_mlm.report.marginals import _position_labels

if TYPE_CHECKING:
    from pyro_mlm.models.vocabulary import Vocabulary


MAX_INTERVALS = 200  # designs given a frequency interval (the most frequent; each costs an ESS)


@dataclass
class Design:
    """One distinct sequence among the draws."""

    sequence: str
    free_region: str
    count: int
    frequency: float
    first_chain: int
    first_draw: int
    energy: float
    hamming_to_start: int
    experts: dict[str, float] = field(default_factory=dict)
    frequency_low: float = float("nan")  # 95% interval of the frequency (frequency_interval)
    frequency_high: float = float("nan")
    ess: float = float("nan")  # effective draws behind the interval
    mutations: str = ""  # against the start, in the run's labels: "D102E;G104S"
    length: int | None = None  # the region's length, in a run where it varies (--lengths)


def frequency_interval(indicator: np.ndarray, z: float = 1.96) -> tuple[float, float, float]:
    r"""A 95% interval for a design's posterior probability from its indicator ``[C, S]``.

    The Wilson score interval with the draws replaced by the effective sample size
    :math:`n_\text{eff}` of the indicator (ArviZ's bulk ESS, at most :math:`C S`):

    .. math::

        \frac{\hat p + z^2 / 2n \pm z \sqrt{\hat p (1 - \hat p) / n + z^2 / 4n^2}}
             {1 + z^2 / n}, \quad n = n_\text{eff}.

    Where the ESS cannot be computed (fewer than 4 draws per chain, or an indicator that
    never changes within any chain) each chain counts as one draw (:math:`n = C`), the
    cautious choice. Returns ``(low, high, n)``. The interval is only as good as the
    chains' convergence: with R-hat far from 1 the frequencies are not yet posterior
    probabilities, whatever their interval.
    """
    from pyro_mlm.report import arviz_compat
    from pyro_mlm.report.diagnostics import MIN_DRAWS

    chains, draws = indicator.shape
    p = float(indicator.mean())
    n = float("nan")
    if draws >= MIN_DRAWS and indicator.std(axis=1).max() > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            n = arviz_compat.ess(indicator, "bulk")
    if not np.isfinite(n) or n <= 0:
        n = float(chains)
    n = min(n, float(chains * draws))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half), n


def rank_designs(
    tokens: np.ndarray,
    energy: np.ndarray,
    free: np.ndarray,
    start: np.ndarray,
    vocab: Vocabulary,
    expert_energies: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
    labels: dict[str, Any] | None = None,
    variable: bool = False,
) -> list[Design]:
    """Distinct sequences of ``tokens [C, S, L]``, most frequent first.

    ``variable``: the region's length varies (``--lengths``; the region is left-aligned
    and pad ids fill its gaps): each design gets its ``length``, ``hamming_to_start`` is the
    edit distance of its region to the start's (an insertion or a deletion counts one) and
    the mutations are not listed (they need an alignment, not columns).

    ``energy [C, S]``; ``free [C, L]``; ``start [L]`` the start the Hamming distance and
    the mutations are counted from; ``expert_energies(ids [D, L]) -> {name: [D]}`` for the
    distinct ones; ``labels`` the designer's labels and regions of chain 0's free
    positions (:func:`pyro_mlm.design.sites.label_free`): mutations are written in them, and a
    free region spanning several regions (``--free cdrs``) is written region by region,
    separated by ``/``.
    """
    chains, draws, _ = tokens.shape
    found: dict[bytes, list[int | float]] = {}  # key -> [count, chain, draw, energy sum]
    rows: dict[bytes, np.ndarray] = {}
    for s in range(draws):  # draw-major: "first seen" is the earliest draw over chains
        for c in range(chains):
            row = tokens[c, s]
            key = row.tobytes()
            if key not in found:
                found[key] = [0, c, s, 0.0]
                rows[key] = row
            entry = found[key]
            entry[0] = int(entry[0]) + 1
            entry[3] = float(entry[3]) + float(energy[c, s])
    keys = list(found)
    ids = np.stack([rows[k] for k in keys]) if keys else np.zeros((0, tokens.shape[-1]), int)
    extra = expert_energies(ids) if expert_energies is not None and keys else {}
    total = chains * draws
    mask = free[0]
    gap = vocab.pad_token_id

    def distance(row: np.ndarray) -> int:
        if not variable:
            return int(((row != start) & mask).sum())
        from pyro_mlm.region.layout import edit_distance

        ours, theirs = row[mask], start[mask]
        return edit_distance(ours[ours != gap].tolist(), theirs[theirs != gap].tolist())

    designs = []
    for i, key in enumerate(keys):
        entry = found[key]
        count, c, s, energy_sum = int(entry[0]), int(entry[1]), int(entry[2]), float(entry[3])
        row = rows[key]
        designs.append(
            Design(
                sequence=vocab.decode(row.tolist()),
                free_region=region_groups(row, free[int(c)], vocab, labels),
                count=int(count),
                frequency=int(count) / total,
                first_chain=int(c),
                first_draw=int(s),
                energy=float(energy_sum) / int(count),
                hamming_to_start=distance(row),
                experts={name: float(values[i]) for name, values in extra.items()},
                mutations="" if variable else mutation_list(row, start, mask, vocab, labels),
                length=int((row[mask] != gap).sum()) if variable else None,
            )
        )
    order = sorted(range(len(designs)), key=lambda i: (-designs[i].count, designs[i].energy))
    for i in order[:MAX_INTERVALS]:
        indicator = (tokens == rows[keys[i]]).all(-1)  # [C, S]: the draws that are design i
        d = designs[i]
        d.frequency_low, d.frequency_high, d.ess = frequency_interval(indicator)
    return [designs[i] for i in order]


def _labels_of(
    row: np.ndarray, mask: np.ndarray, vocab: Vocabulary, labels: dict[str, Any] | None
) -> tuple[list[str], list[str]]:
    """Labels and regions of the positions of ``mask`` (residue numbers without ``labels``)."""
    import torch

    numbers = vocab.residue_numbers(torch.as_tensor(np.asarray(row, dtype=np.int64)))
    return _position_labels(numbers[torch.as_tensor(mask)].tolist(), labels)


def mutation_list(
    row: np.ndarray,
    start: np.ndarray,
    mask: np.ndarray,
    vocab: Vocabulary,
    labels: dict[str, Any] | None = None,
) -> str:
    """``"D102E;G104S"``: start token, label, new token at each free position that differs."""
    names, _ = _labels_of(start, mask, vocab, labels)
    positions = np.flatnonzero(mask)
    return ";".join(
        f"{vocab.tokens_text([int(start[t])])}{name}{vocab.tokens_text([int(row[t])])}"
        for t, name in zip(positions, names, strict=True)
        if row[t] != start[t]
    )


def region_groups(
    row: np.ndarray, mask: np.ndarray, vocab: Vocabulary, labels: dict[str, Any] | None = None
) -> str:
    """The free region's text; with several labelled regions, one group each, ``/`` between."""
    positions = np.flatnonzero(mask)
    _, regions = _labels_of(row, mask, vocab, labels)
    if len(set(regions)) <= 1:
        return vocab.region_text(row[positions].tolist())
    groups: list[list[int]] = []
    for k, t in enumerate(positions):
        if k == 0 or regions[k] != regions[k - 1]:
            groups.append([])
        groups[-1].append(int(row[t]))
    return " / ".join(vocab.region_text(g) for g in groups)


def write_designs(
    designs: Sequence[Design], csv_path: str, fasta_path: str, numbering: str = "residue"
) -> None:
    """``designs.csv`` and ``designs.fasta``."""
    write_designs_csv(designs, csv_path, numbering)
    write_designs_fasta(designs, fasta_path)


def write_designs_csv(designs: Sequence[Design], csv_path: str, numbering: str = "residue") -> None:
    """``designs.csv``: one row per design, one column per soft expert's energy. The
    mutations' column names their numbering once (``mutations_imgt``, ``mutations_kabat``
    or ``mutations_residue``: :func:`~pyro_mlm.report.marginals.numbering_name`)."""
    names = sorted({k for d in designs for k in d.experts})
    lengths = any(d.length is not None for d in designs)  # a run over variable lengths
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["rank", "sequence", "free_region", *(["length"] if lengths else []),
             f"mutations_{numbering}",
             "count", "frequency", "frequency_low", "frequency_high", "ess", "first_chain",
             "first_draw", "energy", "hamming_to_start", *names]
        )  # fmt: skip
        for rank, d in enumerate(designs, 1):
            out.writerow(
                [rank, d.sequence, d.free_region, *([d.length] if lengths else []),
                 d.mutations, d.count, f"{d.frequency:.6g}",
                 f"{d.frequency_low:.6g}", f"{d.frequency_high:.6g}", f"{d.ess:.1f}",
                 d.first_chain, d.first_draw, f"{d.energy:.6g}", d.hamming_to_start,
                 *(f"{d.experts[n]:.6g}" for n in names)]
            )  # fmt: skip


def write_designs_fasta(designs: Sequence[Design], fasta_path: str) -> None:
    """``designs.fasta``: the designs, most frequent first, with their statistics."""
    with open(fasta_path, "w", encoding="utf-8") as handle:
        for rank, d in enumerate(designs, 1):
            handle.write(
                f">design_{rank} count={d.count} frequency={d.frequency:.6g} "
                f"energy={d.energy:.6g} hamming_to_start={d.hamming_to_start}\n{d.sequence}\n"
            )
