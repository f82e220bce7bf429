r"""Proposals for single-site moves: pure functions of the masked conditionals.

A proposal returns the proposed token and both proposal log-probabilities the
Hastings correction needs. For the masked-conditional proposal at position :math:`t`

.. math::

    q(v \mid X_{\setminus t}) =
        \frac{\exp(s_t(X_{\setminus t})[v] / \tau)}
             {\sum_{u \in \mathcal{V}_p} \exp(s_t(X_{\setminus t})[u] / \tau)},
    \qquad v \in \mathcal{V}_p,

over the proposable tokens :math:`\mathcal{V}_p` at proposal temperature :math:`\tau`.
Moving :math:`x_t \to x'_t` leaves :math:`X'_{\setminus t} = X_{\setminus t}`, so the
reverse move uses the *same* conditional: both terms come from one row of scores.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Proposal(NamedTuple):
    """A batch of single-site proposals, one per chain.

    Attributes
    ----------
    new_tokens
        ``[C]`` proposed token ids :math:`x'_t`.
    log_q_forward
        ``[C]`` :math:`\\log q(x'_t \\mid X_{\\setminus t})`.
    log_q_reverse
        ``[C]`` :math:`\\log q(x_t \\mid X_{\\setminus t})` (``-inf`` when the current
        token is not proposable).
    """

    new_tokens: torch.Tensor
    log_q_forward: torch.Tensor
    log_q_reverse: torch.Tensor


def proposal_log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    r""":math:`\log q(\cdot \mid X_{\setminus t})`: log-softmax of ``logits / temperature``."""
    return torch.log_softmax(logits / temperature, dim=-1)


def masked_conditional_proposal(
    logits: torch.Tensor,
    current: torch.Tensor,
    proposable_ids: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Proposal:
    r"""Draw :math:`x'_t \sim q(\cdot \mid X_{\setminus t})`, one per chain.

    Parameters
    ----------
    logits
        ``[C, K]`` masked-conditional scores over the proposable tokens at each chain's
        chosen position.
    current
        ``[C]`` current token ids :math:`x_t` at those positions.
    proposable_ids
        ``[K]`` sorted token ids the columns of ``logits`` stand for.
    temperature
        Proposal temperature :math:`\tau` (1.0: the MLM's own conditional).
    generator
        Source of randomness (torch's global generator when None).

    Examples
    --------
    >>> p = masked_conditional_proposal(
    ...     torch.tensor([[0.0, 50.0]]), torch.tensor([5]), torch.tensor([5, 6]))
    >>> p.new_tokens
    tensor([6])
    """
    log_q = proposal_log_probs(logits, temperature)
    choice = draw(log_q, generator)
    new_tokens = proposable_ids[choice]
    log_q_forward = log_q.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
    return Proposal(new_tokens, log_q_forward, token_log_prob(log_q, current, proposable_ids))


def metropolised_proposal(
    logits: torch.Tensor,
    current: torch.Tensor,
    proposable_ids: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Proposal:
    r"""Liu's (1996) Metropolised conditional: never propose the current token.

    .. math::

        \tilde q(v \mid X_{\setminus t}) = \frac{q(v \mid X_{\setminus t})}
            {1 - q(x_t \mid X_{\setminus t})}, \qquad v \ne x_t,

    and the reverse move :math:`x'_t \to x_t` has
    :math:`\tilde q(x_t \mid X'_{\setminus t}) = q(x_t)/(1 - q(x'_t))`, from the same row
    (:math:`X'_{\setminus t} = X_{\setminus t}`). Where every token but the current one
    has zero mass there is nothing to propose: the current token is returned with
    ``log_q_forward = log_q_reverse = 0`` (a self-proposal, which the step accepts free).

    >>> p = metropolised_proposal(torch.zeros(1, 2), torch.tensor([5]), torch.tensor([5, 6]))
    >>> p.new_tokens, p.log_q_forward, p.log_q_reverse
    (tensor([6]), tensor([0.]), tensor([0.]))
    """
    log_q = proposal_log_probs(logits, temperature)
    column = torch.searchsorted(proposable_ids, current).clamp(max=proposable_ids.numel() - 1)
    is_current = torch.zeros_like(log_q, dtype=torch.bool)
    is_current.scatter_(-1, column.unsqueeze(-1), (proposable_ids[column] == current).unsqueeze(-1))
    others = log_q.masked_fill(is_current, float("-inf"))
    log_rest = torch.logsumexp(others, -1)  # log(1 - q(x_t)), computed without cancellation
    stuck = log_rest == float("-inf")
    tilde = others - log_rest.unsqueeze(-1)
    choice = draw(torch.where(stuck.unsqueeze(-1), log_q, tilde), generator)
    new_tokens = torch.where(stuck, current, proposable_ids[choice])
    log_forward = tilde.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
    # reverse: q(x_t) / (1 - q(x'_t)), both from this row
    is_new = torch.zeros_like(is_current).scatter_(-1, choice.unsqueeze(-1), True)
    log_rest_new = torch.logsumexp(log_q.masked_fill(is_new, float("-inf")), -1)
    log_reverse = token_log_prob(log_q, current, proposable_ids) - log_rest_new
    zero = torch.zeros_like(log_forward)
    return Proposal(
        new_tokens, torch.where(stuck, zero, log_forward), torch.where(stuck, zero, log_reverse)
    )


def draw(log_q: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One column index per row of ``log_q [N, K]``, drawn with probabilities ``exp(log_q)``."""
    return torch.multinomial(log_q.exp(), 1, generator=generator).squeeze(-1)


def token_log_prob(
    log_q: torch.Tensor, tokens: torch.Tensor, proposable_ids: torch.Tensor
) -> torch.Tensor:
    """``log_q[c, column of tokens[c]]``, or ``-inf`` where a token is not proposable."""
    column = torch.searchsorted(proposable_ids, tokens.contiguous())
    column = column.clamp(max=proposable_ids.numel() - 1)
    found = proposable_ids[column] == tokens
    picked = log_q.gather(-1, column.unsqueeze(-1)).squeeze(-1)
    return torch.where(found, picked, torch.full_like(picked, float("-inf")))
