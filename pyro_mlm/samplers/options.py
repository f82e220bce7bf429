"""Each registered sampler's own settings and capabilities, readable without torch.

The command line builds ``--kernel`` and the sampler flags from this table (so that
``pyro-mlm sample --help`` does not import torch), and each sampler class reads its
``OPTIONS`` from it, so a setting is declared once. ``tests/test_samplers.py`` checks
that this table and :data:`pyro_mlm.samplers.SAMPLERS` name the same samplers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MODES = ("random", "window")
INNER_SAMPLERS = ("block", "mh")  # samplers that replica exchange can run in each replica


@dataclass(frozen=True)
class Option:
    """A sampler setting the command line exposes as ``--NAME`` (dashes for underscores)."""

    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str | None = None


def parse_sizes(text: str | int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Block sizes from ``2``, ``"2"`` or ``"1,2"``: a sorted tuple of distinct ints >= 1."""
    if isinstance(text, int) and not isinstance(text, bool):
        values = [text]
    elif isinstance(text, (tuple, list)):
        values = list(text)
    else:
        try:
            values = [int(part) for part in str(text).split(",")]
        except ValueError as err:
            raise ValueError(
                f"block size must be an integer or a list such as 1,2; got {text!r}"
            ) from err
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ValueError(f"block sizes must be integers >= 1, got {text!r}")
    return tuple(sorted(set(values)))


def parse_mode(text: str) -> str:
    if text not in MODES:
        raise ValueError(f"block mode must be one of {MODES}, got {text!r}")
    return text


def parse_inner(text: str) -> str:
    if text not in INNER_SAMPLERS:
        raise ValueError(f"the inner sampler must be one of {list(INNER_SAMPLERS)}, got {text!r}")
    return text


def parse_replicas(text: str | int) -> int:
    value = int(text)
    if value < 2:
        raise ValueError(f"replica exchange needs at least 2 replicas, got {text!r}")
    return value


def parse_t_max(text: str | float) -> float:
    value = float(text)
    if not 1.0 < value < float("inf"):
        raise ValueError(f"t_max must be a finite temperature > 1, got {text!r}")
    return value


BLOCK_SIZE = Option(parse_sizes, 2, "positions per block proposal, e.g. 2 or 1,2", "K")
BLOCK_MODE = Option(parse_mode, "random", "block shape: random or window", "MODE")

SAMPLER_OPTIONS: dict[str, dict[str, Option]] = {
    "mh": {},
    "gibbs": {},
    "block": {"block_size": BLOCK_SIZE, "block_mode": BLOCK_MODE},
    "metropolised": {},
    "replica-exchange": {
        "replicas": Option(parse_replicas, 4, "replicas per chain (replica-exchange)", "R"),
        "t_max": Option(parse_t_max, 3.0, "hottest temperature / T (replica-exchange)", "T"),
        "inner": Option(parse_inner, "block", "sampler within each replica: block or mh", "NAME"),
        "block_size": BLOCK_SIZE,
        "block_mode": BLOCK_MODE,
    },
    "tuned": {"block_mode": BLOCK_MODE},
}
ANNEALABLE = ("block", "mh", "metropolised")  # samplers pyro-mlm optimize can anneal
