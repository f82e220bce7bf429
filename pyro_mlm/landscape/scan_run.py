"""A scan into a directory: every (record, position) block once, locally or on Ray, resumable.

The unit of work is one position of one record: its :math:`K - 1` mutants in one batch
(:func:`pyro_mlm.landscape.mutants.mutants_at`), appended to ``scan.partial.csv`` as it
finishes. Locally and on Ray a block is computed by the same :class:`Scanner` from the same
batch, so the numbers agree; a re-run on the same directory scans only the blocks missing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyro_mlm.landscape.scan_file import PARTIAL, TABLE, columns_of

if TYPE_CHECKING:
    from pyro_mlm.models.mlm import MaskedLM
    from pyro_mlm.models.vocabulary import Vocabulary
    from pyro_mlm.run.prepare import Prepared
    from pyro_mlm.run.spec import RunSpec


@dataclass(frozen=True)
class ScanSpec:
    """What a scan computes: the model, the records ``(name, sequence)``, the region and the
    target, read as ``sample`` reads them (one :class:`~pyro_mlm.run.spec.RunSpec` each)."""

    model: str
    records: tuple[tuple[str, str], ...]
    free: str = "all"
    energy: str = "norm"
    energy_over: str = "free"
    numbering: str = "imgt"
    experts: tuple[str, ...] = ()

    def run_spec(self, sequence: str) -> RunSpec:
        """The one-chain run whose start and target this record's scan reads."""
        from pyro_mlm.run.spec import RunSpec

        return RunSpec(
            model=self.model, sequences=(sequence,), free=self.free, energy=self.energy,
            energy_over=self.energy_over, numbering=self.numbering, experts=self.experts,
        )  # fmt: skip


@dataclass(frozen=True)
class Site:
    """One scanned position: record ``name``, token index ``t``, residue ``position``,
    ``label`` and ``region``, and the masked rows each of its mutants costs (:math:`|S| - 1`)."""

    record: int
    name: str
    t: int
    position: int
    label: str
    region: str
    rows: int


def plan(spec: ScanSpec, vocab: Vocabulary) -> tuple[list[Site], list[Prepared]]:
    """Every (record, position) of the scan and each record's prepared start, each record
    checked as ``sample`` checks a start (encoding, ``--free``, the experts that need no
    weights, a forbidden wild type) before any weights load: the command's one preparation,
    handed to its :class:`Scanner`."""
    from pyro_mlm.landscape.labels import site_labels
    from pyro_mlm.landscape.mutants import check_scannable
    from pyro_mlm.run.prepare import prepare

    sites, prepared = [], []
    for index, (name, sequence) in enumerate(spec.records):
        try:
            prepared.append(prepare(spec.run_spec(sequence), vocab, _flag))
            tokens, free = prepared[-1]
            check_scannable(vocab, tokens[0], free[0])
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err
        labels = site_labels(spec.free, tokens[0], free[0], vocab, spec.numbering)
        positions = free[0].nonzero().flatten().tolist()
        scored = free[0] if spec.energy_over == "free" else ~vocab.special_mask(tokens[0]) | free[0]
        for k, t in enumerate(positions):
            sites.append(
                Site(index, name, int(t), labels["positions"][k], labels["labels"][k],
                     labels["regions"][k], int(scored.sum()) - 1)
            )  # fmt: skip
    return sites, prepared


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class Scanner:
    """One model's scans: per record, the target (as ``sample`` builds it) and the wild
    type's evaluation, made once; :meth:`rows` computes one block. ``prepared`` holds the
    records' starts from :func:`plan` (a Ray actor, in its own process, prepares them
    itself)."""

    def __init__(
        self, spec: ScanSpec, mlm: MaskedLM, prepared: Sequence[Prepared] | None = None
    ) -> None:
        self.spec, self.mlm, self.prepared = spec, mlm, prepared
        self._built: dict[int, tuple[Any, Any]] = {}

    def target_and_wild(self, record: int) -> tuple[Any, Any]:
        if record not in self._built:
            from pyro_mlm.energy import MLMEnergy
            from pyro_mlm.landscape.mutants import wild_type
            from pyro_mlm.run.prepare import build_experts, prepare
            from pyro_mlm.target import Target

            run = self.spec.run_spec(self.spec.records[record][1])
            start = prepare(run, self.mlm) if self.prepared is None else self.prepared[record]
            tokens, free = (x.to(self.mlm.device) for x in start)
            experts = build_experts(run, self.mlm, tokens, free, weights=True)
            target = Target(MLMEnergy(self.mlm, run.energy), experts, over=run.energy_over)  # type: ignore[arg-type]
            self._built[record] = (target, wild_type(target, tokens[0], free[0]))
        return self._built[record]

    def columns(self) -> list[str]:
        from pyro_mlm.landscape.mutants import expert_columns

        target, _ = self.target_and_wild(0)
        return columns_of(expert_columns(target))

    def rows(self, site: Site) -> list[dict[str, Any]]:
        import torch

        from pyro_mlm.landscape.mutants import mutants_at, position_rows

        target, wild = self.target_and_wild(site.record)
        with torch.no_grad():
            found = mutants_at(target, wild, site.t)
        labels = {"positions": site.position, "labels": site.label, "regions": site.region}
        return [
            {"name": site.name, **r} for r in position_rows(self.mlm, wild, site.t, labels, found)
        ]


