r"""The MLM energy in Pyro's terms: a potential function and a model.

Pyro's potential energy is :math:`U(X) = -\log \tilde p(X)`; here

.. math::  U(X) = \big(E_\text{MLM}(X) + E_\text{extra}(X)\big) / T,

where :math:`E_\text{extra}` is an optional extra potential (a product of experts:
an attribute classifier, a constraint; ``+inf`` forbids a sequence). The model has one
site, ``tokens``, drawn from :class:`TargetTokens`: its ``sample`` is uniform over the
proposable tokens at the free positions (the others fixed), and its ``log_prob`` is
:math:`-U(X) - |F| \log K`, so the trace log density is :math:`-U` plus a constant. The
model has no observed site, so ``arviz.from_pyro`` finds no likelihood to evaluate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from pyro_mlm.energy import MLMEnergy
from pyro_mlm.target import Target
from pyro_mlm.validation import check_tokens, resolve_free

ExtraPotential = Callable[[torch.Tensor], torch.Tensor]


class MaskedUniformTokens(dist.TorchDistribution):
    """Uniform over ``proposable_ids`` at free positions, a point mass on ``context`` elsewhere.

    Event shape ``[L]``; ``log_prob(x) = -|F| log K`` when every free token is
    proposable and every fixed token equals the context, ``-inf`` otherwise.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}
    support = constraints.independent(constraints.nonnegative_integer, 1)

    def __init__(
        self,
        context: torch.Tensor,
        free: torch.Tensor,
        proposable_ids: torch.Tensor,
        validate_args: bool | None = None,
    ) -> None:
        self.context = context
        self.free = free.expand(context.shape)
        self.proposable_ids = proposable_ids.to(context.device)
        super().__init__(context.shape[:-1], context.shape[-1:], validate_args=validate_args)

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.context.shape
        draw = self.proposable_ids[
            torch.randint(self.proposable_ids.numel(), shape, device=self.context.device)
        ]
        return torch.where(self.free, draw, self.context.expand(shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        in_set = torch.isin(value, self.proposable_ids)
        ok = torch.where(self.free, in_set, value == self.context)
        per_site = torch.where(
            self.free, -torch.log(torch.tensor(float(self.proposable_ids.numel()))), 0.0
        )
        per_site = per_site.to(value.device).expand(value.shape)
        return torch.where(ok, per_site, torch.tensor(float("-inf"), device=value.device)).sum(-1)


class Potential:
    """``params -> U(params["tokens"])``: the potential energy (a picklable callable)."""

    def __init__(
        self, energy: MLMEnergy, free: object = None, extra_potential: ExtraPotential | None = None
    ) -> None:
        self.energy = energy
        self.free = free
        self.extra_potential = extra_potential
        self.target = Target(energy, [] if extra_potential is None else [extra_potential])

    def __call__(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        if "tokens" not in params:
            raise ValueError(f"expected params with a 'tokens' entry, got keys {sorted(params)}")
        return self.target(params["tokens"], self.free) / self.target.temperature


def potential_fn(
    energy: MLMEnergy, free: object = None, extra_potential: ExtraPotential | None = None
) -> Potential:
    """``params -> U(params["tokens"])``, usable wherever Pyro takes a ``potential_fn``.

    Tokens ``[L]`` give a scalar; ``[C, L]`` give ``[C]`` (sum them for the joint of
    independent chains).

    >>> U = potential_fn(MLMEnergy(mlm))                  # doctest: +SKIP
    >>> U({"tokens": mlm.encode("EVQLV")})                # doctest: +SKIP
    """
    return Potential(energy, free, extra_potential)


class TargetTokens(MaskedUniformTokens):
    """:class:`MaskedUniformTokens` whose ``log_prob`` adds :math:`-U(X)`: the target's density.

    ``sample`` still draws from the uniform prior (a proposal, not the target: the
    samplers draw from the target).
    """

    def __init__(self, prior: MaskedUniformTokens, potential: Potential) -> None:
        super().__init__(prior.context, prior.free, prior.proposable_ids)
        self.potential = potential

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(value) - self.potential({"tokens": value})


class MLMModel:
    """The Pyro model of :func:`mlm_model` (a picklable callable)."""

    def __init__(self, prior: MaskedUniformTokens, potential: Potential) -> None:
        self.target = TargetTokens(prior, potential)

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return pyro.sample("tokens", self.target)


def mlm_model(
    energy: MLMEnergy,
    context: torch.Tensor,
    free: object = None,
    extra_potential: ExtraPotential | None = None,
) -> MLMModel:
    """A Pyro model whose ``tokens`` site has density :math:`\\propto e^{-U}`.

    The site's distribution is a :class:`TargetTokens`.

    ``context`` is a template sequence ``[L]`` or ``[C, L]``: its fixed positions are
    kept, its free positions are sampled.
    """
    context = check_tokens(context, energy.mlm, "context")
    mask = resolve_free(free, context, energy.mlm)
    prior = MaskedUniformTokens(context, mask, energy.mlm.proposable_ids)
    return MLMModel(prior, Potential(energy, mask, extra_potential))
