r"""The maths of insert and delete moves on a region whose length varies: the length prior,
the runs of equal tokens (equivalent gaps), the choice probabilities and the Hastings ratio
(:func:`length_log_ratio`), and the padded layout chains are stored in. The sampler that
uses them is :class:`pyro_mlm.samplers.lengths.VariableLength`.
"""

from __future__ import annotations

import math
import os

import torch


def length_prior(
    text: str, lengths: tuple[int, int], weights: dict[int, float] | None = None
) -> torch.Tensor:
    r""":math:`\log \lambda(n)` for :math:`n = 0 .. n_{\max}` (``-inf`` outside the range).

    ``uniform`` (:math:`\lambda = 1`); ``penalty:VALUE`` (:math:`\log\lambda(n) = -\text{VALUE}
    \cdot n`, a per-residue penalty); or a file of lines ``LENGTH WEIGHT`` (weights > 0, every
    length of the range listed once, ``#`` comments), e.g. observed CDR-H3 length
    frequencies. ``weights``, when given, are the file's weights as recorded when a run
    started (:attr:`pyro_mlm.run.spec.RunSpec.length_weights`): the file is not read again.

    >>> length_prior("penalty:0.5", (1, 2)).tolist()
    [-inf, -0.5, -1.0]
    """
    lo, hi = lengths
    out = torch.full((hi + 1,), float("-inf"), dtype=torch.float64)
    span = torch.arange(lo, hi + 1, dtype=torch.float64)
    if text == "uniform":
        out[lo:] = 0.0
    elif text.startswith("penalty:"):
        try:
            value = float(text.partition(":")[2])
        except ValueError:
            value = float("nan")
        if not math.isfinite(value):
            raise ValueError(f"--length-prior penalty:VALUE needs a finite number, got {text!r}")
        out[lo:] = -value * span
    elif weights is not None or os.path.isfile(text):
        weights = read_weights(text) if weights is None else weights
        _check_covered(text, weights, lengths)
        for n in range(lo, hi + 1):
            out[n] = math.log(weights[n])
    else:
        raise ValueError(
            f"--length-prior must be uniform, penalty:VALUE or a file of 'LENGTH WEIGHT' lines; "
            f"{text!r} is none of these (no such file)"
        )
    return out


def _check_covered(path: str, weights: dict[int, float], lengths: tuple[int, int]) -> None:
    """Every length of the range has a weight (checked without walking a huge range)."""
    lo, hi = lengths
    if sum(lo <= n <= hi for n in weights) == hi - lo + 1:
        return
    missing = [n for n in range(lo, min(hi, lo + len(weights) + 10) + 1) if n not in weights]
    shown = str(missing[:10])[:-1] + (", ...]" if len(missing) > 10 or hi > lo + 10 else "]")
    raise ValueError(
        f"--length-prior {path} gives no weight for lengths {shown} of --lengths {lo}-{hi}; "
        "list every length of the range"
    )


def check_length_prior(
    prior: object, lengths: tuple[int, int] | None, name: str = "length_prior"
) -> str | torch.Tensor:
    r"""``prior`` checked at construction: text (read now, so a bad file fails here) or a
    tensor of :math:`\log\lambda(n)` for ``n = 0 .. MAX``; ``TypeError``/``ValueError``
    naming ``name`` and the form it takes."""
    if isinstance(prior, str):
        if lengths is not None and prior != "uniform":
            length_prior(prior, (lengths[0], lengths[0] + 1))  # the text, cheaply
            if not prior.startswith("penalty:"):
                _check_covered(prior, read_weights(prior), lengths)
        elif prior != "uniform":
            raise ValueError(f"{name} needs lengths=(MIN, MAX)")
        return prior
    if isinstance(prior, torch.Tensor):
        want = None if lengths is None else (lengths[1] + 1,)
        if not prior.is_floating_point() or (want is not None and tuple(prior.shape) != want):
            raise ValueError(
                f"{name} as a tensor holds log lambda(n) for n = 0 .. MAX: a float tensor of "
                f"shape {want}, got {prior.dtype} {tuple(prior.shape)}"
            )
        return prior
    raise TypeError(
        f"{name} takes 'uniform', 'penalty:VALUE', a file of 'LENGTH WEIGHT' lines, or a "
        f"tensor of log lambda(n) for n = 0 .. MAX; got {type(prior).__name__}"
    )


