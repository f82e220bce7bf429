"""The one place a sampler is built from its name: the registry and :func:`build_sampler`.

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
    samplers = registry()
    if name not in samplers:
        raise ValueError(f"unknown sampler {name!r}; registered: {', '.join(sorted(samplers))}")
    cls = samplers[name]
    common = {"scan", "proposal_temperature", "proposals_per_sweep"}
    own = {k: v for k, v in settings.items() if k not in common}
    if name in SAMPLER_OPTIONS:  # the one check of settings a sampler would ignore
        counts = free.sum(-1).tolist() if hasattr(free, "sum") else None
        counts = [region_max] if region_max is not None else counts
        check_settings(
            name, own, temperature=float(getattr(target, "temperature", 1.0)),
            proposal_temperature=float(settings.get("proposal_temperature", 1.0)),
            free_counts=counts,
        )  # fmt: skip
    else:  # a sampler registered at run time, without a row in SAMPLER_OPTIONS
        unknown = sorted(set(own) - set(cls.OPTIONS))
        if unknown:
            raise ValueError(f"sampler {name!r} takes no option {unknown}")
    return cls(target, free, **settings)
