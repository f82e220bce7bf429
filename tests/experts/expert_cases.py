"""The case list every declared expert joins (like tests/samplers/sampler_cases.py).

One entry per expert of :data:`pyro_mlm.experts.declared.DECLARED`, on a tiny protein model
over the residues ``K D A`` (a composition expert needs residues): the exactness test (every
expert at once in one product, sampled and enumerated), the resume test and the bad-input
tests run over ``EXPERT_CASES``, and a test fails when a declared expert has no entry, so a
new expert cannot skip them.

The start is ``KDAK`` with residues 2-4 free (27 sequences). ``{model}`` and
``{classifier}`` in a case's text stand for a saved second tiny masked LM and a saved tiny
sequence classifier (:func:`saved_models`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from conftest import tiny_mlm

from pyro_mlm import MaskedLM

RESIDUES = ("K", "D", "A")  # charge +1, -1 and 0 at pH 7.4
START = "KDAK"
FREE = "2-4"


@dataclass(frozen=True)
class ExpertCase:
    """A declared expert with settings for the protein start, and inputs it must refuse."""

    id: str
    expert: str  # its name in DECLARED
    options: str  # the text after "NAME:" in --expert NAME:OPTIONS
    bad: tuple[tuple[str, str], ...]  # (OPTIONS, the error it gives, a regular expression)

    def text(self, paths: dict[str, str]) -> str:
        return f"{self.expert}:{self.options.format(**paths)}"

    def __repr__(self) -> str:
        return self.id


EXPERT_CASES = [
    ExpertCase(
        "max-mutations",
        "max-mutations",
        "k=2",
        (("k=-1", "k must be >= 0"), ("k=two", "needs k=<integer>, got 'two'")),
    ),
    ExpertCase(
        "forbid",
        "forbid",
        "pattern=DK",
        (("pattern=[", "does not compile"), ("pattern=DK;scope=nowhere", "scope must be")),
    ),
    ExpertCase(
        "allowed",
        "allowed",
        "sites=3:KA",
        (("sites=9:KD", "outside the sequence"), ("sites=3:Z", "not a token the model can")),
    ),
    ExpertCase(
        "composition",
        "composition",
        "property=charge;target=1;weight=0.1",
        (("property=mass;target=0", "charge or hydrophobicity"), ("property=charge", "target")),
    ),
    ExpertCase(
        "mlm",
        "mlm",
        "model={model};weight=0.5",
        (("weight=1", "needs model="), ("model=/no/such/dir", "no model directory")),
    ),
    ExpertCase(
        "classifier",
        "classifier",
        "model={classifier};label=1;weight=0.5;spaced=true",
        (("label=1", "needs model="), ("model=/no/such/dir", "no model directory")),
    ),
]


def protein_mlm(seed: int = 0) -> MaskedLM:
    """The tiny protein model of the cases (residues ``K D A``, one token each)."""
    return tiny_mlm(words=RESIDUES, split=list, init_range=0.3, seed=seed)


def saved_models(directory: str) -> dict[str, str]:
    """Save the run's model, a second masked LM and a sequence classifier under
    ``directory``; returns the paths the cases' texts name."""
    from transformers import BertConfig, BertForSequenceClassification

    paths = {name: os.path.join(directory, name) for name in ("run", "model", "classifier")}
    for name, seed in (("run", 0), ("model", 1)):
        mlm = protein_mlm(seed)
        mlm.model.save_pretrained(paths[name])
        mlm.tokenizer.save_pretrained(paths[name])
    torch.manual_seed(2)
    config = BertConfig(
        vocab_size=len(protein_mlm().tokenizer), hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, num_labels=2, initializer_range=0.5,
    )  # fmt: skip
    BertForSequenceClassification(config).eval().save_pretrained(paths["classifier"])
    protein_mlm().tokenizer.save_pretrained(paths["classifier"])
    return paths
