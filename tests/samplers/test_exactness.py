"""The paper's central claim, checked by exact enumeration on a tiny random BERT.

Model: 3 proposable words, 3 free positions (27 states), weights at init scale 0.3, seed 0:
peaky enough that its conditionals are visibly inconsistent. For each energy we
enumerate the exact target p ∝ exp(-E/T) with a slow one-forward-per-position
reference, run the sampler through ``pyro.infer.MCMC`` with vectorised chains started
uniformly at random, and test the draws against the target: 1000 chains in CI (each
positive case's ``ci`` variant), 4000 with ``pytest -m slow`` (its ``full`` variant), 4000
always for the negative cases, whose power needs the draws.

Soundness of the tolerances:
- Draws are 10 sweeps apart; the test asserts, from the exact transition matrix, that
  the per-draw correlation (second eigenvalue) is below 0.1, so draws are close to
  independent and the chi-square test is valid (variance inflation <= 1.22 on the
  slowest mode only). Warm-up is 20 sweeps: the start's bias is below 0.1**2.
- Chi-square p-value > 1e-3: a correct sampler fails this with probability 0.001 at
  a random seed; the seed is fixed, so the test is deterministic.
- TV < 0.02 with N = 40,000 draws: the expected TV of an exact sampler's empirical
  distribution over 27 states is about 0.5 * sum_i sqrt(2 p_i / (pi N)) <= 0.011. It
  scales as 1 / sqrt(N), and so does the tolerance (``tv_tolerance``): TV < 0.04 at the
  CI's N = 10,000 (expected <= 0.021). The chi-square test's false-failure rate does not
  depend on N; its power does, which is why the negative cases keep 40,000 draws.
- Gibbs: its exact stationary law is > 0.05 from the target (measured: ~0.22), its
  draws pass the chi-square test against their *own* stationary law and fail it
  (p < 1e-6) against the target. If masked Gibbs were exact, these would fail.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from conftest import tiny_mlm
from exact import (
    Enumeration,
    chi_square_pvalue,
    second_eigenvalue,
    stationary,
    total_variation,
)
from pyro.infer import MCMC
from sampler_cases import EXACT_CASES, SamplerCase

from pyro_mlm import MaskedGibbs, MaskedMH, MLMEnergy
from pyro_mlm.pyro.conversion import get_tokens
from pyro_mlm.pyro.kernel import SamplerKernel
from pyro_mlm.samplers import SAMPLERS, BlockMH
from pyro_mlm.samplers.options import TAUS
from pyro_mlm.samplers.proposals import token_log_prob
from pyro_mlm.samplers.reference import ReferenceTempering
from pyro_mlm.samplers.tuned import CANDIDATES
from pyro_mlm.target import Target

CHAINS = 4000  # the full size, and the negative cases' (their power needs the draws)
CI_CHAINS = 1000  # the CI size of the positive cases: the same tests, a quarter the draws


@pytest.fixture(
    params=[
        pytest.param(CI_CHAINS, id="ci"),
        pytest.param(CHAINS, id="full", marks=pytest.mark.slow),
    ]
)
def chains(request: pytest.FixtureRequest) -> int:
    """Vectorised chains of a positive case: 1000 in CI, 4000 with ``-m slow``."""
    return int(request.param)


def tv_tolerance(chains: int) -> float:
    """0.02 at 40,000 draws, scaled as the empirical TV's 1 / sqrt(draws) (module docstring)."""
    return 0.02 * math.sqrt(CHAINS * DRAWS / (chains * DRAWS))


SWEEPS_PER_DRAW = 10
DRAWS = 10
WARMUP_DRAWS = 2


@pytest.fixture(scope="module")
def enumeration() -> Enumeration:
    mlm = tiny_mlm(num_words=3, init_range=0.3, seed=0)
    context = mlm.encode("a a a")
    return Enumeration(mlm, context, ~mlm.special_mask(context))


def _random_starts(en: Enumeration, chains: int) -> torch.Tensor:
    init = en.context.repeat(chains, 1)
    ids = en.mlm.proposable_ids
    init[:, en.free_positions] = ids[torch.randint(len(ids), (chains, len(en.free_positions)))]
    return init


