r"""The free region whose length varies (``--lengths MIN-MAX``), in one home.

- :mod:`~pyro_mlm.region.lengths`: the ``MIN-MAX`` text and a length-prior file's weights
  (torch-free, read by the command line and the sampler declarations);
- :mod:`~pyro_mlm.region.prior`: the length prior :math:`\log\lambda(n)`;
- :mod:`~pyro_mlm.region.layout`: the :class:`~pyro_mlm.region.layout.Region` value (where a
  region sits in a padded row, its length, its mask, its alignment for reports), the padded
  start and the edit distance.

Every function takes ``(MIN, MAX)`` and tensors, never a run's spec. The samplers'
insert and delete moves (:mod:`pyro_mlm.samplers.lengths_move`), the experts, the run and its
report all read the region from here.
"""
