"""Masked language models: names to models, tokens to ids, rows to scores.

Imports run one way, ``load -> packaged -> mlm -> vocabulary``:

- :mod:`.vocabulary`: a model's tokens without its weights (:class:`Vocabulary`);
- :mod:`.mlm`: :class:`MaskedLM`, the only code that runs a ``transformers`` model
  (single- and multi-mask conditionals);
- :mod:`.fairseq`: converting fairseq checkpoints (Sapiens) to ``transformers``;
- :mod:`.packaged`: models that ship inside PyPI wheels (AntiBERTy, Sapiens, rxnmapper);
- :mod:`.load`: any model or vocabulary by name, directory or hub id.

The names below are imported on first use (the command line's ``--help`` needs none of
them). ``MaskedLM``'s loading constructors (``from_pretrained``, ``antiberty``, ``sapiens``,
``rxnmapper``) find their loaders in :data:`.mlm.LOADERS`, a declared table.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyro_mlm.models.load import load_model, load_vocabulary, load_worker_model
    from pyro_mlm.models.mlm import MaskedLM
    from pyro_mlm.models.packaged import PACKAGED
    from pyro_mlm.models.vocabulary import Vocabulary

_EXPORTS = {
    "MaskedLM": "pyro_mlm.models.mlm",
    "Vocabulary": "pyro_mlm.models.vocabulary",
    "PACKAGED": "pyro_mlm.models.packaged",
    "load_model": "pyro_mlm.models.load",
    "load_vocabulary": "pyro_mlm.models.load",
    "load_worker_model": "pyro_mlm.models.load",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pyro_mlm.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "PACKAGED",
    "MaskedLM",
    "Vocabulary",
    "load_model",
    "load_vocabulary",
    "load_worker_model",
]
