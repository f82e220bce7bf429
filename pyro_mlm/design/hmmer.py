"""ANARCI's HMM search run in-process by ``pyhmmer`` instead of HMMER's ``hmmscan`` binary.

ANARCI numbers a chain in two steps: ``hmmscan`` of the sequence against its own profile
HMMs (``anarci/dat/HMMs/ALL.hmm``, shipped in its wheel), parsed by Biopython's HMMER3
text parser, then the alignment of the best hit turned into IMGT/Kabat numbers. The
second step is pure Python; the first needs a binary that pip cannot install. ``pyhmmer``
(pip wheels) binds the same HMMER3 library, so :func:`run_hmmer` runs the same search
(same HMMs, same reporting thresholds ``E = domE = 10``, same ``Z``: the number of HMMs)
and hands ANARCI the fields its parser reads from each reported domain, so the rest of
ANARCI runs unchanged. Agreement with ``hmmscan`` is tested label for label against a
recorded ``hmmscan`` run of 15 chains, and recomputed where ``hmmscan`` is installed
(``tests/design/test_numbering.py``).

The fields, as Biopython's ``hmmer3-text`` parser sets them on a domain ``hsp``:
``hit_id`` (the HMM's name, e.g. ``human_H``), ``evalue`` (the independent E-value),
``bitscore``, ``bias``, 0-based half-open ``query_start``/``query_end`` (alignment, not
envelope, coordinates) and ``hit_start``/``hit_end`` on the HMM, and the alignment's
``RF`` and ``PP`` lines. ANARCI's HMMs mark every match column ``x`` in RF (checked at
load), and HMMER prints ``.`` in RF and in the model line at insert columns, so RF is the
model line with every non-``.`` character written ``x``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_PATCH_LOCK = threading.Lock()


def pyhmmer_available() -> bool:
    """Whether ``pyhmmer`` is installed."""
    return importlib.util.find_spec("pyhmmer") is not None


@dataclass
class _Domain:
    """One reported domain, with the attributes ANARCI reads off a Biopython ``HSP``."""

    hit_id: str
    hit_description: str
    evalue: float
    bitscore: float
    bias: float
    query_start: int
    query_end: int
    hit_start: int
    hit_end: int
    aln_annotation: dict[str, str] = field(default_factory=dict)
    order: int = 0


@dataclass
class _Query:
    """One query's results, as ANARCI reads a Biopython ``QueryResult``."""

    seq_len: int
    hsps: list[_Domain]


@functools.lru_cache(maxsize=1)
def _profiles() -> tuple[Any, ...]:
    import pyhmmer
    from anarci.anarci import HMM_path  # type: ignore[import-not-found]

    with pyhmmer.plan7.HMMFile(os.path.join(HMM_path, "ALL.hmm")) as handle:
        hmms = tuple(handle)
    return hmms


def _queries(sequence_list: list[tuple[str, str]]) -> Iterator[_Query]:
    import pyhmmer

    hmms = _profiles()
    alphabet = hmms[0].alphabet
    digital = [
        pyhmmer.easel.TextSequence(name=str(i).encode(), sequence=seq).digitize(alphabet)
        for i, (_, seq) in enumerate(sequence_list)
    ]
    for (_, seq), hits in zip(
        sequence_list, pyhmmer.hmmer.hmmscan(digital, hmms, cpus=1), strict=True
    ):
        domains = []
        for hit in hits:
            if not hit.reported:
                continue
            name = hit.name.decode() if isinstance(hit.name, bytes) else str(hit.name)
            text = hit.description or b""
            description = text.decode() if isinstance(text, bytes) else str(text)
            for domain in hit.domains:
                if not domain.reported:
                    continue
                ali = domain.alignment
                model = ali.hmm_sequence
                domains.append(
                    _Domain(
                        hit_id=name,
                        hit_description=description,
                        evalue=float(domain.i_evalue),
                        bitscore=float(domain.score),
                        bias=float(domain.bias),
                        query_start=ali.target_from - 1,
                        query_end=ali.target_to,
                        hit_start=ali.hmm_from - 1,
                        hit_end=ali.hmm_to,
                        aln_annotation={
                            "RF": "".join("." if c == "." else "x" for c in model),
                            "PP": ali.posterior_probabilities,
                        },
                    )
                )
        yield _Query(seq_len=len(seq), hsps=domains)


def run_hmmer(
    sequence_list: list[tuple[str, str]],
    hmm_database: str = "ALL",
    hmmerpath: str = "",
    ncpu: int | None = None,
    bit_score_threshold: float = 80,
    hmmer_species: Any = None,
) -> list[Any]:
    """Drop-in for ``anarci.anarci.run_hmmer`` (same arguments and result), searched with
    ``pyhmmer``; ``hmmerpath`` and ``ncpu`` are accepted and unused (one thread)."""
    from anarci.anarci import _parse_hmmer_query

    if hmm_database != "ALL":
        raise ValueError(f"unknown HMM database {hmm_database!r}: ANARCI ships ALL")
    return [
        _parse_hmmer_query(q, bit_score_threshold=bit_score_threshold, hmmer_species=hmmer_species)
        for q in _queries(sequence_list)
    ]


@contextmanager
def searched_in_process() -> Iterator[None]:
    """ANARCI's ``run_hmmer`` replaced by :func:`run_hmmer` for the duration (one caller at
    a time: the replacement is a module attribute)."""
    module: Any = importlib.import_module("anarci.anarci")  # the module, not the function

    with _PATCH_LOCK:
        original = module.run_hmmer
        module.run_hmmer = run_hmmer
        try:
            yield
        finally:
            module.run_hmmer = original
