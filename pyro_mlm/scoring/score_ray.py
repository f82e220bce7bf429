"""Scoring at scale: ``pyro-mlm score --backend ray --out scores.csv``.

The sequences become a Ray Dataset; a pool of model actors (``map_batches`` with a
callable class, one model copy and ``threads`` torch threads each) scores them with
:func:`pyro_mlm.scoring.score.score_sequences`, the same code as local scoring, so the rows are
equal. Rows reach the output CSV in input order as batches finish, each line flushed; a
re-run with the same ``--out`` reads the rows already written (a torn last line from a
kill is dropped) and scores only the rest, so no row is written twice.

The file records what wrote it: ``<out>.json`` beside it holds the model and the
energies, and every row holds its input record's index, name and sequence. A re-run
whose model, energies or input do not match, and a damaged row or header, are one
``ValueError`` naming the file (and line) and saying what to do: rows of another run
are never mixed in, and a damaged row never counts as done. Two scorers on one file are
kept apart by :mod:`pyro_mlm.run.claim`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

# the region scored (score --free): {"free": spec, "numbering": scheme}, or None for all
Region = dict[str, str] | None


class ScoreBatch:
    """A model actor for ``map_batches``: one batch of sequences -> their energies."""

    def __init__(
        self, model: str, kinds: Sequence[str], threads: int = 1, region: Region = None
    ) -> None:
        from pyro_mlm.models.load import load_worker_model

        self.mlm = load_worker_model(model, "cpu", threads)
        self.kinds = list(kinds)
        self.region = region

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One chunk (a row holding its indices and sequences) -> one row per sequence."""
        from pyro_mlm.scoring.score import score_sequences

        indices = [int(i) for i in batch["indices"][0]]
        texts = [str(t) for t in batch["sequences"][0]]
        rows = score_sequences(self.mlm, texts, self.kinds, progress=False, region=self.region)
        out: dict[str, Any] = {"index": indices, "name": [str(n) for n in batch["names"][0]]}
        for key in rows[0]:
            out[key] = [r[key] for r in rows]
        return out


def chunks(todo: Sequence[int], size: int) -> list[list[int]]:
    """The indices still to score, in order, in chunks of ``size``: local and Ray scoring
    send the same chunks to the model, so their floats agree bit for bit."""
    return [list(todo[k : k + size]) for k in range(0, len(todo), size)]


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
    with open(path, encoding="utf-8", newline="") as handle:
        text = handle.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    lines = text.splitlines()
    if not lines:
        return set()
    header = next(csv.reader([lines[0]]))
    if header != columns:
        raise ValueError(
            f"{path} line 1: the header is {','.join(header)!r}, expected "
            f"{','.join(columns)!r}; the file is damaged or another tool's: use another --out"
        )
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


def score_to_csv_ray(
    model: str,
    records: Sequence[tuple[str, str]],
    kinds: Sequence[str],
    path: str,
    *,
    workers: int = 1,
    threads: int = 1,
    batch_size: int = 64,
    address: str | None = None,
    region: Region = None,
) -> int:
    """Score ``texts`` into ``path`` on Ray, skipping indices already there; returns the
    number of rows written now."""
    from pyro_mlm.run.ray_backend import end_session, import_ray, ray_session

    import_ray()  # before anything: a clear message when Ray is missing
    done = open_score_file(path, model, kinds, records, region)
    todo = [
        {
            "indices": chunk,
            "sequences": [records[i][1] for i in chunk],
            "names": [records[i][0] for i in chunk],
        }
        for chunk in chunks([i for i in range(len(records)) if i not in done], batch_size)
    ]
    if not todo:
        return 0
    ray, started = ray_session(address)
    try:
        with warnings.catch_warnings():  # Ray Data's own deprecation notices, not ours
            warnings.simplefilter("ignore", DeprecationWarning)
            return _score(ray, todo, model, kinds, path, workers, threads, region)
    finally:
        if started:
            end_session(ray)


def _score(
    ray: Any,
    todo: list[dict[str, Any]],
    model: str,
    kinds: Sequence[str],
    path: str,
    workers: int,
    threads: int,
    region: Region = None,
) -> int:
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    from pyro_mlm.run.ray_backend import model_path

    path_model = model_path(model)
    dataset = ray.data.from_items(todo).map_batches(
        ScoreBatch,
        fn_constructor_args=(path_model, list(kinds), threads, region),
        batch_size=1,  # one chunk per call
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=threads,
    )
    written = 0
    for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
        rows = batch.to_dict(orient="records")
        append_rows(path, rows)
        written += len(rows)
    return written


def score_to_csv_local(
    mlm: Any,
    records: Sequence[tuple[str, str]],
    kinds: Sequence[str],
    path: str,
    *,
    batch_size: int = 64,
    progress: bool = True,
    model: str | None = None,
    region: Region = None,
) -> int:
    """The same output file written in this process (the reference for Ray), resumable."""
    from pyro_mlm.scoring.score import score_sequences

    done = open_score_file(path, model or mlm.name, kinds, records, region)
    texts = [sequence for _, sequence in records]
    written = 0
    for chunk in chunks([i for i in range(len(texts)) if i not in done], batch_size):
        part = [texts[i] for i in chunk]
        rows = score_sequences(mlm, part, kinds, progress=False, region=region)
        append_rows(
            path,
            [{"index": i, "name": records[i][0], **r} for i, r in zip(chunk, rows, strict=True)],
        )
        written += len(rows)
        if progress:
            print(f"scored {len(done) + written}/{len(texts)}", file=sys.stderr, flush=True)
    return written
