"""Which free position each chain proposes at next: random or systematic scan.

Pure functions of the free mask, a cursor and a generator; the cursor lives in the
chain state, so a checkpoint holds the scan exactly.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

Scan = Literal["random", "systematic"]
SCANS = ("random", "systematic")


class Sites(NamedTuple):
    """The free positions of ``C`` chains.

    Attributes
    ----------
    mask
        ``[C, L]`` bool, True where a chain may change its token.
    table
        ``[C, n_max]``: row ``c`` lists chain ``c``'s free positions in order (padded).
    counts
        ``[C]`` free positions per chain.
    """

    mask: torch.Tensor
    table: torch.Tensor
    counts: torch.Tensor


def sites_of(mask: torch.Tensor) -> Sites:
    """:class:`Sites` of a ``[C, L]`` free mask (every chain needs one free position)."""
    count = mask.sum(-1)
    order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True)
    return Sites(mask, order[:, : int(count.max())], count)


def next_positions(
    sites: Sites, cursor: torch.Tensor, scan: Scan, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positions [C], new cursor)``: one free position per chain.

    ``random`` draws an index uniformly from each chain's free positions (one uniform
    per chain); ``systematic`` takes index ``cursor mod count`` and advances the cursor.
    """
    count = sites.counts
    if scan == "random":
        u = torch.rand(count.shape, device=count.device, generator=generator)
        index = torch.minimum((u * count).long(), count - 1)
    else:
        index = cursor.to(count.device) % count
        cursor = cursor + 1
    return sites.table.gather(1, index.unsqueeze(1)).squeeze(1), cursor
