"""Numbered regions through ANARCI (skipped where ANARCI is missing; CI installs it with
pyhmmer, which runs its HMM search in-process). Expected CDRs of trastuzumab from the IMGT
and Kabat definitions, and the in-process search's numbering equal, label for label, to
that of HMMER's ``hmmscan`` binary (recorded in ``data/anarci_hmmscan.json`` by
``hmmscan_fixture.py``, and recomputed where ``hmmscan`` is installed)."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
from hmmscan_fixture import VH, VL  # one copy of trastuzumab's chains

from pyro_mlm.design.hmmer import pyhmmer_available
from pyro_mlm.design.numbering import anarci_available, region_indices

pytestmark = pytest.mark.integration  # ANARCI and the packaged Sapiens models

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

needs_anarci = pytest.mark.skipif(not anarci_available(), reason="ANARCI or pyhmmer missing")
needs_pyhmmer = pytest.mark.skipif(
    not (anarci_available() and pyhmmer_available()), reason="ANARCI or pyhmmer missing"
)


@needs_pyhmmer
@pytest.mark.parametrize("scheme", ["imgt", "kabat"])
def test_in_process_search_numbers_like_hmmscan(scheme) -> None:
    """Every chain of the fixture (antibodies, mutants, indels, a 37-residue CDR-H3, an
    scFv's two domains, a non-antibody): identical numbers, insertion codes, residues,
    chain types and spans to ANARCI with HMMER's hmmscan binary."""
    from hmmscan_fixture import chains, numbering

    from pyro_mlm.design.hmmer import searched_in_process

    expected = json.loads(
        (pathlib.Path(__file__).with_name("data") / "anarci_hmmscan.json").read_text()
    )
    with searched_in_process():
        got = json.loads(json.dumps(numbering(chains(), scheme)))
    assert got == expected[scheme]
    assert sum(v is not None for v in got.values()) == len(got) - 1  # only the non-antibody


@pytest.mark.skipif(shutil.which("hmmscan") is None, reason="HMMER's hmmscan not installed")
@needs_pyhmmer
def test_fixture_is_what_hmmscan_gives_here() -> None:
    from hmmscan_fixture import chains, numbering

    expected = json.loads(
        (pathlib.Path(__file__).with_name("data") / "anarci_hmmscan.json").read_text()
    )
    assert json.loads(json.dumps(numbering(chains()[:4], "imgt"))) == {
        k: v for k, v in expected["imgt"].items() if k in dict(chains()[:4])
    }


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
    from pyro_mlm.design.sites import parse_free
    from pyro_mlm.models.load import load_vocabulary

    try:
        vocab = load_vocabulary("antiberty")
    except ValueError:
        pytest.skip("antiberty is not installed")
    ids = vocab.encode(VH)
    mask = parse_free("1-2,cdrh3", ids, vocab, "kabat")
    assert vocab.region_text(ids[mask]) == "EV" + "WGGDGFYAMDY"


# ------------------------------------------------------------------ outputs in IMGT terms
def _labelled_run(tmp_path, free: str):
    import csv
    import json

    from conftest import packaged_installed

    from pyro_mlm.cli import main

    if not packaged_installed("sapiens-h"):
        pytest.skip("needs sapiens==1.0.5")
    out = tmp_path / "run"
    argv = ["sample", "--model", "sapiens-h", "--sequence", VH, "--free", free, "--chains", "2"]
    assert main([*argv, "--warmup", "0", "--samples", "2", "--no-progress", "--out", str(out)]) == 0
    with open(out / "run.json", encoding="utf-8") as handle:
        resolved = json.load(handle)["resolved_free"]
    with open(out / "marginals.csv", encoding="utf-8") as handle:
        marginals = list(csv.DictReader(handle))
    with open(out / "designs.csv", encoding="utf-8") as handle:
        designs = list(csv.DictReader(handle))
    return resolved, marginals, designs


@needs_anarci
def test_outputs_carry_imgt_labels_regions_and_mutations(tmp_path, capsys) -> None:
    import re

    resolved, marginals, designs = _labelled_run(tmp_path, "cdrh3")
    assert resolved["how"] == "anarci-imgt"
    assert resolved["labels"] == [str(n) for n in range(105, 118)]  # 13 residues, no insertion
    assert set(resolved["regions"]) == {"CDR-H3"}
    assert [r["label_imgt"] for r in marginals] == resolved["labels"]  # the column names it
    assert {r["region"] for r in marginals} == {"CDR-H3"} and marginals[0]["start"] == "S"
    for d in designs:  # start residue, IMGT number, new residue
        for mutation in filter(None, d["mutations_imgt"].split(";")):
            start, label, new = re.fullmatch(r"([A-Z])(\d+[A-Z]?)([A-Z])", mutation).groups()
            k = resolved["labels"].index(label)
            assert start == "SRWGGDGFYAMDY"[k] and d["free_region"][k] == new != start
        mutations = d["mutations_imgt"]
        assert len(mutations.split(";")) == int(d["hamming_to_start"]) or not mutations
    printed = capsys.readouterr().out
    assert "free positions: CDR-H3 105-117 (13); numbered by ANARCI, IMGT" in printed
    assert "mutations (imgt numbers)" in printed


@needs_anarci
def test_free_cdrs_shows_the_three_cdrs_separated(tmp_path, capsys) -> None:
    resolved, _, designs = _labelled_run(tmp_path, "cdrs")
    assert [resolved["regions"].count(r) for r in ("CDR-H1", "CDR-H2", "CDR-H3")] == [8, 8, 13]
    for d in designs:
        assert [len(part) for part in d["free_region"].split(" / ")] == [8, 8, 13]
    capsys.readouterr()


def test_without_anarci_cdrh3_says_it_came_from_the_motifs(monkeypatch, tmp_path, capsys):
    import pyro_mlm.design.numbering

    monkeypatch.setattr(pyro_mlm.design.numbering, "anarci_available", lambda: False)
    resolved, marginals, designs = _labelled_run(tmp_path, "cdrh3")
    assert resolved["how"] == "motif" and set(resolved["regions"]) == {"CDR-H3"}
    assert resolved["positions"] == list(range(97, 110))  # residue numbers of SRWGGDGFYAMDY
    # every output says these are residue numbers, not IMGT (S97A, where IMGT has S105A)
    assert [r["label_residue"] for r in marginals] == [str(n) for n in range(97, 110)]
    assert "mutations_residue" in designs[0] and "mutations_imgt" not in designs[0]
    printed = capsys.readouterr().out
    assert "CDR-H3 from the YYC and WGxG motifs (no ANARCI), residue numbers" in printed
    assert "mutations (residue numbers)" in printed


@needs_anarci
@pytest.mark.parametrize(
    ("free", "where"), [("cdrh3", "IMGT 110-111"), ("99-111", "residues 102-103")]
)
def test_a_liability_in_the_start_is_named_in_the_runs_numbering(tmp_path, capsys, free, where):
    """Trastuzumab's CDR-H3 holds DG: the refusal names it where the run numbers it (IMGT
    for a numbered region, residue numbers for a range), not in character offsets."""
    from conftest import packaged_installed

    from pyro_mlm.cli import main

    if not packaged_installed("sapiens-h"):
        pytest.skip("needs sapiens==1.0.5")
    argv = ["sample", "--model", "sapiens-h", "--sequence", VH, "--free", free]
    argv += ["--expert", "forbid:preset=liabilities", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"it holds 'DG' at {where}" in err and err.count("\n") == 1, err
