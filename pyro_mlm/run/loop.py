"""Run a sampler into a directory sweep by sweep, so that a run can stop and resume.

A run directory holds:

``run.json``
    The run's settings (:class:`~pyro_mlm.run.spec.RunSpec`).
``samples.jsonl``
    One line per kept draw and chain, appended and flushed after every sweep: chain,
    draw, decoded sequence, energy, Hamming distance to chain 0's start, and the fractions
    of the sweep's proposals accepted and novel (and the token ids).
``checkpoint.pt``
    After every sweep: the chains' cached state, the counters and the RNG state,
    replaced atomically. A run stopped at any moment (Ctrl-C, ``kill``, even
    ``kill -9``) resumes from the latest checkpoint; draw lines written after it are
    dropped on resume, so the resumed run has exactly the draws of an uninterrupted
    one with the same seed.
``posterior.nc``, ``summary.csv``, ``trace.png``, ``rank.png``
    The report (:mod:`pyro_mlm.run.report`), written at the end and when a run is
    interrupted.

This module drives the sampler's pure ``step`` directly, with its own
``torch.Generator`` seeded from the run's seed: the checkpoint is the sampler state's
fields plus the generator's state, whatever the sampler.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from pyro_mlm.diagnostics import hamming
from pyro_mlm.energy import MLMEnergy
from pyro_mlm.models import MaskedLM
from pyro_mlm.run.progress import Progress
from pyro_mlm.run.report import RunResult, write_report
from pyro_mlm.run.spec import RunSpec, build_experts, prepare
from pyro_mlm.run.store import (
    CHECKPOINT_FILE,
    CHECKPOINT_KEYS,
    SAMPLES_FILE,
    SPEC_FILE,
    load_checkpoint,
    save_checkpoint,
    truncate_draws,
    write_atomic,
)
from pyro_mlm.samplers import SweepInfo, SweepSampler, build_sampler
from pyro_mlm.samplers.base import load_state, state_dict
from pyro_mlm.sites import fill_masked
from pyro_mlm.target import Target


class Interrupted(Exception):
    """Raised inside the sweep loop by SIGINT (Ctrl-C) or SIGTERM (``kill``)."""


def build(spec: RunSpec, mlm: MaskedLM) -> tuple[SweepSampler, torch.Tensor]:
    """The sampler of ``spec`` (from the registry) and its starting tokens ``[C, L]``."""
    tokens, free = prepare(spec, mlm)
    energy = MLMEnergy(mlm, spec.energy, temperature=spec.temperature)  # type: ignore[arg-type]
    experts = build_experts(spec, mlm, tokens.to(mlm.device), free.to(mlm.device), weights=True)
    sampler = build_sampler(
        spec.kernel,
        Target(energy, experts, over=spec.energy_over),
        free.to(mlm.device),
        scan=spec.scan,
        proposal_temperature=spec.proposal_temperature,
        **spec.options,
    )
    return sampler, tokens.to(mlm.device)


def sample_to_directory(
    spec: RunSpec,
    mlm: MaskedLM,
    directory: str,
    *,
    resume: bool = False,
    progress: bool = True,
    on_sweep: Callable[[int], None] | None = None,
    report: bool = True,
) -> RunResult:
    """Run ``spec`` into ``directory`` (a new one, or with ``resume`` the run it holds).

    ``on_sweep(k)`` is called after sweep ``k``'s draws are written and before its
    checkpoint is saved (the worst moment to be stopped; tests use it to interrupt).
    The directory is created only once the run is ready to start. ``report=False``
    skips the report files (a shard of a sharded run: the driver writes one report).
    """
    paths = {name: os.path.join(directory, name) for name in (SPEC_FILE, SAMPLES_FILE)}
    checkpoint_path = os.path.join(directory, CHECKPOINT_FILE)
    sampler, tokens = build(spec, mlm)
    free = sampler.sites.mask
    generator = torch.Generator(device=mlm.device)
    saved = load_checkpoint(checkpoint_path, CHECKPOINT_KEYS) if resume else None
    counts = dict.fromkeys(("proposals", "accepted", "novel", "seconds"), 0.0)
    if saved is None:
        spec = spec.with_resolved_free(mlm)  # run.json records what --free resolved to
        generator.manual_seed(spec.seed)
        # mask tokens at free positions get a first value; at fixed positions a mask
        # is context ("unknown residue") and stays
        fill = (tokens == mlm.mask_token_id) & free
        conditionals = sampler.target.conditionals
        start = fill_masked(conditionals, tokens, fill, mlm.proposable_ids, generator)
        state = sampler.init(start)
        if spec.warmup == 0:
            state = sampler.end_warmup(state)
        os.makedirs(directory, exist_ok=True)
        write_atomic(paths[SPEC_FILE], spec.to_json().encode())
        open(paths[SAMPLES_FILE], "w").close()
        done = 0
        _save(checkpoint_path, 0, state, generator, start, counts)
    else:
        start = _saved_start(saved, checkpoint_path, tokens).to(mlm.device)
        state, done = _restore(sampler, saved, generator, checkpoint_path, start)
        counts.update(saved["counts"])
        truncate_draws(paths[SAMPLES_FILE], max(done - spec.warmup, 0), spec.chains)
    total = spec.warmup + spec.samples
    began = time.perf_counter()
    completed = False
    guard = _StopGuard()
    reached = done
    try:
        with guard.installed(), open(paths[SAMPLES_FILE], "a", encoding="utf-8") as out:
            bar = Progress(total, done, enabled=progress, desc=mlm.name, unit="sweep")
            for sweep in range(done + 1, total + 1):
                tick = time.perf_counter()
                state, info = sampler.step(state, generator)
                if sweep == spec.warmup:  # the last warm-up sweep: adaptation stops
                    state = sampler.end_warmup(state)
                if sweep > spec.warmup:
                    _count(counts, info, sampler.proposals)
                with guard:  # a stop request waits until the sweep is saved
                    if sweep > spec.warmup:
                        draw = sweep - spec.warmup - 1
                        counts["seconds"] += time.perf_counter() - tick  # not in the draws:
                        _write_draws(out, sampler, state, info, mlm, start, draw)  # they replay
                    if on_sweep is not None:
                        on_sweep(sweep)
                    _save(checkpoint_path, sweep, state, generator, start, counts)
                    reached = sweep
                phase = "warmup" if sweep <= spec.warmup else "sample"
                bar.update(1, _rates(counts, info, sampler.proposals), phase)
            bar.close()
        completed = True
    except (KeyboardInterrupt, Interrupted):
        pass
    seconds = time.perf_counter() - began
    n = max(counts["proposals"], 1.0)
    rates = (counts["accepted"] / n, counts["novel"] / n)
    if not report:
        draws = max(reached - spec.warmup, 0)
        return RunResult(
            directory, draws, completed, seconds, *rates, None, None, counts["seconds"]
        )
    return write_report(
        directory, spec, mlm, free, completed, seconds, rates, counts["seconds"],
        start=start, experts=sampler.target.experts,
    )  # fmt: skip


# ---------------------------------------------------------------- internals
def _write_draws(
    out: Any,
    sampler: SweepSampler,
    state: Any,
    info: SweepInfo,
    mlm: MaskedLM,
    start: torch.Tensor,
    draw: int,
) -> None:
    tokens = state.tokens.cpu()
    energy = sampler.energy(state).cpu()
    distance = hamming(tokens, start[:1].cpu())  # one reference for every chain: R-hat compares
    # one function across chains (each chain's own start differs where starts are filled)
    fields = {("novel_rate" if k == "is_novel" else k): v.cpu() for k, v in info._asdict().items()}
    lines = []
    for c in range(tokens.shape[0]):
        record = {
            "chain": c,
            "draw": draw,
            "sequence": mlm.decode(tokens[c]),
            "energy": float(energy[c]),
            "hamming": int(distance[c]),
            **{k: _value(v[c], k) for k, v in fields.items()},
            "tokens": tokens[c].tolist(),
        }
        lines.append(json.dumps(record) + "\n")
    out.write("".join(lines))
    out.flush()  # a killed process keeps what was flushed (no fsync: it costs more than a sweep)


def _value(value: torch.Tensor, name: str) -> Any:
    """One chain's info value for JSON: an int (rows), a float, or a list (per pair)."""
    if value.dim():
        return [round(float(v), 6) for v in value]
    return int(value) if name == "rows" else float(value)


