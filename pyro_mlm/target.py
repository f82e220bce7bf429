r"""The distribution a sampler draws from: the MLM energy plus experts, at a temperature.

.. math::

    \pi(X) \propto \exp\Big(-\big(E_\text{MLM}(X) + \sum_k E_k(X)\big) / T\Big)

An *expert* is any callable ``tokens [N, L] -> energy [N]`` (a classifier's negative
log-probability, a constraint). This is the one place the terms are summed and
checked, so a bad value never turns into a silently wrong sample:

- ``+inf`` from an expert forbids a sequence: a proposal there is rejected;
- ``-inf`` or NaN from an expert, or any non-finite MLM energy, is a bug somewhere:
  :class:`EnergyError` names the chain, the sequence and the source;
- an expert that returns something other than a float tensor ``[N]`` is a ``TypeError``
  or ``ValueError`` saying what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from pyro_mlm.models.vocabulary import short
from pyro_mlm.validation import check_temperature

if TYPE_CHECKING:
    from pyro_mlm.energy import Evaluation, MLMEnergy
    from pyro_mlm.models.vocabulary import Vocabulary

Expert = Callable[[torch.Tensor], torch.Tensor]


class EnergyError(ValueError):
    """A NaN or ``-inf`` energy: a bug in an expert or a numerical failure of the model."""


class Target:
    r"""The MLM energy, any number of experts, and the temperature :math:`T`.

    Parameters
    ----------
    energy
        The MLM energy :math:`E_\text{MLM}`.
    experts
        Callables ``tokens [N, L] -> energy [N]`` added to it (``+inf`` forbids).
    temperature
        :math:`T`; default the ``temperature`` the energy was built with.
    over
        ``"free"`` (the paper's sum over the free positions, the default) or ``"all"``:
        the MLM energy sums the terms of *every* content position (the negative
        pseudo-log-likelihood of the whole sequence), which is the conditional of the
        joint energy model given a fixed framework, since the fixed positions' terms
        depend on the free residues. It costs one masked row per content position per
        evaluation instead of one per free position. Proposals stay at free positions.

    Experts with an ``allowed(length, proposable_ids) -> [L, K]`` method (the ``allowed``
    constraint) also restrict the proposal: the conditionals this target returns are
    ``-inf`` at the tokens they forbid.

    Examples
    --------
    >>> target = Target(MLMEnergy(mlm), [lambda x: (x == 5).sum(-1).float()])  # doctest: +SKIP
    >>> target(mlm.encode("EVQLV"))                                           # doctest: +SKIP
    """

    def __init__(
        self,
        energy: MLMEnergy,
        experts: Sequence[Expert] = (),
        temperature: float | None = None,
        over: str = "free",
    ) -> None:
        if over not in ("free", "all"):
            raise ValueError(f"over must be 'free' or 'all', got {over!r}")
        for expert in experts:
            if not callable(expert):
                raise TypeError(
                    f"an expert must be a callable tokens [N, L] -> energy [N], got "
                    f"{type(expert).__name__}"
                )
        self.energy = energy
        self.experts = tuple(experts)
        self.over = over
        self.restrictions = [e for e in self.experts if restricts(e)]
        self._allowed: dict[tuple[int, str], torch.Tensor] = {}
        self.temperature = check_temperature(
            energy.temperature if temperature is None else temperature
        )

    @property
    def mlm(self) -> Vocabulary:
        return self.energy.mlm

    def evaluate(
        self,
        tokens: torch.Tensor,
        free: torch.Tensor,
        *,
        chains: torch.Tensor | None = None,
        keep_conditionals: bool = True,
    ) -> Evaluation:
        """Total energies (not divided by :math:`T`), MLM terms and conditionals of ``[B, L]``.

        ``chains [B]`` names the chain of each row in error messages. Raises
        :class:`EnergyError` on a NaN or ``-inf`` energy from any source.
        """
        scored = self.scored(tokens, free)
        result = self.energy.evaluate(tokens, scored, keep_conditionals=keep_conditionals)
        check_finite(result.energy, tokens, self.mlm, mlm_source(self.energy), chains)
        if self.restrictions and result.logits.shape[1]:
            allowed = self.allowed(tokens.shape[-1], result.logits.device)
            result = result._replace(logits=result.logits.masked_fill(~allowed, float("-inf")))
        total = result.energy
        for value in self.expert_energies(tokens, total, chains):
            total = total + value
        return result._replace(energy=total)

    def expert_energies(
        self, tokens: torch.Tensor, like: torch.Tensor, chains: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Each expert's energy of ``tokens [B, L]``, ``[B]`` as ``like``'s dtype and device,
        checked (``+inf`` forbids; ``-inf``, NaN or a wrong shape is an error naming it)."""
        values = []
        for k, expert in enumerate(self.experts):
            name = expert_name(expert, k, len(self.experts))
            value = expert_energy(expert, tokens, name).to(like)
            check_finite(value, tokens, self.mlm, name, chains, forbid_ok=True)
            values.append(value)
        return values

    def scored(self, tokens: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        """``[B, L]``: the positions whose MLM terms the energy sums (``free``, or every
        content position with ``over="all"``); one masked row each per evaluation."""
        if self.over == "free":
            return free
        special = self.mlm.special_mask(tokens) & (tokens != self.mlm.mask_token_id)
        return ~special | free

    def allowed(self, length: int, device: torch.device) -> torch.Tensor:
        """``[L, K]``: the proposable tokens each position may take under the experts."""
        key = (length, str(device))
        if key not in self._allowed:
            ids = self.mlm.proposable_ids.to(device)
            mask = torch.ones(length, ids.numel(), dtype=torch.bool, device=device)
            for expert in self.restrictions:
                mask &= expert.allowed(length, ids).to(device)  # type: ignore[attr-defined]
            self._allowed[key] = mask
        return self._allowed[key]

    def conditionals(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The MLM's masked conditionals ``[C, K]`` at ``positions [C]``, restricted like
        the proposals (``-inf`` where an expert forbids a token)."""
        logits = self.energy.conditionals(tokens, positions)
        if not self.restrictions:
            return logits
        allowed = self.allowed(tokens.shape[-1], logits.device)[positions]
        return logits.masked_fill(~allowed, float("-inf"))

    def conditionals_at(self, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The multi-mask conditionals ``[N, P, K]`` at ``positions [N, P]`` of ``rows [N, L]``
        (masks already in place; one masked row each), restricted like the proposals."""
        logits = self.energy.conditionals_at(rows, positions)
        if not self.restrictions:
            return logits
        allowed = self.allowed(rows.shape[-1], logits.device)[positions]  # [N, P, K]
        return logits.masked_fill(~allowed, float("-inf"))

    def check_start(self, tokens: torch.Tensor) -> None:
        """Refuse starting sequences ``[C, L]`` that a hard constraint forbids."""
        from pyro_mlm.experts.registry import check_start

        check_start(self.experts, tokens, self.mlm)

    def __call__(self, tokens: torch.Tensor, free: object = None) -> torch.Tensor:
        """Total energy of ``tokens [..., L]`` over ``free``; returns ``[...]``."""
        from pyro_mlm.energy import checked_energy

        return checked_energy(self.evaluate, self.mlm, tokens, free)

    def __repr__(self) -> str:
        return (
            f"Target({self.energy!r}, experts={len(self.experts)}, T={self.temperature}, "
            f"over={self.over!r})"
        )


def expert_name(expert: object, index: int, count: int) -> str:
    """How messages call an expert: its ``name``, its function name, or its class."""
    name = getattr(expert, "name", None) or getattr(expert, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        name = type(expert).__name__
    return f"expert {name!r}" if count > 1 or index else f"extra potential {name!r}"


def expert_energy(expert: Expert, tokens: torch.Tensor, name: str) -> torch.Tensor:
    """``expert(tokens)`` as a float tensor ``[N]``, or a ``TypeError``/``ValueError``."""
    value = expert(tokens)
    expected = f"a float tensor [N] with one energy per sequence (here N={tokens.shape[0]})"
    if value is None or isinstance(value, (str, bytes, dict)):
        raise TypeError(f"{name} returned {type(value).__name__}; it must return {expected}")
    try:
        value = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name} returned {type(value).__name__}, which is not a tensor; it must "
            f"return {expected}"
        ) from err
    if value.dtype == torch.bool or value.dtype.is_complex:
        raise TypeError(f"{name} returned a {value.dtype} tensor; it must return {expected}")
    if value.shape != tokens.shape[:1]:
        raise ValueError(
            f"{name} returned shape {tuple(value.shape)} for tokens of shape "
            f"{tuple(tokens.shape)}; it must return {expected}"
        )
    return value.float() if not value.dtype.is_floating_point else value


def check_finite(
    energy: torch.Tensor,
    tokens: torch.Tensor,
    mlm: Vocabulary,
    source: str,
    chains: torch.Tensor | None = None,
    *,
    forbid_ok: bool = False,
) -> None:
    """Raise :class:`EnergyError` on NaN or ``-inf`` (and ``+inf`` unless ``forbid_ok``)."""
    bad = torch.isnan(energy) | (energy == float("-inf"))
    if not forbid_ok:
        bad |= energy == float("inf")
    if not bool(bad.any()):
        return
    row = int(bad.nonzero()[0, 0])
    value = float(energy[row])
    where = f"chain {int(chains[row])}" if chains is not None else f"sequence {row} of the batch"
    sequence = short(mlm.decode(tokens[row]), 80)
    if forbid_ok:
        rule = (
            "an expert must not return -inf (it would make one sequence infinitely more "
            "likely than every other): return +inf to forbid a sequence, a finite energy "
            "otherwise"
            if value == float("-inf")
            else "an expert must return a finite energy, or +inf to forbid a sequence; "
            "a NaN would silently bias the sampler"
        )
    else:
        rule = (
            "the forward pass overflowed or the weights hold NaN; run in float32 "
            "(dtype=torch.float32) or check the model's weights"
        )
    raise EnergyError(f"{source} is {value} at {where}, sequence {sequence!r}: {rule}")


def mlm_source(energy: MLMEnergy) -> str:
    """How messages name the MLM energy: the model, its dtype and its device."""
    model = getattr(energy.mlm, "model", None)
    param = next(model.parameters(), None) if model is not None else None
    detail = "" if param is None else f", dtype {param.dtype}, device {param.device}"
    return f"the MLM energy ({energy.mlm.name}{detail})"


def restricts(expert: object) -> bool:
    """Whether ``expert`` also restricts the proposal's conditionals (the samplers' one way to
    ask): a registered expert says so in its declaration
    (:data:`pyro_mlm.experts.declared.DECLARED`, read into its class's ``restricts``); an
    expert of the user's own that declares nothing restricts when it has an ``allowed``
    method."""
    declared = getattr(expert, "restricts", None)
    if isinstance(declared, bool):
        return declared
    return callable(getattr(expert, "allowed", None))
