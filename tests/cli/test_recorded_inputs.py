"""Inputs recorded by content, not by name (issue 34): a run directory never holds draws of
two targets. A --length-prior file's weights are recorded in run.json when the run starts;
a resume after the file was edited is refused in one line, and a resume that cannot find
the file (another working directory, a deleted file) samples the recorded law."""

from __future__ import annotations

import json
import os
import shutil

from pyro_mlm.cli import main

BASE = ["sample", "--sequence", "a b c d e f", "--free", "2-4", "--lengths", "1-4"]


def _start(model_dir, tmp_path, capsys):
    prior = tmp_path / "prior.txt"
    prior.write_text("1 5.0\n2 1.0\n3 1.0\n4 1.0\n")
    out = tmp_path / "run"
    argv = [*BASE, "--model", model_dir, "--length-prior", str(prior), "--warmup", "0"]
    assert main([*argv, "--samples", "3", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    return prior, out


def test_the_prior_file_is_recorded_and_an_edit_refuses_the_resume(model_dir, tmp_path, capsys):
    prior, out = _start(model_dir, tmp_path, capsys)
    recorded = json.loads((out / "run.json").read_text())["length_weights"]
    assert recorded == [[1, 5.0], [2, 1.0], [3, 1.0], [4, 1.0]]
    before = (out / "samples.jsonl").read_text()
    prior.write_text("1 1.0\n2 1.0\n3 1.0\n4 9.0\n")  # another law
    assert main(["sample", "--resume", str(out), "--samples", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "changed since the run started" in err[0], err
    assert "lengths [1, 4]" in err[0]
    assert (out / "samples.jsonl").read_text() == before  # nothing of another target


def test_a_resume_without_the_file_samples_the_recorded_law(model_dir, tmp_path, capsys):
    prior, out = _start(model_dir, tmp_path, capsys)
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(out, moved)
    os.remove(prior)
    assert main(["sample", "--resume", str(moved), "--samples", "6", "--no-progress"]) == 0
    capsys.readouterr()
    lines = (moved / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 6 * 4  # chains x draws
    # and the same draws as an uninterrupted run with the file in place
    prior.write_text("1 5.0\n2 1.0\n3 1.0\n4 1.0\n")
    whole = tmp_path / "whole"
    argv = [*BASE, "--model", model_dir, "--length-prior", str(prior), "--warmup", "0"]
    assert main([*argv, "--samples", "6", "--no-progress", "--out", str(whole)]) == 0
    capsys.readouterr()
    assert (whole / "samples.jsonl").read_text() == (moved / "samples.jsonl").read_text()


def test_a_model_directory_with_other_weights_refuses_the_resume(tmp_path, capsys) -> None:
    from conftest import save_tiny

    model = save_tiny(tmp_path / "model", init_range=0.3)
    out = tmp_path / "run"
    argv = ["sample", "--model", model, "--sequence", "a b c d e f", "--free", "2-4"]
    assert main([*argv, "--samples", "2", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    prints = json.loads((out / "run.json").read_text())["model_fingerprints"]
    assert list(prints) == [model] and prints[model].startswith("sha256:")
    assert main(["sample", "--resume", str(out), "--samples", "3", "--no-progress"]) == 0
    capsys.readouterr()  # the same weights: the resume runs
    save_tiny(tmp_path / "model", init_range=0.5, seed=1)  # other weights, same place
    capsys.readouterr()
    assert main(["sample", "--resume", str(out), "--samples", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds other files than when the run started" in err[0], err


def test_score_out_refuses_rows_of_other_weights(tmp_path, capsys) -> None:
    from conftest import save_tiny

    model = save_tiny(tmp_path / "model", init_range=0.3)
    out = tmp_path / "scores.csv"
    argv = ["score", "--model", model, "a b c", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    save_tiny(tmp_path / "model", init_range=0.5, seed=1)
    capsys.readouterr()
    assert main([*argv[:3], "a b c", "b c d", *argv[4:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "written by another scoring run: weights" in err[-1], err


def test_a_resume_with_other_threads_says_so_and_records_them(model_dir, tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        _resume_with_other_threads(model_dir, tmp_path, capsys)
    finally:
        torch.set_num_threads(before)  # the command sets the process's count


def _resume_with_other_threads(model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["sample", "--model", model_dir, "--sequence", "a b c d e f", "--free", "2-4"]
    assert (
        main([*argv, "--samples", "2", "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    )
    capsys.readouterr()
    resume = ["sample", "--resume", str(out), "--samples", "3", "--threads", "2", "--no-progress"]
    assert main(resume) == 0
    err = capsys.readouterr().err
    assert "--threads 2 differs from the 1 thread(s) this run started with" in err
    assert "may differ in their last bits" in err
    assert json.loads((out / "run.json").read_text())["threads"] == 2


def test_an_experts_model_directory_is_recorded_too(model_dir, tmp_path, capsys) -> None:
    from conftest import save_tiny

    expert_model = save_tiny(tmp_path / "expert", init_range=0.3)
    out = tmp_path / "run"
    argv = ["sample", "--model", model_dir, "--sequence", "a b c d e f", "--free", "2-4"]
    argv += ["--expert", f"mlm:model={expert_model};weight=0.5"]
    assert main([*argv, "--samples", "2", "--no-progress", "--out", str(out)]) == 0
    assert set(json.loads((out / "run.json").read_text())["model_fingerprints"]) == {
        model_dir,
        expert_model,
    }
    save_tiny(tmp_path / "expert", init_range=0.5, seed=1)
    capsys.readouterr()
    assert main(["sample", "--resume", str(out), "--samples", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"the model directory {expert_model} holds other files" in err[0]
