r"""Experts: constraints and extra energies a design campaign multiplies into the MLM.

Each expert is a small picklable object ``tokens [N, L] -> energy [N]`` that
:class:`pyro_mlm.target.Target` adds to the MLM energy, so the sampler targets the
product of experts

.. math::

    \pi(X) \propto \exp\Big(-\big(E_\text{MLM}(X) + \sum_k w_k E_k(X)\big) / T\Big)
        \prod_j \mathbb{1}[X \in C_j].

*Hard* experts (``max-mutations``, ``forbid``, ``allowed``) return 0 or ``+inf`` (the
indicator of their set :math:`C_j`; a weight means nothing for them); *soft* ones
(``composition``, ``mlm``, ``classifier``) return a finite energy times their weight.
``allowed`` also restricts the *proposal* at its positions (``Target`` masks the
conditionals), so no row is spent on a token the target forbids; MH stays exact because
the current and the proposed token are both allowed, and the restricted conditional
gives both Hastings terms.

The command line builds them by name from :data:`EXPERTS`: ``--expert NAME`` or
``--expert NAME:key=value;key=value`` (``NAME:value`` sets the expert's main key).

>>> sorted(EXPERTS)
['allowed', 'classifier', 'composition', 'forbid', 'max-mutations', 'mlm']
>>> parse_expert("max-mutations:k=3")
('max-mutations', {'k': '3'})
>>> parse_expert("forbid:N[^P][ST]")
('forbid', {'pattern': 'N[^P][ST]'})
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from pyro_mlm.models import MaskedLM
    from pyro_mlm.vocabulary import Vocabulary

INF = float("inf")

# antibody sequence liabilities, as regular expressions over the residues
LIABILITIES: dict[str, str] = {
    "N-glycosylation": "N[^P][ST]",
    "isomerisation": "DG",
    "deamidation": "NG",
    "unpaired cysteine": "^[^C]*C(?:[^C]*C[^C]*C)*[^C]*$",  # an odd number of C
}

# pKa values (EMBOSS) for the net charge, and Kyte-Doolittle hydropathy
PKA_POSITIVE = {"K": 10.8, "R": 12.5, "H": 6.5}
PKA_NEGATIVE = {"D": 3.9, "E": 4.1, "C": 8.5, "Y": 10.1}
PKA_N_TERM, PKA_C_TERM = 8.6, 3.6
KYTE_DOOLITTLE = {
    "A": 1.8, "R": -4.5, "N": -3.5, "D": -3.5, "C": 2.5, "Q": -3.5, "E": -3.5, "G": -0.4,
    "H": -3.2, "I": 4.5, "L": 3.8, "K": -3.9, "M": 1.9, "F": 2.8, "P": -1.6, "S": -0.8,
    "T": -0.7, "W": -0.9, "Y": -1.3, "V": 4.2,
}  # fmt: skip


@dataclass(frozen=True)
class Context:
    """What a registered expert is built against: the model's tokens and the run's start.

    ``parent [L]`` is the start sequence (chain 0's) and ``free [L]`` its free positions.
    """

    vocabulary: Vocabulary
    parent: torch.Tensor
    free: torch.Tensor


class Expert:
    """Base class: ``weight * energy(tokens)`` for soft experts, ``energy`` for hard ones."""

    name: ClassVar[str] = "expert"
    hard: ClassVar[bool] = False
    KEYS: ClassVar[dict[str, str]] = {}  # key -> help, for the command line
    MAIN: ClassVar[str | None] = None  # the key that ``NAME:value`` sets
    weight: float = 1.0

    def energy(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        value = self.energy(tokens)
        return value if self.hard else self.weight * value

    def describe(self) -> str:
        return self.name

    @classmethod
    def build(cls, context: Context, **options: str) -> Expert:
        raise NotImplementedError


class _Text:
    """Token ids -> text, picklable (a table, no tokenizer): residues joined with no space."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        size = max(len(vocabulary.tokenizer), int(vocabulary.special_ids.max()) + 1)
        names = vocabulary.tokenizer.convert_ids_to_tokens(list(range(size)))
        special = set(vocabulary.special_ids.tolist())
        self.table = ["" if i in special else str(t) for i, t in enumerate(names)]
        self.sep = "" if vocabulary.split is not None else " "

    def __call__(self, row: Sequence[int]) -> str:
        return self.sep.join(t for t in (self.table[i] for i in row) if t)


def _int(options: dict[str, str], key: str, expert: str) -> int:
    try:
        return int(options[key])
    except (KeyError, ValueError):
        raise ValueError(
            f"expert {expert!r} needs {key}=<integer>, got {options.get(key)!r}"
        ) from None


def _float(options: dict[str, str], key: str, expert: str, default: float | None = None) -> float:
    if key not in options and default is not None:
        return default
    try:
        value = float(options[key])
    except (KeyError, ValueError):
        got = options.get(key)
        raise ValueError(f"expert {expert!r} needs {key}=<number>, got {got!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expert {expert!r}: {key} must be finite, got {value}")
    return value


class MaxMutations(Expert):
    r"""At most ``k`` mutations from the parent over the free positions (EvoProtGrad's
    ``max_mutations``): :math:`E = +\infty` when :math:`\sum_{t \in F} [x_t \ne p_t] > k`."""

    name = "max-mutations"
    hard = True
    KEYS: ClassVar[dict[str, str]] = {
        "k": "most free positions that may differ from the parent",
        "parent": "the parent sequence (default: the start of chain 0)",
    }
    MAIN = "k"

    def __init__(self, parent: torch.Tensor, free: torch.Tensor, k: int) -> None:
        if k < 0:
            raise ValueError(f"max-mutations: k must be >= 0, got {k}")
        self.parent, self.free, self.k = parent.cpu(), free.cpu(), k

    def energy(self, tokens: torch.Tensor) -> torch.Tensor:
        parent, free = self.parent.to(tokens.device), self.free.to(tokens.device)
        mutations = ((tokens != parent) & free).sum(-1)
        return torch.where(mutations > self.k, INF, 0.0).to(torch.float32)

    def describe(self) -> str:
        return f"max-mutations k={self.k}"

    @classmethod
    def build(cls, context: Context, **options: str) -> Expert:
        parent = context.parent
        if "parent" in options:
            parent = context.vocabulary.encode(options["parent"])
            if parent.shape != context.parent.shape:
                raise ValueError(
                    f"max-mutations: the parent has {parent.numel()} tokens and the start "
                    f"{context.parent.numel()}; they must align position by position"
                )
        return cls(parent.to(context.parent.device), context.free, _int(options, "k", cls.name))


class Forbid(Expert):
    r"""Motifs that may not occur: :math:`E = +\infty` when a regular expression matches
    the sequence's text at a place that overlaps a free position (``scope=free``, the
    default: motifs the fixed framework already holds cannot be changed, so they do not
    count), or anywhere (``scope=all``). ``preset=liabilities`` forbids the antibody
    liabilities in :data:`LIABILITIES` (N-glycosylation ``N[^P][ST]``, ``DG``
    isomerisation, ``NG`` deamidation, an unpaired cysteine).

    ``free [L]`` marks the free positions (``None``: every position counts)."""

    name = "forbid"
    hard = True
    KEYS: ClassVar[dict[str, str]] = {
        "pattern": "a regular expression (several: separate with '|', or repeat --expert)",
        "preset": "'liabilities' (N-glycosylation, DG, NG, unpaired C)",
        "scope": "free (default: a match must touch a free position) or all",
    }
    MAIN = "pattern"

    def __init__(
        self, patterns: Sequence[str], vocabulary: Vocabulary, free: torch.Tensor | None = None
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

    def matches(self, row: Sequence[int]) -> list[str]:
        """What a sequence of ids holds that is forbidden, e.g. ``["'NG' at 55-56"]``
        (1-based character positions)."""
        pieces: list[str] = []
        spans: list[tuple[int, int]] = []
        at = 0
        for i, token in enumerate(row):
            piece = self.text.table[token]
            if not piece:
                continue
            if pieces and self.text.sep:
                at += len(self.text.sep)
            pieces.append(piece)
            if self.free is None or self.free[i]:
                spans.append((at, at + len(piece)))
            at += len(piece)
        text = self.text.sep.join(pieces)
        found = []
        for compiled in self.compiled:
            for match in compiled.finditer(text):
                lo, hi = match.start(1), match.end(1)
                if any(a < max(hi, lo + 1) and lo < b for a, b in spans):
                    found.append(f"{match.group(1)[:20]!r} at {lo + 1}-{hi}")
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
        return cls(patterns, context.vocabulary, context.free if scope == "free" else None)


class Allowed(Expert):
    r"""Per-position alphabets, e.g. ``98-101:DEKR``: :math:`E = +\infty` when a listed
    position holds another token; the proposal there is restricted to the alphabet too.

    ``sites`` maps token indices to allowed token ids.
    """

    name = "allowed"
    hard = True
    KEYS: ClassVar[dict[str, str]] = {
        "sites": "RANGE:LETTERS[,RANGE:LETTERS...], e.g. 98-101:DEKR,105:G (1-based)"
    }
    MAIN = "sites"

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
        text = options.get("sites", "")
        content = vocab.content_positions(parent)
        sites: dict[int, list[int]] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            where, _, letters = part.partition(":")
            lo, _, hi = where.partition("-")
            if not letters or not lo.strip().isdigit() or (hi and not hi.strip().isdigit()):
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


class Composition(Expert):
    r"""A soft pull on a sequence property: :math:`E = w\,(f(X) - f^*)^2`.

    ``property=charge``: net charge at ``ph`` (Henderson-Hasselbalch with EMBOSS pKa
    values, termini included); ``property=hydrophobicity``: mean Kyte-Doolittle
    hydropathy (GRAVY). Both are sums of per-residue tables, so one lookup per token.
    """

    name = "composition"
    KEYS: ClassVar[dict[str, str]] = {
        "property": "charge or hydrophobicity",
        "target": "the value to pull towards",
        "weight": "w (default 1)",
        "ph": "pH for the charge (default 7.4)",
    }
    MAIN = "property"

    def __init__(
        self, vocabulary: Vocabulary, prop: str, target: float, weight: float = 1.0, ph: float = 7.4
    ) -> None:
        if prop not in ("charge", "hydrophobicity"):
            raise ValueError(
                f"composition: property must be charge or hydrophobicity, got {prop!r}"
            )
        if vocabulary.split is None:
            raise ValueError("composition needs a protein model (one token per residue)")
        size = max(len(vocabulary.tokenizer), int(vocabulary.special_ids.max()) + 1)
        names = vocabulary.tokenizer.convert_ids_to_tokens(list(range(size)))
        special = set(vocabulary.special_ids.tolist())
        table = torch.zeros(size, dtype=torch.float64)
        residue = torch.zeros(size, dtype=torch.bool)
        for i, aa in enumerate(names):
            if i in special or not isinstance(aa, str) or aa not in KYTE_DOOLITTLE:
                continue
            residue[i] = True
            if prop == "hydrophobicity":
                table[i] = KYTE_DOOLITTLE[aa]
            elif aa in PKA_POSITIVE:
                table[i] = 1.0 / (1.0 + 10 ** (ph - PKA_POSITIVE[aa]))
            elif aa in PKA_NEGATIVE:
                table[i] = -1.0 / (1.0 + 10 ** (PKA_NEGATIVE[aa] - ph))
        self.table, self.residue = table, residue
        self.prop, self.target, self.weight, self.ph = prop, target, weight, ph
        self.termini = 1.0 / (1.0 + 10 ** (ph - PKA_N_TERM)) - 1.0 / (1.0 + 10 ** (PKA_C_TERM - ph))

    def value(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[N]`` net charge or mean hydropathy of each sequence."""
        table, residue = self.table.to(tokens.device), self.residue.to(tokens.device)
        total = table[tokens].sum(-1)
        if self.prop == "charge":
            return total + self.termini
        return total / residue[tokens].sum(-1).clamp(min=1)

    def energy(self, tokens: torch.Tensor) -> torch.Tensor:
        return ((self.value(tokens) - self.target) ** 2).to(torch.float32)

    def describe(self) -> str:
        return f"composition {self.prop} -> {self.target} (w={self.weight})"

    @classmethod
    def build(cls, context: Context, **options: str) -> Expert:
        return cls(
            context.vocabulary,
            options.get("property", ""),
            _float(options, "target", cls.name),
            _float(options, "weight", cls.name, 1.0),
            _float(options, "ph", cls.name, 7.4),
        )


class MLMExpert(Expert):
    r"""A second masked LM's energy, :math:`w\,E'(X)` over the same free residues: a
    product of experts over the same tokens (e.g. AntiBERTy x Sapiens-H).

    Sequences are passed to the second model as text when the vocabularies differ; its
    free positions are the same residues. Its rows are not counted in the run's ``rows``.
    """

    name = "mlm"
    KEYS: ClassVar[dict[str, str]] = {
        "model": "a packaged name, a local directory or a hub id",
        "weight": "w (default 1)",
        "energy": "norm or raw (default norm)",
    }
    MAIN = "model"

    def __init__(
        self,
        mlm: MaskedLM,
        vocabulary: Vocabulary,
        free: torch.Tensor,
        parent: torch.Tensor,
        weight: float = 1.0,
        parametrization: str = "norm",
    ) -> None:
        from pyro_mlm.energy import MLMEnergy

        self.other = MLMEnergy(mlm, parametrization)  # type: ignore[arg-type]
        self.weight = weight
        self.same = vocabulary.tokenizer.get_vocab() == mlm.tokenizer.get_vocab()
        self.text = _Text(vocabulary)
        self.free_numbers = (vocabulary.residue_numbers(parent)[free.cpu()]).tolist()
        mapped = self._convert(parent.unsqueeze(0).cpu())[0].cpu()
        if len(mlm.content_positions(mapped)) != len(vocabulary.content_positions(parent.cpu())):
            raise ValueError(
                f"mlm expert: {mlm.name} splits the sequence into a different number of "
                "residues or words than the sampled model; both must tokenise it alike"
            )
        self.label = mlm.name

    def _convert(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.same:
            return tokens
        mlm = self.other.mlm
        rows = [mlm.encode(self.text(row)) for row in tokens.tolist()]
        width = max(len(r) for r in rows)
        pad = mlm.pad_token_id if mlm.pad_token_id is not None else 0
        out = torch.full((len(rows), width), pad, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out.to(mlm.device)

    def energy(self, tokens: torch.Tensor) -> torch.Tensor:
        other = self._convert(tokens)
        numbers = torch.stack([self.other.mlm.residue_numbers(row) for row in other.cpu()])
        free = torch.isin(numbers, torch.tensor(self.free_numbers)).to(other.device)
        with torch.no_grad():
            result = self.other.evaluate(other, free, keep_conditionals=False)
        return result.energy.to(tokens.device)

    def describe(self) -> str:
        return f"mlm {self.label} (w={self.weight})"

    @classmethod
    def build(cls, context: Context, **options: str) -> Expert:
        from pyro_mlm.load import load_model

        if "model" not in options:
            raise ValueError("mlm needs model=<name or directory>, e.g. mlm:model=sapiens-h")
        device = getattr(context.vocabulary, "device", "cpu")
        mlm = load_model(options["model"], device=device)
        energy = options.get("energy", "norm")
        if energy not in ("norm", "raw"):
            raise ValueError(f"mlm: energy must be norm or raw, got {energy!r}")
        return cls(
            mlm, context.vocabulary, context.free, context.parent,
            _float(options, "weight", cls.name, 1.0), energy,
        )  # fmt: skip


class Classifier(Expert):
    r"""A classifier as an energy: :math:`E = -w \log p(y \mid X)`.

    ``model`` is any callable ``list[str] -> [N, C]`` logits (or a Hugging Face
    sequence-classification model with its tokenizer); ``label`` is :math:`y`.

    >>> clf = Classifier(lambda texts: torch.tensor([[0.0, 0.0]] * len(texts)), text=str)
    >>> clf.score(["x"])
    tensor([0.6931])
    """

    name = "classifier"
    KEYS: ClassVar[dict[str, str]] = {
        "model": "a directory or hub id of a sequence-classification model",
        "label": "the class to favour (default 1)",
        "weight": "w (default 1)",
        "spaced": "true: put spaces between residues for the classifier's tokenizer",
    }
    MAIN = "model"

    def __init__(
        self,
        model: Callable[[list[str]], torch.Tensor],
        text: Callable[[Sequence[int]], str] | Any,
        label: int = 1,
        weight: float = 1.0,
    ) -> None:
        self.model, self.text, self.label, self.weight = model, text, label, weight

    def score(self, texts: list[str]) -> torch.Tensor:
        """``[N]`` :math:`-\\log p(y \\mid X)` of some texts."""
        with torch.no_grad():
            logits = torch.as_tensor(self.model(texts)).float()
        if logits.dim() != 2 or not 0 <= self.label < logits.shape[-1]:
            raise ValueError(
                f"classifier: the model returned shape {tuple(logits.shape)}; it must return "
                f"[N, C] logits with C > label={self.label}"
            )
        return -torch.log_softmax(logits, -1)[:, self.label]

    def energy(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.score([self.text(row) for row in tokens.tolist()]).to(tokens.device)

    def describe(self) -> str:
        return f"classifier label={self.label} (w={self.weight})"

    @classmethod
    def build(cls, context: Context, **options: str) -> Expert:
        if "model" not in options:
            raise ValueError("classifier needs model=<directory or hub id>")
        model = HuggingFaceClassifier(
            options["model"], spaced=options.get("spaced", "false").lower() == "true"
        )
        return cls(
            model, _Text(context.vocabulary), _int({"label": options.get("label", "1")}, "label",
            cls.name), _float(options, "weight", cls.name, 1.0),
        )  # fmt: skip


class HuggingFaceClassifier:
    """A sequence-classification model and its tokenizer as ``list[str] -> [N, C]`` logits."""

    def __init__(self, name_or_path: str, spaced: bool = False) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from pyro_mlm.models import quiet_transformers

        with quiet_transformers():
            self.model = AutoModelForSequenceClassification.from_pretrained(name_or_path).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.spaced = spaced

    def __call__(self, texts: list[str]) -> torch.Tensor:
        if self.spaced:
            texts = [" ".join(t) for t in texts]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True)
        return self.model(**batch).logits


EXPERTS: dict[str, type[Expert]] = {
    cls.name: cls for cls in (MaxMutations, Forbid, Allowed, Composition, MLMExpert, Classifier)
}


def parse_expert(spec: str) -> tuple[str, dict[str, str]]:
    """``"NAME:key=value;key=value"`` (or ``"NAME:value"`` for the main key) -> name, options."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if name not in EXPERTS:
        raise ValueError(f"unknown expert {name!r}; registered: {', '.join(sorted(EXPERTS))}")
    cls = EXPERTS[name]
    options: dict[str, str] = {}
    if rest and "=" not in rest.split(";")[0] and cls.MAIN is not None:
        options[cls.MAIN] = rest
        return name, options
    for item in filter(None, (p.strip() for p in rest.split(";"))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in cls.KEYS:
            keys = ", ".join(f"{k} ({h})" for k, h in cls.KEYS.items())
            raise ValueError(f"expert {name!r} takes no key {key!r}; its keys: {keys}")
        options[key] = value.strip()
    return name, options


def build_expert(spec: str, context: Context) -> Expert:
    """One expert from its command-line text (see :func:`parse_expert`)."""
    name, options = parse_expert(spec)
    return EXPERTS[name].build(context, **options)


def check_start(experts: Sequence[Any], tokens: torch.Tensor, vocabulary: Vocabulary) -> None:
    """Refuse a start ``[C, L]`` that a hard expert forbids, naming the expert and chain."""
    from pyro_mlm.vocabulary import short

    for expert in experts:
        if not getattr(expert, "hard", False):
            continue
        bad = torch.isinf(expert(tokens)).nonzero().flatten()
        if bad.numel():
            chain = int(bad[0])
            detail = ""
            if isinstance(expert, Forbid):
                detail = f" (it holds {', '.join(expert.matches(tokens[chain].tolist()))})"
            raise ValueError(
                f"the start of chain {chain}, {short(vocabulary.decode(tokens[chain]), 60)!r}, "
                f"violates the constraint {expert.describe()}{detail}; start from a sequence "
                f"that satisfies it"
            )
