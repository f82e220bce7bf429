r"""Variable-length regions: exact insert and delete moves, so a region's length is sampled too.

The free region is one contiguous stretch of :math:`n` positions, :math:`n \in [n_{\min},
n_{\max}]`, and the target is

.. math::

    \pi(X) \propto e^{-\beta E(X)}\, \lambda(n(X)),

with :math:`\lambda` the length prior (:func:`~pyro_mlm.region.prior.length_prior`; it is
not tempered). Chains are stored at one width (:class:`~pyro_mlm.region.layout.Region`): the
region is followed by the fixed tokens after it and then by pad tokens (the model's attention
mask hides them), so a chain's length is read off its tokens and every cache of a
fixed-length sampler (energies, conditionals) keeps its shape.

A sweep of :class:`VariableLength` is one sweep of a fixed-length sampler (``mh``, ``block``,
``metropolised``, ``regenerate``) over each chain's *current* region, then ``length_moves``
insert-or-delete proposals (:func:`length_log_ratio`). Each part leaves :math:`\pi` invariant
(:math:`\lambda` is constant at a fixed length), so their composition does.

Cost: an insertion is one masked row (the draw) plus the :math:`n+1` rows of the proposal's
energy; a deletion the :math:`n-1` rows of its energy (its reverse terms are the current
state's cached conditionals).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch

from pyro_mlm.region.layout import Region, edit_distance
from pyro_mlm.region.prior import check_length_prior, length_prior
from pyro_mlm.samplers.base import SweepInfo, SweepSampler
from pyro_mlm.samplers.info import Record, extended
from pyro_mlm.samplers.lengths_move import equivalent_runs, insert_probability, length_log_ratio
from pyro_mlm.samplers.options import check_lengths
from pyro_mlm.samplers.proposals import draw, proposal_log_probs, token_log_prob
from pyro_mlm.samplers.scan import sites_of
from pyro_mlm.samplers.transitions import accept_moves, uniform


@dataclass(frozen=True, eq=False)
class LengthInfo(Record):
    """What one round of length moves did, per chain ``[C]``: ``insert`` (1 for an insertion),
    ``accept_prob`` (:math:`\\min(1, \\alpha)`), ``is_accepted`` and the proposal's ``rows``."""

    insert: torch.Tensor
    accept_prob: torch.Tensor
    is_accepted: torch.Tensor
    rows: torch.Tensor


def _with_lengths(info_cls: type[SweepInfo]) -> Any:
    """The inner sampler's sweep-info class plus ``length`` and ``length_accept``."""
    return extended(info_cls, "WithLengths", ("length", "length_accept"))


def check_length_settings(
    sampler: str,
    lengths: object,
    prior: object = "uniform",
    moves: object = None,
    limit: int | None = None,
) -> tuple[tuple[int, int] | None, str | torch.Tensor, int | None]:
    """A variable-length region's settings as given to the Pyro kernel, checked at
    construction (never first inside ``MCMC.run()``): ``(MIN, MAX)`` (or None), the prior,
    the length moves; a MAX over the model's ``limit`` positions is refused before anything
    is allocated for it."""
    parsed = None if lengths is None else check_lengths(lengths, sampler)
    if parsed is not None and limit is not None and parsed[1] > limit:
        raise ValueError(
            f"--lengths {parsed[0]}-{parsed[1]}: a region of {parsed[1]} is longer than the "
            f"{limit} positions the model takes (special tokens included)"
        )
    if moves is not None and (isinstance(moves, bool) or not isinstance(moves, int) or moves < 1):
        raise ValueError(f"length_moves must be an integer >= 1 or None, got {moves!r}")
    return parsed, check_length_prior(prior, parsed), moves


