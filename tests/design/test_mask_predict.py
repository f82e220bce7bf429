"""Mask-Predict and the warm start: what they re-mask, what they keep, what they cost."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_mlm

from pyro_mlm import MaskedLM
from pyro_mlm.design.mask_predict import mask_predict, predict_masked, warm_start


class ForwardLog:
    """Records the masked positions of every forward pass through ``mlm.model``."""

    def __init__(self, mlm: MaskedLM, monkeypatch: pytest.MonkeyPatch) -> None:
        self.masked: list[torch.Tensor] = []
        inner = mlm.model.forward

        def logged(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.masked.append(kwargs["input_ids"] == mlm.mask_token_id)
            return inner(*args, **kwargs)

        monkeypatch.setattr(mlm.model, "forward", logged)


def _batch(mlm: MaskedLM) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.stack([mlm.encode("a b c d e f g h"), mlm.encode("h g f e d c b a")])
    free = torch.zeros_like(tokens, dtype=torch.bool)
    free[0, 4:9] = True  # 5 free positions
    free[1, 7:9] = True  # 2 free positions
    return tokens, free


def test_warm_start_is_the_argmax_of_one_all_masked_pass(monkeypatch) -> None:
    mlm = tiny_mlm(init_range=0.3)
    tokens, free = _batch(mlm)
    expected, _ = predict_masked(mlm, tokens, free)
    log = ForwardLog(mlm, monkeypatch)
    out = warm_start(mlm, tokens, free)
    assert len(log.masked) == 1 and torch.equal(log.masked[0], free)
    assert torch.equal(out[free], expected[free])
    assert torch.equal(out[~free], tokens[~free])  # context untouched
    assert bool(torch.isin(out[free], mlm.proposable_ids).all())


def test_mask_predict_remasks_the_scheduled_number_of_least_confident(monkeypatch) -> None:
    mlm = tiny_mlm(init_range=0.3)
    tokens, free = _batch(mlm)
    log = ForwardLog(mlm, monkeypatch)
    out = mask_predict(mlm, tokens, free, iterations=4)
    # n_k = floor(T (N - k) / N): T=5 -> 3, 2, 1; T=2 -> 1, 1, 0
    assert [m.sum(-1).tolist() for m in log.masked] == [[5, 2], [3, 1], [2, 1], [1, 0]]
    for masked in log.masked:
        assert not bool((masked & ~free).any())  # never the context
    assert torch.equal(out[~free], tokens[~free])


def test_mask_predict_remasks_lowest_confidence_first(monkeypatch) -> None:
    mlm = tiny_mlm(init_range=0.3)
    tokens, free = _batch(mlm)
    _, confidence = predict_masked(mlm, tokens, free)
    log = ForwardLog(mlm, monkeypatch)
    mask_predict(mlm, tokens, free, iterations=2)
    row = confidence[0].masked_fill(~free[0], float("inf"))
    lowest = row.argsort()[:2]  # n_1 = floor(5 * 1 / 2) = 2
    assert sorted(log.masked[1][0].nonzero().flatten().tolist()) == sorted(lowest.tolist())


def test_bad_iterations_and_shapes_are_refused(mlm: MaskedLM) -> None:
    tokens, free = _batch(mlm)
    with pytest.raises(ValueError, match="iterations"):
        mask_predict(mlm, tokens, free, iterations=0)
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        mask_predict(mlm, tokens[0], free[0])