def _count(counts: dict[str, float], info: SweepInfo, proposals: int) -> None:
    counts["proposals"] += proposals * info.acceptance_rate.numel()
    counts["accepted"] += round(float(info.acceptance_rate.sum()) * proposals)
    counts["novel"] += round(float(info.is_novel.sum()) * proposals)


def _rates(counts: dict[str, float], info: Any, proposals: int) -> dict[str, str]:
    """Progress statistics: after warm-up the run's rates, during it the latest sweep's;
    with replica exchange, the latest sweep's swap rate of each pair."""
    if counts["proposals"]:
        n = counts["proposals"]
        out = {"acc. rate": f"{counts['accepted'] / n:.3f}", "novel": f"{counts['novel'] / n:.3f}"}
    else:
        out = {
            "acc. rate": f"{float(info.acceptance_rate.mean()):.3f}",
            "novel": f"{float(info.is_novel.mean()):.3f}",
        }
    swaps = getattr(info, "swap_rate", None)
    if swaps is not None:
        out["swap"] = "/".join(f"{float(r):.2f}" for r in swaps.float().mean(0))
    regenerations = getattr(info, "regenerations", None)
    if regenerations is not None and float(regenerations.sum()) > 0:  # the latest sweep's
        out["regen acc."] = f"{float(info.regen_accepted.sum() / regenerations.sum()):.2f}"
    return out


