r"""Where a variable-length region sits in the rows chains are stored in, and the distance
between two regions.

Chains run side by side at one width :math:`W`: a row is the ``first`` tokens before the
region, the region's :math:`n \in [n_{\min}, n_{\max}]` tokens, the ``after`` fixed tokens
that follow it, then pad tokens up to :math:`W = \text{first} + n_{\max} + \text{after}`
(the model's attention mask hides them). :class:`Region` is that layout, one value; a row's
length is read off its pads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Region:
    """A free region whose length varies: it starts at ``first``, takes at most
    ``lengths[1]`` positions, and is followed by ``after`` fixed tokens and then by ``pad``
    tokens up to the stored width."""

    first: int
    after: int
    pad: int
    lengths: tuple[int, int]

    @classmethod
    def of(cls, free: torch.Tensor, lengths: tuple[int, int], pad: int) -> Region:
        """The region of padded start rows whose free mask is ``free [C, W]``."""
        first = region_start(free)
        after = free.shape[-1] - first - lengths[1]
        if after < 0:
            raise ValueError(f"the tokens are too short for a region of {lengths[1]}")
        return cls(first, after, pad, lengths)

    @property
    def width(self) -> int:
        """:math:`W`, the stored width of a row."""
        return self.first + self.lengths[1] + self.after

    def bounds(self, row: Sequence[int]) -> tuple[int, int]:
        """``(lo, hi)``: the region of one sequence of ids is ``row[lo:hi]``."""
        real = sum(1 for t in row if t != self.pad)
        return self.first, real - self.after

    def length_of(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[C]`` each row's region length, read off its pad tokens (``tokens [C, W]``)."""
        return torch.ne(tokens, self.pad).sum(-1) - self.first - self.after

    def mask(self, n: torch.Tensor) -> torch.Tensor:
        """``[C, W]`` the free mask of regions of lengths ``n [C]``."""
        span = torch.arange(self.width, device=n.device)
        return (span >= self.first) & (span < self.first + n[:, None])

    def align(self, tokens: np.ndarray) -> np.ndarray:
        """Rows ``[..., W]`` stored with pads at the end, rewritten with the region
        left-aligned in ``lengths[1]`` columns and its gaps (pads) after it, so that every
        fixed token keeps its column: ``A B C [SEP] [PAD]`` -> ``A B [PAD] C [SEP]`` (region
        ``B``, at most 2). Marginals and designs read the region's columns as slots
        1..MAX."""
        first, after, most = self.first, self.after, self.lengths[1]
        flat = np.asarray(tokens).reshape(-1, np.asarray(tokens).shape[-1])
        out = np.full_like(flat, self.pad)
        real = (flat != self.pad).sum(-1)
        for i, row in enumerate(flat):
            n = int(real[i]) - first - after
            out[i, : first + n] = row[: first + n]
            out[i, first + most : first + most + after] = row[first + n : first + n + after]
        return out.reshape(np.asarray(tokens).shape)

    def aligned_mask(self, chains: int) -> torch.Tensor:
        """``[C, W]`` the aligned region's columns (:meth:`align`)."""
        span = torch.arange(self.width)
        return ((span >= self.first) & (span < self.first + self.lengths[1])).expand(
            chains, self.width
        )


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance: the fewest substitutions, insertions and deletions from ``a``
    to ``b`` (mutations counted along the best alignment).

    >>> edit_distance([1, 2, 3], [1, 3]), edit_distance([1, 2], [2, 1])
    (1, 2)
    """
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def pad_region(
    tokens: torch.Tensor, free: torch.Tensor, most: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``[C, L]`` and free mask, padded with ``pad_id`` at the end to the width of a
    region of ``most`` positions: ``[C, L + most - n]`` (every chain's region has ``n``)."""
    counts = free.sum(-1)
    extra = most - int(counts.max())
    if extra < 0:
        raise ValueError(f"the start's free region has {int(counts.max())} positions, > {most}")
    pads = torch.full((tokens.shape[0], extra), pad_id, dtype=tokens.dtype, device=tokens.device)
    return torch.cat([tokens, pads], 1), torch.cat(
        [free, torch.zeros_like(pads, dtype=torch.bool)], 1
    )


def region_start(free: torch.Tensor) -> int:
    """The first position of the one contiguous free region every chain shares; a
    ``ValueError`` in one line otherwise (``--lengths`` needs one region)."""
    first = free.long().argmax(-1)
    counts = free.sum(-1)
    span = torch.arange(free.shape[1], device=free.device)
    contiguous = (span >= first[:, None]) & (span < (first + counts)[:, None])
    if not bool((contiguous == free).all()) or not bool((first == first[0]).all()):
        raise ValueError(
            "--lengths needs the free positions to be one contiguous region (e.g. --free "
            "98-110 or one CDR), starting at the same position in every chain"
        )
    return int(first[0])


def padded_start(
    tokens: torch.Tensor,
    free: torch.Tensor,
    lengths: tuple[int, int],
    pad_id: int | None,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start tokens and free mask ``[C, L]`` checked (one region, a pad token, lengths in
    range, and with ``limit`` the model's positions: ``L - n + MAX <= limit``, checked from
    the start's length alone, before anything is padded or allocated) and padded to the
    longest region (:func:`pad_region`)."""
    if pad_id is None:
        raise ValueError("--lengths needs a model with a pad token (to pad shorter chains)")
    region_start(free)
    counts = free.sum(-1)
    lo, hi = lengths
    fixed = tokens.shape[-1] - int(counts.min())  # tokens outside the region (specials too)
    if limit is not None and fixed + hi > limit:
        most = limit - fixed
        fits = f"the largest MAX that fits is {most}" if most >= lo else "no region length fits"
        raise ValueError(
            f"--lengths {lo}-{hi}: a region of {hi} makes the sequence {fixed + hi} tokens "
            f"long, but the model takes at most {limit} (special tokens included); {fits}"
        )
    if bool(((counts < lo) | (counts > hi)).any()):
        raise ValueError(
            f"the start's free region has {sorted(set(counts.tolist()))} positions, outside "
            f"--lengths {lo}-{hi}"
        )
    return pad_region(tokens, free, hi, pad_id)
