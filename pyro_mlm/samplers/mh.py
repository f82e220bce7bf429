r"""Single-site Metropolis-Hastings with the MLM's masked conditionals as proposals.

Each proposal picks a free position :math:`t`, draws
:math:`x'_t \sim q(\cdot \mid X_{\setminus t})` from the cached conditionals of the
current state and accepts with

.. math::

    \min\Big(1,\ e^{\beta (E(X) - E(X'))}\,
        \frac{q(x_t \mid X_{\setminus t})}{q(x'_t \mid X_{\setminus t})}\Big)

(derivation: :func:`pyro_mlm.samplers.transitions.log_acceptance_ratio`). A proposal costs one
evaluation of :math:`X'` (``|free|`` masked rows), a self-proposal nothing.
"""

from __future__ import annotations

import torch

from pyro_mlm.samplers.base import SweepSampler
from pyro_mlm.samplers.proposals import Proposal, masked_conditional_proposal
from pyro_mlm.samplers.transitions import MHInfo, MHState, mh_step


class MH(SweepSampler):
    """Single-site MH (Goyal et al. 2022); the state is :class:`~.transitions.MHState`."""

    name = "mh"
    State = MHState

    def start(
        self, tokens: torch.Tensor, beta: torch.Tensor, cursor: torch.Tensor, rows: torch.Tensor
    ) -> MHState:
        chains = torch.arange(tokens.shape[0], device=tokens.device)
        result = self.evaluate(tokens, chains)
        forbidden = result.energy == float("inf")
        if bool(forbidden.any()):
            raise ValueError(
                f"chains {forbidden.nonzero().flatten().tolist()} start where the energy is "
                "inf (a sequence an extra potential forbids); MH could never leave such a "
                "state: start from an allowed sequence"
            )
        rows = rows + result.rows
        return MHState(tokens, result.energy, result.logits, beta, cursor, rows)

    def propose(
        self, state: MHState, positions: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[MHState, MHInfo]:
        def draw(logits: torch.Tensor, current: torch.Tensor) -> Proposal:
            return self.draw(logits, current, generator)

        return mh_step(state, positions, draw, self.evaluate, 1.0 / state.beta, generator)

    def draw(
        self, logits: torch.Tensor, current: torch.Tensor, generator: torch.Generator | None
    ) -> Proposal:
        """The single-site proposal (the Metropolised sampler overrides it)."""
        return masked_conditional_proposal(
            logits, current, self.proposable, self.proposal_temperature, generator
        )
