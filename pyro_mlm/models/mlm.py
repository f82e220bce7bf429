"""Loading masked language models and talking to them.

This is the only module that touches ``transformers``. Everything else sees a
:class:`MaskedLM`, whose one forward method is :meth:`MaskedLM.logits_at`: the raw
LM-head scores at chosen positions of rows that may hold several mask tokens
(:meth:`MaskedLM.masked_logits` is its one-position-per-row case, the energy's hot path).

The LM head is applied only where it is needed: a forward hook on the encoder
gathers the hidden states of each row's wanted positions before the head runs, so a
row of length ``L`` costs ``P x H x V`` head FLOPs for ``P`` positions instead of
``L x H x V``. The
hook is checked against the plain forward at construction; an architecture whose
head is not position-wise falls back to the full forward (``head_mode="full"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from pyro_mlm.models.gather import GatherHook, encoder_of
from pyro_mlm.models.vocabulary import Vocabulary, max_length_of

# name -> "module:function" of the loader behind each of MaskedLM's loading constructors:
# declared here and imported on first call (like the sampler registry), because loading sits
# above this module; nothing fills this table as a side effect of an import
LOADERS: dict[str, str] = {
    "from_pretrained": "pyro_mlm.models.load:load_model",
    "antiberty": "pyro_mlm.models.packaged:load_antiberty",
    "sapiens": "pyro_mlm.models.packaged:load_sapiens",
    "rxnmapper": "pyro_mlm.models.packaged:load_rxnmapper",
}


class MaskedLM(Vocabulary):
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
        self.model = model.eval()
        super().__init__(
            tokenizer,
            vocab_size=int(head.weight.shape[0]),
            max_length=max_length_of(model.config, tokenizer),
            proposable=proposable,
            split=list if (char_level and split is None) else split,
            name=name or getattr(model.config, "_name_or_path", "") or type(model).__name__,
        )
        self._hook = GatherHook()
        self.head_mode = "full"
        base = encoder_of(model)
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
        :mod:`pyro_mlm.models.packaged`). A local directory works offline; a hub id needs
        network access or a populated Hugging Face cache (when the hub cannot be
        reached, only the cache is tried, so an offline failure is quick).
        """
        return cls._loader("from_pretrained")(
            name_or_path, device=device, dtype=dtype, proposable=proposable, **kwargs
        )

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
        return cls._loader("antiberty")(device, dtype)

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
        return cls._loader("sapiens")(chain, device, dtype)

    @classmethod
    def rxnmapper(
        cls, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> MaskedLM:
        """rxnmapper's ALBERT masked LM over reaction SMILES.

        Needs ``pip install --no-deps rxnmapper==0.4.3`` (it pins transformers < 5).
        """
        return cls._loader("rxnmapper")(device, dtype)

    @classmethod
    def _loader(cls, name: str) -> Callable[..., MaskedLM]:
        """The loader behind a constructor, as :data:`LOADERS` declares it (imported now:
        the loaders sit above this module, so that imports run one way)."""
        import importlib

        module, function = LOADERS[name].split(":")
        loader: Callable[..., MaskedLM] = getattr(importlib.import_module(module), function)
        return loader

    # ------------------------------------------------------------------ tokens
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

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
        return self.logits_at(input_ids, attention_mask, positions.unsqueeze(-1))[:, 0]

    def logits_at(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        r"""Raw LM-head scores at several positions of each row, in float32: the one
        forward pass of the package (the multi-mask conditional).

        Row ``n`` may hold the mask token at many positions (the positions of a block
        being regenerated, or Mask-Predict's low-confidence positions); the scores at
        position ``t`` are then :math:`s_t(X_{\setminus M})`, the MLM's conditional at
        ``t`` given the row with every masked position ``M`` hidden. The LM head runs
        only at ``positions`` (``head_mode="gather"``).

        Parameters
        ----------
        input_ids
            ``[N, L]`` token ids, masks already in place.
        attention_mask
            ``[N, L]``, 1 for real tokens and 0 for padding.
        positions
            ``[N, P]`` the positions whose scores are wanted in each row (a row needing
            fewer may repeat one).

        Returns
        -------
        Tensor ``[N, P, V]``: ``out[n, p] = s_{positions[n, p]}(input_ids[n])``.
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
                logits = out.logits
            else:
                out = self.model(input_ids=input_ids, attention_mask=attention_mask.to(device))
                index = positions.unsqueeze(-1).expand(-1, -1, out.logits.shape[-1])
                logits = out.logits.gather(1, index)
        # clone outside inference mode: callers get an ordinary tensor they may modify
        return logits[..., : self.vocab_size].float().clone()

    # ------------------------------------------------------------------ helpers
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
                self._hook.positions = positions.unsqueeze(-1)
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
