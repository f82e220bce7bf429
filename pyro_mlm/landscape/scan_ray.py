"""A scan on Ray (``pyro-mlm scan --backend ray --workers N``): a pool of model actors, each
a :class:`~pyro_mlm.landscape.scan_run.Scanner` with one model copy and ``threads`` torch
threads, computes whole positions; the blocks come back in input order and are appended to
``scan.partial.csv`` by this process as they arrive, so a killed Ray scan resumes like a
local one."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

from pyro_mlm.landscape.scan_run import Scanner, ScanSpec, Site


class ScanActor:
    """A model actor: the scan's :class:`Scanner` over a worker's own model copy."""

    def __init__(self, spec: ScanSpec, threads: int = 1) -> None:
        from pyro_mlm.models.load import load_worker_model

        self.scanner = Scanner(spec, load_worker_model(spec.model, "cpu", threads))

    def rows(self, site: Site) -> list[dict[str, Any]]:
        return self.scanner.rows(site)


def blocks_ray(
    spec: ScanSpec,
    todo: list[Site],
    *,
    workers: int = 1,
    threads: int = 1,
    address: str | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The blocks of ``todo`` from ``workers`` actors, in order (Ray started here is shut
    down when the iteration ends, also on an error or an interrupt)."""
    from dataclasses import replace

    from pyro_mlm.run.ray_backend import end_session, model_path, ray_session, restartable

    ray, started = ray_session(address)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from ray.util import ActorPool

            remote = restartable(ray, ScanActor, threads, 0.0)
            worker_spec = replace(spec, model=model_path(spec.model))
            actors = [remote.remote(worker_spec, threads) for _ in range(min(workers, len(todo)))]
            pool = ActorPool(actors)
            yield from pool.map(lambda actor, site: actor.rows.remote(site), todo)
    finally:
        if started:
            end_session(ray)
