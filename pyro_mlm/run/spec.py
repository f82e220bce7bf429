"""A run's settings (``run.json``), checked field by field (no model needed); checked against
the model's tokens once per command by :func:`pyro_mlm.run.prepare.prepare`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

# the choices of a run's settings, which RunSpec checks and the command line offers
# (torch-free here; pyro_mlm.energy, .target and .samplers.scan take the same values, and
# tests/run/test_spec.py keeps them equal)
ENERGIES = ("norm", "raw")
ENERGY_OVER = ("free", "all")
SCANS = ("random", "systematic")
BACKENDS = ("local", "ray")
MAX_SEED = 2**32 - 1  # numpy's seed range, which pyro.set_rng_seed also seeds


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run (and so its draws, given the seed).

    ``sequences`` holds one starting text per chain; mask tokens in it at free
    positions are filled from the MLM's conditionals before the first sweep.
    ``free`` is read by :func:`pyro_mlm.design.sites.parse_free`.
    """

    model: str
    sequences: tuple[str, ...]
    free: str = "all"
    energy: str = "norm"
    kernel: str = "mh"
    warmup: int = 20
    samples: int = 100
    temperature: float = 1.0
    proposal_temperature: float = 1.0
    scan: str = "random"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    experts: tuple[str, ...] = ()  # --expert texts, e.g. "max-mutations:k=3"
    energy_over: str = "free"  # "free" or "all" (see pyro_mlm.target.Target)
    numbering: str = "imgt"  # scheme of numbered regions in ``free``
    shards: int = 1  # > 1: chains split into shards (pyro_mlm.run.shards), own seeds each
    chains_per_start: int = 0  # > 0: a campaign, one run per start (pyro_mlm.run.campaign)
    # what --free resolved to in chain 0's start, and how (pyro_mlm.design.sites.label_free); a
    # record written with the run, not a setting: filled in by with_resolved_free
    resolved_free: dict[str, Any] = field(default_factory=dict)
    # the start that experts are built against (max-mutations' parent, forbid's scope, ...):
    # "" is chain 0's; a shard of a run gets the run's, so where chains run never changes
    # the target
    context: str = ""
    # torch threads the run started with (0: not recorded): floats, and so draws, depend
    # on them in their last bits, so a resumed run uses them again (pyro-mlm sample)
    threads: int = 0
    names: tuple[str, ...] = ()  # a campaign's start names (FASTA headers), for its table
    # a region whose length is sampled too (pyro_mlm.samplers.lengths): "MIN-MAX" ("" for a
    # fixed length), the length prior (uniform, penalty:VALUE or a file) and the insert or
    # delete proposals per sweep (0: the sampler's default)
    lengths: str = ""
    length_prior: str = "uniform"
    length_moves: int = 0
    # what a --length-prior FILE held when the run started, as (length, weight) pairs: the
    # run's law, read from here on resume (an edited or missing file cannot change it)
    length_weights: tuple[tuple[int, float], ...] = ()
    # every model the run reads (--model, and an expert's model=), by what its weights were
    # when the run started (pyro_mlm.models.fingerprint): a resume whose model directory
    # now holds other weights is refused
    model_fingerprints: dict[str, str] = field(default_factory=dict)
    # the stop rule (pyro_mlm.run.until): sample until the verdict holds, ``samples`` then
    # being the most draws per chain (0: no cap); and a wall-time budget for this session's
    # sampling, in minutes (0: none), after which the run stops, resumable
    until_converged: bool = False
    max_minutes: float = 0.0

    @property
    def chains(self) -> int:
        return len(self.sequences)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """The spec in ``text``; ``ValueError`` saying what is wrong with it."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object of run settings, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        missing = sorted(f for f in ("model", "sequences") if f not in data)
        if unknown or missing:
            raise ValueError(
                "run settings "
                + (f"have unknown keys {unknown}" if unknown else "")
                + ("; " if unknown and missing else "")
                + (f"lack {missing}" if missing else "")
            )
        sequences = data["sequences"]
        if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
            raise ValueError("'sequences' must be a list of strings")
        experts = data.get("experts", [])
        if not isinstance(experts, list) or not all(isinstance(e, str) for e in experts):
            raise ValueError("'experts' must be a list of strings")
        names = data.get("names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("'names' must be a list of strings")
        weights = data.get("length_weights", [])
        if not isinstance(weights, list) or not all(
            isinstance(w, list) and len(w) == 2 and isinstance(w[0], int) for w in weights
        ):
            raise ValueError("'length_weights' must be a list of [length, weight] pairs")
        spec = cls(
            **{**data, "sequences": tuple(sequences), "experts": tuple(experts),
               "names": tuple(names),
               "length_weights": tuple((int(n), float(w)) for n, w in weights)}
        )  # fmt: skip
        spec.validate()
        return spec

    @classmethod
    def read(cls, path: str) -> RunSpec:
        """The spec saved at ``path``; a damaged file is a ``ValueError`` naming it."""
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            return cls.from_json(text)
        except (ValueError, TypeError) as err:  # JSON and UTF-8 errors are ValueErrors
            raise ValueError(
                f"{path} is damaged ({' '.join(str(err).split())}); it holds the run's "
                "settings: restore it from a copy, or start a new run with another --out"
            ) from err

    def validate(self, spell: Callable[[str], str] = str) -> RunSpec:
        """Check every field's type and range (no model needed); returns ``self``.

        ``spell`` names a sampler option in errors as the caller spelled it (``--block-size``
        on the command line)."""

        def fail(name: str, want: str) -> None:
            raise ValueError(f"{name} must be {want}, got {getattr(self, name)!r}")

        if not isinstance(self.model, str) or not self.model:
            fail("model", "a model name or directory")
        if not self.sequences:
            raise ValueError("a run needs at least one chain (one starting sequence)")
        if not isinstance(self.free, str):
            fail("free", "a string such as 'all' or '98-110'")
        from pyro_mlm.samplers.options import SAMPLER_OPTIONS, check_settings

        kernels = tuple(SAMPLER_OPTIONS)
        for name, choices in (("energy", ENERGIES), ("kernel", kernels), ("scan", SCANS)):
            if getattr(self, name) not in choices:
                fail(name, "one of " + ", ".join(repr(c) for c in choices))
        if not isinstance(self.options, dict):
            fail("options", "a mapping of the sampler's settings")
        if not isinstance(self.context, str):
            fail("context", "a starting sequence (text), or '' for chain 0's")
        if not isinstance(self.resolved_free, dict):
            fail("resolved_free", "a mapping (positions, labels, regions, how)")
        prints = self.model_fingerprints
        if not isinstance(prints, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in prints.items()
        ):
            fail("model_fingerprints", "a mapping of model names to fingerprints")
        check_settings(
            self.kernel,
            self.options,
            temperature=self.temperature,
            proposal_temperature=self.proposal_temperature,
            spell=spell,
        )  # every option this sampler would ignore is refused, by name
        if not isinstance(self.until_converged, bool):
            fail("until_converged", "true or false")
        minutes = self.max_minutes
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, (int, float))
            or not 0 <= minutes < float("inf")
        ):
            fail("max_minutes", "a finite number of minutes >= 0 (0: no budget)")
        least = 0 if self.until_converged else 1  # 0 draws: no cap under the stop rule
        for name, low in (
            ("warmup", 0), ("samples", least), ("shards", 1), ("chains_per_start", 0)
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                fail(name, f"an integer >= {low}")
        for name in ("temperature", "proposal_temperature"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 < value < float("inf")
            ):
                fail(name, "a finite number > 0")
        from pyro_mlm.design.numbering import SCHEMES
        from pyro_mlm.experts.declared import parse_expert

        if self.energy_over not in ENERGY_OVER:
            fail("energy_over", "'free' or 'all'")
        if self.numbering not in SCHEMES:
            fail("numbering", " or ".join(repr(s) for s in SCHEMES))
        if not isinstance(self.experts, tuple) or not all(isinstance(e, str) for e in self.experts):
            fail("experts", "a list of expert texts such as 'max-mutations:k=3'")
        for text in self.experts:
            parse_expert(text)  # unknown expert or key: ValueError
        self._validate_lengths()
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            fail("seed", f"an integer in [0, {MAX_SEED}]")
        if not 0 <= self.seed <= MAX_SEED:
            fail("seed", f"an integer in [0, {MAX_SEED}]")
        return self

    def _validate_lengths(self) -> None:
        from pyro_mlm.samplers.options import check_lengths

        if not isinstance(self.lengths, str):
            raise ValueError(f"--lengths must be MIN-MAX, got {self.lengths!r}")
        moves = self.length_moves
        if isinstance(moves, bool) or not isinstance(moves, int) or moves < 0:
            raise ValueError(f"--length-moves must be an integer >= 0, got {moves!r}")
        if not self.lengths:
            if self.length_prior != "uniform" or moves:
                raise ValueError("--length-prior and --length-moves need --lengths MIN-MAX")
            return
        check_lengths(self.lengths, self.kernel, "--lengths")
        if not isinstance(self.length_prior, str) or not self.length_prior:
            raise ValueError("length_prior must be uniform, penalty:VALUE or a file")

    @property
    def length_range(self) -> tuple[int, int] | None:
        """``(MIN, MAX)`` of ``--lengths`` (None for a fixed length): the one reading of the
        run's text that everything downstream takes (:mod:`pyro_mlm.region`)."""
        from pyro_mlm.region.lengths import parse_lengths

        return parse_lengths(self.lengths) if self.lengths else None

    def differences(self, other: RunSpec) -> list[str]:
        """Fields that differ (``samples`` and the ``resolved_free`` record excluded)."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        records = (
            "samples", "resolved_free", "model_fingerprints", "length_weights", "max_minutes"
        )  # fmt: skip
        return [k for k in mine if k not in records and mine[k] != theirs[k]]

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)
