"""Annealing (``pyro-mlm optimize``): the schedule, the ranking, and the command."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import save_tiny, tiny_mlm

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.cli import main
from pyro_mlm.samplers import build_sampler
from pyro_mlm.samplers.anneal import anneal, schedule


def test_the_schedule_is_geometric_from_start_to_end() -> None:
    temps = schedule(2.0, 0.5, 3)
    assert temps == pytest.approx([2.0, 1.0, 0.5])
    assert schedule(1.0, 0.1, 1) == [0.1]
    with pytest.raises(ValueError, match="finite and > 0"):
        schedule(0.0, 1.0, 5)


def test_annealing_ranks_distinct_sequences_by_their_true_energy() -> None:
    mlm = tiny_mlm(init_range=0.3)
    tokens = mlm.encode("a b c d").repeat(3, 1)
    free = ~mlm.special_mask(tokens)
    energy = MLMEnergy(mlm)
    sampler = build_sampler("block", Target(energy), free, block_size=2)
    found = anneal(sampler, tokens, schedule(3.0, 0.05, 40), torch.Generator().manual_seed(1))
    assert len({f.tokens for f in found}) == len(found) > 3
    energies = [f.energy for f in found]
    assert energies == sorted(energies)
    for f in found[:5]:  # energies at T = 1, whatever temperature the chain was at
        assert f.energy == pytest.approx(float(energy(torch.tensor(f.tokens))), abs=1e-4)
    # cold at the end: the best found is at least as good as anything at the start
    start = energy(tokens)
    assert found[0].energy <= float(start.min()) + 1e-6


def test_optimize_command_prints_and_writes_the_ranking(tmp_path, capsys) -> None:
    model = save_tiny(tmp_path / "model", init_range=0.3)
    out = tmp_path / "best.csv"
    argv = ["optimize", "--model", str(model), "--sequence", "a b c d e", "--free", "2-4"]
    assert main([*argv, "--sweeps", "20", "--top", "3", "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    stdout = captured.out
    assert "not samples from a distribution" in stdout
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # --out holds every distinct sequence visited, ranked (as the README says); --top 3 printed
    found = int(stdout.split(" distinct sequences")[0].rsplit(" ", 1)[1])
    assert len(rows) == found > 3 and f"all {found} distinct sequences" in captured.err
    assert [r["rank"] for r in rows] == [str(k) for k in range(1, found + 1)]
    energies = [float(r["energy"]) for r in rows]
    assert energies == sorted(energies) and len({r["sequence"] for r in rows}) == found
    printed = [line for line in stdout.splitlines() if line.startswith("    ")]
    assert len(printed) == 3
    assert all(r["sequence"].split()[0] == "a" and r["sequence"].split()[4] == "e" for r in rows)