class VariableLength(SweepSampler):
    r"""A fixed-length sampler over a region whose length is sampled too (module docstring).

    Parameters
    ----------
    inner
        The fixed-length sampler, built on the padded tokens' free mask
        (:func:`~pyro_mlm.region.layout.pad_region`): its ``sites`` are replaced by each
        chain's current region before every sweep.
    lengths
        ``(n_min, n_max)``.
    prior
        ``[n_max + 1]`` :math:`\log\lambda` (:func:`length_prior`), or its text.
    length_moves
        Insert-or-delete proposals per sweep (default :math:`\lceil n_{\max}/4 \rceil`).
    """

    name = "lengths"

    def __init__(
        self,
        inner: SweepSampler,
        lengths: tuple[int, int],
        prior: torch.Tensor | str = "uniform",
        length_moves: int | None = None,
    ) -> None:
        vocab = inner.target.mlm
        self.lengths = check_lengths(lengths, inner.name or type(inner).__name__)
        if vocab.pad_token_id is None:
            raise ValueError("--lengths needs a model with a pad token (to pad shorter chains)")
        if inner.target.restrictions:
            raise ValueError(
                "--lengths does not work with the allowed expert: its positions are fixed "
                "indices, which a region of another length moves; use forbid or composition"
            )
        self.pad: int = vocab.pad_token_id
        self.inner = inner
        self.target = inner.target
        self.scan = inner.scan
        self.proposal_temperature = inner.proposal_temperature
        self.proposals = inner.proposals
        self.proposable = inner.proposable
        # the inner sampler's state is this sampler's: the driver saves and loads it as is
        vars(self).update(State=inner.State, NESTED=inner.NESTED, exact=inner.exact)
        self.PROGRESS = (*inner.PROGRESS, "length", "length_accept")  # type: ignore[misc]
        # where the region sits in the padded rows: every position below is read off it
        self.region = Region.of(inner.sites.mask, self.lengths, self.pad)
        prior = check_length_prior(prior, self.lengths, "prior")  # at construction
        self.log_prior: torch.Tensor = (
            prior if isinstance(prior, torch.Tensor) else length_prior(prior, self.lengths)
        )
        if length_moves is not None and (
            isinstance(length_moves, bool) or not isinstance(length_moves, int) or length_moves < 1
        ):
            raise ValueError(f"length_moves must be an integer >= 1, got {length_moves!r}")
        self.length_moves = length_moves or math.ceil(self.lengths[1] / 4)
        self.sites = inner.sites

    # ------------------------------------------------------------ lengths and sites
    def length_of(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[C]`` each chain's region length, read off its pad tokens."""
        return self.region.length_of(tokens)

    def at(self, tokens: torch.Tensor) -> SweepSampler:
        """The inner sampler with the sites of ``tokens``' current regions."""
        inner = copy.copy(self.inner)
        inner.sites = sites_of(self.region.mask(self.length_of(tokens)))
        return inner

    # ------------------------------------------------------------ the interface
    def init(self, tokens: torch.Tensor, beta: torch.Tensor | None = None) -> Any:
        lo, hi = self.lengths
        region = self.region
        if tokens.shape[-1] != region.width:
            raise ValueError(f"tokens have width {tokens.shape[-1]}, this region {region.width}")
        n = self.length_of(tokens)
        before = torch.arange(region.width, device=tokens.device) < region.first
        tail = (tokens != self.pad) & ~(region.mask(n) | before)
        if bool(((n < lo) | (n > hi)).any()) or bool((tail.sum(-1) != region.after).any()):
            raise ValueError(
                f"the start's region lengths {n.tolist()} must lie in --lengths {lo}-{hi}, "
                "with pad tokens only after the fixed tokens that follow the region"
            )
        return self.at(tokens).init(tokens, beta)

    def step(self, state: Any, generator: torch.Generator | None = None) -> tuple[Any, Any]:
        with torch.no_grad():
            state, info = self.at(state.tokens).step(state, generator)
            rows, accepted = info.rows, torch.zeros_like(info.accept_prob)
            for _ in range(self.length_moves):
                state, moved = self.length_move(state, generator)
                rows = rows + moved.rows
                accepted = accepted + moved.accept_prob
        info = info._replace(rows=rows)
        n = self.length_of(state.tokens).float()
        fields = {**info._asdict(), "length": n, "length_accept": accepted / self.length_moves}
        return state, _with_lengths(type(info))(**fields)

    def length_move(self, state: Any, generator: torch.Generator | None) -> tuple[Any, LengthInfo]:
        """One insert-or-delete proposal in every chain (:func:`length_log_ratio`)."""
        tokens = state.tokens
        chains, device = tokens.shape[0], tokens.device
        mlm = self.target.mlm
        n = self.length_of(tokens)
        u = uniform(2 * chains, device, generator).view(2, chains)
        insert = u[0] < insert_probability(n, self.lengths).float()
        gaps = torch.where(insert, n + 1, n)
        slot = torch.minimum((u[1] * gaps).long(), gaps - 1)
        first, width = self.region.first, self.region.width
        at = first + slot
        span = torch.arange(width, device=device)[None]
        shifted = torch.where(
            insert[:, None], span - (span > at[:, None]).long(), span + (span >= at[:, None]).long()
        )
        candidates = tokens.gather(1, shifted.clamp(max=width - 1))
        candidates[~insert, -1] = self.pad
        idx = torch.arange(chains, device=device)
        candidates[idx, at] = torch.where(insert, mlm.mask_token_id, candidates[idx, at])
        extra_rows = insert.long()
        ins = insert.nonzero().flatten()
        if ins.numel():  # the draw: one masked row each, X' with its new position masked
            scores = self.target.conditionals(candidates[ins], at[ins])
            choice = draw(proposal_log_probs(scores, self.proposal_temperature), generator)
            candidates[ins, at[ins]] = self.proposable[choice]
        new_n = torch.where(insert, n + 1, n - 1)
        result = self.target.evaluate(candidates, self.region.mask(new_n), chains=idx)
        # insertion: the run in X' around the new token, with X''s conditionals; deletion:
        # the run in X around the removed token, with X's cached conditionals
        source = torch.where(insert[:, None], candidates, tokens)
        logits = torch.where(insert[:, None, None], result.logits, state.logits)
        most = self.lengths[1]
        region = source[:, first : first + most]
        inside = span[:, :most] < torch.where(insert, new_n, n)[:, None]
        same = (region == region[idx, slot][:, None]) & inside
        run = self.equivalent(same, slot)
        log_q = proposal_log_probs(logits[:, first : first + most], self.proposal_temperature)
        flat = token_log_prob(log_q.flatten(0, 1), region.flatten(), self.proposable).view(
            chains, most
        )
        summed = self.summed(run, slot)
        log_q_run = torch.logsumexp(flat.masked_fill(~summed, float("-inf")), -1)
        beta = state.beta.to(result.energy.dtype)
        log_ratio = length_log_ratio(
            insert, n, beta * (state.energy - result.energy), self.log_prior, run.sum(-1),
            log_q_run, self.lengths,
        )  # fmt: skip
        state = state._replace(rows=state.rows + extra_rows)
        moved = torch.ones(chains, dtype=torch.bool, device=device)
        state, info = accept_moves(
            state, at, moved, (idx, candidates, result, log_ratio), generator
        )
        rows = extra_rows + result.rows.to(extra_rows.dtype)
        return state, LengthInfo(insert.float(), info.accept_prob, info.is_accepted, rows)

    def equivalent(self, same: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """``[C, W]`` the region positions whose insertion (or deletion) gives the same
        sequence as at ``slot [C]``: the run of tokens equal to it (``same [C, W]``) around
        it (:func:`~pyro_mlm.samplers.lengths_move.equivalent_runs`)."""
        return equivalent_runs(same, slot)

    def summed(self, run: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """``[C, W]`` the positions whose proposal probabilities the ratio sums: the run."""
        return run

    def end_warmup(self, state: Any) -> Any:
        return self.inner.end_warmup(state)

    def distance(self, tokens: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``[C]`` the edit distance of each region to ``reference``'s (mutations along the
        best alignment: an insertion or a deletion counts one)."""
        ref = self.residues(reference[0].tolist())
        return torch.tensor([edit_distance(self.residues(row), ref) for row in tokens.tolist()])

    def draw_stats(self, tokens: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
        """``hamming`` (the edit distance) and each draw's region ``length``."""
        stats = super().draw_stats(tokens, reference)
        return {**stats, "length": self.length_of(tokens).double()}

    def residues(self, row: list[int]) -> list[int]:
        """The ids of one sequence's region."""
        lo, hi = self.region.bounds(row)
        return row[lo:hi]

    def energy(self, state: Any) -> torch.Tensor:
        return self.inner.energy(state)

    def options(self) -> dict[str, Any]:
        return self.inner.options()

    def __repr__(self) -> str:
        lo, hi = self.lengths
        return (
            f"VariableLength({self.inner!r}, lengths={lo}-{hi}, length_moves={self.length_moves})"
        )
