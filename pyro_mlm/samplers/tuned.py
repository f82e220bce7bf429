r"""Block MH whose block sizes and proposal temperature are chosen in warm-up, then frozen.

During warm-up the sweeps cycle through candidate settings (block sizes ``{1}``,
``{1, 2}``, ``{2}``, ``{3}`` at proposal temperatures 1 and 1.5 by default) and measure
each one's expected squared jump of the energy per masked row,

.. math::

    \mathrm{ESJD}/\text{row} = \frac{\sum_\text{sweeps} \sum_c (E_c^{(s)} - E_c^{(s-1)})^2}
                                    {\sum_\text{sweeps} \text{rows}},

a measured criterion of mixing per unit of compute. :meth:`Tuned.end_warmup` picks the
best and freezes it: from then on every sweep is that block sampler, which is exact
(tests/samplers/test_exactness.py covers every block setting), and the choice is saved in the
state so a resumed run keeps it. Single-site MH (``{1}`` at temperature 1) is among the
candidates, so the tuner can always fall back on the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from pyro_mlm.samplers.base import SweepInfo, SweepSampler
from pyro_mlm.samplers.block import BlockMH
from pyro_mlm.samplers.options import SAMPLER_OPTIONS
from pyro_mlm.samplers.transitions import MHState

CANDIDATES: tuple[tuple[tuple[int, ...], float], ...] = tuple(
    (sizes, tau) for tau in (1.0, 1.5) for sizes in ((1,), (1, 2), (2,), (3,))
)


class TunedState(NamedTuple):
    """An :class:`~pyro_mlm.samplers.transitions.MHState` (``inner``) plus the tuner's measurements.

    Attributes
    ----------
    tokens, energy, cursor, rows
        Those of ``inner`` (the draws and the cost).
    jumps, spent
        ``[n]`` summed squared energy jumps and rows of each candidate in warm-up.
    choice
        ``[]`` the candidate in use; ``-1`` while warm-up still cycles.
    sweep
        ``[]`` sweeps done.
    """

    tokens: torch.Tensor
    energy: torch.Tensor
    inner: MHState
    jumps: torch.Tensor
    spent: torch.Tensor
    choice: torch.Tensor
    sweep: torch.Tensor
    cursor: torch.Tensor
    rows: torch.Tensor


@dataclass(frozen=True, eq=False)
class TunedInfo(SweepInfo):
    """The sweep's :class:`~pyro_mlm.samplers.base.SweepInfo` plus ``candidate [C]``, the
    index in ``CANDIDATES`` of the setting this sweep used."""

    candidate: torch.Tensor


class Tuned(SweepSampler):
    """Block MH tuned in warm-up by ESJD per row (module docstring), frozen after."""

    name = "tuned"
    State = TunedState
    NESTED = {"inner": MHState}  # noqa: RUF012 - how checkpoints rebuild nested states
    OPTIONS = SAMPLER_OPTIONS["tuned"]

    def __init__(self, target: Any, free: torch.Tensor, *, block_mode: str = "random",
                 **settings: Any) -> None:  # fmt: skip
        super().__init__(target, free, **settings)
        settings = {k: v for k, v in settings.items() if k != "proposal_temperature"}
        self.candidates = [
            BlockMH(
                target,
                free,
                block_size=sizes,
                block_mode=block_mode,
                proposal_temperature=tau,
                **settings,
            )
            for sizes, tau in CANDIDATES
        ]
        self.block_mode = block_mode

    def init(self, tokens: torch.Tensor, beta: torch.Tensor | None = None) -> TunedState:
        inner = self.candidates[0].init(tokens, beta)
        n = len(self.candidates)
        zero = torch.zeros((), dtype=torch.long)
        return TunedState(
            inner.tokens, inner.energy, inner, torch.zeros(n, dtype=torch.float64),
            torch.zeros(n, dtype=torch.float64), zero - 1, zero, zero, inner.rows,
        )  # fmt: skip

    def step(self, state: TunedState, generator: torch.Generator | None = None) -> tuple[Any, Any]:
        tuning = int(state.choice) < 0
        index = int(state.sweep) % len(self.candidates) if tuning else int(state.choice)
        inner, info = self.candidates[index].step(state.inner, generator)
        jumps, spent = state.jumps, state.spent
        if tuning:
            jump = float(((inner.energy - state.inner.energy) ** 2).sum())
            jumps = jumps.clone()
            spent = spent.clone()
            jumps[index] += jump
            spent[index] += float(info.rows.sum())
        new = state._replace(
            tokens=inner.tokens, energy=inner.energy, inner=inner, jumps=jumps, spent=spent,
            sweep=state.sweep + 1, rows=inner.rows,
        )  # fmt: skip
        return new, TunedInfo(**info._asdict(), candidate=torch.full_like(info.rows, index))

    def end_warmup(self, state: TunedState) -> TunedState:
        """Freeze the candidate with the largest ESJD per row (single-site MH if none ran)."""
        if int(state.choice) >= 0:
            return state
        score = state.jumps / state.spent.clamp(min=1.0)
        best = int(score.argmax()) if bool((state.spent > 0).any()) else 0
        return state._replace(choice=torch.tensor(best))

    def chosen(self, state: TunedState) -> dict[str, Any]:
        """The frozen setting (block sizes, proposal temperature), for reports."""
        sizes, tau = CANDIDATES[max(int(state.choice), 0)]
        return {"block_size": list(sizes), "proposal_temperature": tau}