def _save(
    path: str,
    sweep: int,
    state: Any,
    generator: torch.Generator,
    start: torch.Tensor,
    counts: dict[str, float],
) -> None:
    checkpoint = {
        "sweep": sweep,
        "state": state_dict(state),
        "generator": generator.get_state(),
        "initial_tokens": start.cpu(),
        "counts": dict(counts),
    }
    save_checkpoint(path, checkpoint)


def _saved_start(saved: dict[str, Any], path: str, tokens: torch.Tensor) -> torch.Tensor:
    start = saved["initial_tokens"]
    if not isinstance(start, torch.Tensor) or start.shape != tokens.shape:
        raise ValueError(
            f"{path} is damaged or belongs to another run (its starting tokens have shape "
            f"{tuple(getattr(start, 'shape', ()))}, this run's {tuple(tokens.shape)}); start "
            "a new run with another --out"
        )
    return start


def _restore(
    sampler: SweepSampler,
    saved: dict[str, Any],
    generator: torch.Generator,
    path: str,
    start: torch.Tensor,
) -> tuple[Any, int]:
    """The sampler state and generator of a checkpoint; returns ``(state, sweeps done)``."""
    try:
        state = load_state(sampler.State, saved["state"], start.device, sampler.NESTED)
        if state.tokens.shape != start.shape:
            raise ValueError(f"chains of shape {tuple(state.tokens.shape)}")
        generator.set_state(saved["generator"])
        return state, int(saved["sweep"])
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError, ValueError) as err:
        raise ValueError(
            f"{path} is damaged (its sampler or generator state is unusable: "
            f"{type(err).__name__} {err}); the draws in samples.jsonl up to the last saved "
            "sweep are intact; start a new run with another --out"
        ) from err


class _StopGuard:
    """SIGINT and SIGTERM stop the run, but never while a sweep is being saved.

    Outside ``with guard:`` a signal raises :class:`Interrupted` at once; inside, it
    is held and raised when the block ends, so ``samples.jsonl`` never holds a torn
    sweep and the checkpoint always matches it (``kill -9`` is handled on resume).
    """

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.depth:
            self.pending = True
        else:
            raise Interrupted

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.depth -= 1
        if self.pending and not self.depth and exc_type is None:
            self.pending = False
            raise Interrupted

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        signals = (signal.SIGINT, signal.SIGTERM)
        try:
            previous = [signal.signal(sig, self._handler) for sig in signals]
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            for sig, handler in zip(signals, previous, strict=True):
                signal.signal(sig, handler)
