"""A translation-language-model (TLM) style conditional MLM: layout, tokenizer, saving.

One BERT sequence holds the source and the target::

    [CLS] source pieces [SEP] target pieces [SEP]

The model is a plain ``BertForMaskedLM``: the side of the first ``[SEP]`` tells source
from target, so no segment ids are needed and the model loads through
``pyro_mlm.MaskedLM`` like any other MLM. The target positions are the free ones; the
source is fixed context. The proposable tokens are the pieces seen in English training
targets (``target_ids``), so samplers never propose German into the target.

A target-length predictor (a linear map from the ``[CLS]`` state of the source alone,
``[CLS] source [SEP]``, to a length class, as Mask-Predict's length token) is saved next
to the model in ``length_predictor.safetensors``; ``translation.json`` holds the
limits and the target ids.

With ``pad_source`` (``train.py --pad-source``), the source is padded to
``max_source`` pieces *inside* the sequence::

    [CLS] source pieces [PAD] ... [PAD] [SEP] target pieces [SEP]

The pads are masked out of attention (``MaskedLM.attention_mask``), so they change
nothing but the positions: the target always starts at position ``max_source + 2``, and
target piece ``j`` sits a fixed distance after source piece ``j``. With BERT's absolute
position embeddings that makes copying an aligned source piece easy to learn, which is
most of prose style transfer (XLM's TLM gets the same by restarting the target's
position ids, which a plain ``BertForMaskedLM`` called with ``input_ids`` only cannot).
It costs ``max_source - len(source)`` extra positions per row.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import BertConfig, BertForMaskedLM, BertTokenizer

from pyro_mlm import MaskedLM

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass(frozen=True)
class Layout:
    """Limits saved with the model: longest source and target, in pieces."""

    max_source: int
    max_target: int
    target_ids: tuple[int, ...]
    pad_source: bool = False  # source padded to max_source: the target starts at a fixed place

    def target_start(self, source_length: int) -> int:
        """Position of the first target piece after a source of ``source_length`` pieces."""
        return (self.max_source if self.pad_source else source_length) + 2

    @property
    def max_length(self) -> int:
        return self.max_source + self.max_target + 3


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> BertTokenizer:
    """A cased WordPiece vocabulary shared by German and English (deterministic)."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL, show_progress=False
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    # the trainer breaks count ties in a varying order, so its ids vary from run to run
    # (its token set does not); WordPiece segments by longest match over the set, so
    # renumbering (specials first, then the pieces sorted) changes no segmentation
    pieces = sorted(set(tokenizer.get_vocab()) - set(SPECIAL))
    vocab = {token: i for i, token in enumerate(SPECIAL + pieces)}
    return BertTokenizer(
        vocab=vocab, do_lower_case=False, tokenize_chinese_chars=False, strip_accents=False
    )


def pieces(tokenizer: BertTokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def join(
    tokenizer: BertTokenizer,
    source: Sequence[int],
    target: Sequence[int],
    layout: Layout,
) -> list[int]:
    """``[CLS] source [SEP] target [SEP]`` as ids; the source padded to
    ``layout.max_source`` with ``[PAD]`` when ``layout.pad_source``."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    padding = []
    if layout.pad_source:
        padding = [tokenizer.pad_token_id] * (layout.max_source - len(source))
    return [cls, *source, *padding, sep, *target, sep]


def source_only(tokenizer: BertTokenizer, source: Sequence[int]) -> list[int]:
    """``[CLS] source [SEP]``: the length predictor's input."""
    return [tokenizer.cls_token_id, *source, tokenizer.sep_token_id]


def build_model(vocab_size: int, layout: Layout, hidden: int, layers: int) -> BertForMaskedLM:
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
        max_position_embeddings=layout.max_length,
        type_vocab_size=1,
        pad_token_id=0,
    )
    return BertForMaskedLM(config)


class LengthPredictor(torch.nn.Module):
    """Target length (0 .. max_target) from the ``[CLS]`` state of ``[CLS] source [SEP]``."""

    def __init__(self, hidden: int, max_target: int) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(hidden, max_target + 1)

    def forward(self, cls_state: torch.Tensor) -> torch.Tensor:
        return self.proj(cls_state)


def save(
    directory: str,
    model: BertForMaskedLM,
    tokenizer: BertTokenizer,
    predictor: LengthPredictor,
    layout: Layout,
    task: str = "de-en",
) -> None:
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    weights = {name: t.detach().cpu() for name, t in predictor.state_dict().items()}
    save_file(weights, os.path.join(directory, "length_predictor.safetensors"))
    with open(os.path.join(directory, "translation.json"), "w", encoding="utf-8") as handle:
        json.dump({**asdict(layout), "target_ids": list(layout.target_ids), "task": task}, handle)


@dataclass
class Translator:
    """A saved TLM: the ``MaskedLM`` (proposals restricted to target pieces) and its parts."""

    mlm: MaskedLM
    predictor: LengthPredictor
    layout: Layout
    task: str = "de-en"  # data.TASKS key; models saved before tasks existed are de-en

    @classmethod
    def load(cls, directory: str, device: str = "cpu") -> Translator:
        with open(os.path.join(directory, "translation.json"), encoding="utf-8") as handle:
            raw = json.load(handle)
        layout = Layout(raw["max_source"], raw["max_target"], tuple(raw["target_ids"]),
                        raw.get("pad_source", False))  # fmt: skip
        mlm = MaskedLM.from_pretrained(directory, device=device, proposable=layout.target_ids)
        hidden = mlm.model.config.hidden_size
        predictor = LengthPredictor(hidden, layout.max_target)
        path = os.path.join(directory, "length_predictor.safetensors")
        predictor.load_state_dict(load_file(path))
        return cls(mlm, predictor.eval().to(device), layout, raw.get("task", "de-en"))

    @property
    def tokenizer(self) -> BertTokenizer:
        return self.mlm.tokenizer

    def predict_lengths(self, sources: Sequence[Sequence[int]]) -> list[int]:
        """Most likely target length (at least 1) for each source."""
        rows = [source_only(self.tokenizer, s) for s in sources]
        ids = pad(rows, self.tokenizer.pad_token_id)
        with torch.inference_mode():
            states = self.mlm.model.bert(
                input_ids=ids.to(self.mlm.device),
                attention_mask=(ids != self.tokenizer.pad_token_id).to(self.mlm.device),
            ).last_hidden_state[:, 0]
            logits = self.predictor(states)
            logits[:, 0] = float("-inf")
        return logits.argmax(-1).cpu().tolist()

    def decode_target(self, ids: Sequence[int]) -> str:
        """Text of the target pieces of ``[CLS] source [SEP] target [SEP] [PAD]...``."""
        sep = self.tokenizer.sep_token_id
        seq = list(ids)
        start = seq.index(sep) + 1
        end = seq.index(sep, start)
        text = self.tokenizer.decode(seq[start:end], skip_special_tokens=True)
        # the decoder joins "," and "." to the word before but leaves "up : behold";
        # English and German put no space there either
        return re.sub(r" ([:;!?])", r"\1", str(text))


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Right-pad id lists into a ``[B, L]`` tensor."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out
