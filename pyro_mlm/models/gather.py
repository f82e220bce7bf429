"""Rows through the LM head at the wanted positions only: a forward hook on the encoder
keeps each row's hidden states at its masked positions, so the head's matmul (the
vocabulary's width) runs on ``[N, P]`` states instead of ``[N, L]``.
:class:`~pyro_mlm.models.mlm.MaskedLM` installs it where it gives the full head's logits."""

from __future__ import annotations

from typing import Any

import torch


class GatherHook:
    """Forward hook that keeps only the hidden states at each row's wanted positions."""

    def __init__(self) -> None:
        self.positions: torch.Tensor | None = None  # [N, P]

    def __call__(self, module: torch.nn.Module, args: Any, output: Any) -> Any:
        if self.positions is None:
            return None
        hidden = output[0]
        index = self.positions.to(hidden.device).unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        gathered = hidden.gather(1, index)
        if isinstance(output, tuple):
            return (gathered, *output[1:])
        first_key = next(iter(output.keys()))
        output[first_key] = gathered
        return output


def encoder_of(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model's encoder (its ``base_model_prefix`` module), where the hook goes; None
    when it has none."""
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    return base if isinstance(base, torch.nn.Module) and base is not model else None
