r"""Per-position marginals of the draws, their entropy and diversity, and the sequence logo.

- **marginals**: per free position, the frequency :math:`f_{t,a}` of each token :math:`a`
  and the entropy :math:`H_t = -\sum_a f_{t,a} \log_2 f_{t,a}` (bits);
- **diversity**: the mean pairwise Hamming distance over all pairs of draws, computed
  exactly from the marginals:
  :math:`\bar d = \frac{N}{N-1} \sum_t \big(1 - \sum_a f_{t,a}^2\big)`.
"""

from __future__ import annotations

import csv
import math
import textwrap
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pyro_mlm.models.vocabulary import Vocabulary


def marginals(
    tokens: np.ndarray, free: np.ndarray, vocab: Vocabulary, gap: bool = False
) -> tuple[list[int], list[str], np.ndarray]:
    """Frequencies ``[T, K]`` of each proposable token at each free position of chain 0's
    mask, with the positions' residue numbers and the tokens' text.

    ``gap``: the region's length varies and its columns are the slots of the left-aligned
    region (pad ids where a draw's region is shorter): a last column ``-`` holds the share
    of draws whose region ends before the slot, and the numbers are the slots, 1..T."""
    import torch

    flat = tokens.reshape(-1, tokens.shape[-1])
    positions = np.flatnonzero(free[0])
    ids = vocab.proposable_ids.tolist() + ([vocab.pad_token_id] if gap else [])
    column = {t: k for k, t in enumerate(ids)}
    freq = np.zeros((len(positions), len(ids)))
    for j, t in enumerate(positions):
        values, counts = np.unique(flat[:, t], return_counts=True)
        for v, n in zip(values.tolist(), counts.tolist(), strict=True):
            if v in column:
                freq[j, column[v]] = n
    freq /= max(flat.shape[0], 1)
    if gap:
        letters = [vocab.tokens_text([i]) for i in ids[:-1]] + ["-"]
        return list(range(1, len(positions) + 1)), letters, freq
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
    numbering (``labels``, :func:`pyro_mlm.design.sites.label_free`; the residue number and no
    region without one), start token, entropy (bits), one column per token. The label's
    column names its numbering once: ``label_imgt``, ``label_kabat`` or ``label_residue``."""
    entropy = entropy_bits(freq)
    names, regions = _position_labels(numbers, labels)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        label = f"label_{numbering_name(labels)}"
        out.writerow(["position", label, "region", "start", "entropy_bits", *letters])
        for j, number in enumerate(numbers):
            out.writerow(
                [number, names[j], regions[j], start[j] if j < len(start) else "",
                 f"{entropy[j]:.4f}", *(f"{f:.6g}" for f in freq[j])]
            )  # fmt: skip


def numbering_name(labels: dict[str, Any] | None) -> str:
    """The numbering a run's position labels are in, for column names: ``imgt`` or
    ``kabat`` (ANARCI numbered the chain), else ``residue`` (1-based residue numbers: no
    ANARCI, a CDR-H3 found from its motifs, or ranges)."""
    how = str((labels or {}).get("how", "positions"))
    return how.split("-", 1)[1] if how.startswith("anarci-") else "residue"


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
    gaps = frame.pop("-").to_numpy() if "-" in frame.columns else None  # drawn as text
    frame = frame.loc[:, frame.sum(axis=0) > 0] if frame.to_numpy().sum() else frame
    empty = frame.sum(axis=1) < 1e-9  # a slot that was always a gap: no residue to draw
    frame.loc[empty, :] = 1.0 / frame.shape[1]  # uniform: zero bits, nothing drawn
    # a slot that is sometimes a gap: its residues given that it holds one (the gap's share
    # is written above it); logomaker would renormalise the row and print that it did
    frame = frame.div(frame.sum(axis=1), axis=0)
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
    if scheme == "motif":
        numbered = "residue numbers, CDR-H3 from motifs: no ANARCI"
    title = f"free positions after warm-up ({numbered}; start residue outlined, and below)"
    ax.set_title("\n".join(textwrap.wrap(title, max(30, int(width * 11)))), fontsize=9)
    top = max(math.log2(max(len(frame.columns), 2)), 0.1)
    if gaps is not None:  # a slot the region does not reach: its share, not a glyph
        for k, share in enumerate(gaps):
            if share > 0:
                ax.text(k, top * 0.98, f"gap\n{share:.0%}", ha="center", va="top",
                        fontsize=6, color="0.45")  # fmt: skip
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
