"""The artifact registry: every file of a run directory, what it holds, and what writes it.

One :class:`Artifact` per file in :data:`ARTIFACTS`. The run loop writes the first three
as it goes (``run.json``, ``samples.jsonl``, ``checkpoint.pt``); the rest are the report,
rebuilt from ``samples.jsonl`` at the end of a run (and when it is interrupted) by each
artifact's ``write`` over one :class:`Report`. Everything that lists the files reads them
from here: :func:`report_files`, the command's "wrote DIR/: ..." line, the check that an
output directory holds no other run, and the README's table (:func:`markdown_table`; a test
keeps the two equal). Adding an output file is one writer and one line below.

This module imports nothing heavy: the writers import what they draw with when they run.

>>> [a.name for a in ARTIFACTS][:3]
['samples.jsonl', 'checkpoint.pt', 'posterior.nc']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SPEC_FILE, SAMPLES_FILE, CHECKPOINT_FILE = "run.json", "samples.jsonl", "checkpoint.pt"


@dataclass
class Report:
    """What the report's writers read: the run's draws and what was computed from them.

    ``data`` holds the per-draw arrays (:func:`pyro_mlm.run.store.read_draws`), ``idata``
    their InferenceData, ``table`` the diagnostics table, ``designs`` the ranked designs,
    ``marginals`` ``(numbers, letters, freq, start_text)``, ``labels`` the free positions'
    labels, ``diversity`` the diversity figures.
    """

    directory: str
    warmup: int
    data: dict[str, Any]
    idata: Any
    table: Any
    designs: list[Any]
    marginals: tuple[Any, Any, Any, Any]
    labels: dict[str, Any] | None
    diversity: dict[str, float] = field(default_factory=dict)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    @property
    def draws(self) -> int:
        return int(self.data["energy"].shape[1])


@dataclass(frozen=True)
class Artifact:
    """A file of a run directory: its name, what it holds (the README's words) and its
    writer (``None`` for the files the run loop writes as it goes)."""

    name: str
    what: str
    write: Callable[[Report], None] | None = None


def _posterior(report: Report) -> None:
    from pyro_mlm.report.arviz_compat import to_netcdf

    to_netcdf(report.idata, report.path("posterior.nc"))


def _summary(report: Report) -> None:
    report.table.to_csv(report.path("summary.csv"))


def _diversity(report: Report) -> None:
    with open(report.path("diversity.csv"), "w", encoding="utf-8") as out:
        out.write("quantity,value\n")
        out.writelines(f"{name},{value:.6g}\n" for name, value in report.diversity.items())


def _trace(report: Report) -> None:
    from pyro_mlm.report.plots import plot_energy_trace

    plot_energy_trace(report.idata, report.path("trace.png"), warmup=report.warmup)


def _rank(report: Report) -> None:
    from pyro_mlm.report.plots import plot_rank

    if report.draws >= 2:  # a rank plot needs two draws per chain
        plot_rank(report.idata, report.path("rank.png"))


def _designs_csv(report: Report) -> None:
    from pyro_mlm.report.designs import write_designs_csv
    from pyro_mlm.report.marginals import numbering_name

    write_designs_csv(report.designs, report.path("designs.csv"), numbering_name(report.labels))


def _designs_fasta(report: Report) -> None:
    from pyro_mlm.report.designs import write_designs_fasta

    write_designs_fasta(report.designs, report.path("designs.fasta"))


def _marginals(report: Report) -> None:
    from pyro_mlm.report.marginals import write_marginals

    numbers, letters, freq, start = report.marginals
    write_marginals(report.path("marginals.csv"), numbers, letters, freq, start, report.labels)


def _logo(report: Report) -> None:
    from pyro_mlm.report.marginals import plot_logo

    numbers, letters, freq, start = report.marginals
    if all(len(letter) == 1 for letter in letters):  # one character per token: a logo
        plot_logo(report.path("logo.png"), numbers, letters, freq, start, report.labels)


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact(
        SAMPLES_FILE,
        "one line per draw and chain: chain, draw, sequence, energy, Hamming distance to the "
        "first chain's start, fraction of the sweep's proposals accepted and novel, masked "
        "rows, every per-sweep statistic of the sampler, token ids; flushed every sweep",
    ),
    Artifact(
        CHECKPOINT_FILE,
        "chain state, counters and RNG state after the latest sweep (atomic), for `--resume`",
    ),
    Artifact(
        "posterior.nc",
        "the draws for ArviZ, netCDF-4 groups that both ArviZ lines read (`az.from_netcdf`: "
        "InferenceData on ArviZ 0.x, DataTree on 1.x; `az.summary`, `az.rhat`, `az.ess`, "
        "`az.plot_trace`, `az.plot_rank` work on it with their defaults and show a row and a "
        "panel per summary): posterior variables `energy`, `hamming` (and `length` under "
        "`--lengths`), per chain and draw; the token ids (int64) in the `sequences` group, "
        'which ArviZ\'s defaults skip (`idata["sequences"]["tokens"]`); the decoded `sequence` '
        "and the `free_region` text are coordinates over (chain, draw), so "
        "ArviZ does not compute on them; `constant_data.residue` numbers the `position` axis "
        "like `--free` (1-based over residues or words, 0 at special tokens); `sample_stats` "
        "holds every per-sweep statistic",
        _posterior,
    ),
    Artifact(
        "summary.csv",
        "the diagnostics table: mean, sd, 94% HDI, MCSE, bulk and tail ESS and R-hat of the "
        "energy and the Hamming distance (R-hat and ESS need at least 4 draws per chain; with "
        "fewer the command says so), ESS per 1000 rows and per minute; then, in the `mean` "
        "column, each per-sweep statistic under the progress line's name and value: "
        "`acceptance_rate`, `novel_rate`, the sampler's own (`swap_rate[0]`, "
        "`regen_acceptance` = accepted regenerations / regenerations, with "
        "`regenerations_per_sweep`)",
        _summary,
    ),
    Artifact(
        "diversity.csv",
        "distinct designs, mean pairwise Hamming distance, mean entropy per position",
        _diversity,
    ),
    Artifact("trace.png", "energy traces per chain, with the R-hat lines", _trace),
    Artifact("rank.png", "rank plots (flat = chains agree)", _rank),
    Artifact(
        "designs.csv",
        "the distinct sequences drawn after warm-up, most frequent first (energy breaks ties): "
        "free-region text (CDR by CDR with `--free cdrs`), the mutations against the start "
        "(`S105A;W107D`, in the run's numbering, which the column's name gives once: "
        "`mutations_imgt`, `mutations_kabat`, or `mutations_residue` for residue numbers), "
        "count, frequency (the posterior estimate) "
        "with a 95% interval (`frequency_low`, `frequency_high`: Wilson's interval with the "
        "draws replaced by the ESS of the design's indicator, `ess`; each chain counts as one "
        "draw where that ESS cannot be computed), first chain and draw that saw it, mean "
        "energy, Hamming distance to the start, each soft expert's energy",
        _designs_csv,
    ),
    Artifact("designs.fasta", "the same designs as FASTA, with their statistics", _designs_fasta),
    Artifact(
        "marginals.csv",
        "per free position: its residue number, label and region in the run's numbering "
        "(IMGT/Kabat through ANARCI for numbered regions; the label's column is `label_imgt`, "
        "`label_kabat` or `label_residue`), the start's residue, entropy (bits) "
        "and each token's frequency",
        _marginals,
    ),
    Artifact(
        "logo.png",
        "a sequence logo of the marginals with the start's residues outlined and written "
        "under the axis with the labels, CDR boundaries marked (one-character tokens only)",
        _logo,
    ),
    Artifact(
        SPEC_FILE, "the run's settings, and what `--free` resolved to and how (`resolved_free`)"
    ),
)


def report_files() -> tuple[str, ...]:
    """The report's files (those with a writer), in registry order."""
    return tuple(a.name for a in ARTIFACTS if a.write is not None)


def run_files() -> tuple[str, ...]:
    """Every file a run directory may hold."""
    return tuple(a.name for a in ARTIFACTS)


def write_all(report: Report) -> None:
    """Every report file, in registry order."""
    for artifact in ARTIFACTS:
        if artifact.write is not None:
            artifact.write(report)


def markdown_table() -> str:
    """The README's table of the run directory's files."""
    lines = ["| file | what |", "|---|---|"]
    lines += [f"| `{a.name}` | {a.what} |" for a in ARTIFACTS]
    return "\n".join(lines)
