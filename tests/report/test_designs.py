"""Design outputs (pyro_mlm/report/designs.py, written by every run): designs.csv counts sum to
the draws after warm-up, FASTA round-trips, marginals sum to 1, logo.png is an image,
and the diversity figures agree with a direct count."""

from __future__ import annotations

import csv
import itertools
import json

import matplotlib.image
import numpy as np
import pytest

from pyro_mlm.cli import main
from pyro_mlm.report.marginals import entropy_bits, mean_pairwise_hamming

TEXT = "a b c d e f g h"


@pytest.fixture(scope="module")
def design_run(model_dir, tmp_path_factory) -> tuple[str, str]:
    out = tmp_path_factory.mktemp("designs") / "run"
    argv = [
        "sample", "--no-progress", "--sequence", TEXT, "--free", "2-6", "--chains", "3",
        "--warmup", "2", "--samples", "8", "--model", model_dir, "--out", str(out),
        "--expert", "max-mutations:k=2", "--expert", "forbid:b b", "--top", "3",
    ]  # fmt: skip
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    return str(out), stdout.getvalue()


def _draws(directory: str) -> list[dict]:
    with open(f"{directory}/samples.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_designs_csv_counts_every_draw_after_warmup(design_run) -> None:
    directory, stdout = design_run
    draws = _draws(directory)
    with open(f"{directory}/designs.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(int(r["count"]) for r in rows) == len(draws) == 3 * 8
    assert sum(float(r["frequency"]) for r in rows) == pytest.approx(1.0, abs=1e-4)
    counts = [int(r["count"]) for r in rows]
    assert counts == sorted(counts, reverse=True)  # most frequent first
    by_sequence = {}
    for d in draws:
        by_sequence.setdefault(d["sequence"], []).append(d)
    assert {r["sequence"] for r in rows} == set(by_sequence)
    for r in rows:
        seen = by_sequence[r["sequence"]]
        assert int(r["count"]) == len(seen)
        assert float(r["energy"]) == pytest.approx(np.mean([d["energy"] for d in seen]), rel=1e-4)
        first = min((d["draw"], d["chain"]) for d in seen)
        assert (int(r["first_draw"]), int(r["first_chain"])) == first
        assert int(r["hamming_to_start"]) <= 2  # max-mutations:k=2
        assert "b b" not in r["sequence"]  # forbid
    assert "top 3 designs" in stdout and rows[0]["free_region"] in stdout


def test_fasta_round_trips(design_run) -> None:
    from pyro_mlm.cli import read_sequences

    directory, _ = design_run
    with open(f"{directory}/designs.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert read_sequences(f"{directory}/designs.fasta") == [r["sequence"] for r in rows]
    with open(f"{directory}/designs.fasta", encoding="utf-8") as handle:
        headers = [line for line in handle if line.startswith(">")]
    assert headers[0].startswith(f">design_1 count={rows[0]['count']} ")


def test_marginals_logo_and_diversity(design_run) -> None:
    directory, _ = design_run
    draws = _draws(directory)
    with open(f"{directory}/marginals.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["position"]) for r in rows] == [2, 3, 4, 5, 6]
    assert [r["start"] for r in rows] == ["b", "c", "d", "e", "f"]
    letters = [
        k
        for k in rows[0]
        if k not in ("position", "label_residue", "region", "start", "entropy_bits")
    ]
    freq = np.array([[float(r[k]) for k in letters] for r in rows])
    assert np.allclose(freq.sum(1), 1.0)
    words = np.array([d["sequence"].split()[1:6] for d in draws])
    for j, letter in enumerate(letters):
        assert np.allclose(freq[:, j], (words == letter).mean(0))
    assert np.allclose([float(r["entropy_bits"]) for r in rows], entropy_bits(freq), atol=1e-3)
    pairs = [int((a != b).sum()) for a, b in itertools.combinations(words, 2)]
    assert mean_pairwise_hamming(freq, len(words)) == pytest.approx(np.mean(pairs))
    with open(f"{directory}/diversity.csv", encoding="utf-8") as handle:
        diversity = handle.read()
    assert f"distinct designs,{len({tuple(w) for w in words})}" in diversity
    image = matplotlib.image.imread(f"{directory}/logo.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_experts_travel_in_run_json_and_resume(model_dir, tmp_path, capsys) -> None:
    out = str(tmp_path / "run")
    base = ["sample", "--no-progress", "--sequence", TEXT, "--free", "2-6", "--chains", "2",
            "--warmup", "1", "--model", model_dir, "--out", out,
            "--expert", "max-mutations:1"]  # fmt: skip
    assert main([*base, "--samples", "3"]) == 0
    with open(f"{out}/run.json", encoding="utf-8") as handle:
        assert json.load(handle)["experts"] == ["max-mutations:1"]
    assert main(["sample", "--no-progress", "--resume", out, "--samples", "5"]) == 0
    draws = _draws(out)
    assert len(draws) == 10 and all(d["hamming"] <= 1 for d in draws)
    code = main(["sample", "--resume", out, "--expert", "max-mutations:2"])
    assert code == 2 and "holds a different run" in capsys.readouterr().err


def test_frequency_interval_covers_the_truth_and_is_cautious_without_mixing() -> None:
    from pyro_mlm.report.designs import frequency_interval

    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(200):  # independent draws: a 95% interval covers p = 0.2 about 95% of times
        low, high, n = frequency_interval(rng.random((4, 50)) < 0.2)
        covered += low <= 0.2 <= high
        assert n <= 200
    assert covered >= 180  # binomial(200, 0.95): 180 is 3.2 sd below the mean of 190
    stuck = np.zeros((4, 50), dtype=bool)
    stuck[0] = True  # one chain always in the design, the others never: no mixing at all
    low, high, n = frequency_interval(stuck)
    assert n == 4 and low < 0.05 and high > 0.6  # each chain counts as one draw
