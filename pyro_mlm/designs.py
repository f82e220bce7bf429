r"""What a design campaign reads off the draws: ranked designs, marginals, diversity.

All from the draws after warm-up (``samples.jsonl``), so they estimate the target:

- **designs**: the distinct sequences with their count and frequency (the posterior
  estimate of each), the first draw that saw them, mean energy, each expert's energy and
  the Hamming distance to the start over the free positions; sorted by frequency, energy
  breaking ties;
- **marginals**: per free position, the frequency :math:`f_{t,a}` of each token :math:`a`
  and the entropy :math:`H_t = -\sum_a f_{t,a} \log_2 f_{t,a}` (bits);
- **diversity**: distinct designs, and the mean pairwise Hamming distance over all pairs of
  draws, computed exactly from the marginals:
  :math:`\bar d = \frac{N}{N-1} \sum_t \big(1 - \sum_a f_{t,a}^2\big)`.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pyro_mlm.vocabulary import Vocabulary


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
    from pyro_mlm.diagnostics import MIN_DRAWS, _arviz

    chains, draws = indicator.shape
    p = float(indicator.mean())
    n = float("nan")
    if draws >= MIN_DRAWS and indicator.std(axis=1).max() > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            n = float(_arviz().ess(indicator.astype(float), method="bulk"))
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
) -> list[Design]:
    """Distinct sequences of ``tokens [C, S, L]``, most frequent first.

    ``energy [C, S]``; ``free [C, L]``; ``start [L]`` the start the Hamming distance and
    the mutations are counted from; ``expert_energies(ids [D, L]) -> {name: [D]}`` for the
    distinct ones; ``labels`` the designer's labels and regions of chain 0's free
    positions (:func:`pyro_mlm.sites.label_free`): mutations are written in them, and a
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
                hamming_to_start=int(((row != start) & mask).sum()),
                experts={name: float(values[i]) for name, values in extra.items()},
                mutations=mutation_list(row, start, mask, vocab, labels),
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


def write_designs(designs: Sequence[Design], csv_path: str, fasta_path: str) -> None:
    """``designs.csv`` (one row per design, one column per expert) and ``designs.fasta``."""
    names = sorted({k for d in designs for k in d.experts})
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["rank", "sequence", "free_region", "mutations", "count", "frequency",
             "frequency_low", "frequency_high", "ess", "first_chain", "first_draw", "energy",
             "hamming_to_start", *names]
        )  # fmt: skip
        for rank, d in enumerate(designs, 1):
            out.writerow(
                [rank, d.sequence, d.free_region, d.mutations, d.count, f"{d.frequency:.6g}",
                 f"{d.frequency_low:.6g}", f"{d.frequency_high:.6g}", f"{d.ess:.1f}",
                 d.first_chain, d.first_draw, f"{d.energy:.6g}", d.hamming_to_start,
                 *(f"{d.experts[n]:.6g}" for n in names)]
            )  # fmt: skip
    with open(fasta_path, "w", encoding="utf-8") as handle:
        for rank, d in enumerate(designs, 1):
            handle.write(
                f">design_{rank} count={d.count} frequency={d.frequency:.6g} "
                f"energy={d.energy:.6g} hamming_to_start={d.hamming_to_start}\n{d.sequence}\n"
            )


def marginals(
    tokens: np.ndarray, free: np.ndarray, vocab: Vocabulary
) -> tuple[list[int], list[str], np.ndarray]:
    """Frequencies ``[T, K]`` of each proposable token at each free position of chain 0's
    mask, with the positions' residue numbers and the tokens' text."""
    import torch

    flat = tokens.reshape(-1, tokens.shape[-1])
    positions = np.flatnonzero(free[0])
    ids = vocab.proposable_ids.tolist()
    column = {t: k for k, t in enumerate(ids)}
    freq = np.zeros((len(positions), len(ids)))
    for j, t in enumerate(positions):
        values, counts = np.unique(flat[:, t], return_counts=True)
        for v, n in zip(values.tolist(), counts.tolist(), strict=True):
            if v in column:
                freq[j, column[v]] = n
    freq /= max(flat.shape[0], 1)
    numbers = vocab.residue_numbers(torch.as_tensor(flat[0]))[positions].tolist()
    return numbers, [vocab.tokens_text([i]) for i in ids], freq


