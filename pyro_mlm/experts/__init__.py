r"""Experts: constraints and extra energies a design campaign multiplies into the MLM.

Each expert is a small picklable object ``tokens [N, L] -> energy [N]`` that
:class:`pyro_mlm.target.Target` adds to the MLM energy, so the sampler targets the
product of experts

.. math::

    \pi(X) \propto \exp\Big(-\big(E_\text{MLM}(X) + \sum_k w_k E_k(X)\big) / T\Big)
        \prod_j \mathbb{1}[X \in C_j].

*Hard* experts (``max-mutations``, ``forbid``, ``allowed``) return 0 or ``+inf`` (the
indicator of their set :math:`C_j`; a weight means nothing for them); *soft* ones
(``composition``, ``mlm``, ``classifier``) return a finite energy times their weight.
``allowed`` also restricts the *proposal* at its positions (``Target`` masks the
conditionals), so no row is spent on a token the target forbids; MH stays exact because
the current and the proposed token are both allowed, and the restricted conditional
gives both Hastings terms.

Each expert is declared once, torch-free, in :mod:`.declared` (name, keys, hard or soft,
whether it restricts the proposal, whether it loads a model, help); the command line builds
them by name from :data:`EXPERTS` (:mod:`.registry`): ``--expert NAME`` or
``--expert NAME:key=value;key=value`` (``NAME:value`` sets the expert's main key). The
names below are imported on first use, so reading the declarations loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyro_mlm.experts.base import INF, Context, Expert, _Text
    from pyro_mlm.experts.constraints import LIABILITIES, Allowed, Forbid, MaxMutations
    from pyro_mlm.experts.declared import DECLARED, EXPERTS_HELP, parse_expert
    from pyro_mlm.experts.energies import (
        Classifier,
        Composition,
        HuggingFaceClassifier,
        MLMExpert,
    )
    from pyro_mlm.experts.registry import EXPERTS, build_expert, check_start

_EXPORTS = {
    **dict.fromkeys(("INF", "Context", "Expert", "_Text"), "base"),
    **dict.fromkeys(("LIABILITIES", "Allowed", "Forbid", "MaxMutations"), "constraints"),
    **dict.fromkeys(("DECLARED", "EXPERTS_HELP", "parse_expert"), "declared"),
    **dict.fromkeys(
        ("Classifier", "Composition", "HuggingFaceClassifier", "MLMExpert"), "energies"
    ),
    **dict.fromkeys(("EXPERTS", "build_expert", "check_start"), "registry"),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pyro_mlm.experts' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pyro_mlm.experts.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DECLARED", "EXPERTS", "EXPERTS_HELP", "INF", "LIABILITIES", "Allowed", "Classifier",
    "Composition", "Context", "Expert", "Forbid", "HuggingFaceClassifier", "MLMExpert",
    "MaxMutations", "_Text", "build_expert", "check_start", "parse_expert",
]  # fmt: skip
