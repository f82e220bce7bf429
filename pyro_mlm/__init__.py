"""pyro_mlm: masked language models as energy-based models, sampled exactly with Pyro.

Goyal, Dyer & Berg-Kirkpatrick (ICLR 2022) read an MLM as an energy model over token
sequences; :class:`MaskedMH` samples it with Metropolis-Hastings using the MLM's own
masked conditionals as proposals, and :class:`MaskedGibbs` is the degenerate
always-accept baseline.
"""

from pyro_mlm.diagnostics import plot_energy_trace, summary, to_inference_data
from pyro_mlm.energy import Evaluation, MLMEnergy
from pyro_mlm.kernel import MaskedGibbs, MaskedMH
from pyro_mlm.mh import MHInfo, MHState
from pyro_mlm.models import MaskedLM
from pyro_mlm.potential import MaskedUniformTokens, mlm_model, potential_fn

__version__ = "0.1.0"

__all__ = [
    "Evaluation",
    "MHInfo",
    "MHState",
    "MLMEnergy",
    "MaskedGibbs",
    "MaskedLM",
    "MaskedMH",
    "MaskedUniformTokens",
    "mlm_model",
    "plot_energy_trace",
    "potential_fn",
    "summary",
    "to_inference_data",
]
