"""Campaigns: many starting sequences, each its own run, across workers, with one table.

``pyro-mlm sample --campaign --sequences-file starts.fasta --chains 4 --out DIR`` makes
one ordinary run directory per start, ``DIR/runs/K/`` (``--chains`` chains from that start,
seeded from ``--seed`` and ``K``), runs them one after another here or on a pool of Ray
actors (``--backend ray --workers N``), and writes ``DIR/campaign.csv``: per start, its
draws, mean energy, R-hat and bulk ESS of the energy, distinct designs and the most
frequent design. Every job checkpoints like any run, so ``--resume DIR`` skips finished
jobs and continues the others from their last saved sweep.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from pyro_mlm.run.artifacts import SPEC_FILE
from pyro_mlm.run.shards import shard_seed
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.run.store import write_atomic

RUNS_DIR = "runs"
TABLE = "campaign.csv"


def job_specs(spec: RunSpec) -> list[RunSpec]:
    """One spec per start: ``spec.sequences`` holds the starts and
    ``spec.chains_per_start`` the chains of each job."""
    return [
        spec.replace(
            sequences=(start,) * spec.chains_per_start,
            seed=shard_seed(spec.seed, k),
            chains_per_start=0,
            resolved_free={},  # each job resolves --free in its own start
            names=(),
        )
        for k, start in enumerate(spec.sequences)
    ]


class Job:
    """Runs one campaign job to the end and summarises it (here, or as a Ray actor)."""

    def __init__(self, model: str, device: str = "cpu", threads: int | None = None) -> None:
        from pyro_mlm.models.load import load_worker_model

        self.mlm = load_worker_model(model, device, threads)

    def run(self, spec: RunSpec, directory: str) -> dict[str, Any]:
        from pyro_mlm.report.diagnostics import MIN_DRAWS
        from pyro_mlm.run.artifacts import CHECKPOINT_FILE
        from pyro_mlm.run.loop import sample_to_directory

        resume = os.path.exists(os.path.join(directory, CHECKPOINT_FILE))
        result = sample_to_directory(spec, self.mlm, directory, resume=resume, progress=False)
        if not result.completed:
            raise KeyboardInterrupt
        row: dict[str, Any] = {"draws": result.draws}
        if result.summary is not None and result.draws >= MIN_DRAWS:
            row["mean_energy"] = float(result.summary.loc["energy", "mean"])
            row["r_hat_energy"] = float(result.summary.loc["energy", "r_hat"])
            row["ess_bulk_energy"] = float(result.summary.loc["energy", "ess_bulk"])
        if result.designs:
            top = result.designs[0]
            row.update(
                distinct_designs=len(result.designs),
                top_design=top.free_region,
                top_frequency=round(top.frequency, 4),
                top_energy=round(top.energy, 4),
            )
        return row


def run_campaign(
    spec: RunSpec,
    directory: str,
    submit: Callable[[list[tuple[RunSpec, str]]], list[dict[str, Any]]],
    *,
    resume: bool = False,
) -> list[dict[str, Any]]:
    """Run every job (``submit`` runs a list of ``(spec, directory)`` and returns their
    summary rows in order); writes and returns the campaign table."""
    if not resume:
        os.makedirs(directory, exist_ok=True)
        write_atomic(os.path.join(directory, SPEC_FILE), spec.to_json().encode())
    jobs = [
        (job, os.path.join(directory, RUNS_DIR, str(k))) for k, job in enumerate(job_specs(spec))
    ]
    began = time.perf_counter()
    rows = submit(jobs)
    table = []
    for k, ((job, folder), row) in enumerate(zip(jobs, rows, strict=True)):
        name = spec.names[k] if k < len(spec.names) else f"start{k + 1}"
        table.append(
            {"job": k, "name": name, "directory": folder, "start": job.sequences[0], **row}
        )
    write_table(os.path.join(directory, TABLE), table)
    print(f"campaign: {len(jobs)} jobs in {time.perf_counter() - began:.0f}s", file=sys.stderr)
    return table


def write_table(path: str, table: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in table:
        columns.extend(k for k in row if k not in columns)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.DictWriter(handle, fieldnames=columns)
        out.writeheader()
        out.writerows(table)


def local_submit(model: str, threads: int | None = None) -> Callable[..., list[dict[str, Any]]]:
    """Jobs one after another in this process, one model load for all."""
    job: list[Job] = []

    def submit(jobs: list[tuple[RunSpec, str]]) -> list[dict[str, Any]]:
        if not job:
            job.append(Job(model, threads=threads))
        rows = []
        for k, (spec, folder) in enumerate(jobs, 1):
            rows.append(job[0].run(spec, folder))
            print(f"campaign: job {k}/{len(jobs)} done", file=sys.stderr, flush=True)
        return rows

    return submit


def ray_submit(
    model: str, workers: int, address: str | None, threads: int = 1, gpus: float = 0.0
) -> tuple[Callable[..., list[dict[str, Any]]], Callable[[], None]]:
    """Jobs spread over ``workers`` Ray actors (``ray.util.ActorPool``); a killed actor is
    restarted and its job retried, resuming from the job's checkpoint."""
    from pyro_mlm.run.ray_backend import end_session, model_path, ray_session, restartable

    ray, started = ray_session(address)
    from ray.util import ActorPool

    path = model_path(model)
    actor = restartable(ray, Job, threads, gpus)
    actors = [actor.remote(path, "cuda" if gpus else "cpu", threads) for _ in range(workers)]

    def submit(jobs: list[tuple[RunSpec, str]]) -> list[dict[str, Any]]:
        pool = ActorPool(actors)
        work = [(spec, os.path.abspath(folder)) for spec, folder in jobs]
        rows = []
        for k, row in enumerate(pool.map(lambda a, job: a.run.remote(*job), work), 1):
            rows.append(row)
            print(f"campaign: job {k}/{len(jobs)} done", file=sys.stderr, flush=True)
        return rows

    def close() -> None:
        for a in actors:
            ray.kill(a, no_restart=True)
        if started:
            end_session(ray)

    return submit, close
