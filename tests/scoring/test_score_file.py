"""score --out records what wrote it, reads its rows back strictly, and keeps each record's
name; FASTA input is never dropped silently (issue 23: points 2, 3, 7, 11)."""

from __future__ import annotations

import csv
import json
import math
import os

import pytest
from conftest import save_tiny
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyro_mlm.cli import main
from pyro_mlm.cli.inputs import read_records
from pyro_mlm.scoring.score_file import columns_of, open_score_file

FASTA = ">first one\na b c\n>second\nh g f\n>third\nd d\n"


def _score(model_dir: str, fasta: str, out: str, *extra: str) -> list[str]:
    return ["score", "--model", model_dir, "--file", fasta, "--out", out, "--no-progress", *extra]


@pytest.fixture()
def scored(model_dir, tmp_path, capsys):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(FASTA)
    out = tmp_path / "scores.csv"
    assert main(_score(model_dir, str(fasta), str(out))) == 0
    capsys.readouterr()
    return fasta, out


def test_rows_carry_the_record_names_and_a_record_of_the_run(model_dir, scored) -> None:
    _, out = scored
    with open(out, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == ["first one", "second", "third"]
    assert [r["sequence"] for r in rows] == ["a b c", "h g f", "d d"]
    with open(f"{out}.json", encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["model"] == os.path.abspath(model_dir) and record["energies"] == ["norm", "raw"]


def _rewrite(out, edit) -> None:
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(edit(lines)))


RERUNS = [
    ("another --energy", lambda m, f, o, t: _score(m, f, o, "--energy", "raw"), None,
     "written by another scoring run: energies ['norm', 'raw'] (now ['raw'])"),
    ("another input of the same size", None, ">first one\na b c\n>second\na a\n>third\nd d\n",
     "line 3: row 1 holds 'second', another record"),
    ("a shorter input", None, ">first one\na b c\n", "row 1, but the input has 1 sequences"),
    ("a damaged header", "header", None, "line 1: the header is"),
    ("a garbled index", "index", None, "line 3: the index 'x1' is not a row number"),
    ("an empty energy", "energy", None, "line 2: energy_norm '' is not a number"),
    ("a row written twice", "twice", None, "line 5: row 1 appears twice"),
    ("a missing record", "record", None, "no record of what wrote them"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "argv", "other", "message"), RERUNS, ids=lambda c: str(c)[:30])
def test_a_rerun_that_does_not_match_is_one_error_line(
    model_dir, scored, capsys, name, argv, other, message
) -> None:
    fasta, out = scored
    if other is not None:
        fasta.write_text(other)
    if argv == "header":
        _rewrite(out, lambda lines: ["indx,name,sequence\n", *lines[1:]])
    elif argv == "index":
        _rewrite(out, lambda lines: [*lines[:2], "x" + lines[2], *lines[3:]])
    elif argv == "energy":
        _rewrite(out, lambda lines: [lines[0], lines[1].replace(lines[1].split(",")[4], ""),
                                     *lines[2:]])  # fmt: skip
    elif argv == "twice":
        _rewrite(out, lambda lines: [*lines, lines[2]])
    elif argv == "record":
        os.remove(f"{out}.json")
    before = out.read_bytes()
    command = argv(model_dir, str(fasta), str(out), None) if callable(argv) else None
    assert main(command or _score(model_dir, str(fasta), str(out))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert str(out) in err[0] and out.read_bytes() == before  # named, and left as it was


def test_another_model_is_refused(scored, tmp_path, capsys) -> None:
    fasta, out = scored
    other = save_tiny(tmp_path / "other-model", seed=1)
    assert main(_score(other, str(fasta), str(out))) == 2
    assert "written by another scoring run: model" in capsys.readouterr().err


def test_a_rerun_of_the_same_run_scores_nothing_again(model_dir, scored, capsys) -> None:
    fasta, out = scored
    before = out.read_bytes()
    assert main(_score(model_dir, str(fasta), str(out))) == 0
    assert "0 rows written now, 3 already there" in capsys.readouterr().out
    assert out.read_bytes() == before


FASTA_ERRORS = [
    ("a b\n>first\nc d\n", "line 1: sequence text before the first '>' header"),
    (">first\na b\n>empty\n>third\nc d\n", "line 3: the record 'empty' has no sequence"),
    (">first\na b\n>last\n", "line 3: the record 'last' has no sequence"),
]


@pytest.mark.parametrize(("text", "message"), FASTA_ERRORS)
def test_fasta_input_is_never_dropped_silently(model_dir, tmp_path, capsys, text, message):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(text)
    assert main(["score", "--model", model_dir, "--file", str(fasta)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(fasta) in err[0]


def test_json_output_names_each_record(model_dir, tmp_path, capsys) -> None:
    fasta = tmp_path / "in.fasta"
    fasta.write_text(FASTA)
    assert main(["score", "--model", model_dir, "--file", str(fasta), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["first one", "second", "third"]


# ------------------------------------------------------------------ properties
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12)
SEQS = st.text("ACDEFGHIKLMNPQRSTVWY", min_size=1, max_size=30)


@SETTINGS
@given(records=st.lists(st.tuples(NAMES, SEQS), min_size=1, max_size=6), width=st.integers(1, 9))
def test_fasta_records_read_back_exactly(tmp_path, records, width) -> None:
    path = tmp_path / "r.fasta"
    lines = []
    for name, seq in records:
        lines.append(">" + name)
        lines += [seq[k : k + width] for k in range(0, len(seq), width)]
    path.write_text("\n".join(lines) + "\n")
    names = [n.strip() or f"record{k + 1}" for k, (n, _) in enumerate(records)]
    assert read_records(str(path)) == list(zip(names, [s for _, s in records], strict=True))


@SETTINGS
@given(line=st.integers(0, 3), column=st.integers(0, 6), junk=st.text(max_size=6))
def test_a_corrupted_score_file_is_named_or_read_unchanged(tmp_path, line, column, junk):
    records = [("r1", "a b"), ("r2", "c d"), ("r3", "e f")]
    kinds = ["norm", "raw"]
    path = tmp_path / "s.csv"
    for old in (path, tmp_path / "s.csv.json"):  # hypothesis reuses tmp_path
        old.unlink(missing_ok=True)
    open_score_file(str(path), "m", kinds, records)  # writes its record
    rows = [columns_of(kinds)] + [
        [str(i), n, s, "2", "1.5", "-2.5", "0.75"] for i, (n, s) in enumerate(records)
    ]
    original, rows[line][column] = rows[line][column], junk
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    try:
        done = open_score_file(str(path), "m", kinds, records)
    except ValueError as err:
        assert str(path) in str(err) and "line" in str(err)
        return
    assert done == {0, 1, 2}
    if junk != original:  # accepted only where the junk is itself a valid value there
        assert line > 0 and column >= 3
        assert junk.strip().isdigit() if column == 3 else math.isfinite(float(junk))
