"""Progress on a terminal (tqdm) and in a log file (plain lines with an estimate of time left)."""

from __future__ import annotations

import io

import pytest
from conftest import save_tiny

from pyro_mlm.cli import main
from pyro_mlm.run.progress import Progress, format_seconds


def test_plain_lines_when_the_stream_is_not_a_terminal(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    stream = io.StringIO()
    bar = Progress(5, enabled=True, desc="m", unit="sweep", interval=0.0, stream=stream)
    for k in range(5):
        bar.update(1, {"acc. rate": f"0.{k}"}, "warmup" if k < 2 else "sample")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("m: sweep 1/5, warmup, acc. rate 0.0, elapsed ")
    assert "left ~" in lines[0]
    assert lines[-1].startswith("m: sweep 5/5, sample, acc. rate 0.4") and lines[-1].endswith(
        "done"
    )


def test_plain_lines_are_spaced_by_the_interval(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    stream = io.StringIO()
    bar = Progress(100, desc="m", interval=3600.0, stream=stream)
    for _ in range(100):
        bar.update(1)
    bar.close()
    assert len(stream.getvalue().splitlines()) == 2  # the first step and the end


@pytest.mark.parametrize(("enabled", "ci"), [(False, None), (True, "true")])
def test_nothing_when_disabled_or_in_ci(monkeypatch, enabled, ci) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    stream = io.StringIO()
    bar = Progress(3, enabled=enabled, interval=0.0, stream=stream)
    bar.update(3)
    bar.close()
    assert stream.getvalue() == ""


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (5, 75, 3725, float("nan"))] == ["5s", "1m15s", "1h02m", "?"]


@pytest.mark.parametrize(
    "kernel",
    [["--kernel", "mh"], ["--kernel", "regenerate", "--regen-prob", "0.5"],
     ["--kernel", "replica-exchange", "--replicas", "3"]],
    ids=["mh", "regenerate", "replica-exchange"],
)  # fmt: skip
def test_the_cli_prints_progress_lines_into_a_log(tmp_path, capsys, monkeypatch, kernel) -> None:
    """The last line's statistics carry summary.csv's names and values (to the 3 decimals
    printed): one definition of each per-sweep statistic for both."""
    import pandas as pd

    monkeypatch.delenv("CI", raising=False)
    model = save_tiny(tmp_path / "model")
    argv = ["sample", "--model", str(model), "--sequence", "a b c d", "--chains", "2", *kernel]
    assert main([*argv, "--warmup", "1", "--samples", "6", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err  # captured: not a terminal, as in a batch job's log
    progress = [line for line in err.splitlines() if ": sweep " in line]
    assert progress[0].startswith(f"{model}: sweep 1/7, warmup, acceptance_rate ")
    assert progress[-1].startswith(f"{model}: sweep 7/7, sample") and progress[-1].endswith("done")
    table = pd.read_csv(tmp_path / "r" / "summary.csv", index_col=0)
    shown = dict(part.rsplit(" ", 1) for part in progress[-1].split(", ")[2:-2])
    assert {"acceptance_rate", "novel_rate"} <= set(shown)
    assert kernel[1] != "regenerate" or "regen_acceptance" in shown
    assert kernel[1] != "replica-exchange" or {"swap_rate[0]", "swap_rate[1]"} <= set(shown)
    for name, value in shown.items():
        assert value == f"{table.loc[name, 'mean']:.3f}", name
