"""Checks at the boundary: tokens, free masks and temperatures from users.

Every failure is a ``TypeError`` or ``ValueError`` that says what was expected, what
came, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from pyro_mlm.models.vocabulary import Vocabulary


def check_tokens(tokens: object, mlm: Vocabulary, name: str = "tokens") -> torch.Tensor:
    """Return ``tokens`` as an int64 tensor ``[..., L]`` after checking it fits the model."""
    if not isinstance(tokens, torch.Tensor):
        if isinstance(tokens, Sequence) and not isinstance(tokens, str):
            tokens = torch.as_tensor(tokens)
        else:
            raise TypeError(
                f"{name} must be a LongTensor of token ids [..., L], got {type(tokens).__name__}; "
                "use mlm.encode(text)"
            )
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(
            f"{name} must hold integer token ids (torch.long), got dtype {tokens.dtype}; "
            "use mlm.encode(text), or tokens.long() on exact integer values (the float64 "
            "tokens of mcmc.get_samples())"
        )
    tokens = tokens.long()
    if tokens.dim() == 0 or tokens.shape[-1] == 0:
        raise ValueError(f"{name} must have shape [..., L] with L >= 1, got {tuple(tokens.shape)}")
    bad = (tokens < 0) | (tokens >= mlm.vocab_size)
    if bool(bad.any()):
        first = int(tokens[bad].flatten()[0])
        raise ValueError(
            f"{name} holds id {first}, outside the vocabulary [0, {mlm.vocab_size}) of "
            f"{mlm.name}; encode text with this model's tokenizer (mlm.encode)"
        )
    mlm.check_length(tokens.shape[-1], name)
    return tokens


def resolve_free(free: object, tokens: torch.Tensor, mlm: Vocabulary) -> torch.Tensor:
    """Boolean mask ``[..., L]`` (broadcast to ``tokens``) of the positions that may change.

    ``None`` means every non-special position. A bool tensor or list of bools is a
    mask over positions (shape ``[L]`` or ``tokens.shape``); an integer tensor or list
    of ints lists positions. Every sequence needs at least one free position, and no
    special token ([CLS], [SEP], [PAD], [MASK]) may be free.
    """
    special = mlm.special_mask(tokens)
    if free is None:
        mask = ~special
    else:
        if not isinstance(free, torch.Tensor):
            if not isinstance(free, Sequence) or isinstance(free, str):
                raise TypeError(
                    f"free must be a bool mask over positions or a list of positions, got "
                    f"{type(free).__name__}"
                )
            free = torch.as_tensor(free)
        free = free.to(tokens.device)
        if free.dtype == torch.bool:
            if free.shape != tokens.shape and free.shape != tokens.shape[-1:]:
                raise ValueError(
                    f"free mask has shape {tuple(free.shape)} but tokens have shape "
                    f"{tuple(tokens.shape)}; pass a bool mask of shape [L]={tokens.shape[-1]} "
                    "or the shape of the tokens"
                )
            mask = free.expand(tokens.shape).clone()
        elif not free.dtype.is_floating_point and free.dim() == 1:
            length = tokens.shape[-1]
            if bool(((free < -length) | (free >= length)).any()):
                raise ValueError(
                    f"free positions {free.tolist()} fall outside a sequence of length {length}"
                )
            mask = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
            mask[..., free % length] = True
        else:
            raise TypeError(
                f"free must be a bool mask or a 1-D list of integer positions, got a "
                f"{free.dtype} tensor of shape {tuple(free.shape)}"
            )
        clash = mask & special
        if bool(clash.any()):
            pos = sorted(set(clash.nonzero()[:, -1].tolist()))
            raise ValueError(
                f"positions {pos} are marked free but hold special tokens "
                f"({mlm.tokenizer.convert_ids_to_tokens(int(tokens[clash][0]))}); special "
                "tokens are fixed context: leave them out of free"
            )
    empty = ~mask.any(-1)
    if bool(empty.any()):
        raise ValueError(
            "the free set is empty for at least one sequence: nothing to sample or score. "
            "Mark at least one non-special position free (free=None frees all of them)"
        )
    return mask


def check_temperature(value: object, name: str = "temperature") -> float:
    """A finite, strictly positive float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    value = float(value)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be finite and > 0, got {value}; use e.g. 1.0")
    return value


