"""Non-BERT masked LMs work through the same code path (tiny configs, no downloads)."""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import SPECIAL, WORDS
from exact import reference_energy
from transformers import BertTokenizer

from pyro_mlm import MaskedLM, MLMEnergy

COMMON = {
    "vocab_size": 13,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 40,
    "pad_token_id": 0,
}

CONFIGS = {
    "RobertaForMaskedLM": ("RobertaConfig", {}),
    "EsmForMaskedLM": ("EsmConfig", {"mask_token_id": 4, "position_embedding_type": "rotary"}),
    "AlbertForMaskedLM": ("AlbertConfig", {"embedding_size": 16}),
    "DistilBertForMaskedLM": (
        "DistilBertConfig",
        {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64},
    ),
    "ElectraForMaskedLM": ("ElectraConfig", {"embedding_size": 16}),
}


@pytest.mark.parametrize("architecture", sorted(CONFIGS))
def test_architecture_energies_match_reference(architecture: str) -> None:
    config_name, extra = CONFIGS[architecture]
    config = getattr(transformers, config_name)(**{**COMMON, **extra})
    torch.manual_seed(0)
    model = getattr(transformers, architecture)(config)
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(SPECIAL + WORDS)})
    mlm = MaskedLM(model, tokenizer)
    assert mlm.head_mode == "gather", "the LM head should be applied at masked positions only"
    tokens = torch.stack([mlm.encode("a b c d"), mlm.encode("h g f e")])
    for parametrization in ("norm", "raw"):
        energy = MLMEnergy(mlm, parametrization)(tokens)
        for i in range(2):
            expected = reference_energy(
                mlm, tokens[i], ~mlm.special_mask(tokens[i]), parametrization
            )
            assert energy[i].item() == pytest.approx(expected, abs=1e-4)
