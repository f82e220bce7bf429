"""Pyro's and ArviZ's own entry points, with their defaults, on every registered sampler.

The calls a Pyro or ArviZ user types first: ``mcmc.summary()``, ``mcmc.diagnostics()``,
``mcmc.get_samples()``, ``pyro_mlm.to_inference_data(mcmc)`` (and ``arviz.from_pyro(mcmc)``
where the installed ArviZ has it: 0.x), ``az.summary``, ``az.rhat``, ``az.ess``,
``az.plot_trace``, ``az.plot_rank``, on vectorised chains, on Pyro's ``num_chains=2``, and
on the ``posterior.nc`` of a command-line run (plain, sharded, campaign job), on whichever
ArviZ line is installed (CI runs both). No ``var_names``: the defaults must work and be
readable (issue 35): Pyro's table has a row per summary (energy, Hamming, length where it
varies), not per token position; ``mcmc.diagnostics()`` prints in a few lines; ArviZ's
summary has the summaries' rows and its rank and trace plots a panel per summary, with no
warning. The token ids stay one call away: ``pyro_mlm.get_tokens(mcmc)``, the ``sequences``
group, or Pyro's own ``save_params``.
"""

from __future__ import annotations

import os
import warnings

import matplotlib
import numpy as np
import pyro
import pytest
import torch
from conftest import run_mcmc, tiny_mlm
from sampler_cases import SAMPLER_CASES, SamplerCase

from pyro_mlm import MLMEnergy, SamplerKernel, get_tokens, to_inference_data
from pyro_mlm.cli import main
from pyro_mlm.report.arviz_compat import arviz, line

matplotlib.use("Agg")
az = arviz()


def converted(mcmc) -> list:
    """The installed ArviZ's objects of a run: ours, and ArviZ's own converter where it
    exists (``az.from_pyro`` is gone in ArviZ 1.x)."""
    ours = to_inference_data(mcmc)
    assert "tokens" in ours["sequences"]
    return [ours] + ([az.from_pyro(mcmc)] if line() == 0 else [])


def check_arviz_defaults(idata, chains: int, draws: int, summaries=("energy", "hamming")) -> None:
    """az.summary / rhat / ess / plot_trace / plot_rank with defaults on ``idata``: a row and
    a rank panel per summary, no warning; the tokens in the ``sequences`` group."""
    import matplotlib.pyplot as plt

    post = idata.posterior
    assert set(post.data_vars) == set(summaries)
    assert post["energy"].shape == (chains, draws)
    if "sequences" in idata.groups() if line() == 0 else "sequences" in idata.children:
        tokens = idata["sequences"]["tokens"]  # ours (az.from_pyro sees Pyro's sites only)
        assert tokens.shape[:2] == (chains, draws) and np.issubdtype(tokens.dtype, np.integer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = az.summary(idata)
        assert list(table.index) == list(summaries)
        assert np.isfinite(table.loc["energy", "mean"]) and table.loc["energy", "r_hat"] > 0.5
        assert float(az.rhat(idata)["energy"]) > 0.5
        assert float(az.ess(idata)["energy"]) > 0
        az.plot_trace(idata)
        plt.close("all")
        panels = az.plot_rank(idata)
    # ArviZ 0.23's plots trip matplotlib's deprecation notices (theirs, not the data's)
    shown = [
        f"{w.category.__name__}: {str(w.message)[:80]}"
        for w in caught
        if not issubclass(w.category, DeprecationWarning)
    ]
    # at most ArviZ's and numpy's notes on a summary that did not move in these 8-draw runs
    # (a Hamming distance stuck at 0): a few per summary, not a few per token position
    # (4381 before the tokens left the posterior)
    assert len(shown) <= 10 * len(summaries), shown
    if line() == 0:  # 0.x returns the axes; 1.x a PlotCollection, one panel per variable
        assert np.asarray(panels).size == len(summaries)
    plt.close("all")


def check_pyro_defaults(mcmc, capsys, summaries=("energy", "hamming")) -> None:
    """``mcmc.summary()`` prints a row per summary, ``mcmc.diagnostics()`` a few lines."""
    mcmc.summary()
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.strip()]
    assert [r.split()[0] for r in rows[1:-1]] == sorted(summaries), printed  # header, rows
    assert "tokens" not in printed
    diag = mcmc.diagnostics()
    assert {"n_eff", "r_hat"} <= set(diag["energy"]) & set(diag["hamming"])
    assert torch.isfinite(diag["energy"]["n_eff"])
    text = str(diag)  # no raw per-draw tensors: scalars, and one line of records per chain
    assert "tensor([" not in text and len(text) < 800 * mcmc.num_chains, text


def _kernel(case: SamplerCase) -> SamplerKernel:
    mlm = tiny_mlm(init_range=0.3)
    return SamplerKernel(MLMEnergy(mlm), sampler=case.sampler, **case.options)


