r"""Block Metropolis-Hastings: change ``k`` free positions at once, at single-site cost.

A proposal picks a block :math:`B` of :math:`k` free positions (the scan's position
plus :math:`k-1` others drawn at random, or a contiguous window of free positions
starting there; :math:`k` fixed or drawn per proposal from a set), draws each new token
from its single-site masked conditional of the *current* state, and accepts with

.. math::

    \alpha = e^{\beta (E(X) - E(X'))}\,
        \frac{\prod_{t \in B} q(x_t \mid X'_{\setminus t})}
             {\prod_{t \in B} q(x'_t \mid X_{\setminus t})}.

Derivation: the proposal kernel is
:math:`Q(X \to X') = P(B) \prod_{t \in B} q(x'_t \mid X_{\setminus t})`, the tokens at
the block drawn independently from the current state's conditionals (cached). The
block's law :math:`P(B)` depends only on the scan, never on the tokens, so it is the
same for the reverse move :math:`X' \to X`, which draws each :math:`x_t` from
:math:`X'`'s conditionals: :math:`Q(X' \to X) = P(B) \prod_{t \in B} q(x_t \mid
X'_{\setminus t})`. Detailed balance with :math:`\pi \propto e^{-\beta E}` then gives
:math:`\alpha = \pi(X') Q(X' \to X) / (\pi(X) Q(X \to X'))` as above. The reverse
conditionals are exactly what the evaluation of :math:`X'` returns (its energy needs
every masked row of :math:`X'` anyway), so a block proposal costs ``|free|`` rows, like
a single-site one. With :math:`k = 1`, :math:`X'_{\setminus t} = X_{\setminus t}` and the
reverse term is read from the cached row: block MH with ``block_size=1`` is single-site
MH, draw for draw.
"""

from __future__ import annotations

from typing import Any

import torch

from pyro_mlm.samplers.mh import MH
from pyro_mlm.samplers.options import SAMPLER_OPTIONS, parse_mode, parse_sizes
from pyro_mlm.samplers.proposals import draw, proposal_log_probs, token_log_prob
from pyro_mlm.samplers.transitions import (
    MHInfo,
    MHState,
    accept_moves,
    log_acceptance_ratio,
    uniform,
)


class BlockMH(MH):
    """Block MH over :class:`~.transitions.MHState` (the module docstring derives the ratio).

    Parameters
    ----------
    block_size
        ``k``, or a set of sizes drawn uniformly per proposal and chain (``(1, 2)``);
        a chain with fewer free positions uses all of them.
    block_mode
        ``"random"`` (the scan's position and ``k - 1`` others at random) or
        ``"window"`` (``k`` consecutive free positions from the scan's position, moved
        back to fit at the end).
    """

    name = "block"
    OPTIONS = SAMPLER_OPTIONS["block"]

    def __init__(
        self,
        target: Any,
        free: torch.Tensor,
        *,
        block_size: int | tuple[int, ...] | str = 2,
        block_mode: str = "random",
        **settings: Any,
    ) -> None:
        super().__init__(target, free, **settings)
        self.block_size = parse_sizes(block_size)
        self.block_mode = parse_mode(block_mode)

    def propose(
        self, state: MHState, positions: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[MHState, MHInfo]:
        if self.block_size == (1,):
            return super().propose(state, positions, generator)
        sites, valid = self.block(positions, generator)
        return self.block_step(state, positions, sites, valid, generator)

    def block(
        self, first: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sites [C, k_max], valid [C, k_max])``: each chain's block, starting at ``first``."""
        table, count = self.sites.table, self.sites.counts
        chains, n_max = table.shape
        sizes = torch.tensor(self.block_size, device=count.device)
        if len(self.block_size) == 1:
            k = sizes.expand(chains)
        else:
            pick = uniform(chains, count.device, generator) * len(self.block_size)
            k = sizes[pick.long().clamp(max=len(self.block_size) - 1)]
        k = torch.minimum(k, count)
        k_max = int(k.max())
        slots = torch.arange(k_max, device=count.device)
        valid = slots.unsqueeze(0) < k.unsqueeze(1)
        index_of_first = (table == first.unsqueeze(1)).long().argmax(1)
        if self.block_mode == "window":
            start = torch.minimum(index_of_first, count - k)
            index = (start.unsqueeze(1) + slots).clamp(max=n_max - 1)
        else:
            keys = torch.rand(chains, n_max, device=count.device, generator=generator)
            keys = keys.masked_fill(torch.arange(n_max, device=count.device) >= count[:, None], 2.0)
            keys.scatter_(1, index_of_first.unsqueeze(1), -1.0)  # the scan's position first
            index = keys.argsort(1)[:, :k_max]
        return table.gather(1, index), valid

    def reverse_log_q(
        self, state: MHState, proposed_logits: torch.Tensor, sites: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        r"""``[R, k_max]``: :math:`\log q(x_t \mid X'_{\setminus t})` at the block's sites,
        from the conditionals of the *proposed* sequences (``proposed_logits [R, L, K]``)."""
        current = state.tokens[rows].gather(1, sites)
        scores = proposed_logits.gather(
            1, sites.unsqueeze(-1).expand(-1, -1, proposed_logits.shape[-1])
        )
        log_q = proposal_log_probs(scores, self.proposal_temperature)
        return token_log_prob(log_q, current, self.proposable)

    def block_step(
        self,
        state: MHState,
        positions: torch.Tensor,
        sites: torch.Tensor,
        valid: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[MHState, MHInfo]:
        """One block proposal in every chain (the maths of the module docstring)."""
        tokens, energy, logits = state.tokens, state.energy, state.logits
        chains, k_max = sites.shape
        scores = logits.gather(1, sites.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
        log_q = proposal_log_probs(scores, self.proposal_temperature)  # [C, k, K]
        choice = draw(log_q.reshape(chains * k_max, -1), generator).reshape(chains, k_max)
        current = tokens.gather(1, sites)
        new = torch.where(valid, self.proposable[choice], current)
        log_forward = (log_q.gather(-1, choice.unsqueeze(-1)).squeeze(-1) * valid).sum(-1)
        moved = (new != current).any(-1)
        evaluated = None
        if bool(moved.any()):
            idx = moved.nonzero().squeeze(-1)
            candidates = tokens[idx].scatter(1, sites[idx], new[idx])
            result = self.evaluate(candidates, idx)
            reverse = self.reverse_log_q(state, result.logits, sites[idx], idx)
            log_reverse = torch.where(valid[idx], reverse, 0.0).sum(-1)
            log_ratio = log_acceptance_ratio(
                energy[idx], result.energy, log_forward[idx], log_reverse, 1.0 / state.beta[idx]
            )
            evaluated = (idx, candidates, result, log_ratio)
        return accept_moves(state, positions, moved, evaluated, generator)
