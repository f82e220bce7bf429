"""pyro_mlm/validation.py at the energy's boundary: every bad input is one clear error."""

from __future__ import annotations

import pytest
import torch

from pyro_mlm import MaskedLM, MLMEnergy


def test_float_tokens_are_refused(mlm: MaskedLM) -> None:
    with pytest.raises(TypeError, match=r"integer token ids.*mlm.encode"):
        MLMEnergy(mlm)(mlm.encode("a b").float())


def test_ids_outside_vocabulary_are_refused(mlm: MaskedLM) -> None:
    ids = mlm.encode("a b")
    ids[1] = 999
    with pytest.raises(ValueError, match=r"id 999, outside the vocabulary \[0, 13\)"):
        MLMEnergy(mlm)(ids)


def test_sequence_longer_than_positions_is_refused(mlm: MaskedLM) -> None:
    ids = mlm.encode(" ".join(["a"] * 40))
    with pytest.raises(ValueError, match=r"length 42 but .* has only 32 positions"):
        MLMEnergy(mlm)(ids)


def test_empty_free_set_is_refused(mlm: MaskedLM) -> None:
    ids = mlm.encode("a b")
    with pytest.raises(ValueError, match="free set is empty"):
        MLMEnergy(mlm)(ids, torch.zeros(len(ids), dtype=torch.bool))


def test_special_token_at_free_position_is_refused(mlm: MaskedLM) -> None:
    ids = mlm.encode("a b")
    with pytest.raises(ValueError, match=r"positions \[0\] are marked free but hold special"):
        MLMEnergy(mlm)(ids, torch.tensor([True, True, False, False]))
    with pytest.raises(ValueError, match="special"):
        MLMEnergy(mlm)(ids, [0, 1])


def test_free_mask_of_wrong_shape_is_refused(mlm: MaskedLM) -> None:
    ids = mlm.encode("a b")
    with pytest.raises(
        ValueError, match=r"free mask has shape \(3,\) but tokens have shape \(4,\)"
    ):
        MLMEnergy(mlm)(ids, torch.tensor([False, True, True]))
    with pytest.raises(ValueError, match="outside a sequence of length 4"):
        MLMEnergy(mlm)(ids, [1, 9])
    with pytest.raises(TypeError, match="bool mask"):
        MLMEnergy(mlm)(ids, torch.tensor([0.0, 1.0, 1.0, 0.0]))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_temperature_is_refused(mlm: MaskedLM, bad: float) -> None:
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        MLMEnergy(mlm, temperature=bad)


def test_unknown_parametrization_and_row_budget_are_refused(mlm: MaskedLM) -> None:
    with pytest.raises(ValueError, match="'norm' or 'raw'"):
        MLMEnergy(mlm, "softmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="row_budget"):
        MLMEnergy(mlm, row_budget=0)
