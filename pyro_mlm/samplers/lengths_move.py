r"""The maths of insert and delete moves on a region whose length varies: the runs of equal
tokens (equivalent gaps), the choice probabilities and the Hastings ratio
(:func:`length_log_ratio`). The sampler that makes them is
:class:`pyro_mlm.samplers.lengths.VariableLength`; the region itself (its layout, length
prior and range) lives in :mod:`pyro_mlm.region`.
"""

from __future__ import annotations

import torch


def equivalent_runs(same: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """``[C, W]`` the maximal run of ``True`` in ``same [C, W]`` around ``slot [C]``: the
    region positions holding the token at ``slot``, contiguous with it (inserting or
    deleting any of them gives the same sequence)."""
    span = torch.arange(same.shape[1], device=same.device)[None]
    breaks = ~same
    left = torch.where(breaks & (span < slot[:, None]), span, -1).max(-1).values + 1
    right = torch.where(breaks & (span > slot[:, None]), span, same.shape[1]).min(-1).values
    return (span >= left[:, None]) & (span < right[:, None])


def insert_probability(n: torch.Tensor, lengths: tuple[int, int]) -> torch.Tensor:
    r""":math:`a(n)`: the chance that a length move at length :math:`n` inserts (1 at
    :math:`n_{\min}`, 0 at :math:`n_{\max}`, 1/2 between); it deletes with
    :math:`d(n) = 1 - a(n)`."""
    lo, hi = lengths
    half = torch.full(n.shape, 0.5, dtype=torch.float64, device=n.device)
    return torch.where(n <= lo, 1.0, torch.where(n >= hi, 0.0, half))


def length_log_ratio(
    insert: torch.Tensor,
    n: torch.Tensor,
    delta_energy: torch.Tensor,
    log_prior: torch.Tensor,
    run: torch.Tensor,
    log_q_run: torch.Tensor,
    lengths: tuple[int, int],
) -> torch.Tensor:
    r"""Log Metropolis-Hastings ratio of insertions and deletions, per chain.

    **Insert** (length :math:`n \to n+1`): with probability :math:`a(n)` pick one of the
    :math:`n+1` gaps of the region uniformly, put a mask there and draw the new token
    :math:`v` from that row's conditional, which is the conditional of the proposal
    :math:`X'` at the new position :math:`g`: :math:`q(v \mid X'_{\setminus g})`. Every gap
    of the run :math:`R` of tokens equal to :math:`v` around :math:`g` in :math:`X'` gives
    the same :math:`X'` (inserting ``A`` beside an ``A``), so

    .. math::

        Q(X \to X') = \frac{a(n)}{n+1} \sum_{j \in R} q(x'_j \mid X'_{\setminus j}).

    **Delete** (:math:`n+1 \to n`, the reverse): with probability :math:`d(n+1) = 1 - a(n+1)`
    pick one of the :math:`n+1` positions and remove it; removing any position of the run
    :math:`R` gives :math:`X`, so :math:`Q(X' \to X) = d(n+1)\, |R| / (n+1)`. With
    :math:`\pi \propto e^{-\beta E} \lambda(n)`:

    .. math::

        \log\alpha_\text{ins} = \beta\big(E(X) - E(X')\big) + \log\frac{\lambda(n+1)}{\lambda(n)}
            + \log\frac{d(n+1)\, |R|}{a(n) \sum_{j \in R} q(x'_j \mid X'_{\setminus j})},

    and a deletion :math:`X \to X'` at length :math:`n` (run :math:`R` around the removed
    position in :math:`X`) is its inverse:

    .. math::

        \log\alpha_\text{del} = \beta\big(E(X) - E(X')\big) + \log\frac{\lambda(n-1)}{\lambda(n)}
            + \log\frac{a(n-1) \sum_{j \in R} q(x_j \mid X_{\setminus j})}{d(n)\, |R|}.

    The gap's :math:`1/(n+1)` and the position's :math:`1/n` cancel between forward and
    reverse. The conditionals of an insertion are those of :math:`X'`'s energy evaluation;
    those of a deletion the current state's cached ones, so both Hastings terms of a pair of
    moves read the same numbers.

    Parameters
    ----------
    insert
        ``[M]`` bool, True for an insertion.
    n
        ``[M]`` current lengths.
    delta_energy
        ``[M]`` :math:`\beta (E(X) - E(X'))`.
    log_prior
        ``[n_max + 1]`` :math:`\log \lambda`.
    run
        ``[M]`` :math:`|R|`.
    log_q_run
        ``[M]`` :math:`\log \sum_{j \in R} q(\cdot)` (of :math:`X'` for an insertion, of
        :math:`X` for a deletion).
    """
    new = torch.where(insert, n + 1, n - 1)
    prior = log_prior.to(n.device)
    log_a_new = insert_probability(new, lengths).log()
    log_d_new = (1 - insert_probability(new, lengths)).log()
    log_a = insert_probability(n, lengths).log()
    log_d = (1 - insert_probability(n, lengths)).log()
    log_run = run.double().log()
    choice = torch.where(
        insert,
        log_d_new + log_run - log_a - log_q_run.double(),
        log_a_new + log_q_run.double() - log_d - log_run,
    )
    return (delta_energy.double() + prior[new] - prior[n] + choice).float()
