"""Every registered expert declared once, torch-free: its name, keys, main key, kind (hard or
soft), whether it restricts the proposals, whether it loads a model, and its help.

The command line's ``--expert`` help, the run's checks of ``--expert`` texts
(:func:`parse_expert`, before torch or a model loads) and the samplers' questions ("does
this expert restrict proposals?") read this table; each class in
:mod:`pyro_mlm.experts.constraints` and :mod:`pyro_mlm.experts.energies` takes its
``KEYS``, ``MAIN``, ``hard`` and ``restricts`` from its row. ``tests/experts/expert_cases.py``
holds one case per row (the same coverage rule as the samplers' ``SAMPLER_CASES``).

>>> sorted(DECLARED)
['allowed', 'classifier', 'composition', 'forbid', 'max-mutations', 'mlm']
>>> parse_expert("max-mutations:k=3")
('max-mutations', {'k': '3'})
>>> parse_expert("forbid:N[^P][ST]")
('forbid', {'pattern': 'N[^P][ST]'})
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeclaredExpert:
    """One expert's declaration.

    ``cls`` is ``module:Class`` under :mod:`pyro_mlm.experts`; ``keys`` maps each key of
    ``--expert NAME:key=value`` to its help; ``main`` is the key ``NAME:value`` sets;
    ``hard`` experts return 0 or ``+inf`` (an indicator: a weight means nothing),
    soft ones a finite energy times their weight; ``restricts`` experts also mask the
    proposal's conditionals at their positions (:class:`pyro_mlm.target.Target`);
    ``loads_model`` experts read a model's weights (built only after the run's checks);
    ``example`` is the command line's example text with what it does.
    """

    cls: str
    keys: dict[str, str]
    main: str | None
    hard: bool
    example: str
    restricts: bool = False
    loads_model: bool = False


DECLARED: dict[str, DeclaredExpert] = {
    "max-mutations": DeclaredExpert(
        "constraints:MaxMutations",
        {
            "k": "most free positions that may differ from the parent",
            "parent": "the parent sequence (default: the start of chain 0)",
        },
        main="k",
        hard=True,
        example="max-mutations:k=3 (at most k mutations from the start over the free positions)",
    ),
    "forbid": DeclaredExpert(
        "constraints:Forbid",
        {
            "pattern": "a regular expression (several: separate with '|', or repeat --expert)",
            "preset": "'liabilities' (N-glycosylation, DG, NG, unpaired C)",
            "scope": "free (default: a match must touch a free position) or all",
        },
        main="pattern",
        hard=True,
        example="'forbid:pattern=N[^P][ST]' or forbid:preset=liabilities (motifs that may "
        "not occur)",
    ),
    "allowed": DeclaredExpert(
        "constraints:Allowed",
        {
            "sites": "RANGE:LETTERS[,RANGE:LETTERS...], e.g. 98-101:DEKR,105:G (1-based)",
        },
        main="sites",
        hard=True,
        restricts=True,
        example="allowed:98-101:DEKR (per-position alphabets, also restricting the proposal)",
    ),
    "composition": DeclaredExpert(
        "energies:Composition",
        {
            "property": "charge or hydrophobicity",
            "target": "the value to pull towards",
            "weight": "w (default 1)",
            "ph": "pH for the charge (default 7.4)",
        },
        main="property",
        hard=False,
        example="'composition:property=charge;target=0;weight=1' (or hydrophobicity)",
    ),
    "mlm": DeclaredExpert(
        "energies:MLMExpert",
        {
            "model": "a packaged name, a local directory or a hub id",
            "weight": "w (default 1)",
            "energy": "norm or raw (default norm)",
        },
        main="model",
        hard=False,
        loads_model=True,
        example="'mlm:model=sapiens-h;weight=1' (a second MLM's energy)",
    ),
    "classifier": DeclaredExpert(
        "energies:Classifier",
        {
            "model": "a directory or hub id of a sequence-classification model",
            "label": "the class to favour (default 1)",
            "weight": "w (default 1)",
            "spaced": "true: put spaces between residues for the classifier's tokenizer",
        },
        main="model",
        hard=False,
        loads_model=True,
        example="'classifier:model=DIR;label=1;weight=1' (a sequence classifier's -log p)",
    ),
}

# the command line's --expert help, from the declarations
EXPERTS_HELP = "; ".join(d.example for d in DECLARED.values())


def parse_expert(spec: str) -> tuple[str, dict[str, str]]:
    """``"NAME:key=value;key=value"`` (or ``"NAME:value"`` for the main key) -> name, options;
    a ``ValueError`` naming the expert's keys for anything else."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if name not in DECLARED:
        raise ValueError(f"unknown expert {name!r}; registered: {', '.join(sorted(DECLARED))}")
    declared = DECLARED[name]
    options: dict[str, str] = {}
    if rest and "=" not in rest.split(";")[0] and declared.main is not None:
        options[declared.main] = rest
        return name, options
    for item in filter(None, (p.strip() for p in rest.split(";"))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in declared.keys:
            keys = ", ".join(f"{k} ({h})" for k, h in declared.keys.items())
            raise ValueError(f"expert {name!r} takes no key {key!r}; its keys: {keys}")
        options[key] = value.strip()
    return name, options
