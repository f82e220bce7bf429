"""``pyro-mlm sample``: a run from the command line, checked before the weights load."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from pyro_mlm.cli.directory import check_new_directory, check_resumable
from pyro_mlm.cli.inputs import check_scale_out, read_records, resolve_model
from pyro_mlm.cli.settings import RUN_DEFAULTS, flag, new_spec, resumed_spec
from pyro_mlm.run.artifacts import SPEC_FILE
from pyro_mlm.run.spec import RunSpec

if TYPE_CHECKING:
    from pyro_mlm.run.prepare import Prepared


def sample(args: argparse.Namespace) -> int:
    from pyro_mlm.models.packaged import PACKAGED

    if args.from_scan:
        from pyro_mlm.cli.from_scan import start_from_scan

        start_from_scan(args)
    defaulted = not args.resume and args.model is None
    if not args.resume:
        first = (args.sequence or [None])[0]
        if first is None and args.sequences_file:
            args.records = read_records(args.sequences_file)  # read once (it may be stdin)
            first = args.records[0][1] if args.records else None
        args.model = resolve_model(args.model or RUN_DEFAULTS["model"], first)
        if args.model in PACKAGED:
            PACKAGED[args.model].check_installed()  # before torch loads
    from pyro_mlm.models.load import load_vocabulary, resolve_device
    from pyro_mlm.run.prepare import prepare, with_resolved_free

    device = resolve_device(args.device)
    if defaulted and str(device).startswith("cuda"):
        print(
            "note: a GPU is here: --model antiberty (8 layers, hidden 512, 10x Sapiens' cost "
            "per row) is the antibody model we recommend on one; Sapiens is the default for "
            "CPUs, where it is the one that gets near convergence (bench/README.md)",
            file=sys.stderr,
        )
    check_scale_out(args)
    from pyro_mlm.run.claim import check_unclaimed

    check_unclaimed(args.resume or args.out, "the run directory")  # before anything else
    if args.resume:
        directory = args.resume
        spec = resumed_spec(args, directory)
        vocab = load_vocabulary(spec.model)
    else:
        directory = args.out
        check_new_directory(directory)
        vocab = load_vocabulary(args.model)
        from pyro_mlm.run.recorded import record_inputs

        spec = record_inputs(new_spec(args, vocab))  # input files by content
    from pyro_mlm.cli import scale

    prepared = None
    if spec.chains_per_start:  # a campaign: every job checked before the weights load
        from pyro_mlm.run.campaign import job_specs

        for job in job_specs(spec):
            prepare(job, vocab, flag)
        mode = "campaign"
    else:
        prepared = prepare(spec, vocab, flag)  # the one check of the start, before the weights
        if not args.resume:
            spec = with_resolved_free(spec, vocab, prepared)  # run.json records it
        if args.resume:  # a run goes on the way it started
            sharded = scale.is_sharded(directory)
        else:
            sharded = spec.shards > 1 or args.backend == "ray"
        mode = "sharded" if sharded else "plain"
    from pyro_mlm.run.claim import claimed

    with claimed(directory, "the run directory", directory=True):
        if not args.resume:  # again, now that the directory is ours: nobody started there
            check_new_directory(directory)
        return _run(args, spec, directory, mode, device, prepared)


def _run(
    args: argparse.Namespace,
    spec: RunSpec,
    directory: str,
    mode: str,
    device: Any,
    prepared: Prepared | None,
) -> int:
    """The run itself, in a directory this process holds (:mod:`pyro_mlm.run.claim`), from
    the command's ``prepared`` start (None for a campaign: each job prepares its own)."""
    import torch

    from pyro_mlm.cli import scale
    from pyro_mlm.cli.threads import THREAD_NOTE, say_thread_note
    from pyro_mlm.models.load import load_model

    if args.resume and spec.threads and args.threads is None:
        THREAD_NOTE.clear()  # the run's own count, whatever the load says now
        torch.set_num_threads(spec.threads)  # the floats of the uninterrupted run
    elif args.resume and args.threads is not None and args.threads != spec.threads:
        print(
            f"note: --threads {args.threads} differs from the {spec.threads or 'unrecorded'} "
            "thread(s) this run started with: the draws from here on may differ in their "
            "last bits from an uninterrupted run's (the target is the same); run.json now "
            f"records {args.threads}",
            file=sys.stderr,
        )
        spec = spec.replace(threads=args.threads)
        from pyro_mlm.run.store import write_atomic

        write_atomic(os.path.join(directory, SPEC_FILE), spec.to_json().encode())
    elif not args.resume:
        spec = spec.replace(threads=torch.get_num_threads())
    say_thread_note()
    if args.resume:
        done = check_resumable(directory, spec) if mode == "plain" else 0
        if mode == "plain" and not spec.until_converged and done >= spec.samples:
            if args.samples is None or args.samples <= spec.samples:
                print(
                    f"{directory} holds a finished run ({spec.samples} draws per chain x "
                    f"{spec.chains} chains); its files are written. To extend it: pyro-mlm "
                    f"sample --resume {directory} --samples N (N > {spec.samples})"
                )
                return 0
        if args.samples is not None and args.samples != spec.samples:
            from pyro_mlm.run.store import write_atomic

            spec = spec.replace(samples=args.samples)
            write_atomic(os.path.join(directory, SPEC_FILE), spec.to_json().encode())
    if mode == "campaign":
        return scale.sample_campaign(args, spec, directory)
    if mode == "sharded":
        return scale.sample_sharded(args, spec, directory)
    print(f"loading {spec.model} ...", file=sys.stderr, flush=True)
    mlm = load_model(spec.model, device=device)
    print(f"{mlm}: {spec.kernel}/{spec.energy}, {spec.chains} chains, {_plan(spec)} -> {directory}",
          file=sys.stderr)  # fmt: skip
    from pyro_mlm.run.loop import sample_to_directory

    result = sample_to_directory(
        spec, mlm, directory, resume=bool(args.resume), progress=not args.no_progress,
        prepared=prepared,
    )  # fmt: skip
    from pyro_mlm.cli.result import print_result

    print_result(result, spec, directory, top=args.top)
    return 0 if result.completed else 130


def _plan(spec: RunSpec) -> str:
    """How long the run goes: its sweeps, or the stop rule and the budget."""
    budget = f", at most {spec.max_minutes:g} min" if spec.max_minutes else ""
    if not spec.until_converged:
        return f"{spec.warmup} warm-up + {spec.samples} sweeps{budget}"
    cap = f", at most {spec.samples} draws per chain" if spec.samples else ""
    return (
        f"{spec.warmup} warm-up sweeps, then until CONVERGED (R-hat <= 1.01 and bulk ESS >= "
        f"400; the first quarter of the sweeps is warm-up){cap}{budget}"
    )
