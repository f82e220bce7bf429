"""Run a sampler into a directory sweep by sweep, so that a run can stop and resume.

A run directory holds:

``run.json``
    The run's settings (:class:`RunSpec`).
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
    The report (ArviZ InferenceData, R-hat and ESS, plots), written at the end and
    when a run is interrupted.

This module drives the Pyro kernel itself (``setup`` then one ``sample`` per sweep,
as ``pyro.infer.MCMC`` does) because ``MCMC`` has no way to checkpoint a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import pyro.util
import torch

from pyro_mlm.diagnostics import inference_data_from_draws, plot_energy_trace, plot_rank, summary
from pyro_mlm.energy import MLMEnergy
from pyro_mlm.kernel import MaskedGibbs, MaskedMH, _SweepKernel
from pyro_mlm.models import MaskedLM
from pyro_mlm.sites import fill_masked, parse_free

SPEC_FILE, SAMPLES_FILE, CHECKPOINT_FILE = "run.json", "samples.jsonl", "checkpoint.pt"
REPORT_FILES = ("posterior.nc", "summary.csv", "trace.png", "rank.png")


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run (and so its draws, given the seed).

    ``sequences`` holds one starting text per chain; mask tokens in it at free
    positions are filled from the MLM's conditionals before the first sweep.
    ``free`` is read by :func:`pyro_mlm.sites.parse_free`.
    """

    model: str
    sequences: tuple[str, ...]
    free: str = "all"
    energy: str = "norm"
    kernel: str = "mh"
    warmup: int = 20
    samples: int = 100
    temperature: float = 1.0
    proposal_temperature: float = 1.0
    scan: str = "random"
    seed: int = 0

    @property
    def chains(self) -> int:
        return len(self.sequences)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["sequences"] = tuple(data["sequences"])
        return cls(**data)

    def differences(self, other: RunSpec) -> list[str]:
        """Fields that differ (``samples`` excluded: a run may be extended)."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return [k for k in mine if k != "samples" and mine[k] != theirs[k]]


@dataclass(frozen=True)
class RunResult:
    """What a finished or interrupted run produced."""

    directory: str
    draws: int
    completed: bool
    seconds: float
    acceptance_rate: float
    novel_rate: float
    summary: Any
    idata: Any


class Interrupted(Exception):
    """Raised inside the sweep loop by SIGINT (Ctrl-C) or SIGTERM (``kill``)."""


def build_kernel(spec: RunSpec, mlm: MaskedLM) -> tuple[_SweepKernel, torch.Tensor]:
    """The kernel of ``spec`` and its starting tokens ``[C, L]`` (masks not yet filled)."""
    if spec.chains < 1:
        raise ValueError("a run needs at least one chain (one starting sequence)")
    encoded = [mlm.encode(text) for text in spec.sequences]
    lengths = sorted({len(t) for t in encoded})
    if len(lengths) > 1:
        raise ValueError(
            f"the starting sequences encode to different lengths {lengths}; chains run "
            "side by side and need one length"
        )
    if mlm.max_length is not None and lengths[0] > mlm.max_length:
        raise ValueError(
            f"the sequence has {lengths[0]} tokens with its special tokens; {mlm.name} "
            f"takes at most {mlm.max_length}"
        )
    tokens = torch.stack(encoded).to(mlm.device)
    free = torch.stack([parse_free(spec.free, t.cpu(), mlm) for t in tokens]).to(mlm.device)
    energy = MLMEnergy(mlm, spec.energy, temperature=spec.temperature)  # type: ignore[arg-type]
    kernels: dict[str, type[_SweepKernel]] = {"mh": MaskedMH, "gibbs": MaskedGibbs}
    if spec.kernel not in kernels:
        raise ValueError(f"kernel must be 'mh' or 'gibbs', got {spec.kernel!r}")
    scan: Any = spec.scan
    kernel = kernels[spec.kernel](energy, free, scan, spec.proposal_temperature)
    return kernel, tokens


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
    """
    paths = {name: os.path.join(directory, name) for name in (SPEC_FILE, SAMPLES_FILE)}
    checkpoint_path = os.path.join(directory, CHECKPOINT_FILE)
    kernel, tokens = build_kernel(spec, mlm)
    free = kernel.free
    assert isinstance(free, torch.Tensor)
    saved = _load_checkpoint(checkpoint_path) if resume else None
    if saved is None:
        os.makedirs(directory, exist_ok=True)
        pyro.set_rng_seed(spec.seed)
        # mask tokens at free positions get a first value; at fixed positions a mask
        # is context ("unknown residue") and stays
        fill = (tokens == mlm.mask_token_id) & free
        start = fill_masked(kernel.energy.conditionals, tokens, fill, mlm.proposable_ids)
    else:
        start = saved["initial_tokens"].to(mlm.device)
    kernel.initial_params = {"tokens": start}
    kernel.setup(spec.warmup)
    if saved is None:
        _write_atomic(paths[SPEC_FILE], spec.to_json().encode())
        open(paths[SAMPLES_FILE], "w").close()
        done = 0
        _save_checkpoint(checkpoint_path, kernel, start)
    else:
        kernel.load_state_dict(saved["kernel"])
        pyro.util.set_rng_state(saved["rng"])
        done = int(saved["kernel"]["sweep"])
        _truncate_draws(paths[SAMPLES_FILE], max(done - spec.warmup, 0), spec.chains)
    total = spec.warmup + spec.samples
    began = time.perf_counter()
    completed = False
    guard = _StopGuard()
    try:
        with guard.installed(), open(paths[SAMPLES_FILE], "a", encoding="utf-8") as out:
            bar = _progress(total, done, progress, mlm.name)
            for sweep in range(done + 1, total + 1):
                kernel.sample({"tokens": kernel._current_tokens().cpu()})
                with guard:  # a stop request waits until the sweep is saved
                    if sweep > spec.warmup:
                        _write_draws(out, kernel, mlm, start, sweep - spec.warmup - 1)
                    if on_sweep is not None:
                        on_sweep(sweep)
                    _save_checkpoint(checkpoint_path, kernel, start)
                bar.set_postfix(kernel.logging(), refresh=False)
                bar.set_description("warmup" if sweep <= spec.warmup else "sample")
                bar.update(1)
            bar.close()
        completed = True
    except (KeyboardInterrupt, Interrupted):
        pass
    seconds = time.perf_counter() - began
    return write_report(directory, spec, mlm, kernel, completed, seconds)


