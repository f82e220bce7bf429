"""Tokens without weights: encoding, decoding and special positions of a masked LM.

A :class:`Vocabulary` knows everything about a model's tokens (the tokenizer, the
proposable ids, the maximum length) and nothing about its weights, so a command line
can check sequences, free positions and lengths in a second, before a model that
takes a minute to load is read. :class:`pyro_mlm.models.mlm.MaskedLM` is a
``Vocabulary`` with a model attached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch

_OFFSET_POSITION_MODELS = {
    # position ids start at pad_token_id + 1, so max_position_embeddings overcounts
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "longformer",
    "data2vec-text",
    "roberta-prelayernorm",
    "esm",
}


class Vocabulary:
    """A tokenizer read for sampling: ids, special tokens, proposable tokens, length limit.

    Parameters
    ----------
    tokenizer
        A Hugging Face tokenizer; it must define a mask token.
    vocab_size
        Rows of the model's LM head (default ``len(tokenizer)``).
    max_length
        Most tokens the model takes, special tokens included (``None``: no limit known).
    proposable
        Allow-list of tokens the samplers may propose (ids, or token strings such as
        ``"ACDEFGHIKLMNPQRSTVWY"``). Default: the vocabulary minus special and added tokens.
    split
        Encode text by splitting it into vocabulary tokens with this function (``list``
        for protein models) instead of the tokenizer's pre-tokenisation; pieces outside
        the vocabulary are refused, never mapped to the unknown token.
    name
        A name for messages.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        vocab_size: int | None = None,
        max_length: int | None = None,
        proposable: Iterable[int | str] | None = None,
        split: Callable[[str], list[str]] | None = None,
        name: str = "model",
    ) -> None:
        mask_id = getattr(tokenizer, "mask_token_id", None)
        if mask_id is None:
            raise ValueError(
                f"the tokenizer {type(tokenizer).__name__} defines no mask token; a masked "
                "LM needs one (tokenizer.mask_token)."
            )
        self.tokenizer = tokenizer
        self.split = split
        self.name = name
        self.vocab_size = int(vocab_size if vocab_size is not None else len(tokenizer))
        self.max_length = max_length
        self.mask_token_id = int(mask_id)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_token_id: int | None = None if pad is None else int(pad)
        special = {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
        special.add(self.mask_token_id)
        self.special_ids = torch.tensor(sorted(i for i in special if 0 <= i < self.vocab_size))
        self.proposable_ids = self._resolve_proposable(proposable, special)

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of ``text`` with the model's special tokens, as LongTensor ``[L]``.

        With ``split`` (packaged protein and chemistry models) the text is split into
        vocabulary tokens and wrapped in the start and end tokens; any piece outside
        the vocabulary raises ``ValueError`` naming it and the allowed tokens.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        if self.split is None:
            ids = torch.tensor(self.tokenizer(text)["input_ids"], dtype=torch.long)
            unk = getattr(self.tokenizer, "unk_token_id", None)
            unk_text = getattr(self.tokenizer, "unk_token", None)
            if unk is not None and bool((ids == unk).any()) and (unk_text or "") not in text:
                words = [w for w in text.split() if unk in self.tokenizer(w)["input_ids"]]
                raise ValueError(
                    f"sequence {short(text)!r} has pieces outside the vocabulary of "
                    f"{self.name} (they would become {unk_text!r}): {words[:10]}"
                )
            return ids
        if not text:
            raise ValueError(f"cannot encode an empty sequence with {self.name}")
        vocab = self.tokenizer.get_vocab()
        mask_text = str(self.tokenizer.mask_token)
        pieces: list[str] = []
        for i, part in enumerate(text.split(mask_text)):
            if i:
                pieces.append(mask_text)
            pieces.extend(self.split(part) if part else [])
        bad = sorted({p for p in pieces if p not in vocab})
        if bad:
            allowed = self.tokens_text(self.proposable_ids, sep=" " if len(vocab) > 40 else "")
            shown = allowed if len(allowed) <= 200 else allowed[:200] + " ..."
            raise ValueError(
                f"sequence {short(text)!r} has characters outside the vocabulary of "
                f"{self.name}: {bad[:10]}; allowed: {shown}"
            )
        content = [int(vocab[p]) for p in pieces]
        cls_id = getattr(self.tokenizer, "cls_token_id", None)
        sep_id = getattr(self.tokenizer, "sep_token_id", None)
        if cls_id is not None:
            content.insert(0, int(cls_id))
        if sep_id is not None:
            content.append(int(sep_id))
        return torch.tensor(content, dtype=torch.long)

    def check_length(self, length: int, what: str = "the sequence") -> None:
        """``ValueError`` when ``length`` tokens (special tokens included) exceed the model's."""
        if self.max_length is not None and length > self.max_length:
            raise ValueError(
                f"{what} has length {length} but {self.name} has only {self.max_length} "
                "positions (special tokens included); shorten the sequence or split it"
            )

    def decode(self, ids: torch.Tensor | Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of a token sequence (split-encoded tokens are joined with no spaces)."""
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
        if self.split is not None:
            special = set(self.special_ids.tolist()) - {self.mask_token_id}
            keep = [i for i in ids if not (skip_special_tokens and i in special)]
            return self.tokens_text(keep)
        return str(self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens))

    def tokens_text(self, ids: torch.Tensor | Sequence[int], sep: str = "") -> str:
        """The vocabulary strings of ``ids`` joined by ``sep``."""
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
        return sep.join(str(t) for t in self.tokenizer.convert_ids_to_tokens(ids))

    def region_text(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Text of some content tokens (a free region): joined with no space for ``split``
        models (residues), with spaces for text models (word pieces). Pad tokens (the gaps
        of a region whose length varies) are left out."""
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
        ids = [i for i in ids if i != self.pad_token_id]
        return self.tokens_text(ids, sep="" if self.split is not None else " ")

    def content_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """Indices of the non-special tokens of a ``[L]`` sequence (residues, words).

        Position ``k`` (0-based) of the text is token ``content_positions(tokens)[k]``;
        mask tokens count as content (they stand for a residue or word).
        """
        special = self.special_mask(tokens) & (tokens != self.mask_token_id)
        return (~special).nonzero().flatten()

    def residue_numbers(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[L]``: the 1-based number of each content token (as ``--free`` counts), 0 at
        special tokens."""
        numbers = torch.zeros(tokens.shape[-1], dtype=torch.long)
        content = self.content_positions(tokens.cpu())
        numbers[content] = torch.arange(1, content.numel() + 1)
        return numbers

    def special_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """Boolean mask of special tokens ([CLS], [SEP], [PAD], [MASK], ...)."""
        return torch.isin(tokens, self.special_ids.to(tokens.device))

    def attention_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """1 where a token is real, 0 at padding (all ones when there is no pad token)."""
        if self.pad_token_id is None:
            return torch.ones_like(tokens)
        return (tokens != self.pad_token_id).long()

    def _resolve_proposable(
        self, proposable: Iterable[int | str] | None, special: set[int]
    ) -> torch.Tensor:
        if proposable is None:
            added = {int(i) for i in getattr(self.tokenizer, "added_tokens_decoder", {})}
            limit = min(self.vocab_size, len(self.tokenizer))
            ids = [i for i in range(limit) if i not in special and i not in added]
        else:
            ids = []
            for tok in proposable:
                if isinstance(tok, str):
                    tid = self.tokenizer.convert_tokens_to_ids(tok)
                    unk = getattr(self.tokenizer, "unk_token_id", None)
                    if tid is None or (
                        tid == unk and tok != getattr(self.tokenizer, "unk_token", None)
                    ):
                        raise ValueError(f"proposable token {tok!r} is not in the vocabulary")
                    ids.append(int(tid))
                elif isinstance(tok, int) and not isinstance(tok, bool):
                    ids.append(tok)
                else:
                    raise TypeError(f"proposable tokens must be ids or strings, got {tok!r}")
            bad = [i for i in ids if not 0 <= i < self.vocab_size or i in special]
            if bad:
                raise ValueError(
                    f"proposable ids {bad} are special or outside the vocabulary "
                    f"[0, {self.vocab_size}); list ordinary tokens only"
                )
        ids = sorted(set(ids))
        if not ids:
            raise ValueError("the proposable token set is empty")
        return torch.tensor(ids, dtype=torch.long)

    def __repr__(self) -> str:
        return (
            f"Vocabulary({self.name!r}, vocab={self.vocab_size}, "
            f"proposable={len(self.proposable_ids)}, max_length={self.max_length})"
        )


def max_length_of(config: Any, tokenizer: Any) -> int | None:
    """Most tokens a model takes, from its config (absolute positions) or its tokenizer."""
    n = getattr(config, "max_position_embeddings", None)
    if n is not None and getattr(config, "position_embedding_type", "absolute") == "absolute":
        if getattr(config, "model_type", "") in _OFFSET_POSITION_MODELS:
            n -= int(getattr(config, "pad_token_id", 1) or 0) + 1
        return int(n)
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and limit < 1_000_000 else None


def short(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report (the dropped AntiBERTy heads are expected)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