def _run(
    kernel: SamplerKernel, en: Enumeration, chains: int, draws: int, warmup: int = WARMUP_DRAWS
) -> torch.Tensor:
    mcmc = MCMC(
        kernel,
        num_samples=draws,
        warmup_steps=warmup,
        initial_params={"tokens": _random_starts(en, chains)},
        disable_progbar=True,
    )
    mcmc.run()
    tokens = get_tokens(mcmc)  # [chains * draws, L], exact float64 ids
    assert torch.equal(tokens, tokens.round()) and tokens.shape == (chains * draws, len(en.context))
    tokens = tokens.long()
    counts = torch.bincount(en.state_index(tokens.reshape(-1, len(en.context))), minlength=len(en))
    return counts.double()


CASES = [
    # parametrization, scan, temperature, proposal temperature, extra potential?
    ("norm", "random", 1.0, 1.0, False),
    ("raw", "systematic", 1.0, 1.0, False),
    # tempered product of experts with a flattened proposal. (A sharpened proposal,
    # tau = 0.5, is just as exact but mixes far too slowly for a CI test: its exact
    # per-sweep second eigenvalue is 0.998.)
    ("norm", "random", 2.0, 1.5, True),
]


def _extra(tokens: torch.Tensor) -> torch.Tensor:
    """A toy expert: penalise sequences whose first word is 'a' (id 5) by 1.5 nats*T."""
    return 1.5 * (tokens[:, 1] == 5).double()


@pytest.mark.parametrize(("parametrization", "scan", "temperature", "q_temp", "extra"), CASES)
def test_mh_samples_the_exact_target(
    enumeration: Enumeration,
    parametrization: str,
    scan: str,
    temperature: float,
    q_temp: float,
    extra: bool,
    chains: int,
) -> None:
    en = enumeration
    # E(X) = -log p_{T=1}(X) + const, so the tempered product-of-experts target is
    # ∝ exp(-(E + extra) / T)
    energy = -en.target(parametrization, 1.0).log()
    if extra:
        energy = energy + _extra(torch.stack(en.states))
    target = torch.softmax(-energy / temperature, 0)
    # the exact MH kernel built independently (tests/samplers/exact.py) keeps this target
    proposals = SWEEPS_PER_DRAW * len(en.free_positions)
    per_draw = en.sweep_kernel(target, scan, proposals, q_temp)
    assert total_variation(stationary(per_draw), target) < 1e-6
    assert second_eigenvalue(per_draw) < 0.1

    kernel = MaskedMH(
        MLMEnergy(en.mlm, parametrization, temperature=temperature),
        scan=scan,
        proposal_temperature=q_temp,
        proposals_per_sample=proposals,
        extra_potential=_extra if extra else None,
    )
    counts = _run(kernel, en, chains, DRAWS)
    tv = total_variation(counts / counts.sum(), target)
    p_value = chi_square_pvalue(target, counts)
    print(f"MH {parametrization}/{scan}/T={temperature}: TV={tv:.4f} chi2 p={p_value:.3f}")
    assert p_value > 1e-3
    assert tv < tv_tolerance(chains)


def test_masked_gibbs_targets_its_own_law_not_the_energy(
    enumeration: Enumeration, chains: int
) -> None:
    en = enumeration
    proposals = SWEEPS_PER_DRAW * len(en.free_positions)
    per_draw = en.sweep_kernel(None, "random", proposals)
    gibbs_law = stationary(per_draw)
    assert second_eigenvalue(per_draw) < 0.1
    counts = _run(MaskedGibbs(MLMEnergy(en.mlm), proposals_per_sample=proposals), en, chains, DRAWS)
    empirical = counts / counts.sum()
    for parametrization in ("norm", "raw"):
        target = en.target(parametrization)
        gap = total_variation(gibbs_law, target)
        print(f"Gibbs stationary vs {parametrization} target: TV={gap:.4f}")
        assert gap > 0.05
        assert chi_square_pvalue(target, counts) < 1e-6
        assert total_variation(empirical, target) > 0.05
    own_p = chi_square_pvalue(gibbs_law, counts)
    own_tv = total_variation(empirical, gibbs_law)
    print(f"Gibbs samples vs own stationary law: TV={own_tv:.4f} chi2 p={own_p:.3f}")
    assert own_p > 1e-3
    assert own_tv < tv_tolerance(chains)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mh_exact_at_more_seeds_and_samples(enumeration: Enumeration, seed: int) -> None:
    """Slow version: 4x the chains, several seeds (run with ``pytest -m slow``)."""
    pyro.set_rng_seed(seed)
    for case in CASES:
        test_mh_samples_the_exact_target(enumeration, *case, chains=4 * CHAINS)


