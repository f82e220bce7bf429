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
from pyro_mlm.report.diagnostics import inference_data_from_draws, log_density


def draws_by_chain(mcmc: Any) -> dict[str, np.ndarray]:
    """Per-draw arrays ``[chain, draw, ...]`` from a finished ``pyro.infer.MCMC`` run.

    Chains are pyro's chains times the kernel's vectorised chains (pyro chain ``p``,
    vectorised chain ``c`` becomes chain ``p * C + c``).
    """
    if not isinstance(getattr(mcmc, "kernel", None), SamplerKernel):
        raise TypeError(
            "to_inference_data expects a pyro.infer.MCMC that ran a pyro_mlm kernel "
            "(MaskedMH or MaskedGibbs, or any SamplerKernel), "
            f"got {type(mcmc).__name__}"
        )
    diags = getattr(mcmc, "_diagnostics", None)
    if not diags or any(d is None for d in diags) or mcmc._samples is None:
        raise ValueError("the MCMC has no samples yet: call mcmc.run() first")
    samples = mcmc.get_samples(group_by_chain=True)  # [P * C, S, ...]; folded if MCMC's
    fold = {"tokens": ChainsFirst(1), "energy": ChainsFirst(0), "hamming": ChainsFirst(0)}
    if "length" in samples:  # a variable-length region (lengths=): the region's length
        fold["length"] = ChainsFirst(0)
    site = {k: f.inv(samples[k]) for k, f in fold.items()}  # transforms= replaced ours
    tokens = site["tokens"].long()
    chains, draws, _ = tokens.shape
    per_pyro_chain = chains // len(diags)

    def stacked(key: str) -> np.ndarray:
        shape = diags[0][key].shape[2:]  # () or a vector statistic's (n,)
        rows = [d[key].reshape(draws, per_pyro_chain, *shape).transpose(0, 1) for d in diags]
        return torch.cat(rows).double().numpy()  # [C, S, ...]

    temperature = float(diags[0]["temperature"])
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
            k: stacked(k)
            for k, v in diags[0].items()
            if isinstance(v, torch.Tensor) and k != "initial_tokens" and v.numel()
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
