r"""Mask-Predict (Ghazvininejad et al. 2019): the non-autoregressive decoder baseline.

For a conditional MLM and a sequence whose free positions (e.g. the target of a
translation) are to be filled, with :math:`T` free positions and :math:`N` iterations:

- iteration 0 masks every free position and takes, in one parallel pass,
  :math:`y_i = \arg\max_v p(v \mid Y^{mask})` with confidence :math:`c_i = \max_v p`;
  this alone is the *warm start* (one parallel greedy pass);
- iteration :math:`k = 1, \dots, N-1` re-masks the :math:`n_k = \lfloor T (N-k)/N \rfloor`
  free positions of lowest confidence and re-predicts them (and only them) in one
  pass, updating their tokens and confidences.

Probabilities are the softmax of the MLM's scores over the proposable tokens, as for
the samplers' proposals. Each iteration is one forward pass per sequence. These are
*decoders*, not samplers: they target no distribution.
"""

from __future__ import annotations

import torch

from pyro_mlm.models.mlm import MaskedLM


def predict_masked(
    mlm: MaskedLM, tokens: torch.Tensor, masked: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax token and its probability at every position, with ``masked`` positions masked.

    ``tokens [B, L]``, ``masked [B, L]`` bool; one forward pass for the whole batch.
    Returns ``(ids [B, L], confidence [B, L])`` over the proposable tokens (values at
    positions that are not masked are meaningless).
    """
    rows = tokens.masked_fill(masked, mlm.mask_token_id)
    proposable = mlm.proposable_ids.to(tokens.device)
    positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
    logits = mlm.logits_at(rows, mlm.attention_mask(rows), positions).to(tokens.device)
    probs = torch.softmax(logits[..., proposable], dim=-1)
    confidence, column = probs.max(-1)
    return proposable[column], confidence


def mask_predict(
    mlm: MaskedLM, tokens: torch.Tensor, free: torch.Tensor, iterations: int = 10
) -> torch.Tensor:
    """Fill the ``free`` positions of ``tokens [B, L]`` by Mask-Predict.

    ``iterations=1`` is the warm start (one parallel greedy pass). The current tokens
    at free positions are ignored: iteration 0 masks them all.

    Examples
    --------
    >>> filled = mask_predict(mlm, tokens, free, iterations=10)     # doctest: +SKIP
    """
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    if tokens.shape != free.shape or tokens.dim() != 2:
        raise ValueError(
            f"tokens and free must both be [B, L], got {tuple(tokens.shape)} and "
            f"{tuple(free.shape)}"
        )
    free = free.to(torch.bool)
    ids, confidence = predict_masked(mlm, tokens, free)
    out = torch.where(free, ids, tokens)
    confidence = torch.where(free, confidence, torch.full_like(confidence, float("inf")))
    count = free.sum(-1)
    for k in range(1, iterations):
        n = (count * (iterations - k)) // iterations  # [B]
        if int(n.max()) == 0:
            break
        order = confidence.argsort(dim=-1)  # lowest confidence first; fixed ones (inf) last
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order).contiguous())
        remask = free & (rank < n.unsqueeze(-1))
        ids, new_confidence = predict_masked(mlm, out, remask)
        out = torch.where(remask, ids, out)
        confidence = torch.where(remask, new_confidence, confidence)
    return out


def warm_start(mlm: MaskedLM, tokens: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """One parallel greedy pass: :func:`mask_predict` with one iteration."""
    return mask_predict(mlm, tokens, free, iterations=1)
