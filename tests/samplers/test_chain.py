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
    sampler, tokens = _sampler("replica-exchange", replicas=2, inner="mh")
    chain = Chain.start(sampler, tokens, warmup=1, seed=0)
    info = chain.step()
    fields = chain.progress(info)  # during warm-up: the latest sweep's rates
    assert list(fields) == ["acc. rate", "novel", "swap"]
    assert fields["acc. rate"] == f"{float(info.acceptance_rate.mean()):.3f}"
    info = chain.step()
    accepted, _ = chain.rates()
    assert chain.progress(info)["acc. rate"] == f"{accepted:.3f}"
    regen, tokens = _sampler("regenerate", regen_prob=1.0)
    chain = Chain.start(regen, tokens, warmup=0, seed=0)
    assert "regen acc." in chain.progress(chain.step())


def test_a_bad_warmup_is_refused() -> None:
    sampler, tokens = _sampler()
    with pytest.raises(ValueError, match="warmup must be an integer >= 0"):
        Chain.start(sampler, tokens, warmup=-1)
