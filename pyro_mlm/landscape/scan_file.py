"""The scan directory of ``pyro-mlm scan --out DIR``: what wrote it, the rows done so far,
and the finished table.

- ``scan.json``: the model (and its weights' fingerprint), the energy, ``--energy-over``,
  ``--free``, the numbering, the experts and the records scanned: a re-run on the same
  directory must match it (one ``ValueError`` naming what differs), and then scans only the
  positions not yet written.
- ``scan.partial.csv``: one block of rows per (record, position), appended and flushed as
  each position finishes. Read back strictly: a torn last line or a last block cut short (a
  kill mid-write) is cut off and scanned again; any other damage is one ``ValueError``
  naming the file and line. Floats are written with ``repr`` so they read back bit for bit,
  and a resumed scan's ``scan.csv`` equals an uninterrupted one.
- ``scan.csv``: every row with its ``rank`` (per record), written at the end.

The directory is claimed for the process's life (:mod:`pyro_mlm.run.claim`), like a run's.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from typing import Any

RECORD, PARTIAL, TABLE = "scan.json", "scan.partial.csv", "scan.csv"
SITE = ["name", "position", "label", "region", "wild_type", "mutant", "mutation"]
NUMBERS = ["delta_energy", "delta_mlm", "masked_marginal"]


def columns_of(experts: Sequence[str]) -> list[str]:
    """The header of ``scan.partial.csv`` for the experts' columns (``scan.csv`` adds rank)."""
    return [*SITE, *NUMBERS, *experts, "forbidden"]


def open_scan(directory: str, meta: dict[str, Any], sizes: dict[str, int]) -> set[tuple[str, int]]:
    """Check ``directory`` against this scan and return the (record, position) pairs done.

    ``meta`` is this scan's record (written when the directory is new); ``sizes`` maps each
    record's name to its mutants per position, to tell a finished block from a cut one.
    """
    record = os.path.join(directory, RECORD)
    partial = os.path.join(directory, PARTIAL)
    if not os.path.exists(record):
        if os.path.exists(partial) and os.path.getsize(partial):
            raise ValueError(
                f"{partial} holds rows but {record} is missing: the directory was not written "
                "by pyro-mlm scan, or the record was removed; use another --out"
            )
        from pyro_mlm.run.store import write_atomic

        write_atomic(record, (json.dumps(meta, indent=2) + "\n").encode())
        return set()
    try:
        with open(record, encoding="utf-8") as handle:
            saved = json.load(handle)
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        raise ValueError(f"{record} is damaged ({err}): restore it, or use another --out") from err
    clash = [k for k in meta if saved.get(k) != meta[k]]
    if clash:
        said = "; ".join(f"{k} {_short(saved.get(k))} (now {_short(meta[k])})" for k in clash)
        raise ValueError(
            f"{directory} holds a scan with other settings: {said}; use another --out, or "
            "re-run with the settings it was started with"
        )
    if not os.path.exists(partial):
        return set()
    return read_partial(partial, meta["columns"], sizes)


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def read_partial(path: str, columns: list[str], sizes: dict[str, int]) -> set[tuple[str, int]]:
    """The (record, position) blocks of ``path`` that are whole; a torn tail is cut off."""
    from pyro_mlm.run.store import csv_lines

    lines = csv_lines(path, columns)
    if not lines:
        return set()
    blocks: list[tuple[tuple[str, int], int, int]] = []  # (key, first line, rows)
    for number, line in enumerate(lines[1:], 2):
        key = _check_row(path, number, line, columns, sizes)
        if blocks and blocks[-1][0] == key:
            blocks[-1] = (key, blocks[-1][1], blocks[-1][2] + 1)
        else:
            if any(b[0] == key for b in blocks):
                raise _damaged(path, number, f"position {key[1]} of {key[0]!r} appears twice")
            blocks.append((key, number, 1))
    for k, (key, first, count) in enumerate(blocks):
        if count != sizes[key[0]]:
            if k < len(blocks) - 1:
                raise _damaged(
                    path, first, f"position {key[1]} of {key[0]!r} has {count} of its "
                    f"{sizes[key[0]]} mutants",
                )  # fmt: skip
            with open(path, "w", encoding="utf-8", newline="") as handle:
                handle.write("".join(lines[: first - 1]))  # the last block, cut short by a kill
            blocks.pop()
    return {key for key, _, _ in blocks}


def _damaged(path: str, number: int, why: str) -> ValueError:
    return ValueError(
        f"{path} line {number}: {why}; delete that position's lines (they are scanned again "
        "on the next run) or use another --out"
    )


def _check_row(
    path: str, number: int, line: str, columns: list[str], sizes: dict[str, int]
) -> tuple[str, int]:
    cells = next(csv.reader([line]), [])
    if len(cells) != len(columns):
        raise _damaged(path, number, f"{len(cells)} fields, expected {len(columns)}")
    row = dict(zip(columns, cells, strict=True))
    if row["name"] not in sizes:
        raise ValueError(
            f"{path} line {number}: record {row['name']!r} is not in this scan's input: the "
            "directory was written for another input; use another --out"
        )
    if not row["position"].isdecimal():
        raise _damaged(path, number, f"the position {row['position']!r} is not a number")
    for key in columns[len(SITE) : -1]:
        try:
            value = float(row[key])
        except ValueError:
            value = math.nan
        finite_only = key in ("delta_mlm", "masked_marginal")
        if math.isnan(value) or (finite_only and math.isinf(value)):
            raise _damaged(path, number, f"{key} {row[key]!r} is not a number")
    if row["forbidden"] not in ("True", "False"):
        raise _damaged(path, number, f"forbidden {row['forbidden']!r} is not True or False")
    return row["name"], int(row["position"])


def append_block(path: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """One position's rows appended in one write (header first if new), flushed."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        writer.writeheader()
    writer.writerows({k: _cell(row[k]) for k in columns} for row in rows)
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write(out.getvalue())
        handle.flush()


def _cell(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


def read_table(path: str, columns: list[str]) -> list[dict[str, Any]]:
    """The rows of ``scan.partial.csv`` (already checked), numbers as floats."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    numeric = columns[len(SITE) : -1]
    for row in rows:
        row["position"] = int(row["position"])
        row["forbidden"] = row["forbidden"] == "True"
        for key in numeric:
            row[key] = float(row[key])
    return rows


def write_table(path: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """``scan.csv``: the rows with ``rank``, atomically."""
    from pyro_mlm.run.store import write_atomic

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*columns, "rank"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(row[k]) for k in [*columns, "rank"]} for row in rows)
    write_atomic(path, out.getvalue().encode())
