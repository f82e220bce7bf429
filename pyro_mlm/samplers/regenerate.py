r"""Global moves: regenerate a whole block from the MLM inside Metropolis-Hastings.

Each proposal is, independently in each chain, a **regeneration** with probability
:math:`p` (``regen_prob``) and a single-site MH proposal otherwise (:mod:`.mh`).

**Sequential masked regeneration.** Draw a block :math:`B` of :math:`k` free positions
(the whole free region by default; or a contiguous window, or a random subset, of a
size from a set) and a fill order :math:`\sigma` of :math:`B`, both independently of
the tokens. Mask all of :math:`B`; for :math:`j = 1..k` one masked row (the positions
:math:`\sigma_j, \dots, \sigma_k` still masked, the earlier ones filled with the new
tokens) gives

.. math::

    q_j(v) = \operatorname{softmax}\big(s_{\sigma_j}(Y_{j-1}) / \tau_r\big)[v],
    \qquad Y_{j-1} = X'_{\sigma_{<j}} \cup X_{\setminus B},

over the proposable tokens (restricted by the experts' ``allowed``); draw
:math:`x'_{\sigma_j} \sim q_j` and fill it in. The proposal kernel is

.. math::

    Q(X \to X') = P(B, \sigma) \prod_{j=1}^{k} q\big(x'_{\sigma_j} \mid X_{\setminus B},
        x'_{\sigma_1}, \dots, x'_{\sigma_{j-1}}\big).

*Derivation of the ratio.* :math:`X` and :math:`X'` agree off :math:`B`, so the
reverse move :math:`X' \to X` with the same :math:`(B, \sigma)` starts from the *same*
context :math:`X_{\setminus B} = X'_{\setminus B}` and fills in the old tokens:
:math:`Q(X' \to X) = P(B, \sigma) \prod_j q(x_{\sigma_j} \mid X_{\setminus B},
x_{\sigma_1}, \dots, x_{\sigma_{j-1}})`. :math:`P(B, \sigma)` does not depend on the
tokens and cancels, and detailed balance for :math:`\pi \propto e^{-\beta E}` holds with
:math:`a = \min(1, \alpha)`,

.. math::

    \alpha = e^{\beta (E(X) - E(X'))}\,
        \frac{\prod_j q(x_{\sigma_j} \mid X_{\setminus B}, x_{\sigma_{<j}})}
             {\prod_j q(x'_{\sigma_j} \mid X_{\setminus B}, x'_{\sigma_{<j}})}.

Each :math:`(B, \sigma)` gives a :math:`\pi`-invariant kernel, so does their mixture,
and so does the mixture with single-site MH. (Scoring the old tokens under the
*forward* rows, whose context holds the new tokens, is the tempting bug; the
exactness tests show it is wrong.)

*Cost.* The forward pass needs :math:`k` rows (none for :math:`k = 1`: that row is
the current state's cached conditional). Of the reverse rows, the first is the
forward pass's first row (same context, all of :math:`B` masked) and the last,
:math:`X` with :math:`\sigma_k` masked, is the current state's cached single-site
conditional: :math:`k - 2` new rows, in one batched call, only for chains whose
proposal differs from their state. With the energy of :math:`X'` (``|free|`` rows)
a proposal costs :math:`2k - 2 + |F|` rows: 37 for a 13-residue CDR-H3 against 13
for a single-site one. A hard constraint that :math:`X'` breaks (``+inf`` energy) is
a rejection.

**Warm-up.** With ``regen_temperature="auto"`` the regenerations of warm-up cycle
through :data:`TAUS` and measure, for each :math:`\tau_r`, the expected squared jump
of the Hamming distance per masked row,
:math:`\sum \min(1, \alpha)\, d_H(X, X')^2 / \sum \text{rows}`;
:meth:`Regenerate.end_warmup` freezes the best (0.8 when no warm-up ran). From then on
the chain is the fixed exact kernel above.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from pyro_mlm.mh import evaluate_and_accept, single_site_candidates, uniform
from pyro_mlm.proposals import draw, proposal_log_probs, token_log_prob
from pyro_mlm.samplers.mh import MH
from pyro_mlm.samplers.options import (
    REGEN_TEMPERATURE_DEFAULT,
    SAMPLER_OPTIONS,
    TAUS,
    parse_fraction,
    parse_order,
    parse_regen_block,
    parse_regen_temperature,
    parse_sizes,
)


class RegenState(NamedTuple):
    """An :class:`~pyro_mlm.mh.MHState` plus the warm-up's measurements of :math:`\\tau_r`.

    Attributes
    ----------
    tokens, energy, logits, beta, cursor, rows
        As :class:`~pyro_mlm.mh.MHState`.
    gain, spent
        ``[len(TAUS)]`` summed :math:`\\min(1, \\alpha) d_H^2` and rows of each candidate.
    tries
        ``[]`` regeneration proposals made in warm-up (the candidate cycle).
    choice
        ``[]`` the index in ``TAUS`` in use; ``-1`` while warm-up still measures.
    """

    tokens: torch.Tensor
    energy: torch.Tensor
    logits: torch.Tensor
    beta: torch.Tensor
    cursor: torch.Tensor
    rows: torch.Tensor
    gain: torch.Tensor
    spent: torch.Tensor
    tries: torch.Tensor
    choice: torch.Tensor


class RegenInfo(NamedTuple):
    r"""A sweep's :class:`~pyro_mlm.samplers.base.SweepInfo` fields plus, per chain,
    ``regenerations [C]`` (regeneration proposals in the sweep) and ``regen_accepted [C]``
    (their summed :math:`\min(1, \alpha)`): the run's regeneration acceptance is the
    ratio of their totals; and ``regen_temperature [C]``, the frozen :math:`\tau_r` (NaN
    while warm-up still compares them)."""

    accept_prob: torch.Tensor
    acceptance_rate: torch.Tensor
    is_novel: torch.Tensor
    rows: torch.Tensor
    regenerations: torch.Tensor
    regen_accepted: torch.Tensor
    regen_temperature: torch.Tensor


class ProposalInfo(NamedTuple):
    """:class:`~pyro_mlm.mh.MHInfo` plus ``regenerated [C]``: whether it was a regeneration."""

    position: torch.Tensor
    accept_prob: torch.Tensor
    is_accepted: torch.Tensor
    is_novel: torch.Tensor
    regenerated: torch.Tensor


class Regenerate(MH):
    """Single-site MH mixed with sequential masked regeneration (module docstring).

    Parameters
    ----------
    regen_prob
        :math:`p`, the probability that a proposal is a regeneration.
    regen_block
        ``"region"`` (every free position), ``"window"`` (``regen_size`` consecutive
        free positions from a uniform start) or ``"random"`` (a uniform subset).
    regen_size
        Block sizes for ``window``/``random``, drawn uniformly per proposal (``4`` or
        ``"3,6"``); a chain with fewer free positions regenerates all of them.
    regen_order
        ``"random"`` (a uniform permutation per proposal) or ``"left-to-right"``.
    regen_temperature
        :math:`\\tau_r`, or ``"auto"``: chosen in warm-up (module docstring).
    """

    name = "regenerate"
    State = RegenState  # type: ignore[assignment]
    OPTIONS = SAMPLER_OPTIONS["regenerate"]

    def __init__(
        self,
        target: Any,
        free: torch.Tensor,
        *,
        regen_prob: float | str = 0.25,
        regen_block: str = "region",
        regen_size: int | tuple[int, ...] | str = 4,
        regen_order: str = "random",
        regen_temperature: float | str = "auto",
        **settings: Any,
    ) -> None:
        super().__init__(target, free, **settings)
        self.regen_prob = parse_fraction(regen_prob)
        self.regen_block = parse_regen_block(regen_block)
        self.regen_size = parse_sizes(regen_size)
        self.regen_order = parse_order(regen_order)
        self.regen_temperature = parse_regen_temperature(regen_temperature)
        self.taus = TAUS if self.regen_temperature == "auto" else (float(self.regen_temperature),)

    def options(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "regen_prob": self.regen_prob,
            "regen_block": self.regen_block,
            "regen_order": self.regen_order,
            "regen_temperature": self.regen_temperature,
        }
        if self.regen_block != "region":
            out["regen_size"] = list(self.regen_size)
        return out

    # ------------------------------------------------------------ state and sweep
    def start(
        self, tokens: torch.Tensor, beta: torch.Tensor, cursor: torch.Tensor, rows: torch.Tensor
    ) -> Any:
        base = super().start(tokens, beta, cursor, rows)
        n = len(self.taus)
        zero = torch.zeros((), dtype=torch.long)
        choice = zero if n == 1 else zero - 1
        stats = torch.zeros(n, dtype=torch.float64)
        return RegenState(*base, stats, stats.clone(), zero, choice)  # type: ignore[arg-type]

    def tally(self, info: Any) -> torch.Tensor:
        """The shared sums, then the regenerations and their acceptance probabilities."""
        regen = info.regenerated.float()
        return torch.cat([super().tally(info), torch.stack([regen, regen * info.accept_prob])])

    def sweep_info(self, state: Any, sums: torch.Tensor, rows: torch.Tensor) -> RegenInfo:
        index = int(state.choice)
        tau = torch.full_like(sums[3], self.taus[index] if index >= 0 else float("nan"))
        accept_prob, acceptance_rate, is_novel, rows = super().sweep_info(state, sums, rows)
        return RegenInfo(accept_prob, acceptance_rate, is_novel, rows, sums[3], sums[4], tau)

    def end_warmup(self, state: RegenState) -> RegenState:
        """Freeze the :math:`\\tau_r` with the largest squared Hamming jump per row."""
        if int(state.choice) >= 0:
            return state
        if bool((state.spent > 0).any()):
            best = int((state.gain / state.spent.clamp(min=1.0)).argmax())
        else:
            best = TAUS.index(REGEN_TEMPERATURE_DEFAULT)
        return state._replace(choice=torch.tensor(best))

    def propose(
        self, state: Any, positions: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[Any, Any]:
        """One proposal in every chain: a regeneration with probability ``regen_prob``."""
        chains = state.tokens.shape[0]
        regen = uniform(chains, state.tokens.device, generator) < self.regen_prob
        if not bool(regen.any()):
            state, info = super().propose(state, positions, generator)
            return state, ProposalInfo(*info, regen)
        tuning = int(state.choice) < 0
        index = int(state.tries) % len(self.taus) if tuning else int(state.choice)

        # every chain's candidate: single-site where not regenerating, a block where it is
        def propose(logits: torch.Tensor, current: torch.Tensor) -> Any:
            return self.draw(logits, current, generator)

        candidates, proposal = single_site_candidates(
            state.tokens, state.logits, positions, propose
        )
        idx = regen.nonzero().squeeze(-1)
        new, fwd, rev, paid = self.regenerate(state, idx, self.taus[index], generator)
        candidates = candidates.index_copy(0, idx, new)
        log_forward = proposal.log_q_forward.index_copy(0, idx, fwd)
        log_reverse = proposal.log_q_reverse.index_copy(0, idx, rev)
        before = state
        state = state._replace(rows=state.rows.index_add(0, idx, paid))
        moved = (candidates != state.tokens).any(-1)
        state, info = evaluate_and_accept(
            state, positions, candidates, log_forward, log_reverse, moved, self.evaluate,
            1.0 / state.beta, generator,
        )  # fmt: skip
        if tuning:  # the warm-up's measure of this tau_r: squared Hamming jump per row
            jump = (candidates[idx] != before.tokens[idx]).sum(-1).double() ** 2
            gain, spent = state.gain.clone(), state.spent.clone()
            gain[index] += float((jump * info.accept_prob[idx].double()).sum())
            spent[index] += float((state.rows[idx] - before.rows[idx]).sum())
            state = state._replace(gain=gain, spent=spent, tries=state.tries + 1)
        return state, ProposalInfo(*info, regen)

    # ------------------------------------------------------------ the regeneration
    def block(
        self, idx: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sites [n, k_max], valid [n, k_max])`` of chains ``idx``, in fill order.

        Padding slots repeat the first site (they are never filled or scored).
        """
        table, count = self.sites.table[idx], self.sites.counts[idx]
        n, n_max = table.shape
        device = count.device
        if self.regen_block == "region":
            k = count
        else:
            sizes = torch.tensor(self.regen_size, device=device)
            pick = (uniform(n, device, generator) * len(self.regen_size)).long()
            k = torch.minimum(sizes[pick.clamp(max=len(self.regen_size) - 1)], count)
        slots = torch.arange(n_max, device=device)
        if self.regen_block == "window":
            start = (uniform(n, device, generator) * (count - k + 1)).long()
            start = torch.minimum(start, count - k)
            member = (slots >= start[:, None]) & (slots < (start + k)[:, None])
        elif self.regen_block == "random":
            keys = torch.rand(n, n_max, device=device, generator=generator)
            keys = keys.masked_fill(slots >= count[:, None], 2.0)
            rank = keys.argsort(1).argsort(1)
            member = rank < k[:, None]
        else:
            member = slots < count[:, None]
        # fill order: members first, in random or left-to-right order, padding last
        if self.regen_order == "random":
            keys = torch.rand(n, n_max, device=device, generator=generator)
        else:
            keys = slots.to(torch.float32).expand(n, -1) / n_max
        order = keys.masked_fill(~member, 3.0).argsort(1)
        k_max = int(k.max())
        index = order[:, :k_max]
        valid = slots[:k_max] < k[:, None]
        sites = table.gather(1, index)
        sites = torch.where(valid, sites, sites[:, :1])
        return sites, valid

    def regenerate(
        self, state: Any, idx: torch.Tensor, tau: float, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Chains ``idx``' regenerated sequences ``[n, L]``, ``log Q(X -> X')``,
        ``log Q(X' -> X)`` (where the sequence changed) and the proposal rows paid ``[n]``."""
        tokens = state.tokens[idx]
        sites, valid = self.block(idx, generator)
        n, k_max = sites.shape
        k = valid.sum(1)
        current = tokens.gather(1, sites)
        rows = tokens.scatter(1, sites, self.target.mlm.mask_token_id)  # B masked
        new = current.clone()
        log_forward = torch.zeros(n, device=tokens.device)
        # each step's log q [n, k_max, K]: the first is also the reverse's first row
        forward = torch.zeros(n, k_max, self.proposable.numel(), device=tokens.device)
        for j in range(k_max):
            act = valid[:, j].nonzero().squeeze(-1)
            at = sites[act, j]
            scores = state.logits[idx[act], at]  # k = 1: the row is X with sigma_1 masked
            many = (k[act] >= 2).nonzero().squeeze(-1)
            if many.numel():
                fresh = self.target.conditionals_at(rows[act[many]], at[many].unsqueeze(-1))
                scores = scores.index_copy(0, many, fresh[:, 0])
            log_q = proposal_log_probs(scores, tau)
            choice = draw(log_q, generator)
            forward[act, j] = log_q
            log_forward[act] += log_q.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
            new[act, j] = self.proposable[choice]
            rows[act, at] = new[act, j]
        proposed = tokens.scatter(1, sites, torch.where(valid, new, new[:, :1]))
        moved = (proposed != tokens).any(-1)
        log_reverse = log_forward.clone()  # an unchanged sequence: the same path both ways
        if bool(moved.any()):
            m = moved.nonzero().squeeze(-1)
            log_reverse[m] = self.reverse(
                state, idx[m], sites[m], valid[m], current[m], forward[m], tau
            )
        paid = torch.where(k >= 2, k, 0) + torch.where(moved, (k - 2).clamp(min=0), 0)
        return proposed, log_forward, log_reverse, paid

    def reverse(
        self,
        state: Any,
        idx: torch.Tensor,
        sites: torch.Tensor,
        valid: torch.Tensor,
        current: torch.Tensor,
        forward: torch.Tensor,
        tau: float,
    ) -> torch.Tensor:
        r""":math:`\log Q(X' \to X)`: the old tokens filled in along the same order.

        Row :math:`j` (0-based) is :math:`X` with :math:`\sigma_j, \dots` masked: row 0 is
        the forward pass's first row (``forward[:, 0]``: the forward steps' log q
        ``[n, k_max, K]``), row :math:`k-1` the cached conditional at
        :math:`\sigma_k`; rows :math:`1..k-2` run in one batched call.
        """
        k_max = sites.shape[1]
        k = valid.sum(1)
        log_reverse = token_log_prob(forward[:, 0], current[:, 0], self.proposable)
        last = k >= 2
        if bool(last.any()):
            c = last.nonzero().squeeze(-1)
            at = sites[c, k[c] - 1]
            cached = proposal_log_probs(state.logits[idx[c], at], tau)
            log_reverse = log_reverse.index_add(
                0, c, token_log_prob(cached, current[c, k[c] - 1], self.proposable)
            )
        slots = torch.arange(k_max, device=sites.device)
        middle = (slots >= 1) & (slots[None] <= (k - 2)[:, None])  # [n, k_max]
        if bool(middle.any()):
            chain, j = middle.nonzero(as_tuple=True)
            rows = state.tokens[idx[chain]].clone()
            hide = slots[None] >= j[:, None]  # sigma_j.. masked (padding repeats sigma_0)
            values = torch.where(hide & valid[chain], self.target.mlm.mask_token_id, current[chain])
            rows.scatter_(1, sites[chain], values)
            at = sites[chain, j]
            scores = self.target.conditionals_at(rows, at.unsqueeze(-1))[:, 0]
            log_q = proposal_log_probs(scores, tau)
            terms = token_log_prob(log_q, current[chain, j], self.proposable)
            log_reverse = log_reverse.index_add(0, chain, terms)
        return log_reverse
