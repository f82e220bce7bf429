"""posterior.nc is one format for both ArviZ lines: a file written under ArviZ 0.x
(InferenceData) and one written under 1.x (DataTree), both committed
(``data/posterior_arviz0.nc``, ``data/posterior_arviz1.nc``, by ``posterior_fixture.py``),
open under whichever line is installed with ArviZ's own defaults, and hold the same draws,
coordinates and statistics. CI runs this file under both lines (Python 3.11 and 3.12)."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest
from conftest import arviz_constant_warnings_allowed
from posterior_fixture import RESIDUE, draws, path

from pyro_mlm.report import arviz_compat
from pyro_mlm.report.diagnostics import inference_data_from_draws, summary

matplotlib.use("Agg")
LINES = [0, 1]


@pytest.mark.parametrize("written_by", LINES, ids=lambda m: f"written-by-arviz{m}")
def test_either_lines_file_opens_with_arviz_defaults(written_by) -> None:
    import matplotlib.pyplot as plt

    az = arviz_compat.arviz()
    idata = az.from_netcdf(str(path(written_by)))  # the user's call, no engine named
    expected = draws()
    post = idata.posterior
    assert set(post.data_vars) == {"energy", "hamming"}  # the summaries ArviZ computes on
    np.testing.assert_array_equal(idata["sequences"]["tokens"].values, expected["tokens"])
    np.testing.assert_array_equal(post["energy"].values, expected["energy"])
    np.testing.assert_array_equal(post["sequence"].values, expected["sequence"])
    np.testing.assert_array_equal(post["free_region"].values, expected["free_region"])
    assert "sequence" not in post.data_vars  # a coordinate: ArviZ does not compute on it
    residue = arviz_compat.dataset(idata, "constant_data")["residue"]
    np.testing.assert_array_equal(residue.values, RESIDUE)
    stats = arviz_compat.dataset(idata, "sample_stats")
    np.testing.assert_array_equal(stats["swap_rate"].values, expected["swap_rate"])
    with arviz_constant_warnings_allowed():
        table = az.summary(idata)
        assert {"energy", "hamming"} <= set(table.index)
        assert float(az.rhat(idata)["energy"]) > 0.5 and float(az.ess(idata)["energy"]) > 0
        az.plot_trace(idata)
        az.plot_rank(idata)
    plt.close("all")


@pytest.mark.parametrize("written_by", LINES, ids=lambda m: f"written-by-arviz{m}")
def test_a_file_with_the_tokens_in_its_posterior_still_reads(written_by) -> None:
    """posterior.nc files written before the tokens moved to their own group (committed:
    ``data/tokens_in_posterior_arviz<MAJOR>.nc``) give the same ids and table."""
    from pyro_mlm.report.diagnostics import tokens_of

    old = arviz_compat.from_netcdf(str(path(written_by).with_name(
        f"tokens_in_posterior_arviz{written_by}.nc")))  # fmt: skip
    assert "tokens" in arviz_compat.dataset(old, "posterior")
    np.testing.assert_array_equal(tokens_of(old), draws()["tokens"])
    new = arviz_compat.from_netcdf(str(path(written_by)))
    np.testing.assert_array_equal(tokens_of(new), draws()["tokens"])
    np.testing.assert_array_equal(summary(old).to_numpy(), summary(new).to_numpy())


def test_the_library_gives_the_same_numbers_from_either_file_and_from_the_arrays() -> None:
    """Our table from the file of each line equals the one from the arrays, to the last
    bit: the statistics do not depend on which line wrote or reads the file."""
    fresh = summary(inference_data_from_draws(draws(), residue=RESIDUE))
    for major in LINES:
        table = summary(arviz_compat.from_netcdf(str(path(major))))
        np.testing.assert_array_equal(table.to_numpy(), fresh.to_numpy())
        assert list(table.index) == list(fresh.index) and list(table.columns) == list(fresh.columns)
    assert list(fresh.columns[:9]) == [
        "mean",
        "sd",
        "hdi_3%",
        "hdi_97%",
        "mcse_mean",
        "mcse_sd",
        "ess_bulk",
        "ess_tail",
        "r_hat",
    ]


def test_our_statistics_are_arviz_0x_summary_unrounded() -> None:
    """On ArviZ 0.x the table equals ``az.summary(..., round_to="none")``; on 1.x every column
    but the interval equals 1.x's ``az.summary`` (1.x shows an 89% equal-tailed interval)."""
    az = arviz_compat.arviz()
    idata = inference_data_from_draws(draws(), residue=RESIDUE)
    ours = summary(idata, var_names=("energy", "hamming"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if arviz_compat.line() == 0:
            theirs = az.summary(idata, var_names=["energy", "hamming"], round_to="none")
            shared = list(theirs.columns)
        else:
            theirs = az.summary(idata, var_names=["energy", "hamming"], round_to="none")
            shared = ["mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "r_hat"]
    np.testing.assert_allclose(
        ours.loc[["energy", "hamming"], shared].to_numpy(dtype=float),
        theirs.loc[["energy", "hamming"], shared].to_numpy(dtype=float),
        rtol=1e-12,
    )
