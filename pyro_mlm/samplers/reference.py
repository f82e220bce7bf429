r"""Tempering towards the MLM's own law: replica exchange on the path from :math:`q` to :math:`\pi`.

Replica exchange (:mod:`.replica`) heats by temperature, so its hottest replica is nearly
uniform over the :math:`20^{|F|}` fillings of the region, where nothing a designer wants
lives. Here the hottest replica targets the **reference** :math:`q`, the MLM's own sequential
law over the free region, filled left to right: exactly sampleable, with a density of
``k = |F|`` batched rows (:mod:`.reference_move`). Replica :math:`r` of each chain
targets the geometric path (Surjanovic et al., NeurIPS 2022, "Parallel tempering with a
variational reference")

.. math::

    \pi_r(X) \propto q(X)^{1 - \beta_r}\, \pi(X)^{\beta_r}, \qquad
    \pi(X) \propto e^{-E(X)/T}, \qquad 1 = \beta_0 > \beta_1 > \dots > \beta_{R-1} = 0,

so slot 0 samples the target and slot :math:`R-1` the reference. One sweep:

1. **Local moves** in slots :math:`r < R-1`: ``proposals`` single-site MH proposals from
   the cached masked conditional at :math:`t`, accepted for :math:`\pi_r` with

   .. math::

       \log\alpha = \beta_r \frac{E(X) - E(X')}{T} + (1 - \beta_r)\big(\log q(X')
           - \log q(X)\big) + \log q_t(x_t \mid X_{\setminus t})
           - \log q_t(x'_t \mid X_{\setminus t})

   (MH's ratio, :func:`~.transitions.log_acceptance_ratio`, on the path's density: the
   position choice and the context cancel as there). Slot 0 (:math:`\beta_0 = 1`) needs
   no :math:`q(X')`: it is plain MH, and its :math:`\log q` is computed only when a swap
   reads it.
2. **The reference slot** draws a fresh, independent :math:`X \sim q` (a Gibbs move for
   :math:`\pi_{R-1} = q`), and its energy (``|F|`` rows) for the swaps.
3. **Swaps** of neighbouring slots, even pairs then odd (Syed et al. 2022's
   non-reversible schedule, as in :mod:`.replica`), accepted with

   .. math::

       \log\alpha = (\beta_r - \beta_{r+1})\big(W(X_{r+1}) - W(X_r)\big), \qquad
       W(X) = -E(X)/T - \log q(X),

   since :math:`\log\pi_r = \log q + \beta_r W` + const: the :math:`\log q` terms cancel in
   the product of the two densities only after :math:`W` takes them in. (Leaving them out,
   :math:`W = -E/T`, is the tempting bug; the enumeration test shows it is wrong.) Swaps
   read the cached :math:`E` and :math:`\log q` of each slot: no forward pass.

Each move leaves :math:`\prod_r \pi_r` invariant, so slot 0's draws are from the target.
During warm-up the :math:`\beta` gaps adapt toward equal measured swap rates (a
Robbins-Monro step, the gaps summing to 1); :meth:`ReferenceTempering.end_warmup` freezes
them. The reference slot's draws cross between modes freely, and swaps carry them down.

Cost per sweep and chain: slot 0 as MH, plus ``k`` rows for its :math:`\log q` when it moved;
each middle slot ``|F| + k`` rows per novel proposal; the reference slot ``k + |F|``. A hard
expert's ``inf`` energy makes :math:`W = -\infty` (never swapped down); experts that restrict
proposals restrict :math:`q` alike. ``--lengths`` is not supported (:math:`q` would need a
law over lengths).
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch

from pyro_mlm.samplers.base import SweepSampler
from pyro_mlm.samplers.options import SAMPLER_OPTIONS, parse_replicas
from pyro_mlm.samplers.proposals import masked_conditional_proposal
from pyro_mlm.samplers.reference_move import (
    PathState,
    draw_reference,
    fill_order,
    reference_log_prob,
)
from pyro_mlm.samplers.replica import REInfo
from pyro_mlm.samplers.scan import next_positions, sites_of
from pyro_mlm.samplers.transitions import accept_moves, single_site_candidates, swap_neighbours
from pyro_mlm.target import Target
from pyro_mlm.validation import check_chains


class RefState(NamedTuple):
    """State of ``C`` chains of ``R`` slots each.

    Attributes
    ----------
    tokens, energy
        ``[C, L]``, ``[C]``: slot 0 (the target), the draws.
    inner
        :class:`PathState` over all ``C R`` rows.
    gaps
        ``[R - 1]`` the ladder: :math:`\\beta_r - \\beta_{r+1}`, summing to 1.
    swaps
        ``[R - 1]`` running mean swap rate per pair (drives the warm-up adaptation).
    adapting
        ``[]`` 1 during warm-up (the ladder adapts), 0 once frozen.
    sweep
        ``[]`` sweeps done (sets the adaptation's decaying gain).
    cursor, rows
        As every state: the scan cursor (unused here) and ``[C]`` masked rows so far.
    """

    tokens: torch.Tensor
    energy: torch.Tensor
    inner: PathState
    gaps: torch.Tensor
    swaps: torch.Tensor
    adapting: torch.Tensor
    sweep: torch.Tensor
    cursor: torch.Tensor
    rows: torch.Tensor


class ReferenceTempering(SweepSampler):
    """Replica exchange on the path :math:`q^{1-\\beta}\\pi^\\beta` (module docstring)."""

    name = "reference-tempering"
    State = RefState
    NESTED = {"inner": PathState}  # noqa: RUF012 - how checkpoints rebuild nested states
    OPTIONS = SAMPLER_OPTIONS["reference-tempering"]
    PROGRESS = ("acceptance_rate", "novel_rate", "swap_rate")

    def __init__(self, target: Target, free: torch.Tensor, *, replicas: int = 4, **settings: Any):
        super().__init__(target, free, **settings)
        self.replicas = parse_replicas(replicas)
        self.flat = sites_of(free.repeat_interleave(self.replicas, 0))  # every row's sites

    # ------------------------------------------------------------ init and step
    def init(self, tokens: torch.Tensor, beta: torch.Tensor | None = None) -> RefState:
        if beta is not None:
            raise ValueError("reference-tempering sets its own ladder; it takes no beta")
        tokens = check_chains(tokens, self.sites.mask, self.target.mlm)
        self.target.check_start(tokens)
        R, chains = self.replicas, tokens.shape[0]
        index = torch.arange(chains, device=tokens.device)
        result = self.evaluate(tokens, index)
        if bool((result.energy == float("inf")).any()):
            raise ValueError("a chain starts where a hard expert forbids the sequence (inf energy)")
        sites, valid = fill_order(self.sites, index)
        log_q = reference_log_prob(self.target, self.proposable, tokens, sites, valid)
        rows = result.rows + valid.sum(1)
        gaps = torch.full((R - 1,), 1.0 / (R - 1))
        inner = PathState(
            tokens.repeat_interleave(R, 0),
            result.energy.repeat_interleave(R, 0),
            result.logits.repeat_interleave(R, 0),
            log_q.repeat_interleave(R, 0),
            self.ladder(gaps).to(tokens.device).repeat(chains),
            torch.zeros((), dtype=torch.long),
            torch.zeros(chains * R, dtype=torch.long, device=tokens.device).index_copy(
                0, index * R, rows.long()
            ),
        )
        zero = torch.zeros((), dtype=torch.long)
        state = RefState(
            tokens, result.energy, inner, gaps, torch.zeros(R - 1),
            torch.ones((), dtype=torch.long), zero, zero, rows.long(),
        )  # fmt: skip
        return self._summarise(state)

    def ladder(self, gaps: torch.Tensor) -> torch.Tensor:
        """``[R]`` the slots' :math:`\\beta_r`: 1, then down by the gaps, the last exactly 0."""
        beta = 1.0 - torch.cat([torch.zeros(1), torch.cumsum(gaps.cpu(), 0)])
        beta[-1] = 0.0
        return beta.clamp(min=0.0)

    def step(
        self, state: RefState, generator: torch.Generator | None = None
    ) -> tuple[RefState, REInfo]:
        inner = state.inner
        before = inner.rows
        sums = torch.zeros(3, inner.tokens.shape[0], device=inner.tokens.device)
        with torch.no_grad():
            for _ in range(self.proposals):
                positions, cursor = next_positions(self.flat, inner.cursor, self.scan, generator)
                inner = inner._replace(cursor=cursor)
                inner, stats = self.propose_path(inner, positions, generator)
                sums += stats
            inner = self.refresh_reference(inner, generator)
            inner = self.fill_log_q(inner)
            inner, swap = self.exchange(inner, generator)
        gaps, swaps = state.gaps, state.swaps
        if bool(state.adapting):
            gaps, swaps = self.adapt(state, swap.mean(0).cpu())
            beta = self.ladder(gaps).repeat(state.tokens.shape[0])
            inner = inner._replace(beta=beta.to(inner.beta))
        new = self._summarise(
            state._replace(inner=inner, gaps=gaps, swaps=swaps, sweep=state.sweep + 1)
        )
        cold = slice(None, None, self.replicas)
        accept_prob, acceptance_rate, is_novel = sums[:, cold] / self.proposals
        rows = (inner.rows - before).reshape(-1, self.replicas).sum(1)
        return new, REInfo(accept_prob, acceptance_rate, is_novel, rows, swap)

    def end_warmup(self, state: RefState) -> RefState:
        """Freeze the ladder: from here on the chain is an exact replica-exchange chain."""
        return state._replace(adapting=torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------ the moves
    def propose_path(
        self, inner: PathState, positions: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[PathState, torch.Tensor]:
        """One single-site MH proposal for :math:`\\pi_r` in every row but the reference
        slot's; returns the state and ``[3, C R]`` (min(1, alpha), accepted, novel)."""

        def propose(logits: torch.Tensor, current: torch.Tensor) -> Any:
            return masked_conditional_proposal(
                logits, current, self.proposable, self.proposal_temperature, generator
            )

        candidates, proposal = single_site_candidates(
            inner.tokens, inner.logits, positions, propose
        )
        rows_all = torch.arange(inner.tokens.shape[0], device=inner.tokens.device)
        reference = (rows_all % self.replicas) == self.replicas - 1
        moved = (proposal.new_tokens != inner.tokens[rows_all, positions]) & ~reference
        evaluated, new_log_q = None, None
        if bool(moved.any()):
            idx = moved.nonzero().squeeze(-1)
            result = self.target.evaluate(
                candidates[idx], self.flat.mask[idx], chains=idx // self.replicas
            )
            beta = inner.beta[idx]
            log_ratio = beta * (inner.energy[idx] - result.energy) / self.target.temperature
            log_ratio = torch.where(beta > 0, log_ratio, torch.zeros_like(log_ratio))
            log_ratio = log_ratio + proposal.log_q_reverse[idx] - proposal.log_q_forward[idx]
            new_log_q = torch.full_like(log_ratio, float("nan"))  # slot 0: not needed
            path = (beta < 1).nonzero().squeeze(-1)
            if path.numel():
                sites, valid = fill_order(self.flat, idx[path])
                new_log_q[path] = reference_log_prob(
                    self.target, self.proposable, candidates[idx[path]], sites, valid
                )
                log_ratio[path] += (1 - beta[path]) * (new_log_q[path] - inner.log_q[idx[path]])
                result = result._replace(rows=result.rows.index_add(0, path, valid.sum(1)))
            evaluated = (idx, candidates[idx], result, log_ratio)
        # accept_moves reads and replaces MHState's fields, which PathState has too
        after, info = accept_moves(inner, positions, moved, evaluated, generator)  # type: ignore[arg-type]
        moved_state = cast(PathState, after)
        log_q = inner.log_q
        if evaluated is not None and new_log_q is not None:
            idx = evaluated[0]
            took = info.is_accepted[idx]
            log_q = log_q.index_copy(0, idx[took], new_log_q[took])
        stats = torch.stack([info.accept_prob, info.is_accepted.float(), info.is_novel.float()])
        return moved_state._replace(log_q=log_q), stats

    def refresh_reference(self, inner: PathState, generator: torch.Generator | None) -> PathState:
        """The reference slot's fresh draw of :math:`q`, with its energy and conditionals."""
        top = torch.arange(self.replicas - 1, inner.tokens.shape[0], self.replicas,
                           device=inner.tokens.device)  # fmt: skip
        sites, valid = fill_order(self.flat, top)
        tokens, log_q = draw_reference(
            self.target, self.proposable, inner.tokens[top], sites, valid, generator
        )
        result = self.target.evaluate(tokens, self.flat.mask[top], chains=top // self.replicas)
        return inner._replace(
            tokens=inner.tokens.index_copy(0, top, tokens),
            energy=inner.energy.index_copy(0, top, result.energy.to(inner.energy)),
            logits=inner.logits.index_copy(0, top, result.logits.to(inner.logits)),
            log_q=inner.log_q.index_copy(0, top, log_q.to(inner.log_q)),
            rows=inner.rows.index_add(0, top, (result.rows + valid.sum(1)).to(inner.rows)),
        )

    def fill_log_q(self, inner: PathState) -> PathState:
        """:math:`\\log q` of the rows whose cache is stale (slot 0 moved), before swaps."""
        stale = torch.isnan(inner.log_q).nonzero().squeeze(-1)
        if stale.numel() == 0:
            return inner
        sites, valid = fill_order(self.flat, stale)
        values = reference_log_prob(self.target, self.proposable, inner.tokens[stale], sites, valid)
        return inner._replace(
            log_q=inner.log_q.index_copy(0, stale, values.to(inner.log_q)),
            rows=inner.rows.index_add(0, stale, valid.sum(1).to(inner.rows)),
        )

    def exchange(
        self, inner: PathState, generator: torch.Generator | None
    ) -> tuple[PathState, torch.Tensor]:
        """Even then odd neighbour swaps (:func:`~.reference_move.swap_neighbours`) on the
        weights :meth:`log_weight`; returns the new state and ``[C, R-1]`` accepts."""
        fields = ("tokens", "energy", "logits", "log_q")
        return swap_neighbours(inner, self.log_weight(inner), self.replicas, fields, generator)

    def log_weight(self, inner: PathState) -> torch.Tensor:
        """``[C R]`` :math:`W(X) = -E(X)/T - \\log q(X)` of each row, which the swaps read (a
        method, so that a test can plant the wrong one)."""
        return -inner.energy / self.target.temperature - inner.log_q

    def adapt(self, state: RefState, rates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One Robbins-Monro step toward equal swap rates, the gaps summing to 1."""
        gain = 1.0 / (1.0 + float(state.sweep)) ** 0.6
        swaps = state.swaps + 0.1 * (rates - state.swaps)  # a running mean of the rates
        gaps = state.gaps * torch.exp(gain * (swaps - swaps.mean()))
        return gaps / gaps.sum(), swaps

    def _summarise(self, state: RefState) -> RefState:
        """Slot 0's tokens and energies, and each chain's rows over all its slots."""
        inner = state.inner
        cold = slice(None, None, self.replicas)
        rows = inner.rows.reshape(-1, self.replicas).sum(1)
        return state._replace(tokens=inner.tokens[cold], energy=inner.energy[cold], rows=rows)
