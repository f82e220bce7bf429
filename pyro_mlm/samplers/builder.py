"""The one place a sampler is built from its name: the registry, :func:`build_sampler` (the
public entry: settings checked) and :func:`assemble` (a run's or a Pyro kernel's sampler
from settings checked once already, with the variable-length wrap and its sweep rule).

The registry maps each name of :data:`pyro_mlm.samplers.options.DECLARED` to its class,
importing the sampler modules (and torch) on first use, so that the command line's
``--help`` stays instant; ``pyro_mlm.samplers.SAMPLERS`` is this same dict, so a sampler
registered at run time (``SAMPLERS["uniform"] = UniformMH``) is built here too. Modules of
this package that build an inner sampler (replica exchange) import this module, not the
package's face.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pyro_mlm.samplers.options import DECLARED, SAMPLER_OPTIONS, check_settings

if TYPE_CHECKING:
    import torch

    from pyro_mlm.samplers.base import SweepSampler
    from pyro_mlm.samplers.scan import Scan
    from pyro_mlm.target import Target

# the registry: name -> (module, class), from each sampler's one declaration (options.py)
CLASSES = {
    name: tuple(f"pyro_mlm.samplers.{declared.cls}".split(":"))
    for name, declared in DECLARED.items()
}
_REGISTRY: dict[str, Any] = {}


def registry() -> dict[str, type[SweepSampler]]:
    """Name -> sampler class (built on first call; the same dict afterwards)."""
    if not _REGISTRY:
        for key, (module, cls) in CLASSES.items():
            _REGISTRY[key] = getattr(importlib.import_module(module), cls)
    return _REGISTRY


def build_sampler(
    name: str,
    target: Target,
    free: torch.Tensor,
    *,
    region_max: int | None = None,
    **settings: Any,
) -> SweepSampler:
    """``SAMPLERS[name](target, free, **settings)``; a wrong name or option is a ValueError.

    ``region_max`` is the largest region a chain can reach (MAX of a variable-length region):
    size options (``block_size``, ``regen_size``) are checked against it instead of the
    current region's size.
    """
    common = {"scan", "proposal_temperature", "proposals_per_sweep"}
    own = {k: v for k, v in settings.items() if k not in common}
    counts = free.sum(-1).tolist() if hasattr(free, "sum") else None
    check_options(
        name, own, temperature=float(getattr(target, "temperature", 1.0)),
        proposal_temperature=float(settings.get("proposal_temperature", 1.0)),
        free_counts=[region_max] if region_max is not None else counts,
    )  # fmt: skip
    return assemble(
        name, target, free, own, scan=settings.get("scan", "random"),
        proposal_temperature=settings.get("proposal_temperature", 1.0),
        proposals_per_sweep=settings.get("proposals_per_sweep"),
    )  # fmt: skip


def check_options(
    name: str,
    options: dict[str, Any],
    *,
    temperature: float = 1.0,
    proposal_temperature: float = 1.0,
    free_counts: list[int] | None = None,
) -> None:
    """The one check of a sampler's name and own ``options``: a declared sampler's by
    :func:`~pyro_mlm.samplers.options.check_settings` (every setting it would ignore refused),
    one registered at run time against its class's ``OPTIONS``; ``ValueError`` otherwise."""
    samplers = registry()
    if name not in samplers:
        raise ValueError(f"unknown sampler {name!r}; registered: {', '.join(sorted(samplers))}")
    if name in SAMPLER_OPTIONS:
        check_settings(
            name, options, temperature=temperature, proposal_temperature=proposal_temperature,
            free_counts=free_counts,
        )  # fmt: skip
        return
    unknown = sorted(set(options) - set(samplers[name].OPTIONS))
    if unknown:
        raise ValueError(f"sampler {name!r} takes no option {unknown}")


def assemble(
    name: str,
    target: Target,
    free: torch.Tensor,
    options: dict[str, Any],
    *,
    scan: Scan = "random",
    proposal_temperature: float = 1.0,
    proposals_per_sweep: int | None = None,
    lengths: tuple[int, int] | None = None,
    length_prior: str | torch.Tensor = "uniform",
    length_moves: int | None = None,
) -> SweepSampler:
    """The sampler of a run (:func:`pyro_mlm.run.loop.build`) or of
    :class:`~pyro_mlm.pyro.kernel.SamplerKernel`, from ``options`` as given and already
    checked (:func:`~pyro_mlm.samplers.options.check_settings`, called once by the run's
    spec or the kernel's constructor; the sizes against the free positions by
    :func:`~pyro_mlm.samplers.options.check_sizes`).

    With ``lengths=(MIN, MAX)`` the sampler runs over the padded rows' free mask ``free`` and
    is wrapped in :class:`~pyro_mlm.samplers.lengths.VariableLength` with ``length_prior``
    and ``length_moves``; a sweep is then one proposal per position of the longest region
    (MAX) unless ``proposals_per_sweep`` says otherwise.
    """
    most = None if lengths is None else lengths[1]
    sampler = registry()[name](
        target, free, scan=scan, proposal_temperature=proposal_temperature,
        proposals_per_sweep=most if proposals_per_sweep is None else proposals_per_sweep,
        **options,
    )  # fmt: skip
    if lengths is None:
        return sampler
    from pyro_mlm.samplers.lengths import VariableLength

    return VariableLength(sampler, lengths, length_prior, length_moves)
