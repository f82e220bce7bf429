"""Free positions from the text a user types, and the masked warm start."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_mlm

from pyro_mlm import MLMEnergy
from pyro_mlm.design.sites import cdr_h3_range, fill_masked, parse_free

HEAVY = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQ"
    "MNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
)


@pytest.fixture(scope="module")
def chars():
    return tiny_mlm(char_level=True)


def positions(mask: torch.Tensor) -> list[int]:
    return mask.nonzero().flatten().tolist()


def test_cdr_h3_is_found_between_the_conserved_motifs() -> None:
    first, last = cdr_h3_range(HEAVY)
    assert HEAVY[first - 1 : last] == "SRWGGDGFYAMDY"
    with pytest.raises(ValueError, match="--free 98-110"):
        cdr_h3_range("EVQLVESGG")


def test_ranges_masks_and_keywords_name_content_positions(chars) -> None:
    ids = chars.encode("abcdef")  # [CLS] a b c d e f [SEP]: residue k is token k
    assert positions(parse_free("all", ids, chars)) == [1, 2, 3, 4, 5, 6]
    assert positions(parse_free("2-3,6", ids, chars)) == [2, 3, 6]
    assert positions(parse_free(" 2 - 3 ", ids, chars)) == [2, 3]
    assert positions(parse_free("*..**.", ids, chars)) == [1, 4, 5]
    masked = chars.encode("a[MASK]cd[MASK]f")
    assert positions(parse_free("masked", masked, chars)) == [2, 5]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("5-9", "falls outside the sequence, whose positions are 1-6"),
        ("0-2", "falls outside"),
        ("*.*", "has 3 characters, the sequence 6 positions"),
        ("......", "selects no position"),
        ("masked", "holds no mask token"),
        ("cdrh3", "ANARCI found no antibody variable domain|could not find the CDR-H3"),
        ("first half", "cannot read free positions"),
    ],
)
def test_bad_free_specs_say_what_is_wrong(chars, spec, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_free(spec, chars.encode("abcdef"), chars)


def test_cdrh3_needs_a_protein_model(mlm) -> None:
    with pytest.raises(ValueError, match="needs a protein model"):
        parse_free("cdrh3", mlm.encode("a b c"), mlm)


def test_fill_masked_draws_only_where_asked_from_proposable_tokens(chars) -> None:
    ids = chars.encode("a[MASK]c[MASK]").repeat(50, 1)
    where = ids == chars.mask_token_id
    where[:, 4] = False  # the last mask is fixed context and stays a mask
    out = fill_masked(MLMEnergy(chars).conditionals, ids, where, chars.proposable_ids)
    assert torch.equal(out[:, [0, 1, 3, 4, 5]], ids[:, [0, 1, 3, 4, 5]])
    assert bool(torch.isin(out[:, 2], chars.proposable_ids).all())
    assert len(set(out[:, 2].tolist())) > 1  # drawn, not argmax
