"""``pyro-mlm score``: energies of many sequences, every one checked before the weights load."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pyro_mlm.cli.inputs import UsageError, check_scale_out, read_records


def score(args: argparse.Namespace) -> int:
    from pyro_mlm.models.load import load_model, load_vocabulary, resolve_device
    from pyro_mlm.scoring.score import encode_all, score_sequences

    check_scale_out(args, gpus=False)
    device = resolve_device(args.device)
    records = [(f"arg{k + 1}", t) for k, t in enumerate(args.sequences)]
    if args.file:
        records += read_records(args.file)
    texts = [text for _, text in records]
    if not texts:
        raise UsageError("give sequences to score as arguments or with --file")
    vocab = load_vocabulary(args.model)
    encoded = encode_all(vocab, texts)  # every sequence checked before the weights
    kinds = ["norm", "raw"] if args.energy == "both" else [args.energy]
    if args.energy_over is not None and args.free is None:
        raise UsageError("--energy-over needs --free (without it every position is scored)")
    region = None
    if args.free is not None and args.energy_over != "all":  # "all": the whole sequence
        from pyro_mlm.scoring.score import regions

        regions(vocab, encoded, args.free, args.numbering)  # checked before the weights too
        region = {"free": args.free, "numbering": args.numbering}
    from pyro_mlm.cli.threads import say_thread_note

    say_thread_note()
    if args.backend == "ray" or args.out:
        if not args.out:
            raise UsageError("--backend ray writes its rows to a file: give --out scores.csv")
        from pyro_mlm.run.claim import claimed

        with claimed(args.out, "the score file", directory=False):
            written = _score_to_file(args, records, kinds, device, region)
        print(f"{args.out}: {written} rows written now, {len(texts) - written} already there")
        return 0
    mlm = load_model(args.model, device=device)
    rows = score_sequences(mlm, texts, kinds, progress=not args.no_progress, region=region)
    rows = [{"name": name, **row} for (name, _), row in zip(records, rows, strict=True)]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(score_table(rows))
    return 0


def score_table(rows: list[dict[str, Any]], width: int = 60) -> str:
    """The printed table: each row's name, its energies, and the part of its sequence that
    differs from the others' (1-based positions of that part; sequences that share a
    framework show their differing region, never the same cut-off prefix)."""
    texts = [str(r["sequence"]) for r in rows]
    lo = hi = 0
    if len(texts) > 1:
        shortest = min(len(t) for t in texts)
        while lo < shortest and len({t[lo] for t in texts}) == 1:
            lo += 1
        while hi < shortest - lo and len({t[len(t) - 1 - hi] for t in texts}) == 1:
            hi += 1
    numbers = [c for c in rows[0] if c not in ("sequence", "name")]
    names = max(4, *(len(str(r["name"])) for r in rows))
    part = "sequence" if not (lo or hi) else "sequence (where they differ)"
    lines = ["  ".join([f"{'name':<{names}}", *(f"{c:>17}" for c in numbers), part])]
    for row, text in zip(rows, texts, strict=True):
        middle = text[lo : len(text) - hi]
        shown = middle if not (lo or hi) else f"{lo + 1}-{len(text) - hi}: {middle}"
        shown = shown if len(shown) <= width else shown[: width - 3] + "..."
        cells = [f"{row[c]:>17}" for c in numbers]
        lines.append("  ".join([f"{row['name']:<{names}}", *cells, shown]))
    return "\n".join(lines)


def _score_to_file(
    args: argparse.Namespace,
    records: list[tuple[str, str]],
    kinds: list[str],
    device: Any,
    region: dict[str, str] | None,
) -> int:
    """Rows into ``--out`` (held by this process), locally or on Ray; the rows written now."""
    from pyro_mlm.models.load import load_model
    from pyro_mlm.scoring import score_ray

    if args.backend == "ray":
        return score_ray.score_to_csv_ray(
            args.model, records, kinds, args.out, workers=args.workers or 1,
            threads=args.threads_per_worker or 1, address=args.address, region=region,
        )  # fmt: skip
    mlm = load_model(args.model, device=device)
    return score_ray.score_to_csv_local(
        mlm, records, kinds, args.out, progress=not args.no_progress, model=args.model,
        region=region,
    )  # fmt: skip
