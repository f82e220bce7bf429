"""``pyro-mlm scan``: the exact single-mutant landscape of sequences, checked before the
weights load, written resumably into a directory (:mod:`pyro_mlm.landscape`)."""

from __future__ import annotations

import argparse
import functools
import sys

from pyro_mlm.cli.inputs import UsageError, check_scale_out, read_records, resolve_model


def scan(args: argparse.Namespace) -> int:
    from pyro_mlm.landscape.scan_run import ScanSpec, plan
    from pyro_mlm.models.packaged import PACKAGED

    records = [(f"sequence{k + 1}", t) for k, t in enumerate(args.sequence or [])]
    if args.file:
        records += read_records(args.file)
    if not records:
        raise UsageError("give the wild type to scan with --sequence (repeatable) or --file")
    names = [name for name, _ in records]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(f"record names must differ; {', '.join(twice)} appear more than once")
    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    if args.pairs is not None and not 2 <= args.pairs <= 50:
        raise UsageError(f"--pairs must be 2 to 50 (pairs grow as K^2), got {args.pairs}")
    check_scale_out(args, gpus=False)
    model = _model(args.model, records)
    if model in PACKAGED:
        PACKAGED[model].check_installed()  # before torch loads
    from pyro_mlm.models.load import load_vocabulary, resolve_device

    device = resolve_device(args.device)
    vocab = load_vocabulary(model)
    spec = ScanSpec(
        model=model, records=tuple(records), free=args.free or "all", energy=args.energy,
        energy_over=args.energy_over or "free", numbering=args.numbering,
        experts=tuple(args.expert or ()),
    )  # fmt: skip
    sites, prepared = plan(spec, vocab)  # every record checked before the weights load
    mutants = int(vocab.proposable_ids.numel()) - 1
    rows = sum(site.rows for site in sites) * mutants
    wild_rows = sum({site.record: site.rows + 1 for site in sites}.values())  # |S| per record
    print(
        f"scan: {len(records)} sequence{'s' if len(records) > 1 else ''}, {len(sites)} positions "
        f"x {mutants} mutants = {len(sites) * mutants:,} single mutants, {rows:,} masked rows "
        f"(|S| - 1 = {sites[0].rows} per mutant; + {wild_rows:,} for the wild type"
        f"{'s' if len(records) > 1 else ''})",
        file=sys.stderr,
    )
    from pyro_mlm.cli.threads import say_thread_note
    from pyro_mlm.run.claim import check_unclaimed, claimed

    say_thread_note()
    check_unclaimed(args.out, "the scan directory")
    from pyro_mlm.landscape.scan_run import Scanner, blocks_local, finish_scan, run_scan
    from pyro_mlm.models.load import load_model

    mlm = load_model(model, device=device)
    scanner = Scanner(spec, mlm, prepared)
    columns = scanner.columns()
    with claimed(args.out, "the scan directory", directory=True):
        if args.backend == "ray":
            from pyro_mlm.landscape.scan_ray import blocks_ray

            workers = args.workers or 1
            blocks = functools.partial(
                blocks_ray, spec, workers=workers, threads=args.threads_per_worker or 1,
                address=args.address,
            )  # fmt: skip
        else:
            workers, blocks = 1, functools.partial(blocks_local, scanner)
        done, seconds = run_scan(
            spec, args.out, sites, columns, blocks, mutants,
            progress=not args.no_progress, workers=workers,
        )  # fmt: skip
        if done:
            print(
                f"scan: {done} positions scanned now in {seconds:.1f} s, "
                f"{len(sites) - done} already there",
                file=sys.stderr,
            )
        tokens = [vocab.tokens_text([int(i)]) for i in vocab.proposable_ids]
        printed, ranked = finish_scan(args.out, spec, columns, tokens, args.top, not args.no_plot)
        print(printed)
        if args.pairs:
            from pyro_mlm.landscape.scan_run import scan_pairs

            print(scan_pairs(args.out, scanner, sites, ranked, args.pairs))
    return 0


def _model(name: str, records: list[tuple[str, str]]) -> str:
    """``--model`` resolved as ``sample`` resolves it (``sapiens``: by the chain), the same
    model for every record."""
    if name != "sapiens" or len(records) == 1:
        return resolve_model(name, records[0][1])
    import contextlib
    import io

    chosen = set()
    for _, text in records:
        with contextlib.redirect_stderr(io.StringIO()):
            chosen.add(resolve_model(name, text))
    if len(chosen) > 1:
        raise UsageError(
            f"--model {name} picks the heavy or light model per chain, and the records hold "
            f"both kinds: scan them separately, or give --model ({', '.join(sorted(chosen))})"
        )
    return resolve_model(name, records[0][1])
