r"""The exact single-mutant landscape of a sequence under a target.

For a wild type :math:`X`, a scanned position :math:`t` (a free position) and a proposable
token :math:`a \ne x_t`, the mutant :math:`X^{t \to a}` differs from :math:`X` at
:math:`t` only, and

.. math::

    \Delta E(t, a) = E(X^{t \to a}) - E(X)
        = \underbrace{-\big(s_t(X_{\setminus t})[a] - s_t(X_{\setminus t})[x_t]\big)}_{
            -\,\text{masked marginal } M(t, a)}
        + \sum_{u \in S,\, u \ne t} \big(e_u(X^{t \to a}) - e_u(X)\big)
        + \sum_k \big(E_k(X^{t \to a}) - E_k(X)\big)

with :math:`S` the positions the MLM energy sums over (the free ones, or every content
position with ``over="all"``), :math:`e_u` the per-position energy term (``norm``:
:math:`\log\sum_v e^{s_u[v]} - s_u[x_u]`; ``raw``: :math:`-s_u[x_u]`) and :math:`E_k` the
experts. The first term holds because the row that masks :math:`t` is the *same* row in
:math:`X` and in every mutant at :math:`t` (its token is masked), so the normaliser of
``norm`` cancels and only the two scores differ: it is the masked-marginal heuristic
(ESM-1v's :math:`\log p(a \mid X_{\setminus t}) - \log p(x_t \mid X_{\setminus t})`),
read off the wild type's own evaluation. The second term, how the mutation changes every
*other* position's conditional, is what the heuristic leaves out; it costs
:math:`|S| - 1` masked rows per mutant, batched one position's mutants at a time.

A hard expert that returns :math:`+\infty` for a mutant marks it *forbidden*: it stays in
the table, with its MLM :math:`\Delta E` and :math:`\Delta E = +\infty`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from pyro_mlm.target import Target, check_finite, expert_name, mlm_source

if TYPE_CHECKING:
    from pyro_mlm.energy import MLMEnergy

INF = float("inf")


class WildType(NamedTuple):
    r"""What the wild type's one evaluation gives every mutant.

    Attributes
    ----------
    tokens
        ``[L]`` the wild type's ids.
    free
        ``[L]`` the scanned positions.
    scored
        ``[L]`` the positions the MLM energy sums over (:meth:`Target.scored`).
    terms
        ``[L]`` its per-position MLM terms :math:`e_u(X)` (0 off ``scored``).
    scores
        ``[L, K]`` the masked scores :math:`s_t(X_{\setminus t})` over the proposable ids
        (rows of ``scored``; 0 elsewhere).
    experts
        ``{column: E_k(X)}``, each expert's energy of the wild type.
    r"""

    tokens: torch.Tensor
    free: torch.Tensor
    scored: torch.Tensor
    terms: torch.Tensor
    scores: torch.Tensor
    experts: dict[str, float]

    @property
    def energy(self) -> float:
        r""":math:`E_\text{MLM}(X)`: the sum of the terms."""
        return float(self.terms.sum())

    @property
    def rows_per_mutant(self) -> int:
        """Masked rows one mutant costs: :math:`|S| - 1`."""
        return int(self.scored.sum()) - 1


def expert_columns(target: Target) -> list[str]:
    """One column name per expert, ``expert_<name>`` (``_2``, ... where names repeat)."""
    names: list[str] = []
    for k, expert in enumerate(target.experts):
        base = getattr(expert, "name", None) or getattr(expert, "__name__", None)
        base = base if isinstance(base, str) and base != "<lambda>" else f"{k + 1}"
        name, n = f"expert_{base}".replace("-", "_"), 2
        while name in names:
            name, n = f"expert_{base}_{n}".replace("-", "_"), n + 1
        names.append(name)
    return names


def wild_type(target: Target, tokens: torch.Tensor, free: torch.Tensor) -> WildType:
    r"""The wild type's evaluation: per-position terms, masked scores and expert energies.

    ``tokens [L]`` and ``free [L]`` are checked already (as ``sample`` checks a start); a
    wild type a hard expert forbids is refused, since every :math:`\Delta E` would be
    undefined.
    """
    batch, mask = tokens[None], free[None]
    scored = target.scored(batch, mask)
    result = target.energy.evaluate(batch, scored, keep_conditionals=True)
    check_finite(result.energy, batch, target.mlm, mlm_source(target.energy))
    values = {}
    for k, (column, value) in enumerate(
        zip(expert_columns(target), target.expert_energies(batch, result.energy), strict=True)
    ):
        if bool(torch.isinf(value).any()):
            name = expert_name(target.experts[k], k, len(target.experts))
            raise ValueError(
                f"{name} forbids the wild type itself ({target.mlm.decode(tokens)!r}); every "
                "change from it would be undefined: fix the sequence or drop that expert"
            )
        values[column] = float(value[0])
    return WildType(tokens, free, scored[0], result.terms[0], result.logits[0], values)


def scan_positions(wild: WildType) -> list[int]:
    """The token indices scanned, in order."""
    return [int(t) for t in wild.free.nonzero().flatten().tolist()]


def mutants_at(target: Target, wild: WildType, t: int) -> dict[str, Any]:
    r"""Every single mutant at token index ``t``: one batch of :math:`K - 1` mutants, each
    :math:`|S| - 1` masked rows (the row at ``t`` is the wild type's own).

    Returns ``{"ids": [A] mutant token ids, "delta_mlm": [A], "masked_marginal": [A],
    "experts": {column: [A] changes}, "forbidden": [A] bool, "delta_energy": [A]}`` as lists.
    r"""
    ids = target.mlm.proposable_ids.to(wild.tokens.device)
    wt_id = int(wild.tokens[t])
    keep = ids != wt_id
    mutant_ids = ids[keep]
    columns = torch.arange(ids.numel(), device=ids.device)[keep]
    wt_column = int((ids == wt_id).nonzero()[0, 0])
    batch = wild.tokens.repeat(mutant_ids.numel(), 1)
    batch[:, t] = mutant_ids
    others = wild.scored.repeat(mutant_ids.numel(), 1)
    others[:, t] = False
    marginal = wild.scores[t, columns] - wild.scores[t, wt_column]  # M(t, a)
    rest_wt = wild.terms.sum() - wild.terms[t]
    if bool(others.any()):
        result = target.energy.evaluate(batch, others, keep_conditionals=False)
        check_finite(result.energy, batch, target.mlm, mlm_source(target.energy))
        rest = result.energy
    else:  # a one-position energy: only the masked-marginal term moves
        rest = torch.full_like(marginal, float(rest_wt))
    delta_mlm = (rest - rest_wt) - marginal
    total = delta_mlm.clone()
    changes: dict[str, list[float]] = {}
    forbidden = torch.zeros_like(total, dtype=torch.bool)
    energies = target.expert_energies(batch, total)
    for column, value in zip(expert_columns(target), energies, strict=True):
        change = value - wild.experts[column]
        forbidden |= torch.isinf(value)
        total = total + change
        changes[column] = change.tolist()
    return {
        "ids": mutant_ids.tolist(),
        "delta_mlm": delta_mlm.tolist(),
        "masked_marginal": marginal.tolist(),
        "experts": changes,
        "forbidden": forbidden.tolist(),
        "delta_energy": torch.where(forbidden, INF, total).tolist(),
    }


def single_mutants(
    energy: MLMEnergy | Target,
    tokens: torch.Tensor | str,
    free: torch.Tensor | str | None = None,
    *,
    numbering: str = "imgt",
    progress: Callable[[int], None] | None = None,
) -> Any:
    r"""The exact :math:`\Delta E` of every single mutant in ``free``, as a tidy table.

    Parameters
    ----------
    energy
        An :class:`~pyro_mlm.energy.MLMEnergy`, or a :class:`~pyro_mlm.target.Target` (its
        experts' changes become ``expert_<name>`` columns; ``over="all"`` sums the MLM
        energy over every content position).
    tokens
        The wild type, ids ``[L]`` or text.
    free
        The scanned positions: a mask ``[L]``, or ``--free`` text (``"cdrh3"``, ``"98-110"``;
        numbered regions by ``numbering``); default every content position.
    progress
        Called with the number of positions done after each one.

    Returns
    -------
    pandas.DataFrame
        One row per mutant: ``position`` (1-based residue number), ``label`` (the
        scheme's number where ``free`` names numbered regions), ``region``, ``wild_type``,
        ``mutant``, ``mutation`` (``S105A``), ``delta_energy`` (MLM + experts; ``inf`` when
        forbidden), ``delta_mlm``, ``masked_marginal`` (:math:`M(t, a)`, higher = the
        heuristic likes it), each ``expert_<name>`` change, ``forbidden`` and ``rank``
        (1 = lowest :math:`\Delta E`). ``.attrs`` holds the wild type's energy and the rows.

    Examples
    --------
    >>> table = single_mutants(MLMEnergy(mlm), "EVQLV...VSS", "cdrh3")   # doctest: +SKIP
    >>> table.nsmallest(5, "delta_energy")[["mutation", "delta_energy"]]  # doctest: +SKIP
    """
    import pandas as pd

    from pyro_mlm.design.sites import parse_free
    from pyro_mlm.landscape.labels import site_labels
    from pyro_mlm.validation import check_tokens

    target = energy if isinstance(energy, Target) else Target(energy)
    vocab = target.mlm
    ids = vocab.encode(tokens) if isinstance(tokens, str) else check_tokens(tokens, vocab)
    if ids.dim() != 1:
        raise ValueError(f"single_mutants scans one sequence [L], got shape {tuple(ids.shape)}")
    vocab.check_length(ids.shape[-1])
    spec = free if isinstance(free, str) else "all"
    mask = (
        parse_free(spec, ids, vocab, numbering) if free is None or isinstance(free, str) else free
    )
    mask = mask.to(torch.bool)
    check_scannable(vocab, ids, mask)
    device = getattr(vocab, "device", ids.device)
    ids, mask = ids.to(device), mask.to(device)
    labels = site_labels(spec, ids.cpu(), mask.cpu(), vocab, numbering)
    wild = wild_type(target, ids, mask)
    rows: list[dict[str, Any]] = []
    with torch.no_grad():
        for k, t in enumerate(scan_positions(wild)):
            site = {key: labels[key][k] for key in ("positions", "labels", "regions")}
            rows.extend(position_rows(vocab, wild, t, site, mutants_at(target, wild, t)))
            if progress is not None:
                progress(k + 1)
    table = pd.DataFrame(rank_rows(rows))
    table.attrs.update(wild_type_energy=wild.energy, rows=len(rows) * wild.rows_per_mutant)
    return table


def check_scannable(vocab: Any, tokens: torch.Tensor, free: torch.Tensor) -> None:
    """A ``ValueError`` for a scanned position holding a mask or a token never proposed."""
    outside = free & ~torch.isin(tokens, vocab.proposable_ids.to(tokens.device))
    if bool(outside.any()):
        pos = int(outside.nonzero()[0, 0])
        number = int(vocab.residue_numbers(tokens.cpu())[pos])
        raise ValueError(
            f"position {number} holds {vocab.tokens_text([int(tokens[pos])])!r}, which the "
            "model never proposes: a scan needs a complete wild type (fill masks first) with "
            "proposable tokens at every scanned position"
        )


def position_rows(
    vocab: Any, wild: WildType, t: int, site: dict[str, Any], found: dict[str, Any]
) -> list[dict[str, Any]]:
    """The table rows of one position's mutants (``site``: its position, label, region)."""
    wt = vocab.tokens_text([int(wild.tokens[t])])
    rows = []
    for j, mutant_id in enumerate(found["ids"]):
        mutant = vocab.tokens_text([mutant_id])
        row = {
            "position": int(site["positions"]),
            "label": str(site["labels"]),
            "region": str(site["regions"]),
            "wild_type": wt,
            "mutant": mutant,
            "mutation": f"{wt}{site['labels']}{mutant}",
            "delta_energy": found["delta_energy"][j],
            "delta_mlm": found["delta_mlm"][j],
            "masked_marginal": found["masked_marginal"][j],
        }
        for column, values in found["experts"].items():
            row[column] = values[j]
        row["forbidden"] = bool(found["forbidden"][j])
        rows.append(row)
    return rows


def rank_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with ``rank``: 1 for the lowest ``delta_energy`` (ties in table order;
    forbidden mutants last), in table order."""
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["delta_energy"], i))
    ranks = {i: r for r, i in enumerate(order, start=1)}
    return [{**row, "rank": ranks[i]} for i, row in enumerate(rows)]
