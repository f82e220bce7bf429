"""Samplers: pure ``init``/``step`` pairs over ``NamedTuple`` states, one module each.

``SAMPLERS`` maps a name to a sampler class; the command line (``--kernel``), the run
loop, the Pyro shell (:class:`pyro_mlm.kernel.SamplerKernel`), the benchmarks and the
translation comparison all read it. A sampler is built from a
:class:`~pyro_mlm.target.Target` and a free mask, then driven by its own two methods:

>>> import torch
>>> from pyro_mlm.samplers import SAMPLERS
>>> sorted(SAMPLERS)
['block', 'gibbs', 'metropolised', 'mh', 'replica-exchange', 'tuned']
>>> sampler = SAMPLERS["block"](target, free, block_size=2)          # doctest: +SKIP
>>> state = sampler.init(tokens)                                     # doctest: +SKIP
>>> state, info = sampler.step(state, torch.Generator().manual_seed(0))  # doctest: +SKIP

How to add a sampler: write one module with a subclass of
:class:`~pyro_mlm.samplers.base.SweepSampler` that sets ``name``, implements
``start`` (the state of some tokens) and ``propose`` (one proposal in every chain,
returning the new state and a :class:`pyro_mlm.mh.MHInfo`), declares its settings in
``OPTIONS`` (they become command-line flags), and add one line to ``SAMPLERS``. Its
state is a ``NamedTuple`` with ``tokens``, ``cursor`` and ``rows`` fields; the shells
checkpoint and record it without knowing more. For example, a single-site MH whose
proposal ignores the model (uniform over the proposable tokens, so
:math:`q(x'_t) = q(x_t)` and the ratio is the energy difference alone):

>>> from pyro_mlm.proposals import Proposal
>>> from pyro_mlm.samplers.mh import MH
>>> class UniformMH(MH):
...     name = "uniform"
...     def draw(self, logits, current, generator):
...         flat = torch.zeros_like(logits)  # equal scores: a uniform proposal
...         pick = torch.multinomial(flat.exp(), 1, generator=generator).squeeze(-1)
...         zero = torch.zeros(len(current))
...         return Proposal(self.proposable[pick], zero, zero)
>>> SAMPLERS["uniform"] = UniformMH   # now --kernel uniform, MCMC and the tests know it
>>> del SAMPLERS["uniform"]
"""

from __future__ import annotations

from pyro_mlm.samplers.base import Option, SweepInfo, SweepSampler
from pyro_mlm.samplers.block import BlockMH
from pyro_mlm.samplers.gibbs import Gibbs, GibbsState
from pyro_mlm.samplers.metropolised import MetropolisedMH
from pyro_mlm.samplers.mh import MH
from pyro_mlm.samplers.replica import ReplicaExchange
from pyro_mlm.samplers.tuned import Tuned

SAMPLERS: dict[str, type[SweepSampler]] = {
    "mh": MH,
    "gibbs": Gibbs,
    "block": BlockMH,
    "metropolised": MetropolisedMH,
    "replica-exchange": ReplicaExchange,
    "tuned": Tuned,
}


def build_sampler(name: str, target: object, free: object, **settings: object) -> SweepSampler:
    """``SAMPLERS[name](target, free, **settings)``; a wrong name or option is a ValueError."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; registered: {', '.join(sorted(SAMPLERS))}")
    cls = SAMPLERS[name]
    common = {"scan", "proposal_temperature", "proposals_per_sweep"}
    unknown = sorted(set(settings) - common - set(cls.OPTIONS))
    if unknown:
        raise ValueError(
            f"sampler {name!r} takes no option {unknown}; its options: "
            f"{sorted(cls.OPTIONS) or 'none'}"
        )
    return cls(target, free, **settings)  # type: ignore[arg-type]


__all__ = [
    "MH",
    "SAMPLERS",
    "BlockMH",
    "Gibbs",
    "GibbsState",
    "MetropolisedMH",
    "Option",
    "ReplicaExchange",
    "SweepInfo",
    "SweepSampler",
    "Tuned",
    "build_sampler",
]
