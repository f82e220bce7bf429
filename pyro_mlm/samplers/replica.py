r"""Replica exchange (parallel tempering) around any exact single-chain sampler.

Each chain runs :math:`R` replicas as extra rows of the vectorised batch; slot
:math:`r` samples :math:`\pi_r(X) \propto e^{-\beta_r E(X)}` with the inner sampler,
:math:`\beta_0 = 1/T` (the target) down to :math:`\beta_{R-1} = 1/(T\,T_\text{max})`,
geometric in temperature by default. After every inner sweep, neighbouring slots
propose to exchange their sequences, first the even pairs :math:`(0,1), (2,3), \dots`
then the odd ones, each accepted with

.. math::

    \min\big(1,\ e^{(\beta_r - \beta_{r+1})(E(X_r) - E(X_{r+1}))}\big),

from the cached energies (no forward pass). Each move leaves the product
:math:`\prod_r \pi_r` invariant (the inner sweeps because the inner sampler is exact at
every :math:`\beta`; a swap by detailed balance on the pair), so slot 0, the only one
whose sequences are draws, samples the target. During warm-up the ladder adapts toward
equal swap rates (the gaps in :math:`\log T` of pairs that swap often widen, with
:math:`T_\text{max}` fixed); :meth:`ReplicaExchange.end_warmup` freezes it, and from
then on the chain is exact. Cost: :math:`R` times the inner sampler's rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from pyro_mlm.samplers.base import SweepInfo, SweepSampler
from pyro_mlm.samplers.builder import build_sampler
from pyro_mlm.samplers.options import SAMPLER_OPTIONS, parse_replicas, parse_sizes, parse_t_max
from pyro_mlm.samplers.transitions import MHState, swap_neighbours
from pyro_mlm.validation import check_chains


class REState(NamedTuple):
    """State of ``C`` chains of ``R`` replicas each (row ``c * R + r`` is chain c, slot r).

    Attributes
    ----------
    tokens, energy
        ``[C, L]``, ``[C]``: slot 0 (the target's temperature), the draws.
    inner
        The inner sampler's state (:class:`~pyro_mlm.samplers.transitions.MHState`, or
        :class:`~pyro_mlm.samplers.regenerate.RegenState`) over all ``C * R`` rows; its
        ``beta`` holds each slot's inverse temperature.
    log_gaps
        ``[R - 1]`` the ladder: :math:`\\log T_{r+1} - \\log T_r`.
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
    inner: Any
    log_gaps: torch.Tensor
    swaps: torch.Tensor
    adapting: torch.Tensor
    sweep: torch.Tensor
    cursor: torch.Tensor
    rows: torch.Tensor


@dataclass(frozen=True, eq=False)
class REInfo(SweepInfo):
    """A sweep's :class:`~pyro_mlm.samplers.base.SweepInfo` (slot 0) plus
    ``swap_rate [C, R - 1]``, the fraction of each pair's exchanges accepted."""

    swap_rate: torch.Tensor


