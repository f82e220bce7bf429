"""The per-sweep statistics a user reads, one definition for the progress line and summary.csv.

A sampler's sweep info holds, per chain and sweep, rates (``acceptance_rate``, the
fraction of the sweep's proposals accepted), counts (``regenerations``: regeneration
proposals in the sweep) and values (``regen_temperature``, ``length``). What a user reads
is each over the kept sweeps of every chain, under one name in both places:

- a rate or a value: its mean over chains and sweeps (``acceptance_rate``, ``novel_rate``,
  ``length``, ``length_accept``; ``swap_rate[i]`` for the pair of replicas i and i+1);
- a ratio of counts declared in :data:`RATES`: the ratio of their totals
  (``regen_acceptance`` = summed :math:`\\min(1, \\alpha)` of the regenerations / their
  number), with the counts themselves as ``<count>_per_sweep`` (``regenerations_per_sweep``
  is 1.92 regeneration proposals per chain and sweep, not a rate).

:func:`sweep_statistics` computes them from totals, so the run loop's progress line
(:meth:`pyro_mlm.samplers.chain.Chain.progress`, totals kept as it goes) and the summary
table (:func:`pyro_mlm.report.diagnostics.summary_table`, totals of the recorded draws)
give the same names and, at the end of a run, the same values. Torch-free.

>>> stats = sweep_statistics({"acceptance_rate": 3.0, "regenerations": 8.0,
...                           "regen_accepted": 2.0}, sweeps=4)
>>> stats["acceptance_rate"], stats["regen_acceptance"], stats["regenerations_per_sweep"]
(0.75, 0.25, 2.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# a rate read off two counts: name -> (numerator, denominator), both per-sweep info fields
RATES: dict[str, tuple[str, str]] = {"regen_acceptance": ("regen_accepted", "regenerations")}
# sweep-info field -> the name a user reads (the draw records' name too)
RENAMES = {"is_novel": "novel_rate"}
# recorded per sweep but not a statistic to read: the cost (ESS per 1000 rows uses it),
# the wall time, the log density, and the mean min(1, alpha) beside the acceptance rate
NOT_READ = ("lp", "rows", "seconds", "accept_prob")


def sweep_statistics(totals: Mapping[str, Any], sweeps: float) -> dict[str, float]:
    """Each statistic over ``sweeps`` chain-sweeps from its ``totals`` (module docstring).

    Parameters
    ----------
    totals
        Sweep-info field -> its sum over chains and sweeps (a number, or a vector for a
        statistic with one entry per pair, e.g. ``swap_rate``). Fields in
        :data:`NOT_READ` are skipped; a NaN total (a statistic not yet defined, such as
        the regeneration temperature during warm-up) gives NaN.
    sweeps
        The number of chain-sweeps summed (chains x sweeps).

    Returns
    -------
    dict
        Name -> value, in the order of ``totals`` with each declared rate first among its
        counts.
    """
    out: dict[str, float] = {}
    counted = {field for pair in RATES.values() for field in pair}
    for field, total in totals.items():
        if field in NOT_READ:
            continue
        if field in counted:
            for rate, (numerator, denominator) in RATES.items():
                if field in (numerator, denominator) and rate not in out:
                    if numerator in totals and denominator in totals:
                        den = float(totals[denominator])
                        out[rate] = float(totals[numerator]) / den if den else float("nan")
            out[f"{field}_per_sweep"] = float(total) / sweeps if sweeps else float("nan")
            continue
        value = np.asarray(total, dtype=np.float64) / sweeps if sweeps else np.nan
        name = RENAMES.get(field, field)
        if np.ndim(value):
            out.update({f"{name}[{i}]": float(v) for i, v in enumerate(np.ravel(value))})
        else:
            out[name] = float(value)
    return out


def read_names(field: str, width: int = 1) -> list[str]:
    """The names under which sweep-info ``field`` (with ``width`` entries) is read."""
    if field in NOT_READ:
        return []
    rates = [rate for rate, pair in RATES.items() if field in pair]
    if rates:
        return [*rates, f"{field}_per_sweep"]
    name = RENAMES.get(field, field)
    return [f"{name}[{i}]" for i in range(width)] if width > 1 else [name]
