"""Variable-length regions: the insert/delete moves target exactly pi ∝ exp(-E/T) lambda(n).

Enumeration: the tiny BERT (4 proposable words, weights at scale 0.3, seed 0) with the
region between [CLS] and [SEP] of length 1, 2 or 3: 4 + 16 + 64 = 84 states. The exact
target uses the one-forward-per-position reference energy of each *unpadded* sequence
(tests/samplers/exact.py), so the check covers the padding as well as the Hastings ratio.

Soundness of the tolerances:
- Each chain contributes one draw, its state after ``SWEEPS`` sweeps from a uniformly random
  start (random length, random tokens), so the draws are independent and the chi-square
  test is valid as soon as the chains have forgotten their start. Measured (mh, norm,
  uniform prior, 4000 chains, seeds 0 and 1): TV 0.026 / 0.033 after 10 sweeps, 0.028 /
  0.030 after 30, 0.035 / 0.032 after 60, all at the sampling-noise level: the chains
  forget their start within 10 sweeps, and ``SWEEPS = 30`` leaves a factor 3.
- Chi-square p > 1e-3 (pooling expected counts below 5): a correct sampler fails with
  probability 0.001 at a random seed; the seed is fixed, so the test is deterministic.
- TV below 1.5x its expected value for an exact sampler, E[TV] ~ 0.5 * sum_i sqrt(2 p_i /
  (pi N)) (``expected_tv``: 0.026-0.038 for these targets at N = 4000, sqrt(2) more at the
  CI's 2000; the measured TVs at 4000 are 0.023-0.033): a second, scale-aware check
  beside the chi-square test.
- The wrong variant (a ratio whose insertion probability ignores the equivalent gaps:
  inserting ``a`` beside an ``a`` counted as one way, while deletions count the run) must
  fail the chi-square test at p < 1e-6 and lie above 1.5x the expected TV.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import tiny_mlm
from exact import chi_square_pvalue, reference_energy, total_variation

from pyro_mlm import MLMEnergy
from pyro_mlm.region.layout import pad_region
from pyro_mlm.region.lengths import parse_lengths
from pyro_mlm.region.prior import length_prior
from pyro_mlm.samplers import build_sampler
from pyro_mlm.samplers.chain import Chain
from pyro_mlm.samplers.lengths import VariableLength
from pyro_mlm.samplers.lengths_move import equivalent_runs, length_log_ratio
from pyro_mlm.target import Target

LENGTHS = (1, 3)
CHAINS = 4000  # with -m slow, and for the wrong variant, whose power needs the draws
CI_CHAINS = 2000  # the positive cases in CI: the same tests on half the draws
SWEEPS = 30


@pytest.fixture(
    params=[
        pytest.param(CI_CHAINS, id="ci"),
        pytest.param(CHAINS, id="full", marks=pytest.mark.slow),
    ]
)
def chains(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture(scope="module")
def tiny():
    mlm = tiny_mlm(num_words=4, init_range=0.3, seed=0)
    ids = mlm.proposable_ids.tolist()
    cls, sep = mlm.encode("a")[[0, -1]].tolist()
    bodies = [
        b for n in range(LENGTHS[0], LENGTHS[1] + 1) for b in itertools.product(ids, repeat=n)
    ]
    return mlm, bodies, cls, sep


def padded(body: tuple[int, ...], cls: int, sep: int, pad: int) -> list[int]:
    return [cls, *body, sep] + [pad] * (LENGTHS[1] - len(body))


def weight_a(tokens: torch.Tensor) -> torch.Tensor:
    """A soft expert: 0.7 per 'a' (id 5), padding or not."""
    return 0.7 * (tokens == 5).sum(-1).float()


def exact_target(tiny, parametrization, temperature, prior, expert) -> torch.Tensor:
    mlm, bodies, cls, sep = tiny
    log_p = []
    for body in bodies:
        row = torch.tensor([cls, *body, sep])
        free = torch.zeros(len(row), dtype=torch.bool)
        free[1 : 1 + len(body)] = True
        energy = reference_energy(mlm, row, free, parametrization)
        if expert is not None:
            energy += float(expert(row[None])[0])
        log_p.append(-energy / temperature + float(prior[len(body)]))
    return torch.softmax(torch.tensor(log_p, dtype=torch.float64), 0)


class IgnoresEquivalentGaps(VariableLength):
    """The wrong variant: an insertion's forward probability counts only the gap that was
    chosen, not every gap of the run that gives the same sequence (the deletions' count
    |R| stays right)."""

    def summed(self, run, slot):
        return torch.nn.functional.one_hot(slot, run.shape[1]).bool()


def run_counts(
    tiny,
    kernel,
    parametrization,
    temperature,
    prior,
    expert,
    cls=VariableLength,
    chains=CHAINS,
    sweeps=SWEEPS,
    seed=0,
    options=None,
):
    mlm, bodies, c, s = tiny
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(bodies), (chains,), generator=gen)
    tokens = torch.tensor([padded(bodies[i], c, s, mlm.pad_token_id) for i in pick.tolist()])
    free = torch.zeros_like(tokens, dtype=torch.bool)
    lengths = torch.tensor([len(bodies[i]) for i in pick.tolist()])
    free[:, 1:4] = torch.arange(3)[None] < lengths[:, None]
    energy = MLMEnergy(mlm, parametrization, temperature=temperature)
    target = Target(energy, [expert] if expert is not None else [])
    inner = build_sampler(kernel, target, free, proposals_per_sweep=3, **(options or {}))
    sampler = cls(inner, LENGTHS, prior)
    chain = Chain.start(sampler, tokens, warmup=0, seed=seed)
    for _ in range(sweeps):
        chain.step()
    index = {tuple(padded(b, c, s, mlm.pad_token_id)): i for i, b in enumerate(bodies)}
    found = torch.tensor([index[tuple(r)] for r in chain.tokens.tolist()])
    return torch.bincount(found, minlength=len(bodies)).double()


PRIOR_TABLE = {1: 1.0, 2: 3.0, 3: 0.5}

CASES = [
    # kernel, energy, temperature, prior, expert, options
    ("mh", "norm", 1.0, "uniform", None, {}),
    ("mh", "raw", 1.0, "uniform", None, {}),
    ("mh", "norm", 1.0, "table", weight_a, {}),
    ("block", "raw", 1.0, "penalty:0.8", None, {"block_size": 2}),
    ("metropolised", "norm", 1.0, "penalty:-0.5", None, {}),
    ("regenerate", "norm", 1.5, "table", weight_a, {"regen_temperature": 1.0}),
]


def resolve_prior(text, tmp_path):
    if text != "table":
        return length_prior(text, LENGTHS)
    path = tmp_path / "lengths.txt"
    path.write_text("".join(f"{n} {w}\n" for n, w in PRIOR_TABLE.items()))
    return length_prior(str(path), LENGTHS)


def case_id(case: tuple) -> str:
    return "-".join(str(x) for x in (*case[:2], case[3], "expert" if case[4] else "alone"))


def expected_tv(exact: torch.Tensor, draws: float) -> float:
    """E[TV] of an exact sampler's empirical law from ``draws`` independent draws."""
    return float(0.5 * torch.sqrt(2 * exact / (math.pi * draws)).sum())


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_exact_across_lengths(tiny, tmp_path, case, chains):
    kernel, parametrization, temperature, prior_text, expert, options = case
    prior = resolve_prior(prior_text, tmp_path)
    exact = exact_target(tiny, parametrization, temperature, prior, expert)
    counts = run_counts(
        tiny, kernel, parametrization, temperature, prior, expert, chains=chains, options=options
    )
    tv = total_variation(counts / counts.sum(), exact)
    p = chi_square_pvalue(exact, counts)
    by_length = [float(exact[_length_slice(n)].sum()) for n in (1, 2, 3)]
    seen = [float(counts[_length_slice(n)].sum() / counts.sum()) for n in (1, 2, 3)]
    bound = expected_tv(exact, counts.sum())
    print(f"{case_id(case)}: TV {tv:.4f} (E {bound:.4f}), chi-square p {p:.3g}, lengths exact")
    print(f"  {[round(x, 4) for x in by_length]}, drawn {[round(x, 4) for x in seen]}")
    assert p > 1e-3 and tv < 1.5 * bound


