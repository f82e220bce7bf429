"""pyro_mlm: masked language models as energy-based models, sampled exactly with Pyro.

Goyal, Dyer & Berg-Kirkpatrick (ICLR 2022) read an MLM as an energy model over token
sequences; :class:`MaskedMH` samples it with Metropolis-Hastings using the MLM's own
masked conditionals as proposals, and :class:`MaskedGibbs` is the degenerate
always-accept baseline.

The names below are imported on first use, so ``import pyro_mlm`` (and the command
line's ``--help``) does not pay for torch, Pyro and ArviZ until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "EnergyError": "pyro_mlm.target",
    "Evaluation": "pyro_mlm.energy",
    "MHInfo": "pyro_mlm.samplers.transitions",
    "MHState": "pyro_mlm.samplers.transitions",
    "MLMEnergy": "pyro_mlm.energy",
    "MaskedGibbs": "pyro_mlm.pyro.masked",
    "MaskedLM": "pyro_mlm.models",
    "MaskedMH": "pyro_mlm.pyro.masked",
    "MaskedUniformTokens": "pyro_mlm.pyro.potential",
    "SamplerKernel": "pyro_mlm.pyro.kernel",
    "Target": "pyro_mlm.target",
    "Vocabulary": "pyro_mlm.models.vocabulary",
    "mlm_model": "pyro_mlm.pyro.potential",
    "get_tokens": "pyro_mlm.pyro.conversion",
    "parse_free": "pyro_mlm.design.sites",
    "plot_energy_trace": "pyro_mlm.report.plots",
    "potential_fn": "pyro_mlm.pyro.potential",
    "single_mutants": "pyro_mlm.landscape.mutants",
    "summary": "pyro_mlm.report.diagnostics",
    "to_inference_data": "pyro_mlm.pyro.conversion",
}

__all__ = [
    "EnergyError",
    "Evaluation",
    "MHInfo",
    "MHState",
    "MLMEnergy",
    "MaskedGibbs",
    "MaskedLM",
    "MaskedMH",
    "MaskedUniformTokens",
    "SamplerKernel",
    "Target",
    "Vocabulary",
    "get_tokens",
    "mlm_model",
    "parse_free",
    "plot_energy_trace",
    "potential_fn",
    "single_mutants",
    "summary",
    "to_inference_data",
]

if TYPE_CHECKING:
    from pyro_mlm.design.sites import parse_free
    from pyro_mlm.energy import Evaluation, MLMEnergy
    from pyro_mlm.models import MaskedLM
    from pyro_mlm.models.vocabulary import Vocabulary
    from pyro_mlm.pyro.conversion import get_tokens, to_inference_data
    from pyro_mlm.pyro.kernel import SamplerKernel
    from pyro_mlm.pyro.masked import MaskedGibbs, MaskedMH
    from pyro_mlm.pyro.potential import MaskedUniformTokens, mlm_model, potential_fn
    from pyro_mlm.report.diagnostics import summary
    from pyro_mlm.report.plots import plot_energy_trace
    from pyro_mlm.samplers.transitions import MHInfo, MHState
    from pyro_mlm.target import EnergyError, Target


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pyro_mlm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
