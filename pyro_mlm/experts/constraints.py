"""Hard experts (0 or ``+inf``): at most k mutations, forbidden motifs, per-position alphabets."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from pyro_mlm.models.vocabulary import Vocabulary

from pyro_mlm.experts.base import INF, Context, Expert, _int, _Text
from pyro_mlm.region.layout import Region, edit_distance

# antibody sequence liabilities, as regular expressions over the residues
LIABILITIES: dict[str, str] = {
    "N-glycosylation": "N[^P][ST]",
    "isomerisation": "DG",
    "deamidation": "NG",
    "unpaired cysteine": "^[^C]*C(?:[^C]*C[^C]*C)*[^C]*$",  # an odd number of C
}

# pKa values (EMBOSS) for the net charge, and Kyte-Doolittle hydropathy


class MaxMutations(Expert):
    r"""At most ``k`` mutations from the parent over the free positions (EvoProtGrad's
    ``max_mutations``): :math:`E = +\infty` when :math:`\sum_{t \in F} [x_t \ne p_t] > k`.

    In a run whose region's length varies (``region``), the mutations are counted along the
    best alignment of the region to the parent's: the edit (Levenshtein) distance, in which
    an insertion and a deletion count one mutation each."""

    name = "max-mutations"

    def __init__(
        self, parent: torch.Tensor, free: torch.Tensor, k: int, region: Region | None = None
    ) -> None:
        if k < 0:
            raise ValueError(f"max-mutations: k must be >= 0, got {k}")
        self.parent, self.free, self.k, self.region = parent.cpu(), free.cpu(), k, region

    def energy(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.region is not None:
            mutations = torch.tensor(self.mutations(tokens), device=tokens.device)
        else:
            parent, free = self.parent.to(tokens.device), self.free.to(tokens.device)
            mutations = ((tokens != parent) & free).sum(-1)
        return torch.where(mutations > self.k, INF, 0.0).to(torch.float32)

    def mutations(self, tokens: torch.Tensor) -> list[int]:
        """Edit distances of each row's region to the parent's (variable-length runs)."""
        assert self.region is not None
        parent = self.parent.tolist()
        lo, hi = self.region.bounds(parent)
        reference = parent[lo:hi]
        out = []
        for row in tokens.tolist():
            a, b = self.region.bounds(row)
            out.append(edit_distance(row[a:b], reference))
        return out

    def describe(self) -> str:
        return f"max-mutations k={self.k}"

    @classmethod
    def build(cls, context: Context, **options: str) -> Expert:
        parent = context.parent
        if "parent" in options and context.region is not None:
            parent = _parent_of_region(context, context.vocabulary.encode(options["parent"]))
        elif "parent" in options:
            parent = context.vocabulary.encode(options["parent"])
            if parent.shape != context.parent.shape:
                raise ValueError(
                    f"max-mutations: the parent has {parent.numel()} tokens and the start "
                    f"{context.parent.numel()}; they must align position by position"
                )
        k = _int(options, "k", cls.name)
        return cls(parent.to(context.parent.device), context.free, k, context.region)


def _parent_of_region(context: Context, parent: torch.Tensor) -> torch.Tensor:
    """A parent for a variable-length region, read like the start: its region is what lies
    between the start's fixed flanks, of any length (the edit distance aligns it); the
    flanks must be the start's, or "the region" would mean other residues in each."""
    assert context.region is not None
    start = context.parent.tolist()
    lo, hi = context.region.bounds(start)
    ids = parent.tolist()
    before, after = start[:lo], start[hi : hi + context.region.after]
    if (
        len(ids) < len(before) + len(after)
        or ids[: len(before)] != before
        or (after and ids[len(ids) - len(after) :] != after)
    ):
        raise ValueError(
            "max-mutations: the parent's sequence outside the free region differs from the "
            "start's; give a parent with the start's framework (its region may have any length)"
        )
    return parent


