"""The verdict is decided on unrounded values and covers every summary the run defines
(issue 35): R-hat 1.0099 passes and 1.0101 fails (a table rounded to two decimals would show
both as 1.01), and a --lengths run whose length alone has not mixed is NOT CONVERGED."""

from __future__ import annotations

import pandas as pd
import pytest

from pyro_mlm.cli.result import format_table
from pyro_mlm.report.diagnostics import converged, judged


def _table(rows: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(
        {k: {"mean": 1.0, "ess_bulk": e, "r_hat": r} for k, (r, e) in rows.items()},
        orient="index",
    )


@pytest.mark.parametrize(
    ("r_hat", "ess", "verdict"),
    [(1.0099, 500, True), (1.01, 400, True), (1.0101, 500, False), (1.0099, 399.9, False),
     (float("nan"), 500, False)],
)  # fmt: skip
def test_the_bar_is_the_unrounded_value(r_hat, ess, verdict) -> None:
    table = _table({"energy": (r_hat, ess), "hamming": (1.0, 1000)})
    assert converged(table) is verdict


def test_the_printed_table_tells_the_boundary_apart() -> None:
    printed = format_table(_table({"energy": (1.0099, 500), "hamming": (1.0101, 500)}))
    assert "1.0099" in printed and "1.0101" in printed


def test_an_ess_above_the_draws_is_marked_and_never_extrapolated() -> None:
    """ArviZ's bulk ESS can exceed the number of draws (anticorrelated draws, short runs):
    the printed table marks it, and the plan counts it as the draws, so 40 draws with a
    claimed ESS of 900 still plan the 400 / 40 = 10x the draws the bar needs."""
    from pyro_mlm.report.diagnostics import plan

    table = _table({"energy": (1.02, 900), "hamming": (1.0, 35)})
    printed = format_table(table, draws=40)
    assert "900*" in printed and " 35*" not in printed
    assert "an ESS above the run's 40 draws" in printed
    assert "*" not in format_table(table)  # without the draws nothing is marked
    table.loc["hamming", "ess_bulk"] = 80  # both above the 40 draws (4 chains x 10)
    more, _ = plan(table, draws=10, seconds_per_sweep=1.0, chains=4)
    assert more == 10 * 400 // 40 - 10  # not 10 * 400 // 80 - 10 = 40
    # and the R-hat term still counts: (1.02 - 1) / 0.01 = 2x the draws
    table.loc[["energy", "hamming"], "ess_bulk"] = 4000
    assert plan(table, draws=10, seconds_per_sweep=1.0, chains=400)[0] == 10


def test_the_length_is_judged_too() -> None:
    table = _table({"energy": (1.001, 900), "hamming": (1.002, 900), "length": (1.29, 900)})
    assert judged(table) == ["energy", "hamming", "length"]
    assert not converged(table)
    table.loc["length", "r_hat"] = 1.005
    assert converged(table)


def test_a_lengths_run_prints_the_length_in_its_verdict(tmp_path, capsys) -> None:
    from conftest import save_tiny

    from pyro_mlm.cli import main

    model = save_tiny(tmp_path / "model", num_words=4, init_range=0.3)
    argv = [
        "sample",
        "--model",
        model,
        "--sequence",
        "a b c d",
        "--free",
        "2-3",
        "--lengths",
        "1-3",
    ]
    argv += ["--warmup", "0", "--samples", "6", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    verdict = next(line for line in out.splitlines() if "CONVERGED" in line)
    # 6 draws of 4 chains cannot reach ESS 400: the verdict names all three summaries
    assert verdict.startswith("NOT CONVERGED") and "length R-hat" in verdict
    assert "for all 3" in verdict


def test_the_advice_names_only_routes_other_than_the_one_run(capsys) -> None:
    from types import SimpleNamespace

    from pyro_mlm.cli.result import ROUTES, _print_plan
    from pyro_mlm.run.spec import RunSpec

    table = _table({"energy": (1.2, 50), "hamming": (1.3, 40)})
    result = SimpleNamespace(summary=table, sampling_seconds=10.0, draws=20, burn_in=0)
    for kernel in ("mh", "replica-exchange"):
        spec = RunSpec(model="sapiens-h", sequences=("A",), kernel=kernel)
        _print_plan(result, spec, "runs/x")
        advice = capsys.readouterr().out.split("faster routes")[-1]
        assert ("--kernel replica-exchange" in advice) is (kernel == "mh"), advice
    assert any("--kernel replica-exchange" in r for r in ROUTES["sapiens-h"])


def test_resume_of_a_finished_run_says_so_and_rewrites_nothing(model_dir, tmp_path, capsys):
    import os

    from pyro_mlm.cli import main

    out = tmp_path / "run"
    argv = ["sample", "--model", model_dir, "--sequence", "a b c d e f", "--free", "2-4"]
    assert main([*argv, "--samples", "3", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    stamps = {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)}
    assert main(["sample", "--resume", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "holds a finished run (3 draws per chain x 4 chains)" in captured.out
    assert "loading" not in captured.err  # the model is not loaded again
    assert {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)} == stamps
