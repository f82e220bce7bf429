"""The run directory a command starts or continues: checked before the weights load."""

from __future__ import annotations

import os

from pyro_mlm.cli.inputs import UsageError
from pyro_mlm.run.artifacts import CHECKPOINT_FILE, SAMPLES_FILE, SPEC_FILE, run_files
from pyro_mlm.run.spec import RunSpec


def check_resumable(directory: str, spec: RunSpec) -> int:
    """Read the checkpoint and every draw line once, so damage shows before the weights
    load; the draws per chain written."""
    from pyro_mlm.run.store import CHECKPOINT_KEYS, load_checkpoint, read_draws

    load_checkpoint(os.path.join(directory, CHECKPOINT_FILE), CHECKPOINT_KEYS)
    draws = read_draws(os.path.join(directory, SAMPLES_FILE), spec.chains, not spec.lengths)
    return 0 if draws is None else int(draws["energy"].shape[1])


def check_new_directory(directory: str) -> None:
    """Refuse an ``--out`` that holds a run or another run's files, is a file, or cannot be
    created, in one line each."""
    ours = run_files()
    if os.path.isfile(os.path.join(directory, SPEC_FILE)):
        raise UsageError(
            f"output directory {directory} already holds a run; continue it with "
            f"--resume {directory}, or choose another --out"
        )
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"--out {directory} is a file, not a directory")
    if os.path.isdir(directory) and any(os.path.exists(os.path.join(directory, f)) for f in ours):
        raise UsageError(
            f"output directory {directory} holds files of another run; choose another --out"
        )
    parent = os.path.dirname(os.path.abspath(directory))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UsageError(f"--out {directory}: cannot create it, {parent} is not writable")
