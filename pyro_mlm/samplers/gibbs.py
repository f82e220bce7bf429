"""Degenerate masked Gibbs (Wang & Cho 2019): always accept the conditional's draw.

Each update costs one masked row per chain (the conditional at the chosen position
of the *current* sequence). Because an MLM's conditionals are not those of any single
joint distribution, this chain does **not** target :math:`\\propto e^{-E/T}`; it is the
baseline the paper compares against. Its state keeps no energy: :meth:`Gibbs.energy`
evaluates it when a draw is recorded (not counted as sampling cost).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from pyro_mlm.samplers.base import SweepSampler
from pyro_mlm.samplers.proposals import Proposal, masked_conditional_proposal
from pyro_mlm.samplers.transitions import MHInfo, gibbs_step
from pyro_mlm.target import restricts


class GibbsState(NamedTuple):
    """State of ``C`` masked-Gibbs chains: ``tokens [C, L]``, scan ``cursor``, ``rows [C]``."""

    tokens: torch.Tensor
    cursor: torch.Tensor
    rows: torch.Tensor


class Gibbs(SweepSampler):
    """Masked Gibbs: the inexact baseline."""

    name = "gibbs"
    exact = False
    State = GibbsState

    def start(
        self, tokens: torch.Tensor, beta: torch.Tensor, cursor: torch.Tensor, rows: torch.Tensor
    ) -> GibbsState:
        if any(not restricts(e) for e in self.target.experts):
            raise ValueError(
                "masked Gibbs never evaluates the target, so it would ignore the experts and "
                "constraints (only 'allowed', which restricts its conditionals, is honoured); "
                "use an exact sampler such as --kernel mh"
            )
        return GibbsState(tokens, cursor, rows)

    def propose(
        self, state: GibbsState, positions: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[GibbsState, MHInfo]:
        def draw(logits: torch.Tensor, current: torch.Tensor) -> Proposal:
            return masked_conditional_proposal(
                logits, current, self.proposable, self.proposal_temperature, generator
            )

        tokens, info = gibbs_step(state.tokens, positions, draw, self.target.conditionals)
        return GibbsState(tokens, state.cursor, state.rows + 1), info

    def energy(self, state: GibbsState) -> torch.Tensor:
        chains = torch.arange(state.tokens.shape[0], device=state.tokens.device)
        result = self.target.evaluate(
            state.tokens, self.sites.mask, chains=chains, keep_conditionals=False
        )
        return result.energy
