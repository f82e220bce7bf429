"""A run's start, prepared once per command: the spec checked against the model's tokens
(before the weights load), the start's tokens, free mask and region, and its experts.

Everything here works from a :class:`pyro_mlm.models.vocabulary.Vocabulary`, so the command
line checks a run before the model's weights are read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from pyro_mlm.run.spec import RunSpec

if TYPE_CHECKING:
    import torch

    from pyro_mlm.models.vocabulary import Vocabulary
    from pyro_mlm.region.layout import Region


class Prepared(NamedTuple):
    """A run's checked start: ``tokens [C, L]`` (masks not yet filled; padded to the longest
    region under ``--lengths``) and the free mask ``free [C, L]``."""

    tokens: torch.Tensor
    free: torch.Tensor


def prepare(spec: RunSpec, vocab: Vocabulary, spell: Callable[[str], str] = str) -> Prepared:
    """Starting tokens ``[C, L]`` and free mask ``[C, L]`` of ``spec`` (masks not yet filled),
    padded under ``--lengths``: the one preparation of a command, handed
    down to the run (:func:`pyro_mlm.run.loop.sample_to_directory`'s ``prepared``).

    ``spell`` names an option in errors as the caller spelled it (``--block-size`` on the
    command line).

    Checks what the tokens alone decide: every sequence encodes, all have one length
    within the model's limit, and ``free`` names positions inside them.
    """
    import torch

    from pyro_mlm.design.sites import parse_free

    spec.validate(spell)  # the sampler's settings by name (check_settings) among the fields
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
    from pyro_mlm.samplers.options import check_sizes

    # under --lengths a region grows to MAX: sizes are checked against what it can reach
    reach = spec.length_range
    check_sizes(spec.kernel, spec.options, [reach[1]] if reach else free.sum(-1).tolist(), spell)
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
        tokens, free = padded(spec, vocab, tokens, free)
    experts = build_experts(spec, vocab, tokens, free, weights=False)
    if experts and not bool((tokens == vocab.mask_token_id).any()):
        from pyro_mlm.design.sites import numbering_of
        from pyro_mlm.experts.registry import check_start

        check_start(experts, tokens, vocab, numbering_of(spec.free, vocab, spec.numbering))
    return Prepared(tokens, free)


def build_experts(
    spec: RunSpec, vocab: Vocabulary, tokens: torch.Tensor, free: torch.Tensor, weights: bool
) -> list[Any]:
    """The run's experts, built against chain 0's start; ``weights=False`` builds only
    those that need no model weights (the checks before a model loads)."""
    from pyro_mlm.experts.base import Context
    from pyro_mlm.experts.declared import DECLARED, parse_expert
    from pyro_mlm.experts.registry import EXPERTS

    if spec.context:  # a shard: the run's chain 0, not the shard's
        from pyro_mlm.design.sites import parse_free

        first = vocab.encode(spec.context)
        mask = parse_free(spec.free, first, vocab, spec.numbering)
        if spec.lengths:
            first, mask = (t[0] for t in padded(spec, vocab, first[None], mask[None]))
        tokens, free = first[None], mask[None]
    context = Context(vocab, tokens[0], free[0], region_of(spec, vocab, free))
    built = []
    for text in spec.experts:
        name, options = parse_expert(text)
        if weights or not DECLARED[name].loads_model:
            built.append(EXPERTS[name].build(context, **options))
    return built


def padded(
    spec: RunSpec, vocab: Vocabulary, tokens: torch.Tensor, free: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens and free mask of a ``--lengths`` run padded to the region's longest length
    (:func:`~pyro_mlm.region.layout.padded_start`); a ``ValueError`` in one line for a region
    that is not one stretch, a start length outside the range, a model without a pad token or
    a bad length prior."""
    from pyro_mlm.region.layout import padded_start
    from pyro_mlm.region.prior import length_prior

    lengths = spec.length_range
    assert lengths is not None
    tokens, free = padded_start(tokens, free, lengths, vocab.pad_token_id, vocab.max_length)
    recorded = dict(spec.length_weights) if spec.length_weights else None
    length_prior(spec.length_prior, lengths, recorded)  # a bad prior: refused before the weights
    vocab.check_length(tokens.shape[1])
    return tokens, free


def region_of(spec: RunSpec, vocab: Vocabulary, free: torch.Tensor) -> Region | None:
    """The :class:`~pyro_mlm.region.layout.Region` of a ``--lengths`` run's padded
    ``free [C, L]``, or None."""
    lengths = spec.length_range
    if lengths is None:
        return None
    from pyro_mlm.region.layout import Region

    assert vocab.pad_token_id is not None  # padded() refused a model without one
    return Region.of(free.cpu(), lengths, vocab.pad_token_id)


def with_resolved_free(spec: RunSpec, vocab: Vocabulary, prepared: Prepared) -> RunSpec:
    """``spec`` with ``resolved_free`` filled from chain 0's prepared start (kept if filled):
    run.json records what ``--free`` resolved to."""
    if spec.resolved_free:
        return spec
    from pyro_mlm.design.sites import label_free

    tokens, free = prepared.tokens, prepared.free
    labels = label_free(spec.free, tokens[0], free[0], vocab, spec.numbering)
    return spec.replace(resolved_free=labels)
