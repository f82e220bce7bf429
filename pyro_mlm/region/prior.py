r"""The length prior :math:`\log\lambda(n)` of a region whose length varies: uniform, a
per-residue penalty, or a file of observed length weights."""

from __future__ import annotations

import math
import os

import torch

from pyro_mlm.region.lengths import check_covered, read_weights


def length_prior(
    text: str, lengths: tuple[int, int], weights: dict[int, float] | None = None
) -> torch.Tensor:
    r""":math:`\log \lambda(n)` for :math:`n = 0 .. n_{\max}` (``-inf`` outside the range).

    ``uniform`` (:math:`\lambda = 1`); ``penalty:VALUE`` (:math:`\log\lambda(n) = -\text{VALUE}
    \cdot n`, a per-residue penalty); or a file of lines ``LENGTH WEIGHT`` (weights > 0, every
    length of the range listed once, ``#`` comments), e.g. observed CDR-H3 length
    frequencies. ``weights``, when given, are the file's weights as recorded when a run
    started (:attr:`pyro_mlm.run.spec.RunSpec.length_weights`): the file is not read again.

    >>> length_prior("penalty:0.5", (1, 2)).tolist()
    [-inf, -0.5, -1.0]
    """
    lo, hi = lengths
    out = torch.full((hi + 1,), float("-inf"), dtype=torch.float64)
    span = torch.arange(lo, hi + 1, dtype=torch.float64)
    if text == "uniform":
        out[lo:] = 0.0
    elif text.startswith("penalty:"):
        try:
            value = float(text.partition(":")[2])
        except ValueError:
            value = float("nan")
        if not math.isfinite(value):
            raise ValueError(f"--length-prior penalty:VALUE needs a finite number, got {text!r}")
        out[lo:] = -value * span
    elif weights is not None or os.path.isfile(text):
        weights = read_weights(text) if weights is None else weights
        check_covered(text, weights, lengths)
        for n in range(lo, hi + 1):
            out[n] = math.log(weights[n])
    else:
        raise ValueError(
            f"--length-prior must be uniform, penalty:VALUE or a file of 'LENGTH WEIGHT' lines; "
            f"{text!r} is none of these (no such file)"
        )
    return out


def check_length_prior(
    prior: object, lengths: tuple[int, int] | None, name: str = "length_prior"
) -> str | torch.Tensor:
    r"""``prior`` checked at construction: text (read now, so a bad file fails here) or a
    tensor of :math:`\log\lambda(n)` for ``n = 0 .. MAX``; ``TypeError``/``ValueError``
    naming ``name`` and the form it takes."""
    if isinstance(prior, str):
        if lengths is not None and prior != "uniform":
            length_prior(prior, (lengths[0], lengths[0] + 1))  # the text, cheaply
            if not prior.startswith("penalty:"):
                check_covered(prior, read_weights(prior), lengths)
        elif prior != "uniform":
            raise ValueError(f"{name} needs lengths=(MIN, MAX)")
        return prior
    if isinstance(prior, torch.Tensor):
        want = None if lengths is None else (lengths[1] + 1,)
        if not prior.is_floating_point() or (want is not None and tuple(prior.shape) != want):
            raise ValueError(
                f"{name} as a tensor holds log lambda(n) for n = 0 .. MAX: a float tensor of "
                f"shape {want}, got {prior.dtype} {tuple(prior.shape)}"
            )
        return prior
    raise TypeError(
        f"{name} takes 'uniform', 'penalty:VALUE', a file of 'LENGTH WEIGHT' lines, or a "
        f"tensor of log lambda(n) for n = 0 .. MAX; got {type(prior).__name__}"
    )
