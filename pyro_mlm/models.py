"""Loading masked language models and talking to them.

This is the only module that touches ``transformers``. Everything else sees a
:class:`MaskedLM`, whose one hot-path method is :meth:`MaskedLM.masked_logits`:
the raw LM-head scores at one masked position per row.

The LM head is applied only where it is needed: a forward hook on the encoder
gathers the hidden state of each row's masked position before the head runs, so a
row of length ``L`` costs ``1 x H x V`` head FLOPs instead of ``L x H x V``. The
hook is checked against the plain forward at construction; an architecture whose
head is not position-wise falls back to the full forward (``head_mode="full"``).
"""

from __future__ import annotations

import contextlib
import os
import socket
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

ANTIBERTY_REQUIREMENT = "antiberty==0.1.3"


class _GatherHook:
    """Forward hook that keeps only the hidden state at each row's masked position."""

    def __init__(self) -> None:
        self.positions: torch.Tensor | None = None

    def __call__(self, module: torch.nn.Module, args: Any, output: Any) -> Any:
        if self.positions is None:
            return None
        hidden = output[0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        gathered = hidden[rows, self.positions.to(hidden.device)].unsqueeze(1)
        if isinstance(output, tuple):
            return (gathered, *output[1:])
        first_key = next(iter(output.keys()))
        output[first_key] = gathered
        return output


class MaskedLM:
    """A Hugging Face masked language model with its tokenizer.

    Parameters
    ----------
    model
        Any ``transformers`` masked LM (``BertForMaskedLM``, ``RobertaForMaskedLM``,
        ``EsmForMaskedLM``, ``AlbertForMaskedLM``, ...). It is put in ``eval()`` mode:
        dropout would make the energy random.
    tokenizer
        The matching tokenizer; it must define a mask token.
    proposable
        Allow-list of tokens the samplers may propose (ids, or token strings such as
        ``"ACDEFGHIKLMNPQRSTVWY"``, which iterates over single characters). Default:
        the vocabulary minus special and added tokens.
    split
        Encode text by splitting it into vocabulary tokens with this function
        (``list`` for protein and antibody models, one residue per token; a SMILES
        regex for chemistry) instead of the tokenizer's own pre-tokenisation. Tokens
        outside the vocabulary are rejected, never mapped to the unknown token. The
        mask token's text (e.g. ``[MASK]``) may appear in the string.
    char_level
        Shorthand for ``split=list``.

    Examples
    --------
    >>> mlm = MaskedLM.antiberty()                      # doctest: +SKIP
    >>> ids = mlm.encode("EVQLVESGGG")                  # doctest: +SKIP
    >>> mlm.decode(ids)                                 # doctest: +SKIP
    'EVQLVESGGG'
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        proposable: Iterable[int | str] | None = None,
        split: Callable[[str], list[str]] | None = None,
        char_level: bool = False,
        name: str | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"MaskedLM expects a transformers model (torch.nn.Module), got "
                f"{type(model).__name__}; load one with AutoModelForMaskedLM."
            )
        get_head = getattr(model, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        if head is None or not hasattr(model, "config"):
            raise TypeError(
                f"{type(model).__name__} has no masked-LM head; load the model with "
                "transformers.AutoModelForMaskedLM (e.g. BertForMaskedLM), not AutoModel "
                "or a classification model."
            )
        mask_id = getattr(tokenizer, "mask_token_id", None)
        if mask_id is None:
            raise ValueError(
                f"the tokenizer {type(tokenizer).__name__} defines no mask token; a masked "
                "LM needs one (tokenizer.mask_token)."
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.split = list if (char_level and split is None) else split
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.vocab_size = int(head.weight.shape[0])
        self.mask_token_id = int(mask_id)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_token_id: int | None = None if pad is None else int(pad)
        special = set(int(i) for i in getattr(tokenizer, "all_special_ids", []))
        special.add(self.mask_token_id)
        self.special_ids = torch.tensor(sorted(i for i in special if 0 <= i < self.vocab_size))
        self.proposable_ids = self._resolve_proposable(proposable, special)
        self.max_length = _max_length(model, tokenizer)
        self._hook = _GatherHook()
        self.head_mode = "full"
        base = _encoder_of(model)
        if base is not None:
            handle = base.register_forward_hook(self._hook)
            if self._gather_matches_full():
                self.head_mode = "gather"
            else:
                handle.remove()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        proposable: Iterable[int | str] | None = None,
        **kwargs: Any,
    ) -> MaskedLM:
        """Load a masked LM from a local directory, a hub id, or a packaged name.

        Packaged names (``"antiberty"``, ``"sapiens-h"``, ``"sapiens-l"``,
        ``"rxnmapper"``) load models shipped inside PyPI wheels (see
        :mod:`pyro_mlm.packaged`). A local directory works offline; a hub id needs
        network access or a populated Hugging Face cache (when the hub cannot be
        reached, only the cache is tried, so an offline failure is quick).
        """
        from pyro_mlm.packaged import PACKAGED

        if not isinstance(name_or_path, str) or not name_or_path:
            raise TypeError(f"expected a model name or directory, got {name_or_path!r}")
        loader = PACKAGED.get(name_or_path.lower())
        if loader is not None:
            return loader(device, dtype)
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        is_dir = os.path.isdir(name_or_path)
        if not is_dir and (
            name_or_path.startswith((".", "/", "~")) or os.path.exists(name_or_path)
        ):
            raise ValueError(
                f"no model directory at {name_or_path!r} (packaged models: "
                f"{', '.join(sorted(PACKAGED))})"
            )
        offline = not is_dir and not _hub_reachable()
        if offline:
            kwargs.setdefault("local_files_only", True)
        try:
            with quiet_transformers():
                model = AutoModelForMaskedLM.from_pretrained(name_or_path, dtype=dtype, **kwargs)
                tokenizer = AutoTokenizer.from_pretrained(
                    name_or_path, local_files_only=bool(kwargs.get("local_files_only", False))
                )
        except (OSError, ValueError) as err:
            known = ", ".join(sorted(PACKAGED))
            if is_dir:
                raise ValueError(
                    f"could not load a masked LM from the directory {name_or_path!r}: {err}. "
                    "It needs config.json, the weights and the tokenizer files."
                ) from err
            raise ValueError(
                f"unknown model {name_or_path!r}: not a packaged model ({known}), not a "
                + (
                    "local directory, and the Hugging Face hub cannot be reached (offline) "
                    "nor is it in the local cache. Offline, use a packaged model or a local "
                    "directory saved with save_pretrained(); online, check the hub id."
                    if offline
                    else f"local directory, and the hub could not serve it: {err}"
                )
            ) from err
        return cls(model.to(device), tokenizer, proposable=proposable, name=name_or_path)

    @classmethod
    def antiberty(
        cls, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> MaskedLM:
        """AntiBERTy (BERT MLM, 8 layers, hidden 512, 25 tokens) from the ``antiberty`` wheel.

        Needs ``pip install antiberty==0.1.3`` (version 1.0.0 downloads its weights).
        Only the package's files are read: the checkpoint loads into
        ``BertForMaskedLM`` (the pooler and the species/chain heads are dropped), and
        the tokenizer is built from ``vocab.txt`` with ``vocab=`` (transformers 5.x
        ignores ``vocab_file=``). ``encode`` takes a plain residue string.
        """
        from pyro_mlm.packaged import load_antiberty

        return load_antiberty(device, dtype)

    @classmethod
    def sapiens(
        cls,
        chain: str = "H",
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> MaskedLM:
        """Sapiens antibody model for heavy (``"H"``) or light (``"L"``) chains.

        Needs ``pip install --no-deps sapiens==1.0.5`` (the package declares fairseq
        and an old torch; neither is used). The fairseq checkpoint is converted to
        ``RobertaForMaskedLM``; at most 142 residues.
        """
        from pyro_mlm.packaged import load_sapiens

        return load_sapiens(chain, device, dtype)

    @classmethod
    def rxnmapper(
        cls, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> MaskedLM:
        """rxnmapper's ALBERT masked LM over reaction SMILES.

        Needs ``pip install --no-deps rxnmapper==0.4.3`` (it pins transformers < 5).
        """
        from pyro_mlm.packaged import load_rxnmapper

        return load_rxnmapper(device, dtype)

    # ------------------------------------------------------------------ tokens
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

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
                    f"sequence {_short(text)!r} has pieces outside the vocabulary of "
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
                f"sequence {_short(text)!r} has characters outside the vocabulary of "
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

    def content_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """Indices of the non-special tokens of a ``[L]`` sequence (residues, words).

        Position ``k`` (0-based) of the text is token ``content_positions(tokens)[k]``;
        mask tokens count as content (they stand for a residue or word).
        """
        special = self.special_mask(tokens) & (tokens != self.mask_token_id)
        return (~special).nonzero().flatten()

    def special_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """Boolean mask of special tokens ([CLS], [SEP], [PAD], [MASK], ...)."""
        return torch.isin(tokens, self.special_ids.to(tokens.device))

    def attention_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """1 where a token is real, 0 at padding (all ones when there is no pad token)."""
        if self.pad_token_id is None:
            return torch.ones_like(tokens)
        return (tokens != self.pad_token_id).long()

    # ------------------------------------------------------------------ forward
    def masked_logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """Raw LM-head scores at one position per row, ``s_t(X)`` in float32.

        Parameters
        ----------
        input_ids
            ``[N, L]`` token ids; the caller has already put the mask token at
            ``positions``.
        attention_mask
            ``[N, L]``, 1 for real tokens and 0 for padding.
        positions
            ``[N]`` the position whose scores are wanted in each row.

        Returns
        -------
        Tensor ``[N, V]`` of logits ``s_{positions[n]}(input_ids[n])``.
        """
        device = self.device
        input_ids = input_ids.to(device)
        positions = positions.to(device)
        with torch.inference_mode():
            if self.head_mode == "gather":
                self._hook.positions = positions
                try:
                    out = self.model(input_ids=input_ids, attention_mask=attention_mask.to(device))
                finally:
                    self._hook.positions = None
                logits = out.logits[:, 0]
            else:
                out = self.model(input_ids=input_ids, attention_mask=attention_mask.to(device))
                rows = torch.arange(input_ids.shape[0], device=device)
                logits = out.logits[rows, positions]
        # clone outside inference mode: callers get an ordinary tensor they may modify
        return logits[:, : self.vocab_size].float().clone()

    # ------------------------------------------------------------------ helpers
    def _resolve_proposable(
        self, proposable: Iterable[int | str] | None, special: set[int]
    ) -> torch.Tensor:
        if proposable is None:
            added = set(int(i) for i in getattr(self.tokenizer, "added_tokens_decoder", {}))
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

    def _gather_matches_full(self) -> bool:
        """Check that the gather hook gives the plain forward's logits on a probe batch."""
        length = min(8, self.max_length or 8)
        gen = torch.Generator().manual_seed(0)
        ids = self.proposable_ids[
            torch.randint(len(self.proposable_ids), (2, length), generator=gen)
        ].to(self.device)
        positions = torch.tensor([1, length - 2], device=self.device)
        ids[torch.arange(2), positions] = self.mask_token_id
        attn = torch.ones_like(ids)
        try:
            with torch.inference_mode():
                full = self.model(input_ids=ids, attention_mask=attn).logits
                full = full[torch.arange(2), positions].float()
                self._hook.positions = positions
                gathered = self.model(input_ids=ids, attention_mask=attn).logits[:, 0].float()
        except Exception:
            return False
        finally:
            self._hook.positions = None
        scale = full.abs().max().clamp_min(1.0)
        return bool(gathered.shape == full.shape and ((gathered - full).abs().max() / scale) < 1e-3)

    def __repr__(self) -> str:
        return (
            f"MaskedLM({self.name!r}, vocab={self.vocab_size}, "
            f"proposable={len(self.proposable_ids)}, head={self.head_mode})"
        )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether huggingface.co answers on port 443 (False when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("", "0", "false", "no"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _encoder_of(model: torch.nn.Module) -> torch.nn.Module | None:
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    return base if isinstance(base, torch.nn.Module) and base is not model else None


def _max_length(model: torch.nn.Module, tokenizer: Any) -> int | None:
    cfg = model.config
    n = getattr(cfg, "max_position_embeddings", None)
    if n is not None and getattr(cfg, "position_embedding_type", "absolute") == "absolute":
        if getattr(cfg, "model_type", "") in _OFFSET_POSITION_MODELS:
            n -= int(getattr(cfg, "pad_token_id", 1) or 0) + 1
        return int(n)
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and limit < 1_000_000 else None


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
