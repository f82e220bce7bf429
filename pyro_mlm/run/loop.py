"""Run a sampler into a directory sweep by sweep, so that a run can stop and resume.

The directory's files are listed in :mod:`pyro_mlm.run.artifacts`. As it goes, the loop
writes ``run.json`` (the :class:`~pyro_mlm.run.spec.RunSpec`), appends one draw line per
chain to ``samples.jsonl`` after every kept sweep (:mod:`pyro_mlm.run.records`) and
replaces ``checkpoint.pt`` atomically after every sweep. A run stopped at any moment
(Ctrl-C, ``kill``, even ``kill -9``) resumes from the latest checkpoint; draw lines written
after it are dropped on resume, so the resumed run has exactly the draws of an
uninterrupted one with the same seed. The report files are written at the end and when a
run is interrupted (:mod:`pyro_mlm.run.finish`).

This module adds files, signals and progress to the one chain driver,
:class:`~pyro_mlm.samplers.chain.Chain`, whose generator is seeded from the run's seed:
the checkpoint is :meth:`Chain.state_dict` (the sampler state's fields, the generator's
state, the sweep and the counters) plus the starting tokens, whatever the sampler.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from pyro_mlm.design.sites import fill_masked
from pyro_mlm.energy import MLMEnergy
from pyro_mlm.models.mlm import MaskedLM
from pyro_mlm.region.prior import length_prior
from pyro_mlm.run.artifacts import CHECKPOINT_FILE, SAMPLES_FILE, SPEC_FILE
from pyro_mlm.run.finish import RunResult, write_report
from pyro_mlm.run.prepare import Prepared, build_experts, prepare, with_resolved_free
from pyro_mlm.run.progress import Progress
from pyro_mlm.run.recorded import check_recorded_inputs, record_inputs
from pyro_mlm.run.records import draw_record
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.run.stop_guard import Interrupted, StopGuard
from pyro_mlm.run.store import (
    CHECKPOINT_KEYS,
    load_checkpoint,
    read_draws,
    save_checkpoint,
    truncate_draws,
    write_atomic,
)
from pyro_mlm.run.until import ConvergenceWatch
from pyro_mlm.samplers import SweepInfo, SweepSampler
from pyro_mlm.samplers.builder import assemble
from pyro_mlm.samplers.chain import Chain
from pyro_mlm.target import Target


def build(
    spec: RunSpec, mlm: MaskedLM, prepared: Prepared | None = None
) -> tuple[SweepSampler, torch.Tensor]:
    """The sampler of ``spec`` (:func:`~pyro_mlm.samplers.builder.assemble`) and its starting
    tokens ``[C, L]``, from the command's ``prepared`` start (prepared here when None)."""
    tokens, free = prepare(spec, mlm) if prepared is None else prepared
    tokens, free = tokens.to(mlm.device), free.to(mlm.device)
    energy = MLMEnergy(mlm, spec.energy, temperature=spec.temperature)  # type: ignore[arg-type]
    experts = build_experts(spec, mlm, tokens, free, weights=True)
    lengths = spec.length_range
    recorded = dict(spec.length_weights) if spec.length_weights else None
    sampler = assemble(
        spec.kernel, Target(energy, experts, over=spec.energy_over), free, spec.options,
        scan=spec.scan,  # type: ignore[arg-type]
        proposal_temperature=spec.proposal_temperature, lengths=lengths,
        length_prior=length_prior(spec.length_prior, lengths, recorded) if lengths else "uniform",
        length_moves=spec.length_moves or None,
    )  # fmt: skip
    return sampler, tokens


