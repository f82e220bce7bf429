"""ArviZ bridge: groups, shapes, chain layout, summaries on float quantities, plots."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_mcmc, tiny_mlm
from pyro.infer import MCMC

from pyro_mlm import MaskedGibbs, MaskedLM, MaskedMH, MLMEnergy, summary, to_inference_data
from pyro_mlm.pyro.conversion import get_tokens
from pyro_mlm.report.plots import plot_energy_trace


def _mcmc(kernel, tokens: torch.Tensor, num_chains: int = 1, samples: int = 8) -> MCMC:
    return run_mcmc(kernel, tokens, samples, warmup=3, num_chains=num_chains)


def test_vectorised_chains_become_arviz_chains() -> None:
    mlm = tiny_mlm(init_range=0.3)
    start = torch.stack([mlm.encode("a b c"), mlm.encode("h g f"), mlm.encode("a a a")])
    mcmc = _mcmc(MaskedMH(MLMEnergy(mlm, temperature=2.0)), start)
    idata = to_inference_data(mcmc)
    post, stats, ids = idata.posterior, idata.sample_stats, idata["sequences"]["tokens"]
    assert "tokens" not in post  # ArviZ's defaults compute on the summaries alone
    assert ids.shape == (3, 8, 5) and ids.dtype == np.int64
    assert ids.dims == ("chain", "draw", "position")
    samples = get_tokens(mcmc, group_by_chain=True)  # [chain, draw, L]
    np.testing.assert_array_equal(ids.values, samples.numpy())
    energy = MLMEnergy(mlm)(samples).double().numpy()
    np.testing.assert_allclose(post["energy"].values, energy, atol=1e-5)
    np.testing.assert_allclose(stats["lp"].values, -energy / 2.0, atol=1e-5)
    hamming = (samples != start[0]).sum(-1).numpy()  # one reference: the first chain's start
    np.testing.assert_array_equal(post["hamming"].values, hamming)
    for name in ("acceptance_rate", "is_novel", "accept_prob"):
        values = stats[name].values
        assert values.shape == (3, 8) and ((values >= 0) & (values <= 1)).all()
    assert (stats["is_novel"].values <= stats["acceptance_rate"].values).all()


def test_pyro_chains_times_vectorised_chains(monkeypatch) -> None:
    monkeypatch.setattr(torch.multiprocessing, "cpu_count", lambda: 1)
    mlm = tiny_mlm(init_range=0.3)
    start = torch.stack([mlm.encode("a b c").repeat(2, 1), mlm.encode("h h h").repeat(2, 1)])
    with pytest.warns(UserWarning, match="sequentially"):
        mcmc = _mcmc(MaskedGibbs(MLMEnergy(mlm)), start, num_chains=2)
    idata = to_inference_data(mcmc)
    ids = idata["sequences"]["tokens"].values
    assert ids.shape == (4, 8, 5)
    starts = ids[:, 0]
    # Gibbs moves every position, so only the specials are certain; chains 0-1 came from
    # pyro chain 0, chains 2-3 from pyro chain 1; hamming is measured from one reference,
    # pyro chain 0's first start ("a b c"), in every chain
    assert (starts[:, 0] == 2).all() and (starts[:, -1] == 3).all()
    words = ids[..., 1:4]
    reference = mlm.encode("a b c")[1:4].numpy()
    np.testing.assert_array_equal(idata.posterior["hamming"].values, (words != reference).sum(-1))


def test_summary_reports_rhat_and_ess_on_float_summaries(mlm: MaskedLM) -> None:
    mcmc = _mcmc(
        MaskedMH(MLMEnergy(tiny_mlm(init_range=0.3))), mlm.encode("a b c").repeat(4, 1), samples=30
    )
    table = summary(to_inference_data(mcmc))
    # the summaries, then the sweep statistics under the progress line's names
    assert list(table.index) == ["energy", "hamming", "acceptance_rate", "novel_rate"]
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(table.columns)
    assert np.isfinite(table.loc["energy", "ess_bulk"]) and table.loc["energy", "r_hat"] > 0.9


def test_energy_trace_plot_is_a_png(tmp_path, mlm: MaskedLM) -> None:
    mcmc = _mcmc(MaskedMH(MLMEnergy(mlm)), mlm.encode("a b c").repeat(2, 1))
    path = tmp_path / "trace.png"
    plot_energy_trace(to_inference_data(mcmc), str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_to_inference_data_needs_a_finished_masked_run(mlm: MaskedLM) -> None:
    with pytest.raises(TypeError, match="MaskedMH or MaskedGibbs"):
        to_inference_data(object())
    mcmc = MCMC(
        MaskedMH(MLMEnergy(mlm)),
        num_samples=2,
        initial_params={"tokens": mlm.encode("a")},
        disable_progbar=True,
    )
    with pytest.raises(ValueError, match=r"call mcmc.run\(\) first"):
        to_inference_data(mcmc)
