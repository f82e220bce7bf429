"""Energies equal a slow one-forward-per-position reference (bad input: test_validation.py)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_mlm
from exact import reference_energy

from pyro_mlm import MaskedLM, MLMEnergy
from pyro_mlm.energy import energy_terms, evaluate

SENTENCES = ["a b c d e", "h g", "c c c a b b f", "d"]


def _padded(mlm: MaskedLM, texts: list[str]) -> torch.Tensor:
    rows = [mlm.encode(t) for t in texts]
    length = max(len(r) for r in rows)
    out = torch.full((len(rows), length), mlm.pad_token_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


@pytest.mark.parametrize("parametrization", ["norm", "raw"])
@pytest.mark.parametrize("row_budget", [None, 1, 7])
def test_energy_matches_unbatched_reference_with_padding(
    mlm: MaskedLM, parametrization: str, row_budget: int | None
) -> None:
    tokens = _padded(mlm, SENTENCES)
    energy = MLMEnergy(mlm, parametrization, row_budget=row_budget)(tokens)
    for i, text in enumerate(SENTENCES):
        ids = mlm.encode(text)  # unpadded: padding must not change anything
        expected = reference_energy(mlm, ids, ~mlm.special_mask(ids), parametrization)
        assert energy[i].item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("parametrization", ["norm", "raw"])
def test_partial_free_mask_sums_only_free_positions(mlm: MaskedLM, parametrization: str) -> None:
    tokens = _padded(mlm, SENTENCES[:3])
    free = torch.zeros_like(tokens, dtype=torch.bool)
    free[0, [2, 4]] = True
    free[1, 1] = True
    free[2, [1, 3, 5, 7]] = True
    energy = MLMEnergy(mlm, parametrization)(tokens, free)
    for i, text in enumerate(SENTENCES[:3]):
        ids = mlm.encode(text)
        expected = reference_energy(mlm, ids, free[i, : len(ids)], parametrization)
        assert energy[i].item() == pytest.approx(expected, abs=1e-5)


def test_gather_head_equals_full_head() -> None:
    gathered = tiny_mlm(init_range=0.3)
    full = tiny_mlm(init_range=0.3)
    full.head_mode = "full"
    assert gathered.head_mode == "gather"
    tokens = _padded(gathered, SENTENCES)
    for parametrization in ("norm", "raw"):
        a = MLMEnergy(gathered, parametrization).evaluate(tokens, ~gathered.special_mask(tokens))
        b = MLMEnergy(full, parametrization).evaluate(tokens, ~full.special_mask(tokens))
        torch.testing.assert_close(a.energy, b.energy, atol=1e-5, rtol=0)
        torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)


def test_norm_energy_is_negative_pseudo_log_likelihood(mlm: MaskedLM) -> None:
    """Salazar et al.'s PLL: sum of log-softmax over the *full* vocabulary at each masked slot."""
    ids = mlm.encode("a b c")
    pll = 0.0
    for t in range(1, len(ids) - 1):
        row = ids.clone()
        row[t] = mlm.mask_token_id
        with torch.no_grad():
            logits = mlm.model(input_ids=row[None]).logits[0, t]
        pll += torch.log_softmax(logits, -1)[ids[t]].item()
    assert MLMEnergy(mlm, "norm")(ids).item() == pytest.approx(-pll, abs=1e-5)


def test_evaluation_returns_proposable_conditionals(mlm: MaskedLM) -> None:
    ids = mlm.encode("a b c")
    result = MLMEnergy(mlm).evaluate(ids[None], (~mlm.special_mask(ids))[None])
    assert result.logits.shape == (1, len(ids), len(mlm.proposable_ids))
    with torch.no_grad():
        row = ids.clone()
        row[2] = mlm.mask_token_id
        logits = mlm.model(input_ids=row[None]).logits[0, 2]
    torch.testing.assert_close(result.logits[0, 2], logits[mlm.proposable_ids], atol=1e-5, rtol=0)
    assert result.terms[0, 0] == 0 and result.terms[0, -1] == 0  # [CLS], [SEP] are context
    torch.testing.assert_close(result.terms.sum(-1), result.energy)


def test_energy_alone_keeps_no_conditionals(mlm: MaskedLM) -> None:
    """The energy alone does not hold B x L x K conditionals (bench/memory.py measures it)."""
    tokens = _padded(mlm, SENTENCES)
    free = ~mlm.special_mask(tokens)
    energy = MLMEnergy(mlm, row_budget=3)
    full = energy.evaluate(tokens, free)
    lean = energy.evaluate(tokens, free, keep_conditionals=False)
    assert lean.logits.shape == (len(SENTENCES), 0, len(mlm.proposable_ids))
    torch.testing.assert_close(lean.energy, full.energy, atol=0, rtol=0)
    torch.testing.assert_close(lean.terms, full.terms, atol=0, rtol=0)
    torch.testing.assert_close(energy(tokens), full.energy, atol=0, rtol=0)


def test_energy_accepts_leading_batch_dims(mlm: MaskedLM) -> None:
    ids = mlm.encode("a b c d")
    batch = torch.stack([ids, ids.flip(0)]).reshape(1, 2, -1)
    batch[0, 1] = ids  # keep specials where they belong
    energy = MLMEnergy(mlm)(batch)
    assert energy.shape == (1, 2)
    assert energy[0, 0].item() == pytest.approx(MLMEnergy(mlm)(ids).item(), abs=1e-6)


def test_energy_terms_formulas() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    target = torch.tensor([2])
    assert energy_terms(logits, target, "raw").item() == pytest.approx(-3.0)
    expected = -(3.0 - torch.logsumexp(logits[0], 0).item())
    assert energy_terms(logits, target, "norm").item() == pytest.approx(expected)


def test_chunking_calls_the_model_per_row_budget(mlm: MaskedLM) -> None:
    calls: list[int] = []

    def counting(ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        calls.append(ids.shape[0])
        return mlm.masked_logits(ids, attn, pos)

    tokens = _padded(mlm, SENTENCES)
    free = ~mlm.special_mask(tokens)
    evaluate(
        counting,
        tokens,
        free,
        mlm.attention_mask(tokens),
        mask_id=mlm.mask_token_id,
        proposable_ids=mlm.proposable_ids,
        row_budget=4,
    )
    assert sum(calls) == int(free.sum()) and max(calls) <= 4
