"""``pyro-mlm sample --from-scan DIR``: start from a mutant a scan ranked, with the scan's
model, region and energy unless the command line says otherwise."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

from pyro_mlm.cli.inputs import UsageError


def start_from_scan(args: argparse.Namespace) -> None:
    """Fill ``args.sequence`` with the scan's mutant of rank ``--mutant-rank`` (default 1),
    and ``--model``, ``--free``, ``--energy``, ``--energy-over``, ``--numbering`` from the
    scan where not given; a ``UsageError`` for a scan that is not finished, holds several
    sequences, has no such rank, or ranks a forbidden mutant there."""
    directory, rank = args.from_scan, args.mutant_rank
    if args.sequence or args.sequences_file or args.length is not None or args.resume:
        raise UsageError("--from-scan gives the start: leave out --sequence, --length, --resume")
    if rank < 1:
        raise UsageError(f"--mutant-rank must be >= 1, got {rank}")
    record, table = os.path.join(directory, "scan.json"), os.path.join(directory, "scan.csv")
    if not (os.path.isfile(record) and os.path.isfile(table)):
        raise UsageError(
            f"{directory} holds no finished scan (scan.json and scan.csv): run pyro-mlm scan "
            f"--out {directory} first, or let it finish"
        )
    with open(record, encoding="utf-8") as handle:
        meta = json.load(handle)
    if len(meta["records"]) != 1:
        raise UsageError(
            f"{directory} scanned {len(meta['records'])} sequences; --from-scan starts from a "
            "scan of one (scan that sequence on its own)"
        )
    with open(table, encoding="utf-8", newline="") as handle:
        row = next((r for r in csv.DictReader(handle) if r["rank"] == str(rank)), None)
    if row is None:
        raise UsageError(f"{table} has no mutant of rank {rank}")
    if row["forbidden"] == "True":
        raise UsageError(f"the mutant of rank {rank} ({row['mutation']}) is forbidden by an expert")
    name, wild = meta["records"][0]
    from pyro_mlm.models.load import load_vocabulary

    vocab = load_vocabulary(meta["model"])
    tokens = vocab.encode(wild)
    t = int(vocab.content_positions(tokens)[int(row["position"]) - 1])
    if vocab.tokens_text([int(tokens[t])]) != row["wild_type"]:
        raise UsageError(f"{table} does not match {record}: the scan directory was edited")
    tokens[t] = vocab.tokenizer.convert_tokens_to_ids(row["mutant"])
    args.sequence = [vocab.decode(tokens)]
    args.model = args.model or meta["model"]
    args.free = args.free or meta["free"]
    args.energy = args.energy or meta["energy"]
    args.energy_over = args.energy_over or meta["energy_over"]
    args.numbering = args.numbering or meta["numbering"]
    print(
        f"start: {name} with {row['mutation']} (rank {rank} of {table}, dE "
        f"{float(row['delta_energy']):.3f})",
        file=sys.stderr,
    )
