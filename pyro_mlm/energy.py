r"""The energies an MLM defines over sequences (Goyal, Dyer & Berg-Kirkpatrick 2022).

For a sequence :math:`X` with free positions :math:`F` and the MLM's raw scores
:math:`s_t(X_{\setminus t})` at position :math:`t` with :math:`x_t` masked:

.. math::

    E_\text{raw}(X)  &= -\sum_{t \in F} s_t(X_{\setminus t})[x_t] \\
    E_\text{norm}(X) &= -\sum_{t \in F} \log \operatorname{softmax}(s_t(X_{\setminus t}))[x_t]

(:math:`E_\text{norm}` is the negative pseudo-log-likelihood, softmax over the whole
vocabulary), and the target is :math:`p(X) \propto \exp(-E(X)/T)`.

One evaluation builds one masked copy per free position of every sequence, sends them
through the model in chunks of at most ``row_budget`` rows, and returns the energies
*and* the masked conditionals at every free position, which samplers reuse as
proposals with no further forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal, NamedTuple

import torch

from pyro_mlm.validation import check_temperature, check_tokens, resolve_free

if TYPE_CHECKING:
    from pyro_mlm.models.mlm import MaskedLM
    from pyro_mlm.models.vocabulary import Vocabulary

LogitsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Parametrization = Literal["norm", "raw"]
TOKEN_BUDGET = 2**16  # tokens per forward on accelerators: large batches keep them busy
CPU_TOKEN_BUDGET = 2**12  # on CPUs ~4k tokens of activations stay in cache (bench/energy.py)


def default_row_budget(length: int, device: torch.device) -> int:
    """Masked rows per forward: ``4096 // L`` on CPU, ``65536 // L`` elsewhere (at least 1)."""
    tokens = CPU_TOKEN_BUDGET if device.type == "cpu" else TOKEN_BUDGET
    return max(1, tokens // length)


class Evaluation(NamedTuple):
    """Energies of a batch and the masked conditionals behind them.

    Attributes
    ----------
    energy
        ``[B]`` :math:`E(X_b)` summed over free positions (not divided by temperature).
    terms
        ``[B, L]`` per-position terms of the sum (0 at positions that are not free).
    logits
        ``[B, L, K]`` masked-conditional scores :math:`s_t(X_{\\setminus t})` over the
        ``K`` proposable ids at free positions (0 elsewhere).
    rows
        ``[B]`` masked rows the evaluation ran per sequence (its free positions): the cost
        a sampler records.
    """

    energy: torch.Tensor
    terms: torch.Tensor
    logits: torch.Tensor
    rows: torch.Tensor


def energy_terms(
    logits: torch.Tensor, targets: torch.Tensor, parametrization: Parametrization
) -> torch.Tensor:
    r"""Per-row energy terms from full-vocabulary scores.

    ``norm``: :math:`-(s[x] - \log\sum_v e^{s[v]})`; ``raw``: :math:`-s[x]`.

    >>> energy_terms(torch.tensor([[0.0, 0.0]]), torch.tensor([1]), "norm")
    tensor([0.6931])
    """
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if parametrization == "raw":
        return -picked
    return torch.logsumexp(logits, dim=-1) - picked


def evaluate(
    logits_fn: LogitsFn,
    tokens: torch.Tensor,
    free: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    mask_id: int,
    proposable_ids: torch.Tensor,
    parametrization: Parametrization = "norm",
    row_budget: int | None = None,
    keep_conditionals: bool = True,
) -> Evaluation:
    """Energies and masked conditionals of ``tokens [B, L]`` in batched masked passes.

    Row ``r`` of the work list is sequence ``b_r`` with position ``t_r`` masked, for
    every free ``(b, t)``; rows go to ``logits_fn(input_ids, attention_mask, positions)``
    in chunks of ``row_budget`` (default :func:`default_row_budget`), so the working
    memory is set by the budget, not by ``B x L``. The returned conditionals are
    ``B x L x K`` floats; with ``keep_conditionals=False`` they are not kept (``logits``
    is then ``[B, 0, K]``) and the peak memory no longer grows with ``B x L``.
    """
    batch, length = tokens.shape
    num_k = proposable_ids.numel()
    terms = torch.zeros(batch, length, dtype=torch.float32, device=tokens.device)
    kept = length if keep_conditionals else 0
    cond = torch.zeros(batch, kept, num_k, dtype=torch.float32, device=tokens.device)
    for seq, pos, targets, logits in masked_rows(
        logits_fn, tokens, free, attention_mask, mask_id=mask_id, row_budget=row_budget
    ):
        terms[seq, pos] = energy_terms(logits, targets, parametrization)
        if keep_conditionals:
            cond[seq, pos] = logits[:, proposable_ids.to(logits.device)]
    return Evaluation(terms.sum(-1), terms, cond, free.sum(-1))


def checked_energy(
    evaluate_fn: Callable[..., Evaluation], mlm: Vocabulary, tokens: object, free: object
) -> torch.Tensor:
    """``evaluate_fn``'s energies of user ``tokens [..., L]`` over ``free``, checked first.

    The one entry point from user input for :class:`MLMEnergy` and
    :class:`pyro_mlm.target.Target`; returns ``[...]``.
    """
    tokens = check_tokens(tokens, mlm)
    mask = resolve_free(free, tokens, mlm)
    flat = tokens.reshape(-1, tokens.shape[-1])
    result = evaluate_fn(flat, mask.reshape(flat.shape), keep_conditionals=False)
    return result.energy.reshape(tokens.shape[:-1])


def masked_rows(
    logits_fn: LogitsFn,
    tokens: torch.Tensor,
    free: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    mask_id: int,
    row_budget: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The masked passes behind an energy, chunk by chunk.

    Yields ``(seq, pos, targets, logits)``: row ``r`` of the chunk is sequence
    ``seq[r]`` with position ``pos[r]`` masked, ``targets[r]`` the token that was there
    and ``logits [R, V]`` the model's scores at the masked position.
    """
    budget = row_budget or default_row_budget(tokens.shape[1], tokens.device)
    seq_index, positions = free.nonzero(as_tuple=True)
    for start in range(0, seq_index.numel(), budget):
        seq = seq_index[start : start + budget]
        pos = positions[start : start + budget]
        rows = tokens[seq].clone()
        index = torch.arange(seq.numel(), device=rows.device)
        targets = rows[index, pos]
        rows[index, pos] = mask_id
        yield seq, pos, targets, logits_fn(rows, attention_mask[seq], pos).to(tokens.device)


def masked_conditionals(
    logits_fn: LogitsFn,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    mask_id: int,
    proposable_ids: torch.Tensor,
) -> torch.Tensor:
    r"""Scores :math:`s_t(X_{\setminus t})` over proposable ids, one masked row per sequence.

    ``tokens [C, L]`` with ``positions [C]``; returns ``[C, K]``.
    """
    rows = tokens.clone()
    rows[torch.arange(rows.shape[0], device=rows.device), positions] = mask_id
    logits = logits_fn(rows, attention_mask, positions).to(tokens.device)
    return logits[:, proposable_ids.to(logits.device)]


class MLMEnergy:
    r"""An MLM read as an energy-based model over token sequences.

    Parameters
    ----------
    mlm
        The wrapped masked language model.
    parametrization
        ``"norm"`` (negative pseudo-log-likelihood) or ``"raw"`` (negative raw scores).
    temperature
        :math:`T` in the target :math:`p(X) \propto \exp(-E(X)/T)`.
    row_budget
        Most masked rows per forward pass (default ``4096 // L`` on CPU, ``65536 // L`` on GPU).

    Examples
    --------
    >>> energy = MLMEnergy(mlm, parametrization="norm")       # doctest: +SKIP
    >>> energy(mlm.encode("EVQLV"))                           # doctest: +SKIP
    tensor(7.12)
    """

    def __init__(
        self,
        mlm: MaskedLM,
        parametrization: Parametrization = "norm",
        temperature: float = 1.0,
        row_budget: int | None = None,
    ) -> None:
        if parametrization not in ("norm", "raw"):
            raise ValueError(f"parametrization must be 'norm' or 'raw', got {parametrization!r}")
        if row_budget is not None and (not isinstance(row_budget, int) or row_budget < 1):
            raise ValueError(f"row_budget must be a positive int, got {row_budget!r}")
        self.mlm = mlm
        self.parametrization: Parametrization = parametrization
        self.temperature = check_temperature(temperature)
        self.row_budget = row_budget

    def __call__(self, tokens: torch.Tensor, free: object = None) -> torch.Tensor:
        """:math:`E(X)` for ``tokens [..., L]``, summed over ``free``; returns ``[...]``."""
        return checked_energy(self.evaluate, self.mlm, tokens, free)

    def evaluate(
        self, tokens: torch.Tensor, free: torch.Tensor, keep_conditionals: bool = True
    ) -> Evaluation:
        """Unchecked :func:`evaluate` on already validated ``[B, L]`` tokens and mask."""
        return evaluate(
            self.mlm.masked_logits,
            tokens,
            free,
            self.mlm.attention_mask(tokens),
            mask_id=self.mlm.mask_token_id,
            proposable_ids=self.mlm.proposable_ids,
            parametrization=self.parametrization,
            row_budget=self.row_budget,
            keep_conditionals=keep_conditionals,
        )

    def both(self, tokens: torch.Tensor, free: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"norm": E_norm [B], "raw": E_raw [B]}`` of ``[B, L]`` from one set of masked passes.

        Unchecked, like :meth:`evaluate`; the temperature plays no part.
        """
        batch, length = tokens.shape
        terms = {kind: torch.zeros(batch, length, device=tokens.device) for kind in ("norm", "raw")}
        for seq, pos, targets, logits in masked_rows(
            self.mlm.masked_logits,
            tokens,
            free,
            self.mlm.attention_mask(tokens),
            mask_id=self.mlm.mask_token_id,
            row_budget=self.row_budget,
        ):
            for kind, table in terms.items():
                table[seq, pos] = energy_terms(logits, targets, kind)  # type: ignore[arg-type]
        return {kind: table.sum(-1) for kind, table in terms.items()}

    def conditionals(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Unchecked :func:`masked_conditionals` of ``tokens [C, L]`` at ``positions [C]``."""
        return masked_conditionals(
            self.mlm.masked_logits,
            tokens,
            positions,
            self.mlm.attention_mask(tokens),
            mask_id=self.mlm.mask_token_id,
            proposable_ids=self.mlm.proposable_ids,
        )

    def conditionals_at(self, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        r"""Scores over the proposable ids at ``positions [N, P]`` of ``rows [N, L]`` whose
        masks are already in place: :math:`s_t(X_{\setminus M})`, ``[N, P, K]``.

        The multi-mask conditional (:meth:`~pyro_mlm.models.mlm.MaskedLM.logits_at`): one
        masked row per row of ``rows``, however many of its positions are masked.
        """
        logits = self.mlm.logits_at(rows, self.mlm.attention_mask(rows), positions)
        return logits.to(rows.device)[..., self.mlm.proposable_ids.to(rows.device)]

    def __repr__(self) -> str:
        return (
            f"MLMEnergy({self.mlm!r}, parametrization={self.parametrization!r}, "
            f"temperature={self.temperature})"
        )
