r"""The reference law of ``reference-tempering``: the MLM's sequential law :math:`q` over a
region, exactly sampleable and with a density of ``k`` batched rows (the swaps are
:func:`~.transitions.swap_neighbours`).

With :math:`\sigma_1 < \dots < \sigma_k` the free positions and the rest of the sequence
fixed,

.. math::

    q(X) = \prod_{j=1}^{k} q_j\big(x_{\sigma_j}\big), \qquad
    q_j = \operatorname{softmax} s_{\sigma_j}\big(X \text{ with } \sigma_j, \dots,
        \sigma_k \text{ masked}\big),

restricted like the proposals by the experts that restrict them: exactly sampleable
(:func:`draw_reference`, ``k`` dependent rows) and with a density of ``k`` masked rows in one
batched call (:func:`reference_log_prob`, row :math:`j` masking the positions from
:math:`\sigma_j` on). The sampler is :mod:`.reference`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from pyro_mlm.samplers.proposals import draw, proposal_log_probs, token_log_prob
from pyro_mlm.samplers.scan import Sites
from pyro_mlm.target import Target


class PathState(NamedTuple):
    """``C x R`` rows (row ``c * R + r`` is chain c, slot r): an
    :class:`~.transitions.MHState` plus each row's :math:`\\log q(X)`.

    Attributes
    ----------
    tokens, energy, logits, cursor, rows
        As :class:`~pyro_mlm.samplers.transitions.MHState`, per row.
    log_q
        ``[C R]`` :math:`\\log q(X)` of each row's sequence; NaN where slot 0 moved since it
        was last computed (filled in before the swaps read it).
    beta
        ``[C R]`` each row's path parameter :math:`\\beta_r` (not an inverse temperature).
    """

    tokens: torch.Tensor
    energy: torch.Tensor
    logits: torch.Tensor
    log_q: torch.Tensor
    beta: torch.Tensor
    cursor: torch.Tensor
    rows: torch.Tensor


def fill_order(sites: Sites, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sites [n, k], valid [n, k])``: the free positions of ``rows`` in fill order (left to
    right; padding slots repeat the first and are never filled or scored)."""
    table, count = sites.table[rows], sites.counts[rows]
    valid = torch.arange(table.shape[1], device=table.device) < count[:, None]
    return torch.where(valid, table, table[:, :1]), valid


def reference_log_prob(
    target: Target,
    proposable: torch.Tensor,
    tokens: torch.Tensor,
    sites: torch.Tensor,
    valid: torch.Tensor,
) -> torch.Tensor:
    r""":math:`\log q(X)` of ``tokens [n, L]``: ``k`` masked rows per sequence in one batched
    call, row :math:`j` with :math:`\sigma_j, \dots, \sigma_k` masked, scored at
    :math:`\sigma_j` (module docstring)."""
    n, k = sites.shape
    j = torch.arange(k, device=sites.device).repeat(n)  # row (i, j) is i * k + j
    seq = torch.arange(n, device=sites.device).repeat_interleave(k)
    keep = valid.flatten()
    seq, j = seq[keep], j[keep]
    rows = tokens[seq].clone()
    at = sites[seq]  # [m, k]
    hide = (torch.arange(k, device=sites.device)[None] >= j[:, None]) & valid[seq]
    rows.scatter_(1, at, torch.where(hide, target.mlm.mask_token_id, rows.gather(1, at)))
    position = at.gather(1, j[:, None])  # [m, 1]
    log_q = proposal_log_probs(target.conditionals_at(rows, position)[:, 0])
    terms = token_log_prob(log_q, tokens[seq].gather(1, position)[:, 0], proposable)
    return torch.zeros(n, dtype=terms.dtype, device=terms.device).index_add(0, seq, terms)


def draw_reference(
    target: Target,
    proposable: torch.Tensor,
    tokens: torch.Tensor,
    sites: torch.Tensor,
    valid: torch.Tensor,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X [n, L], log q(X) [n])``: a fresh draw of :math:`q` for each of ``tokens``'
    regions, filled left to right (``k`` dependent batched calls of ``n`` rows)."""
    n, k = sites.shape
    rows = tokens.clone()
    rows.scatter_(1, sites, torch.where(valid, target.mlm.mask_token_id, rows.gather(1, sites)))
    log_q = torch.zeros(n, device=tokens.device)
    for j in range(k):
        act = valid[:, j].nonzero().squeeze(-1)
        at = sites[act, j]
        step = proposal_log_probs(target.conditionals_at(rows[act], at[:, None])[:, 0])
        choice = draw(step, generator)
        log_q[act] += step.gather(-1, choice[:, None])[:, 0]
        rows[act, at] = proposable[choice]
    return rows, log_q
