"""The stop rule of ``pyro-mlm sample --until-converged``: sample until the verdict holds.

The run goes on sweep after sweep and checks the verdict of
:func:`pyro_mlm.report.diagnostics.converged` (rank-normalised split R-hat <= 1.01 and
bulk ESS >= 400, the ESS read as at most the draws, for the energy, the Hamming distance
and the region's length where it varies) on the draws kept so far, with the same
functions and the same draws the finished run's ``summary.csv`` uses, so the run stops
exactly when its report says CONVERGED.

**Warm-up (burn-in) is a fixed share of the sweeps done**: of ``S`` sweeps, the first
``max(warmup, floor(S / 4))`` are dropped (:func:`burn_in`), where ``warmup`` is the run's
``--warmup`` (the sweeps in which an adaptive sampler tunes itself, then freezes). A share
rather than a measured truncation rule: it is the rule the benchmarks use (bench/mixing.py
drops the first quarter), it needs no statistic of its own that could stop too early, and
a transient left in the kept three quarters shows up in the split R-hat, which compares
their halves, and so delays the verdict instead of passing it. Every sweep after
``warmup`` is written to ``samples.jsonl`` as today; the report drops the leading
:func:`burn_in` of them.

**When it checks**: at written-draw counts that grow by 5% (:func:`check_points`), from the
first count whose kept draws could hold an ESS of 400 (``chains x kept >= 400``). The
schedule depends on the draws alone, not on time, so a run with a given seed stops at the
same sweep whether or not it was interrupted and resumed (a resumed run has exactly the
uninterrupted run's draws), and it stops at most 5% of its draws after the first count at
which the verdict would have held. A check computes R-hat and ESS of two or three
``[chains, draws]`` arrays: milliseconds for a thousand draws, timed, and said at the end
as a share of the session (under 1% for Sapiens-H's CDR-H3, where a sweep of 4 chains takes
seconds; a few percent on a tiny test model, whose sweeps take milliseconds). The run stops
at the first check that passes: like any sequential stopping rule, that can catch a
borderline verdict on a favourable fluctuation; the report's table shows the figures it
stopped on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from pyro_mlm.report import arviz_compat
from pyro_mlm.report.diagnostics import ESS_BAR, R_HAT_BAR, converged, diagnose, judged

BURN_IN_SHARE = 4  # the first 1/4 of the sweeps done are burn-in
GROWTH = 1.05  # each check comes after 5% more written draws than the last


def burn_in(warmup: int, draws: int) -> int:
    """Leading written draws dropped as burn-in when ``draws`` follow ``warmup`` sweeps.

    Of ``S = warmup + draws`` sweeps the first ``max(warmup, S // 4)`` are burn-in; the
    first ``warmup`` were never written, so ``max(S // 4 - warmup, 0)`` written ones go.

    >>> burn_in(20, 80), burn_in(20, 100), burn_in(0, 100)
    (5, 10, 25)
    """
    return max((warmup + draws) // BURN_IN_SHARE - warmup, 0)


def check_points(warmup: int, chains: int, upto: int) -> list[int]:
    """The written-draw counts, up to ``upto``, at which the stop rule checks.

    The first is the least count whose kept draws (after :func:`burn_in`) number at least 4
    per chain and ``ESS_BAR`` (400) in all; each next one is ``ceil(1.05 x`` the last``)``.

    >>> check_points(0, 4, 200)
    [133, 140, 147, 155, 163, 172, 181, 191]
    """
    first = 1
    while first <= upto:
        kept = first - burn_in(warmup, first)
        if kept >= 4 and kept * chains >= ESS_BAR:
            break
        first += 1
    points = []
    n = first
    while n <= upto:
        points.append(n)
        n = max(n + 1, int(np.ceil(n * GROWTH)))
    return points


class Verdict(NamedTuple):
    """One check: the verdict and the worst figures of the judged summaries."""

    converged: bool
    r_hat: float  # the largest R-hat (NaN when a summary never moved)
    ess: float  # the smallest bulk ESS, read as at most the kept draws
    kept: int  # draws per chain the check read (after burn-in)

    def progress(self) -> dict[str, str]:
        """The progress line's fields: the current figures against the targets."""
        return {
            "R-hat": f"{self.r_hat:.3f}/{R_HAT_BAR}",
            "ESS": f"{self.ess:.0f}/{ESS_BAR:.0f}",
        }


class ConvergenceWatch:
    """The judged summaries of the written draws, checked against the verdict as they grow.

    Parameters
    ----------
    warmup
        The run's ``--warmup`` sweeps (not written).
    chains
        Chains of the run.
    names
        The judged summaries (``energy``, ``hamming``, ``length`` under ``--lengths``).
    written
        The arrays ``[chain, draw]`` of the draws already written (a resumed run), by name.
    """

    def __init__(
        self,
        warmup: int,
        chains: int,
        names: Sequence[str],
        written: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.warmup, self.chains, self.names = warmup, chains, tuple(names)
        self.values: dict[str, list[np.ndarray]] = {n: [] for n in self.names}
        for name in self.names:
            if written is not None and name in written:
                self.values[name] = list(np.asarray(written[name], dtype=float).T)
        self.check_seconds = 0.0  # time spent checking, in all
        self.last: Verdict | None = None
        arviz_compat.arviz()  # imported now (seconds, once), so no check is charged for it

    @property
    def draws(self) -> int:
        return len(self.values[self.names[0]])

    def add(self, values: Mapping[str, np.ndarray]) -> None:
        """One sweep's values ``[chain]`` of every judged summary."""
        for name in self.names:
            self.values[name].append(np.asarray(values[name], dtype=float))

    def due(self) -> bool:
        """Whether the written draws are at one of the :func:`check_points`."""
        n = self.draws
        return n > 0 and n in check_points(self.warmup, self.chains, n)[-1:]

    def check(self) -> Verdict:
        """The verdict on the kept draws, exactly as the finished run's report decides it."""
        began = time.perf_counter()
        drop = burn_in(self.warmup, self.draws)
        arrays = {n: np.stack(self.values[n][drop:], axis=1) for n in self.names}
        table = diagnose(arrays)
        kept = self.draws - drop
        names = judged(table)
        r_hat = float(np.max(table.loc[names, "r_hat"].to_numpy(dtype=float)))
        ess = float(np.min(table.loc[names, "ess_bulk"].to_numpy(dtype=float)))
        self.last = Verdict(
            converged(table, draws=kept * self.chains), r_hat, min(ess, kept * self.chains), kept
        )
        self.check_seconds += time.perf_counter() - began
        return self.last