class Forbid(Expert):
    r"""Motifs that may not occur: :math:`E = +\infty` when a regular expression matches
    the sequence's text at a place that overlaps a free position (``scope=free``, the
    default: motifs the fixed framework already holds cannot be changed, so they do not
    count), or anywhere (``scope=all``). ``preset=liabilities`` forbids the antibody
    liabilities in :data:`LIABILITIES` (N-glycosylation ``N[^P][ST]``, ``DG``
    isomerisation, ``NG`` deamidation, an unpaired cysteine).

    ``free [L]`` marks the free positions (``None``: every position counts)."""

    name = "forbid"

    def __init__(
        self,
        patterns: Sequence[str],
        vocabulary: Vocabulary,
        free: torch.Tensor | None = None,
        region: Region | None = None,
    ) -> None:
        self.patterns = list(patterns)
        self.compiled = []
        for pattern in self.patterns:
            try:
                # a lookahead finds overlapping matches too (NG in NNG, say)
                self.compiled.append(re.compile(f"(?=({pattern}))"))
            except re.error as err:
                raise ValueError(f"forbid: pattern {pattern!r} does not compile: {err}") from None
        self.text = _Text(vocabulary)
        self.free = None if free is None else free.cpu().tolist()
        self.region = region if free is not None else None  # a region whose length varies

    def matches(
        self, row: Sequence[int], label: Callable[[int], str] | None = None, scheme: str = ""
    ) -> list[str]:
        """What a sequence of ids holds that is forbidden, e.g. ``["'NG' at 55-56"]``: with
        ``label`` (token index -> the run's position label) and its ``scheme`` name, the
        labels of the first and last token of the match (``"'DG' at IMGT 110-111"``);
        without, 1-based character positions."""
        pieces: list[str] = []
        spans: list[tuple[int, int]] = []
        owner: list[int] = []  # the token index of each character
        at = 0
        free = self.free
        if self.region is not None:
            lo, hi = self.region.bounds(row)
            free = [lo <= i < hi for i in range(len(row))]
        for i, token in enumerate(row):
            piece = self.text.table[token]
            if not piece:
                continue
            if pieces and self.text.sep:
                at += len(self.text.sep)
                owner += [i] * len(self.text.sep)
            pieces.append(piece)
            if free is None or free[i]:
                spans.append((at, at + len(piece)))
            at += len(piece)
            owner += [i] * len(piece)
        text = self.text.sep.join(pieces)
        found = []
        for compiled in self.compiled:
            for match in compiled.finditer(text):
                lo, hi = match.start(1), match.end(1)
                if any(a < max(hi, lo + 1) and lo < b for a, b in spans):
                    if label is None or hi <= lo:
                        where = f"{lo + 1}-{hi}"
                    else:
                        first, last = label(owner[lo]), label(owner[hi - 1])
                        where = f"{scheme + ' ' if scheme else ''}{first}-{last}"
                    found.append(f"{match.group(1)[:20]!r} at {where}")
                    break
        return found

    def energy(self, tokens: torch.Tensor) -> torch.Tensor:
        bad = [bool(self.matches(row)) for row in tokens.tolist()]
        return torch.tensor([INF if b else 0.0 for b in bad], device=tokens.device)

    def describe(self) -> str:
        return "forbid " + " | ".join(self.patterns)

    @classmethod
    def build(cls, context: Context, **options: str) -> Expert:
        patterns: list[str] = []
        if "preset" in options:
            if options["preset"] != "liabilities":
                raise ValueError(f"forbid: unknown preset {options['preset']!r}; use liabilities")
            patterns.extend(LIABILITIES.values())
        if "pattern" in options:
            patterns.append(options["pattern"])
        if not patterns:
            raise ValueError("forbid needs pattern=<regex> or preset=liabilities")
        scope = options.get("scope", "free")
        if scope not in ("free", "all"):
            raise ValueError(f"forbid: scope must be free or all, got {scope!r}")
        free = context.free if scope == "free" else None
        return cls(patterns, context.vocabulary, free, context.region)


class Allowed(Expert):
    r"""Per-position alphabets, e.g. ``98-101:DEKR``: :math:`E = +\infty` when a listed
    position holds another token; the proposal there is restricted to the alphabet too.

    ``sites`` maps token indices to allowed token ids.
    """

    name = "allowed"

    def __init__(self, sites: Mapping[int, Sequence[int]], spec: str = "") -> None:
        self.sites = {int(t): sorted({int(i) for i in ids}) for t, ids in sites.items()}
        self.spec = spec

    def energy(self, tokens: torch.Tensor) -> torch.Tensor:
        bad = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
        for t, ids in self.sites.items():
            allowed = torch.tensor(ids, device=tokens.device)
            bad |= ~torch.isin(tokens[:, t], allowed)
        return torch.where(bad, INF, 0.0).to(torch.float32)

    def allowed(self, length: int, proposable_ids: torch.Tensor) -> torch.Tensor:
        """``[L, K]``: which proposable tokens each position may take (all, off the sites)."""
        mask = torch.ones(length, proposable_ids.numel(), dtype=torch.bool)
        for t, ids in self.sites.items():
            if t < length:
                mask[t] = torch.isin(proposable_ids.cpu(), torch.tensor(ids))
        return mask.to(proposable_ids.device)

    def describe(self) -> str:
        return f"allowed {self.spec}" if self.spec else f"allowed at {len(self.sites)} positions"

    @classmethod
    def build(cls, context: Context, **options: str) -> Expert:
        vocab, parent = context.vocabulary, context.parent
        if context.region is not None:
            raise ValueError(
                "allowed does not work with --lengths: its positions are fixed indices, which "
                "a region of another length moves; use forbid or composition"
            )
        text = options.get("sites", "")
        content = vocab.content_positions(parent)
        sites: dict[int, list[int]] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            where, _, letters = part.partition(":")
            lo, _, hi = where.partition("-")
            if not letters or not lo.strip().isdecimal() or (hi and not hi.strip().isdecimal()):
                raise ValueError(
                    f"allowed: cannot read {part!r}; write RANGE:LETTERS, e.g. 98-101:DEKR"
                )
            first, last = int(lo), int(hi or lo)
            if first < 1 or last > len(content) or first > last:
                raise ValueError(
                    f"allowed: range {where} falls outside the sequence, whose positions are "
                    f"1-{len(content)} (1-based, low-high)"
                )
            pieces = list(letters) if vocab.split is not None else letters.split("|")
            ids = []
            for piece in pieces:
                found = vocab.tokenizer.convert_tokens_to_ids(piece)
                if found is None or found not in set(vocab.proposable_ids.tolist()):
                    raise ValueError(f"allowed: {piece!r} is not a token the model can propose")
                ids.append(int(found))
            for k in range(first - 1, last):
                sites[int(content[k])] = ids
        if not sites:
            raise ValueError("allowed needs sites=RANGE:LETTERS, e.g. allowed:98-101:DEKR")
        return cls(sites, text)
