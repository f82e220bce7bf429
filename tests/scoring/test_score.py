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


def test_the_printed_table_names_each_row_and_shows_where_they_differ() -> None:
    """Designs that differ past the old 58-character cut looked identical: the table shows
    each row's name and the positions where the sequences differ."""
    from conftest import TRASTUZUMAB_VH as vh

    from pyro_mlm.cli.score import score_table

    rows = [
        {"name": "parent", "energy_norm": 1.0, "sequence": vh},
        {"name": "design1", "energy_norm": 2.0, "sequence": vh.replace("WGGDG", "WAGDG")},
        {"name": "design2", "energy_norm": 3.0, "sequence": vh.replace("FYAMDY", "FYAMEY")},
    ]
    lines = score_table(rows).splitlines()
    assert lines[0].split()[0] == "name" and "where they differ" in lines[0]
    shown = [line.split()[-1] for line in lines[1:]]
    assert len(set(shown)) == 3  # three sequences, three different cells
    assert [line.split()[0] for line in lines[1:]] == ["parent", "design1", "design2"]
    assert all(line.split()[-2] == "100-108:" for line in lines[1:])


@pytest.mark.parametrize("over", ["free", "all"])
def test_score_free_gives_the_energy_sample_starts_from(model_dir, tmp_path, capsys, over):
    """score --free R (--energy-over as in sample) prints the number sample prints for its
    start, so a designer compares designs and parent by the model's own measure."""
    import json
    import re

    from pyro_mlm.cli import main

    text = "a b c d e f"
    argv = ["sample", "--model", model_dir, "--sequence", text, "--free", "2-4"]
    argv += ["--energy-over", over, "--samples", "2", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    started = float(re.search(r"start \(chain 0\): energy (-?[\d.]+)", err).group(1))
    score = ["score", "--model", model_dir, text, "--free", "2-4", "--energy-over", over]
    assert main([*score, "--energy", "norm", "--format", "json", "--no-progress"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert abs(row["energy_norm"] - started) <= 0.0051  # printed to 2 and 4 decimals
    assert row["positions"] == (3 if over == "free" else 6)


def test_score_free_is_checked_before_the_weights(model_dir, capsys) -> None:
    from pyro_mlm.cli import main

    assert main(["score", "--model", model_dir, "a b c", "--free", "5-9"]) == 2
    err = capsys.readouterr().err
    assert "sequence 1: --free 5-9" in err and "loading" not in err
    assert main(["score", "--model", model_dir, "a b c", "--energy-over", "all"]) == 2
    assert "--energy-over needs --free" in capsys.readouterr().err
