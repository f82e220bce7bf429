"""Samplers: pure ``init``/``step`` pairs over ``NamedTuple`` states, one module each.

``SAMPLERS`` maps a name to a sampler class; the command line (``--kernel``), the run
loop, the Pyro shell (:class:`pyro_mlm.pyro.kernel.SamplerKernel`), the benchmarks and the
translation comparison all read it. A sampler is built from a
:class:`~pyro_mlm.target.Target` and a free mask, then driven by its own two methods:

>>> import torch
>>> from pyro_mlm.samplers import SAMPLERS
>>> sorted(SAMPLERS)  # doctest: +NORMALIZE_WHITESPACE
['block', 'gibbs', 'metropolised', 'mh', 'reference-tempering', 'regenerate', 'replica-exchange',
 'tuned']
>>> sampler = SAMPLERS["block"](target, free, block_size=2)          # doctest: +SKIP
>>> state = sampler.init(tokens)                                     # doctest: +SKIP
>>> state, info = sampler.step(state, torch.Generator().manual_seed(0))  # doctest: +SKIP

How to add a sampler: write one module with a subclass of
:class:`~pyro_mlm.samplers.base.SweepSampler` that sets ``name``, implements
``start`` (the state of some tokens) and ``propose`` (one proposal in every chain,
returning the new state and a :class:`~pyro_mlm.samplers.transitions.MHInfo`), and
declare it with one entry in :data:`pyro_mlm.samplers.options.DECLARED`: its class
(``"module:Class"``, from which this package's registry is derived), its options (they
become command-line flags and the class's ``OPTIONS``) and its capabilities (annealable,
usable inside replica exchange, runnable over a region whose length varies: ``lengths``,
for :class:`~pyro_mlm.samplers.lengths.VariableLength`). Its per-sweep statistics are its
sweep info's fields (named and summarised by :mod:`~pyro_mlm.samplers.statistics`, a ratio
of two counts declared in its ``RATES``), and the progress line shows those it names in
``PROGRESS``. This package imports its sampler modules (and torch) on first
use of ``SAMPLERS`` or a class, so the command line's ``--help`` stays instant. Its state
is a ``NamedTuple`` with ``tokens``, ``cursor`` and ``rows`` fields
(:class:`~pyro_mlm.samplers.base.ChainState`); the one driver
(:class:`~pyro_mlm.samplers.chain.Chain`) checkpoints and records it without knowing
more. A sampler can also be registered at run time. For example, a single-site MH whose
proposal ignores the model (uniform over the proposable tokens, so
:math:`q(x'_t) = q(x_t)` and the ratio is the energy difference alone):

>>> from pyro_mlm.samplers.proposals import Proposal
>>> from pyro_mlm.samplers.mh import MH
>>> class UniformMH(MH):
...     name = "uniform"
...     def draw(self, logits, current, generator):
...         flat = torch.zeros_like(logits)  # equal scores: a uniform proposal
...         pick = torch.multinomial(flat.exp(), 1, generator=generator).squeeze(-1)
...         zero = torch.zeros(len(current))
...         return Proposal(self.proposable[pick], zero, zero)
>>> from pyro_mlm.samplers.options import SAMPLER_OPTIONS
>>> SAMPLERS["uniform"] = UniformMH   # now MCMC (SamplerKernel) and build_sampler know it
>>> SAMPLER_OPTIONS["uniform"] = {}   # and --kernel uniform, RunSpec and the tests
>>> del SAMPLERS["uniform"], SAMPLER_OPTIONS["uniform"]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pyro_mlm.samplers.builder import CLASSES, build_sampler, registry
from pyro_mlm.samplers.options import ANNEALABLE, SAMPLER_OPTIONS, Option

if TYPE_CHECKING:
    from pyro_mlm.samplers.base import SweepInfo, SweepSampler
    from pyro_mlm.samplers.block import BlockMH
    from pyro_mlm.samplers.gibbs import Gibbs, GibbsState
    from pyro_mlm.samplers.lengths import VariableLength
    from pyro_mlm.samplers.metropolised import MetropolisedMH
    from pyro_mlm.samplers.mh import MH
    from pyro_mlm.samplers.regenerate import Regenerate
    from pyro_mlm.samplers.replica import ReplicaExchange
    from pyro_mlm.samplers.tuned import Tuned

    SAMPLERS: dict[str, type[SweepSampler]]

_EXPORTS = {
    **{cls: module for module, cls in CLASSES.values()},
    "GibbsState": "pyro_mlm.samplers.gibbs",
    "SweepInfo": "pyro_mlm.samplers.base",
    "SweepSampler": "pyro_mlm.samplers.base",
    "VariableLength": "pyro_mlm.samplers.lengths",
}


def __getattr__(name: str) -> Any:
    if name == "SAMPLERS":
        value: Any = registry()  # the one dict: a run-time registration is seen everywhere
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'pyro_mlm.samplers' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [
    "ANNEALABLE",
    "MH",
    "SAMPLERS",
    "SAMPLER_OPTIONS",
    "BlockMH",
    "Gibbs",
    "GibbsState",
    "MetropolisedMH",
    "Option",
    "Regenerate",
    "ReplicaExchange",
    "SweepInfo",
    "SweepSampler",
    "Tuned",
    "VariableLength",
    "build_sampler",
]
