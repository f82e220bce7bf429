"""What every expert shares: the build context, the base class, token text, option parsing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from pyro_mlm.experts.declared import DECLARED
from pyro_mlm.region.layout import Region

if TYPE_CHECKING:
    from pyro_mlm.models.vocabulary import Vocabulary

INF = float("inf")


@dataclass(frozen=True)
class Context:
    """What a registered expert is built against: the model's tokens and the run's start.

    ``parent [L]`` is the start sequence (chain 0's) and ``free [L]`` its free positions.
    ``region`` is set in a run whose region's length varies (``--lengths``): the free
    positions of a sequence are then read off its tokens (:class:`Region`).
    """

    vocabulary: Vocabulary
    parent: torch.Tensor
    free: torch.Tensor
    region: Region | None = None


class Expert:
    """Base class: ``weight * energy(tokens)`` for soft experts, ``energy`` for hard ones."""

    name: ClassVar[str] = "expert"
    # read from the expert's row of pyro_mlm.experts.declared.DECLARED (__init_subclass__)
    hard: ClassVar[bool] = False
    # also masks the proposal's conditionals (None: undeclared, pyro_mlm.target.restricts)
    restricts: ClassVar[bool | None] = None
    KEYS: ClassVar[dict[str, str]] = {}  # key -> help, for the command line
    MAIN: ClassVar[str | None] = None  # the key that ``NAME:value`` sets

    def __init_subclass__(cls, **kwargs: object) -> None:
        """A registered expert (``name`` a row of :data:`~pyro_mlm.experts.declared.DECLARED`)
        takes its kind, keys and main key from its declaration."""
        super().__init_subclass__(**kwargs)
        declared = DECLARED.get(cls.__dict__.get("name", ""))
        if declared is not None:
            cls.hard, cls.restricts = declared.hard, declared.restricts
            cls.KEYS, cls.MAIN = declared.keys, declared.main

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
