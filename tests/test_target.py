"""pyro_mlm/target.py: experts summed into one target, proposals restricted where an
expert says so, and the energy over the free positions or all of them."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_mlm

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.experts import Allowed, Context, MaxMutations, build_expert
from pyro_mlm.samplers import build_sampler
from pyro_mlm.target import restricts

TEXT = "a b c d e f g h"


@pytest.fixture(scope="module")
def words():
    return tiny_mlm(num_words=8, init_range=0.3)


def test_allowed_restricts_target_and_proposal(words) -> None:
    ids = words.encode(TEXT)
    free = torch.zeros_like(ids, dtype=torch.bool)
    free[2:6] = True
    context = Context(words, ids, free)
    expert = build_expert("allowed:2-3:a|b", context)  # words 2-3 are tokens 2-3
    assert isinstance(expert, Allowed) and expert.sites == {2: [5, 6], 3: [5, 6]}
    target = Target(MLMEnergy(words), [expert])
    logits = target.evaluate(ids[None], free[None]).logits[0]
    k = words.proposable_ids.tolist()
    others = [k.index(i) for i in k if i not in (5, 6)]
    assert torch.isinf(logits[2, others]).all()
    assert torch.isfinite(logits[2, [k.index(5), k.index(6)]]).all()
    assert torch.isfinite(logits[4]).all()  # unrestricted position
    cond = target.conditionals(ids[None].repeat(2, 1), torch.tensor([3, 4]))
    assert torch.isinf(cond[0]).sum() == len(k) - 2 and torch.isfinite(cond[1]).all()
    with pytest.raises(ValueError, match="falls outside the sequence"):
        build_expert("allowed:0-3:a", context)


def test_energy_over_all_scores_every_position_and_counts_its_rows(words) -> None:
    ids = words.encode("a b c d e")
    free = torch.zeros_like(ids, dtype=torch.bool)
    free[2:4] = True
    over_free = Target(MLMEnergy(words))
    over_all = Target(MLMEnergy(words), over="all")
    content = ~words.special_mask(ids)
    assert torch.allclose(over_all(ids, free), MLMEnergy(words)(ids, content))
    assert torch.allclose(over_free(ids, free), MLMEnergy(words)(ids, free))
    for target, rows in ((over_free, 2), (over_all, 5)):
        sampler = build_sampler("mh", target, free[None].repeat(3, 1))
        state = sampler.init(ids[None].repeat(3, 1))
        state, info = sampler.step(state, torch.Generator().manual_seed(0))
        # every evaluated proposal costs `rows` rows; self-proposals cost none
        assert bool((info.rows % rows == 0).all()) and int(info.rows.max()) > 0
    with pytest.raises(ValueError, match="over must be 'free' or 'all'"):
        Target(MLMEnergy(words), over="some")


def test_whether_an_expert_restricts_the_proposal(words) -> None:
    """Registered experts answer from their declaration; an expert of the user's own that
    declares nothing restricts when it has an ``allowed`` method."""
    ids = words.encode("a b c")
    free = torch.ones_like(ids, dtype=torch.bool)
    assert restricts(build_expert("allowed:2:a", Context(words, ids, free)))
    assert not restricts(MaxMutations(ids, free, k=1))

    class Own:
        def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
            return torch.zeros(tokens.shape[0])

        def allowed(self, length: int, ids: torch.Tensor) -> torch.Tensor:
            return torch.ones(length, ids.numel(), dtype=torch.bool)

    assert restricts(Own()) and not restricts(lambda tokens: torch.zeros(len(tokens)))
    assert isinstance(build_expert("allowed:2:a", Context(words, ids, free)), Allowed)
