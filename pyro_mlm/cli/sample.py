"""``pyro-mlm sample``: a run from the command line, checked before the weights load."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from pyro_mlm.cli.directory import check_new_directory, check_resumable
from pyro_mlm.cli.inputs import UsageError, check_memory, check_scale_out, read_records
from pyro_mlm.run.artifacts import CHECKPOINT_FILE, SPEC_FILE
from pyro_mlm.run.spec import RunSpec

if TYPE_CHECKING:
    from pyro_mlm.models.vocabulary import Vocabulary
    from pyro_mlm.run.prepare import Prepared

RUN_DEFAULTS: dict[str, Any] = {
    "model": "antiberty",
    "energy": "norm",
    "kernel": "mh",
    "warmup": 20,
    "samples": 100,
    "temperature": 1.0,
    "proposal_temperature": 1.0,
    "scan": "random",
    "seed": 0,
    "energy_over": "free",
    "numbering": "imgt",
    "lengths": "",
    "length_prior": "uniform",
    "length_moves": 0,
}


def sample(args: argparse.Namespace) -> int:
    from pyro_mlm.models.packaged import PACKAGED

    if not args.resume and (args.model or RUN_DEFAULTS["model"]) in PACKAGED:
        PACKAGED[args.model or RUN_DEFAULTS["model"]].check_installed()  # before torch loads
    from pyro_mlm.models.load import load_vocabulary, resolve_device
    from pyro_mlm.run.prepare import prepare, with_resolved_free

    device = resolve_device(args.device)
    check_scale_out(args)
    from pyro_mlm.run.claim import check_unclaimed

    check_unclaimed(args.resume or args.out, "the run directory")  # before anything else
    if args.resume:
        directory = args.resume
        spec = _resumed_spec(args, directory)
        vocab = load_vocabulary(spec.model)
    else:
        directory = args.out
        check_new_directory(directory)
        vocab = load_vocabulary(args.model or RUN_DEFAULTS["model"])
        from pyro_mlm.run.recorded import record_inputs

        spec = record_inputs(_new_spec(args, vocab))  # input files by content
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
        if mode == "plain" and check_resumable(directory, spec) >= spec.samples:
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
    print(
        f"{mlm}: {spec.kernel}/{spec.energy}, {spec.chains} chains, "
        f"{spec.warmup} warm-up + {spec.samples} sweeps -> {directory}",
        file=sys.stderr,
    )
    from pyro_mlm.run.loop import sample_to_directory

    result = sample_to_directory(
        spec, mlm, directory, resume=bool(args.resume), progress=not args.no_progress,
        prepared=prepared,
    )  # fmt: skip
    from pyro_mlm.cli.result import print_result

    print_result(result, spec, directory, top=args.top)
    return 0 if result.completed else 130


def _new_spec(args: argparse.Namespace, vocab: Vocabulary) -> RunSpec:
    records = [(f"sequence{k + 1}", t) for k, t in enumerate(args.sequence or [])]
    if args.sequences_file:
        records += read_records(args.sequences_file)
    texts = [text for _, text in records]
    mask = str(vocab.tokenizer.mask_token)
    if args.length is not None:
        if texts:
            raise UsageError("give starting sequences or --length, not both")
        if args.length < 1:
            raise UsageError(f"--length must be >= 1, got {args.length}")
        texts = [(mask if vocab.split is not None else mask + " ") * args.length]
    if not texts:
        raise UsageError("give a starting sequence (--sequence, --sequences-file) or --length N")
    several = len(texts) > 1 and not args.campaign
    chains = args.chains if args.chains is not None else (len(texts) if several else 4)
    if chains < 1:
        raise UsageError(f"--chains must be >= 1, got {chains}")
    replicas = (
        int(getattr(args, "opt_replicas", None) or 4) if args.kernel == "replica-exchange" else 1
    )
    per_start = chains if not args.campaign else chains * len(texts)
    check_memory(per_start, len(vocab.encode(texts[0])), vocab.vocab_size, replicas)
    if args.campaign:
        if args.workers is not None and args.backend == "local" and args.workers > 1:
            raise UsageError(
                "a local campaign runs its jobs in turn; --workers needs --backend ray"
            )
    elif len(texts) == 1:
        texts = texts * chains
    elif len(texts) != chains:
        raise UsageError(f"{len(texts)} starting sequences for {chains} chains; give 1 or {chains}")
    free = args.free or ("masked" if any(mask in t for t in texts) else "all")
    values = {
        k: getattr(args, k) if getattr(args, k) is not None else v for k, v in RUN_DEFAULTS.items()
    }
    if args.length_moves is not None and args.length_moves < 1:
        raise UsageError(
            f"--length-moves must be >= 1, got {args.length_moves}; leave it out for the "
            "default ceil(MAX / 4)"
        )
    for name in ("warmup", "samples"):
        if values[name] < 0 or (name == "samples" and values[name] < 1):
            raise UsageError(f"--{name} must be {'>= 1' if name == 'samples' else '>= 0'}")
    if not 0 <= values["seed"] < 2**32:
        raise UsageError(f"--seed must be in [0, {2**32 - 1}], got {values['seed']}")
    for name in ("temperature", "proposal_temperature"):
        if not 0 < values[name] < float("inf"):
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be finite and > 0, got {values[name]}; use e.g. 1.0")
    options = sampler_options(
        args, values["kernel"], values["temperature"], values["proposal_temperature"]
    )
    experts = tuple(args.expert or ())
    workers = args.workers if args.workers is not None else 1
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if args.campaign:
        return RunSpec(
            sequences=tuple(texts), free=free, options=options, experts=experts,
            chains_per_start=chains, names=tuple(name for name, _ in records), **values,
        ).validate()  # fmt: skip
    if workers > chains:
        raise UsageError(f"--workers {workers} for {chains} chains; give at most one per chain")
    return RunSpec(
        sequences=tuple(texts), free=free, options=options, experts=experts, shards=workers,
        **values,
    ).validate()  # fmt: skip


def flag(name: str) -> str:
    """A setting's command-line spelling: ``block_size`` -> ``--block-size``."""
    return "--" + name.replace("_", "-")


