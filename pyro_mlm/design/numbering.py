"""Numbered antibody regions (CDRs) through ANARCI, for ``--free cdrh3``, ``cdrs``, ...

ANARCI numbers a variable domain by IMGT or Kabat and says whether it is a heavy (H) or
light (K, L) chain. ``pip install "pyro-mlm[numbering]"`` is all it needs: ANARCI's HMM
search runs in-process through ``pyhmmer`` (:mod:`pyro_mlm.design.hmmer`, the same HMMER3
search as the ``hmmscan`` binary ANARCI calls, with identical numbers on the test chains);
where ``pyhmmer`` is missing and HMMER's ``hmmscan`` is on the PATH, ANARCI's own call is
used. The CDRs are then ranges of those numbers (insertions such as 100A belong to
their number):

========  =============  ==============
region    IMGT           Kabat
========  =============  ==============
CDR-H1    27-38          31-35 (35A, B)
CDR-H2    56-65          50-65
CDR-H3    105-117        95-102
CDR-L1    27-38          24-34
CDR-L2    56-65          50-56
CDR-L3    105-117        89-97
========  =============  ==============

Without ANARCI only ``cdrh3`` works, from the conserved motifs around it
(:func:`pyro_mlm.design.sites.cdr_h3_range`), and a note says so.
"""

from __future__ import annotations

import contextlib
import functools
import shutil

REGIONS = ("cdrh1", "cdrh2", "cdrh3", "cdrl1", "cdrl2", "cdrl3", "cdrs")
SCHEMES = ("imgt", "kabat")
CDR_NUMBERS: dict[str, dict[str, tuple[tuple[int, int], ...]]] = {
    "imgt": {
        "H": ((27, 38), (56, 65), (105, 117)),
        "L": ((27, 38), (56, 65), (105, 117)),
    },
    "kabat": {
        "H": ((31, 35), (50, 65), (95, 102)),
        "L": ((24, 34), (50, 56), (89, 97)),
    },
}
INSTALL = "pip install 'pyro-mlm[numbering]' (ANARCI and pyhmmer)"


def anarci_available() -> bool:
    """Whether ANARCI and an HMM search for it (``pyhmmer``, or ``hmmscan``) are installed."""
    import importlib.util

    from pyro_mlm.design.hmmer import pyhmmer_available

    if importlib.util.find_spec("anarci") is None:
        return False
    return pyhmmer_available() or shutil.which("hmmscan") is not None


def number(sequence: str, scheme: str = "imgt") -> tuple[str, tuple[tuple[int, int], ...]]:
    """ANARCI's numbering of the first variable domain in ``sequence``.

    Returns the chain type (``"H"`` or ``"L"``; kappa counts as L) and, for every numbered
    residue, ``(0-based index in sequence, number)``.
    """
    chain, residues = numbered_residues(sequence, scheme)
    return chain, tuple((index, num) for index, num, _ in residues)


def region_name(chain: str, num: int, scheme: str = "imgt") -> str:
    """``CDR-H3``, ``FR-L2``, ... of residue number ``num`` in a ``chain`` (H or L) domain."""
    spans = CDR_NUMBERS[scheme][chain]
    for k, (lo, hi) in enumerate(spans):
        if lo <= num <= hi:
            return f"CDR-{chain}{k + 1}"
        if num < lo:
            return f"FR-{chain}{k + 1}"
    return f"FR-{chain}4"


@functools.lru_cache(maxsize=256)
def numbered_residues(
    sequence: str, scheme: str = "imgt"
) -> tuple[str, tuple[tuple[int, int, str], ...]]:
    """As :func:`number`, with each residue's insertion code: ``(index, number, code)``
    (code ``""`` or a letter: IMGT 111A, Kabat 100B)."""
    if scheme not in SCHEMES:
        raise ValueError(f"numbering scheme must be imgt or kabat, got {scheme!r}")
    if not anarci_available():
        raise ValueError(f"numbered regions need ANARCI: {INSTALL}")
    from anarci import anarci

    from pyro_mlm.design.hmmer import pyhmmer_available, searched_in_process

    search = searched_in_process() if pyhmmer_available() else contextlib.nullcontext()
    with search:
        numbered, details, _ = anarci([("query", sequence)], scheme=scheme, output=False)
    if not numbered or numbered[0] is None:
        raise ValueError(
            "ANARCI found no antibody variable domain in the sequence; give the residues "
            "to re-sample as ranges instead, e.g. --free 98-110"
        )
    domain, start, _end = numbered[0][0]
    chain = "H" if details[0][0]["chain_type"] == "H" else "L"
    residues = []
    index = start
    for (num, insertion), residue in domain:
        if residue == "-":
            continue
        residues.append((index, int(num), str(insertion).strip()))
        index += 1
    return chain, tuple(residues)


def region_indices(region: str, sequence: str, scheme: str = "imgt") -> list[int]:
    """0-based residue indices of a numbered region (``cdrh3``, ``cdrl1``, ``cdrs``, ...)."""
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; numbered regions: {', '.join(REGIONS)}")
    if not anarci_available():  # before the cache: it may hold a numbering from earlier
        raise ValueError(f"numbered regions need ANARCI: {INSTALL}")
    chain, residues = number(sequence, scheme)
    if region == "cdrs":
        wanted = [0, 1, 2]
    else:
        want_chain = "H" if region[3] == "h" else "L"
        if want_chain != chain:
            kind = "heavy" if chain == "H" else "light"
            raise ValueError(
                f"--free {region} asks for a {'heavy' if want_chain == 'H' else 'light'}-chain "
                f"CDR, but ANARCI reads this sequence as a {kind} chain"
            )
        wanted = [int(region[-1]) - 1]
    spans = [CDR_NUMBERS[scheme][chain][k] for k in wanted]
    return [i for i, n in residues if any(lo <= n <= hi for lo, hi in spans)]


def chain_type(sequence: str) -> tuple[str | None, str]:
    """``(chain, how)``: ``"H"`` or ``"L"`` (kappa and lambda) for an antibody variable
    domain, None for none; ``how`` says how it was told. ANARCI decides where it is
    installed; otherwise the framework-4 motif that follows CDR 3, ``WGxG`` in a heavy chain
    and ``FGxG`` in a light one (Kabat's conserved J-region motifs), if exactly one is found.

    >>> chain_type("CARDYWGQGTLVTVSS")[0] if not anarci_available() else "H"
    'H'
    """
    import re

    if anarci_available():
        try:
            chain, _ = number(sequence)
        except ValueError:
            return None, "ANARCI found no antibody variable domain"
        name = "heavy" if chain == "H" else "light"
        return chain, f"ANARCI numbers it as a {name} chain"
    heavy = re.search(r"WG.G", sequence) is not None
    light = re.search(r"FG.G", sequence) is not None
    if heavy != light:
        motif = "WGxG" if heavy else "FGxG"
        return ("H" if heavy else "L"), f"its framework-4 motif {motif} (no ANARCI)"
    return None, "neither or both of the WGxG (heavy) and FGxG (light) motifs, and no ANARCI"
