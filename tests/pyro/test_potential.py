"""The Pyro potential and model: trace log density = -U + constant."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro import poutine

from pyro_mlm import MaskedLM, MaskedUniformTokens, MLMEnergy, mlm_model, potential_fn


def _extra(tokens: torch.Tensor) -> torch.Tensor:
    return 0.7 * (tokens == 6).sum(-1).double()


@pytest.mark.parametrize(("parametrization", "temperature"), [("norm", 1.0), ("raw", 0.5)])
def test_trace_log_density_is_minus_potential_plus_constant(
    mlm: MaskedLM, parametrization: str, temperature: float
) -> None:
    energy = MLMEnergy(mlm, parametrization, temperature=temperature)
    context = mlm.encode("a b c d")
    free = torch.tensor([False, True, False, True, True, False])
    model = mlm_model(energy, context, free, extra_potential=_extra)
    U = potential_fn(energy, free, extra_potential=_extra)
    constant = -3 * math.log(len(mlm.proposable_ids))  # uniform prior over 8 tokens at 3 sites
    for text in ("a b c d", "h b g a", "b b f f"):
        x = mlm.encode(text)
        trace = poutine.trace(poutine.condition(model, {"tokens": x})).get_trace()
        expected = -(energy(x, free) + _extra(x)) / temperature + constant
        assert trace.log_prob_sum().item() == pytest.approx(expected.item(), abs=1e-4)
        assert U({"tokens": x}).item() == pytest.approx(-(expected.item() - constant), abs=1e-4)


def test_model_samples_keep_the_context(mlm: MaskedLM) -> None:
    context = mlm.encode("a b c")
    model = mlm_model(MLMEnergy(mlm), context, free=[2])
    trace = poutine.trace(model).get_trace()
    x = trace.nodes["tokens"]["value"]
    assert x.shape == context.shape and x[[0, 1, 3, 4]].tolist() == context[[0, 1, 3, 4]].tolist()
    density = trace.nodes["tokens"]["fn"].log_prob(x) + math.log(len(mlm.proposable_ids))
    assert density.item() == pytest.approx(-MLMEnergy(mlm)(x, [2]).item(), abs=1e-5)
    observed = [n for n, site in trace.nodes.items() if site.get("is_observed")]
    assert observed == []  # arviz.from_pyro finds no likelihood to evaluate


def test_potential_of_a_batch_is_one_energy_per_sequence(mlm: MaskedLM) -> None:
    batch = torch.stack([mlm.encode("a b"), mlm.encode("c d")])
    U = potential_fn(MLMEnergy(mlm, temperature=2.0))
    torch.testing.assert_close(U({"tokens": batch}), MLMEnergy(mlm)(batch) / 2.0)
    with pytest.raises(ValueError, match="'tokens' entry"):
        U({"x": batch})


def test_masked_uniform_tokens_support(mlm: MaskedLM) -> None:
    context = mlm.encode("a b")
    free = torch.tensor([False, True, True, False])
    prior = MaskedUniformTokens(context, free, mlm.proposable_ids)
    draws = prior.sample(torch.Size([500]))
    assert draws.shape == (500, 4) and bool((draws[:, [0, 3]] == context[[0, 3]]).all())
    assert set(draws[:, 1:3].flatten().tolist()) == set(mlm.proposable_ids.tolist())
    torch.testing.assert_close(prior.log_prob(draws), torch.full((500,), -2 * math.log(8)))
    bad = context.clone()
    bad[0] = 5  # a fixed position changed
    assert prior.log_prob(bad).item() == float("-inf")
    bad = context.clone()
    bad[1] = 4  # [MASK] is not proposable
    assert prior.log_prob(bad).item() == float("-inf")
    pyro.clear_param_store()
