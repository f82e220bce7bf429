"""One writer per output (pyro_mlm/run/claim.py): a second sample/score on the same --out
is refused at once with one line, and the first finishes untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from pyro_mlm.cli import main
from pyro_mlm.run.claim import claimed


def _sample(model_dir: str, out: str, samples: int = 3) -> list[str]:
    return [
        "sample", "--model", model_dir, "--sequence", "a b c d e f", "--free", "2-5",
        "--chains", "2", "--warmup", "0", "--samples", str(samples), "--no-progress",
        "--out", out,
    ]  # fmt: skip


def test_a_second_sample_on_a_held_directory_is_refused(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "run")
    with claimed(out, "the run directory", directory=True):
        assert main(_sample(model_dir, out)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "being written by another process" in err[0]
        assert os.listdir(out) == []  # the refused run wrote nothing
    assert not os.path.exists(out)  # nor left the directory it found missing
    assert main(_sample(model_dir, out)) == 0  # free again


def test_two_processes_on_one_directory(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "run")
    argv = [sys.executable, "-m", "pyro_mlm.cli", *_sample(model_dir, out, samples=400)]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as first:
        try:
            deadline = time.monotonic() + 120  # a start-up bound, not a speed assumption
            while not os.path.exists(os.path.join(out, "run.json")):  # the first has started
                assert first.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            assert main(_sample(model_dir, out)) == 2
            assert "being written by another process" in capsys.readouterr().err
            assert first.wait(timeout=600) == 0
        finally:
            first.kill()
    with open(os.path.join(out, "samples.jsonl"), encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert len(lines) == 400 * 2 and {r["draw"] for r in lines} == set(range(400))


def test_a_second_scorer_on_one_out_is_refused(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "scores.csv")
    with claimed(out, "the score file", directory=False):
        assert main(["score", "--model", model_dir, "a b", "--out", out]) == 2
        assert "being written by another process" in capsys.readouterr().err
    assert not os.path.exists(out)
    assert main(["score", "--model", model_dir, "a b", "--out", out]) == 0
    capsys.readouterr()
