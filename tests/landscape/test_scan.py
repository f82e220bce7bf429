"""``pyro-mlm scan``: the files, the printed report, a resumed scan equal to an uninterrupted
one, refusals in one ``error:`` line, and Ray equal to local (issue 38)."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from pyro_mlm.cli import main
from pyro_mlm.landscape import scan_run

WILD = "a b c d e f g"


def _scan(model_dir: str, out: str, *extra: str) -> list[str]:
    return [
        "scan", "--model", model_dir, "--sequence", WILD, "--free", "2-5", "--out", out,
        "--no-progress", *extra,
    ]  # fmt: skip


def _rows(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_scan_writes_its_table_heatmap_and_report(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "scan")
    assert main(_scan(model_dir, out, "--top", "3")) == 0
    printed, said = capsys.readouterr()
    assert "4 positions x 7 mutants = 28 single mutants, 84 masked rows" in said
    assert "(|S| - 1 = 3 per mutant; + 4 for the wild type)" in said
    rows = _rows(os.path.join(out, "scan.csv"))
    assert len(rows) == 28 and sorted(int(r["rank"]) for r in rows) == list(range(1, 29))
    best = min(rows, key=lambda r: float(r["delta_energy"]))
    assert best["rank"] == "1" and f"{best['mutation']}" in printed.splitlines()[2]
    assert "Spearman" in printed and "top-3 overlap" in printed
    assert os.path.getsize(os.path.join(out, "heatmap.png")) > 1000
    with open(os.path.join(out, "scan.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["free"] == "2-5" and record["records"] == [["sequence1", WILD]]


def test_a_resumed_scan_equals_an_uninterrupted_one(model_dir, tmp_path, capsys, monkeypatch):
    whole = str(tmp_path / "whole")
    assert main(_scan(model_dir, whole)) == 0
    cut = str(tmp_path / "cut")
    real, calls = scan_run.Scanner.rows, []

    def stopped_at_the_third(self, site):  # Ctrl-C while the third position runs
        calls.append(site)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, site)

    monkeypatch.setattr(scan_run.Scanner, "rows", stopped_at_the_third)
    assert main(_scan(model_dir, cut)) == 130
    monkeypatch.setattr(scan_run.Scanner, "rows", real)
    partial = os.path.join(cut, "scan.partial.csv")
    assert len(_rows(partial)) == 2 * 7 and not os.path.exists(os.path.join(cut, "scan.csv"))
    with open(partial, "a", encoding="utf-8") as handle:  # and a kill mid-write after that
        handle.write("sequence1,4,4,,c,a,c4a,-0.1")
    capsys.readouterr()
    assert main(_scan(model_dir, cut)) == 0
    assert "2 positions scanned now" in capsys.readouterr().err
    for name in ("scan.csv", "scan.partial.csv"):
        with open(os.path.join(whole, name), "rb") as a, open(os.path.join(cut, name), "rb") as b:
            assert a.read() == b.read()


def test_a_finished_scan_is_not_scanned_again(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "scan")
    assert main(_scan(model_dir, out)) == 0
    capsys.readouterr()
    assert main(_scan(model_dir, out)) == 0
    printed, said = capsys.readouterr()
    assert "scanned now" not in said and "28 single mutants" in printed


def test_a_hard_expert_marks_mutants_forbidden(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "scan")
    assert main(_scan(model_dir, out, "--expert", "max-mutations:k=0")) == 0
    rows = _rows(os.path.join(out, "scan.csv"))
    assert len(rows) == 28 and all(r["forbidden"] == "True" for r in rows)
    assert all(r["delta_energy"] == "inf" and r["expert_max_mutations"] == "inf" for r in rows)
    assert all(float(r["delta_mlm"]) == float(r["delta_mlm"]) for r in rows)  # not NaN
    assert "28 single mutants (28 forbidden)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (("--free", "5-40"), "5-40"),
        (("--top", "0"), "--top must be >= 1"),
        (("--file", "DUPLICATES"), "x appear more than once"),
        (("--energy-over", "all", "--expert", "nope"), "nope"),
    ],
)
def test_bad_input_is_one_error_line(model_dir, tmp_path, capsys, extra, said) -> None:
    argv = _scan(model_dir, str(tmp_path / "scan"), *extra)
    if "DUPLICATES" in argv:  # two FASTA records of one name
        fasta = tmp_path / "two.fasta"
        fasta.write_text(f">x\n{WILD}\n>x\n{WILD}\n")
        argv[argv.index("DUPLICATES")] = str(fasta)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and said in err[-1]
    assert not os.path.exists(tmp_path / "scan")  # refused before anything was written


def test_other_settings_on_a_scan_directory_are_refused(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "scan")
    assert main(_scan(model_dir, out)) == 0
    capsys.readouterr()
    assert main(_scan(model_dir, out, "--energy", "raw")) == 2
    err = capsys.readouterr().err
    assert "holds a scan with other settings: energy" in err and "raw" in err


def test_a_damaged_row_is_named(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "scan")
    assert main(_scan(model_dir, out)) == 0
    partial = os.path.join(out, "scan.partial.csv")
    with open(partial, encoding="utf-8") as handle:
        lines = handle.readlines()
    cells = lines[3].split(",")
    lines[3] = ",".join([*cells[:8], "oops", *cells[9:]])
    with open(partial, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    capsys.readouterr()
    assert main(_scan(model_dir, out)) == 2
    assert "scan.partial.csv line 4: delta_mlm 'oops' is not a number" in capsys.readouterr().err


@pytest.mark.integration  # starts Ray
def test_ray_gives_the_local_table(model_dir, tmp_path, capsys) -> None:
    pytest.importorskip("ray")
    local, ray = str(tmp_path / "local"), str(tmp_path / "ray")
    assert main(_scan(model_dir, local)) == 0
    assert main(_scan(model_dir, ray, "--backend", "ray", "--workers", "2")) == 0
    a, b = _rows(os.path.join(local, "scan.csv")), _rows(os.path.join(ray, "scan.csv"))
    assert [r["mutation"] for r in a] == [r["mutation"] for r in b]
    for x, y in zip(a, b, strict=True):  # 1 thread per actor here, 2 locally: last bits
        assert float(x["delta_energy"]) == pytest.approx(float(y["delta_energy"]), abs=1e-5)


def test_sample_starts_from_a_scanned_mutant(model_dir, tmp_path, capsys) -> None:
    out, run = str(tmp_path / "scan"), str(tmp_path / "run")
    assert main(_scan(model_dir, out)) == 0
    second = next(r for r in _rows(os.path.join(out, "scan.csv")) if r["rank"] == "2")
    capsys.readouterr()
    argv = ["sample", "--from-scan", out, "--mutant-rank", "2", "--chains", "1", "--warmup", "0"]
    assert main([*argv, "--samples", "2", "--out", run, "--no-progress"]) == 0
    assert f"with {second['mutation']} (rank 2 of" in capsys.readouterr().err
    with open(os.path.join(run, "run.json"), encoding="utf-8") as handle:
        spec = json.load(handle)
    words = WILD.split()
    words[int(second["position"]) - 1] = second["mutant"]
    assert spec["sequences"] == [" ".join(words)] and spec["free"] == "2-5"
    assert spec["model"] == os.path.abspath(model_dir) or spec["model"] == model_dir
    assert main([*argv, "--mutant-rank", "99", "--out", str(tmp_path / "r2")]) == 2
    assert "has no mutant of rank 99" in capsys.readouterr().err


def test_pairs_are_exact_double_mutants_with_their_epistasis(model_dir, tmp_path, capsys):
    out = str(tmp_path / "scan")
    assert main(_scan(model_dir, out, "--pairs", "4")) == 0
    assert "double mutants of the best single mutants" in capsys.readouterr().out
    pairs, singles = _rows(os.path.join(out, "pairs.csv")), _rows(os.path.join(out, "scan.csv"))
    best = sorted(singles, key=lambda r: int(r["rank"]))[:4]
    at = {r["mutation"]: r for r in best}
    expected = {(a, b) for a in at for b in at if a < b and at[a]["position"] != at[b]["position"]}
    assert {tuple(sorted((p["mutation_a"], p["mutation_b"]))) for p in pairs} == expected
    assert os.path.getsize(os.path.join(out, "pairs.png")) > 1000

    from pyro_mlm import MLMEnergy
    from pyro_mlm.models.load import load_model

    mlm = load_model(model_dir, device="cpu")
    energy = MLMEnergy(mlm)
    wild = mlm.encode(WILD)
    free = torch.zeros_like(wild, dtype=torch.bool)
    free[mlm.content_positions(wild)[1:5]] = True
    for pair in pairs:  # each double mutant's dE against the energy API, one by one
        mutant = wild.clone()
        for key in ("mutation_a", "mutation_b"):
            row = at[pair[key]]
            mutant[int(mlm.content_positions(wild)[int(row["position"]) - 1])] = (
                mlm.tokenizer.convert_tokens_to_ids(row["mutant"])
            )
        exact = float(energy(mutant, free) - energy(wild, free))
        assert float(pair["delta_energy"]) == pytest.approx(exact, abs=1e-4)
        ddE = (
            exact
            - float(at[pair["mutation_a"]]["delta_energy"])
            - float(at[pair["mutation_b"]]["delta_energy"])
        )
        assert float(pair["epistasis"]) == pytest.approx(ddE, abs=1e-4)
