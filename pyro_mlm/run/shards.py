"""Sharded runs: a run's chains split into shards that run apart and merge draw by draw.

A sharded run directory (``RunSpec.shards > 1``) holds, besides the run's own
``run.json``, ``samples.jsonl`` and report, one ordinary run directory per shard under
``shards/K/`` (its ``run.json``, ``samples.jsonl`` and ``checkpoint.pt``). Shard ``K``
holds a contiguous block of the chains and its own generator, seeded from the run's seed
and ``K``; so a shard's draws do not depend on where or when it runs, and the merged
``samples.jsonl`` (chain ids made global, draws in order ``draw, shard, chain``) is the
same byte for byte whether the shards ran one after another in this process
(``backend="local"``) or in Ray actors (:mod:`pyro_mlm.run.ray_backend`), with or without
a worker killed on the way: a shard resumes from its checkpoint and re-serves the draws
it had written.

The driver advances every shard to the next chunk of draws, then appends the chunk to the
merged file; a driver killed at any moment resumes (``--resume DIR``) from the draws that
file holds complete.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pyro_mlm.run.artifacts import CHECKPOINT_FILE, SAMPLES_FILE, SPEC_FILE
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.run.store import write_atomic

if TYPE_CHECKING:
    from pyro_mlm.run.finish import RunResult

SHARDS_DIR = "shards"
DEFAULT_CHUNK = 10  # draws each shard runs before the driver merges them


def shard_seed(seed: int, shard: int) -> int:
    """The seed of shard ``shard`` of a run seeded ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, shard]).generate_state(1)[0])


def shard_specs(spec: RunSpec) -> list[RunSpec]:
    """The shards' own specs: contiguous blocks of chains, as equal as possible."""
    if spec.shards > spec.chains:
        raise ValueError(
            f"{spec.shards} shards for {spec.chains} chains; give at most one shard per chain"
        )
    bounds = np.linspace(0, spec.chains, spec.shards + 1).round().astype(int)
    return [
        spec.replace(
            sequences=spec.sequences[lo:hi],
            seed=shard_seed(spec.seed, k),
            shards=1,
            resolved_free={},  # each shard resolves --free in its own first chain
            context=spec.context or spec.sequences[0],  # experts: the run's, not the shard's
        )
        for k, (lo, hi) in enumerate(itertools.pairwise(bounds))
    ]


class Shard:
    """One shard's sampler: owns its model copy, generator and checkpoint.

    The same class runs in this process or as a Ray actor. ``advance(n)`` runs the shard
    until it has ``n`` kept draws (resuming from its checkpoint, so a restarted worker
    continues where the last one saved); ``lines(first)`` returns its ``samples.jsonl``
    lines from draw ``first`` on.
    """

    def __init__(
        self, spec: RunSpec, directory: str, device: str = "cpu", threads: int | None = None
    ) -> None:
        from pyro_mlm.models.load import load_worker_model

        self.spec, self.directory = spec, directory
        self.mlm = load_worker_model(spec.model, device, threads)
        self._next = (-1, 0)  # (draw, byte offset) where the last lines() call stopped

    def advance(self, draws: int) -> int:
        """Run until ``draws`` kept draws exist; returns the draws the shard holds."""
        from pyro_mlm.run.loop import sample_to_directory

        resume = os.path.exists(os.path.join(self.directory, CHECKPOINT_FILE))
        result = sample_to_directory(
            self.spec.replace(samples=draws), self.mlm, self.directory,
            resume=resume, progress=False, report=False,
        )  # fmt: skip
        if not result.completed:
            raise KeyboardInterrupt
        return result.draws

    def lines(self, first: int, last: int) -> list[str]:
        """The shard's draw lines of draws ``first .. last - 1`` (all its chains).

        The driver asks for consecutive chunks, so the byte offset where the last call
        stopped is kept and the next call starts there (checked: its line must be draw
        ``first``), instead of re-reading the whole file each chunk.
        """
        offset = self._next[1] if self._next[0] == first else 0
        check = offset > 0  # a resumed read must start at draw ``first``
        out: list[str] = []
        with open(os.path.join(self.directory, SAMPLES_FILE), "rb") as handle:
            handle.seek(offset)
            while True:
                raw = handle.readline()
                if not raw.endswith(b"\n"):
                    break
                draw = json.loads(raw)["draw"]
                if check and draw != first:  # the file changed under us: read it all
                    self._next = (-1, 0)
                    return self.lines(first, last)
                check = False
                if draw >= last:
                    break
                if draw >= first:
                    out.append(raw.decode("utf-8"))
                offset += len(raw)
        self._next = (last, offset)
        return out

    def initial_tokens(self) -> Any:
        """The shard's starting tokens (after mask filling), from its checkpoint."""
        from pyro_mlm.run.store import CHECKPOINT_KEYS, load_checkpoint

        saved = load_checkpoint(os.path.join(self.directory, CHECKPOINT_FILE), CHECKPOINT_KEYS)
        assert saved is not None
        return saved["initial_tokens"].cpu()

    def pid(self) -> int:
        return os.getpid()


Factory = Callable[[int, RunSpec, str], Any]  # (shard id, shard spec, directory) -> runner


