"""Shards on Ray: one actor per shard, restarted (and its work retried) when it dies.

Each actor is a :class:`pyro_mlm.run.shards.Shard`: it loads its own model copy, sets its
own thread count (one by default: several processes sharing cores run 3-10x slower with
more) and checkpoints under the run directory, so a restarted actor resumes from its
last saved sweep and serves the same draws again. Ray is an optional extra
(``pip install "pyro-mlm[ray]"``). ``address=None`` starts a local instance; otherwise
the driver joins that cluster, whose workers must have pyro_mlm installed and see the run
directory (a shared filesystem) at the same path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pyro_mlm.run.spec import RunSpec

INSTALL = "pip install 'pyro-mlm[ray]' (or pip install 'ray>=2.9')"


def import_ray() -> Any:
    """The ``ray`` module, or a ValueError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(f"--backend ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def ray_session(address: str | None) -> tuple[Any, bool]:
    """``ray``, initialised (joining ``address``, or a local instance), and whether this
    call started it (then the caller shuts it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        options["address"] = address
    _HANDLERS.update(saved_handlers())
    ray.init(**options)
    return ray, True


def end_session(ray: Any) -> None:
    """Shut down the Ray instance :func:`ray_session` started, and put back the SIGINT and
    SIGTERM handlers that ``ray.init`` replaced (it leaves its own SIGTERM handler, which
    would turn a later ``kill`` of this process, a test run say, into a ``SystemExit``
    inside whatever code is running)."""
    ray.shutdown()
    restore_handlers(_HANDLERS)
    _HANDLERS.clear()


_HANDLERS: dict[int, Any] = {}


def saved_handlers() -> dict[int, Any]:
    """The current SIGINT and SIGTERM handlers (main thread only; elsewhere none)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {int(s): signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}


def restore_handlers(handlers: dict[int, Any]) -> None:
    import signal

    for number, handler in handlers.items():
        if handler is not None:
            signal.signal(number, handler)


def model_path(model: str) -> str:
    """A model directory as an absolute path (workers run elsewhere); names unchanged."""
    return os.path.abspath(model) if os.path.exists(model) else model


def restartable(ray: Any, cls: type, threads: int, gpus: float) -> Any:
    """``cls`` as a Ray actor class that Ray restarts when its process dies, retrying the
    call it was in (the work resumes from the run's checkpoints)."""
    return ray.remote(cls).options(
        num_cpus=threads, num_gpus=gpus, max_restarts=-1, max_task_retries=-1
    )


def ray_backend(
    address: str | None = None,
    threads_per_worker: int = 1,
    gpus_per_worker: float = 0.0,
) -> tuple[
    Callable[[int, RunSpec, str], Any],
    Callable[[list[Any], str, tuple[Any, ...]], list[Any]],
    Callable[[], None],
]:
    """``(factory, call, close)`` for :func:`pyro_mlm.run.shards.run_sharded` on Ray."""
    from pyro_mlm.run.shards import Shard

    ray, started = ray_session(address)
    actor_class = restartable(ray, Shard, threads_per_worker, gpus_per_worker)
    device = "cuda" if gpus_per_worker > 0 else "cpu"
    actors: list[Any] = []

    def factory(shard: int, spec: RunSpec, folder: str) -> Any:
        model = model_path(spec.model)
        actor = actor_class.remote(
            spec.replace(model=model), os.path.abspath(folder), device, threads_per_worker
        )
        actors.append(actor)
        return actor

    def call(runners: list[Any], method: str, args: tuple[Any, ...]) -> list[Any]:
        return list(ray.get([getattr(r, method).remote(*args) for r in runners]))

    def close() -> None:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if started:
            end_session(ray)

    return factory, call, close