def write_report(
    directory: str,
    spec: RunSpec,
    mlm: MaskedLM,
    kernel: _SweepKernel,
    completed: bool,
    seconds: float,
) -> RunResult:
    """Write posterior.nc, summary.csv, trace.png and rank.png from ``samples.jsonl``."""
    data = read_draws(os.path.join(directory, SAMPLES_FILE), spec.chains)
    draws = 0 if data is None else data["energy"].shape[1]
    table = idata = None
    if data is not None:
        data["lp"] = -data["energy"] / spec.temperature
        idata = inference_data_from_draws(data)
        idata.to_netcdf(os.path.join(directory, "posterior.nc"))
        table = summary(idata)
        table.to_csv(os.path.join(directory, "summary.csv"))
        plot_energy_trace(idata, os.path.join(directory, "trace.png"))
        if draws >= 2:
            plot_rank(idata, os.path.join(directory, "rank.png"))
    diag = kernel.diagnostics()
    return RunResult(
        directory=directory,
        draws=draws,
        completed=completed,
        seconds=seconds,
        acceptance_rate=float(diag["acceptance rate"]),
        novel_rate=float(diag["novel acceptance rate"]),
        summary=table,
        idata=idata,
    )


def read_draws(path: str, chains: int) -> dict[str, np.ndarray] | None:
    """Arrays ``[chain, draw, ...]`` from ``samples.jsonl`` (None when it has no draw)."""
    rows: dict[int, list[dict[str, Any]]] = {c: [] for c in range(chains)}
    for record in _complete_lines(path):
        rows[int(record["chain"])].append(record)
    draws = min(len(r) for r in rows.values())
    if draws == 0:
        return None
    ordered = [sorted(r, key=lambda x: x["draw"])[:draws] for _, r in sorted(rows.items())]

    def field(name: str, dtype: Any = np.float64) -> np.ndarray:
        return np.array([[x[name] for x in chain] for chain in ordered], dtype=dtype)

    return {
        "tokens": field("tokens", np.int64),
        "energy": field("energy"),
        "hamming": field("hamming"),
        "acceptance_rate": field("acceptance_rate"),
        "is_novel": field("novel_rate"),
        "accept_prob": field("accept_prob"),
    }


# ---------------------------------------------------------------- internals
def _write_draws(
    out: Any, kernel: _SweepKernel, mlm: MaskedLM, start: torch.Tensor, draw: int
) -> None:
    tokens = kernel._current_tokens().cpu()
    energy = kernel.current_energy.cpu()
    info = kernel.last_sweep
    assert info is not None
    hamming = (tokens != start.cpu()).sum(-1)
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
        out.write(json.dumps(record) + "\n")
    out.flush()  # a killed process keeps what was flushed (no fsync: it costs more than a sweep)


def _complete_lines(path: str) -> Iterator[dict[str, Any]]:
    """Records of the complete JSON lines of ``path`` (a torn last line is skipped)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return


def _truncate_draws(path: str, draws: int, chains: int) -> None:
    """Keep the first ``draws`` draws of every chain (drop lines past the checkpoint)."""
    kept = [r for r in _complete_lines(path) if int(r["draw"]) < draws]
    per_chain = [sum(1 for r in kept if r["chain"] == c) for c in range(chains)]
    if any(n != draws for n in per_chain):
        raise ValueError(
            f"{path} holds {per_chain} draws per chain but the checkpoint is at {draws}; "
            "the run directory was changed by hand and cannot be resumed"
        )
    _write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept).encode())


def _save_checkpoint(path: str, kernel: _SweepKernel, start: torch.Tensor) -> None:
    state = {
        "kernel": kernel.state_dict(),
        "rng": pyro.util.get_rng_state(),
        "initial_tokens": start.cpu(),
    }
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise ValueError(f"{path} does not exist: the directory holds no resumable run")
    return dict(torch.load(path, map_location="cpu", weights_only=False))


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


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


def _progress(total: int, done: int, enabled: bool, name: str) -> Any:
    from tqdm.auto import tqdm

    disable = (not enabled) or bool(os.environ.get("CI")) or None
    return tqdm(total=total, initial=done, disable=disable, unit="sweep", desc=name)
