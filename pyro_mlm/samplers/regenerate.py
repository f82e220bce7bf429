r"""Global moves: regenerate a whole block from the MLM inside Metropolis-Hastings.

Each proposal is, independently in each chain, a **regeneration** with probability
:math:`p` (``regen_prob``) and a single-site MH proposal otherwise (:mod:`.mh`).

The move, its Hastings ratio (derived there) and its cost are in
:mod:`pyro_mlm.samplers.regenerate_move`.

**Warm-up.** With ``regen_temperature="auto"`` the regenerations of warm-up cycle
through :data:`TAUS` and measure, for each :math:`\tau_r`, the expected squared jump
of the Hamming distance per masked row,
:math:`\sum \min(1, \alpha)\, d_H(X, X')^2 / \sum \text{rows}`;
:meth:`Regenerate.end_warmup` freezes the best (0.8 when no warm-up ran). From then on
the chain is the fixed exact kernel above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from pyro_mlm.samplers.base import SweepInfo
from pyro_mlm.samplers.mh import MH
from pyro_mlm.samplers.options import (
    REGEN_TEMPERATURE_DEFAULT,
    SAMPLER_OPTIONS,
    TAUS,
    parse_fraction,
    parse_order,
    parse_regen_block,
    parse_regen_temperature,
    parse_sizes,
)
from pyro_mlm.samplers.regenerate_move import BlockRule, regenerate
from pyro_mlm.samplers.transitions import (
    MHInfo,
    evaluate_and_accept,
    single_site_candidates,
    uniform,
)


class RegenState(NamedTuple):
    """An :class:`~.transitions.MHState` plus the warm-up's measurements of :math:`\\tau_r`.

    Attributes
    ----------
    tokens, energy, logits, beta, cursor, rows
        As :class:`~pyro_mlm.samplers.transitions.MHState`.
    gain, spent
        ``[len(TAUS)]`` summed :math:`\\min(1, \\alpha) d_H^2` and rows of each candidate.
    tries
        ``[]`` regeneration proposals made in warm-up (the candidate cycle).
    choice
        ``[]`` the index in ``TAUS`` in use; ``-1`` while warm-up still measures.
    """

    tokens: torch.Tensor
    energy: torch.Tensor
    logits: torch.Tensor
    beta: torch.Tensor
    cursor: torch.Tensor
    rows: torch.Tensor
    gain: torch.Tensor
    spent: torch.Tensor
    tries: torch.Tensor
    choice: torch.Tensor


@dataclass(frozen=True, eq=False)
class RegenInfo(SweepInfo):
    r"""A sweep's :class:`~pyro_mlm.samplers.base.SweepInfo` plus, per chain,
    ``regenerations [C]`` (regeneration proposals in the sweep) and ``regen_accepted [C]``
    (their summed :math:`\min(1, \alpha)`): the run's regeneration acceptance is the
    ratio of their totals; and ``regen_temperature [C]``, the frozen :math:`\tau_r` (NaN
    while warm-up still compares them)."""

    regenerations: torch.Tensor
    regen_accepted: torch.Tensor
    regen_temperature: torch.Tensor


@dataclass(frozen=True, eq=False)
class ProposalInfo(MHInfo):
    """:class:`~.transitions.MHInfo` plus ``regenerated [C]``: whether it regenerated."""

    regenerated: torch.Tensor


class Regenerate(MH):
    """Single-site MH mixed with sequential masked regeneration (module docstring).

    Parameters
    ----------
    regen_prob
        :math:`p`, the probability that a proposal is a regeneration.
    regen_block
        ``"region"`` (every free position), ``"window"`` (``regen_size`` consecutive
        free positions from a uniform start) or ``"random"`` (a uniform subset).
    regen_size
        Block sizes for ``window``/``random``, drawn uniformly per proposal (``4`` or
        ``"3,6"``); a chain with fewer free positions regenerates all of them.
    regen_order
        ``"random"`` (a uniform permutation per proposal) or ``"left-to-right"``.
    regen_temperature
        :math:`\\tau_r`, or ``"auto"``: chosen in warm-up (module docstring).
    """

    name = "regenerate"
    State = RegenState  # type: ignore[assignment]
    OPTIONS = SAMPLER_OPTIONS["regenerate"]
    PROGRESS = ("acceptance_rate", "novel_rate", "regen_acceptance")

    def __init__(
        self,
        target: Any,
        free: torch.Tensor,
        *,
        regen_prob: float | str = 0.25,
        regen_block: str = "region",
        regen_size: int | tuple[int, ...] | str = 4,
        regen_order: str = "random",
        regen_temperature: float | str = "auto",
        **settings: Any,
    ) -> None:
        super().__init__(target, free, **settings)
        self.regen_prob = parse_fraction(regen_prob)
        self.regen_block = parse_regen_block(regen_block)
        self.regen_size = parse_sizes(regen_size)
        self.regen_order = parse_order(regen_order)
        self.rule = BlockRule(self.regen_block, self.regen_size, self.regen_order)
        self.regen_temperature = parse_regen_temperature(regen_temperature)
        self.taus = TAUS if self.regen_temperature == "auto" else (float(self.regen_temperature),)

    def applies(self, option: str) -> bool:
        """``regen_size`` is in force only for windows and random subsets."""
        return option != "regen_size" or self.regen_block != "region"

    # ------------------------------------------------------------ state and sweep
    def start(
        self, tokens: torch.Tensor, beta: torch.Tensor, cursor: torch.Tensor, rows: torch.Tensor
    ) -> Any:
        base = super().start(tokens, beta, cursor, rows)
        n = len(self.taus)
        zero = torch.zeros((), dtype=torch.long)
        choice = zero if n == 1 else zero - 1
        stats = torch.zeros(n, dtype=torch.float64)
        return RegenState(*base, stats, stats.clone(), zero, choice)  # type: ignore[arg-type]

    def tally(self, info: Any) -> torch.Tensor:
        """The shared sums, then the regenerations and their acceptance probabilities."""
        regen = info.regenerated.float()
        return torch.cat([super().tally(info), torch.stack([regen, regen * info.accept_prob])])

    def sweep_info(self, state: Any, sums: torch.Tensor, rows: torch.Tensor) -> RegenInfo:
        index = int(state.choice)
        tau = torch.full_like(sums[3], self.taus[index] if index >= 0 else float("nan"))
        accept_prob, acceptance_rate, is_novel, rows = super().sweep_info(state, sums, rows)
        return RegenInfo(accept_prob, acceptance_rate, is_novel, rows, sums[3], sums[4], tau)

    def end_warmup(self, state: RegenState) -> RegenState:
        """Freeze the :math:`\\tau_r` with the largest squared Hamming jump per row."""
        if int(state.choice) >= 0:
            return state
        if bool((state.spent > 0).any()):
            best = int((state.gain / state.spent.clamp(min=1.0)).argmax())
        else:
            best = TAUS.index(REGEN_TEMPERATURE_DEFAULT)
        return state._replace(choice=torch.tensor(best))

    def propose(
        self, state: Any, positions: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[Any, Any]:
        """One proposal in every chain: a regeneration with probability ``regen_prob``."""
        chains = state.tokens.shape[0]
        regen = uniform(chains, state.tokens.device, generator) < self.regen_prob
        if not bool(regen.any()):
            state, info = super().propose(state, positions, generator)
            return state, ProposalInfo(**info._asdict(), regenerated=regen)
        tuning = int(state.choice) < 0
        index = int(state.tries) % len(self.taus) if tuning else int(state.choice)

        # every chain's candidate: single-site where not regenerating, a block where it is
        def propose(logits: torch.Tensor, current: torch.Tensor) -> Any:
            return self.draw(logits, current, generator)

        candidates, proposal = single_site_candidates(
            state.tokens, state.logits, positions, propose
        )
        idx = regen.nonzero().squeeze(-1)
        new, fwd, rev, paid = regenerate(
            self.target, self.proposable, state, idx, self.sites, self.rule, self.taus[index],
            generator,
        )  # fmt: skip
        candidates = candidates.index_copy(0, idx, new)
        log_forward = proposal.log_q_forward.index_copy(0, idx, fwd)
        log_reverse = proposal.log_q_reverse.index_copy(0, idx, rev)
        before = state
        state = state._replace(rows=state.rows.index_add(0, idx, paid))
        moved = (candidates != state.tokens).any(-1)
        state, info = evaluate_and_accept(
            state, positions, candidates, log_forward, log_reverse, moved, self.evaluate,
            1.0 / state.beta, generator,
        )  # fmt: skip
        if tuning:  # the warm-up's measure of this tau_r: squared Hamming jump per row
            jump = (candidates[idx] != before.tokens[idx]).sum(-1).double() ** 2
            gain, spent = state.gain.clone(), state.spent.clone()
            gain[index] += float((jump * info.accept_prob[idx].double()).sum())
            spent[index] += float((state.rows[idx] - before.rows[idx]).sum())
            state = state._replace(gain=gain, spent=spent, tries=state.tries + 1)
        return state, ProposalInfo(**info._asdict(), regenerated=regen)
