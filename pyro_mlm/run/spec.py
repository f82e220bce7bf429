"""A run's settings (``run.json``), checked field by field and against the model's tokens.

Everything here works from a :class:`pyro_mlm.models.vocabulary.Vocabulary`, so the command
line checks a run before the model's weights are read.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from pyro_mlm.models.vocabulary import Vocabulary

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

    def validate(self) -> RunSpec:
        """Check every field's type and range (no model needed); returns ``self``."""

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
        )  # every option this sampler would ignore is refused, by name
        for name, low in (("warmup", 0), ("samples", 1), ("shards", 1), ("chains_per_start", 0)):
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
        from pyro_mlm.experts import parse_expert

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

    def differences(self, other: RunSpec) -> list[str]:
        """Fields that differ (``samples`` and the ``resolved_free`` record excluded)."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        records = ("samples", "resolved_free", "model_fingerprints", "length_weights")
        return [k for k in mine if k not in records and mine[k] != theirs[k]]

    def with_resolved_free(self, vocab: Vocabulary) -> RunSpec:
        """This spec with ``resolved_free`` filled from chain 0's start (kept if filled)."""
        if self.resolved_free:
            return self
        from pyro_mlm.design.sites import label_free

        tokens, free = prepare(self, vocab)
        labels = label_free(self.free, tokens[0], free[0], vocab, self.numbering)
        return self.replace(resolved_free=labels)

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)


def prepare(
    spec: RunSpec, vocab: Vocabulary, spell: Callable[[str], str] = str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Starting tokens ``[C, L]`` and free mask ``[C, L]`` of ``spec`` (masks not yet filled).

    ``spell`` names an option in errors as the caller spelled it (``--block-size`` on the
    command line).

    Checks what the tokens alone decide: every sequence encodes, all have one length
    within the model's limit, and ``free`` names positions inside them.
    """
    import torch

    from pyro_mlm.design.sites import parse_free

    spec.validate()
    encoded = [vocab.encode(text) for text in spec.sequences]
    lengths = sorted({len(t) for t in encoded})
    if len(lengths) > 1:
        raise ValueError(
            f"the starting sequences encode to different lengths {lengths}; chains run "
            "side by side and need one length"
        )
    vocab.check_length(lengths[0])
    tokens = torch.stack(encoded)
    free = torch.stack([parse_free(spec.free, t, vocab, spec.numbering) for t in tokens])
    from pyro_mlm.samplers.options import check_settings, parse_lengths

    # under --lengths a region grows to MAX: sizes are checked against what it can reach
    counts = [parse_lengths(spec.lengths)[1]] if spec.lengths else free.sum(-1).tolist()
    check_settings(
        spec.kernel, spec.options, temperature=spec.temperature,
        proposal_temperature=spec.proposal_temperature, free_counts=counts, spell=spell,
    )  # fmt: skip
    outside = free & ~torch.isin(tokens, vocab.proposable_ids) & (tokens != vocab.mask_token_id)
    if bool(outside.any()):
        chain, pos = (int(i) for i in outside.nonzero()[0])
        number = int(vocab.residue_numbers(tokens[chain])[pos])
        raise ValueError(
            f"free position {number} of sequence {chain + 1} holds "
            f"{vocab.tokens_text([int(tokens[chain, pos])])!r}, which the model never "
            "proposes; fix the sequence there or leave that position fixed"
        )
    if spec.lengths:
        from pyro_mlm.design.sites import variable_region

        tokens, free = variable_region(spec, vocab, tokens, free)
    experts = build_experts(spec, vocab, tokens, free, weights=False)
    if experts and not bool((tokens == vocab.mask_token_id).any()):
        from pyro_mlm.design.sites import numbering_of
        from pyro_mlm.experts import check_start

        check_start(experts, tokens, vocab, numbering_of(spec.free, vocab, spec.numbering))
    return tokens, free


def build_experts(
    spec: RunSpec, vocab: Vocabulary, tokens: torch.Tensor, free: torch.Tensor, weights: bool
) -> list[Any]:
    """The run's experts, built against chain 0's start; ``weights=False`` builds only
    those that need no model weights (the checks before a model loads)."""
    from pyro_mlm.experts import EXPERTS, Context, parse_expert

    if spec.context:  # a shard: the run's chain 0, not the shard's
        from pyro_mlm.design.sites import parse_free, region_of, variable_region

        first = vocab.encode(spec.context)
        mask = parse_free(spec.free, first, vocab, spec.numbering)
        if spec.lengths:
            first, mask = (t[0] for t in variable_region(spec, vocab, first[None], mask[None]))
        context = Context(vocab, first, mask, region_of(spec, vocab, mask[None]))
    else:
        from pyro_mlm.design.sites import region_of

        context = Context(vocab, tokens[0], free[0], region_of(spec, vocab, free))
    built = []
    for text in spec.experts:
        name, options = parse_expert(text)
        if weights or name not in ("mlm", "classifier"):
            built.append(EXPERTS[name].build(context, **options))
    return built
