"""``pyro-mlm sample`` and ``pyro-mlm score`` end to end, resume, and every error case."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import matplotlib.image
import pytest
import torch

from pyro_mlm import MaskedLM, MLMEnergy
from pyro_mlm.cli import main
from pyro_mlm.report.arviz_compat import arviz
from pyro_mlm.run.loop import sample_to_directory
from pyro_mlm.run.spec import RunSpec

TEXT = "a b c d e f g h"
SAMPLE = ["sample", "--no-progress", "--sequence", TEXT, "--free", "2-7", "--chains", "3"]


def lines(path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_writes_draws_report_and_plots(model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        capsys, *SAMPLE, "--model", model_dir, "--warmup", "2", "--samples", "6", "--out", str(out)
    )
    assert code == 0, err
    assert "finished: 6 draws per chain x 3 chains" in stdout and "r_hat" in stdout
    records = lines(out / "samples.jsonl")
    assert len(records) == 18
    assert {(r["chain"], r["draw"]) for r in records} == {
        (c, d) for c in range(3) for d in range(6)
    }
    mlm = MaskedLM.from_pretrained(model_dir)
    for r in records:
        ids = torch.tensor(r["tokens"])
        assert mlm.decode(ids) == r["sequence"]
        assert r["sequence"].split()[0] == "a" and r["sequence"].split()[-1] == "h"  # fixed
        free = torch.zeros(len(ids), dtype=torch.bool)
        free[2:8] = True  # words 2-7: the energy sums over the free positions
        assert r["energy"] == pytest.approx(float(MLMEnergy(mlm)(ids, free)), abs=1e-3)
        assert 0 <= r["novel_rate"] <= r["acceptance_rate"] <= 1
        assert r["hamming"] == sum(
            a != b for a, b in zip(r["sequence"].split(), TEXT.split(), strict=True)
        )
    idata = arviz().from_netcdf(out / "posterior.nc")
    assert idata["sequences"]["tokens"].shape == (3, 6, 10)
    assert set(idata.sample_stats.data_vars) >= {"lp", "acceptance_rate", "is_novel"}
    header = (out / "summary.csv").read_text().splitlines()
    assert {"ess_bulk", "ess_tail", "r_hat"} <= set(header[0].split(","))
    # the diagnostics, then the sweep statistics under the progress line's names
    rows = [row.split(",")[0] for row in header[1:]]
    assert rows == ["energy", "hamming", "acceptance_rate", "novel_rate"]
    diversity = (out / "diversity.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in diversity] == [
        "quantity",
        "distinct designs",
        "mean pairwise hamming",
        "mean entropy per position (bits)",
    ]
    for png in ("trace.png", "rank.png"):
        image = matplotlib.image.imread(out / png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    spec = RunSpec.from_json((out / "run.json").read_text())
    assert spec.sequences == (TEXT,) * 3 and spec.free == "2-7" and spec.model == model_dir


def interrupted_then_resumed(spec, mlm, directory, stop_at: int, capsys) -> list[dict]:
    def stop(sweep: int) -> None:
        if sweep == stop_at:
            raise KeyboardInterrupt  # after the sweep's draws, before its checkpoint

    first = sample_to_directory(spec, mlm, directory, progress=False, on_sweep=stop)
    assert not first.completed and first.draws == max(stop_at - spec.warmup, 0)
    with open(os.path.join(directory, "samples.jsonl"), "a", encoding="utf-8") as handle:
        handle.write('{"chain": 0, "draw": 9')  # a line torn by a kill
    code, _, err = run_cli(capsys, "sample", "--resume", directory, "--no-progress")
    assert code == 0, err
    return lines(os.path.join(directory, "samples.jsonl"))


@pytest.mark.parametrize("kernel", ["mh", "gibbs"])
def test_interrupted_then_resumed_run_has_exactly_the_uninterrupted_draws(
    model_dir, tmp_path, capsys, kernel
) -> None:
    mlm = MaskedLM.from_pretrained(model_dir)
    spec = RunSpec(
        model=model_dir,
        sequences=("a b [MASK] d e [MASK] g h",) * 3,
        free="masked" if kernel == "mh" else "2-7",
        kernel=kernel,
        warmup=3,
        samples=8,
        seed=7,
    )
    whole = sample_to_directory(spec, mlm, str(tmp_path / "whole"), progress=False)
    assert whole.completed and whole.draws == 8
    expected = lines(tmp_path / "whole" / "samples.jsonl")
    for stop_at in (2, 7):  # during warm-up, and during sampling
        got = interrupted_then_resumed(spec, mlm, str(tmp_path / f"cut{stop_at}"), stop_at, capsys)
        assert got == expected
    moved = {r["sequence"] for r in expected}
    assert len(moved) > 3  # the chains did move: the comparison is not vacuous


def test_a_killed_process_resumes_without_duplicate_or_lost_draws(model_dir, tmp_path, capsys):
    """SIGKILL (no handler can run) mid-run; SIGTERM exits cleanly with a report."""
    argv = [*SAMPLE, "--model", model_dir, "--warmup", "2", "--samples", "100", "--seed", "3"]
    whole = tmp_path / "whole"
    assert main([*argv, "--out", str(whole)]) == 0
    expected = lines(whole / "samples.jsonl")
    for sig, code in ((signal.SIGKILL, -9), (signal.SIGTERM, 130)):
        cut = tmp_path / f"cut{int(sig)}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyro_mlm.cli", *argv, "--out", str(cut)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "CI": "1"},
        )
        deadline = time.time() + 120
        jsonl = cut / "samples.jsonl"
        while time.time() < deadline and (not jsonl.exists() or jsonl.stat().st_size < 3_000):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        stdout, _ = proc.communicate(timeout=60)
        assert proc.returncode == code
        kept = lines(jsonl) if sig == signal.SIGTERM else None
        if sig == signal.SIGTERM:
            assert b"INTERRUPTED" in stdout and (cut / "posterior.nc").exists()
            assert kept == expected[: len(kept)] and 0 < len(kept) < len(expected)
        assert main(["sample", "--resume", str(cut), "--no-progress"]) == 0
        assert lines(jsonl) == expected
    capsys.readouterr()


def test_resume_can_extend_a_finished_run(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "run")
    assert (
        main([*SAMPLE, "--model", model_dir, "--warmup", "1", "--samples", "3", "--out", out]) == 0
    )
    assert main(["sample", "--resume", out, "--samples", "5", "--no-progress"]) == 0
    longer = str(tmp_path / "longer")
    assert (
        main([*SAMPLE, "--model", model_dir, "--warmup", "1", "--samples", "5", "--out", longer])
        == 0
    )
    assert lines(os.path.join(out, "samples.jsonl")) == lines(os.path.join(longer, "samples.jsonl"))
    capsys.readouterr()


def test_length_starts_from_masks_filled_by_the_model(model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "sample", "--model", model_dir, "--length", "5", "--chains", "2",
        "--warmup", "1", "--samples", "2", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    records = lines(out / "samples.jsonl")
    assert all(len(r["sequence"].split()) == 5 and "[MASK]" not in r["sequence"] for r in records)


def test_score_prints_both_energies_as_a_table_or_json(model_dir, tmp_path, capsys) -> None:
    mlm = MaskedLM.from_pretrained(model_dir)
    code, out, _ = run_cli(
        capsys, "score", "--model", model_dir, "a b c", "h g", "--format", "json"
    )
    assert code == 0
    rows = json.loads(out)
    for row, text in zip(rows, ["a b c", "h g"], strict=True):
        ids = mlm.encode(text)
        assert row["sequence"] == text and row["positions"] == len(text.split())
        assert row["energy_norm"] == pytest.approx(float(MLMEnergy(mlm, "norm")(ids)), abs=1e-3)
        assert row["energy_raw"] == pytest.approx(float(MLMEnergy(mlm, "raw")(ids)), abs=1e-3)
    fasta = tmp_path / "seqs.fa"
    fasta.write_text(">one\na b c\n>two\nh g\n")
    code, out, _ = run_cli(capsys, "score", "--model", model_dir, "--file", str(fasta))
    assert code == 0
    table = out.splitlines()
    assert table[0].split() == [
        "name",
        "positions",
        "energy_norm",
        "energy_raw",
        "norm_per_position",
        "sequence",
    ]
    assert table[1].split()[-3:] == ["a", "b", "c"] and len(table) == 3
    assert [row.split()[0] for row in table[1:]] == ["one", "two"]  # the FASTA names


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sample", "--model", "antibery", "--sequence", "AAA"], "unknown model 'antibery'"),
        (["sample", "--model", "./no/such/dir", "--sequence", "a"], "no model directory"),
        (["sample", "--sequence", TEXT, "--free", "3-30"], "falls outside the sequence"),
        (["sample", "--sequence", "a b zz"], "outside the vocabulary"),
        (["sample", "--sequence", TEXT, "--chains", "0"], "--chains must be >= 1"),
        (
            ["sample", "--sequence", TEXT, "--temperature", "-1"],
            "temperature must be finite and > 0",
        ),
        (
            ["sample", "--sequence", "a b", "--sequence", "a c", "--chains", "3"],
            "2 starting sequences for 3",
        ),
        (["sample", "--sequence", "a b", "--sequence", "a b c"], "encode to different lengths"),
        (["sample"], "give a starting sequence"),
        (["sample", "--resume", "/nonexistent"], "no run.json there"),
        (["score"], "give sequences to score"),
        (["score", "--file", "/nonexistent.fa"], "no such file"),
    ],
)
def test_errors_are_one_clear_line(model_dir, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if "--model" not in argv and argv[0] == "sample" and "--resume" not in argv:
        argv = [*argv, "--model", model_dir]
    if argv[0] == "sample" and "--resume" not in argv:
        argv = [*argv, "--out", str(tmp_path / "out")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "samples.jsonl").exists()


def test_an_output_directory_holding_another_run_is_refused(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "run")
    base = [*SAMPLE, "--model", model_dir, "--warmup", "0", "--samples", "1"]
    assert main([*base, "--out", out]) == 0
    capsys.readouterr()
    code, _, err = run_cli(capsys, *base, "--out", out)
    assert code == 2 and "already holds a run; continue it with --resume" in err
    code, _, err = run_cli(capsys, "sample", "--resume", out, "--energy", "raw")
    assert code == 2 and "holds a different run: it has energy='norm'" in err
    code, _, err = run_cli(capsys, "sample", "--resume", out, "--samples", "0")
    assert code == 2 and "fewer than the run's 1" in err
    os.remove(os.path.join(out, "run.json"))
    code, _, err = run_cli(capsys, *base, "--out", out)
    assert code == 2 and "holds files of another run" in err


def test_a_missing_extra_is_one_line(capsys, tmp_path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "sapiens" else real(n, *a)
    )
    code, _, err = run_cli(capsys, "score", "--model", "sapiens-h", "EVQLV")
    assert code == 2 and "pip install --no-deps 'sapiens==1.0.5'" in err and err.count("\n") == 1


needs_antiberty = pytest.mark.skipif(
    importlib.util.find_spec("antiberty") is None, reason="needs pip install antiberty==0.1.3"
)


@needs_antiberty
def test_short_antiberty_cdr_h3_run(tmp_path, capsys) -> None:
    from conftest import TRASTUZUMAB_VH

    out = tmp_path / "h3"
    code, stdout, err = run_cli(
        capsys, "sample", "--model", "antiberty", "--sequence", TRASTUZUMAB_VH, "--free",
        "cdrh3", "--chains", "2", "--warmup", "0", "--samples", "1", "--out", str(out),
        "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    records = lines(out / "samples.jsonl")
    assert len(records) == 2
    for r in records:  # the framework is fixed; only the 13 CDR-H3 residues may differ
        seq = r["sequence"]
        assert seq[:95] == TRASTUZUMAB_VH[:95] and seq[108:] == TRASTUZUMAB_VH[108:]
    assert "antiberty" in err and "top 2 designs" in stdout


@pytest.mark.skipif(importlib.util.find_spec("rxnmapper") is None, reason="needs rxnmapper")
def test_non_bert_architecture_end_to_end_with_rxnmapper_albert(tmp_path, capsys) -> None:
    out = tmp_path / "rxn"
    reaction = "O=C(O)c1ccccc1.OCC>>O=C(OCC)c1ccccc1"
    code, _, err = run_cli(
        capsys, "sample", "--model", "rxnmapper", "--sequence", reaction, "--free", "16-18",
        "--chains", "2", "--warmup", "1", "--samples", "3", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    records = lines(out / "samples.jsonl")
    assert len(records) == 6
    for r in records:  # only the reagent (ethanol, tokens 16-18) may change
        assert r["sequence"].startswith("O=C(O)c1ccccc1.") and r["sequence"].endswith(
            ">>O=C(OCC)c1ccccc1"
        )
    code, out_json, _ = run_cli(
        capsys, "score", "--model", "rxnmapper", "CCO>>CC=O", "--format", "json"
    )
    assert code == 0 and json.loads(out_json)[0]["positions"] == 8


def test_help_is_instant_and_there_is_a_version() -> None:
    """``--help`` and ``--version`` import neither torch nor transformers."""
    code = (
        "import sys, pyro_mlm.cli as c\n"
        "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'pyro', 'arviz') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: pyro-mlm" in out.stdout and out.stdout.strip().endswith("[]")
    version = subprocess.run(
        [sys.executable, "-m", "pyro_mlm.cli", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.strip() == "pyro-mlm 0.1.0"


def test_a_loaded_machine_gets_one_thread_and_says_so(model_dir, monkeypatch, capsys) -> None:
    import os

    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    try:
        assert main(["score", "--model", "/nonexistent", "a"]) == 2
        assert "load average" not in capsys.readouterr().err  # an input error comes alone
        assert torch.get_num_threads() == 1
        assert main(["score", "--model", model_dir, "a b"]) == 0  # a model loads: said once
        assert capsys.readouterr().err.count("load average (99.0) exceeds this machine's 2") == 1
        assert main(["score", "--model", "/nonexistent", "--threads", "2", "a"]) == 2
        assert "load average" not in capsys.readouterr().err and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_missing_extra_is_reported_before_torch_loads() -> None:
    from conftest import run_fresh_python

    _, err = run_fresh_python(
        "import sys\nsys.modules['antiberty'] = None  # as if the extra were not installed\n"
        "from pyro_mlm.cli import main\n"
        "rc = main(['sample', '--model', 'antiberty', '--sequence', 'EVQLV', '--free', 'all',"
        " '--out', 'x'])\n"
        "assert rc == 2 and 'torch' not in sys.modules, (rc, 'torch' in sys.modules)\n"
    )
    assert "pip install 'antiberty==0.1.3'" in err


def test_the_default_model_is_sapiens_for_the_start_s_chain(tmp_path, capsys) -> None:
    """``--model sapiens`` (the default) reads the start's chain: trastuzumab's VH gets
    Sapiens-H and says so; a light chain Sapiens-L; a start that is no antibody chain, or
    none (``--length``), is one error line naming the models to choose."""
    from conftest import TRASTUZUMAB_VH

    from pyro_mlm.cli.inputs import resolve_model

    assert resolve_model("sapiens", TRASTUZUMAB_VH) == "sapiens-h"
    assert "model: sapiens-h (" in capsys.readouterr().err
    light = "DIQMTQSPSSLSASVGDRVTITCRASQDVNTAVAWYQQKPGKAPKLLIYSASFLYSGVPSRFSGSRSGTDFTLTISSLQPEDFATYYCQQHYTTPPTFGQGTKVEIK"  # noqa: E501 - trastuzumab VL
    assert resolve_model("sapiens", light) == "sapiens-l"
    assert "model: sapiens-l (" in capsys.readouterr().err
    assert resolve_model("antiberty", "anything") == "antiberty"
    for argv, message in (
        (["--sequence", "MKTAYIAKQRQISFVKSHFSRQ"], "the start is neither"),
        (["--length", "5"], "there is none to read"),
    ):
        code, _, err = run_cli(capsys, "sample", *argv, "--out", str(tmp_path / "x"))
        assert code == 2 and message in err and "--model sapiens-h" in err, err
        assert err.count("\n") == 1


def test_the_chain_type_without_anarci_comes_from_the_framework_4_motif(monkeypatch) -> None:
    from pyro_mlm.design import numbering

    monkeypatch.setattr(numbering, "anarci_available", lambda: False)
    assert numbering.chain_type("CARDYWGQGTLVTVSS")[0] == "H"
    assert numbering.chain_type("CQQHYTTPPTFGQGTKVEIK")[0] == "L"
    chain, how = numbering.chain_type("MKTAYIAKQRQ")
    assert chain is None and "no ANARCI" in how
