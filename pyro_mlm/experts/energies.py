"""Soft experts (a weighted finite energy): composition, a second MLM, a classifier."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from pyro_mlm.models.mlm import MaskedLM
    from pyro_mlm.models.vocabulary import Vocabulary

from pyro_mlm.experts.base import Context, Expert, _float, _int, _Text

PKA_POSITIVE = {"K": 10.8, "R": 12.5, "H": 6.5}
PKA_NEGATIVE = {"D": 3.9, "E": 4.1, "C": 8.5, "Y": 10.1}
PKA_N_TERM, PKA_C_TERM = 8.6, 3.6
KYTE_DOOLITTLE = {
    "A": 1.8, "R": -4.5, "N": -3.5, "D": -3.5, "C": 2.5, "Q": -3.5, "E": -3.5, "G": -0.4,
    "H": -3.2, "I": 4.5, "L": 3.8, "K": -3.9, "M": 1.9, "F": 2.8, "P": -1.6, "S": -0.8,
    "T": -0.7, "W": -0.9, "Y": -1.3, "V": 4.2,
}  # fmt: skip


class Composition(Expert):
    r"""A soft pull on a sequence property: :math:`E = w\,(f(X) - f^*)^2`.

    ``property=charge``: net charge at ``ph`` (Henderson-Hasselbalch with EMBOSS pKa
    values, termini included); ``property=hydrophobicity``: mean Kyte-Doolittle
    hydropathy (GRAVY). Both are sums of per-residue tables, so one lookup per token.
    """

    name = "composition"

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
        from pyro_mlm.models.load import load_model

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

        from pyro_mlm.models.load import from_directory_or_hub
        from pyro_mlm.models.vocabulary import quiet_transformers

        def read(local_only: bool) -> tuple[Any, Any]:
            with quiet_transformers():
                model = AutoModelForSequenceClassification.from_pretrained(
                    name_or_path, local_files_only=local_only
                )
                tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_only)
            return model.eval(), tokenizer

        # a missing directory or an unreachable hub id: one ValueError naming it
        self.model, self.tokenizer = from_directory_or_hub(
            name_or_path, read, "a sequence-classification model's weights and its tokenizer"
        )
        self.spaced = spaced

    def __call__(self, texts: list[str]) -> torch.Tensor:
        if self.spaced:
            texts = [" ".join(t) for t in texts]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True)
        return self.model(**batch).logits
