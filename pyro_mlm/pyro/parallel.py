"""Pyro 1.9.2's chains: parallel workers that start from their own row, vectorised chains.

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

import torch
from torch.distributions.transforms import Transform


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


def calling_pyro_unary_chain() -> int | None:
    """Chain index ``i`` when Pyro's sequential ``_UnarySampler.run`` calls the setter
    (it assigns each chain's row of ``initial_params`` before running that chain)."""
    frame = sys._getframe(2)
    owner = frame.f_locals.get("self")
    kind = type(owner)
    if kind.__name__ == "_UnarySampler" and kind.__module__ == "pyro.infer.mcmc.api":
        return int(frame.f_locals.get("i", 0))
    return None


def worker_start(per_worker: dict[int, torch.Tensor]) -> torch.Tensor | None:
    """Inside a Pyro parallel worker (called from the kernel's ``setup``): that chain's own
    start, recorded by the setter, with torch set to one thread; None in the main process.

    A forked worker inherits the parent's OpenMP pool in a broken state and deadlocks in
    its first parallel op; parallel chains share the cores anyway.
    """
    chain = _pyro_worker_chain(sys._getframe(1), depth=8)  # from setup, inside _Worker.run
    if chain is None:
        return None
    if chain not in per_worker:
        raise RuntimeError(
            "pyro ran this kernel in a parallel worker without its chain's initial "
            "tokens; run vectorised chains instead: initial_params={'tokens': "
            "LongTensor[C, L]} with num_chains=1"
        )
    torch.set_num_threads(1)
    return per_worker[chain]


class ChainsFirst(Transform):
    r"""Vectorised chains as Pyro chains: ``[P, S, C, *event]`` samples become ``[P*C, S, *event]``.

    ``pyro.infer.MCMC`` stacks a site's draws as ``[P, S, *site_shape]`` (``P`` Pyro
    chains, ``S`` draws) and then applies ``kernel.transforms[site].inv``. A kernel with
    ``C`` vectorised chains has sites of shape ``[C, *event]``; folding ``C`` into the
    chain axis (Pyro chain ``p``, vectorised chain ``c`` become chain ``p * C + c``)
    makes ``get_samples(group_by_chain=True)``, ``MCMC.summary()`` (R-hat across chains)
    and ``arviz.from_pyro`` see every chain. Samples of an unvectorised site
    (``[P, S, *event]``) pass unchanged. Not a change of support: ``_call`` is the identity.
    """

    bijective = False

    def __init__(self, event_dim: int) -> None:
        super().__init__()
        self.site_event_dim = event_dim

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != self.site_event_dim + 3:
            return y
        pyro_chains, draws, chains = y.shape[:3]
        return y.transpose(1, 2).reshape(pyro_chains * chains, draws, *y.shape[3:])