def read_weights(path: str) -> dict[int, float]:
    """The ``LENGTH WEIGHT`` lines of a length-prior file; ``ValueError`` naming the file and
    line of anything else (a length listed twice names both lines)."""
    weights: dict[int, float] = {}
    seen: dict[int, int] = {}  # length -> the line that gave it
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError:
        raise ValueError(
            f"--length-prior {path} is not a text file (not UTF-8): give a file of "
            "'LENGTH WEIGHT' lines"
        ) from None
    for number, line in enumerate(lines, 1):
        text = line.split("#")[0].replace(",", " ").split()
        if not text:
            continue
        try:
            n, w = int(text[0]), float(text[1])
        except (ValueError, IndexError):
            raise ValueError(
                f"--length-prior {path}, line {number}: expected 'LENGTH WEIGHT', got "
                f"{line.strip()[:40]!r}"
            ) from None
        if not 0 < w < float("inf"):
            raise ValueError(
                f"--length-prior {path}, line {number}: weight {w} must be > 0 and finite"
            )
        if n in seen:
            raise ValueError(
                f"--length-prior {path}, lines {seen[n]} and {number} both give length {n} a "
                "weight; "
                "list each length once"
            )
        seen[n] = number
        weights[n] = w
    return weights


def pad_region(
    tokens: torch.Tensor, free: torch.Tensor, most: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``[C, L]`` and free mask, padded with ``pad_id`` at the end to the width of a
    region of ``most`` positions: ``[C, L + most - n]`` (every chain's region has ``n``)."""
    counts = free.sum(-1)
    extra = most - int(counts.max())
    if extra < 0:
        raise ValueError(f"the start's free region has {int(counts.max())} positions, > {most}")
    pads = torch.full((tokens.shape[0], extra), pad_id, dtype=tokens.dtype, device=tokens.device)
    return torch.cat([tokens, pads], 1), torch.cat(
        [free, torch.zeros_like(pads, dtype=torch.bool)], 1
    )


def region_start(free: torch.Tensor) -> int:
    """The first position of the one contiguous free region every chain shares; a
    ``ValueError`` in one line otherwise (``--lengths`` needs one region)."""
    first = free.long().argmax(-1)
    counts = free.sum(-1)
    span = torch.arange(free.shape[1], device=free.device)
    contiguous = (span >= first[:, None]) & (span < (first + counts)[:, None])
    if not bool((contiguous == free).all()) or not bool((first == first[0]).all()):
        raise ValueError(
            "--lengths needs the free positions to be one contiguous region (e.g. --free "
            "98-110 or one CDR), starting at the same position in every chain"
        )
    return int(first[0])


def equivalent_runs(same: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """``[C, W]`` the maximal run of ``True`` in ``same [C, W]`` around ``slot [C]``: the
    region positions holding the token at ``slot``, contiguous with it (inserting or
    deleting any of them gives the same sequence)."""
    span = torch.arange(same.shape[1], device=same.device)[None]
    breaks = ~same
    left = torch.where(breaks & (span < slot[:, None]), span, -1).max(-1).values + 1
    right = torch.where(breaks & (span > slot[:, None]), span, same.shape[1]).min(-1).values
    return (span >= left[:, None]) & (span < right[:, None])


def padded_start(
    tokens: torch.Tensor,
    free: torch.Tensor,
    lengths: tuple[int, int],
    pad_id: int | None,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start tokens and free mask ``[C, L]`` checked (one region, a pad token, lengths in
    range, and with ``limit`` the model's positions: ``L - n + MAX <= limit``, checked from
    the start's length alone, before anything is padded or allocated) and padded to the
    longest region (:func:`pad_region`)."""
    if pad_id is None:
        raise ValueError("--lengths needs a model with a pad token (to pad shorter chains)")
    region_start(free)
    counts = free.sum(-1)
    lo, hi = lengths
    fixed = tokens.shape[-1] - int(counts.min())  # tokens outside the region (specials too)
    if limit is not None and fixed + hi > limit:
        most = limit - fixed
        fits = f"the largest MAX that fits is {most}" if most >= lo else "no region length fits"
        raise ValueError(
            f"--lengths {lo}-{hi}: a region of {hi} makes the sequence {fixed + hi} tokens "
            f"long, but the model takes at most {limit} (special tokens included); {fits}"
        )
    if bool(((counts < lo) | (counts > hi)).any()):
        raise ValueError(
            f"the start's free region has {sorted(set(counts.tolist()))} positions, outside "
            f"--lengths {lo}-{hi}"
        )
    return pad_region(tokens, free, hi, pad_id)


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