def run_sharded(
    spec: RunSpec,
    directory: str,
    factory: Factory,
    call: Callable[[list[Any], str, tuple[Any, ...]], list[Any]],
    *,
    resume: bool = False,
    progress: bool = True,
    chunk: int | None = None,
    timings: dict[str, float] | None = None,
) -> RunResult:
    """Run (or resume) a sharded run; returns its report.

    ``factory`` builds each shard's runner (a :class:`Shard`, or a Ray actor handle);
    ``call(runners, method, args)`` calls ``method(*args)`` on every runner and returns
    their results in order (in turn here; in parallel on Ray).
    """
    specs = shard_specs(spec)
    folders = [os.path.join(directory, SHARDS_DIR, str(k)) for k in range(len(specs))]
    merged = os.path.join(directory, SAMPLES_FILE)
    if not resume:
        os.makedirs(directory, exist_ok=True)
        write_atomic(os.path.join(directory, SPEC_FILE), spec.to_json().encode())
        open(merged, "w").close()
    done = _complete_draws(merged, spec.chains)
    chunk = chunk or DEFAULT_CHUNK
    runners = [factory(k, s, f) for k, (s, f) in enumerate(zip(specs, folders, strict=True))]
    offsets = np.cumsum([0] + [s.chains for s in specs]).tolist()
    began = time.perf_counter()
    completed = False
    totals: dict[str, float] = {}
    from pyro_mlm.run.progress import Progress

    bar = Progress(
        spec.samples, done, enabled=progress, desc=f"{spec.model} ({len(specs)} shards)",
        unit="draw",
    )  # fmt: skip
    try:
        while done < spec.samples:
            target = min(done + chunk, spec.samples)
            tick = time.perf_counter()
            call(runners, "advance", (target,))
            tock = time.perf_counter()
            chunks = call(runners, "lines", (done, target))
            with open(merged, "a", encoding="utf-8") as out:
                out.write(_merge(chunks, offsets, done, target))
            bar.update(target - done, _rates(chunks, totals), "sample")
            done = target
            if timings is not None:  # sampling, and the driver's fetch, merge and write
                timings["advance"] = timings.get("advance", 0.0) + tock - tick
                timings["merge"] = timings.get("merge", 0.0) + time.perf_counter() - tock
        bar.close()
        completed = True
    except KeyboardInterrupt:
        pass
    return _report(spec, directory, runners, call, completed, time.perf_counter() - began)


def _rates(chunks: Sequence[list[str]], totals: dict[str, float]) -> dict[str, str]:
    """Acceptance and novel rates of this session's draws so far, over every shard, for the
    progress line (summary.csv's names; ``totals`` is added to)."""
    for lines in chunks:
        for line in lines:
            record = json.loads(line)
            totals["sweeps"] = totals.get("sweeps", 0.0) + 1
            for name in ("acceptance_rate", "novel_rate"):
                totals[name] = totals.get(name, 0.0) + record[name]
    n = max(totals.get("sweeps", 0.0), 1.0)
    return {name: f"{totals.get(name, 0.0) / n:.3f}" for name in ("acceptance_rate", "novel_rate")}


def _merge(chunks: Sequence[list[str]], offsets: list[int], first: int, last: int) -> str:
    """Lines of draws ``first .. last - 1`` of every shard, with global chain ids."""
    by_draw: dict[int, list[str]] = {d: [] for d in range(first, last)}
    for shard, lines in enumerate(chunks):
        for line in lines:
            record = json.loads(line)
            record["chain"] += offsets[shard]
            by_draw[record["draw"]].append(json.dumps(record) + "\n")
    expected = offsets[-1]
    for draw, lines in by_draw.items():
        if len(lines) != expected:
            raise RuntimeError(f"draw {draw}: the shards returned {len(lines)} of {expected} lines")
    return "".join(line for d in range(first, last) for line in by_draw[d])


def _complete_draws(path: str, chains: int) -> int:
    """Draws every chain has in the merged file; a partial last draw is cut off."""
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as handle:
        lines = [line for line in handle if line.endswith("\n")]
    complete = len(lines) // chains
    if len(lines) != complete * chains:
        write_atomic(path, "".join(lines[: complete * chains]).encode())
    return complete


def _report(
    spec: RunSpec,
    directory: str,
    runners: list[Any],
    call: Callable[[list[Any], str, tuple[Any, ...]], list[Any]],
    completed: bool,
    seconds: float,
) -> RunResult:
    import torch

    from pyro_mlm.models.load import load_vocabulary
    from pyro_mlm.run.finish import write_report
    from pyro_mlm.run.prepare import build_experts, prepare
    from pyro_mlm.run.store import iter_records

    vocab = load_vocabulary(spec.model)
    tokens, free = prepare(spec, vocab)
    start = torch.cat(call(runners, "initial_tokens", ()))
    records = list(iter_records(os.path.join(directory, SAMPLES_FILE), spec.chains))
    n = max(len(records), 1)
    rates = (
        sum(r["acceptance_rate"] for r in records) / n,
        sum(r["novel_rate"] for r in records) / n,
    )
    experts = build_experts(spec, vocab, tokens, free, weights=False)
    return write_report(
        directory, spec, vocab, free, completed, seconds, rates, None,
        start=start, experts=experts,
    )  # fmt: skip


def local_backend(
    threads: int = 1,
) -> tuple[Factory, Callable[[list[Any], str, tuple[Any, ...]], list[Any]]]:
    """Shards run one after another in this process (the reference for any backend), with
    ``threads`` torch threads like a worker's, so that the floats agree to the last bit."""

    def factory(shard: int, spec: RunSpec, folder: str) -> Shard:
        return Shard(spec, folder, threads=threads)

    def call(runners: list[Any], method: str, args: tuple[Any, ...]) -> list[Any]:
        return [getattr(r, method)(*args) for r in runners]

    return factory, call