def _length_slice(n: int) -> slice:
    start = sum(4**k for k in range(1, n))
    return slice(start, start + 4**n)


def test_wrong_variant_is_caught(tiny):
    """Ignoring equivalent gaps biases the law (towards repeats) and the test sees it."""
    prior = length_prior("uniform", LENGTHS)
    exact = exact_target(tiny, "norm", 1.0, prior, None)
    counts = run_counts(tiny, "mh", "norm", 1.0, prior, None, cls=IgnoresEquivalentGaps)
    tv = total_variation(counts / counts.sum(), exact)
    p = chi_square_pvalue(exact, counts)
    bound = expected_tv(exact, counts.sum())
    print(f"ignores equivalent gaps: TV {tv:.4f} (E {bound:.4f}), chi-square p {p:.3g}")
    assert p < 1e-6 and tv > 1.5 * bound


def test_ratio_by_hand():
    """A deletion's ratio is the inverse of the insertion it undoes (same numbers)."""
    prior = length_prior("penalty:0.3", (1, 4))
    n = torch.tensor([2, 3])
    ins = length_log_ratio(
        torch.tensor([True, False]), n, torch.tensor([0.5, -0.5]), prior,
        torch.tensor([2, 2]), torch.tensor([math.log(0.3), math.log(0.3)]), (1, 4),
    )  # fmt: skip
    # insert 2 -> 3: d(3)=1/2, a(2)=1/2; delete 3 -> 2: a(2)=1/2, d(3)=1/2
    assert torch.allclose(ins[0], -ins[1])
    assert math.isclose(float(ins[0]), 0.5 - 0.3 + math.log(2) - math.log(0.3), rel_tol=1e-6)