def meta_of(spec: ScanSpec, columns: list[str]) -> dict[str, Any]:
    """``scan.json``: what the scan computes (a re-run on the directory must match it)."""
    from pyro_mlm.models.fingerprint import fingerprint

    model = os.path.abspath(spec.model) if os.path.isdir(spec.model) else spec.model
    return {
        "model": model, "weights": fingerprint(spec.model), "energy": spec.energy,
        "energy_over": spec.energy_over, "free": spec.free, "numbering": spec.numbering,
        "experts": list(spec.experts), "records": [list(r) for r in spec.records],
        "columns": columns,
    }  # fmt: skip


def blocks_local(scanner: Scanner, todo: list[Site]) -> Iterator[list[dict[str, Any]]]:
    """The blocks of ``todo`` computed in this process, in order."""
    for site in todo:
        yield scanner.rows(site)


def estimate_line(rows: int, seconds: float, left_rows: int, workers: int = 1) -> str:
    """``about 12 s for the rest at 253 rows/s`` from the first block's measured rate."""
    rate = rows / max(seconds, 1e-9)
    left = left_rows / (rate * workers)
    when = f"{left:.0f} s" if left < 120 else f"{left / 60:.1f} min"
    per = f" per worker x {workers}" if workers > 1 else ""
    return (
        f"scan: first position {seconds:.2f} s, {rate:.0f} masked rows/s{per}: about {when} "
        "for the rest"
    )


def run_scan(
    spec: ScanSpec,
    directory: str,
    sites: list[Site],
    columns: list[str],
    blocks: Callable[[list[Site]], Iterator[list[dict[str, Any]]]],
    mutants: int,
    *,
    progress: bool = True,
    workers: int = 1,
) -> tuple[int, float]:
    """Scan the blocks of ``sites`` not yet in ``directory`` with ``blocks`` (``mutants`` per
    position); returns the blocks scanned now and
    their seconds."""
    from pyro_mlm.landscape.scan_file import append_block, open_scan
    from pyro_mlm.run.progress import Progress

    sizes = {name: mutants for name, _ in spec.records}
    done = open_scan(directory, meta_of(spec, columns), sizes)
    todo = [s for s in sites if (s.name, s.position) not in done]
    if not todo:
        return 0, 0.0
    per_block = {s: s.rows * mutants for s in todo}
    bar = Progress(
        len(sites), len(sites) - len(todo), enabled=progress, desc="scan", unit="position"
    )
    began = time.perf_counter()
    path = os.path.join(directory, PARTIAL)
    for k, (site, rows) in enumerate(zip(todo, blocks(todo), strict=False)):
        append_block(path, columns, rows)
        bar.update(1)
        if k == 0 and progress and len(todo) > 1:
            left = sum(per_block[s] for s in todo[1:])
            print(estimate_line(per_block[site], time.perf_counter() - began, left, workers),
                  file=sys.stderr, flush=True)  # fmt: skip
    bar.close()
    return len(todo), time.perf_counter() - began


