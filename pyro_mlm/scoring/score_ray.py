"""Scoring at scale: ``pyro-mlm score --backend ray --out scores.csv`` (and the same file
written locally).

The sequences become a Ray Dataset; a pool of model actors (``map_batches`` with a
callable class, one model copy and ``threads`` torch threads each) scores them with
:func:`pyro_mlm.scoring.score.score_sequences`, the same code as local scoring, so the rows are
equal. Rows reach the output CSV in input order as batches finish, each line flushed; a
re-run with the same ``--out`` reads the rows already written (a torn last line from a
kill is dropped) and scores only the rest, so no row is written twice.

The file records what wrote it (:mod:`pyro_mlm.scoring.score_file`: ``<out>.json`` beside
it holds the model and the energies, every row its input record's index, name and sequence;
a re-run that does not match, or a damaged row, is one ``ValueError``). Two scorers on one
file are kept apart by :mod:`pyro_mlm.run.claim`.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Any

from pyro_mlm.scoring.score_file import Region, append_rows, open_score_file


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