def entropy_bits(freq: np.ndarray) -> np.ndarray:
    """``[T]`` Shannon entropy (bits) of each row of frequencies."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(freq > 0, -freq * np.log2(np.where(freq > 0, freq, 1)), 0.0)
    return terms.sum(-1)


def mean_pairwise_hamming(freq: np.ndarray, draws: int) -> float:
    """Mean Hamming distance over all pairs of ``draws`` draws, from the marginals."""
    if draws < 2:
        return 0.0
    return float((1 - (freq**2).sum(-1)).sum() * draws / (draws - 1))


def write_marginals(
    path: str,
    numbers: Sequence[int],
    letters: Sequence[str],
    freq: np.ndarray,
    start: Sequence[str],
    labels: dict[str, Any] | None = None,
) -> None:
    """``marginals.csv``: position (1-based residue), its label and region in the run's
    numbering (``labels``, :func:`pyro_mlm.sites.label_free`; the residue number and no
    region without one), start token, entropy (bits), one column per token."""
    entropy = entropy_bits(freq)
    names, regions = _position_labels(numbers, labels)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["position", "label", "region", "start", "entropy_bits", *letters])
        for j, number in enumerate(numbers):
            out.writerow(
                [number, names[j], regions[j], start[j] if j < len(start) else "",
                 f"{entropy[j]:.4f}", *(f"{f:.6g}" for f in freq[j])]
            )  # fmt: skip


def _position_labels(
    numbers: Sequence[int], labels: dict[str, Any] | None
) -> tuple[list[str], list[str]]:
    """The run's labels and regions of these positions, or their residue numbers."""
    if labels and len(labels.get("labels", [])) == len(numbers):
        return list(labels["labels"]), list(labels["regions"])
    return [str(n) for n in numbers], [""] * len(numbers)


def plot_logo(
    path: str,
    numbers: Sequence[int],
    letters: Sequence[str],
    freq: np.ndarray,
    start: Sequence[str],
    labels: dict[str, Any] | None = None,
) -> None:
    """``logo.png``: a sequence logo (information in bits) of the free positions, the
    start's residue at each position outlined and written under the axis with the
    position's label (IMGT or Kabat number where ANARCI numbered the chain); dashed lines
    mark the boundaries between regions (CDRs), each named above the logo."""
    import matplotlib

    matplotlib.use("Agg")
    import logomaker
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(freq, columns=list(letters))
    frame = frame.loc[:, frame.sum(axis=0) > 0] if frame.to_numpy().sum() else frame
    info = logomaker.transform_matrix(frame, from_type="probability", to_type="information")
    width = max(4.0, 0.45 * len(numbers) + 1.5)
    fig, ax = plt.subplots(figsize=(width, 2.8), constrained_layout=True)
    with warnings.catch_warnings():  # tokens outside the amino-acid colours are drawn black
        warnings.simplefilter("ignore")
        logo = logomaker.Logo(info, ax=ax, color_scheme="chemistry", vpad=0.05)
        marked = "".join(c if c in frame.columns else " " for c in start[: len(numbers)])
        logo.style_glyphs_in_sequence(
            sequence=marked.ljust(len(numbers)), edgecolor="black", edgewidth=1.2
        )
    names, regions = _position_labels(numbers, labels)
    ax.set_xticks(range(len(numbers)))
    ax.set_xticklabels([f"{s}\n{n}" for s, n in zip(start, names, strict=False)], fontsize=8)
    ax.set_ylabel("bits")
    scheme = (labels or {}).get("how", "positions")
    numbered = f"{scheme.split('-')[-1].upper()} numbering" if "anarci" in scheme else "residues"
    ax.set_title(f"free positions after warm-up ({numbered}; start residue outlined, and below)")
    top = max(math.log2(max(len(frame.columns), 2)), 0.1)
    ax.set_ylim(0, top * 1.12 if any(regions) else top)
    begin = 0
    for k in range(1, len(regions) + 1):  # one span per run of equal regions
        if k == len(regions) or regions[k] != regions[begin]:
            if regions[begin]:
                ax.text((begin + k - 1) / 2, top * 1.06, regions[begin], ha="center",
                        va="center", fontsize=8)  # fmt: skip
            if k < len(regions):
                ax.axvline(k - 0.5, color="0.5", lw=0.8, ls="--")
            begin = k
    fig.savefig(path, dpi=120)
    plt.close(fig)