class ReplicaExchange(SweepSampler):
    """Replica exchange over ``replicas`` temperatures up to ``t_max`` (module docstring)."""

    name = "replica-exchange"
    State = REState
    NESTED = {"inner": MHState}  # noqa: RUF012 - how checkpoints rebuild nested states
    OPTIONS = SAMPLER_OPTIONS["replica-exchange"]
    PROGRESS = ("acceptance_rate", "novel_rate", "swap_rate")

    def __init__(
        self,
        target: Any,
        free: torch.Tensor,
        *,
        replicas: int = 4,
        t_max: float = 3.0,
        inner: str = "block",
        block_size: Any = 2,
        block_mode: str = "random",
        **settings: Any,
    ) -> None:
        super().__init__(target, free, **settings)
        self.replicas = parse_replicas(replicas)
        self.t_max = parse_t_max(t_max)
        self.inner_name = self.OPTIONS["inner"].parse(inner)  # a sampler declared inner
        options: dict[str, Any] = {}
        if self.inner_name == "block":
            options = {"block_size": parse_sizes(block_size), "block_mode": block_mode}
        self.inner = build_sampler(
            self.inner_name, target, free.repeat_interleave(self.replicas, 0), **settings, **options
        )
        self.proposals = self.inner.proposals
        self.inner_options = options
        self.NESTED = {"inner": self.inner.State}  # type: ignore[misc]  # the inner's state

    def options(self) -> dict[str, Any]:
        out = {"replicas": self.replicas, "t_max": self.t_max, "inner": self.inner_name}
        if self.inner_name == "block":
            out.update(self.inner.options())
        return out

    # ------------------------------------------------------------ init and step
    def init(self, tokens: torch.Tensor, beta: torch.Tensor | None = None) -> REState:
        tokens = check_chains(tokens, self.sites.mask, self.target.mlm)  # before replicating
        chains, device = tokens.shape[0], tokens.device
        gaps = torch.full((self.replicas - 1,), math.log(self.t_max) / (self.replicas - 1))
        inner = self.inner.init(
            tokens.repeat_interleave(self.replicas, 0), self.ladder(gaps).repeat(chains)
        )
        zero = torch.zeros((), dtype=torch.long)
        state = REState(
            tokens,
            inner.energy[:: self.replicas],
            inner,
            gaps,
            torch.zeros(self.replicas - 1),
            torch.ones((), dtype=torch.long),
            zero,
            zero,
            torch.zeros(chains, dtype=torch.long, device=device),
        )
        return self._summarise(state)

    def ladder(self, log_gaps: torch.Tensor) -> torch.Tensor:
        """``[R]`` inverse temperatures of the slots: ``1/T`` times ``exp(-cumsum(gaps))``."""
        log_t = torch.cat([torch.zeros(1), torch.cumsum(log_gaps.cpu(), 0)])
        return torch.exp(-log_t) / self.target.temperature

    def step(self, state: REState, generator: torch.Generator | None = None) -> tuple[Any, Any]:
        inner, info = self.inner.step(state.inner, generator)
        inner, swap = self.exchange(inner, generator)
        chains = state.tokens.shape[0]
        cold = slice(None, None, self.replicas)
        log_gaps, swaps = state.log_gaps, state.swaps
        if bool(state.adapting):
            log_gaps, swaps = self.adapt(state, swap.mean(0).cpu())
            inner = inner._replace(beta=self.ladder(log_gaps).repeat(chains).to(inner.beta))
        new = self._summarise(
            state._replace(inner=inner, log_gaps=log_gaps, swaps=swaps, sweep=state.sweep + 1)
        )
        info_out = REInfo(
            info.accept_prob[cold],
            info.acceptance_rate[cold],
            info.is_novel[cold],
            new.rows - state.rows,
            swap,
        )
        return new, info_out

    def end_warmup(self, state: REState) -> REState:
        """Freeze the ladder: from here on the chain is an exact replica-exchange chain."""
        return state._replace(adapting=torch.zeros((), dtype=torch.long))

    def exchange(
        self, inner: MHState, generator: torch.Generator | None
    ) -> tuple[MHState, torch.Tensor]:
        """Even then odd neighbour swaps (:func:`~.transitions.swap_neighbours`, with
        :math:`w = -E`); returns the new inner state and ``[C, R-1]`` accepts."""
        fields = ("tokens", "energy", "logits")
        return swap_neighbours(inner, -inner.energy, self.replicas, fields, generator)

    def adapt(self, state: REState, rates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One Robbins-Monro step toward equal swap rates, ``sum(gaps) = log T_max`` kept."""
        gain = 1.0 / (1.0 + float(state.sweep)) ** 0.6
        swaps = state.swaps + 0.1 * (rates - state.swaps)  # a running mean of the rates
        log_gaps = state.log_gaps * torch.exp(gain * (swaps - swaps.mean()))
        log_gaps = log_gaps * (math.log(self.t_max) / float(log_gaps.sum()))
        return log_gaps, swaps

    def _summarise(self, state: REState) -> REState:
        """Slot 0's tokens and energies, and each chain's rows over all its replicas."""
        inner = state.inner
        cold = slice(None, None, self.replicas)
        rows = inner.rows.reshape(-1, self.replicas).sum(1)
        return state._replace(tokens=inner.tokens[cold], energy=inner.energy[cold], rows=rows)
