"""Pyro 1.9.2's parallel chains, made to start each chain from its own row.

``MCMC(num_chains=P)`` with enough cores runs chains in worker processes. Its
``_MultiSampler`` builds one ``_Worker`` per chain, and each assigns its row of
``initial_params`` to the *same* kernel object before any process starts, so every
chain would start from the last row. The kernel records the row per worker (the
setter can see which ``_Worker`` is calling) and restores its own row in ``setup``,
which runs inside the worker's ``run``.
"""

from __future__ import annotations

import sys
from types import FrameType


def _pyro_worker_chain(frame: FrameType | None, depth: int) -> int | None:
    """Chain id of the first pyro ``_Worker`` method among ``depth`` frames from ``frame``."""
    for _ in range(depth):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        kind = type(owner)
        if kind.__name__ == "_Worker" and kind.__module__ == "pyro.infer.mcmc.api":
            return int(getattr(owner, "chain_id"))  # noqa: B009
        frame = frame.f_back
    return None


def calling_pyro_worker() -> int | None:
    """Chain id of the ``_Worker`` constructor calling the kernel's ``initial_params`` setter.

    Two frames up from here is the setter's caller.
    """
    return _pyro_worker_chain(sys._getframe(2), depth=1)


def pyro_worker_index() -> int | None:
    """Chain id when ``setup`` runs inside a pyro parallel worker (``_Worker.run``)."""
    return _pyro_worker_chain(sys._getframe(1), depth=8)
