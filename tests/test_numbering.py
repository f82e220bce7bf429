"""Numbered regions through ANARCI (skipped where ANARCI or hmmscan is missing; CI
installs both). Expected CDRs of trastuzumab from the IMGT and Kabat definitions."""

from __future__ import annotations

import pytest

from pyro_mlm.numbering import anarci_available, region_indices

VH = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQ"
    "MNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
)
VL = (
    "DIQMTQSPSSLSASVGDRVTITCRASQDVNTAVAWYQQKPGKAPKLLIYSASFLYSGVPSRFSGSRSGTDFTLTISSLQPED"
    "FATYYCQQHYTTPPTFGQGTKVEIK"
)
CASES = [
    (VH, "cdrh1", "imgt", "GFNIKDTY"),
    (VH, "cdrh2", "imgt", "IYPTNGYT"),
    (VH, "cdrh3", "imgt", "SRWGGDGFYAMDY"),
    (VH, "cdrh1", "kabat", "DTYIH"),
    (VH, "cdrh2", "kabat", "RIYPTNGYTRYADSVKG"),
    (VH, "cdrh3", "kabat", "WGGDGFYAMDY"),
    (VH, "cdrs", "imgt", "GFNIKDTYIYPTNGYTSRWGGDGFYAMDY"),
    (VL, "cdrl1", "imgt", "QDVNTA"),
    (VL, "cdrl2", "imgt", "SAS"),
    (VL, "cdrl3", "imgt", "QQHYTTPPT"),
    (VL, "cdrl1", "kabat", "RASQDVNTAVA"),
    (VL, "cdrl2", "kabat", "SASFLYS"),
    (VL, "cdrl3", "kabat", "QQHYTTPPT"),
]

needs_anarci = pytest.mark.skipif(not anarci_available(), reason="ANARCI or hmmscan missing")


@needs_anarci
@pytest.mark.parametrize(("sequence", "region", "scheme", "expected"), CASES)
def test_cdrs_of_trastuzumab(sequence, region, scheme, expected) -> None:
    assert "".join(sequence[i] for i in region_indices(region, sequence, scheme)) == expected


@needs_anarci
def test_wrong_chain_and_no_domain_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="asks for a light-chain CDR, but ANARCI reads"):
        region_indices("cdrl3", VH)
    with pytest.raises(ValueError, match="no antibody variable domain"):
        region_indices("cdrh3", "ACDEFGHIKLMNPQRSTVWY")
    with pytest.raises(ValueError, match="unknown region"):
        region_indices("cdrh4", VH)


@needs_anarci
def test_free_takes_regions_and_ranges_together() -> None:
    from pyro_mlm.load import load_vocabulary
    from pyro_mlm.sites import parse_free

    try:
        vocab = load_vocabulary("antiberty")
    except ValueError:
        pytest.skip("antiberty is not installed")
    ids = vocab.encode(VH)
    mask = parse_free("1-2,cdrh3", ids, vocab, "kabat")
    assert vocab.region_text(ids[mask]) == "EV" + "WGGDGFYAMDY"