def sample_to_directory(
    spec: RunSpec,
    mlm: MaskedLM,
    directory: str,
    *,
    resume: bool = False,
    progress: bool = True,
    on_sweep: Callable[[int], None] | None = None,
    report: bool = True,
    prepared: Prepared | None = None,
) -> RunResult:
    """Run ``spec`` into ``directory`` (a new one, or with ``resume`` the run it holds).

    ``on_sweep(k)`` is called after sweep ``k``'s draws are written and before its
    checkpoint is saved (the worst moment to be stopped; tests use it to interrupt).
    The directory is created only once the run is ready to start. ``report=False``
    skips the report files (a shard of a sharded run: the driver writes one report).
    ``prepared`` is the command's checked start (:func:`~pyro_mlm.run.prepare.prepare`),
    prepared here when None.
    """
    paths = {name: os.path.join(directory, name) for name in (SPEC_FILE, SAMPLES_FILE)}
    checkpoint_path = os.path.join(directory, CHECKPOINT_FILE)
    if resume and os.path.isfile(paths[SPEC_FILE]):  # the law the run started with
        recorded = RunSpec.read(paths[SPEC_FILE]).length_weights
        spec = spec.replace(length_weights=recorded or spec.length_weights)
        check_recorded_inputs(spec)
    elif not resume:
        spec = record_inputs(spec)
    sampler, tokens = build(spec, mlm, prepared)
    free = sampler.sites.mask
    saved = load_checkpoint(checkpoint_path, CHECKPOINT_KEYS) if resume else None
    if saved is None:
        start_of = Prepared(tokens.cpu(), free.cpu())  # what --free resolved to, in run.json
        spec = with_resolved_free(spec, mlm, start_of)
        generator = torch.Generator(device=mlm.device).manual_seed(spec.seed)
        # mask tokens at free positions get a first value; at fixed positions a mask
        # is context ("unknown residue") and stays
        fill = (tokens == mlm.mask_token_id) & free
        conditionals = sampler.target.conditionals
        start = fill_masked(conditionals, tokens, fill, mlm.proposable_ids, generator)
        chain = Chain.start(sampler, start, warmup=spec.warmup, generator=generator)
        os.makedirs(directory, exist_ok=True)
        write_atomic(paths[SPEC_FILE], spec.to_json().encode())
        open(paths[SAMPLES_FILE], "w").close()
        _save(checkpoint_path, chain, start)
    else:
        start = _saved_start(saved, checkpoint_path, tokens).to(mlm.device)
        chain = _restore(sampler, saved, checkpoint_path, start, spec.warmup)
        truncate_draws(paths[SAMPLES_FILE], max(chain.sweep - spec.warmup, 0), spec.chains)
    start_energy = _start_energy(sampler, tokens, start, free, spec)
    cap = spec.warmup + spec.samples if spec.samples or not spec.until_converged else None
    watch = _watch(spec, paths[SAMPLES_FILE], chain) if spec.until_converged else None
    began = time.perf_counter()
    deadline = began + 60.0 * spec.max_minutes if spec.max_minutes else None
    completed = False
    stopped = ""  # why a run ended before its cap: "converged" or "budget"
    guard = StopGuard()
    reached = chain.sweep
    try:
        with guard.installed(), open(paths[SAMPLES_FILE], "a", encoding="utf-8") as out:
            bar = Progress(cap, chain.sweep, enabled=progress, desc=mlm.name, unit="sweep")
            if watch is not None and watch.due() and watch.check().converged:
                stopped = "converged"  # a resumed run that had converged when it stopped
            while not stopped:
                if cap is not None and chain.sweep >= cap:
                    break
                if deadline is not None and time.perf_counter() >= deadline:
                    stopped = "budget"
                    break
                info = chain.step()
                sweep = chain.sweep
                with guard:  # a stop request waits until the sweep is saved
                    if sweep > spec.warmup:  # (wall times are not in the draws: they replay)
                        records = _write_draws(
                            out, chain, info, mlm, start, sweep - spec.warmup - 1
                        )
                        if watch is not None:
                            watch.add(_judged_values(records, watch.names))
                    if on_sweep is not None:
                        on_sweep(sweep)
                    _save(checkpoint_path, chain, start)
                    reached = sweep
                phase = "warmup" if sweep <= spec.warmup else "sample"
                stats = chain.progress(info)
                if watch is not None:
                    if watch.due() and watch.check().converged:
                        stopped = "converged"
                    if watch.last is not None:
                        stats = {**stats, **watch.last.progress()}
                bar.update(1, stats, phase)
            bar.close()
        completed = True
    except (KeyboardInterrupt, Interrupted):
        pass
    seconds = time.perf_counter() - began
    rates = chain.rates()
    sampling = float(chain.counts["seconds"])
    if not report:
        draws = max(reached - spec.warmup, 0)
        return RunResult(directory, draws, completed, seconds, *rates, None, None, sampling)
    result = write_report(
        directory, spec, mlm, free, completed, seconds, rates, sampling,
        start=start, experts=sampler.target.experts,
    )  # fmt: skip
    checks = watch.check_seconds if watch is not None else 0.0
    return dataclasses.replace(
        result, start_energy=start_energy, stopped=stopped, check_seconds=checks
    )


