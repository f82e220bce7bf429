"""Which positions a sampler may change, from the text a user types.

Positions count the sequence's *content* tokens, 1-based: residues for protein models,
word pieces for text models; the model's start and end tokens are not counted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads inside the functions: the CLI imports FREE_HELP from here
    import torch

    from pyro_mlm.models.vocabulary import Vocabulary

RANGES = re.compile(r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$")
FREE_CHAR, FIXED_CHAR = "*", "."
FREE_HELP = (
    "'all'; 'masked' (the positions holding the mask token); numbered antibody regions "
    "'cdrh1', 'cdrh2', 'cdrh3', 'cdrl1', 'cdrl2', 'cdrl3', 'cdrs' (all CDRs of the chain), "
    "by --numbering imgt or kabat through ANARCI (without it, cdrh3 from the conserved "
    "YYC and WGxG motifs); 1-based ranges such as '98-110' or '1-5,98-110', mixable with "
    "regions ('cdrh3,1-5'); or a mask string as long as the sequence, '*' free and '.' fixed"
)
PART_RANGE = re.compile(r"^\d+(\s*-\s*\d+)?$")


def cdr_h3_range(sequence: str) -> tuple[int, int]:
    """1-based inclusive residue range of a heavy chain's CDR-H3.

    It starts after the conserved ``YYC`` (or ``YFC``) that ends framework 3 and stops
    before the ``WGxG`` that starts framework 4 (so it includes IMGT's 105-106).
    """
    start = sequence.find("YYC")
    if start < 0:
        start = sequence.find("YFC")
    end = re.search(r"WG.G", sequence[start + 3 :]) if start >= 0 else None
    if start < 0 or end is None:
        raise ValueError(
            "could not find the CDR-H3 (between the conserved 'YYC' and 'WGxG' motifs of a "
            "heavy chain); give the residues to re-sample as a range, e.g. --free 98-110"
        )
    return start + 4, start + 3 + end.start()


def parse_free(
    spec: str, tokens: torch.Tensor, mlm: Vocabulary, numbering: str = "imgt"
) -> torch.Tensor:
    """Boolean mask ``[L]`` over ``tokens`` of the positions named by ``spec``.

    ``spec`` is one of: ``all``; ``masked``; comma-separated numbered regions
    (``cdrh3``, ``cdrs``, ..., by ``numbering``, see :mod:`pyro_mlm.design.numbering`) and
    ranges ``"98-110,120"`` (1-based content positions, inclusive); a mask string of
    ``*`` (free) and ``.`` (fixed), one character per content position.
    """
    import torch

    if not isinstance(spec, str):
        raise TypeError(f"free positions must be given as text, got {type(spec).__name__}")
    if tokens.dim() != 1:
        raise ValueError(f"parse_free expects one sequence [L], got shape {tuple(tokens.shape)}")
    content = mlm.content_positions(tokens)
    n = len(content)
    mask = torch.zeros(tokens.shape, dtype=torch.bool)
    text = spec.strip()
    if text == "all":
        chosen = list(range(n))
    elif text == "masked":
        chosen = [k for k in range(n) if int(tokens[content[k]]) == mlm.mask_token_id]
        if not chosen:
            raise ValueError(
                f"--free masked, but the sequence holds no mask token "
                f"({mlm.tokenizer.mask_token!r}); mark the positions to sample with it"
            )
    elif _has_regions(text):
        if mlm.split is not list:
            raise ValueError(f"--free {text} needs a protein model (one token per residue)")
        chosen = []
        for part in (p.strip() for p in text.split(",")):
            if PART_RANGE.match(part):
                chosen.extend(_range(part, n))
            else:
                chosen.extend(_region(part, mlm.decode(tokens), numbering))
        chosen = sorted(set(chosen))
    elif RANGES.match(text):
        chosen = []
        for part in text.split(","):
            chosen.extend(_range(part, n))
    elif set(text) <= {FREE_CHAR, FIXED_CHAR}:
        if len(text) != n:
            raise ValueError(
                f"the free mask string has {len(text)} characters, the sequence {n} positions"
            )
        chosen = [k for k, c in enumerate(text) if c == FREE_CHAR]
    else:
        raise ValueError(f"cannot read free positions {spec!r}; use {FREE_HELP}")
    if not chosen:
        raise ValueError(f"--free {spec!r} selects no position")
    mask[content[chosen]] = True
    return mask


def label_free(
    spec: str, tokens: torch.Tensor, free: torch.Tensor, mlm: Vocabulary, numbering: str = "imgt"
) -> dict[str, Any]:
    """What ``--free spec`` resolved to in one sequence, in the designer's terms.

    Returns ``{"positions": [1-based residue numbers], "labels": [...], "regions": [...],
    "how": ...}`` over the free positions of ``tokens [L]`` (mask ``free [L]``). Where
    ``spec`` names numbered regions and ANARCI numbered the chain (``how`` is
    ``"anarci-imgt"`` or ``"anarci-kabat"``), a label is the scheme's number with its
    insertion code (``111A``) and a region is ``CDR-H3``, ``FR-H4``, ...; where ``cdrh3``
    came from the conserved motifs (``"motif"``) the labels are residue numbers and the
    region ``CDR-H3``; otherwise (``"positions"``) residue numbers and no region.
    """
    from pyro_mlm.design.numbering import anarci_available, numbered_residues, region_name

    positions = [int(n) for n in mlm.residue_numbers(tokens)[free.cpu()].tolist()]
    labels, regions, how = [str(n) for n in positions], [""] * len(positions), "positions"
    if _has_regions(spec.strip()) and mlm.split is list:
        sequence = mlm.decode(tokens)
        if anarci_available():
            chain, residues = numbered_residues(sequence, numbering)
            by_index = {i: (num, code) for i, num, code in residues}
            how = f"anarci-{numbering}"
            for k, pos in enumerate(positions):
                if pos - 1 in by_index:
                    num, code = by_index[pos - 1]
                    labels[k] = f"{num}{code}"
                    regions[k] = region_name(chain, num, numbering)
        else:
            first, last = cdr_h3_range(sequence)
            how = "motif"
            regions = ["CDR-H3" if first <= pos <= last else "" for pos in positions]
    return {"positions": positions, "labels": labels, "regions": regions, "how": how}


def numbering_of(
    spec: str, mlm: Vocabulary, numbering: str = "imgt"
) -> Callable[[torch.Tensor], tuple[str, dict[int, str]]]:
    """The run's numbering of a whole sequence, for messages that name positions: ids
    ``[L]`` -> (the scheme's name, token index -> label). Where ``--free`` names numbered
    regions and ANARCI numbers the chain, the scheme's labels (``("IMGT", {i: "111A"})``;
    positions it leaves unnumbered keep their residue numbers); otherwise residue numbers
    (``("residues", {})``), which is what ``--free`` ranges use."""

    def number(tokens: torch.Tensor) -> tuple[str, dict[int, str]]:
        from pyro_mlm.design.numbering import anarci_available, numbered_residues

        if not (_has_regions(spec.strip()) and mlm.split is list and anarci_available()):
            return "residues", {}
        _, residues = numbered_residues(mlm.decode(tokens), numbering)
        at = {int(r) - 1: t for t, r in enumerate(mlm.residue_numbers(tokens).tolist()) if r}
        labels = {at[i]: f"{num}{code}" for i, num, code in residues if i in at}
        return numbering.upper() if numbering == "imgt" else numbering.capitalize(), labels

    return number


def _has_regions(text: str) -> bool:
    from pyro_mlm.design.numbering import REGIONS

    parts = [p.strip() for p in text.split(",")]
    return any(p in REGIONS for p in parts) and all(
        p in REGIONS or PART_RANGE.match(p) for p in parts
    )


def _region(region: str, sequence: str, numbering: str) -> list[int]:
    """0-based residue indices of a numbered region; ``cdrh3`` falls back to the motifs."""
    from pyro_mlm.design.numbering import INSTALL, anarci_available, region_indices

    if not anarci_available() and region == "cdrh3" and numbering == "imgt":
        _note_once(
            f"note: ANARCI is not installed ({INSTALL}); cdrh3 is read from the conserved "
            "YYC and WGxG motifs instead"
        )
        first, last = cdr_h3_range(sequence)
        return list(range(first - 1, last))
    return region_indices(region, sequence, numbering)


_NOTED: set[str] = set()


def _note_once(text: str) -> None:
    """A note on stderr, once per process (every chain's free mask asks again)."""
    import sys

    if text not in _NOTED:
        _NOTED.add(text)
        print(text, file=sys.stderr)


def _range(part: str, n: int) -> list[int]:
    """0-based indices of a 1-based inclusive range ``"98-110"`` in a sequence of ``n``."""
    lo, _, hi = part.partition("-")
    first, last = int(lo), int(hi or lo)
    if first == 0:
        raise ValueError(
            f"free range {part.strip()} falls outside the sequence: positions are "
            f"1-based (the first residue or word is 1), and this sequence's are 1-{n}"
        )
    if first > last:
        raise ValueError(
            f"free range {part.strip()} is reversed; write it low-high, as {last}-{first}"
        )
    if last > n:
        raise ValueError(
            f"free range {part.strip()} falls outside the sequence, whose positions are 1-{n}"
        )
    return list(range(first - 1, last))


def fill_masked(
    conditionals: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    tokens: torch.Tensor,
    where: torch.Tensor,
    proposable_ids: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Give the positions ``where`` (``[C, L]`` bool) values drawn left to right.

    Position :math:`t` gets :math:`x_t \sim \mathrm{softmax}(s_t(X_{\setminus t}))` over
    the proposable tokens, given everything filled so far (later positions keep their
    current tokens, typically the mask). A starting state for a sampler only: its law
    does not matter to MH. ``conditionals(tokens [N, L], positions [N]) -> [N, K]`` as
    :meth:`pyro_mlm.MLMEnergy.conditionals`.
    """
    import torch

    out = tokens.clone()
    proposable = proposable_ids.to(out.device)
    for t in range(out.shape[-1]):
        rows = where[:, t].nonzero().flatten()
        if len(rows) == 0:
            continue
        positions = torch.full((len(rows),), t, dtype=torch.long, device=out.device)
        logits = conditionals(out[rows], positions)
        probs = torch.softmax(logits.float(), -1)
        pick = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        out[rows, t] = proposable[pick]
    return out