def test_equal_run():
    region = torch.tensor([5, 5, 6, 5, 5, 5])

    def equal_run(region, at, length):  # (first, last) of the run around ``at``
        same = (region == region[at]) & (torch.arange(len(region)) < length)
        run = equivalent_runs(same[None], torch.tensor([at]))[0].nonzero().flatten()
        return int(run[0]), int(run[-1])

    assert equal_run(region, 0, 6) == (0, 1)
    assert equal_run(region, 4, 6) == (3, 5)
    assert equal_run(region, 4, 5) == (3, 4)
    assert equal_run(region, 2, 6) == (2, 2)


@pytest.mark.parametrize(
    "text, message",
    [("3", "MIN-MAX"), ("4-4", "leave --lengths out"), ("0-3", "1 <= MIN"), ("a-b", "MIN-MAX")],
)
def test_parse_lengths_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        parse_lengths(text)


def test_length_prior_refuses(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        length_prior("gamma", (1, 3))
    with pytest.raises(ValueError, match="finite"):
        length_prior("penalty:x", (1, 3))
    path = tmp_path / "w.txt"
    path.write_text("1 1.0\n3 2\n")
    with pytest.raises(ValueError, match=r"lengths \[2\]"):
        length_prior(str(path), (1, 3))
    path.write_text("1 1.0\n2 -1\n3 2\n")
    with pytest.raises(ValueError, match="line 2"):
        length_prior(str(path), (1, 3))


def test_refuses_non_contiguous_region(tiny):
    mlm = tiny[0]
    tokens = mlm.encode("a b c").repeat(2, 1)
    free = torch.zeros_like(tokens, dtype=torch.bool)
    free[:, [1, 3]] = True
    tokens, free = pad_region(tokens, free, 3, mlm.pad_token_id)
    inner = build_sampler("mh", Target(MLMEnergy(mlm)), free)
    with pytest.raises(ValueError, match="one contiguous region"):
        VariableLength(inner, LENGTHS)


def test_the_command_line_targets_the_law(tiny, tmp_path):
    """``pyro-mlm sample --sequence "a b" --free all --lengths 1-3``: one draw from each of
    2000 chains after 30 warm-up sweeps (independent draws, as above) against the exact law."""
    import json

    from conftest import save_tiny

    from pyro_mlm.cli import main

    model = save_tiny(tmp_path / "model", num_words=4, init_range=0.3, seed=0)
    out = tmp_path / "run"
    main([
        "sample", "--model", model, "--sequence", "a b", "--free", "all", "--lengths", "1-3",
        "--chains", "2000", "--warmup", "30", "--samples", "1", "--seed", "1", "--out",
        str(out), "--no-progress", "--top", "0",
    ])  # fmt: skip
    mlm, bodies, cls, sep = tiny
    index = {tuple(padded(b, cls, sep, mlm.pad_token_id)): i for i, b in enumerate(bodies)}
    lines = (out / "samples.jsonl").read_text().splitlines()
    found = torch.tensor([index[tuple(json.loads(line)["tokens"])] for line in lines])
    counts = torch.bincount(found, minlength=len(bodies)).double()
    exact = exact_target(tiny, "norm", 1.0, length_prior("uniform", LENGTHS), None)
    tv = total_variation(counts / counts.sum(), exact)
    p = chi_square_pvalue(exact, counts)
    bound = expected_tv(exact, counts.sum())
    by_length = [round(float(exact[_length_slice(n)].sum()), 4) for n in (1, 2, 3)]
    seen = [round(float(counts[_length_slice(n)].sum() / counts.sum()), 4) for n in (1, 2, 3)]
    print(f"command line: TV {tv:.4f} (E {bound:.4f}), chi-square p {p:.3g}")
    print(f"  lengths exact {by_length}, drawn {seen}")
    assert p > 1e-3 and tv < 1.5 * bound
