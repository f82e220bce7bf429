"""The expert registry, read off the declarations (:mod:`pyro_mlm.experts.declared`):
:data:`EXPERTS`, building one expert from its command-line text, and the check that a
run's start satisfies every hard expert."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from pyro_mlm.experts.base import Context, Expert
from pyro_mlm.experts.constraints import Forbid
from pyro_mlm.experts.declared import DECLARED, parse_expert

if TYPE_CHECKING:
    from pyro_mlm.models.vocabulary import Vocabulary


def _class(path: str) -> type[Expert]:
    module, name = path.split(":")
    cls: type[Expert] = getattr(importlib.import_module(f"pyro_mlm.experts.{module}"), name)
    return cls


# name -> class, one entry per declaration
EXPERTS: dict[str, type[Expert]] = {name: _class(d.cls) for name, d in DECLARED.items()}


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
