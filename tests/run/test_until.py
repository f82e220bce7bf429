"""The stop rule (``--until-converged``) and the budget (``--max-minutes``) of pyro-mlm sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import save_tiny

from pyro_mlm.cli import main
from pyro_mlm.report.diagnostics import converged, diagnose
from pyro_mlm.run.progress import Progress
from pyro_mlm.run.store import read_draws
from pyro_mlm.run.until import ConvergenceWatch, burn_in, check_points

RULE = ["--until-converged", "--chains", "4", "--warmup", "10", "--no-progress"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_tiny(tmp_path_factory.mktemp("until") / "model")


def _sample(model: str, out, *more: str) -> int:
    argv = ["sample", "--model", model, "--sequence", "a b c d e f", "--free", "2-4"]
    return main([*argv, *RULE, "--out", str(out), *more])


def test_the_run_stops_at_converged_and_its_report_says_so(model, tmp_path, capsys) -> None:
    """The run stops at the first check point where the verdict holds: summary.csv, read
    from the kept draws, shows R-hat <= 1.01 and ESS >= 400 for both summaries; the verdict
    failed at the check point before (else it would have stopped there); the kept draws are
    the written ones after the first quarter of all sweeps."""
    assert _sample(model, tmp_path / "r") == 0
    out = capsys.readouterr().out
    assert "stopped: CONVERGED at the stop rule's check" in out and "\nCONVERGED: max R-hat" in out
    data = read_draws(str(tmp_path / "r" / "samples.jsonl"), 4)
    assert data is not None
    written = data["energy"].shape[1]
    points = check_points(10, 4, written)
    assert points[-1] == written  # it stopped at a check point
    drop = burn_in(10, written)
    table = pd.read_csv(tmp_path / "r" / "summary.csv", index_col=0)
    kept = written - drop
    assert f"finished: {kept} draws per chain" in out
    assert converged(table, draws=4 * kept)
    assert (table.loc[["energy", "hamming"], "r_hat"] <= 1.01).all()
    if len(points) > 1:  # the check before did not pass
        before = points[-2]
        arrays = {k: data[k][:, burn_in(10, before) : before] for k in ("energy", "hamming")}
        kept_before = before - burn_in(10, before)
        assert not converged(diagnose(arrays), draws=4 * kept_before)
    spec = json.loads((tmp_path / "r" / "run.json").read_text())
    assert spec["until_converged"] is True and spec["samples"] == 0  # no cap


def test_a_budget_stops_the_run_and_a_resume_ends_where_an_unbroken_run_ends(
    model, tmp_path, capsys
) -> None:
    """--max-minutes stops sampling (exit 0, resumable, said); --resume goes on under the
    same rule, and since the checks come at draw counts (not times), the resumed run stops
    at the same sweep with the same draws as a run never stopped."""
    assert _sample(model, tmp_path / "whole") == 0
    assert _sample(model, tmp_path / "cut", "--max-minutes", "0.001") == 0
    out = capsys.readouterr().out
    assert "stopped: the --max-minutes budget (0.001 min) ran out" in out
    assert "continue: pyro-mlm sample --resume" in out and "another 0.001 min" in out
    resume = ["sample", "--resume", str(tmp_path / "cut"), "--no-progress"]
    assert main([*resume, "--max-minutes", "0"]) == 0  # 0: no budget this time
    assert "stopped: CONVERGED" in capsys.readouterr().out
    whole = (tmp_path / "whole" / "samples.jsonl").read_text()
    assert (tmp_path / "cut" / "samples.jsonl").read_text() == whole
    # a finished run resumed again stops at once, at the same verdict
    assert main(["sample", "--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    assert "stopped: CONVERGED" in capsys.readouterr().out
    assert (tmp_path / "cut" / "samples.jsonl").read_text() == whole


def test_the_watch_judges_the_draws_as_the_report_does() -> None:
    """The check's figures are summary.csv's: the same function on the same kept draws."""
    rng = np.random.default_rng(0)
    energy, hamming = rng.normal(size=(4, 300)), rng.integers(0, 4, size=(4, 300)).astype(float)
    watch = ConvergenceWatch(20, 4, ("energy", "hamming"), {"energy": energy, "hamming": hamming})
    verdict = watch.check()
    drop = burn_in(20, 300)
    table = diagnose({"energy": energy[:, drop:], "hamming": hamming[:, drop:]})
    assert verdict.kept == 300 - drop
    assert verdict.r_hat == pytest.approx(float(table["r_hat"].max()))
    assert verdict.ess == pytest.approx(min(float(table["ess_bulk"].min()), 4 * verdict.kept))
    assert verdict.converged == converged(table, draws=4 * verdict.kept)
    assert set(verdict.progress()) == {"R-hat", "ESS"}


def test_the_progress_line_of_an_open_ended_run_has_no_total(monkeypatch) -> None:
    import io

    monkeypatch.delenv("CI", raising=False)
    stream = io.StringIO()
    bar = Progress(None, desc="m", unit="sweep", interval=0.0, stream=stream)
    bar.update(1, {"R-hat": "1.100/1.01", "ESS": "12/400"}, "sample")
    bar.close()
    line = stream.getvalue().splitlines()[0]
    assert line.startswith("m: sweep 1, sample, R-hat 1.100/1.01, ESS 12/400, elapsed ")
    assert "left" not in line


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--max-minutes", "-1"], "--max-minutes must be a finite number >= 0"),
        (["--workers", "2"], "--until-converged and --max-minutes run the chains in one process"),
    ],
)
def test_bad_settings_are_one_line(model, tmp_path, capsys, more, message) -> None:
    assert _sample(model, tmp_path / "bad", *more) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
