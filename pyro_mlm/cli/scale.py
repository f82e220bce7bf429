"""``pyro-mlm sample`` beyond one process: sharded runs and campaigns, here or on Ray.

The run's settings are already checked (and, on ``--resume``, extended) by
:mod:`pyro_mlm.cli.sample`; this module picks the backend and prints the result.
"""

from __future__ import annotations

import argparse
import os
import sys

from pyro_mlm.run.spec import RunSpec


def is_campaign(directory: str) -> bool:
    """Whether ``directory`` holds a campaign (one run per start under ``runs/``)."""
    from pyro_mlm.run.campaign import RUNS_DIR

    return os.path.isdir(os.path.join(directory, RUNS_DIR))


def is_sharded(directory: str) -> bool:
    """Whether ``directory`` holds a sharded run (its shards under ``shards/``)."""
    from pyro_mlm.run.shards import SHARDS_DIR

    return os.path.isdir(os.path.join(directory, SHARDS_DIR))


def sample_campaign(args: argparse.Namespace, spec: RunSpec, directory: str) -> int:
    """Every start its own run, in turn here or over a pool of Ray actors."""
    from pyro_mlm.run.campaign import local_submit, ray_submit, run_campaign

    close = None
    if args.backend == "ray":
        submit, close = ray_submit(
            spec.model, args.workers or 1, args.address, args.threads_per_worker or 1,
            args.gpus_per_worker or 0.0,
        )  # fmt: skip
    else:
        submit = local_submit(spec.model, args.threads)
    print(
        f"campaign: {spec.chains} starts x {spec.chains_per_start} chains, {spec.kernel}/"
        f"{spec.energy}, on {args.backend} -> {directory}",
        file=sys.stderr,
    )
    try:
        table = run_campaign(spec, directory, submit, resume=bool(args.resume))
    finally:
        if close is not None:
            close()
    columns = ["job", "draws", "mean_energy", "r_hat_energy", "distinct_designs", "top_design"]
    print("\ncampaign (campaign.csv has every column):")
    for row in table:
        print("  " + "  ".join(f"{c}={row.get(c, '')}" for c in columns))
    return 0


def sample_sharded(args: argparse.Namespace, spec: RunSpec, directory: str) -> int:
    """A run split into shards: in turn here (``--backend local``) or on Ray actors."""
    from pyro_mlm.cli.result import print_result
    from pyro_mlm.run.shards import local_backend, run_sharded

    if args.backend == "ray":
        from pyro_mlm.run.ray_backend import ray_backend

        factory, call, close = ray_backend(
            args.address, args.threads_per_worker or 1, args.gpus_per_worker or 0.0
        )
    else:
        (factory, call), close = local_backend(args.threads_per_worker or 1), (lambda: None)
    print(
        f"{spec.model}: {spec.kernel}/{spec.energy}, {spec.chains} chains in {spec.shards} "
        f"shards on {args.backend}, {spec.warmup} warm-up + {spec.samples} sweeps -> {directory}",
        file=sys.stderr,
    )
    try:
        result = run_sharded(
            spec, directory, factory, call, resume=bool(args.resume), progress=not args.no_progress
        )
    finally:
        close()
    print_result(result, spec, directory, top=args.top)
    return 0 if result.completed else 130
