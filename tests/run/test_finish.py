"""What a run leaves for a person: posterior.nc with sequences and residue numbers, summary.csv."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pyro_mlm.cli import main
from pyro_mlm.report.arviz_compat import arviz, dataset

TEXT = "a b c d e f g h"


def _run(model_dir: str, out: str, samples: int) -> None:
    argv = ["sample", "--model", model_dir, "--sequence", TEXT, "--free", "2-4", "--chains", "2"]
    assert main([*argv, "--warmup", "1", "--samples", str(samples), "--out", out]) == 0


def test_posterior_holds_sequences_free_regions_and_residue_numbers(model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    _run(model_dir, str(out), 5)
    capsys.readouterr()
    idata = arviz().from_netcdf(out / "posterior.nc")
    posterior, residue = idata.posterior, dataset(idata, "constant_data")["residue"]
    assert posterior["sequence"].shape == (2, 5) and posterior["free_region"].shape == (2, 5)
    # [CLS] a b c d e f g h [SEP]: --free counts words from 1, special tokens are 0
    assert residue.values.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0]
    for chain in range(2):
        for draw in range(5):
            words = str(posterior["sequence"].values[chain, draw]).split()
            assert str(posterior["free_region"].values[chain, draw]) == " ".join(words[1:4])
            assert words[0] == "a" and words[4:] == TEXT.split()[4:]
    free = idata["sequences"]["tokens"].sel(position=residue.isin([2, 3, 4]))
    assert free.shape == (2, 5, 3)


def test_summary_has_mean_and_sd(model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    _run(model_dir, str(out), 5)
    capsys.readouterr()
    header, *rows = (out / "summary.csv").read_text().splitlines()
    columns = header.split(",")
    assert {"mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"} <= set(columns)
    energy = arviz().from_netcdf(out / "posterior.nc").posterior["energy"].values
    mean = float(rows[0].split(",")[columns.index("mean")])
    assert mean == pytest.approx(float(np.mean(energy)), abs=1e-3)


def test_fewer_than_four_draws_says_so_without_nan_or_warnings(model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ArviZ's shape warning must not leak
        _run(model_dir, str(out), 2)
    stdout, err = capsys.readouterr()
    assert "R-hat and ESS need at least 4 draws per chain and this run has 2" in stdout
    assert "nan" not in stdout.lower() and "NOT CONVERGED" not in stdout
    assert "Shape validation" not in err
    assert (out / "summary.csv").exists()
