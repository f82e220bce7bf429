"""One draw-record schema (pyro_mlm/run/records.py) and one artifact registry
(pyro_mlm/run/artifacts.py): a sampler's new per-sweep statistic and a new output file each
reach every place that shows them with no edit outside their own room."""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import arviz as az
import pandas as pd
import pytest
import torch

from pyro_mlm import MaskedLM
from pyro_mlm.run import artifacts
from pyro_mlm.run.loop import sample_to_directory
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.samplers import SAMPLERS
from pyro_mlm.samplers.mh import MH
from pyro_mlm.samplers.options import SAMPLER_OPTIONS

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


class CountInfo(NamedTuple):
    accept_prob: torch.Tensor
    acceptance_rate: torch.Tensor
    is_novel: torch.Tensor
    rows: torch.Tensor
    first_token: torch.Tensor  # a statistic no shell has heard of


class CountingMH(MH):
    """Single-site MH whose sweep info also carries the first free token's id."""

    name = "counting"

    def sweep_info(self, state: Any, sums: torch.Tensor, rows: torch.Tensor) -> CountInfo:
        return CountInfo(*super().sweep_info(state, sums, rows), state.tokens[:, 1].double())


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(SAMPLERS, "counting", CountingMH)  # a sampler registered at run time
    monkeypatch.setitem(SAMPLER_OPTIONS, "counting", {})
    return "counting"


def test_a_new_sweep_statistic_reaches_samples_posterior_and_summary(model_dir, tmp_path, counting):
    spec = RunSpec(model=model_dir, sequences=("a b c d",) * 2, free="all", kernel=counting,
                   warmup=1, samples=6, seed=3)  # fmt: skip
    out = str(tmp_path / "run")
    sample_to_directory(spec, MaskedLM.from_pretrained(model_dir), out, progress=False)
    with open(os.path.join(out, "samples.jsonl"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    values = [r["first_token"] for r in records]
    assert values == [float(r["tokens"][1]) for r in records]  # written, per chain and draw
    stats = az.from_netcdf(os.path.join(out, "posterior.nc")).sample_stats
    assert stats["first_token"].shape == (2, 6)  # read back into posterior.nc
    table = pd.read_csv(os.path.join(out, "summary.csv"), index_col=0)
    assert table.loc["first_token", "mean"] == pytest.approx(sum(values) / len(values))


def test_a_new_output_file_is_one_registry_entry(model_dir, tmp_path, monkeypatch, capsys):
    from pyro_mlm.cli import main

    def write(report: artifacts.Report) -> None:
        with open(report.path("draws.txt"), "w", encoding="utf-8") as out:
            out.write(f"{report.draws}\n")

    extra = artifacts.Artifact("draws.txt", "draws per chain", write)
    monkeypatch.setattr(artifacts, "ARTIFACTS", (*artifacts.ARTIFACTS, extra))
    out = tmp_path / "run"
    argv = ["sample", "--model", model_dir, "--sequence", "a b c d", "--free", "all",
            "--chains", "2", "--warmup", "1", "--samples", "4", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert (out / "draws.txt").read_text() == "4\n"  # written with the report
    assert "draws.txt" in capsys.readouterr().out.split("wrote")[-1]  # and listed
    other = tmp_path / "other"
    other.mkdir()
    (other / "draws.txt").write_text("x")
    argv[argv.index("--out") + 1] = str(other)
    assert main(argv) == 2  # and it marks a directory as holding a run's files
    assert "holds files of another run" in capsys.readouterr().err


def test_the_readme_lists_the_run_directory_as_the_registry_does() -> None:
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    assert artifacts.markdown_table() in text, (
        "README's run-directory table differs from pyro_mlm.run.artifacts; paste "
        "python -c 'from pyro_mlm.run.artifacts import markdown_table; print(markdown_table())'"
    )


def test_records_of_sequences_of_different_lengths_read_back_padded(tmp_path) -> None:
    """The schema holds sequences of several lengths (a variable-length region): read back
    with fixed_length=False they are padded with PAD and their lengths kept; a fixed-length
    run still refuses a line of another length as damage."""
    from pyro_mlm.run.records import PAD, draw_record
    from pyro_mlm.run.store import DamagedRunError, read_draws

    class Info(NamedTuple):
        accept_prob: torch.Tensor
        acceptance_rate: torch.Tensor
        is_novel: torch.Tensor
        rows: torch.Tensor

    info = Info(*(torch.tensor([0.5, 0.25]),) * 3, torch.tensor([7, 9]))
    rows = [(0, 0, [2, 5, 3]), (1, 0, [2, 5, 6, 3]), (0, 1, [2, 3]), (1, 1, [2, 6, 3])]
    path = tmp_path / "samples.jsonl"
    path.write_text(
        "".join(
            json.dumps(draw_record(c, d, "x", 1.0, 0, info, tokens)) + "\n" for c, d, tokens in rows
        )
    )
    data = read_draws(str(path), chains=2, fixed_length=False)
    assert data is not None
    assert data["length"].tolist() == [[3, 2], [4, 3]]
    assert data["tokens"][0, 1].tolist() == [2, 3, PAD, PAD]
    assert data["rows"].tolist() == [[7, 7], [9, 9]]
    with pytest.raises(DamagedRunError, match="'tokens' has 4 ids where the earlier lines have 3"):
        read_draws(str(path), chains=2)
