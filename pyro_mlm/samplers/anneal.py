r"""Simulated annealing: the lowest-energy sequences, for users who want one best design.

**Not a sampler.** The chains run an exact sampler (``mh`` or ``block``) while its
inverse temperature rises on a geometric schedule, from :math:`T_\text{start}` down to
:math:`T_\text{end}`:

.. math::

    T_k = T_\text{start} \, (T_\text{end} / T_\text{start})^{k / (K - 1)},
    \qquad k = 0, \dots, K - 1,

one sweep at each. The draws follow no fixed distribution, so no R-hat or ESS is
reported; what comes back is every distinct sequence visited, ranked by energy, the
lowest first (evaluated at :math:`T = 1`: the energies are the MLM's own).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from pyro_mlm.samplers.base import SweepSampler


@dataclass(frozen=True)
class Found:
    """A distinct sequence the annealing visited: its tokens, energy and first sweep."""

    tokens: tuple[int, ...]
    energy: float
    sweep: int
    chain: int


def schedule(t_start: float, t_end: float, sweeps: int) -> list[float]:
    """Geometric temperatures from ``t_start`` to ``t_end`` over ``sweeps`` sweeps."""
    if not (t_start > 0 and t_end > 0 and math.isfinite(t_start) and math.isfinite(t_end)):
        raise ValueError(f"temperatures must be finite and > 0, got {t_start} and {t_end}")
    if sweeps < 1:
        raise ValueError(f"the schedule needs at least one sweep, got {sweeps}")
    if sweeps == 1:
        return [t_end]
    ratio = t_end / t_start
    return [t_start * ratio ** (k / (sweeps - 1)) for k in range(sweeps)]


def anneal(
    sampler: SweepSampler,
    tokens: torch.Tensor,
    temperatures: list[float],
    generator: torch.Generator,
    on_sweep: Callable[[int, Any], None] | None = None,
) -> list[Found]:
    """Run ``sampler`` from ``tokens [C, L]`` along ``temperatures``; distinct sequences by energy.

    The sampler must keep a per-chain ``beta`` in its state (``mh``, ``block``,
    ``metropolised``). ``on_sweep(k, info)`` is called after each sweep (progress).
    """
    state = sampler.init(tokens)
    if getattr(state, "beta", None) is None:
        raise ValueError(f"sampler {sampler.name!r} has no per-chain temperature to anneal")
    found: dict[tuple[int, ...], Found] = {}

    def record(sweep: int) -> None:
        energies = sampler.energy(state).cpu()
        for chain, row in enumerate(state.tokens.cpu().tolist()):
            key = tuple(row)
            if key not in found:
                found[key] = Found(key, float(energies[chain]), sweep, chain)

    record(0)
    base = sampler.target.temperature
    for k, temperature in enumerate(temperatures, start=1):
        beta = torch.full_like(state.beta, 1.0 / (base * temperature))
        state, info = sampler.step(state._replace(beta=beta), generator)
        record(k)
        if on_sweep is not None:
            on_sweep(k, info)
    return sorted(found.values(), key=lambda f: (f.energy, f.sweep, f.chain))
