r"""Scoring many sequences: both energies from one set of masked passes, in batches.

For each sequence, :math:`E_\text{norm}` (the negative pseudo-log-likelihood) and
:math:`E_\text{raw}` over all its content positions. Sequences are grouped by length
and sent together, so a file of many short sequences costs a few large forward passes
instead of one small pass per sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from pyro_mlm.energy import MLMEnergy
from pyro_mlm.models.vocabulary import short
from pyro_mlm.run.progress import Progress
from pyro_mlm.target import check_finite, mlm_source

if TYPE_CHECKING:
    from pyro_mlm.models.mlm import MaskedLM
    from pyro_mlm.models.vocabulary import Vocabulary

KINDS = ("norm", "raw")


def encode_all(vocab: Vocabulary, texts: Sequence[str]) -> list[torch.Tensor]:
    """Token ids of every text, each checked; an error names the sequence's number."""
    encoded = []
    for number, text in enumerate(texts, start=1):
        try:
            ids = vocab.encode(text)
        except ValueError as err:
            raise ValueError(f"sequence {number}: {err}") from err
        vocab.check_length(len(ids), f"sequence {number} ({short(text, 30)!r})")
        if not bool((~vocab.special_mask(ids)).any()):
            raise ValueError(f"sequence {number} ({short(text, 30)!r}) has nothing to score")
        encoded.append(ids)
    return encoded


def regions(
    vocab: Vocabulary, encoded: Sequence[torch.Tensor], free: str, numbering: str = "imgt"
) -> list[torch.Tensor]:
    """Each sequence's free mask under ``--free`` (numbered regions by ANARCI, per sequence);
    an error names the sequence's number."""
    from pyro_mlm.design.sites import parse_free

    out = []
    for number, ids in enumerate(encoded, start=1):
        try:
            out.append(parse_free(free, ids, vocab, numbering))
        except ValueError as err:
            raise ValueError(f"sequence {number}: --free {free}: {err}") from err
    return out


def score_sequences(
    mlm: MaskedLM,
    texts: Sequence[str],
    kinds: Sequence[str] = KINDS,
    *,
    batch_size: int = 64,
    progress: bool = True,
    region: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per text: ``sequence``, ``positions`` and ``energy_<kind>`` for each kind.

    Both energies come from the same masked passes. With ``norm`` there is also
    ``norm_per_position`` (mean negative log-likelihood per position). ``region``
    (``{"free": spec, "numbering": scheme}``, the ``--free`` grammar of ``sample`` read on
    each sequence) sums the energies over that region only, the energy ``sample`` reports
    with ``--energy-over free``; default every content position.
    """
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {list(kinds)}")
    encoded = encode_all(mlm, texts)
    energy = MLMEnergy(mlm)
    results: list[dict[str, Any] | None] = [None] * len(texts)
    by_length: dict[int, list[int]] = {}
    for index, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(index)
    free = None if region is None else region["free"]
    scheme = "imgt" if region is None else region.get("numbering", "imgt")
    masks = [] if free is None else regions(mlm, encoded, free, scheme)

    def masks_of(chunk: list[int]) -> torch.Tensor:
        return torch.stack([masks[i] for i in chunk])

    bar = Progress(len(texts), enabled=progress, desc=f"{mlm.name} score", unit="seq")
    with torch.no_grad():
        for indices in by_length.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                tokens = torch.stack([encoded[i] for i in chunk]).to(mlm.device)
                mask = ~mlm.special_mask(tokens) if free is None else masks_of(chunk)
                values = energy.both(tokens, mask.to(mlm.device))
                for kind in kinds:
                    check_finite(values[kind], tokens, mlm, mlm_source(energy))
                for row, index in enumerate(chunk):
                    results[index] = _row(texts[index], int(mask[row].sum()), values, row, kinds)
                bar.update(len(chunk))
    bar.close()
    return [r for r in results if r is not None]


def _row(
    text: str, positions: int, values: dict[str, torch.Tensor], row: int, kinds: Sequence[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"sequence": text, "positions": positions}
    for kind in kinds:
        out[f"energy_{kind}"] = round(float(values[kind][row]), 4)
    if "norm" in kinds:
        out["norm_per_position"] = round(out["energy_norm"] / max(positions, 1), 4)
    return out
