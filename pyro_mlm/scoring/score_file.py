"""The score file of ``pyro-mlm score --out``: its columns, the record beside it
(``<out>.json``: the model and the energies), and the strict read-back of the rows already
written, so that a re-run scores only the rest and never mixes in rows of another run or a
damaged row (one ``ValueError`` naming the file and line, and what to do)."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from typing import Any

# the region scored (score --free): {"free": spec, "numbering": scheme}, or None for all
Region = dict[str, str] | None


def record_path(path: str) -> str:
    """Where the record of what wrote ``path`` lives: ``<path>.json``."""
    return path + ".json"


def columns_of(kinds: Sequence[str]) -> list[str]:
    """The header of a score file for ``kinds``."""
    energies = [f"energy_{k}" for k in kinds] + (["norm_per_position"] if "norm" in kinds else [])
    return ["index", "name", "sequence", "positions", *energies]


def open_score_file(
    path: str,
    model: str,
    kinds: Sequence[str],
    records: Sequence[tuple[str, str]],
    region: Region = None,
) -> set[int]:
    """Check ``path`` against this run and return the indices already scored.

    A new (or empty) file gets its record; an existing one must have been written for the
    same model and energies, and each row must be intact and hold the name and sequence
    of the input record at its index.
    """
    columns = columns_of(kinds)
    from pyro_mlm.models.fingerprint import fingerprint

    meta: dict[str, Any] = {
        "model": _model_id(model),
        "weights": fingerprint(model),  # the content: a directory's files may change
        "energies": list(kinds),
        "region": region,  # score --free: the energies cover that region only
        "columns": columns,
    }
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        from pyro_mlm.run.store import write_atomic

        write_atomic(record_path(path), (json.dumps(meta, indent=2) + "\n").encode())
        return set()
    saved = _read_record(path)
    clash = [k for k in ("model", "energies", "region") if saved.get(k) != meta[k]]
    if "weights" in saved and saved["weights"] != meta["weights"]:  # older records lack it
        clash.append("weights")
    if clash:
        said = ", ".join(f"{k} {saved.get(k)!r} (now {meta[k]!r})" for k in clash)
        raise ValueError(
            f"{path} was written by another scoring run: {said}; use another --out, or "
            "re-run with the same --model (and the same weights in it), --energy and --free"
        )
    return _read_rows(path, columns, records)


def _model_id(model: str) -> str:
    return os.path.abspath(model) if os.path.isdir(model) else model


def _read_record(path: str) -> dict[str, Any]:
    where = record_path(path)
    try:
        with open(where, encoding="utf-8") as handle:
            saved = json.load(handle)
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        raise ValueError(
            f"{path} holds rows but no record of what wrote them ({where} is missing): it "
            "was not written by pyro-mlm score, or the record was removed; use another --out"
        ) from None
    except ValueError as err:
        raise ValueError(
            f"{where} is damaged ({err}); it records what wrote {path}: restore it, or use "
            "another --out"
        ) from err
    return saved


def _read_rows(path: str, columns: list[str], records: Sequence[tuple[str, str]]) -> set[int]:
    """Indices of the intact rows; a torn last line (a kill mid-write) is cut off."""
    from pyro_mlm.run.store import csv_lines

    lines = csv_lines(path, columns)
    if not lines:
        return set()
    done: set[int] = set()
    for number, line in enumerate(lines[1:], 2):
        _check_row(path, number, line, columns, records, done)
    return done


def _check_row(
    path: str,
    number: int,
    line: str,
    columns: list[str],
    records: Sequence[tuple[str, str]],
    done: set[int],
) -> None:
    def damaged(why: str) -> ValueError:
        return ValueError(
            f"{path} line {number}: {why}; delete that line (its sequence is scored again on "
            "the next run) or use another --out"
        )

    cells = next(csv.reader([line]), [])
    if len(cells) != len(columns):
        raise damaged(f"{len(cells)} fields, expected {len(columns)}")
    row = dict(zip(columns, cells, strict=True))
    if not row["index"].isdecimal():
        raise damaged(f"the index {row['index']!r} is not a row number")
    index = int(row["index"])
    if index >= len(records):
        raise ValueError(
            f"{path} line {number}: row {index}, but the input has {len(records)} sequences: "
            "the file was written for another input; use another --out"
        )
    name, sequence = records[index]
    if row["sequence"] != sequence or row["name"] != name:
        raise ValueError(
            f"{path} line {number}: row {index} holds {row['name']!r}, another record than "
            f"the input's {name!r} at that index: the file was written for another input; "
            "use another --out"
        )
    if index in done:
        raise damaged(f"row {index} appears twice")
    for key in columns[3:]:
        try:
            value = float(row[key])
        except ValueError:
            value = float("nan")
        if not math.isfinite(value) or (key == "positions" and not row[key].isdecimal()):
            raise damaged(f"{key} {row[key]!r} is not a number")
    done.add(index)


def append_rows(path: str, rows: list[dict[str, Any]]) -> None:
    """Append rows to the output CSV (header first if new), flushed."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="", encoding="utf-8") as handle:
        out = csv.DictWriter(handle, fieldnames=list(rows[0]))
        if new:
            out.writeheader()
        out.writerows(rows)
        handle.flush()
