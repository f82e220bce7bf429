r"""Metropolis-Hastings and masked-Gibbs transitions: pure, batched over chains.

The chain state is an immutable ``NamedTuple`` and the per-proposal information a frozen
record (:mod:`~pyro_mlm.samplers.info`); a
step returns ``(new_state, info)``. Randomness comes from the ``torch.Generator``
passed in (torch's global generator when none is), so a step is reproducible anywhere.
The samplers in :mod:`pyro_mlm.samplers` build their sweeps from these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from pyro_mlm.energy import Evaluation
from pyro_mlm.samplers.info import Record
from pyro_mlm.samplers.proposals import Proposal

ProposalFn = Callable[[torch.Tensor, torch.Tensor], Proposal]
EvaluateFn = Callable[[torch.Tensor, torch.Tensor], Evaluation]
ConditionalFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class MHState(NamedTuple):
    """State of ``C`` chains.

    Attributes
    ----------
    tokens
        ``[C, L]`` current sequences :math:`X`.
    energy
        ``[C]`` total energy :math:`E(X)` (MLM energy plus any extra potential, not
        divided by temperature), cached so a proposal costs one evaluation.
    logits
        ``[C, L, K]`` masked-conditional scores of :math:`X` at its free positions,
        cached: they are the proposal distributions of the next step.
    beta
        ``[C]`` inverse temperature :math:`1/T` of each chain (samplers fill it).
    cursor
        ``[]`` position-scan cursor (systematic scan).
    rows
        ``[C]`` masked rows evaluated so far by each chain (the cost).
    """

    tokens: torch.Tensor
    energy: torch.Tensor
    logits: torch.Tensor
    beta: torch.Tensor
    cursor: torch.Tensor
    rows: torch.Tensor


@dataclass(frozen=True, eq=False)
class MHInfo(Record):
    """What one proposal did in each chain.

    Attributes
    ----------
    position
        ``[C]`` the position :math:`t` that was proposed at.
    accept_prob
        ``[C]`` :math:`\\min(1, \\alpha)` (1 for a self-proposal, 0 for a NaN ratio).
    is_accepted
        ``[C]`` whether the chain moved to the proposal (a self-proposal counts).
    is_novel
        ``[C]`` accepted *and* different from the current token.
    """

    position: torch.Tensor
    accept_prob: torch.Tensor
    is_accepted: torch.Tensor
    is_novel: torch.Tensor


def log_acceptance_ratio(
    energy: torch.Tensor,
    proposed_energy: torch.Tensor,
    log_q_forward: torch.Tensor,
    log_q_reverse: torch.Tensor,
    temperature: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    r"""Log of the Metropolis-Hastings ratio for a single-site masked proposal.

    With target :math:`\pi(X) \propto e^{-E(X)/T}` and proposal kernel
    :math:`Q(X \to X') = \frac{1}{n}\, q(x'_t \mid X_{\setminus t})` (pick a free
    position uniformly, or in a fixed order, then draw from the masked conditional),
    detailed balance :math:`\pi(X) Q(X \to X') a(X \to X') = \pi(X') Q(X' \to X)
    a(X' \to X)` holds for :math:`a = \min(1, \alpha)` with

    .. math::

        \alpha = \frac{\pi(X')\, Q(X' \to X)}{\pi(X)\, Q(X \to X')}
               = \exp\!\Big(\frac{E(X) - E(X')}{T}\Big)\,
                 \frac{q(x_t \mid X'_{\setminus t})}{q(x'_t \mid X_{\setminus t})}.

    The position-choice factor :math:`1/n` cancels, and because the move changes only
    position :math:`t`, :math:`X'_{\setminus t} = X_{\setminus t}`: the reverse
    proposal reads the *same* conditional as the forward one. Hence

    .. math::

        \log\alpha = \frac{E(X) - E(X')}{T} + \log q(x_t \mid X_{\setminus t})
                     - \log q(x'_t \mid X_{\setminus t}).

    A proposal with lower energy is favoured (first term positive) and a proposal the
    MLM found likely is penalised (it is easy to propose, hard to come back from).

    >>> log_acceptance_ratio(torch.tensor([2.0]), torch.tensor([3.0]),
    ...                      torch.tensor([0.0]), torch.tensor([0.0]))
    tensor([-1.])
    """
    return (energy - proposed_energy) / temperature + log_q_reverse - log_q_forward


def accept_reject(
    log_ratio: torch.Tensor, log_uniform: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Accept where :math:`\log u < \log\alpha`; returns ``(accept_prob, is_accepted)``.

    :math:`P(\log u < \log\alpha) = \min(1, \alpha)` for :math:`u \sim U(0, 1)`. A NaN
    ratio compares false, so it is a rejection, with acceptance probability 0.
    """
    is_accepted = log_uniform < log_ratio
    accept_prob = torch.nan_to_num(log_ratio.clamp(max=0.0).exp(), nan=0.0)
    return accept_prob, is_accepted


def mh_step(
    state: MHState,
    positions: torch.Tensor,
    propose: ProposalFn,
    evaluate: EvaluateFn,
    temperature: float | torch.Tensor = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[MHState, MHInfo]:
    """One masked-conditional MH proposal in every chain.

    The proposal reads the cached conditionals of the current state. Chains whose
    proposal equals the current token keep their state with no forward pass (the
    ratio is exactly 1); the others are evaluated together, one batch of ``|free|``
    masked rows per chain, by ``evaluate(new_tokens, chain_index)``. ``temperature``
    is a float or a per-chain tensor ``[C]``.
    """
    candidates, proposal = single_site_candidates(state.tokens, state.logits, positions, propose)
    chains = torch.arange(state.tokens.shape[0], device=state.tokens.device)
    moved = proposal.new_tokens != state.tokens[chains, positions]
    return evaluate_and_accept(
        state, positions, candidates, proposal.log_q_forward, proposal.log_q_reverse, moved,
        evaluate, temperature, generator,
    )  # fmt: skip


def single_site_candidates(
    tokens: torch.Tensor, logits: torch.Tensor, positions: torch.Tensor, propose: ProposalFn
) -> tuple[torch.Tensor, Proposal]:
    """``(candidates [C, L], proposal)``: each chain's token at ``positions [C]`` drawn by
    ``propose`` from the cached conditionals ``logits [C, L, K]`` (no forward pass)."""
    chains = torch.arange(tokens.shape[0], device=tokens.device)
    proposal = propose(logits[chains, positions], tokens[chains, positions])
    candidates = tokens.clone()
    candidates[chains, positions] = proposal.new_tokens
    return candidates, proposal


def evaluate_and_accept(
    state: MHState,
    positions: torch.Tensor,
    candidates: torch.Tensor,
    log_q_forward: torch.Tensor,
    log_q_reverse: torch.Tensor,
    moved: torch.Tensor,
    evaluate: EvaluateFn,
    temperature: float | torch.Tensor = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[MHState, MHInfo]:
    """Evaluate the ``moved`` chains' ``candidates [C, L]`` in one batch and accept each
    with :func:`log_acceptance_ratio` (``log_q_* [C]``); the others keep their state."""
    evaluated = None
    if bool(moved.any()):
        idx = moved.nonzero().squeeze(-1)
        result = evaluate(candidates[idx], idx)
        temp = temperature[idx] if isinstance(temperature, torch.Tensor) else temperature
        log_ratio = log_acceptance_ratio(
            state.energy[idx], result.energy, log_q_forward[idx], log_q_reverse[idx], temp
        )
        evaluated = (idx, candidates[idx], result, log_ratio)
    return accept_moves(state, positions, moved, evaluated, generator)


def accept_moves(
    state: MHState,
    positions: torch.Tensor,
    moved: torch.Tensor,
    evaluated: tuple[torch.Tensor, torch.Tensor, Evaluation, torch.Tensor] | None,
    generator: torch.Generator | None = None,
) -> tuple[MHState, MHInfo]:
    """Accept or reject the evaluated proposals; every other chain keeps its state.

    ``evaluated = (idx, candidates, result, log_ratio)`` for the chains ``idx`` whose
    proposals differ from their current sequence (None when none does); a chain that
    did not move has accepted its self-proposal with probability 1. One uniform per
    evaluated chain is drawn, after the evaluation. Each evaluated chain pays the masked
    rows of its evaluation (``result.rows``) in ``state.rows``; a self-proposal pays none.
    """
    tokens, energy, logits, rows = state.tokens, state.energy, state.logits, state.rows
    accept_prob = torch.ones(tokens.shape[0], device=tokens.device)
    is_accepted = ~moved
    if evaluated is not None:
        idx, candidates, result, log_ratio = evaluated
        log_u = uniform(idx.numel(), log_ratio.device, generator).log()
        prob, accepted = accept_reject(log_ratio, log_u)
        accept_prob = accept_prob.index_put((idx,), prob)
        is_accepted = is_accepted.index_put((idx,), accepted)
        take = idx[accepted]
        tokens = tokens.index_copy(0, take, candidates[accepted])
        energy = energy.index_copy(0, take, result.energy[accepted])
        logits = logits.index_copy(0, take, result.logits[accepted])
        rows = rows.index_add(0, idx, result.rows.to(rows.dtype))
    info = MHInfo(positions, accept_prob, is_accepted, is_accepted & moved)
    return state._replace(tokens=tokens, energy=energy, logits=logits, rows=rows), info


def uniform(n: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws of U(0, 1) from ``generator`` (torch's global one when None)."""
    return torch.rand(n, device=device, generator=generator)


def gibbs_step(
    tokens: torch.Tensor,
    positions: torch.Tensor,
    propose: ProposalFn,
    conditional: ConditionalFn,
) -> tuple[torch.Tensor, MHInfo]:
    """One masked-Gibbs update (Wang & Cho 2019): draw from the conditional, always keep it.

    ``conditional(tokens, positions)`` returns the ``[C, K]`` proposable scores with
    each chain's position masked: one masked row per chain. This is *not* a
    Metropolis-Hastings step: with an MLM's mutually inconsistent conditionals its
    stationary distribution is not :math:`\\propto e^{-E}`.
    """
    chains = torch.arange(tokens.shape[0], device=tokens.device)
    current = tokens[chains, positions]
    proposal = propose(conditional(tokens, positions), current)
    new_tokens = tokens.clone()
    new_tokens[chains, positions] = proposal.new_tokens
    moved = proposal.new_tokens != current
    ones = torch.ones_like(moved)
    return new_tokens, MHInfo(positions, ones.float(), ones, moved)


def swap_neighbours(
    state: Any,
    w: torch.Tensor,
    replicas: int,
    fields: tuple[str, ...],
    generator: torch.Generator | None,
) -> tuple[Any, torch.Tensor]:
    r"""Replica swaps over ``C x R`` rows (row ``c * R + r`` is chain c, slot r): neighbouring
    slots, even pairs then odd, each accepted with
    :math:`\log\alpha = (\beta_r - \beta_{r+1})(w_{r+1} - w_r)` from ``state.beta`` and the
    cached log-weights ``w [C R]`` (no forward pass; :math:`w = -E` for temperatures,
    :math:`-E/T - \log q` on a path to a reference). The ``fields`` of ``state`` move with
    their slot's sequence. Returns the state and ``[C, R-1]`` accepts (one uniform per pair).
    """
    R = replicas
    chains = state.tokens.shape[0] // R
    accepted = torch.zeros(chains, R - 1, device=state.tokens.device)
    for parity in (0, 1):
        pairs = torch.arange(parity, R - 1, 2, device=state.tokens.device)
        if pairs.numel() == 0:
            continue
        low = (torch.arange(chains, device=pairs.device)[:, None] * R + pairs).flatten()
        high = low + 1
        log_a = (state.beta[low] - state.beta[high]) * (w[high] - w[low])
        ok = uniform(low.numel(), log_a.device, generator).log() < log_a
        a, b = low[ok], high[ok]
        order = torch.arange(state.tokens.shape[0], device=low.device)
        order[a], order[b] = b, a
        w = w[order]
        state = state._replace(**{name: getattr(state, name)[order] for name in fields})
        accepted[:, pairs] = ok.reshape(chains, -1).float()
    return state, accepted
