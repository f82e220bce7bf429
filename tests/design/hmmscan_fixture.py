"""Writes ``data/anarci_hmmscan.json``: ANARCI's numbering of the agreement chains with
HMMER's ``hmmscan`` binary (ANARCI's own search), which ``test_numbering.py`` holds the
in-process ``pyhmmer`` search to. Needs ``hmmscan`` on the PATH (``apt-get install hmmer``):
``python tests/design/hmmscan_fixture.py``."""

from __future__ import annotations

import json
import pathlib
import random
import shutil

VH = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQ"
    "MNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
)
VL = (
    "DIQMTQSPSSLSASVGDRVTITCRASQDVNTAVAWYQQKPGKAPKLLIYSASFLYSGVPSRFSGSRSGTDFTLTISSLQPED"
    "FATYYCQQHYTTPPTFGQGTKVEIK"
)
ADALIMUMAB_VH = (
    "EVQLVESGGGLVQPGRSLRLSCAASGFTFDDYAMHWVRQAPGKGLEWVSAITWNSGHIDYADSVEGRFTISRDNAKNSLYLQ"
    "MNSLRAEDTAVYYCAKVSYLSTASSLDYWGQGTLVTVSS"
)
ADALIMUMAB_VL = (
    "DIQMTQSPSSLSASVGDRVTITCRASQGIRNYLAWYQQKPGKAPKLLIYAASTLQSGVPSRFSGSGSGTDFTLTISSLQPED"
    "VATYYCQRYNRAPYTFGQGTKVEIK"
)


def chains() -> list[tuple[str, str]]:
    """Named chains: four antibodies, a 37-residue CDR-H3 (ANARCI's second search for the
    J region), an scFv (two domains), a non-antibody, and seeded mutants and indels."""
    named = [
        ("trastuzumab_vh", VH),
        ("trastuzumab_vl", VL),
        ("adalimumab_vh", ADALIMUMAB_VH),
        ("adalimumab_vl", ADALIMUMAB_VL),
        ("long_cdrh3", VH.replace("SRWGGDGFYAMDY", "SRWGGDGFYAMDYGGSSYYRRWWGGYYDDFFAAMMDY")),
        ("scfv", VH + "GGGGS" * 3 + VL),
        ("not_an_antibody", "ACDEFGHIKLMNPQRSTVWY" * 3),
    ]
    rng = random.Random(0)
    for name, base in named[:4]:
        mutant = list(base)
        for _ in range(12):
            mutant[rng.randrange(len(base))] = rng.choice("ACDEFGHIKLMNPQRSTVWY")
        named.append((f"{name}_mutant", "".join(mutant)))
        i = rng.randrange(20, 90)
        named.append((f"{name}_insertion", base[:i] + "GS" + base[i:]))
    return named


def numbering(named: list[tuple[str, str]], scheme: str) -> dict[str, object]:
    """Each chain's domains as ``[[number, insertion, residue], ...]`` with chain type and
    span, or None where ANARCI finds no domain."""
    from anarci import anarci

    numbered, details, _ = anarci(named, scheme=scheme, output=False)
    out: dict[str, object] = {}
    for (name, _), domains, detail in zip(named, numbered, details, strict=True):
        if domains is None:
            out[name] = None
            continue
        out[name] = [
            {
                "chain_type": d["chain_type"],
                "start": start,
                "end": end,
                "residues": [[n, ins.strip(), aa] for (n, ins), aa in domain],
            }
            for (domain, start, end), d in zip(domains, detail, strict=True)
        ]
    return out


if __name__ == "__main__":
    if shutil.which("hmmscan") is None:
        raise SystemExit("hmmscan is not on the PATH: apt-get install hmmer")
    named = chains()
    data = {scheme: numbering(named, scheme) for scheme in ("imgt", "kabat")}
    path = pathlib.Path(__file__).with_name("data") / "anarci_hmmscan.json"
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {path}")
