"""BLEU and chrF with sacrebleu, PINC as Carlson et al. compute it, and bootstrap intervals
over test sentences.

sacrebleu's corpus functions take a *list of reference streams*: ``[references]``. Passing
the bare list of references is silently wrong (each character becomes a stream and the
score is near 0), so every call here goes through these helpers.

The bootstrap (Koehn 2004) resamples test sentences with replacement and recomputes corpus
BLEU from summed sentence statistics (matches and totals per n-gram order, hypothesis and
reference lengths), which is exactly how sacrebleu computes corpus BLEU, so resample 0
(the identity) reproduces :func:`bleu`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import sacrebleu
from sacrebleu.metrics import BLEU

_BLEU = BLEU()


def bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> float:
    """Corpus BLEU of one hypothesis per reference.

    ``tokenize="none"`` scores white-space tokens as they are, as Moses' multi-bleu.perl
    does on untokenised text (how Carlson et al. 2018 scored): punctuation stays attached
    to its word, so the score is lower than with sacrebleu's default ``13a``.
    """
    score = sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize)
    return float(score.score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF of one hypothesis per reference."""
    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


def sentence_bleu(hypothesis: str, reference: str) -> float:
    """Sentence BLEU (sacrebleu's default exponential smoothing)."""
    return float(sacrebleu.sentence_bleu(hypothesis, [reference]).score)


def bleu_statistics(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """``[N, 10]`` sentence statistics whose column sums give corpus BLEU."""
    stats = _BLEU._extract_corpus_statistics(list(hypotheses), [list(references)])
    return np.asarray(stats, dtype=np.int64)


def bleu_from_statistics(summed: np.ndarray) -> float:
    """Corpus BLEU from column-summed :func:`bleu_statistics`."""
    return float(_BLEU._compute_score_from_stats([int(v) for v in summed]).score)


def bootstrap_bleu(
    systems: Mapping[str, Sequence[Sequence[str]]],
    references: Sequence[str],
    pairs: Sequence[tuple[str, str]] = (),
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    r"""Bootstrap intervals of mean-over-chains corpus BLEU, and of paired differences.

    ``systems[name]`` holds one hypothesis list per chain (each aligned with
    ``references``). For resample :math:`r` with sentence indices :math:`I_r` (drawn with
    replacement, the same for every system, so differences are paired),

    .. math::

        B_r(\text{name}) = \frac{1}{C} \sum_{c} \mathrm{BLEU}\Big(\sum_{i \in I_r} s_{c,i}\Big),

    with :math:`s_{c,i}` the sentence statistics of chain :math:`c`. Returns, per system,
    the 2.5 and 97.5 percentiles (``lo``, ``hi``), and per pair ``(a, b)`` the percentiles
    of :math:`B_r(a) - B_r(b)` and ``p_a_above``, the fraction of resamples with
    :math:`B_r(a) > B_r(b)`.
    """
    n = len(references)
    stats = {
        name: np.stack([bleu_statistics(h, references) for h in chains])
        for name, chains in systems.items()
    }  # name -> [C, N, 10]
    rng = np.random.default_rng(seed)
    draws = {name: np.empty(resamples) for name in systems}
    for r in range(resamples):
        index = np.arange(n) if r == 0 else rng.integers(0, n, n)
        for name, s in stats.items():
            summed = s[:, index].sum(axis=1)  # [C, 10]
            draws[name][r] = np.mean([bleu_from_statistics(row) for row in summed])
    intervals = {
        name: {"lo": float(np.percentile(d, 2.5)), "hi": float(np.percentile(d, 97.5))}
        for name, d in draws.items()
    }
    differences = {}
    for a, b in pairs:
        diff = draws[a] - draws[b]
        differences[f"{a} - {b}"] = {
            "difference": float(diff[0]),
            "lo": float(np.percentile(diff, 2.5)),
            "hi": float(np.percentile(diff, 97.5)),
            "p_a_above": float(np.mean(diff > 0)),
        }
    return {"intervals": intervals, "differences": differences}


def pinc(sources: Sequence[str], hypotheses: Sequence[str], max_order: int = 4) -> float:
    r"""PINC, the n-gram novelty of the outputs against their sources, x 100, computed as
    Carlson et al.'s (2018) released scorer does (their ``Code/PINC.perl``, a modified
    ``multi-bleu.perl`` with the source as the reference): over the whole test set,
    case-sensitive white-space tokens, source counts clipping the hypothesis counts,

    .. math::

        \mathrm{PINC} = 100 \Big(1 - \frac{1}{4} \sum_{n=1}^{4}
            \frac{\sum_s \sum_g \min(c_{h_s}(g), c_{x_s}(g))}{\sum_s \sum_g c_{h_s}(g)}\Big)

    for n-grams :math:`g` of order :math:`n`, hypothesis :math:`h_s` and source
    :math:`x_s` of sentence :math:`s` (an order with no n-grams counts as no overlap, as
    there). 0 for a copy of the sources (of four tokens or more). Chen and Dolan's
    (2011) original averages ``1 - overlap`` per sentence over n-gram *sets*; the
    corpus-level form is used here so our numbers sit beside Carlson et al.'s.

    >>> pinc(["the cat sat on the mat"], ["the cat sat on the mat"])
    0.0
    >>> pinc(["the cat sat on the mat"], ["a dog ran to a park"])
    100.0
    """
    matched = np.zeros(max_order)
    total = np.zeros(max_order)
    for source, hypothesis in zip(sources, hypotheses, strict=True):
        src, hyp = source.split(), hypothesis.split()
        for n in range(1, max_order + 1):
            ref = Counter(tuple(src[i : i + n]) for i in range(len(src) - n + 1))
            grams = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
            total[n - 1] += sum(grams.values())
            matched[n - 1] += sum(min(c, ref[g]) for g, c in grams.items())
    precision = np.divide(matched, total, out=np.zeros(max_order), where=total > 0)
    return 100.0 * (1.0 - float(precision.mean()))
