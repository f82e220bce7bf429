"""The case list every registered sampler joins (BlackJAX ``mcse_test_cases`` style).

One entry per sampler setting: the exactness, Pyro-contract, same-seed, resume and
row-count tests all run over ``SAMPLER_CASES``; a test fails when a registered sampler
has no entry, so a new sampler cannot skip them. ``per_proposal`` builds the exact
transition matrix of one random-scan proposal by enumeration (tests/samplers/exact.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from exact import (
    Enumeration,
    metropolised_kernel,
    mh_mixture,
    random_blocks,
    regeneration_kernel,
    region_orders,
    window_blocks,
    window_orders,
)

Exact = Callable[[Enumeration, "torch.Tensor | None", float], torch.Tensor]


def _mh(en: Enumeration, target: torch.Tensor | None, q_temp: float) -> torch.Tensor:
    return en.sweep_kernel(target, "random", 1, q_temp)


def _block(sizes: tuple[int, ...], mode: str = "random") -> Exact:
    def build(en: Enumeration, target: torch.Tensor | None, q_temp: float) -> torch.Tensor:
        assert target is not None
        n = len(en.free_positions)
        blocks = random_blocks(n, sizes) if mode == "random" else window_blocks(n, sizes[0])
        return mh_mixture(en, target, blocks, q_temp)

    return build


def _metropolised(en: Enumeration, target: torch.Tensor | None, q_temp: float) -> torch.Tensor:
    assert target is not None
    return metropolised_kernel(en, target, q_temp)


def _regenerate(prob: float, tau: float, k: int | None = None) -> Exact:
    """``(1 - p)`` single-site MH plus ``p`` regeneration (whole region in a random order,
    or ``k``-windows filled left to right)."""

    def build(en: Enumeration, target: torch.Tensor | None, q_temp: float) -> torch.Tensor:
        assert target is not None
        n = len(en.free_positions)
        orders = region_orders(n) if k is None else window_orders(n, k)
        single = en.sweep_kernel(target, "random", 1, q_temp)
        return (1 - prob) * single + prob * regeneration_kernel(en, target, orders, tau)

    return build


@dataclass(frozen=True)
class SamplerCase:
    """A registered sampler with settings, and how to build its exact per-proposal kernel."""

    id: str
    sampler: str
    options: dict[str, Any] = field(default_factory=dict)
    per_proposal: Exact | None = _mh  # None: a dedicated enumeration test (test_exactness)
    exact: bool = True
    energies: tuple[str, ...] = ("norm",)  # energies the enumeration test runs it with
    thin: int = 1  # sweeps between draws x this, so that draws are nearly independent
    replicas: int = 1  # rows per chain in each forward pass (replica exchange: R)
    # most masked rows one proposal's draw costs a chain beyond the |free| rows of the
    # energy of the proposed sequence, given |free| (regeneration: 2k - 2)
    proposal_rows: Callable[[int], int] = lambda free: 0
    # masked rows the start state costs a chain, given |free| (None: one evaluation of each
    # of its replicas)
    start_rows: Callable[[int], int] | None = None

    def __repr__(self) -> str:
        return self.id


SAMPLER_CASES = [
    SamplerCase("mh", "mh"),  # its enumeration cases are the original ones, in test_exactness
    SamplerCase("gibbs", "gibbs", exact=False),
    SamplerCase("block-2", "block", {"block_size": 2}, _block((2,)), energies=("norm", "raw")),
    SamplerCase(
        "block-2-window",
        "block",
        {"block_size": 2, "block_mode": "window"},
        _block((2,), "window"),
        energies=("raw",),
    ),
    # all three sites at once: fewer accepted moves per proposal, so twice the sweeps per draw
    SamplerCase("block-all", "block", {"block_size": 3}, _block((3,)), thin=2),
    SamplerCase("block-1,2", "block", {"block_size": (1, 2)}, _block((1, 2)), energies=("raw",)),
    SamplerCase(
        "metropolised", "metropolised", per_proposal=_metropolised, energies=("norm", "raw")
    ),
    # R = 2 replicas at T = 1 and 3; its enumeration test is over the product space
    SamplerCase(
        "replica-exchange",
        "replica-exchange",
        {"replicas": 2, "t_max": 3.0, "inner": "mh"},
        per_proposal=None,
        replicas=2,
    ),
    # the frozen choice depends on the warm-up: its own enumeration test in test_exactness
    SamplerCase("tuned", "tuned", per_proposal=None),
    # global moves: the whole region regenerated in half the proposals; with tau_r "auto"
    # the frozen kernel depends on the warm-up: its own enumeration test in test_exactness
    SamplerCase(
        "regenerate",
        "regenerate",
        {"regen_prob": 0.5},
        per_proposal=None,
        proposal_rows=lambda free: 2 * free - 2,
    ),
    # replica exchange around the global move (its state nests regenerate's)
    SamplerCase(
        "replica-exchange-regenerate",
        "replica-exchange",
        {"replicas": 2, "t_max": 3.0, "inner": "regenerate"},
        per_proposal=None,
        replicas=2,
        proposal_rows=lambda free: 2 * free - 2,
    ),
    SamplerCase(
        "regenerate-window",
        "regenerate",
        {
            "regen_prob": 0.5,
            "regen_temperature": 1.2,
            "regen_block": "window",
            "regen_size": 2,
            "regen_order": "left-to-right",
        },
        _regenerate(0.5, 1.2, k=2),
        proposal_rows=lambda free: 2,
    ),
]
SAMPLER_CASES.append(
    # tempering towards the MLM's sequential law: R = 3 slots (beta 1, 0.5, 0), the last one
    # a fresh draw of q each sweep; its enumeration test (and the wrong swap ratio's) is in
    # test_exactness
    SamplerCase(
        "reference-tempering",
        "reference-tempering",
        {"replicas": 3},
        per_proposal=None,
        replicas=3,
        proposal_rows=lambda free: free,  # a middle slot's log q(X'): |free| more rows
        start_rows=lambda free: 2 * free,  # E and log q of the start, shared by the slots
    )
)
EXACT_CASES = [
    c for c in SAMPLER_CASES if c.exact and c.sampler != "mh" and c.per_proposal is not None
]
