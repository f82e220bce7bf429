"""Scoring: both energies from one set of masked passes, batched, equal to MLMEnergy."""

from __future__ import annotations

import pytest
import torch

from pyro_mlm import MLMEnergy
from pyro_mlm.scoring.score import score_sequences


def test_both_energies_cost_one_masked_row_per_position(mlm, monkeypatch) -> None:
    texts = ["a b c", "h g", "a b d", "c c c c", "e"]
    calls: list[int] = []
    real = mlm.masked_logits

    def counting(ids: torch.Tensor, attention: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        calls.append(ids.shape[0])
        return real(ids, attention, pos)

    monkeypatch.setattr(mlm, "masked_logits", counting)
    rows = score_sequences(mlm, texts, progress=False)
    monkeypatch.undo()
    assert sum(calls) == sum(len(t.split()) for t in texts)  # one row per position, not two
    assert len(calls) == 4  # one forward per length group (3, 2, 4 and 1 words)
    for row, text in zip(rows, texts, strict=True):
        ids = mlm.encode(text)
        assert row["sequence"] == text and row["positions"] == len(text.split())
        assert row["energy_norm"] == pytest.approx(float(MLMEnergy(mlm, "norm")(ids)), abs=1e-3)
        assert row["energy_raw"] == pytest.approx(float(MLMEnergy(mlm, "raw")(ids)), abs=1e-3)
        assert row["norm_per_position"] == pytest.approx(
            row["energy_norm"] / row["positions"], abs=1e-3
        )


def test_long_inputs_show_progress_in_a_log(mlm, capsys, monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("pyro_mlm.run.progress.PLAIN_INTERVAL", 0.0)
    texts = ["a b c"] * 130
    score_sequences(mlm, texts, ["norm"], batch_size=64)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{mlm.name} score: seq 64/130")
    assert err[-1].startswith(f"{mlm.name} score: seq 130/130") and err[-1].endswith("done")


def test_unknown_kind_is_refused(mlm) -> None:
    with pytest.raises(ValueError, match="kinds must be a non-empty subset"):
        score_sequences(mlm, ["a"], ["pll"])
