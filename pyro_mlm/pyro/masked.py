"""The paper's two kernels by name: thin constructors over :class:`.kernel.SamplerKernel`.

:class:`MaskedMH` runs the registered ``mh`` sampler, :class:`MaskedGibbs` the ``gibbs``
baseline; any other registered sampler runs as ``SamplerKernel(energy, sampler=name)``.
"""

from __future__ import annotations

from pyro_mlm.energy import MLMEnergy
from pyro_mlm.pyro.kernel import SamplerKernel
from pyro_mlm.pyro.potential import ExtraPotential
from pyro_mlm.samplers.scan import Scan


class MaskedMH(SamplerKernel):
    r"""Single-site Metropolis-Hastings with the MLM's masked conditionals as proposals.

    Targets :math:`\pi(X) \propto \exp(-(E(X) + E_\text{extra}(X)) / T)` exactly. A
    proposal picks a free position :math:`t` (uniformly, or in order with
    ``scan="systematic"``), draws :math:`x'_t \sim q(\cdot \mid X_{\setminus t})`
    restricted to the proposable tokens (at ``proposal_temperature``), and accepts with

    .. math::

        \min\Big(1,\ \exp\big((E(X) - E(X'))/T\big)\,
        \frac{q(x_t \mid X_{\setminus t})}{q(x'_t \mid X_{\setminus t})}\Big)

    (derivation: :func:`pyro_mlm.samplers.transitions.log_acceptance_ratio`). The current
    state's energy
    and conditionals are cached, so a proposal costs one batch of ``|free|`` masked
    rows per chain, and a self-proposal costs nothing. Parameters as
    :class:`SamplerKernel`.

    Examples
    --------
    >>> kernel = MaskedMH(MLMEnergy(mlm))                                # doctest: +SKIP
    >>> mcmc = MCMC(kernel, num_samples=200, warmup_steps=50,
    ...             initial_params={"tokens": ids.repeat(4, 1)})          # doctest: +SKIP
    >>> mcmc.run()                                                       # doctest: +SKIP
    """

    def __init__(
        self,
        energy: MLMEnergy,
        free: object = None,
        scan: Scan = "random",
        proposal_temperature: float = 1.0,
        proposals_per_sample: int | None = None,
        extra_potential: ExtraPotential | None = None,
    ) -> None:
        super().__init__(
            energy,
            free,
            "mh",
            scan=scan,
            proposal_temperature=proposal_temperature,
            proposals_per_sample=proposals_per_sample,
            extra_potential=extra_potential,
        )


class MaskedGibbs(SamplerKernel):
    """Degenerate masked Gibbs (Wang & Cho 2019): always accept the conditional's draw.

    Same interface as :class:`MaskedMH`. Each update costs one masked row per chain.
    Because an MLM's conditionals are not those of any single joint distribution, this
    chain does **not** target :math:`\\propto e^{-E/T}`; it is here as the baseline the
    paper compares against. Its energy is evaluated once per sweep (the draw's ``energy`` site).
    """

    def __init__(
        self,
        energy: MLMEnergy,
        free: object = None,
        scan: Scan = "random",
        proposal_temperature: float = 1.0,
        proposals_per_sample: int | None = None,
    ) -> None:
        super().__init__(
            energy,
            free,
            "gibbs",
            scan=scan,
            proposal_temperature=proposal_temperature,
            proposals_per_sample=proposals_per_sample,
        )
