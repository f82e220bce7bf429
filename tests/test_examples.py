"""The examples end to end: text infill on a tiny local model, CDR-H3 infill on AntiBERTy."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import matplotlib.image
import pytest
from conftest import tiny_mlm

pytestmark = pytest.mark.integration  # the examples, end to end

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_text_infill_on_a_local_model(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CI", "1")
    mlm = tiny_mlm(init_range=0.3)
    mlm.model.save_pretrained(tmp_path)
    mlm.tokenizer.save_pretrained(tmp_path)
    argv = ["--model", str(tmp_path), "--sentence", "a [MASK] c [MASK] e", "--chains", "2",
            "--warmup", "2", "--samples", "5"]  # fmt: skip
    assert load("text_infill").main(argv) == 0
    out = capsys.readouterr().out
    assert "2 masked positions" in out and "r_hat" in out
    infills = [line.split()[-5:] for line in out.splitlines() if "E=" in line]
    assert infills and all(w[0] == "a" and w[2] == "c" and w[4] == "e" for w in infills)
    assert all("[MASK]" not in " ".join(w) for w in infills)


def test_text_infill_errors_are_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load("text_infill").main(["--model", "no-such-model-here"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model") and "Traceback" not in err


@pytest.mark.skipif(importlib.util.find_spec("antiberty") is None, reason="needs antiberty")
def test_antibody_cdr_infill_compares_mh_and_gibbs(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CI", "1")
    argv = ["--free", "100-102", "--chains", "2", "--warmup", "1", "--samples", "2",
            "--out", str(tmp_path)]  # fmt: skip
    assert load("antibody_cdr_infill").main(argv) == 0
    out = capsys.readouterr().out
    assert "MH " in out and "masked Gibbs" in out and "most frequent CDR-H3s" in out
    image = matplotlib.image.imread(tmp_path / "mh_vs_gibbs.png")
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert load("antibody_cdr_infill").main(["--sequence", "EVQLVJ"]) == 2
