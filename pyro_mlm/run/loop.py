"""Run a sampler into a directory sweep by sweep, so that a run can stop and resume.

A run directory holds:

``run.json``
    The run's settings (:class:`~pyro_mlm.run.spec.RunSpec`).
``samples.jsonl``
    One line per kept draw and chain, appended and flushed after every sweep: chain,
    draw, decoded sequence, energy, Hamming distance to the start, and the fractions
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

This module drives the Pyro kernel itself (``setup`` then one ``sample`` per sweep,
as ``pyro.infer.MCMC`` does) because ``MCMC`` has no way to checkpoint a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyro
import pyro.util
import torch

from pyro_mlm.energy import MLMEnergy
from pyro_mlm.kernel import MaskedGibbs, MaskedMH, _SweepKernel
from pyro_mlm.models import MaskedLM
from pyro_mlm.run.progress import Progress
from pyro_mlm.run.report import RunResult, write_report
from pyro_mlm.run.spec import RunSpec, prepare
from pyro_mlm.run.store import (
    CHECKPOINT_FILE,
    SAMPLES_FILE,
    SPEC_FILE,
    load_checkpoint,
    save_checkpoint,
    truncate_draws,
    write_atomic,
)
from pyro_mlm.sites import fill_masked

_CHECKPOINT_KEYS = ("kernel", "rng", "initial_tokens")


class Interrupted(Exception):
    """Raised inside the sweep loop by SIGINT (Ctrl-C) or SIGTERM (``kill``)."""


def build_kernel(spec: RunSpec, mlm: MaskedLM) -> tuple[_SweepKernel, torch.Tensor]:
    """The kernel of ``spec`` and its starting tokens ``[C, L]`` (masks not yet filled)."""
    tokens, free = prepare(spec, mlm)
    energy = MLMEnergy(mlm, spec.energy, temperature=spec.temperature)  # type: ignore[arg-type]
    kernels: dict[str, type[_SweepKernel]] = {"mh": MaskedMH, "gibbs": MaskedGibbs}
    scan: Any = spec.scan
    kernel = kernels[spec.kernel](energy, free.to(mlm.device), scan, spec.proposal_temperature)
    return kernel, tokens.to(mlm.device)


def sample_to_directory(
    spec: RunSpec,
    mlm: MaskedLM,
    directory: str,
    *,
    resume: bool = False,
    progress: bool = True,
    on_sweep: Callable[[int], None] | None = None,
) -> RunResult:
    """Run ``spec`` into ``directory`` (a new one, or with ``resume`` the run it holds).

    ``on_sweep(k)`` is called after sweep ``k``'s draws are written and before its
    checkpoint is saved (the worst moment to be stopped; tests use it to interrupt).
    The directory is created only once the run is ready to start.
    """
    paths = {name: os.path.join(directory, name) for name in (SPEC_FILE, SAMPLES_FILE)}
    checkpoint_path = os.path.join(directory, CHECKPOINT_FILE)
    kernel, tokens = build_kernel(spec, mlm)
    free = kernel.free
    assert isinstance(free, torch.Tensor)
    saved = load_checkpoint(checkpoint_path, _CHECKPOINT_KEYS) if resume else None
    if saved is None:
        pyro.set_rng_seed(spec.seed)
        # mask tokens at free positions get a first value; at fixed positions a mask
        # is context ("unknown residue") and stays
        fill = (tokens == mlm.mask_token_id) & free
        start = fill_masked(kernel.energy.conditionals, tokens, fill, mlm.proposable_ids)
    else:
        start = _saved_start(saved, checkpoint_path, tokens).to(mlm.device)
    kernel.initial_params = {"tokens": start}
    kernel.setup(spec.warmup)
    if saved is None:
        os.makedirs(directory, exist_ok=True)
        write_atomic(paths[SPEC_FILE], spec.to_json().encode())
        open(paths[SAMPLES_FILE], "w").close()
        done = 0
        _save(checkpoint_path, kernel, start)
    else:
        done = _restore(kernel, saved, checkpoint_path)
        truncate_draws(paths[SAMPLES_FILE], max(done - spec.warmup, 0), spec.chains)
    total = spec.warmup + spec.samples
    began = time.perf_counter()
    completed = False
    guard = _StopGuard()
    try:
        with guard.installed(), open(paths[SAMPLES_FILE], "a", encoding="utf-8") as out:
            bar = Progress(total, done, enabled=progress, desc=mlm.name, unit="sweep")
            for sweep in range(done + 1, total + 1):
                kernel.sample({"tokens": kernel._current_tokens().cpu()})
                with guard:  # a stop request waits until the sweep is saved
                    if sweep > spec.warmup:
                        _write_draws(out, kernel, mlm, start, sweep - spec.warmup - 1)
                    if on_sweep is not None:
                        on_sweep(sweep)
                    _save(checkpoint_path, kernel, start)
                phase = "warmup" if sweep <= spec.warmup else "sample"
                bar.update(1, kernel.logging(), phase)
            bar.close()
        completed = True
    except (KeyboardInterrupt, Interrupted):
        pass
    seconds = time.perf_counter() - began
    diag = kernel.diagnostics()
    rates = (float(diag["acceptance rate"]), float(diag["novel acceptance rate"]))
    return write_report(directory, spec, mlm, free, completed, seconds, rates)


# ---------------------------------------------------------------- internals
def _write_draws(
    out: Any, kernel: _SweepKernel, mlm: MaskedLM, start: torch.Tensor, draw: int
) -> None:
    tokens = kernel._current_tokens().cpu()
    energy = kernel.current_energy.cpu()
    info = kernel.last_sweep
    assert info is not None
    hamming = (tokens != start.cpu()).sum(-1)
    lines = []
    for c in range(tokens.shape[0]):
        record = {
            "chain": c,
            "draw": draw,
            "sequence": mlm.decode(tokens[c]),
            "energy": float(energy[c]),
            "hamming": int(hamming[c]),
            "acceptance_rate": float(info.acceptance_rate[c]),
            "novel_rate": float(info.is_novel[c]),
            "accept_prob": float(info.accept_prob[c]),
            "tokens": tokens[c].tolist(),
        }
        lines.append(json.dumps(record) + "\n")
    out.write("".join(lines))
    out.flush()  # a killed process keeps what was flushed (no fsync: it costs more than a sweep)


def _save(path: str, kernel: _SweepKernel, start: torch.Tensor) -> None:
    state = {
        "kernel": kernel.state_dict(),
        "rng": pyro.util.get_rng_state(),
        "initial_tokens": start.cpu(),
    }
    save_checkpoint(path, state)


def _saved_start(saved: dict[str, Any], path: str, tokens: torch.Tensor) -> torch.Tensor:
    start = saved["initial_tokens"]
    if not isinstance(start, torch.Tensor) or start.shape != tokens.shape:
        raise ValueError(
            f"{path} is damaged or belongs to another run (its starting tokens have shape "
            f"{tuple(getattr(start, 'shape', ()))}, this run's {tuple(tokens.shape)}); start "
            "a new run with another --out"
        )
    return start


def _restore(kernel: _SweepKernel, saved: dict[str, Any], path: str) -> int:
    """Load the kernel state and RNG of a checkpoint; returns the sweeps done."""
    try:
        kernel.load_state_dict(saved["kernel"])
        pyro.util.set_rng_state(saved["rng"])
        return int(saved["kernel"]["sweep"])
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as err:
        raise ValueError(
            f"{path} is damaged (its kernel or RNG state is incomplete: "
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
