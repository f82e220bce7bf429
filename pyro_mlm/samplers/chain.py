"""The one chain driver: a sampler, its generator, its state, counters and the end of warm-up.

Both shells drive their chains through a :class:`Chain`: the Pyro kernel
(:class:`~pyro_mlm.pyro.kernel.SamplerKernel`, one ``sample()`` call a sweep) and the run
loop (:func:`~pyro_mlm.run.loop.sample_to_directory`, which adds files, signals and
progress). A chain's whole future is set by :meth:`Chain.state_dict`: the sampler state's
fields (its cached energies and conditionals included), the generator's state, the sweep
count and the counters, so a checkpoint is that dict and a resume is
:meth:`Chain.load_state_dict`.

>>> chain = Chain.start(sampler, tokens, seed=0, warmup=20)   # doctest: +SKIP
>>> info = chain.step()                                        # doctest: +SKIP
>>> chain.energy, chain.progress(info)                         # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from pyro_mlm.samplers.base import ChainState, SweepInfo, SweepSampler, load_state, state_dict
from pyro_mlm.samplers.statistics import sweep_statistics

# proposals, accepted and novel over every sweep; the sample_ ones and the sampling wall
# time after warm-up only
COUNTERS = (
    "proposals",
    "accepted",
    "novel",
    "sample_proposals",
    "sample_accepted",
    "sample_novel",
    "seconds",
)


class Chain:
    """``C`` vectorised chains of one sampler, stepped one sweep at a time.

    Parameters
    ----------
    sampler
        The sampler (pure ``init`` / ``step`` / ``end_warmup``).
    state
        Its state (``sampler.init(tokens)``).
    generator
        The chains' random stream; nothing else draws from it.
    warmup
        Warm-up sweeps: :meth:`SweepSampler.end_warmup` is applied once sweep ``warmup``
        is done (by :meth:`start` for ``warmup=0``), and the ``sample_`` counters count
        the sweeps after it.
    """

    def __init__(
        self, sampler: SweepSampler, state: ChainState, generator: torch.Generator, warmup: int
    ) -> None:
        if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
        self.sampler = sampler
        self.generator = generator
        self.warmup = warmup
        self.sweep = 0
        self.counts: dict[str, float] = dict.fromkeys(COUNTERS, 0)
        # every sweep-info field summed over chains and the sweeps of the current phase
        # (warm-up, then the kept sweeps): what the progress line reads
        self.totals: dict[str, Any] = {}
        self.total_sweeps = 0
        self.last_seconds = 0.0
        self._energy: torch.Tensor | None = None
        self.state = state

    @classmethod
    def start(
        cls,
        sampler: SweepSampler,
        tokens: torch.Tensor,
        *,
        warmup: int,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Chain:
        """Chains at ``tokens [C, L]`` with a generator seeded by ``seed`` (or ``generator``)."""
        if generator is None:
            generator = torch.Generator(device=tokens.device)
            generator.manual_seed(0 if seed is None else seed)
        state = sampler.init(tokens)
        return cls(sampler, sampler.end_warmup(state) if warmup == 0 else state, generator, warmup)

    @classmethod
    def from_state_dict(
        cls, sampler: SweepSampler, saved: dict[str, Any], *, warmup: int, device: torch.device
    ) -> Chain:
        """The chains of a checkpoint (:meth:`state_dict`), without evaluating anything."""
        state = load_state(sampler.State, saved["state"], device, sampler.NESTED)
        chain = cls(sampler, state, torch.Generator(device=device), warmup)
        chain.load_state_dict(saved)
        return chain

    # ------------------------------------------------------------ driving
    @property
    def state(self) -> ChainState:
        """The sampler's current state (a ``NamedTuple``)."""
        return self._state

    @state.setter
    def state(self, state: ChainState) -> None:
        self._state = state
        self._energy = None

    @property
    def tokens(self) -> torch.Tensor:
        """``[C, L]`` the chains' current sequences."""
        return self._state.tokens

    @property
    def energy(self) -> torch.Tensor:
        """Total energy ``[C]`` of the current sequences (cached until the state changes)."""
        if self._energy is None:
            self._energy = self.sampler.energy(self._state)
        return self._energy

    def step(self) -> SweepInfo:
        """One sweep in every chain; ends warm-up after sweep ``warmup``; counts it."""
        tick = time.perf_counter()
        state, info = self.sampler.step(self._state, self.generator)
        self.sweep += 1
        if self.sweep == self.warmup:  # the last warm-up sweep: adaptation stops
            state = self.sampler.end_warmup(state)
        self.state = state
        self.last_seconds = time.perf_counter() - tick
        proposals = self.sampler.proposals
        counts = (
            proposals * info.acceptance_rate.numel(),
            round(float(info.acceptance_rate.sum()) * proposals),
            round(float(info.is_novel.sum()) * proposals),
        )
        kept = self.sweep > self.warmup
        if self.sweep == self.warmup + 1:  # the first kept sweep: warm-up's totals end
            self.totals, self.total_sweeps = {}, 0
        self._add(info)
        for prefix in ("", "sample_") if kept else ("",):
            for name, value in zip(("proposals", "accepted", "novel"), counts, strict=True):
                self.counts[prefix + name] += value
        if kept:
            self.counts["seconds"] += self.last_seconds
        return info

    def restart_at(self, tokens: torch.Tensor) -> None:
        """Continue from other ``tokens`` (same temperatures, cursor and row count)."""
        fresh = self.sampler.init(tokens, getattr(self._state, "beta", None))
        self.state = fresh._replace(cursor=self._state.cursor, rows=self._state.rows)

    def _add(self, info: Any) -> None:
        """Sum this sweep's info fields over chains into :attr:`totals`."""
        for name, value in info._asdict().items():
            total = value.double().sum(0).cpu().numpy()
            self.totals[name] = self.totals[name] + total if name in self.totals else total
        self.total_sweeps += int(info.acceptance_rate.numel())

    # ------------------------------------------------------------ reporting
    def statistics(self) -> dict[str, float]:
        """The per-sweep statistics of the current phase (warm-up, then the kept sweeps)
        under the names summary.csv gives them (:mod:`~pyro_mlm.samplers.statistics`)."""
        return sweep_statistics(self.totals, self.total_sweeps)

    def rates(self) -> tuple[float, float]:
        """Acceptance and novel rates of the kept sweeps (0 before any)."""
        n = max(self.counts["sample_proposals"], 1)
        return self.counts["sample_accepted"] / n, self.counts["sample_novel"] / n

    def progress(self, info: Any = None) -> dict[str, str]:
        """Progress fields: the statistics the sampler names in ``PROGRESS`` (acceptance
        and novel rates, then its own, e.g. ``swap_rate[i]``, ``regen_acceptance``) over
        the current phase's sweeps, with summary.csv's names, so that at the end of a run
        they equal its rows (``info``, the latest sweep's, is not needed and kept for
        callers that pass it)."""
        stats = self.statistics()
        shown = {}
        for name, value in stats.items():
            if name.split("[")[0] in self.sampler.PROGRESS and value == value:  # not NaN
                shown[name] = f"{value:.3f}"
        return shown

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything that sets the chains' future: state, generator, sweeps, counters.

        The cached energies and conditionals are saved with the state: recomputing them
        in a batch of another shape could change their last bits, and with them a draw.
        """
        return {
            "sweep": self.sweep,
            "state": state_dict(self._state),
            "generator": self.generator.get_state(),
            "counts": dict(self.counts),
            "totals": {k: v.tolist() for k, v in self.totals.items()},
            "total_sweeps": self.total_sweeps,
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (a chain built for the same run).

        A ``KeyError``, ``TypeError`` or ``ValueError`` means the dict is not such a
        checkpoint; the callers name the file.
        """
        device = self.tokens.device
        state = load_state(self.sampler.State, saved["state"], device, self.sampler.NESTED)
        if state.tokens.shape != self.tokens.shape:
            raise ValueError(
                f"the saved chains have shape {tuple(state.tokens.shape)}, this run "
                f"{tuple(self.tokens.shape)}: it is not the same run"
            )
        self.generator.set_state(saved["generator"])
        self.state = state
        self.sweep = int(saved["sweep"])
        counts = dict(saved["counts"])
        if "sample_proposals" not in counts:  # a run loop's checkpoint before 0.2: it
            for name in ("proposals", "accepted", "novel"):  # counted kept sweeps only
                counts["sample_" + name] = counts.get(name, 0)
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.counts.update({k: v for k, v in counts.items() if k in COUNTERS})
        # a checkpoint before 0.3 has no totals: the progress line then covers the sweeps
        # since the resume (summary.csv, from the records, covers them all)
        self.totals = {
            k: np.asarray(v, dtype=np.float64) for k, v in saved.get("totals", {}).items()
        }
        self.total_sweeps = int(saved.get("total_sweeps", 0))
