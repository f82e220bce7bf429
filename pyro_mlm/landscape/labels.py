"""A scanned position's name in the designer's terms: the scheme's number and region where
ANARCI numbers the chain, whatever ``--free`` says; otherwise what ``sample`` records
(:func:`pyro_mlm.design.sites.label_free`: the CDR-H3 from its motifs, or residue numbers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from pyro_mlm.models.vocabulary import Vocabulary


def site_labels(
    spec: str, tokens: torch.Tensor, free: torch.Tensor, vocab: Vocabulary, numbering: str
) -> dict[str, Any]:
    """``{"positions", "labels", "regions", "how"}`` over the free positions of ``tokens [L]``
    (as :func:`~pyro_mlm.design.sites.label_free`). A protein chain ANARCI numbers gets its
    scheme's labels (``111A``) and regions (``CDR-H3``, ``FR-H4``) at every numbered
    residue, also under ``--free all`` or ranges; residues outside the domain keep their
    residue numbers and no region."""
    from pyro_mlm.design.numbering import anarci_available, numbered_residues, region_name
    from pyro_mlm.design.sites import label_free

    found = label_free(spec, tokens, free, vocab, numbering)
    if found["how"].startswith("anarci") or vocab.split is not list or not anarci_available():
        return found
    try:
        chain, residues = numbered_residues(vocab.decode(tokens), numbering)
    except ValueError:  # no variable domain: residue numbers, as label_free gave
        return found
    by_index = {i: (num, code) for i, num, code in residues}
    labels, regions = list(found["labels"]), list(found["regions"])
    for k, pos in enumerate(found["positions"]):
        if pos - 1 in by_index:
            num, code = by_index[pos - 1]
            labels[k], regions[k] = f"{num}{code}", region_name(chain, num, numbering)
    return {**found, "labels": labels, "regions": regions, "how": f"anarci-{numbering}"}
