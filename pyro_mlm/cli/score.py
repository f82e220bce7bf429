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
    encode_all(load_vocabulary(args.model), texts)  # every sequence checked before the weights
    kinds = ["norm", "raw"] if args.energy == "both" else [args.energy]
    from pyro_mlm.cli import say_thread_note

    say_thread_note()
    if args.backend == "ray" or args.out:
        if not args.out:
            raise UsageError("--backend ray writes its rows to a file: give --out scores.csv")
        from pyro_mlm.run.claim import claimed

        with claimed(args.out, "the score file", directory=False):
            written = _score_to_file(args, records, kinds, device)
        print(f"{args.out}: {written} rows written now, {len(texts) - written} already there")
        return 0
    mlm = load_model(args.model, device=device)
    rows = score_sequences(mlm, texts, kinds, progress=not args.no_progress)
    rows = [{"name": name, **row} for (name, _), row in zip(records, rows, strict=True)]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        columns = [c for c in rows[0] if c not in ("sequence", "name")] + ["sequence"]
        print("  ".join(f"{c:>17}" if c != "sequence" else c for c in columns))
        for row in rows:
            cells = [f"{row[c]:>17}" for c in columns[:-1]]
            seq = row["sequence"] if len(row["sequence"]) <= 60 else row["sequence"][:57] + "..."
            print("  ".join([*cells, seq]))
    return 0


def _score_to_file(
    args: argparse.Namespace, records: list[tuple[str, str]], kinds: list[str], device: Any
) -> int:
    """Rows into ``--out`` (held by this process), locally or on Ray; the rows written now."""
    from pyro_mlm.models.load import load_model
    from pyro_mlm.scoring import score_ray

    if args.backend == "ray":
        return score_ray.score_to_csv_ray(
            args.model, records, kinds, args.out, workers=args.workers or 1,
            threads=args.threads_per_worker or 1, address=args.address,
        )  # fmt: skip
    mlm = load_model(args.model, device=device)
    return score_ray.score_to_csv_local(
        mlm, records, kinds, args.out, progress=not args.no_progress, model=args.model
    )
