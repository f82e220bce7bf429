"""MaskedMH / MaskedGibbs as Pyro kernels: cost, reproducibility, chains, contract, errors."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from conftest import run_mcmc, tiny_mlm
from pyro.infer import MCMC

from pyro_mlm import MaskedGibbs, MaskedLM, MaskedMH, MLMEnergy
from pyro_mlm.pyro.conversion import get_tokens
from pyro_mlm.samplers.scan import next_positions


class Counter:
    """Wraps ``mlm.masked_logits`` to count forward calls and rows."""

    def __init__(self, mlm: MaskedLM, monkeypatch: pytest.MonkeyPatch, bias_to: int | None = None):
        self.calls: list[int] = []
        inner = mlm.masked_logits

        def counted(ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
            self.calls.append(ids.shape[0])
            logits = inner(ids, attn, pos)
            if bias_to is not None:  # make the conditional a point mass on one token
                logits[:, bias_to] += 100.0
            return logits

        monkeypatch.setattr(mlm, "masked_logits", counted)

    def reset(self) -> None:
        self.calls.clear()


def _run(kernel, tokens: torch.Tensor, samples: int = 6, warmup: int = 2, **kw) -> MCMC:
    return run_mcmc(kernel, tokens, samples, warmup, **kw)


# ------------------------------------------------------------------ cost
@pytest.mark.parametrize("row_budget", [None, 5])
def test_a_proposal_evaluates_at_most_free_rows_per_chain(monkeypatch, row_budget) -> None:
    mlm = tiny_mlm(init_range=0.3)
    counter = Counter(mlm, monkeypatch)
    tokens = mlm.encode("a b c d e f").repeat(3, 1)
    free = 6
    kernel = MaskedMH(MLMEnergy(mlm, row_budget=row_budget), proposals_per_sample=1)
    kernel.initial_params = {"tokens": tokens}
    kernel.setup(0)
    assert sum(counter.calls) == 3 * free  # the start state: one evaluation
    params = kernel.initial_params
    for _ in range(40):
        counter.reset()
        before = kernel.state.tokens
        params = kernel.sample(params)
        rows = sum(counter.calls)
        # |free| rows per chain whose proposal differs from its current token, none else
        assert rows % free == 0 and rows <= 3 * free
        assert rows >= free * int((kernel.state.tokens != before).any(-1).sum())
        assert len(counter.calls) == math.ceil(rows / (row_budget or rows or 1))


def test_self_proposals_cost_no_forward_pass(monkeypatch) -> None:
    mlm = tiny_mlm()
    counter = Counter(mlm, monkeypatch, bias_to=5)  # q(a | rest) = 1 - 1e-43
    kernel = MaskedMH(MLMEnergy(mlm))
    kernel.initial_params = {"tokens": mlm.encode("a a a a").repeat(4, 1)}
    kernel.setup(0)
    counter.reset()
    params = kernel.sample(kernel.initial_params)  # a sweep of 4 proposals in 4 chains
    assert counter.calls == []
    assert params["tokens"].tolist() == mlm.encode("a a a a").repeat(4, 1).tolist()
    assert kernel.logging()["acceptance_rate"] == "1.000"
    assert kernel.logging()["novel_rate"] == "0.000"


def test_gibbs_costs_one_masked_row_per_chain_per_update(monkeypatch) -> None:
    mlm = tiny_mlm()
    counter = Counter(mlm, monkeypatch)
    kernel = MaskedGibbs(MLMEnergy(mlm), proposals_per_sample=1)
    kernel.initial_params = {"tokens": mlm.encode("a b c").repeat(5, 1)}
    kernel.setup(0)
    params = kernel.initial_params  # the start's energy site: one evaluation, once per run
    counter.reset()
    kernel.sample(params)
    assert counter.calls[0] == 5  # the update; the rest is the per-draw energy record
    assert sum(counter.calls[1:]) == 5 * 3


# ------------------------------------------------------------------ reproducibility
@pytest.mark.parametrize("kernel_cls", [MaskedMH, MaskedGibbs])
def test_same_seed_same_samples(kernel_cls) -> None:
    mlm = tiny_mlm(init_range=0.3)
    tokens = mlm.encode("a b c d").repeat(3, 1)
    runs = []
    for seed in (7, 7, 8):
        pyro.set_rng_seed(seed)
        runs.append(get_tokens(_run(kernel_cls(MLMEnergy(mlm)), tokens)))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


# ------------------------------------------------------------------ chains
def test_single_chain_returns_unbatched_tokens(mlm: MaskedLM) -> None:
    ids = mlm.encode("a b c")
    mcmc = _run(MaskedMH(MLMEnergy(mlm)), ids)
    samples = get_tokens(mcmc)
    assert samples.shape == (6, 5) and samples.dtype == torch.long  # the ids themselves
    assert bool((samples[:, [0, -1]] == ids[[0, -1]]).all())


def _contexts(mlm: MaskedLM) -> torch.Tensor:
    return torch.stack([mlm.encode("a a a"), mlm.encode("h h h")])


@pytest.mark.parametrize(("parallel", "context"), [(False, None), (True, None), (True, "spawn")])
def test_pyro_num_chains_start_each_chain_from_its_own_row(monkeypatch, parallel, context) -> None:
    """Pyro 1.9.2's parallel sampler would start both chains from the last row.

    With ``spawn`` the kernel (model and all) is pickled into each worker.
    """
    mlm = tiny_mlm(init_range=0.3)
    if parallel:
        monkeypatch.setattr(torch.multiprocessing, "cpu_count", lambda: 8)
    else:
        monkeypatch.setattr(torch.multiprocessing, "cpu_count", lambda: 1)
    start = _contexts(mlm)
    kernel = MaskedMH(MLMEnergy(mlm), free=[2])
    if parallel:
        mcmc = _run(kernel, start, num_chains=2, mp_context=context)
    else:
        with pytest.warns(UserWarning, match="sequentially"):
            mcmc = _run(kernel, start, num_chains=2)
    assert type(mcmc.sampler).__name__ == ("_MultiSampler" if parallel else "_UnarySampler")
    samples = get_tokens(mcmc, group_by_chain=True)
    assert samples.shape == (2, 6, 5)
    for chain in range(2):  # the fixed positions keep each chain's own context
        assert bool((samples[chain][:, [1, 3]] == start[chain, [1, 3]]).all())


def test_per_chain_free_masks_with_different_sizes() -> None:
    mlm = tiny_mlm(init_range=0.3)
    tokens = mlm.encode("a b c d").repeat(2, 1)
    free = torch.zeros(2, 6, dtype=torch.bool)
    free[0, 1] = True
    free[1, 2:5] = True
    mcmc = _run(MaskedMH(MLMEnergy(mlm), free=free), tokens, samples=20)
    samples = get_tokens(mcmc, group_by_chain=True)  # [chain, draw, L]
    assert bool((samples[0, :, 2:] == tokens[0, 2:]).all())
    assert bool((samples[1, :, :2] == tokens[1, :2]).all()) and samples[1, :, 5].eq(3).all()


def test_systematic_scan_visits_free_positions_in_order(mlm: MaskedLM) -> None:
    kernel = MaskedMH(MLMEnergy(mlm), free=[1, 3, 4], scan="systematic")
    kernel.initial_params = {"tokens": mlm.encode("a b c d")}
    kernel.setup(0)
    assert kernel.sampler is not None
    cursor, order = kernel.state.cursor, []
    for _ in range(7):  # the scan is a pure function of the sites and the state's cursor
        positions, cursor = next_positions(kernel.sampler.sites, cursor, "systematic", None)
        order.append(int(positions[0]))
    assert order == [1, 3, 4, 1, 3, 4, 1]


def test_sample_restarts_from_tokens_it_did_not_produce(mlm: MaskedLM) -> None:
    kernel = MaskedMH(MLMEnergy(mlm), proposals_per_sample=1)
    kernel.initial_params = {"tokens": mlm.encode("a b c")}
    kernel.setup(0)
    other = mlm.encode("h h h")
    out = kernel.sample({"tokens": other})
    assert int((out["tokens"] != other).sum()) <= 1
    assert kernel.state.energy.item() == pytest.approx(
        MLMEnergy(mlm)(out["tokens"].long()).item(), abs=1e-5
    )


# ------------------------------------------------------------------ Pyro contract
def test_pyro_kernel_contract(mlm: MaskedLM) -> None:
    kernel = MaskedMH(MLMEnergy(mlm))
    assert set(kernel.transforms) == {"tokens", "energy", "hamming"}  # chain folds only
    mcmc = _run(kernel, mlm.encode("a b c").repeat(2, 1))
    diag = kernel.diagnostics()
    assert diag["divergences"] == []
    assert 0.0 <= diag["novel acceptance rate"] <= diag["acceptance rate"] <= 1.0
    records = diag["draws"]
    assert records["rows"].shape == (6, 2) and records["is_novel"].shape == (6, 2)
    assert set(kernel.logging()) == {"acceptance_rate", "novel_rate"}
    # pyro's own per-chain diagnostics carry the same record
    assert torch.equal(mcmc._diagnostics[0]["draws"]["is_novel"], records["is_novel"])
    kernel.cleanup()
    kernel.cleanup()  # idempotent
    trace = pyro.poutine.trace(kernel.model).get_trace()
    assert trace.nodes["tokens"]["value"].shape == (2, 5)


def test_energy_records_are_the_energies_of_the_draws(mlm: MaskedLM) -> None:
    kernel = MaskedGibbs(MLMEnergy(mlm, "raw"))
    mcmc = _run(kernel, mlm.encode("a b c").repeat(2, 1))
    draws = get_tokens(mcmc, group_by_chain=True).long()  # [chain, draw, L]
    expected = MLMEnergy(mlm, "raw")(draws).double()
    sites = mcmc.get_samples(group_by_chain=True)
    torch.testing.assert_close(sites["energy"], expected, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ bad input
def test_missing_initial_tokens_say_how_to_pass_them(mlm: MaskedLM) -> None:
    with pytest.raises(ValueError, match=r"initial_params=\{'tokens'"):
        MCMC(MaskedMH(MLMEnergy(mlm)), num_samples=2, disable_progbar=True).run()


def test_bad_initial_tokens_are_refused(mlm: MaskedLM) -> None:
    kernel = MaskedMH(MLMEnergy(mlm))
    ids = mlm.encode("a b")
    with pytest.raises(TypeError, match="integer token ids"):
        kernel.initial_params = {"tokens": ids.float()}
    with pytest.raises(ValueError, match=r"\[L\] or \[C, L\]"):
        kernel.initial_params = {"tokens": ids.repeat(2, 2, 1)}
    with pytest.raises(ValueError, match="initial_params must be"):
        kernel.initial_params = {"x": ids}
    unk = ids.clone()
    unk[1] = 1  # [UNK] is special: fixed context by default, refused where marked free
    kernel.initial_params = {"tokens": unk}
    with pytest.raises(ValueError, match=r"positions \[1\] are marked free but hold special"):
        MaskedMH(MLMEnergy(mlm), free=[1, 2]).initial_params = {"tokens": unk}
    restricted = MaskedMH(MLMEnergy(tiny_mlm(proposable=["a"])))
    with pytest.raises(ValueError, match="outside the proposable set"):
        restricted.initial_params = {"tokens": ids}


def test_bad_kernel_options_are_refused(mlm: MaskedLM) -> None:
    energy = MLMEnergy(mlm)
    with pytest.raises(TypeError, match="expected an MLMEnergy"):
        MaskedMH(mlm)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'random' or 'systematic'"):
        MaskedMH(energy, scan="gibbs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="proposals_per_sample"):
        MaskedMH(energy, proposals_per_sample=0)
    with pytest.raises(ValueError, match="proposal_temperature must be finite and > 0"):
        MaskedMH(energy, proposal_temperature=0.0)
    with pytest.raises(TypeError, match="extra_potential must be a callable"):
        MaskedMH(energy, extra_potential=3.0)  # type: ignore[arg-type]


def test_extra_potential_of_wrong_shape_is_refused(mlm: MaskedLM) -> None:
    kernel = MaskedMH(MLMEnergy(mlm), extra_potential=lambda t: torch.zeros(t.shape))
    kernel.initial_params = {"tokens": mlm.encode("a b")}
    with pytest.raises(ValueError, match="one energy per sequence"):
        kernel.setup(0)


def test_infinite_extra_potential_forbids_sequences(mlm: MaskedLM) -> None:
    """A hard constraint: +inf energy for any sequence with 'h' (id 12); never sampled."""

    def forbid_h(tokens: torch.Tensor) -> torch.Tensor:
        return torch.where((tokens == 12).any(-1), float("inf"), 0.0)

    start = mlm.encode("a h c").repeat(2, 1)
    with pytest.raises(ValueError, match=r"chains \[0, 1\] start where the energy is inf"):
        _run(MaskedMH(MLMEnergy(mlm), extra_potential=forbid_h), start)
    samples = get_tokens(
        _run(
            MaskedMH(MLMEnergy(tiny_mlm(init_range=0.3)), extra_potential=forbid_h),
            mlm.encode("a b c").repeat(8, 1),
            samples=10,
        )
    )
    assert not bool((samples == 12).any())
