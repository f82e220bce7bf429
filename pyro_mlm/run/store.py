"""The files of a run directory: reading them back strictly, writing them atomically.

A damaged file (a truncated checkpoint, a line edited by hand, a binary run.json) is a
:class:`DamagedRunError` naming the file (and the line) and saying what the user can
do, never a traceback and never a silently shortened run. The one damage that is
expected, a last line torn by ``kill -9``, is skipped.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from pyro_mlm.run.artifacts import SAMPLES_FILE
from pyro_mlm.run.records import FIELDS, padded_tokens, stat_arrays

# what a checkpoint holds: the sweep, the sampler state's fields, the generator's state,
# the starting tokens and the acceptance counts
CHECKPOINT_KEYS = ("sweep", "state", "generator", "initial_tokens", "counts")

_RESTORE = "restore it from a copy, or start a new run with another --out"


class DamagedRunError(ValueError):
    """A file of a run directory cannot be read back as the run wrote it."""


def iter_records(path: str, chains: int, fixed_length: bool = True) -> Iterator[dict[str, Any]]:
    """Draw records of ``samples.jsonl``, each checked; a torn last line is skipped.

    Raises :class:`DamagedRunError` naming the line for invalid JSON, a missing or
    mistyped field, a chain the run does not have, or (``fixed_length``, every run so far)
    token rows of another length.
    """
    if not os.path.exists(path):
        return
    length: int | None = None
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                return  # torn by a kill in the middle of a write: never saved as done
            record = _parse_line(path, number, raw)
            problem = _record_problem(record, chains, length if fixed_length else None)
            if problem:
                raise DamagedRunError(
                    f"{path} line {number}: {problem}; the file was changed or damaged: {_RESTORE}"
                )
            length = len(record["tokens"])
            yield record


def read_draws(path: str, chains: int, fixed_length: bool = True) -> dict[str, np.ndarray] | None:
    """Arrays ``[chain, draw, ...]`` from ``samples.jsonl`` (None when it has no draw).

    Each chain's draws must be numbered 0, 1, 2, ... with no gap or repeat; chains
    may differ in length by a sweep (a run stopped while writing), and the shortest
    sets the draws returned. Without ``fixed_length`` the draws' sequences may differ in
    length: ``tokens`` is padded with :data:`~pyro_mlm.run.records.PAD` to the longest, and
    ``length [chain, draw]`` holds each one's.
    """
    rows: dict[int, list[dict[str, Any]]] = {c: [] for c in range(chains)}
    for record in iter_records(path, chains, fixed_length):
        chain = rows[record["chain"]]
        if record["draw"] != len(chain):
            raise DamagedRunError(
                f"{path}: chain {record['chain']} has draw {record['draw']} where draw "
                f"{len(chain)} was expected (a line was removed, repeated or reordered): "
                f"{_RESTORE}"
            )
        chain.append(record)
    draws = min(len(r) for r in rows.values())
    if draws == 0:
        return None
    ordered = [r[:draws] for _, r in sorted(rows.items())]

    def field(name: str, dtype: Any = np.float64) -> np.ndarray:
        return np.array([[x[name] for x in chain] for chain in ordered], dtype=dtype)

    data = {
        "tokens": padded_tokens(ordered) if not fixed_length else field("tokens", np.int64),
        "sequence": field("sequence", object),
        "energy": field("energy"),
        "hamming": field("hamming"),
    }
    if not fixed_length:
        data["length"] = np.array([[len(x["tokens"]) for x in c] for c in ordered], np.int64)
    try:  # every per-sweep statistic the sampler recorded (run/records.py)
        data.update(stat_arrays(ordered))
    except ValueError as err:
        raise DamagedRunError(f"{path}: {err}: {_RESTORE}") from err
    return data


def truncate_draws(path: str, draws: int, chains: int) -> None:
    """Keep the first ``draws`` draws of every chain (drop lines past the checkpoint)."""
    kept = [r for r in iter_records(path, chains) if r["draw"] < draws]
    per_chain = [sum(1 for r in kept if r["chain"] == c) for c in range(chains)]
    if any(n != draws for n in per_chain):
        raise DamagedRunError(
            f"{path} holds {per_chain} draws per chain but the checkpoint is at {draws}; "
            "the run directory was changed by hand and cannot be resumed: start a new run "
            "with another --out"
        )
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept).encode())


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then an atomic rename over ``path``."""
    import torch

    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The checkpoint at ``path``; :class:`DamagedRunError` if it is unreadable or incomplete."""
    import torch

    if not os.path.exists(path):
        raise DamagedRunError(f"{path} does not exist: the directory holds no resumable run")
    samples = os.path.join(os.path.dirname(path), SAMPLES_FILE)
    advice = (
        f"the draws in {samples} up to the last saved sweep are intact; start a new run "
        "with another --out, or restore the file from a copy"
    )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # EOFError, UnpicklingError, RuntimeError, OSError, ...
        reason = " ".join(str(err).split()).split(". ")[0][:120] or type(err).__name__
        raise DamagedRunError(f"{path} is damaged ({reason}); {advice}") from err
    missing = [k for k in required if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise DamagedRunError(f"{path} is damaged (it lacks {missing}); {advice}")
    return dict(saved)


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary file, fsync it, and rename it over ``path``."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------- internals
def csv_lines(path: str, columns: list[str]) -> list[str]:
    """The lines of a CSV this package appends to (``score --out``, a scan's partial file),
    with their line ends: a torn last line (a kill mid-write) is cut off the file, and a
    header other than ``columns`` is one ``ValueError`` naming the file."""
    import csv

    with open(path, encoding="utf-8", newline="") as handle:
        text = handle.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    lines = text.splitlines(keepends=True)
    if lines and (header := next(csv.reader([lines[0]]))) != columns:
        raise ValueError(
            f"{path} line 1: the header is {','.join(header)!r}, expected "
            f"{','.join(columns)!r}; the file is damaged or another tool's: use another --out"
        )
    return lines


def _parse_line(path: str, number: int, raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedRunError(
            f"{path} line {number} is not a JSON draw record ({err}); the file was "
            f"changed or damaged: {_RESTORE}"
        ) from err


def _record_problem(record: Any, chains: int, length: int | None) -> str:
    """What is wrong with one parsed line, or '' when it is a valid draw record."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    missing = [k for k in FIELDS if k not in record]
    if missing:
        return f"the record lacks {missing}"
    for key, types in FIELDS.items():
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, types):
            return f"{key!r} is {value!r}, not a {' or '.join(t.__name__ for t in types)}"
        if isinstance(value, float) and math.isnan(value):
            return f"{key!r} is NaN"
    if not 0 <= record["chain"] < chains:
        return f"chain {record['chain']} does not exist in this run of {chains} chains"
    if record["draw"] < 0:
        return f"draw {record['draw']} is negative"
    tokens = record["tokens"]
    if not tokens or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        return "'tokens' must be a non-empty list of integer ids"
    if length is not None and len(tokens) != length:
        return f"'tokens' has {len(tokens)} ids where the earlier lines have {length}"
    return ""
