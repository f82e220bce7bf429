"""Deterministic MH unit tests with stubbed energies and proposals."""

from __future__ import annotations

import math

import pytest
import torch

from pyro_mlm.energy import Evaluation
from pyro_mlm.samplers.proposals import Proposal
from pyro_mlm.samplers.transitions import (
    MHState,
    accept_reject,
    gibbs_step,
    log_acceptance_ratio,
    mh_step,
)


def test_acceptance_probability_is_exactly_e_to_the_minus_one() -> None:
    log_ratio = log_acceptance_ratio(
        torch.tensor([2.0]), torch.tensor([3.0]), torch.tensor([0.0]), torch.tensor([0.0])
    )
    prob, _ = accept_reject(log_ratio, torch.tensor([0.0]))
    assert prob.item() == pytest.approx(math.exp(-1.0))


def test_temperature_divides_the_energy_difference_only() -> None:
    log_ratio = log_acceptance_ratio(
        torch.tensor([0.0]),
        torch.tensor([4.0]),
        torch.tensor([math.log(0.5)]),
        torch.tensor([math.log(0.25)]),
        temperature=2.0,
    )
    assert log_ratio.item() == pytest.approx(-2.0 + math.log(0.25) - math.log(0.5))


def test_sign_of_the_proposal_correction() -> None:
    """Equal energies: a move the MLM proposes eagerly (q' large) and whose way back is
    unlikely (q small) is penalised by q/q'; the opposite move is favoured."""
    E = torch.tensor([1.0])
    likely, unlikely = torch.tensor([math.log(0.8)]), torch.tensor([math.log(0.1)])
    to_likely = log_acceptance_ratio(E, E, log_q_forward=likely, log_q_reverse=unlikely)
    to_unlikely = log_acceptance_ratio(E, E, log_q_forward=unlikely, log_q_reverse=likely)
    assert to_likely.item() == pytest.approx(math.log(0.1 / 0.8))
    assert to_unlikely.item() == pytest.approx(math.log(0.8 / 0.1))


def test_forced_accept_reject_and_nan() -> None:
    log_ratio = torch.tensor([0.5, -1.0, -1.0, float("nan"), float("-inf")])
    log_u = torch.tensor([-0.01, math.log(0.3), math.log(0.4), -5.0, -100.0])
    prob, accepted = accept_reject(log_ratio, log_u)
    # exp(-1) = 0.368: u = 0.3 accepts, u = 0.4 rejects; NaN and -inf always reject
    assert accepted.tolist() == [True, True, False, False, False]
    torch.testing.assert_close(prob, torch.tensor([1.0, math.exp(-1.0), math.exp(-1.0), 0.0, 0.0]))


class _Stub:
    """Stub proposal and energy: fixed proposed tokens, q's and energies; counts calls."""

    def __init__(
        self,
        new: list[int],
        log_q_fwd: list[float],
        log_q_rev: list[float],
        energy_of: dict[int, float],
    ) -> None:
        self.proposal = Proposal(
            torch.tensor(new), torch.tensor(log_q_fwd), torch.tensor(log_q_rev)
        )
        self.energy_of = energy_of
        self.evaluated: list[torch.Tensor] = []

    def propose(self, logits: torch.Tensor, current: torch.Tensor) -> Proposal:
        return self.proposal

    def evaluate(self, tokens: torch.Tensor, chain_index: torch.Tensor) -> Evaluation:
        self.evaluated.append(chain_index.clone())
        energy = torch.tensor([self.energy_of[int(t[1])] for t in tokens])
        return Evaluation(
            energy,
            torch.zeros(tokens.shape),
            torch.full((*tokens.shape, 3), 7.0),
            torch.ones(tokens.shape[0], dtype=torch.long),  # one free position each
        )


def _state(chains: int) -> MHState:
    tokens = torch.tensor([[2, 5, 3]]).repeat(chains, 1)
    beta, cursor = torch.ones(chains), torch.zeros((), dtype=torch.long)
    rows = torch.zeros(chains, dtype=torch.long)
    return MHState(
        tokens, torch.full((chains,), 1.0), torch.zeros(chains, 3, 3), beta, cursor, rows
    )


def test_mh_step_exact_probabilities_and_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    # chain 0: self-proposal; chain 1: E 1 -> 2, q's equal: accept prob e^-1;
    # chain 2: E 1 -> 0.5 and q'/q = 1: always accept; chain 3: E 1 -> 1, q'=0.5, q=0.05
    stub = _Stub(
        new=[5, 6, 7, 8],
        log_q_fwd=[math.log(0.3), math.log(0.2), math.log(0.2), math.log(0.5)],
        log_q_rev=[math.log(0.3), math.log(0.2), math.log(0.2), math.log(0.05)],
        energy_of={6: 2.0, 7: 0.5, 8: 1.0},
    )
    # uniforms of the three moving chains: 0.37 > e^-1 = 0.3679 rejects, 0.99 < 1 accepts,
    # 0.09 < 0.1 accepts
    u = torch.tensor([0.37, 0.99, 0.09])
    monkeypatch.setattr(torch, "rand", lambda *a, **k: u.clone())
    state, info = mh_step(_state(4), torch.tensor([1, 1, 1, 1]), stub.propose, stub.evaluate)
    assert [c.tolist() for c in stub.evaluated] == [[1, 2, 3]]  # chain 0 never evaluated
    torch.testing.assert_close(info.accept_prob, torch.tensor([1.0, math.exp(-1.0), 1.0, 0.1]))
    assert info.is_accepted.tolist() == [True, False, True, True]
    assert info.is_novel.tolist() == [False, False, True, True]
    assert state.tokens[:, 1].tolist() == [5, 5, 7, 8]
    assert state.energy.tolist() == [1.0, 1.0, 0.5, 1.0]
    assert state.logits[[2, 3]].eq(7.0).all() and state.logits[[0, 1]].eq(0.0).all()


def test_self_proposals_cost_no_evaluation() -> None:
    stub = _Stub([5, 5], [0.0, 0.0], [0.0, 0.0], {})
    _, info = mh_step(_state(2), torch.tensor([1, 1]), stub.propose, stub.evaluate)
    assert stub.evaluated == [] and info.is_accepted.all() and not info.is_novel.any()


def test_gibbs_always_accepts() -> None:
    stub = _Stub([6, 5], [0.0, 0.0], [0.0, 0.0], {})
    tokens, info = gibbs_step(
        torch.tensor([[2, 5, 3], [2, 5, 3]]),
        torch.tensor([1, 1]),
        stub.propose,
        lambda tokens, positions: torch.zeros(2, 3),
    )
    assert tokens[:, 1].tolist() == [6, 5]
    assert info.is_accepted.all() and info.is_novel.tolist() == [True, False]