def check_proposals(value: object, name: str = "proposals_per_sweep") -> int | None:
    """Proposals per sweep: a positive int, or None for one sweep (``|free|`` proposals);
    ``name`` is the argument as the caller spelled it."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive int or None (one sweep), got {value!r}")
    return value


def check_chains(tokens: object, free: torch.Tensor, mlm: Vocabulary) -> torch.Tensor:
    """``tokens [C, L]`` checked against a sampler's free mask ``free [C, L]``.

    The checks :class:`~pyro_mlm.pyro.kernel.SamplerKernel` makes at its boundary, for a
    sampler's own ``init``: integer ids inside the vocabulary (:func:`check_tokens`), the
    mask's shape (chains and length), no special token free, and a proposable token at
    every free position (the target has no mass elsewhere).
    """
    tokens = check_tokens(tokens, mlm, "tokens")
    if tokens.shape != free.shape:
        raise ValueError(
            f"tokens have shape {tuple(tokens.shape)}, but the sampler was built for "
            f"{free.shape[0]} chains of length {free.shape[1]} (its free mask {tuple(free.shape)})"
            "; pass one row per chain, of the length the free mask has"
        )
    special = mlm.special_mask(tokens).to(free.device) & free & (tokens != mlm.mask_token_id)
    if bool(special.any()):
        chain, pos = (int(i) for i in special.nonzero()[0])
        raise ValueError(
            f"the free mask frees position {pos} of chain {chain}, which holds the special "
            f"token {mlm.tokens_text([int(tokens[chain, pos])])!r}; special tokens stay fixed"
        )
    proposable = mlm.proposable_ids.to(tokens.device)
    outside = free & ~torch.isin(tokens, proposable)
    if bool(outside.any()):
        chain, pos = (int(i) for i in outside.nonzero()[0])
        raise ValueError(
            f"free position {pos} of chain {chain} holds "
            f"{mlm.tokens_text([int(tokens[chain, pos])])!r}, outside the proposable tokens, "
            "where the target has no mass; start from proposable tokens there"
        )
    return tokens


def resolve_proposable_free(free: object, tokens: torch.Tensor, mlm: Vocabulary) -> torch.Tensor:
    """:func:`resolve_free`, refusing free positions that hold a token the model never
    proposes (the target has no mass there): the Pyro shell's check of its start."""
    mask = resolve_free(free, tokens, mlm)
    outside = mask & ~torch.isin(tokens, mlm.proposable_ids.to(tokens.device))
    if bool(outside.any()):
        pos = sorted(set(outside.nonzero()[:, -1].tolist()))
        raise ValueError(
            f"free positions {pos} hold tokens outside the proposable set, where the "
            "target has no mass; start from proposable tokens there or widen "
            "MaskedLM(proposable=...)"
        )
    return mask


def check_initial_params(params: object, mlm: Vocabulary) -> torch.Tensor:
    """The tokens ``[L]`` or ``[C, L]`` of Pyro's ``initial_params={"tokens": ...}``."""
    if not isinstance(params, dict) or set(params) != {"tokens"}:
        raise ValueError(
            f"initial_params must be {{'tokens': LongTensor[L] or [C, L]}}, got "
            f"{params if not isinstance(params, dict) else sorted(params)}"
        )
    tokens = check_tokens(params["tokens"], mlm, "initial tokens")
    if tokens.dim() > 2:
        raise ValueError(
            f"initial tokens must be [L] or [C, L] (C vectorised chains), got shape "
            f"{tuple(tokens.shape)}; with pyro's num_chains=P pass [P, L] or [P, C, L]"
        )
    return tokens
