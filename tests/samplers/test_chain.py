"""The one chain driver (pyro_mlm/samplers/chain.py) that the Pyro shell and the run loop share:
warm-up ends once, counters, progress fields, and a checkpoint that continues exactly."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_mlm

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.samplers import build_sampler
from pyro_mlm.samplers.chain import Chain


def _sampler(name: str = "mh", **options: object):
    mlm = tiny_mlm(init_range=0.3)
    tokens = mlm.encode("a b c d").repeat(3, 1)
    return build_sampler(name, Target(MLMEnergy(mlm)), ~mlm.special_mask(tokens), **options), tokens


@pytest.mark.parametrize("warmup", [0, 1, 3])
def test_warmup_ends_once_after_sweep_warmup_and_only_kept_sweeps_count(monkeypatch, warmup):
    sampler, tokens = _sampler()
    ended: list[int] = []
    chain: Chain | None = None
    original = sampler.end_warmup

    def end_warmup(state):
        ended.append(-1 if chain is None else chain.sweep)
        return original(state)

    monkeypatch.setattr(sampler, "end_warmup", end_warmup)
    chain = Chain.start(sampler, tokens, warmup=warmup, seed=0)
    if warmup == 0:
        assert ended == [-1]  # at the start, before any sweep
    for _ in range(5):
        chain.step()
    assert ended == ([-1] if warmup == 0 else [warmup])
    kept = 5 - warmup
    assert chain.counts["proposals"] == 5 * 3 * sampler.proposals
    assert chain.counts["sample_proposals"] == kept * 3 * sampler.proposals
    assert (chain.counts["seconds"] > 0) == (kept > 0)


def test_a_checkpoint_continues_exactly_and_an_old_loop_checkpoint_keeps_its_rates() -> None:
    sampler, tokens = _sampler("regenerate", regen_prob=0.5)
    chain = Chain.start(sampler, tokens, warmup=2, seed=5)
    for _ in range(2):
        chain.step()
    saved = chain.state_dict()
    again = Chain.from_state_dict(sampler, saved, warmup=2, device=tokens.device)
    for _ in range(2):
        chain.step()
        again.step()
        assert torch.equal(chain.tokens, again.tokens)
        assert torch.equal(chain.energy, again.energy)
    times = ("seconds",)  # wall time, the one counter that is not replayed
    assert {k: v for k, v in chain.counts.items() if k not in times} == {
        k: v for k, v in again.counts.items() if k not in times
    }
    # a run loop's checkpoint written before the driver counted kept sweeps as plain counts
    old = {**saved, "counts": {"proposals": 40, "accepted": 30, "novel": 10, "seconds": 1.5}}
    restored = Chain.from_state_dict(sampler, old, warmup=2, device=tokens.device)
    assert restored.rates() == (0.75, 0.25) and restored.counts["seconds"] == 1.5


def test_progress_shows_the_rates_then_the_samplers_own_fields() -> None:
    sampler, tokens = _sampler("replica-exchange", replicas=3, inner="mh")
    chain = Chain.start(sampler, tokens, warmup=1, seed=0)
    info = chain.step()
    fields = chain.progress(info)  # during warm-up: the warm-up sweeps' rates
    assert list(fields) == ["acceptance_rate", "novel_rate", "swap_rate[0]", "swap_rate[1]"]
    assert fields["acceptance_rate"] == f"{float(info.acceptance_rate.mean()):.3f}"
    infos = [chain.step() for _ in range(3)]  # the kept sweeps: their mean, not the latest's
    accepted, _ = chain.rates()
    assert chain.progress()["acceptance_rate"] == f"{accepted:.3f}"
    swaps = torch.stack([i.swap_rate.double() for i in infos]).mean((0, 1))
    assert chain.progress()["swap_rate[1]"] == f"{float(swaps[1]):.3f}"


def test_regeneration_acceptance_is_a_rate_with_one_name_on_the_line_and_in_the_table() -> None:
    """summary.csv's regen_acceptance is accepted regenerations over regenerations (a rate in
    [0, 1]), the counts per sweep have their own names, and the progress line shows the
    same name and value as the table computed from the same sweeps."""
    from pyro_mlm.samplers.statistics import sweep_statistics

    regen, tokens = _sampler("regenerate", regen_prob=0.5)
    chain = Chain.start(regen, tokens, warmup=0, seed=0)
    infos = [chain.step() for _ in range(6)]
    regens = sum(float(i.regenerations.sum()) for i in infos)
    accepted = sum(float(i.regen_accepted.sum()) for i in infos)
    assert regens > 0
    stats = chain.statistics()
    assert stats["regen_acceptance"] == pytest.approx(accepted / regens)
    assert 0.0 <= stats["regen_acceptance"] <= 1.0
    assert stats["regenerations_per_sweep"] == pytest.approx(regens / (6 * tokens.shape[0]))
    assert "regen_accepted" not in stats and "regenerations" not in stats
    assert chain.progress()["regen_acceptance"] == f"{stats['regen_acceptance']:.3f}"
    # the table's way: totals of the recorded [chain, draw] arrays
    arrays = {f: torch.stack([getattr(i, f) for i in infos], 1) for f in infos[0]._fields}
    totals = {f: a.double().sum((0, 1)).numpy() for f, a in arrays.items()}
    assert sweep_statistics(totals, 6 * tokens.shape[0]) == pytest.approx(stats)
    # a checkpoint carries the totals: a resumed run's line goes on from them
    again = Chain.from_state_dict(regen, chain.state_dict(), warmup=0, device=tokens.device)
    assert again.progress() == chain.progress()


def test_a_bad_warmup_is_refused() -> None:
    sampler, tokens = _sampler()
    with pytest.raises(ValueError, match="warmup must be an integer >= 0"):
        Chain.start(sampler, tokens, warmup=-1)