def sampler_options(
    args: argparse.Namespace,
    kernel: str,
    temperature: float = 1.0,
    proposal_temperature: float = 1.0,
) -> dict[str, Any]:
    """The sampler options given on the command line, checked (with the temperatures) by
    the one check every entry point uses, and named as flags."""
    from pyro_mlm.samplers.options import check_settings

    given = {k[len("opt_") :]: v for k, v in vars(args).items() if k.startswith("opt_")}
    given = {k: v for k, v in given.items() if v is not None}
    try:
        parsed = check_settings(
            kernel, given, temperature=temperature, proposal_temperature=proposal_temperature,
            spell=flag,
        )  # fmt: skip
    except ValueError as err:
        raise UsageError(str(err).replace(f"sampler {kernel!r}", f"--kernel {kernel}")) from err
    return {k: json.loads(json.dumps(v)) for k, v in parsed.items()}


def _resumed_spec(args: argparse.Namespace, directory: str) -> RunSpec:
    path = os.path.join(directory, SPEC_FILE)
    if not os.path.isfile(path):
        raise UsageError(f"--resume {directory}: no {SPEC_FILE} there, so no run to continue")
    from pyro_mlm.cli.scale import is_campaign, is_sharded

    if not os.path.isfile(os.path.join(directory, CHECKPOINT_FILE)) and not (
        is_sharded(directory) or is_campaign(directory)
    ):
        raise UsageError(f"--resume {directory}: no {CHECKPOINT_FILE} there, it cannot continue")
    spec = RunSpec.read(path)
    from pyro_mlm.run.recorded import check_recorded_inputs

    check_recorded_inputs(spec)
    if args.sequence or args.sequences_file or args.length is not None or args.out_given:
        raise UsageError(
            "--resume takes the starting sequences and settings from the run directory; "
            "drop --sequence/--sequences-file/--length/--out"
        )
    given = {k: getattr(args, k) for k in RUN_DEFAULTS if getattr(args, k) is not None}
    if args.free is not None:
        given["free"] = args.free
    options = sampler_options(args, spec.kernel, spec.temperature, spec.proposal_temperature)
    if options:
        given["options"] = {**spec.options, **options}
    if args.chains is not None:
        given["chains"] = args.chains
    if args.workers is not None and not spec.chains_per_start:
        given["shards"] = args.workers
    if args.expert:
        given["experts"] = list(args.expert)
    saved = {**json.loads(spec.to_json()), "chains": spec.chains_per_start or spec.chains}
    clash = [k for k, v in given.items() if k != "samples" and saved[k] != v]
    if clash:
        raise UsageError(
            f"{directory} holds a different run: it has "
            + ", ".join(f"{k}={saved[k]!r}" for k in clash)
            + "; drop those options to continue it, or start a new run with another --out"
        )
    if args.samples is not None and args.samples < spec.samples:
        raise UsageError(f"--samples {args.samples} is fewer than the run's {spec.samples}")
    return spec
