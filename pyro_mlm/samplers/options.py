"""Each registered sampler's own settings and capabilities, readable without torch.

One :class:`Declared` entry per sampler in :data:`DECLARED`: its class (a module of
this package, imported on first use), its options (the command
line builds ``--kernel`` and the sampler flags from them, so that ``pyro-mlm sample
--help`` does not import torch; the class reads them as ``OPTIONS``), and what it can do
(annealed by ``pyro-mlm optimize``; run inside each replica of replica exchange). Every
list of sampler names (``SAMPLER_OPTIONS``, ``ANNEALABLE``, ``INNER_SAMPLERS``) is derived
from it, so a new sampler declares itself once. ``tests/samplers/test_samplers.py`` checks
that this table and :data:`pyro_mlm.samplers.SAMPLERS` name the same samplers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyro_mlm.region.lengths import parse_lengths

MODES = ("random", "window")
REGEN_BLOCKS = ("region", "window", "random")
ORDERS = ("random", "left-to-right")
TAUS = (0.6, 0.8, 1.0, 1.2)  # regeneration temperatures the warm-up of regenerate compares
REGEN_TEMPERATURE_DEFAULT = 0.8  # its choice when no warm-up ran (bench/README.md)


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


def one_of(what: str, choices: tuple[str, ...], shown: object = None) -> Callable[[str], str]:
    """A parser that accepts one of ``choices`` and refuses anything else, naming ``what``."""

    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{what} must be one of {shown or choices}, got {text!r}")
        return text

    return parse


parse_mode = one_of("block mode", MODES)
parse_regen_block = one_of("the regeneration block", REGEN_BLOCKS)
parse_order = one_of("the fill order", ORDERS)


def parse_fraction(text: str | float) -> float:
    """A probability in (0, 1]."""
    try:
        value = float(text)
    except (TypeError, ValueError) as err:
        raise ValueError(f"expected a probability in (0, 1], got {text!r}") from err
    if not 0.0 < value <= 1.0:
        raise ValueError(f"expected a probability in (0, 1], got {text!r}")
    return value


def parse_regen_temperature(text: str | float) -> float | str:
    """``"auto"`` (chosen in warm-up among ``TAUS``) or a temperature > 0."""
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the regeneration temperature must be auto or > 0, got {text!r}") from err
    if not 0.0 < value < float("inf"):
        raise ValueError(f"the regeneration temperature must be auto or > 0, got {text!r}")
    return value


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


REGEN_BLOCK_HELP = "regenerated block: region (all free), window or random"
REGEN_TAU_HELP = f"tau_r, or auto: the best of {TAUS} in warm-up"
BLOCK_SIZE = Option(parse_sizes, 2, "positions per block proposal, e.g. 2 or 1,2", "K")
BLOCK_MODE = Option(parse_mode, "random", "block shape: random or window", "MODE")


@dataclass(frozen=True)
class Declared:
    """What a registered sampler declares: its own options and its capabilities.

    Attributes
    ----------
    cls
        ``"module:Class"``, imported on first use (so this table stays torch-free).
    options
        Its settings beyond the shared ones (``--NAME`` flags, ``OPTIONS`` of the class).
    annealable
        ``pyro-mlm optimize`` can anneal it (its state carries the inverse temperature).
    inner
        Replica exchange can run it inside each replica (``--inner NAME``).
    lengths
        It runs over a region whose length varies (``--lengths``): its state is an
        ``MHState`` with more fields at most, and it reads its sites when it steps.
    """

    cls: str
    options: dict[str, Option] = field(default_factory=dict)
    annealable: bool = False
    inner: bool = False
    lengths: bool = False


def _declared() -> dict[str, Declared]:
    inner = tuple(sorted(n for n, d in _BASE.items() if d.inner))
    parse_inner = one_of("the inner sampler", inner, list(inner))
    replicas = Option(parse_replicas, 4, "replicas (slots) per chain", "R")
    replica = {
        "replicas": replicas,
        "t_max": Option(parse_t_max, 3.0, "hottest temperature / T (replica-exchange)", "T"),
        "inner": Option(
            parse_inner, "block", f"sampler within each replica: {', '.join(inner)}", "NAME"
        ),
        "block_size": BLOCK_SIZE,
        "block_mode": BLOCK_MODE,
    }
    return {
        **_BASE,
        "replica-exchange": Declared("replica:ReplicaExchange", replica),
        "reference-tempering": Declared("reference:ReferenceTempering", {"replicas": replicas}),
    }


_BASE: dict[str, Declared] = {
    "mh": Declared("mh:MH", annealable=True, inner=True, lengths=True),
    "gibbs": Declared("gibbs:Gibbs"),
    "block": Declared(
        "block:BlockMH",
        {"block_size": BLOCK_SIZE, "block_mode": BLOCK_MODE},
        annealable=True,
        inner=True,
        lengths=True,
    ),
    "metropolised": Declared("metropolised:MetropolisedMH", annealable=True, lengths=True),
    "tuned": Declared("tuned:Tuned", {"block_mode": BLOCK_MODE}),
    "regenerate": Declared(
        "regenerate:Regenerate",
        {
            "regen_prob": Option(parse_fraction, 0.25, "share of proposals that regenerate", "P"),
            "regen_block": Option(parse_regen_block, "region", REGEN_BLOCK_HELP, "MODE"),
            "regen_size": Option(parse_sizes, 4, "window/random block sizes, e.g. 4 or 3,6", "K"),
            "regen_order": Option(parse_order, "random", "fill order: random, left-to-right", "O"),
            "regen_temperature": Option(parse_regen_temperature, "auto", REGEN_TAU_HELP, "TAU"),
        },
        annealable=True,
        inner=True,
        lengths=True,
    ),
}
# the one declaration of every registered sampler (replica exchange's --inner choices are
# the samplers declared inner); the name lists below are views of it
DECLARED: dict[str, Declared] = _declared()
SAMPLER_OPTIONS: dict[str, dict[str, Option]] = {n: d.options for n, d in DECLARED.items()}
ANNEALABLE = tuple(sorted(n for n, d in DECLARED.items() if d.annealable))
INNER_SAMPLERS = tuple(sorted(n for n, d in DECLARED.items() if d.inner))
LENGTH_SAMPLERS = tuple(sorted(n for n, d in DECLARED.items() if d.lengths))


def check_lengths(lengths: object, sampler: str, spell: str = "lengths") -> tuple[int, int]:
    """``(MIN, MAX)`` of ``lengths``, for a sampler that declares it runs over a region whose
    length varies (``lengths`` in :data:`DECLARED`); ``spell`` names the setting in errors."""
    parsed = parse_lengths(lengths)  # type: ignore[arg-type]
    if sampler not in LENGTH_SAMPLERS:
        raise ValueError(
            f"{spell} works with the samplers {', '.join(LENGTH_SAMPLERS)}; not with {sampler!r}"
        )
    return parsed


# settings shared by every sampler that a sampler does not use, with why
IGNORED_COMMON: dict[str, dict[str, str]] = {
    "tuned": {"proposal_temperature": "tuned chooses its proposal temperature in warm-up"},
    "gibbs": {"temperature": "masked Gibbs always accepts, so it has no target temperature"},
}


def check_settings(
    kernel: str,
    options: dict[str, Any],
    *,
    temperature: float = 1.0,
    proposal_temperature: float = 1.0,
    free_counts: list[int] | None = None,
    spell: Callable[[str], str] = str,
) -> dict[str, Any]:
    """The sampler's ``options`` parsed, after refusing every setting it would ignore.

    The one check the command line, :class:`~pyro_mlm.run.spec.RunSpec`,
    :func:`~pyro_mlm.samplers.build_sampler` and :class:`~pyro_mlm.pyro.kernel.SamplerKernel`
    call: an unknown option, an option of another sampler, a shared setting this sampler
    does not use given a non-default value (``IGNORED_COMMON``), a block option of replica
    exchange whose inner sampler is ``mh``, and a block size larger than every chain's free
    positions (``free_counts``) are ``ValueError`` s naming the option as the caller spelled
    it (``spell``: e.g. ``--block-size`` on the command line), never silently dropped.
    """
    if kernel not in SAMPLER_OPTIONS:
        raise ValueError(f"unknown sampler {kernel!r}; registered: {', '.join(SAMPLER_OPTIONS)}")
    own = SAMPLER_OPTIONS[kernel]
    foreign = sorted(set(options) - set(own))
    if foreign:
        owners = {k: [n for n, o in SAMPLER_OPTIONS.items() if k in o] for k in foreign}
        raise ValueError(
            "; ".join(
                f"{spell(k)} does not apply to sampler {kernel!r}"
                + (f" (it is an option of {', '.join(owners[k])})" if owners[k] else "")
                for k in foreign
            )
        )
    given = {"temperature": temperature, "proposal_temperature": proposal_temperature}
    for name, why in IGNORED_COMMON.get(kernel, {}).items():
        if given[name] != 1.0:
            raise ValueError(
                f"{spell(name)} {given[name]:g} does not apply to sampler {kernel!r}: {why}"
            )
    parsed = {}
    for k, v in options.items():
        try:
            parsed[k] = own[k].parse(v)
        except (TypeError, ValueError) as err:  # named as the caller spells the option
            raise ValueError(f"{spell(k)}: {err}") from None
    inner = parsed.get("inner", own["inner"].default if "inner" in own else None)
    if inner in ("mh", "regenerate"):
        unused = sorted(k for k in parsed if k.startswith("block_"))
        if unused:
            raise ValueError(
                f"{', '.join(spell(k) for k in unused)} does not apply to replica exchange "
                f"with {spell('inner')} {inner}; use block or drop it"
            )
    if "regen_size" in parsed and parsed.get("regen_block", "region") == "region":
        raise ValueError(
            f"{spell('regen_size')} does not apply to {spell('regen_block')} region (the whole "
            f"free region); give {spell('regen_block')} window or random"
        )
    if free_counts:
        check_sizes(kernel, parsed, free_counts, spell)
    return parsed


def check_sizes(
    kernel: str,
    options: dict[str, Any],
    free_counts: list[int],
    spell: Callable[[str], str] = str,
) -> None:
    """A block or regeneration size in ``options`` (checked by :func:`check_settings`) larger
    than every chain's free positions (``free_counts``; under ``--lengths`` the longest
    region) is a ``ValueError``: the sampler could only cut it down."""
    for name in ("block_size", "regen_size"):
        given = options.get(name)
        sizes = None if given is None else SAMPLER_OPTIONS[kernel][name].parse(given)
        if sizes is not None and free_counts and max(sizes) > max(free_counts):
            raise ValueError(
                f"{spell(name)} {max(sizes)} is larger than the {max(free_counts)} free "
                f"positions; give at most {max(free_counts)}"
            )