@pytest.mark.parametrize("case", SAMPLER_CASES, ids=repr)
def test_pyro_and_arviz_defaults_on_vectorised_chains(case: SamplerCase, capsys) -> None:
    kernel = _kernel(case)
    tokens = kernel.energy.mlm.encode("a b c d").repeat(3, 1)
    mcmc = run_mcmc(kernel, tokens, samples=8, warmup=2)
    check_pyro_defaults(mcmc, capsys)
    samples = mcmc.get_samples(group_by_chain=True)
    assert set(samples) == {"energy", "hamming"} and samples["energy"].shape == (3, 8)
    assert get_tokens(mcmc, group_by_chain=True).shape == (3, 8, 6)
    assert get_tokens(mcmc).shape == (24, 6) and mcmc.get_samples()["energy"].shape == (24,)
    for idata in converted(mcmc):
        check_arviz_defaults(idata, chains=3, draws=8)
    # the draws' energies are those of their tokens, at the model's precision
    energy = MLMEnergy(kernel.energy.mlm)(get_tokens(mcmc, group_by_chain=True)).double()
    torch.testing.assert_close(samples["energy"], energy, atol=1e-4, rtol=0)


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_pyro_num_chains_gives_the_same_shapes_as_vectorised_chains(monkeypatch, parallel, capsys):
    monkeypatch.setattr(torch.multiprocessing, "cpu_count", lambda: 8 if parallel else 1)
    mlm = tiny_mlm(init_range=0.3)
    start = torch.stack([mlm.encode("a b c d"), mlm.encode("h g f e")])
    shapes = []
    for num_chains, tokens in ((2, start), (1, start)):
        kernel = SamplerKernel(MLMEnergy(mlm), sampler="mh")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="num_chains=2 is more than available_cpu")
            mcmc = run_mcmc(kernel, tokens, samples=8, warmup=2, num_chains=num_chains)
        check_pyro_defaults(mcmc, capsys)
        assert torch.isfinite(mcmc.diagnostics()["energy"]["r_hat"])
        samples = {**mcmc.get_samples(group_by_chain=True)}  # Pyro's own dict: not edited
        samples["tokens"] = get_tokens(mcmc, group_by_chain=True)
        shapes.append({k: tuple(v.shape) for k, v in samples.items()})
        # each chain keeps its own start at the special positions and starts from its own row
        for chain in range(2):
            assert samples["tokens"][chain, 0, 0] == start[chain, 0]
        for idata in converted(mcmc):
            check_arviz_defaults(idata, chains=2, draws=8)
    assert shapes[0] == shapes[1] == {"energy": (2, 8), "hamming": (2, 8), "tokens": (2, 8, 6)}


def _cli(model_dir: str, out: str, *extra: str) -> None:
    argv = ["sample", "--model", model_dir, "--sequence", "a b c d e f", "--free", "2-4"]
    argv += ["--warmup", "1", "--samples", "6", "--no-progress", "--out", out, *extra]
    assert main(argv) == 0


@pytest.mark.parametrize(
    ("extra", "posterior"),
    [
        ((), "posterior.nc"),
        (("--chains", "4", "--workers", "2"), "posterior.nc"),
        (("--campaign", "--sequence", "h g f e d c", "--chains", "2"), "runs/1/posterior.nc"),
    ],
    ids=["plain", "sharded", "campaign-job"],
)
def test_cli_posterior_opens_the_arviz_way(model_dir, tmp_path, capsys, extra, posterior):
    out = str(tmp_path / "run")
    _cli(model_dir, out, *extra)
    capsys.readouterr()
    idata = az.from_netcdf(os.path.join(out, posterior))
    chains = 4 if "--workers" in extra else (2 if "--campaign" in extra else 4)
    check_arviz_defaults(idata, chains=chains, draws=6)
    # the strings are coordinates, where ArviZ's defaults do not compute on them
    post = idata.posterior
    assert "sequence" in post.coords and "free_region" in post.coords
    assert "sequence" not in post.data_vars and post["sequence"].shape == (chains, 6)


def test_variable_lengths_through_pyro_and_arviz_defaults(capsys) -> None:
    """``lengths``: tokens padded to the longest region, a ``length`` site, and Pyro's and
    ArviZ's own summaries with their defaults."""
    from pyro.infer import MCMC

    mlm = tiny_mlm(num_words=4, init_range=0.3)
    pyro.set_rng_seed(0)
    kernel = SamplerKernel(MLMEnergy(mlm), sampler="mh", lengths="1-3")
    start = mlm.encode("a b").repeat(3, 1)
    mcmc = MCMC(kernel, num_samples=12, warmup_steps=3, initial_params={"tokens": start})
    mcmc.run()
    samples = mcmc.get_samples(group_by_chain=True)
    tokens = get_tokens(mcmc, group_by_chain=True)
    assert tokens.shape == (3, 12, 5) and samples["length"].shape == (3, 12)
    real = (tokens != mlm.pad_token_id).sum(-1) - 2
    assert torch.equal(real.double(), samples["length"])
    check_pyro_defaults(mcmc, capsys, ("energy", "hamming", "length"))
    assert set(mcmc.diagnostics()["length"]) == {"n_eff", "r_hat"}  # no record hides the site
    for idata in converted(mcmc):
        check_arviz_defaults(idata, 3, 12, ("energy", "hamming", "length"))
    with pytest.raises(ValueError, match="lengths works with the samplers"):
        SamplerKernel(MLMEnergy(mlm), sampler="gibbs", lengths="1-3")
