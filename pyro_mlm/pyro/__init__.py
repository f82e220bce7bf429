"""The Pyro and ArviZ adapter: the only room that knows Pyro.

- :mod:`.kernel`: :class:`~pyro_mlm.pyro.kernel.SamplerKernel`, a thin ``MCMCKernel`` over
  one :class:`~pyro_mlm.samplers.chain.Chain`;
- :mod:`.masked`: ``MaskedMH`` and ``MaskedGibbs``, named constructors of that kernel;
- :mod:`.potential`: the energy as Pyro's potential and model;
- :mod:`.conversion`: a run's records as ArviZ ``InferenceData``;
- :mod:`.parallel`: the workaround for Pyro's parallel chains.
"""