def _start_energy(
    sampler: SweepSampler,
    given: torch.Tensor,
    start: torch.Tensor,
    free: torch.Tensor,
    spec: RunSpec,
) -> float | None:
    """Chain 0's start's energy over the run's region (what ``score --free`` prints for the
    MLM term), said on stderr; None where the start was filled from mask tokens."""
    if not torch.equal(given[:1].cpu(), start[:1].cpu()):
        return None
    with torch.no_grad():
        value = float(sampler.target(start[:1], free[:1])[0])
    experts = ", experts included" if sampler.target.experts else ""
    print(
        f"start (chain 0): energy {value:.2f} over {int(free[0].sum())} positions "
        f"({spec.energy}, --energy-over {spec.energy_over}{experts}): the designs' energies "
        "are on this scale",
        file=sys.stderr,
    )
    return value


# ---------------------------------------------------------------- internals
def _watch(spec: RunSpec, path: str, chain: Chain) -> ConvergenceWatch:
    """The stop rule's record of the judged summaries, holding the draws already written."""
    names = ("energy", "hamming") + (("length",) if spec.lengths else ())
    written = read_draws(path, spec.chains) if chain.sweep > spec.warmup else None
    return ConvergenceWatch(spec.warmup, spec.chains, names, written)


def _judged_values(records: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    """One sweep's judged summaries per chain, from its draw records (the fields
    :func:`~pyro_mlm.run.store.read_draws` reads back: ``length`` is the sweep info's)."""
    return {name: [r[name] for r in records] for name in names}


def _write_draws(
    out: Any, chain: Chain, info: SweepInfo, mlm: MaskedLM, start: torch.Tensor, draw: int
) -> list[dict[str, Any]]:
    tokens = chain.tokens.cpu()
    energy = chain.energy.cpu()
    distance = chain.sampler.distance(tokens, start[:1].cpu())  # one reference for every
    # chain (Hamming; the edit distance of a region whose length varies): R-hat compares
    # one function across chains (each chain's own start differs where starts are filled)
    records = [
        draw_record(
            c,
            draw,
            mlm.decode(tokens[c]),
            float(energy[c]),
            int(distance[c]),
            info,
            tokens[c].tolist(),
        )
        for c in range(tokens.shape[0])
    ]
    out.write("".join(json.dumps(record) + "\n" for record in records))
    out.flush()  # a killed process keeps what was flushed (no fsync: it costs more than a sweep)
    return records


def _save(path: str, chain: Chain, start: torch.Tensor) -> None:
    save_checkpoint(path, {**chain.state_dict(), "initial_tokens": start.cpu()})


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
    sampler: SweepSampler, saved: dict[str, Any], path: str, start: torch.Tensor, warmup: int
) -> Chain:
    """The chains of a checkpoint (state, generator, sweeps done, counters)."""
    try:
        chain = Chain.from_state_dict(sampler, saved, warmup=warmup, device=start.device)
        if chain.tokens.shape != start.shape:
            raise ValueError(f"chains of shape {tuple(chain.tokens.shape)}")
        return chain
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError, ValueError) as err:
        raise ValueError(
            f"{path} is damaged (its sampler or generator state is unusable: "
            f"{type(err).__name__} {err}); the draws in samples.jsonl up to the last saved "
            "sweep are intact; start a new run with another --out"
        ) from err
