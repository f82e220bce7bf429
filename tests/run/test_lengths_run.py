"""Runs over a variable-length region (--lengths): files, resume, cost, refusals, experts."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import arviz_constant_warnings_allowed, save_tiny, tiny_mlm
from sampler_cases import SAMPLER_CASES, SamplerCase

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.experts import Context, Forbid, MaxMutations
from pyro_mlm.region.layout import Region, edit_distance, pad_region
from pyro_mlm.run.loop import sample_to_directory
from pyro_mlm.run.prepare import prepare
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.samplers import build_sampler
from pyro_mlm.samplers.lengths import VariableLength
from pyro_mlm.samplers.options import DECLARED

LENGTH_CASES = [c for c in SAMPLER_CASES if DECLARED[c.sampler].lengths]


def test_the_length_samplers_are_declared() -> None:
    assert {c.sampler for c in LENGTH_CASES} == {"mh", "block", "metropolised", "regenerate"}


@pytest.mark.parametrize("case", LENGTH_CASES, ids=repr)
def test_an_interrupted_run_resumes_to_the_same_draws(tmp_path, case: SamplerCase) -> None:
    mlm = tiny_mlm(init_range=0.3)
    model = save_tiny(tmp_path / "model", init_range=0.3)
    spec = RunSpec(
        model=str(model), sequences=("a b c d",) * 2, kernel=case.sampler, warmup=2,
        samples=5, seed=3, options=json.loads(json.dumps(case.options)), lengths="2-6",
        length_prior="penalty:0.2",
    )  # fmt: skip

    def stop(sweep: int) -> None:
        if sweep == 4:
            raise KeyboardInterrupt

    whole = sample_to_directory(spec, mlm, str(tmp_path / "whole"), progress=False)
    assert whole.completed
    cut = str(tmp_path / "cut")
    assert not sample_to_directory(spec, mlm, cut, progress=False, on_sweep=stop).completed
    assert sample_to_directory(spec, mlm, cut, resume=True, progress=False).completed
    read = [(tmp_path / d / "samples.jsonl").read_bytes() for d in ("whole", "cut")]
    assert read[0] == read[1]
    records = [json.loads(line) for line in read[0].decode().splitlines()]
    assert {len(r["tokens"]) for r in records} == {2 + 6}  # stored at the longest width
    assert all(2 <= r["length"] <= 6 and len(r["sequence"].split()) == r["length"] for r in records)


def test_a_length_move_costs_one_row_plus_the_proposal_energy(monkeypatch) -> None:
    mlm = tiny_mlm(init_range=0.3)
    calls: list[int] = []
    inner_fn = mlm.logits_at

    def counted(ids, attn, pos):
        calls.append(ids.shape[0])
        return inner_fn(ids, attn, pos)

    monkeypatch.setattr(mlm, "logits_at", counted)
    tokens = mlm.encode("a b c").repeat(64, 1)
    tokens, free = pad_region(tokens, ~mlm.special_mask(tokens), 5, mlm.pad_token_id)
    sampler = VariableLength(build_sampler("mh", Target(MLMEnergy(mlm)), free), (1, 5))
    state = sampler.init(tokens)
    calls.clear()
    gen = torch.Generator().manual_seed(0)
    n = sampler.length_of(state.tokens)
    new, info = sampler.length_move(state, gen)
    insert = info.insert.bool()
    expected = torch.where(insert, 1 + (n + 1), n - 1)
    assert torch.equal(info.rows, expected)
    assert torch.equal(new.rows - state.rows, expected)
    assert sum(calls) == int(expected.sum())  # no other forward pass
    assert 0 < int(insert.sum()) < 64  # both kinds of move were made (n=3 of 1-5)


def test_run_files_hold_the_lengths(tmp_path) -> None:
    import arviz as az

    mlm = tiny_mlm(num_words=4, init_range=0.3)
    model = save_tiny(tmp_path / "model", num_words=4, init_range=0.3)
    spec = RunSpec(model=str(model), sequences=("a b",) * 3, warmup=3, samples=8, lengths="1-3")
    result = sample_to_directory(spec, mlm, str(tmp_path / "run"), progress=False)
    idata = az.from_netcdf(str(tmp_path / "run" / "posterior.nc"))
    assert "length" in idata.posterior and idata["sequences"]["tokens"].shape[-1] == 5
    with arviz_constant_warnings_allowed():  # the constant [CLS] column's R-hat
        table = az.summary(idata)  # ArviZ's defaults, on every posterior variable
    assert "length" in table.index
    summary = (tmp_path / "run" / "summary.csv").read_text()
    shares = [float(line.split(",")[1]) for line in summary.splitlines() if "P(length=" in line]
    assert len(shares) == 3 and math.isclose(sum(shares), 1.0)
    header = (tmp_path / "run" / "designs.csv").read_text().splitlines()[0].split(",")
    assert "length" in header
    marginals = (tmp_path / "run" / "marginals.csv").read_text().splitlines()
    assert marginals[0].endswith(",-") and len(marginals) == 1 + 3  # slots 1..3 and a gap
    assert all(1 <= d.length <= 3 for d in result.designs)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"kernel": "gibbs"}, "--lengths works with the samplers"),
        ({"free": "1,3", "sequences": ("a b c",)}, "one contiguous region"),
        ({"lengths": "3-5"}, "outside --lengths 3-5"),
        ({"length_prior": "penalty:oops"}, "finite number"),
        ({"lengths": "", "length_prior": "penalty:1"}, "need --lengths"),
        ({"experts": ("allowed:1:a",)}, "allowed does not work with --lengths"),
    ],
)
def test_refusals(changes, message) -> None:
    mlm = tiny_mlm()
    spec = RunSpec(model="tiny", sequences=("a b",), lengths="1-3")
    with pytest.raises(ValueError, match=message):
        prepare(spec.replace(**changes), mlm)


def test_max_mutations_counts_along_the_alignment() -> None:
    mlm = tiny_mlm()
    pad = mlm.pad_token_id
    parent = torch.tensor(mlm.encode("a b c").tolist() + [pad] * 2)
    region = Region(1, 1, pad, (1, 5))  # [CLS] region [SEP] [PAD] [PAD]: 7 wide
    expert = MaxMutations(parent, parent != pad, k=1, region=region)
    rows = [mlm.encode(text).tolist() for text in ("a b c", "a c", "a b b c", "b c a")]
    tokens = torch.tensor([r + [pad] * (7 - len(r)) for r in rows])
    assert expert.mutations(tokens) == [0, 1, 1, 2]
    assert expert(tokens).tolist() == [0, 0, 0, math.inf]
    assert edit_distance([1, 2, 3], [3, 2, 1]) == 2


def test_forbid_scope_follows_the_region() -> None:
    mlm = tiny_mlm()
    pad = mlm.pad_token_id
    start = torch.tensor([*mlm.encode("a b").tolist(), pad])
    context = Context(mlm, start, start != pad, Region(1, 1, pad, (1, 3)))
    expert = Forbid.build(context, pattern="b a")
    # "b a" inside the region is forbidden; the region ends before the [SEP] at any length
    rows = [mlm.encode(t).tolist() for t in ("a b a", "b a", "a b")]
    tokens = torch.tensor([r + [pad] * (5 - len(r)) for r in rows])
    assert expert(tokens).tolist() == [math.inf, math.inf, 0.0]
    assert isinstance(expert, Forbid)
