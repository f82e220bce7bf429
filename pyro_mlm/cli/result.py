"""What a finished (or stopped) run prints: the summary, the verdict, routes, designs."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from pyro_mlm.run.artifacts import SAMPLES_FILE, report_files

if TYPE_CHECKING:
    from pyro_mlm.run.finish import RunResult
    from pyro_mlm.run.spec import RunSpec


# the fastest measured routes to convergence, from bench/README.md (mixing.py, energy.py)
ROUTES = {
    "antiberty": [
        "AntiBERTy costs about 10x the FLOPs per row of Sapiens-H and did not converge on its "
        "CDR-H3 in 4 H100-minutes with any sampler (bench/README.md); on 2 CPU cores expect "
        "hours",
        "a GPU (--device cuda): AntiBERTy scored 30,300 rows/s in bf16 on an H100, about "
        "1500x these CPUs' 20 rows/s",
        "--model sapiens-h (a 4-layer heavy-chain model): converges on the CDR-H3 with "
        "--kernel replica-exchange --replicas 4 --t-max 3 (R-hat 1.01 after 363k rows per chain)",
    ],
    "sapiens-h": [
        "a GPU (--device cuda): 16 chains of --kernel replica-exchange --replicas 4 --t-max 3 "
        "reached R-hat 1.01 / 1.01 on the CDR-H3 in 4 H100 minutes (bench/README.md)",
        "--kernel reference-tempering --replicas 3 had the best energy R-hat at equal rows on "
        "the CPU (1.01 against MH's 1.05 at 20k rows per chain; 1.07x MH's energy ESS per row, "
        "0.81x its Hamming ESS: bench/README.md)",
    ],
}
GENERIC_ROUTES = [
    "--workers N --backend ray spreads the chains over N processes (1.91x with 2 workers on "
    "2 cores, bench/README.md)",
]


def _print_plan(result: RunResult, spec: RunSpec, directory: str) -> None:
    """CONVERGED or NOT CONVERGED (nothing else), and the measured routes to convergence."""
    import numpy as np

    from pyro_mlm.report.diagnostics import converged, judged, plan

    table = result.summary
    names = judged(table)
    r_hats = np.asarray(table.loc[names, "r_hat"], dtype=float)
    ess = np.asarray(table.loc[names, "ess_bulk"], dtype=float)
    finite = bool(np.isfinite(r_hats).all() and np.isfinite(ess).all())
    worst = float(np.max(r_hats)) if finite else float("nan")
    least = float(np.min(ess)) if finite else float("nan")
    draws = result.draws * spec.chains
    if converged(table, draws=draws):
        least = min(least, float(draws))
        print(f"CONVERGED: max R-hat {worst:.4f} <= 1.01 and min bulk ESS {least:.0f} >= 400")
        return
    shown = ", ".join(
        f"{name} R-hat {r:.4f} ESS {e:.0f}" for name, r, e in zip(names, r_hats, ess, strict=True)
    )
    every = "both" if len(names) == 2 else f"all {len(names)}"
    print(f"NOT CONVERGED: {shown} (want R-hat <= 1.01 and bulk ESS >= 400 for {every})")
    if not finite:
        print(
            "  a NaN R-hat or ESS means a summary never changed within a chain (every "
            "proposal rejected, or a one-state target): the draws say nothing yet"
        )
    if result.sampling_seconds:  # over every written draw (the stop rule's warm-up too)
        per_sweep = result.sampling_seconds / (result.draws + result.burn_in)
        try:
            more, minutes = plan(table, result.draws, per_sweep, chains=spec.chains)
        except ValueError as err:
            print(f"  {err}")
        else:
            if spec.until_converged:  # the kept draws are 3/4 of the sweeps done
                more, minutes = int(np.ceil(more * 4 / 3)), minutes * 4 / 3
                then = f"--max-minutes {max(np.ceil(minutes * 1.5), 1):.0f}"
            else:
                then = f"--samples {spec.samples + more}"
            print(
                f"  at this run's measured rates ({per_sweep:.2f} s per sweep): about {more} "
                f"more sweeps, {minutes:.0f} min (a chain stuck in one mode makes it longer):\n"
                f"  pyro-mlm sample --resume {directory} {then}"
            )
    routes = [r for r in ROUTES.get(spec.model, []) + GENERIC_ROUTES if not _ran(r, spec)]
    if routes:
        print("  faster routes, as measured:\n" + "\n".join(f"  - {r}" for r in routes))


def _print_stop(result: RunResult, spec: RunSpec, directory: str) -> None:
    """Why a run under the stop rule or a budget ended, and what its checks cost."""
    if result.stopped == "converged":
        head = f"CONVERGED at the stop rule's check after {result.draws} kept draws per chain"
        print(f"stopped: {head}", end="")
    elif result.stopped == "budget":
        head = f"the --max-minutes budget ({spec.max_minutes:g} min) ran out"
        print(
            f"stopped: {head}; continue: pyro-mlm sample --resume {directory} (another "
            f"{spec.max_minutes:g} min; --max-minutes M to change it, 0 for none)",
            end="",
        )
    elif not spec.until_converged:
        return
    else:
        print("stopped: " + ("the --samples cap" if result.completed else "interrupted"), end="")
    if spec.until_converged:
        share = 100 * result.check_seconds / result.seconds if result.seconds else 0.0
        print(
            f" (checks: {result.check_seconds:.2f} s, {share:.1f}% of the session; the first "
            f"{result.burn_in} written draws per chain were warm-up)"
        )
    else:
        print()


def _ran(route: str, spec: RunSpec) -> bool:
    """Whether ``route`` is what the run just did (advice names only other routes)."""
    return (
        f"--kernel {spec.kernel}" in route
        or (f"--model {spec.model}" in route)
        or (spec.shards > 1 and route.startswith("--workers"))
    )


def format_table(table: Any, draws: int | None = None) -> str:
    """The diagnostics table as printed: R-hat to 4 decimals (the verdict's bar is 1.01, so
    1.0099 and 1.0101 must print apart), ESS whole, everything else to 4 significant digits.
    With the run's total ``draws`` (chains x draws per chain), an ESS above them is marked
    ``*`` and a line under the table says so. The values themselves (summary.csv, the
    verdict) are never rounded."""

    def number(value: float, spec: str) -> str:
        if value != value:
            return "nan"
        text = format(value, spec)
        return text + "*" if spec == ".0f" and draws and value > draws else text

    def spec(column: str) -> str:
        if column == "r_hat":
            return ".4f"
        return ".0f" if column in ("ess_bulk", "ess_tail") else ".4g"

    formatters = {c: functools.partial(number, spec=spec(c)) for c in table.columns}
    text = str(table.to_string(formatters=formatters))
    if draws and "*" in text:
        text += (
            f"\n* an ESS above the run's {draws} draws: ArviZ's estimate exceeds the draws "
            "when they are anticorrelated or the run is short; read it as at most the draws "
            "(the plan below does)"
        )
    return text


def describe_free(resolved: dict[str, Any]) -> str:
    """``"CDR-H3 105-117 (13) by ANARCI, IMGT"``: the free positions region by region."""
    labels, regions = resolved.get("labels", []), resolved.get("regions", [])
    parts, begin = [], 0
    for k in range(1, len(labels) + 1):
        if k == len(labels) or regions[k] != regions[begin]:
            span = labels[begin] if k - begin == 1 else f"{labels[begin]}-{labels[k - 1]}"
            parts.append(f"{regions[begin] + ' ' if regions[begin] else ''}{span} ({k - begin})")
            begin = k
    how = {
        "anarci-imgt": "numbered by ANARCI, IMGT",
        "anarci-kabat": "numbered by ANARCI, Kabat",
        "motif": "CDR-H3 from the YYC and WGxG motifs (no ANARCI), residue numbers",
        "positions": "residue numbers",
    }.get(str(resolved.get("how")), str(resolved.get("how")))
    return f"{', '.join(parts)}; {how}"


def print_result(result: RunResult, spec: RunSpec, directory: str, top: int = 10) -> None:
    from pyro_mlm.report.diagnostics import MIN_DRAWS, converged

    state = "finished" if result.completed else "INTERRUPTED"
    print(
        f"\n{state}: {result.draws} draws per chain x {spec.chains} chains "
        f"({result.seconds:.1f} s this session); acceptance_rate "
        f"{result.acceptance_rate:.3f}, novel_rate {result.novel_rate:.3f}"
    )
    _print_stop(result, spec, directory)
    if spec.resolved_free:
        print(f"free positions: {describe_free(spec.resolved_free)}")
    if result.summary is not None and result.idata is not None:
        if result.draws < MIN_DRAWS:
            print(
                f"\nconvergence: not assessed; R-hat and ESS need at least {MIN_DRAWS} draws "
                f"per chain and this run has {result.draws} (continue it: pyro-mlm sample "
                f"--resume {directory} --samples {max(spec.samples, 100)})"
            )
        else:
            print("\nconvergence (R-hat near 1 and large ESS are good):")
            print(format_table(result.summary, result.draws * spec.chains))
            _print_plan(result, spec, directory)
        if result.diversity:
            print("\ndiversity: " + ", ".join(f"{k} {v:.3g}" for k, v in result.diversity.items()))
        if result.designs and top > 0:
            print(
                f"\ntop {min(top, len(result.designs))} designs (designs.csv has all; freq with "
                "a 95% interval from the effective sample size):"
            )
            if result.start_energy is not None:
                print(f"  the start (chain 0) has energy {result.start_energy:.2f} on this scale")
            from pyro_mlm.report.marginals import numbering_name

            scheme = numbering_name(spec.resolved_free)
            head = f"{'freq [95%]':>20} {'energy':>8} {'mut':>4}  mutations ({scheme} numbers)"
            print(f"  {'rank':>4} {'free region':<24} {head}")
            for rank, d in enumerate(result.designs[:top], 1):
                interval = f"{d.frequency:.3f} [{d.frequency_low:.3f}, {d.frequency_high:.3f}]"
                print(
                    f"  {rank:>4} {d.free_region:<24} {interval:>20} {d.energy:>8.2f} "
                    f"{d.hamming_to_start:>4}  {d.mutations or '-'}"
                )
            if result.draws < MIN_DRAWS:
                print(
                    "  convergence was not assessed (too few draws): these frequencies are "
                    "not yet posterior probabilities"
                )
            elif not converged(result.summary, draws=result.draws * spec.chains):
                print(
                    "  the run has NOT CONVERGED: these frequencies are not yet posterior "
                    "probabilities (the intervals assume chains that have mixed)"
                )
    written = [
        f for f in (SAMPLES_FILE, *report_files()) if os.path.exists(os.path.join(directory, f))
    ]
    print(f"\nwrote {directory}/: {', '.join(written)}")
    if not result.completed:
        print(f"continue with: pyro-mlm sample --resume {directory}")
