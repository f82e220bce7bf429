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

The command line builds them by name from :data:`EXPERTS`: ``--expert NAME`` or
``--expert NAME:key=value;key=value`` (``NAME:value`` sets the expert's main key).

>>> sorted(EXPERTS)
['allowed', 'classifier', 'composition', 'forbid', 'max-mutations', 'mlm']
>>> parse_expert("max-mutations:k=3")
('max-mutations', {'k': '3'})
>>> parse_expert("forbid:N[^P][ST]")
('forbid', {'pattern': 'N[^P][ST]'})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from pyro_mlm.models.vocabulary import Vocabulary

from pyro_mlm.experts.base import INF, Context, Expert, _Text
from pyro_mlm.experts.constraints import LIABILITIES, Allowed, Forbid, MaxMutations
from pyro_mlm.experts.energies import Classifier, Composition, HuggingFaceClassifier, MLMExpert

__all__ = [
    "EXPERTS", "INF", "LIABILITIES", "Allowed", "Classifier", "Composition", "Context",
    "Expert", "Forbid", "HuggingFaceClassifier", "MLMExpert", "MaxMutations", "_Text",
    "build_expert", "check_start", "parse_expert",
]  # fmt: skip

EXPERTS: dict[str, type[Expert]] = {
    cls.name: cls for cls in (MaxMutations, Forbid, Allowed, Composition, MLMExpert, Classifier)
}


def parse_expert(spec: str) -> tuple[str, dict[str, str]]:
    """``"NAME:key=value;key=value"`` (or ``"NAME:value"`` for the main key) -> name, options."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if name not in EXPERTS:
        raise ValueError(f"unknown expert {name!r}; registered: {', '.join(sorted(EXPERTS))}")
    cls = EXPERTS[name]
    options: dict[str, str] = {}
    if rest and "=" not in rest.split(";")[0] and cls.MAIN is not None:
        options[cls.MAIN] = rest
        return name, options
    for item in filter(None, (p.strip() for p in rest.split(";"))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in cls.KEYS:
            keys = ", ".join(f"{k} ({h})" for k, h in cls.KEYS.items())
            raise ValueError(f"expert {name!r} takes no key {key!r}; its keys: {keys}")
        options[key] = value.strip()
    return name, options


def build_expert(spec: str, context: Context) -> Expert:
    """One expert from its command-line text (see :func:`parse_expert`)."""
    name, options = parse_expert(spec)
    return EXPERTS[name].build(context, **options)


def check_start(
    experts: Sequence[Any],
    tokens: torch.Tensor,
    vocabulary: Vocabulary,
    numbering: Callable[[torch.Tensor], tuple[str, dict[int, str]]] | None = None,
) -> None:
    """Refuse a start ``[C, L]`` that a hard expert forbids, naming the expert and chain,
    and what it holds where: in the run's numbering when ``numbering`` (a sequence's ids
    ``[L]`` -> its scheme's name and token index -> label, e.g. ``("IMGT", {...})``) is
    given, else in residue numbers."""
    from pyro_mlm.models.vocabulary import short

    for expert in experts:
        if not getattr(expert, "hard", False):
            continue
        bad = torch.isinf(expert(tokens)).nonzero().flatten()
        if bad.numel():
            chain = int(bad[0])
            detail = ""
            if isinstance(expert, Forbid):
                row = tokens[chain]
                scheme, labels = ("residues", {}) if numbering is None else numbering(row)
                numbers = vocabulary.residue_numbers(row).tolist()

                named = {i: labels.get(i, str(n)) for i, n in enumerate(numbers)}
                held = expert.matches(row.tolist(), named.__getitem__, scheme)
                detail = f" (it holds {', '.join(held)})"
            raise ValueError(
                f"the start of chain {chain}, {short(vocabulary.decode(tokens[chain]), 60)!r}, "
                f"violates the constraint {expert.describe()}{detail}; start from a sequence "
                f"that satisfies it"
            )