@pytest.mark.parametrize("parametrization", ["norm", "raw"])
def test_mean_energy_matches_exact_within_monte_carlo_error(
    enumeration: Enumeration, parametrization: str
) -> None:
    """A z-test on a scalar functional with autocorrelated draws (BlackJAX-style).

    Every sweep is kept (no thinning); the Monte Carlo standard error of the mean
    energy comes from ArviZ's bulk ESS over 16 chains x 400 draws. |z| < 4 fails a
    correct sampler with probability ~6e-5; a sampler whose mean is off by more than
    4 standard errors (about 0.08 nats here) fails it. This functional is a weak
    witness: masked Gibbs's stationary mean is only 0.06 (norm) and 0.01 (raw) nats
    off, which is why the chi-square tests above are the ones that separate them.
    """
    from pyro_mlm import to_inference_data
    from pyro_mlm.report import arviz_compat

    en = enumeration
    target = en.target(parametrization)
    exact_energy = torch.tensor(
        [MLMEnergy(en.mlm, parametrization)(s).item() for s in en.states], dtype=torch.float64
    )
    exact_mean = float((target * exact_energy).sum())
    mcmc = MCMC(
        MaskedMH(MLMEnergy(en.mlm, parametrization)),
        num_samples=400,
        warmup_steps=20,
        initial_params={"tokens": _random_starts(en, 16)},
        disable_progbar=True,
    )
    mcmc.run()
    idata = to_inference_data(mcmc)
    draws = idata.posterior["energy"].values
    ess = arviz_compat.ess(draws, "bulk")
    mcse = draws.std() / ess**0.5
    z = (draws.mean() - exact_mean) / mcse
    print(
        f"MH {parametrization}: mean E {draws.mean():.4f} vs exact {exact_mean:.4f}, "
        f"ESS {ess:.0f}, z={z:.2f}"
    )
    assert ess > 500
    assert abs(z) < 4


# ---------------------------------------------------------------- every other exact sampler
ENUMERATION_CASES = [(case, energy) for case in EXACT_CASES for energy in case.energies]


@pytest.mark.parametrize(
    ("case", "parametrization"),
    ENUMERATION_CASES,
    ids=[f"{case.id}-{energy}" for case, energy in ENUMERATION_CASES],
)
def test_every_exact_sampler_samples_the_exact_target(
    enumeration: Enumeration, case: SamplerCase, parametrization: str, chains: int
) -> None:
    """Same tolerances and soundness argument as the MH cases above (module docstring)."""
    en = enumeration
    target = en.target(parametrization)
    proposals = SWEEPS_PER_DRAW * len(en.free_positions) * case.thin
    per_draw = torch.linalg.matrix_power(case.per_proposal(en, target, 1.0), proposals)
    assert total_variation(stationary(per_draw), target) < 1e-6
    assert second_eigenvalue(per_draw) < 0.1
    kernel = SamplerKernel(
        MLMEnergy(en.mlm, parametrization),
        sampler=case.sampler,
        proposals_per_sample=proposals,
        **case.options,
    )
    counts = _run(kernel, en, chains, DRAWS)
    tv = total_variation(counts / counts.sum(), target)
    p_value = chi_square_pvalue(target, counts)
    print(f"{case.id} {parametrization}: TV={tv:.4f} chi2 p={p_value:.3f}")
    assert p_value > 1e-3
    assert tv < tv_tolerance(chains)


class WrongReverseBlockMH(BlockMH):
    """Block MH with the reverse terms read from the *current* state's conditionals (a bug)."""

    name = "block-wrong-reverse"

    def reverse_log_q(self, state, proposed_logits, sites, rows):  # type: ignore[no-untyped-def]
        return super().reverse_log_q(state, state.logits[rows], sites, rows)


