"""Exact enumeration of tiny MLM energy models: targets and transition matrices.

Everything here is written independently of the package's batched code: one forward
pass per masked position (the slow, obvious reference), dense matrices over all
``K ** n`` states of the free positions.
"""

from __future__ import annotations

import itertools
import math

import torch

from pyro_mlm import MaskedLM


def reference_conditional(mlm: MaskedLM, tokens: torch.Tensor, position: int) -> torch.Tensor:
    """Full-vocabulary logits at ``position`` with it masked: one unbatched forward."""
    row = tokens.clone()
    row[position] = mlm.mask_token_id
    attention = mlm.attention_mask(row)
    with torch.no_grad():
        out = mlm.model(input_ids=row[None], attention_mask=attention[None])
    return out.logits[0, position].double()


def reference_energy(
    mlm: MaskedLM, tokens: torch.Tensor, free: torch.Tensor, parametrization: str
) -> float:
    """E(X) summed over free positions, one forward per position, float64."""
    total = 0.0
    for t in free.nonzero().flatten().tolist():
        logits = reference_conditional(mlm, tokens, t)
        x = int(tokens[t])
        if parametrization == "raw":
            total -= float(logits[x])
        else:
            total -= float(torch.log_softmax(logits, -1)[x])
    return total


class Enumeration:
    """All sequences that agree with ``context`` off the free positions."""

    def __init__(self, mlm: MaskedLM, context: torch.Tensor, free: torch.Tensor) -> None:
        self.mlm = mlm
        self.context = context
        self.free_positions = free.nonzero().flatten().tolist()
        self.ids = mlm.proposable_ids.tolist()
        self.states = []
        for combo in itertools.product(self.ids, repeat=len(self.free_positions)):
            x = context.clone()
            x[self.free_positions] = torch.tensor(combo)
            self.states.append(x)
        self.index = {tuple(s.tolist()): i for i, s in enumerate(self.states)}
        # masked-conditional scores over proposable ids: scores[state][j] -> [K]
        self.scores = [
            [reference_conditional(mlm, s, t)[self.ids] for t in self.free_positions]
            for s in self.states
        ]
        self.free = free

    def __len__(self) -> int:
        return len(self.states)

    def state_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """Index of each row of ``tokens [N, L]`` in the enumeration."""
        return torch.tensor([self.index[tuple(r)] for r in tokens.tolist()])

    def target(self, parametrization: str, temperature: float = 1.0) -> torch.Tensor:
        """Exact p(X) ∝ exp(-E(X)/T) over the enumerated states."""
        energy = torch.tensor(
            [reference_energy(self.mlm, s, self.free, parametrization) for s in self.states]
        )
        return torch.softmax(-energy / temperature, 0)

    def _neighbour(self, i: int, j: int, k: int) -> int:
        x = self.states[i].clone()
        x[self.free_positions[j]] = self.ids[k]
        return self.index[tuple(x.tolist())]

    def site_kernels(
        self,
        target: torch.Tensor | None,
        proposal_temperature: float = 1.0,
        allowed: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Per-position transition matrices: MH against ``target``, or Gibbs if None.

        The proposal is softmax(scores / proposal_temperature) over proposable ids, over
        ``allowed[j]`` only where given (``[free, K]`` bool). States with zero target
        probability stay put (they are never visited from the support).
        """
        n = len(self.states)
        kernels = []
        for j in range(len(self.free_positions)):
            P = torch.zeros(n, n, dtype=torch.float64)
            for i in range(n):
                if target is not None and float(target[i]) == 0.0:
                    P[i, i] = 1.0
                    continue
                scores = self.scores[i][j]
                if allowed is not None:
                    scores = scores.masked_fill(~allowed[j], float("-inf"))
                log_q = torch.log_softmax(scores / proposal_temperature, -1)
                for k in range(len(self.ids)):
                    i2 = self._neighbour(i, j, k)
                    q_fwd = float(log_q[k].exp())
                    if q_fwd == 0.0:
                        continue
                    if target is None or i2 == i:
                        P[i, i2] += q_fwd
                        continue
                    cur = self.ids.index(int(self.states[i][self.free_positions[j]]))
                    alpha = float(target[i2] / target[i]) * float((log_q[cur] - log_q[k]).exp())
                    P[i, i2] += q_fwd * min(1.0, alpha)
                P[i, i] += 1.0 - P[i].sum()
            kernels.append(P)
        return kernels

    def sweep_kernel(
        self,
        target: torch.Tensor | None,
        scan: str,
        proposals: int,
        proposal_temperature: float = 1.0,
    ) -> torch.Tensor:
        """Transition matrix of ``proposals`` proposals (random or systematic scan)."""
        sites = self.site_kernels(target, proposal_temperature)
        n = len(self.states)
        if scan == "random":
            single = sum(sites) / len(sites)
            return torch.linalg.matrix_power(single, proposals)
        P = torch.eye(n, dtype=torch.float64)
        for step in range(proposals):
            P = P @ sites[step % len(sites)]
        return P


def stationary(P: torch.Tensor) -> torch.Tensor:
    """The stationary distribution of a row-stochastic matrix (left eigenvector at 1)."""
    n = P.shape[0]
    A = torch.cat([(P.T - torch.eye(n, dtype=P.dtype)), torch.ones(1, n, dtype=P.dtype)])
    b = torch.zeros(n + 1, dtype=P.dtype)
    b[-1] = 1.0
    return torch.linalg.lstsq(A, b.unsqueeze(-1)).solution.squeeze(-1)


def second_eigenvalue(P: torch.Tensor) -> float:
    """Largest |eigenvalue| below the top one: the per-step mixing rate."""
    moduli = torch.linalg.eigvals(P).abs().sort(descending=True).values
    return float(moduli[1])


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p.double() - q.double()).abs().sum())


def chi_square_pvalue(
    probs: torch.Tensor, counts: torch.Tensor, min_expected: float = 5.0
) -> float:
    """Pearson chi-square goodness of fit of ``counts`` to ``probs``.

    States whose expected count is below ``min_expected`` are pooled into one bin (the
    usual condition for the chi-square approximation); degrees of freedom = bins - 1.
    """
    from scipy.stats import chi2

    probs = probs.double() / probs.sum()
    counts = counts.double()
    total = float(counts.sum())
    expected = probs * total
    small = expected < min_expected
    obs_bins = list(counts[~small].tolist())
    exp_bins = list(expected[~small].tolist())
    if bool(small.any()):
        obs_bins.append(float(counts[small].sum()))
        exp_bins.append(float(expected[small].sum()))
    stat = sum((o - e) ** 2 / e for o, e in zip(obs_bins, exp_bins, strict=True) if e > 0)
    return float(chi2.sf(stat, len(obs_bins) - 1))


# ---------------------------------------------------------------- block and Metropolised MH
def mh_mixture(
    en: Enumeration,
    target: torch.Tensor,
    blocks: list[tuple[float, tuple[int, ...]]],
    proposal_temperature: float = 1.0,
    reverse: str = "proposed",
) -> torch.Tensor:
    """One block-MH proposal: ``sum_B P(B) K_B`` over ``blocks = [(P(B), B), ...]``.

    ``B`` holds indices into ``en.free_positions``. ``K_B`` draws each new token at
    ``B`` from the current state's conditional and accepts with
    ``min(1, pi(X') prod q(x_t | X'\\t) / (pi(X) prod q(x'_t | X\\t)))``. With
    ``reverse="current"`` the reverse terms are (wrongly) read from the current state's
    conditionals instead of the proposed one's: the negative case.
    """
    n, ids = len(en), en.ids
    P = torch.zeros(n, n, dtype=torch.float64)
    for weight, block in blocks:
        K = torch.zeros(n, n, dtype=torch.float64)
        for i in range(n):
            log_q = [torch.log_softmax(en.scores[i][t] / proposal_temperature, -1) for t in block]
            current = [ids.index(int(en.states[i][en.free_positions[t]])) for t in block]
            for combo in itertools.product(range(len(ids)), repeat=len(block)):
                x = en.states[i].clone()
                for t, k in zip(block, combo, strict=True):
                    x[en.free_positions[t]] = ids[k]
                j = en.index[tuple(x.tolist())]
                fwd = sum(float(log_q[m][k]) for m, k in enumerate(combo))
                if j == i:
                    K[i, i] += math.exp(fwd)
                    continue
                if reverse == "proposed":
                    back = [
                        torch.log_softmax(en.scores[j][t] / proposal_temperature, -1) for t in block
                    ]
                else:
                    back = log_q
                rev = sum(float(back[m][c]) for m, c in enumerate(current))
                alpha = float(target[j] / target[i]) * math.exp(rev - fwd)
                K[i, j] += math.exp(fwd) * min(1.0, alpha)
            K[i, i] += 1.0 - K[i].sum()
        P += weight * K
    return P


def random_blocks(free: int, sizes: tuple[int, ...]) -> list[tuple[float, tuple[int, ...]]]:
    """``k`` drawn uniformly from ``sizes``, then a uniform ``k``-subset of the free positions."""
    out = []
    for k in sizes:
        subsets = list(itertools.combinations(range(free), min(k, free)))
        out += [(1.0 / len(sizes) / len(subsets), b) for b in subsets]
    return out


def window_blocks(free: int, k: int) -> list[tuple[float, tuple[int, ...]]]:
    """Start index uniform over ``free``, moved back to ``free - k`` to fit: consecutive sites."""
    k = min(k, free)
    weights = [0.0] * (free - k + 1)
    for index in range(free):
        weights[min(index, free - k)] += 1.0 / free
    return [(w, tuple(range(s, s + k))) for s, w in enumerate(weights)]


def metropolised_kernel(
    en: Enumeration, target: torch.Tensor, proposal_temperature: float = 1.0
) -> torch.Tensor:
    """One Metropolised single-site proposal (random scan): q without the current token."""
    n, ids = len(en), en.ids
    P = torch.zeros(n, n, dtype=torch.float64)
    sites = len(en.free_positions)
    for t in range(sites):
        for i in range(n):
            q = torch.softmax(en.scores[i][t] / proposal_temperature, -1)
            cur = ids.index(int(en.states[i][en.free_positions[t]]))
            for k in range(len(ids)):
                if k == cur:
                    continue
                j = en._neighbour(i, t, k)
                q_fwd = float(q[k] / (1 - q[cur]))
                q_rev = float(q[cur] / (1 - q[k]))
                alpha = float(target[j] / target[i]) * q_rev / q_fwd
                P[i, j] += q_fwd * min(1.0, alpha) / sites
        # each site's rejected mass stays
    P += torch.diag(1.0 - P.sum(1))
    return P


# ---------------------------------------------------------------- sequential regeneration
def reference_masked(mlm: MaskedLM, row: tuple[int, ...], position: int) -> torch.Tensor:
    """Full-vocabulary logits at ``position`` of ``row`` as given (masks in place)."""
    ids = torch.tensor(row)
    with torch.no_grad():
        out = mlm.model(input_ids=ids[None], attention_mask=mlm.attention_mask(ids)[None])
    return out.logits[0, position].double()


def regeneration_kernel(
    en: Enumeration,
    target: torch.Tensor,
    blocks: list[tuple[float, tuple[int, ...]]],
    tau: float,
    reverse: str = "context",
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """One regeneration proposal: ``sum_(B, sigma) P(B, sigma) K_(B, sigma)``.

    ``blocks = [(P, sigma), ...]`` with ``sigma`` the fill order (indices into
    ``en.free_positions``). ``K`` masks every site of ``sigma``, fills them in order from
    ``softmax(s / tau)`` over the proposable ids (each row one unbatched forward, the
    earlier sites holding the new tokens) and accepts with
    ``min(1, pi(X') Q(X' -> X) / (pi(X) Q(X -> X')))``, the reverse path filling the old
    tokens into the same context. ``reverse="forward-rows"`` scores the old tokens under
    the forward rows instead (their context holds the new tokens): the negative case.
    ``allowed [free, K]`` restricts each site's proposal (an expert's ``allowed``); states
    outside the target's support stay put.
    """
    n, ids, mask = len(en), en.ids, en.mlm.mask_token_id
    cache: dict[tuple[tuple[int, ...], int], torch.Tensor] = {}

    def log_q(row: list[int], position: int) -> torch.Tensor:
        key = (tuple(row), position)
        if key not in cache:
            scores = reference_masked(en.mlm, key[0], position)[ids]
            if allowed is not None:
                scores = scores.masked_fill(~allowed[en.free_positions.index(position)], -math.inf)
            cache[key] = torch.log_softmax(scores / tau, -1)
        return cache[key]

    def path(
        base: list[int], order: tuple[int, ...], fill: tuple[int, ...], score: tuple[int, ...]
    ) -> float:
        """log prob of drawing ``score`` along ``order`` with ``fill`` written into the rows."""
        row = list(base)
        for t in order:
            row[en.free_positions[t]] = mask
        total = 0.0
        for t, f, s in zip(order, fill, score, strict=True):
            position = en.free_positions[t]
            total += float(log_q(row, position)[ids.index(s)])
            row[position] = f
        return total

    P = torch.zeros(n, n, dtype=torch.float64)
    for weight, order in blocks:
        K = torch.zeros(n, n, dtype=torch.float64)
        for i in range(n):
            if float(target[i]) == 0.0:
                K[i, i] = 1.0
                continue
            base = en.states[i].tolist()
            old = tuple(base[en.free_positions[t]] for t in order)
            for combo in itertools.product(ids, repeat=len(order)):
                fwd = path(base, order, combo, combo)
                if fwd == -math.inf:
                    continue
                x = list(base)
                for t, v in zip(order, combo, strict=True):
                    x[en.free_positions[t]] = v
                j = en.index[tuple(x)]
                if j == i:
                    K[i, i] += math.exp(fwd)
                    continue
                if reverse == "context":
                    rev = path(base, order, old, old)
                else:
                    rev = path(base, order, combo, old)
                alpha = float(target[j] / target[i]) * math.exp(rev - fwd)
                K[i, j] += math.exp(fwd) * min(1.0, alpha)
            K[i, i] += 1.0 - K[i].sum()
        P += weight * K
    return P


def region_orders(free: int) -> list[tuple[float, tuple[int, ...]]]:
    """The whole free region in a uniformly random fill order."""
    orders = list(itertools.permutations(range(free)))
    return [(1.0 / len(orders), o) for o in orders]


def window_orders(free: int, k: int) -> list[tuple[float, tuple[int, ...]]]:
    """A window of ``k`` consecutive free sites, start uniform over ``free - k + 1``,
    filled left to right."""
    starts = free - k + 1
    return [(1.0 / starts, tuple(range(s, s + k))) for s in range(starts)]
