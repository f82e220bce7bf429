"""A run's settings from the command line: a new run's :class:`RunSpec`, or a resumed one's
with what the command may change, each option checked and named as a flag."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from pyro_mlm.cli.inputs import UsageError, check_memory, read_records
from pyro_mlm.run.artifacts import CHECKPOINT_FILE, SPEC_FILE
from pyro_mlm.run.spec import RunSpec

if TYPE_CHECKING:
    from pyro_mlm.models.vocabulary import Vocabulary

RUN_DEFAULTS: dict[str, Any] = {
    "model": "sapiens",  # Sapiens-H or -L by the start's chain (cli.inputs.resolve_model)
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
    "until_converged": False,
    "max_minutes": 0.0,
}


def new_spec(args: argparse.Namespace, vocab: Vocabulary) -> RunSpec:
    records = [(f"sequence{k + 1}", t) for k, t in enumerate(args.sequence or [])]
    if args.sequences_file:
        records += getattr(args, "records", None) or read_records(args.sequences_file)
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
    if values["until_converged"] and args.samples is None:
        values["samples"] = 0  # no cap: the stop rule ends the run
    for name in ("warmup", "samples"):
        uncapped = name == "samples" and args.samples is None and values["until_converged"]
        if values[name] < 0 or (name == "samples" and values[name] < 1 and not uncapped):
            raise UsageError(f"--{name} must be {'>= 1' if name == 'samples' else '>= 0'}")
    check_budget(args, values["max_minutes"])
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


def check_budget(args: argparse.Namespace, minutes: float) -> None:
    """--max-minutes in range, and the stop rule and budget only where they are built."""
    if not 0 <= minutes < float("inf"):
        raise UsageError(f"--max-minutes must be a finite number >= 0, got {minutes}")
    several = (args.workers or 1) > 1 or args.backend == "ray" or args.campaign
    if several and (args.until_converged or minutes):
        raise UsageError(
            "--until-converged and --max-minutes run the chains in one process: drop "
            "--workers/--backend ray/--campaign (the stop rule is not built for shards)"
        )


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


def resumed_spec(args: argparse.Namespace, directory: str) -> RunSpec:
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
    clash = [k for k, v in given.items() if k not in ("samples", "max_minutes") and saved[k] != v]
    if clash:
        raise UsageError(
            f"{directory} holds a different run: it has "
            + ", ".join(f"{k}={saved[k]!r}" for k in clash)
            + "; drop those options to continue it, or start a new run with another --out"
        )
    if args.samples is not None and args.samples < spec.samples:
        raise UsageError(f"--samples {args.samples} is fewer than the run's {spec.samples}")
    if args.max_minutes is not None:
        check_budget(args, args.max_minutes)
        spec = spec.replace(max_minutes=args.max_minutes)  # this session's budget
    return spec