def test_block_mh_with_the_reverse_term_from_the_current_state_is_caught(
    enumeration: Enumeration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The negative case: the exactness checks above must fail a plausible bug.

    Its exact transition matrix leaves another law invariant (TV > 0.02 from the
    target), and its draws fail the chi-square test (p < 1e-6) where the correct
    block sampler's pass.
    """
    from exact import mh_mixture, random_blocks

    en = enumeration
    target = en.target("norm")
    blocks = random_blocks(len(en.free_positions), (3,))
    wrong = mh_mixture(en, target, blocks, reverse="current")
    gap = total_variation(stationary(wrong), target)
    print(f"wrong reverse term: stationary law TV={gap:.4f} from the target")
    assert gap > 0.02
    monkeypatch.setitem(SAMPLERS, WrongReverseBlockMH.name, WrongReverseBlockMH)
    proposals = SWEEPS_PER_DRAW * len(en.free_positions)
    kernel = SamplerKernel(
        MLMEnergy(en.mlm, "norm"),
        sampler=WrongReverseBlockMH.name,
        proposals_per_sample=proposals,
        block_size=3,
    )
    counts = _run(kernel, en, CHAINS, DRAWS)
    p_value = chi_square_pvalue(target, counts)
    print(f"wrong reverse term: draws vs target chi2 p={p_value:.2e}")
    assert p_value < 1e-6


def test_replica_exchange_samples_the_exact_target(enumeration: Enumeration, chains: int) -> None:
    """R = 2 slots at T = 1 and 3 (ladder frozen: no warm-up), inner single-site MH with a
    flattened proposal (tau = 1.5: at tau = 1 the hot slot's per-draw correlation is 0.54).

    The exact kernel of one step (p inner proposals in each slot, then the swap) lives
    on the 27 x 27 product space; it must leave pi_1 x pi_(1/3) invariant, and slot 0's
    draws must pass the same TV and chi-square tests as every sampler (module docstring).
    """
    en = enumeration
    target = en.target("norm")
    energy = -target.log()
    betas = (1.0, 1.0 / 3.0)
    proposals = SWEEPS_PER_DRAW * len(en.free_positions)
    slots = [
        torch.linalg.matrix_power(
            en.sweep_kernel(torch.softmax(-b * energy, 0), "random", 1, 1.5), proposals
        )
        for b in betas
    ]
    n = len(en)
    inner = torch.kron(slots[0], slots[1])  # state (i, j) is row i * n + j
    swap = torch.zeros(n * n, n * n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            accept = min(1.0, float(torch.exp((betas[0] - betas[1]) * (energy[i] - energy[j]))))
            swap[i * n + j, j * n + i] += accept
            swap[i * n + j, i * n + j] += 1.0 - accept
    per_draw = inner @ swap
    product = torch.outer(*(torch.softmax(-b * energy, 0) for b in betas)).flatten()
    assert total_variation(stationary(per_draw), product) < 1e-6
    assert second_eigenvalue(per_draw) < 0.1
    kernel = SamplerKernel(
        MLMEnergy(en.mlm, "norm"),
        sampler="replica-exchange",
        proposals_per_sample=proposals,
        proposal_temperature=1.5,
        replicas=2,
        t_max=3.0,
        inner="mh",
    )
    # no warm-up: the ladder is frozen from the start, so every draw is exact
    counts = _run(kernel, en, chains, DRAWS, warmup=0)
    tv = total_variation(counts / counts.sum(), target)
    p_value = chi_square_pvalue(target, counts)
    rates = kernel.diagnostics()["draws"]["swap_rate"].mean().item()
    print(f"replica exchange: TV={tv:.4f} chi2 p={p_value:.3f} swap rate {rates:.2f}")
    assert p_value > 1e-3
    assert tv < tv_tolerance(chains)
    assert 0.0 < rates < 1.0


def test_the_tuned_sampler_is_exact_once_frozen(enumeration: Enumeration, chains: int) -> None:
    """Warm-up cycles the candidates and freezes the best by ESJD per row; the kept draws
    (a fixed block sampler from then on) pass the same TV and chi-square tests."""
    en = enumeration
    target = en.target("raw")
    proposals = SWEEPS_PER_DRAW * len(en.free_positions)
    kernel = SamplerKernel(
        MLMEnergy(en.mlm, "raw"), sampler="tuned", proposals_per_sample=proposals
    )
    counts = _run(kernel, en, chains, DRAWS, warmup=8)  # every candidate tried once first
    # [draws, chains]: the setting of each kept sweep
    used = kernel.diagnostics()["draws"]["candidate"]
    assert used.numel() and bool((used == used[0, 0]).all())  # one frozen choice
    chosen = CANDIDATES[int(used[0, 0])]
    tv = total_variation(counts / counts.sum(), target)
    p_value = chi_square_pvalue(target, counts)
    print(f"tuned ({chosen}): TV={tv:.4f} chi2 p={p_value:.3f}")
    assert p_value > 1e-3
    assert tv < tv_tolerance(chains)


# ---------------------------------------------------------------- global moves
def test_regenerate_is_exact_once_its_regeneration_temperature_is_frozen(
    enumeration: Enumeration, chains: int
) -> None:
    """Whole-region regeneration (random fill order) in half the proposals, tau_r "auto".

    Warm-up cycles tau_r over TAUS and freezes the best by squared Hamming jump per row;
    the exact kernel at the frozen tau_r, (1 - p) single-site MH + p regeneration built in
    tests/samplers/exact.py with one unbatched forward per row, must leave the target invariant
    with per-draw correlation below 0.1, and the kept draws pass the same TV and
    chi-square tests as every sampler (module docstring).
    """
    from sampler_cases import _regenerate

    en = enumeration
    target = en.target("raw")
    proposals = SWEEPS_PER_DRAW * len(en.free_positions)
    kernel = SamplerKernel(
        MLMEnergy(en.mlm, "raw"), sampler="regenerate", proposals_per_sample=proposals,
        regen_prob=0.5,
    )  # fmt: skip
    counts = _run(kernel, en, chains, DRAWS, warmup=1)  # 30 proposals: each tau_r tried
    # [draws, chains]: each kept sweep's tau_r
    used = kernel.diagnostics()["draws"]["regen_temperature"]
    assert used.numel() and bool((used == used[0, 0]).all())  # one frozen choice
    tau = min(TAUS, key=lambda t: abs(t - float(used[0, 0])))  # recorded in float32
    assert abs(tau - float(used[0, 0])) < 1e-6
    per_draw = torch.linalg.matrix_power(_regenerate(0.5, tau)(en, target, 1.0), proposals)
    assert total_variation(stationary(per_draw), target) < 1e-6
    assert second_eigenvalue(per_draw) < 0.1
    tv = total_variation(counts / counts.sum(), target)
    p_value = chi_square_pvalue(target, counts)
    print(f"regenerate (tau_r {tau}): TV={tv:.4f} chi2 p={p_value:.3f}")
    assert p_value > 1e-3
    assert tv < tv_tolerance(chains)


def reverse_under_the_forward_rows(  # type: ignore[no-untyped-def]
    target, proposable, state, idx, sites, valid, current, forward, tau
):
    """A regeneration whose reverse path scores the old tokens under the *forward* rows
    (context holding the new tokens), not the same context X without B: a bug, in place of
    :func:`pyro_mlm.samplers.regenerate_move.reverse_log_prob`."""
    n, k_max, width = forward.shape
    flat = token_log_prob(forward.reshape(-1, width), current.reshape(-1), proposable)
    return torch.where(valid, flat.reshape(n, k_max), 0.0).sum(-1)


def test_regeneration_scored_under_the_forward_rows_is_caught(
    enumeration: Enumeration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The negative case of the global move, in the mixture the sampler runs (p = 0.9 of
    the proposals regenerate, raw energy): its exact kernel (tests/samplers/exact.py,
    ``reverse="forward-rows"``) leaves another law invariant (TV > 0.02 from the target)
    with per-draw correlation below 0.1 at 60 proposals per draw, so its draws are close to
    independent and the chi-square test is valid; the sampler with that bug fails it
    (p < 1e-6) on 10,000 draws (p = 8e-56 on 20,000). (Pure regeneration, p = 1, sticks:
    lambda_2 = 0.98 per proposal on this model, too correlated for a fair chi-square test.)"""
    from exact import regeneration_kernel, region_orders

    en = enumeration
    target = en.target("raw")
    wrong = regeneration_kernel(en, target, region_orders(3), 0.8, reverse="forward-rows")
    mixture = 0.1 * en.sweep_kernel(target, "random", 1, 1.0) + 0.9 * wrong
    proposals = 2 * SWEEPS_PER_DRAW * len(en.free_positions)
    gap = total_variation(stationary(mixture), target)
    print(f"regeneration scored under the forward rows: stationary law TV={gap:.4f}")
    assert gap > 0.02
    assert second_eigenvalue(torch.linalg.matrix_power(mixture, proposals)) < 0.1
    from pyro_mlm.samplers import regenerate_move

    monkeypatch.setattr(regenerate_move, "reverse_log_prob", reverse_under_the_forward_rows)
    kernel = SamplerKernel(
        MLMEnergy(en.mlm, "raw"),
        sampler="regenerate",
        proposals_per_sample=proposals,
        regen_prob=0.9,
        regen_temperature=0.8,
    )
    counts = _run(kernel, en, CI_CHAINS, DRAWS)
    p_value = chi_square_pvalue(target, counts)
    print(f"regeneration scored under the forward rows: draws vs target chi2 p={p_value:.2e}")
    assert p_value < 1e-6


# ---------------------------------------------------------------- experts and constraints
CONSTRAINED = [
    ("mh", {}),
    ("regenerate", {"regen_prob": 0.5, "regen_temperature": 0.8}),
]


@pytest.fixture(scope="module")
def every_expert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Enumeration, list]:
    """The protein enumeration of tests/experts/expert_cases.py and every declared expert,
    built from its case's text as the command line builds it."""
    from expert_cases import EXPERT_CASES, FREE, START, protein_mlm, saved_models

    from pyro_mlm.design.sites import parse_free
    from pyro_mlm.experts import Context, build_expert

    mlm = protein_mlm()
    context = mlm.encode(START)
    free = parse_free(FREE, context, mlm)
    paths = saved_models(str(tmp_path_factory.mktemp("experts")))
    experts = [build_expert(case.text(paths), Context(mlm, context, free)) for case in EXPERT_CASES]
    return Enumeration(mlm, context, free), experts


@pytest.mark.parametrize(("sampler_name", "options"), CONSTRAINED, ids=[c[0] for c in CONSTRAINED])
def test_with_every_expert_the_samplers_sample_the_exact_product(
    every_expert: tuple[Enumeration, list],
    sampler_name: str,
    options: dict[str, object],
    chains: int,
) -> None:
    """The target is exp(-(E + sum_k w_k E_k)) times the hard experts' indicator,
    renormalised, with one expert of every declared kind (EXPERT_CASES, on the protein model
    ``KDAK`` with residues 2-4 free: at most 2 mutations, the motif ``DK`` forbidden, residue
    3 in {K, A} in the target *and* the proposal, a charge pull (weight 0.1: at 0.5 its
    barriers slow single-site moves so that draws 30 proposals apart are not independent), a
    second MLM and a sequence classifier (weight 0.5)). Single-site MH with the restricted
    proposal (and regeneration); the exact restricted kernel (tests/samplers/exact.py) must
    leave the target invariant with its second eigenvalue below 0.1, and the sampled law must
    match it within the same tolerances as the MH cases above (module docstring).
    """
    from exact import regeneration_kernel, region_orders

    from pyro_mlm import Target
    from pyro_mlm.samplers import build_sampler

    en, experts = every_expert
    mlm, free = en.mlm, en.free
    states = torch.stack(en.states)
    energy = -en.target("norm").log() + sum(expert(states).double() for expert in experts)
    assert 0 < int(torch.isinf(energy).sum()) < len(en) - 5  # they bite: 11 of 27 stay
    target = torch.softmax(-energy, 0)
    support = target > 0
    joint = Target(MLMEnergy(mlm), experts)
    allowed = joint.allowed(states.shape[-1], torch.device("cpu"))[en.free_positions]
    assert 0 < int((~allowed).sum())  # the proposal is restricted somewhere
    proposals = SWEEPS_PER_DRAW * len(en.free_positions)
    single = sum(en.site_kernels(target, 1.0, allowed)) / len(en.free_positions)
    if sampler_name == "regenerate":
        regen = regeneration_kernel(en, target, region_orders(3), 0.8, allowed=allowed)
        single = 0.5 * single + 0.5 * regen
    per_draw = torch.linalg.matrix_power(single, proposals)[support][:, support]
    assert total_variation(stationary(per_draw), target[support]) < 1e-6
    assert second_eigenvalue(per_draw) < 0.1

    sampler = build_sampler(
        sampler_name, joint, free.expand(chains, -1), proposals_per_sweep=proposals, **options
    )
    pick = torch.multinomial(support.double(), chains, replacement=True)  # valid starts
    state = sampler.init(states[pick])
    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(len(en), dtype=torch.float64)
    for draw in range(WARMUP_DRAWS + DRAWS):
        state, _ = sampler.step(state, generator)
        assert not bool(torch.isinf(sampler.energy(state)).any())  # no draw breaks a constraint
        if draw >= WARMUP_DRAWS:
            counts += torch.bincount(en.state_index(state.tokens), minlength=len(en)).double()
    assert_draws_the_product(f"{sampler_name} with every expert", counts, target, support, chains)


def assert_draws_the_product(
    name: str, counts: torch.Tensor, target: torch.Tensor, support: torch.Tensor, chains: int
) -> None:
    """No draw outside the product's support, and the draws' frequencies pass the TV and
    chi-square tests against it (the tolerances of every enumeration test here)."""
    assert counts[~support].sum() == 0
    tv = total_variation(counts / counts.sum(), target)
    p_value = chi_square_pvalue(target[support], counts[support])
    print(f"{name}: TV={tv:.4f} chi2 p={p_value:.3f}")
    assert p_value > 1e-3
    assert tv < tv_tolerance(chains)


def test_reference_tempering_with_every_expert_samples_the_exact_product(
    every_expert: tuple[Enumeration, list], chains: int
) -> None:
    """The same target as above (every declared expert, hard and soft, and a proposal
    restricted by ``allowed``) through ``reference-tempering`` (R = 3): the reference q is
    restricted alike, a reference draw that a hard expert forbids has W = -inf and is never
    swapped down, and slot 0's draws (6 sweeps apart, after 10 warm-up sweeps in which the
    ladder adapts) pass the same TV and chi-square tests; none breaks a constraint."""
    from pyro_mlm import Target

    en, experts = every_expert
    states = torch.stack(en.states)
    energy = -en.target("norm").log() + sum(expert(states).double() for expert in experts)
    target = torch.softmax(-energy, 0)
    support = target > 0
    sampler = ReferenceTempering(
        Target(MLMEnergy(en.mlm), experts), en.free.expand(chains, -1).clone(), replicas=3
    )
    pick = torch.multinomial(support.double(), chains, replacement=True, generator=None)
    state = sampler.init(states[pick])
    generator = torch.Generator().manual_seed(1)
    counts = torch.zeros(len(en), dtype=torch.float64)
    for sweep in range(10 + 6 * DRAWS):
        state, _ = sampler.step(state, generator)
        assert not bool(torch.isinf(sampler.energy(state)).any())
        if sweep == 9:
            state = sampler.end_warmup(state)
        elif sweep > 9 and (sweep - 9) % 6 == 0:
            counts += torch.bincount(en.state_index(state.tokens), minlength=len(en)).double()
    name = "reference-tempering with every expert"
    assert_draws_the_product(name, counts, target, support, chains)


def test_mh_with_the_energy_over_every_position_samples_its_exact_target(chains: int) -> None:
    """``Target(over="all")``: the free words' law under the whole sequence's negative
    PLL, a fixed word's term included. 3 free words and 1 fixed (27 states); exact target
    from the float64 one-forward-per-position reference; same tolerances as above."""
    from exact import reference_energy

    from pyro_mlm import Target
    from pyro_mlm.samplers import build_sampler

    mlm = tiny_mlm(num_words=3, init_range=0.3, seed=0)
    context = mlm.encode("a a a b")
    content = ~mlm.special_mask(context)
    free = content.clone()
    free[4] = False  # the last word is fixed context, but its term counts
    en = Enumeration(mlm, context, free)
    energy = torch.tensor([reference_energy(mlm, s, content, "norm") for s in en.states])
    target = torch.softmax(-energy, 0)
    assert total_variation(target, en.target("norm")) > 0.02  # differs from over="free"
    proposals = SWEEPS_PER_DRAW * len(en.free_positions)
    per_draw = en.sweep_kernel(target, "random", proposals)
    assert total_variation(stationary(per_draw), target) < 1e-6
    assert second_eigenvalue(per_draw) < 0.1
    sampler = build_sampler(
        "mh", Target(MLMEnergy(mlm), over="all"), free.expand(chains, -1),
        proposals_per_sweep=proposals,
    )  # fmt: skip
    state = sampler.init(_random_starts(en, chains))
    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(len(en), dtype=torch.float64)
    for draw in range(WARMUP_DRAWS + DRAWS):
        state, _ = sampler.step(state, generator)
        if draw >= WARMUP_DRAWS:
            counts += torch.bincount(en.state_index(state.tokens), minlength=len(en)).double()
    tv = total_variation(counts / counts.sum(), target)
    p_value = chi_square_pvalue(target, counts)
    print(f"MH over all positions: TV={tv:.4f} chi2 p={p_value:.3f}")
    assert p_value > 1e-3
    assert tv < tv_tolerance(chains)


def _reference_law(en: Enumeration) -> torch.Tensor:
    """Exact q over the enumerated states: the MLM's sequential law, left to right, each
    row one unbatched forward (tests/samplers/exact.py's reference_masked)."""
    from exact import reference_masked

    mask, ids = en.mlm.mask_token_id, en.ids
    q = torch.zeros(len(en), dtype=torch.float64)
    for i, state in enumerate(en.states):
        row, total = state.tolist(), 0.0
        for t in en.free_positions:
            row[t] = mask
        for t in en.free_positions:
            log_q = torch.log_softmax(reference_masked(en.mlm, tuple(row), t)[ids], -1)
            total += float(log_q[ids.index(int(state[t]))])
            row[t] = int(state[t])
        q[i] = math.exp(total)
    return q


class _NoReferenceTerms(ReferenceTempering):
    """The tempting bug: swaps weighed by the energy alone, W = -E/T (no log q terms)."""

    def log_weight(self, inner):  # type: ignore[no-untyped-def]
        return -inner.energy / self.target.temperature


def _reference_draws(
    en: Enumeration, cls: type, replicas: int, chains: int, draws: int = DRAWS
) -> tuple[torch.Tensor, float]:
    """Slot 0's draws of ``chains`` chains, 6 sweeps apart after 10 warm-up sweeps (the ladder
    adapts in warm-up, then is frozen), as counts over the states; and the mean swap rate."""
    target = Target(MLMEnergy(en.mlm, "norm"))
    free = en.free.expand(chains, -1).clone()
    sampler = cls(target, free, replicas=replicas)
    generator = torch.Generator().manual_seed(5)
    state = sampler.init(_random_starts(en, chains))
    counts = torch.zeros(len(en), dtype=torch.float64)
    swaps = []
    for sweep in range(10 + 6 * draws):
        state, info = sampler.step(state, generator)
        swaps.append(float(info.swap_rate.mean()))
        if sweep == 9:
            state = sampler.end_warmup(state)
        elif sweep > 9 and (sweep - 9) % 6 == 0:
            counts += torch.bincount(en.state_index(state.tokens), minlength=len(en)).double()
    return counts, sum(swaps) / len(swaps)


def test_reference_tempering_is_exact_and_the_swap_needs_the_q_terms(
    enumeration: Enumeration, chains: int
) -> None:
    """Tempering towards the MLM's sequential law q (pyro_mlm.samplers.reference).

    Exactly, on the 27 x 27 product space of R = 2 slots (beta 1 and 0): one sweep is three
    single-site MH proposals in slot 0, a fresh draw of q in slot 1, then the swap with
    log alpha = W(X_1) - W(X_0), W = -E - log q; it leaves pi x q invariant, and dropping the
    log q terms from W leaves another law (its slot-0 marginal > 0.05 from pi in TV). Six
    sweeps make one draw, with second eigenvalue < 0.1 (so the draws are close to
    independent, as for every sampler here). Then the sampler itself, R = 3 (the middle slot
    at the adapted beta), passes the same TV and chi-square tests as every sampler; the
    wrong variant fails the chi-square test at p < 1e-6 (its TV from pi measured 0.27 at
    R = 3, so a quarter of the negative cases' draws keeps the test's power overwhelming).
    """
    en = enumeration
    target = en.target("norm")
    energy = -target.log()  # E up to a constant, which cancels in every ratio here
    q = _reference_law(en)
    n = len(en)
    local = en.sweep_kernel(target, "random", 1, 1.0)
    slot0 = torch.linalg.matrix_power(local, len(en.free_positions))
    fresh = q.expand(n, n)  # slot 1: an independent draw of q, whatever its state
    inner = torch.kron(slot0, fresh)  # state (i, j) is row i * n + j

    def swap_kernel(with_q: bool) -> torch.Tensor:
        w = -energy - (q.log() if with_q else 0.0)
        swap = torch.zeros(n * n, n * n, dtype=torch.float64)
        for i in range(n):
            for j in range(n):
                accept = min(1.0, float(torch.exp(w[j] - w[i])))
                swap[i * n + j, j * n + i] += accept
                swap[i * n + j, i * n + j] += 1.0 - accept
        return swap

    per_sweep = inner @ swap_kernel(True)
    product = torch.outer(target, q).flatten()
    assert total_variation(stationary(per_sweep), product) < 1e-6
    assert second_eigenvalue(torch.linalg.matrix_power(per_sweep, 6)) < 0.1
    wrong = stationary(inner @ swap_kernel(False)).reshape(n, n).sum(1)
    assert total_variation(wrong, target) > 0.05

    counts, rate = _reference_draws(en, ReferenceTempering, 3, chains)
    tv = total_variation(counts / counts.sum(), target)
    p_value = chi_square_pvalue(target, counts)
    bad, _ = _reference_draws(en, _NoReferenceTerms, 3, CI_CHAINS)
    bad_p = chi_square_pvalue(target, bad)
    bad_tv = total_variation(bad / bad.sum(), target)
    print(f"reference tempering: TV={tv:.4f} chi2 p={p_value:.3f} swap rate {rate:.2f}; "
          f"without the q terms: TV={bad_tv:.3f} p={bad_p:.2g}")  # fmt: skip
    assert p_value > 1e-3 and tv < tv_tolerance(chains)
    assert 0.0 < rate < 1.0
    assert bad_p < 1e-6
