"""Pyro 1.9.2's parallel chains, made to start each chain from its own row.

``MCMC(num_chains=P)`` with enough cores runs chains in worker processes. Its
``_MultiSampler`` builds one ``_Worker`` per chain, and each assigns its row of
``initial_params`` to the *same* kernel object before any process starts, so every
chain would start from the last row. The kernel records the row per worker (the
setter can see which ``_Worker`` is calling) and, inside a worker process (named by
its chain index), restores its own row in ``setup``.
"""

from __future__ import annotations

import multiprocessing
import sys


def calling_pyro_worker() -> int | None:
    """Chain id of the pyro ``_Worker`` whose constructor is setting ``initial_params``.

    Called from the kernel's ``initial_params`` setter: two frames up is the caller.
    """
    frame = sys._getframe(2)
    owner = frame.f_locals.get("self")
    if type(owner).__name__ == "_Worker" and type(owner).__module__ == "pyro.infer.mcmc.api":
        return int(getattr(owner, "chain_id"))  # noqa: B009
    return None


def pyro_worker_index() -> int | None:
    """The chain index of this process when it is one of pyro's parallel chain workers."""
    process = multiprocessing.current_process()
    if process.name.isdigit() and multiprocessing.parent_process() is not None:
        return int(process.name)
    return None
