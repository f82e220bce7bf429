"""Masked-conditional proposals: the draws and both log-probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from pyro_mlm.samplers.proposals import (
    masked_conditional_proposal,
    proposal_log_probs,
    token_log_prob,
)

IDS = torch.tensor([5, 6, 7])


def test_both_log_probs_come_from_the_same_conditional() -> None:
    logits = torch.tensor([[0.0, math.log(2.0), math.log(5.0)]])  # q = [1/8, 2/8, 5/8]
    for _ in range(20):
        p = masked_conditional_proposal(logits, torch.tensor([6]), IDS)
        q_new = {5: 1 / 8, 6: 2 / 8, 7: 5 / 8}[int(p.new_tokens)]
        assert p.log_q_forward.item() == pytest.approx(math.log(q_new))
        assert p.log_q_reverse.item() == pytest.approx(math.log(2 / 8))


def test_draws_follow_the_conditional() -> None:
    logits = torch.tensor([0.0, math.log(2.0), math.log(5.0)]).repeat(40000, 1)
    p = masked_conditional_proposal(logits, torch.full((40000,), 5), IDS)
    freq = torch.bincount(p.new_tokens - 5, minlength=3).double() / 40000
    # 4 standard errors of a binomial proportion at n = 40000: <= 0.01
    torch.testing.assert_close(
        freq, torch.tensor([1 / 8, 2 / 8, 5 / 8]).double(), atol=0.01, rtol=0
    )


def test_proposal_temperature_sharpens_and_flattens() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    cold = proposal_log_probs(logits, 0.5).exp()
    hot = proposal_log_probs(logits, 2.0).exp()
    torch.testing.assert_close(cold, torch.softmax(logits * 2, -1))
    torch.testing.assert_close(hot, torch.softmax(logits / 2, -1))


def test_non_proposable_current_token_has_zero_reverse_probability() -> None:
    log_q = torch.log_softmax(torch.zeros(2, 3), -1)
    out = token_log_prob(log_q, torch.tensor([4, 7]), IDS)
    assert out[0].item() == float("-inf")
    assert out[1].item() == pytest.approx(math.log(1 / 3))
