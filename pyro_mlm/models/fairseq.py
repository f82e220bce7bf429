"""fairseq RoBERTa checkpoints as ``RobertaForMaskedLM``, without fairseq.

Sapiens (``sapiens==1.0.5``) ships fairseq checkpoints; these functions read one with
only tensors and ``argparse.Namespace`` allowed, build the matching ``RobertaConfig``
and rename the weights. The test suite checks the converted model against a forward
pass written from the checkpoint's own tensors.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# fairseq's Dictionary puts these four first, then dict.txt in order, then <mask>
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


def read_fairseq_checkpoint(path: str) -> dict[str, Any]:
    """``torch.load`` a fairseq checkpoint with only tensors and ``argparse.Namespace`` allowed."""
    import torch

    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return dict(checkpoint)


def fairseq_roberta_config(args: argparse.Namespace, vocab_size: int) -> Any:
    """``RobertaConfig`` of a fairseq ``roberta`` checkpoint's hyper-parameters."""
    from transformers import RobertaConfig

    if getattr(args, "encoder_normalize_before", False):
        raise ValueError("pre-LayerNorm fairseq RoBERTa checkpoints are not supported")
    if getattr(args, "activation_fn", "gelu") != "gelu":
        raise ValueError(f"unsupported activation {args.activation_fn!r} (expected gelu)")
    return RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=args.encoder_embed_dim,
        num_hidden_layers=args.encoder_layers,
        num_attention_heads=args.encoder_attention_heads,
        intermediate_size=args.encoder_ffn_embed_dim,
        hidden_act="gelu",
        max_position_embeddings=args.max_positions + 2,  # fairseq offsets by padding_idx + 1
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        hidden_dropout_prob=args.dropout,
        attention_probs_dropout_prob=args.attention_dropout,
    )


def fairseq_roberta_state_dict(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a fairseq RoBERTa ``model`` state dict to ``RobertaForMaskedLM``'s names.

    fairseq has no token-type embedding; RoBERTa's single type row is set to zero,
    which adds nothing to the embeddings.
    """
    import torch

    enc = "decoder.sentence_encoder."
    out: dict[str, torch.Tensor] = {
        "roberta.embeddings.word_embeddings.weight": weights[enc + "embed_tokens.weight"],
        "roberta.embeddings.position_embeddings.weight": weights[enc + "embed_positions.weight"],
        "roberta.embeddings.LayerNorm.weight": weights[enc + "emb_layer_norm.weight"],
        "roberta.embeddings.LayerNorm.bias": weights[enc + "emb_layer_norm.bias"],
        "lm_head.dense.weight": weights["decoder.lm_head.dense.weight"],
        "lm_head.dense.bias": weights["decoder.lm_head.dense.bias"],
        "lm_head.layer_norm.weight": weights["decoder.lm_head.layer_norm.weight"],
        "lm_head.layer_norm.bias": weights["decoder.lm_head.layer_norm.bias"],
        "lm_head.decoder.weight": weights["decoder.lm_head.weight"],
        "lm_head.decoder.bias": weights["decoder.lm_head.bias"],
        "lm_head.bias": weights["decoder.lm_head.bias"],
    }
    hidden = out["roberta.embeddings.word_embeddings.weight"].shape[1]
    out["roberta.embeddings.token_type_embeddings.weight"] = torch.zeros(1, hidden)
    layers = {int(k.split(".")[3]) for k in weights if k.startswith(enc + "layers.")}
    names = {
        "self_attn.q_proj": "attention.self.query",
        "self_attn.k_proj": "attention.self.key",
        "self_attn.v_proj": "attention.self.value",
        "self_attn.out_proj": "attention.output.dense",
        "self_attn_layer_norm": "attention.output.LayerNorm",
        "fc1": "intermediate.dense",
        "fc2": "output.dense",
        "final_layer_norm": "output.LayerNorm",
    }
    for i in sorted(layers):
        for src, dst in names.items():
            for kind in ("weight", "bias"):
                out[f"roberta.encoder.layer.{i}.{dst}.{kind}"] = weights[
                    f"{enc}layers.{i}.{src}.{kind}"
                ]
    return out
