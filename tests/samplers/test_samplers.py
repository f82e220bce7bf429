"""Every registered sampler through the same checks: one entry in SAMPLER_CASES each.

Pyro contract, same seed same draws, checkpoint/resume byte-identity, forward-row cost;
block MH with k=1 takes single-site MH's path. Exactness is in test_exactness.py.
"""

from __future__ import annotations

import json
import math
import os

import pyro
import pytest
import torch
from conftest import run_mcmc, save_tiny, tiny_mlm
from sampler_cases import SAMPLER_CASES, SamplerCase

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.pyro.conversion import get_tokens
from pyro_mlm.pyro.kernel import SamplerKernel
from pyro_mlm.run.loop import sample_to_directory
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.samplers import SAMPLERS, build_sampler
from pyro_mlm.samplers.regenerate_move import draw_block


def test_every_registered_sampler_has_a_case() -> None:
    assert {case.sampler for case in SAMPLER_CASES} == set(SAMPLERS)


def test_the_torch_free_option_table_matches_the_classes() -> None:
    from pyro_mlm.samplers.options import SAMPLER_OPTIONS

    assert list(SAMPLER_OPTIONS) == list(SAMPLERS)
    for name, cls in SAMPLERS.items():
        assert cls.OPTIONS == SAMPLER_OPTIONS[name] and cls.name == name