def finish_scan(
    directory: str,
    spec: ScanSpec,
    columns: list[str],
    tokens: list[str],
    top: int,
    plot: bool = True,
) -> tuple[str, list[dict[str, Any]]]:
    """``scan.csv`` (ranked per record) and the heatmap(s) from the finished partial file;
    returns the printed report (the best ``top`` per record and the agreement with the
    masked-marginal heuristic) and the ranked rows."""
    from pyro_mlm.landscape.compare import report
    from pyro_mlm.landscape.heatmap import plot_landscape
    from pyro_mlm.landscape.mutants import rank_rows
    from pyro_mlm.landscape.scan_file import read_table, write_table

    rows = read_table(os.path.join(directory, PARTIAL), columns)
    by_record: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in spec.records}
    for row in rows:
        by_record[row["name"]].append(row)
    ranked, lines = [], []
    experts = [c for c in columns if c.startswith("expert_")]
    for k, (name, found) in enumerate(by_record.items()):
        found = rank_rows(sorted(found, key=lambda r: r["position"]))
        ranked.extend(found)
        lines.append(report(name, found, experts, top))
        if plot:
            path = os.path.join(directory, heatmap_name(k, name, len(by_record)))
            plot_landscape(found, tokens, path, title=f"{name}: {spec.model}, E_{spec.energy} "
                           f"over {spec.energy_over}, --free {spec.free}")  # fmt: skip
            lines.append(f"heatmap: {path}")
    write_table(os.path.join(directory, TABLE), ranked, columns)
    lines.append(f"table: {os.path.join(directory, TABLE)} ({len(ranked)} rows)")
    return "\n".join(lines), ranked


def heatmap_name(index: int, name: str, records: int, stem: str = "heatmap") -> str:
    """``heatmap.png`` for one record, ``heatmap-<k>-<name>.png`` for several (``stem``
    for the pairs' files)."""
    import re

    if records == 1:
        return f"{stem}.png"
    return f"{stem}-{index + 1}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:40]}.png"


def scan_pairs(
    directory: str, scanner: Scanner, sites: list[Site], ranked: list[dict[str, Any]], k: int
) -> str:
    """``--pairs K``: every pair of each record's ``k`` best single mutants, exactly
    (:mod:`pyro_mlm.landscape.pairs`), into ``pairs.csv`` and ``pairs.png``; returns the
    printed report."""
    import csv
    import io

    from pyro_mlm.landscape.pairs import best_singles, pair_mutants, pairs_report, plot_pairs
    from pyro_mlm.run.store import write_atomic

    records = scanner.spec.records
    lines, table = [], []
    for index, (name, _) in enumerate(records):
        target, wild = scanner.target_and_wild(index)
        t_of = {s.position: s.t for s in sites if s.record == index}
        singles = best_singles([r for r in ranked if r["name"] == name], k)
        pairs = pair_mutants(target, wild, singles, t_of)
        table += [{"name": name, **p} for p in pairs]
        lines.append(pairs_report(name, pairs))
        if pairs:
            path = os.path.join(directory, heatmap_name(index, name, len(records), "pairs"))
            lines.append(f"pairs heatmap: {plot_pairs(pairs, path, f'{name}: epistasis')}")
    if table:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(table[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in row.items()}
                         for row in table)  # fmt: skip
        write_atomic(os.path.join(directory, "pairs.csv"), out.getvalue().encode())
        lines.append(f"pairs: {os.path.join(directory, 'pairs.csv')} ({len(table)} rows)")
    return "\n".join(lines)
