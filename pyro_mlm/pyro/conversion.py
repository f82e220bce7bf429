"""A ``pyro.infer.MCMC`` run of a pyro_mlm kernel as ArviZ InferenceData.

:func:`to_inference_data` returns the installed ArviZ line's object (``InferenceData`` on
0.x, ``DataTree`` on 1.x): the route that works on both. ``arviz.from_pyro(mcmc)`` exists
only on ArviZ 0.x (posterior ``energy``, ``hamming``, ``tokens`` and ``length`` where it
varies; ``sample_stats`` only ``diverging``); :func:`to_inference_data` also carries the
decoded sequences (as coordinates), the ``residue`` numbering of the positions
(``constant_data``), and the per-draw statistics (``lp``, acceptance, novelty, masked rows,
seconds and every statistic of the sampler's sweep info).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pyro_mlm.pyro.kernel import SamplerKernel
from pyro_mlm.pyro.parallel import ChainsFirst
from pyro_mlm.pyro.records import RECORDS_KEY
from pyro_mlm.report.diagnostics import inference_data_from_draws, log_density


def _finished(mcmc: Any) -> list[Any]:
    """Each Pyro chain's :class:`~pyro_mlm.pyro.records.SweepRecords` of a finished run."""
    if not isinstance(getattr(mcmc, "kernel", None), SamplerKernel):
        raise TypeError(
            "expected a pyro.infer.MCMC that ran a pyro_mlm kernel "
            "(MaskedMH or MaskedGibbs, or any SamplerKernel), "
            f"got {type(mcmc).__name__}"
        )
    diags = getattr(mcmc, "_diagnostics", None)
    if not diags or any(d is None for d in diags) or mcmc._samples is None:
        raise ValueError("the MCMC has no samples yet: call mcmc.run() first")
    return [d[RECORDS_KEY] for d in diags]


def _by_chain(records: list[Any], key: str) -> torch.Tensor:
    """``[P * C, draws, ...]`` of a record ``[draws, C, ...]`` of each of ``P`` Pyro chains
    (Pyro chain ``p``'s vectorised chain ``c`` at ``p * C + c``, as the sites' fold)."""
    return torch.cat([r[key].transpose(0, 1) for r in records])


def get_tokens(mcmc: Any, group_by_chain: bool = False) -> torch.Tensor:
    """The token ids of every kept draw of a finished ``pyro.infer.MCMC`` run of a pyro_mlm
    kernel, as ``get_samples`` would give a ``tokens`` site: long ``[chains * draws, L]``,
    or ``[chains, draws, L]`` with ``group_by_chain`` (decode a row with ``mlm.decode``).

    The kernel keeps them out of Pyro's saved sites, so that ``MCMC.summary()`` and
    ``MCMC.diagnostics()`` show the chain's summaries rather than a row per position."""
    tokens = _by_chain(_finished(mcmc), "tokens").long()
    return tokens if group_by_chain else tokens.reshape(-1, tokens.shape[-1])


def draws_by_chain(mcmc: Any) -> dict[str, np.ndarray]:
    """Per-draw arrays ``[chain, draw, ...]`` from a finished ``pyro.infer.MCMC`` run.

    Chains are pyro's chains times the kernel's vectorised chains (pyro chain ``p``,
    vectorised chain ``c`` becomes chain ``p * C + c``).
    """
    records = _finished(mcmc)
    samples = mcmc.get_samples(group_by_chain=True)  # [P * C, S, ...]; folded if MCMC's
    fold = {k: ChainsFirst(0) for k in ("energy", "hamming", "length") if k in samples}
    site = {k: f.inv(samples[k]) for k, f in fold.items()}  # transforms= replaced ours
    tokens = get_tokens(mcmc, group_by_chain=True)
    temperature = float(mcmc._diagnostics[0]["temperature"])
    energy = site["energy"].numpy()
    mlm = mcmc.kernel.energy.mlm
    sequence = np.array([[mlm.decode(row) for row in chain] for chain in tokens], dtype=object)
    return {
        "tokens": tokens.numpy(),
        "sequence": sequence,
        "energy": energy,
        "hamming": site["hamming"].numpy(),
        **({"length": site["length"].numpy()} if "length" in site else {}),
        "lp": log_density(energy, temperature),
        **{  # every per-sweep record of the kernel: its sampler's info fields and seconds
            k: _by_chain(records, k).double().numpy() for k in records[0] if k != "tokens"
        },
    }


def to_inference_data(mcmc: Any) -> Any:
    """The installed ArviZ's object of a ``pyro.infer.MCMC`` run of a pyro_mlm kernel:
    ``InferenceData`` on ArviZ 0.x, an ``xarray.DataTree`` on 1.x, with the same groups,
    variables and coordinates (``az.summary``, ``az.rhat``, ``az.plot_trace`` take either).

    Groups
    ------
    posterior
        ``tokens`` (chain, draw, position; token ids as float64, exact), ``energy``
        (total energy, not divided by temperature), ``hamming`` (positions
        differing from the first chain's start, one
        reference for all chains), ``length`` where the region's length varies;
        coordinate ``sequence`` (chain, draw: the decoded text).
    constant_data
        ``residue`` (position: 1-based content numbering, 0 at special tokens).
    sample_stats
        ``lp`` (:math:`-E/T`, the log target up to a constant; ``-energy`` at
        :math:`T = 1`), ``acceptance_rate`` and ``is_novel`` (fractions of the
        draw's proposals accepted / accepted and new), ``accept_prob`` (mean
        :math:`\\min(1, \\alpha)`).

    >>> idata = to_inference_data(mcmc)                          # doctest: +SKIP
    >>> summary(idata)                                          # doctest: +SKIP
    """
    data = draws_by_chain(mcmc)
    first = torch.as_tensor(data["tokens"][0, 0])
    return inference_data_from_draws(data, residue=mcmc.kernel.energy.mlm.residue_numbers(first))