def test_help_imports_no_torch() -> None:
    from conftest import run_fresh_python

    out, _ = run_fresh_python(
        "import sys\nfrom pyro_mlm.cli import main\n"
        "for argv in (['sample', '--help'], ['optimize', '--help'], ['score', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    assert "--block-size" in out and "replica-exchange" in out


@pytest.mark.parametrize("case", SAMPLER_CASES, ids=repr)
def test_pyro_kernel_contract(mlm, case: SamplerCase) -> None:
    kernel = SamplerKernel(MLMEnergy(mlm), sampler=case.sampler, **case.options)
    mcmc = run_mcmc(kernel, mlm.encode("a b c d").repeat(2, 1), samples=5, warmup=2)
    diag = kernel.diagnostics()
    assert diag["divergences"] == []
    assert 0.0 <= diag["novel acceptance rate"] <= diag["acceptance rate"] <= 1.0
    records = diag["draws"]  # one SweepRecords, printed as one line
    for name in ("accept_prob", "acceptance_rate", "is_novel", "rows"):
        assert records[name].shape == (5, 2), name
    assert records["tokens"].shape == (5, 2, 6) and "5 draws x 2 chains" in repr(records)
    assert torch.equal(mcmc._diagnostics[0]["draws"]["rows"], records["rows"])
    # Pyro's sites: the chain's summaries (the token ids are one call away)
    assert set(mcmc.get_samples()) == {"energy", "hamming"}
    assert get_tokens(mcmc, group_by_chain=True).shape == (2, 5, 6)
    kernel.cleanup()
    kernel.cleanup()  # idempotent
    assert {"acceptance_rate", "novel_rate"} <= set(kernel.logging())


@pytest.mark.parametrize("case", SAMPLER_CASES, ids=repr)
def test_same_seed_same_samples(case: SamplerCase) -> None:
    mlm = tiny_mlm(init_range=0.3)
    tokens = mlm.encode("a b c d e").repeat(3, 1)
    runs = []
    for seed in (7, 7, 8):
        pyro.set_rng_seed(seed)
        kernel = SamplerKernel(MLMEnergy(mlm), sampler=case.sampler, **case.options)
        runs.append(get_tokens(run_mcmc(kernel, tokens, 6, 2)))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


@pytest.mark.parametrize("case", SAMPLER_CASES, ids=repr)
def test_an_interrupted_run_resumes_to_the_same_draws(tmp_path, capsys, case: SamplerCase):
    mlm = tiny_mlm(init_range=0.3)
    model = save_tiny(tmp_path / "model", init_range=0.3)
    options = json.loads(json.dumps(case.options))
    spec = RunSpec(
        model=str(model),
        sequences=("a b c d e f",) * 2,
        kernel=case.sampler,
        warmup=2,
        samples=5,
        seed=3,
        options=options,
    )
    whole = sample_to_directory(spec, mlm, str(tmp_path / "whole"), progress=False)
    assert whole.completed

    def stop(sweep: int) -> None:
        if sweep == 4:
            raise KeyboardInterrupt  # after the sweep's draws, before its checkpoint

    cut = str(tmp_path / "cut")
    assert not sample_to_directory(spec, mlm, cut, progress=False, on_sweep=stop).completed
    assert sample_to_directory(spec, mlm, cut, resume=True, progress=False).completed
    read = [
        (tmp_path / d / "samples.jsonl").read_bytes() for d in ("whole", "cut")
    ]  # byte-identical files: the generator and state were saved exactly
    assert read[0] == read[1]
    records = [json.loads(line) for line in read[0].decode().splitlines()]
    for chain in range(2):  # each draw records the masked rows its sweep cost the chain
        rows = [r["rows"] for r in records if r["chain"] == chain]
        assert all(isinstance(n, int) for n in rows) and sum(rows) > 0
        if not case.proposal_rows(6):  # then every row is one of a 6-row evaluation
            assert all(n % 6 == 0 for n in rows)
    assert os.path.exists(os.path.join(cut, "posterior.nc"))


class RowCounter:
    def __init__(self, mlm, monkeypatch) -> None:
        self.calls: list[int] = []
        inner = mlm.logits_at  # the one forward: masked_logits and conditionals_at call it

        def counted(ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
            self.calls.append(ids.shape[0])
            return inner(ids, attn, pos)

        monkeypatch.setattr(mlm, "logits_at", counted)


@pytest.mark.parametrize("case", [c for c in SAMPLER_CASES if c.exact], ids=repr)
def test_a_proposal_costs_at_most_free_rows_per_chain(monkeypatch, case: SamplerCase) -> None:
    mlm = tiny_mlm(init_range=0.3)
    counter = RowCounter(mlm, monkeypatch)
    chains, free = 3, 6
    tokens = mlm.encode("a b c d e f").repeat(chains, 1)
    mask = ~mlm.special_mask(tokens)
    sampler = build_sampler(
        case.sampler, Target(MLMEnergy(mlm)), mask, proposals_per_sweep=1, **case.options
    )
    state = sampler.init(tokens)
    per_chain = free * case.replicas  # one evaluation of every replica of a chain
    start = per_chain if case.start_rows is None else case.start_rows(free)
    assert sum(counter.calls) == chains * start  # the start state: one evaluation
    most = chains * (per_chain + case.proposal_rows(free) * case.replicas)
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        counter.calls.clear()
        state, info = sampler.step(state, generator)
        rows = sum(counter.calls)
        assert rows <= most and (case.proposal_rows(free) or rows % free == 0)
        assert rows == int(info.rows.sum())  # the state's row counter is the true cost
    assert int(state.rows.sum()) >= chains * start


def test_block_of_one_takes_single_site_mh_path(monkeypatch) -> None:
    mlm = tiny_mlm(init_range=0.3)
    counter = RowCounter(mlm, monkeypatch)
    tokens = mlm.encode("a b c d e f").repeat(4, 1)
    mask = ~mlm.special_mask(tokens)
    paths, costs = [], []
    for name, options in (("mh", {}), ("block", {"block_size": 1})):
        sampler = build_sampler(name, Target(MLMEnergy(mlm)), mask, **options)
        state = sampler.init(tokens)
        generator = torch.Generator().manual_seed(11)
        counter.calls.clear()
        path = []
        for _ in range(8):
            state, _ = sampler.step(state, generator)
            path.append(state.tokens.clone())
        paths.append(torch.stack(path))
        costs.append(list(counter.calls))
    assert torch.equal(paths[0], paths[1]) and costs[0] == costs[1]
    assert len({tuple(p.flatten().tolist()) for p in paths[0]}) > 3  # the chains moved


def test_block_proposals_change_up_to_k_positions() -> None:
    mlm = tiny_mlm(init_range=0.3)
    tokens = mlm.encode("a b c d e f").repeat(64, 1)
    mask = ~mlm.special_mask(tokens)
    for mode in ("random", "window"):
        sampler = build_sampler(
            "block", Target(MLMEnergy(mlm)), mask, block_size=3, block_mode=mode
        )
        sites, valid = sampler.block(sampler.sites.table[:, 0], torch.Generator().manual_seed(0))
        assert sites.shape == (64, 3) and bool(valid.all())
        assert all(len(set(row)) == 3 for row in sites.tolist())  # distinct positions
        if mode == "window":
            assert all(row == list(range(row[0], row[0] + 3)) for row in sites.tolist())


BAD_OPTIONS = [
    ("block", {"block_size": 0}, "block sizes must be integers >= 1"),
    ("block", {"block_size": "two"}, "block size must be an integer"),
    ("block", {"block_mode": "spiral"}, "block mode must be one of"),
    ("block", {"blocksize": 2}, "blocksize does not apply to sampler 'block'"),
    ("regenerate", {"regen_prob": 0}, "expected a probability in (0, 1]"),
    ("regenerate", {"regen_prob": 1.5}, "expected a probability in (0, 1]"),
    ("regenerate", {"regen_block": "ring"}, "the regeneration block must be one of"),
    ("regenerate", {"regen_order": "backwards"}, "the fill order must be one of"),
    ("regenerate", {"regen_temperature": -1}, "the regeneration temperature must be auto or > 0"),
    ("regenerate", {"regen_size": 3}, "regen_size does not apply to regen_block region"),
]


@pytest.mark.parametrize(("sampler", "options", "message"), BAD_OPTIONS)
def test_bad_sampler_options_are_refused(mlm, sampler, options, message) -> None:
    with pytest.raises(ValueError) as caught:
        mask = ~mlm.special_mask(mlm.encode("a b").unsqueeze(0))
        build_sampler(sampler, Target(MLMEnergy(mlm)), mask, **options)
    assert message in str(caught.value)


def test_regeneration_blocks_and_moves() -> None:
    """Blocks: the whole region, windows of consecutive free positions or random subsets,
    in a random or left-to-right order; accepted regenerations change many positions at
    once (the point of a global move), and the rows paid are 2k - 2 per changed proposal."""
    mlm = tiny_mlm(init_range=0.3)
    tokens = mlm.encode("a b c d e f").repeat(64, 1)
    mask = ~mlm.special_mask(tokens)
    target = Target(MLMEnergy(mlm))
    generator = torch.Generator().manual_seed(0)
    every = torch.arange(64)

    def block(sampler):  # type: ignore[no-untyped-def]
        return draw_block(sampler.sites, every, sampler.rule, generator)

    region = build_sampler("regenerate", target, mask, regen_order="left-to-right")
    sites, valid = block(region)
    assert bool(valid.all()) and sites.tolist() == [list(range(1, 7))] * 64
    shuffled = block(build_sampler("regenerate", target, mask))[0]
    assert all(sorted(row) == list(range(1, 7)) for row in shuffled.tolist())
    assert len({tuple(row) for row in shuffled.tolist()}) > 10  # orders differ
    window = build_sampler("regenerate", target, mask, regen_block="window", regen_size=3,
                           regen_order="left-to-right")  # fmt: skip
    for row in block(window)[0].tolist():
        assert row == list(range(row[0], row[0] + 3))
    subset = build_sampler("regenerate", target, mask, regen_block="random", regen_size="2,4")
    sites, valid = block(subset)
    assert set(valid.sum(1).tolist()) == {2, 4}
    sampler = build_sampler("regenerate", target, mask, regen_prob=1.0, regen_temperature=1.0,
                            proposals_per_sweep=1)  # fmt: skip
    state = sampler.init(tokens)
    changed = []
    for _ in range(10):
        before = state.tokens
        state, info = sampler.step(state, generator)
        assert bool((info.regenerations == 1).all())
        changed += (state.tokens != before).sum(-1)[info.acceptance_rate > 0].tolist()
        # forward k rows; where the proposal differs also k - 2 reverse rows and E(X')'s 6
        assert set(info.rows.tolist()) <= {6, 2 * 6 - 2 + 6}
        assert bool((info.rows[(state.tokens != before).any(-1)] == 16).all())
    assert max(changed) >= 4  # whole-region moves, not 1-2 residues


def test_regenerate_freezes_its_regeneration_temperature_at_the_end_of_warm_up() -> None:
    mlm = tiny_mlm(init_range=0.3)
    tokens = mlm.encode("a b c d e f").repeat(4, 1)
    sampler = build_sampler("regenerate", Target(MLMEnergy(mlm)), ~mlm.special_mask(tokens),
                            regen_prob=0.5)  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    state = sampler.init(tokens)
    assert sampler.end_warmup(state).choice == 1  # no warm-up ran: the default, 0.8
    for _ in range(4):
        state, info = sampler.step(state, generator)
        assert bool(info.regen_temperature.isnan().all())  # still comparing
    assert int(state.tries) > len(sampler.taus) and bool((state.spent > 0).all())
    state = sampler.end_warmup(state)
    best = int((state.gain / state.spent).argmax())
    assert int(state.choice) == best
    state, info = sampler.step(state, generator)
    assert bool((info.regen_temperature == sampler.taus[best]).all())
    assert int(sampler.end_warmup(state).choice) == best  # frozen: a second call keeps it


def test_metropolised_never_proposes_the_current_token() -> None:
    from pyro_mlm.samplers.proposals import metropolised_proposal

    ids = torch.tensor([5, 6, 7])
    logits = torch.tensor([[0.0, math.log(2.0), math.log(5.0)]]).repeat(4000, 1)
    current = torch.full((4000,), 6)
    p = metropolised_proposal(logits, current, ids, generator=torch.Generator().manual_seed(0))
    assert not bool((p.new_tokens == 6).any())
    # q~(5) = (1/8) / (6/8) = 1/6; q~(7) = 5/6; reverse q(6) / (1 - q(new))
    freq5 = float((p.new_tokens == 5).double().mean())
    assert abs(freq5 - 1 / 6) < 4 * math.sqrt((1 / 6) * (5 / 6) / 4000)
    five = p.new_tokens == 5
    torch.testing.assert_close(p.log_q_forward[five][0], torch.tensor(math.log(1 / 6)))
    torch.testing.assert_close(p.log_q_reverse[five][0], torch.tensor(math.log((2 / 8) / (7 / 8))))


def test_the_cli_runs_and_resumes_a_sampler_with_its_options(tmp_path, capsys) -> None:
    from pyro_mlm.cli import main

    model = save_tiny(tmp_path / "model", init_range=0.3)
    out = tmp_path / "run"
    base = ["sample", "--model", str(model), "--sequence", "a b c d e", "--chains", "2"]
    argv = [*base, "--kernel", "block", "--block-size", "1,2", "--block-mode", "window"]
    assert main([*argv, "--warmup", "1", "--samples", "3", "--out", str(out)]) == 0
    spec = RunSpec.read(str(out / "run.json"))
    assert spec.kernel == "block"
    assert spec.options == {"block_size": [1, 2], "block_mode": "window"}
    assert main(["sample", "--resume", str(out), "--samples", "5", "--no-progress"]) == 0
    code = main(["sample", "--resume", str(out), "--block-size", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "holds a different run: it has options=" in err
    code = main([*base, "--block-size", "2", "--out", str(tmp_path / "other")])
    err = capsys.readouterr().err
    assert code == 2 and "--block-size does not apply to --kernel mh" in err
