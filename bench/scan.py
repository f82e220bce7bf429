r"""Benchmark: the exact single-mutant scan against scoring the same mutants one by one, and
how far the masked-marginal heuristic is from the exact Delta E on real chains.

1. Speed (``--speed``, Sapiens-H, trastuzumab CDR-H3, 13 x 19 = 247 mutants), in one process
   with ``--threads`` (default 1), both at ``--energy-over free``:

   - ``scan``: :func:`pyro_mlm.landscape.mutants.single_mutants`: one wild-type evaluation,
     then each position's 19 mutants as one batch of |F| - 1 = 12 masked rows each (the row at
     the mutated position is the wild type's own);
   - ``score one by one``: :func:`pyro_mlm.scoring.score.score_sequences` on each mutant's
     text alone (what a user does with ``pyro-mlm score``), |F| = 13 rows each, minus the wild
     type's score.

   Reported: mutants per second and masked rows per second of each, their ratio, and the
   largest difference between the two Delta E (the same numbers, so it bounds float error).

2. Agreement (``--agreement``): Spearman of exact -Delta E_MLM against the masked marginal, and
   the top-10 overlap, for the CDR-3 of real chains under each packaged antibody model
   (Sapiens-H / -L by chain, AntiBERTy), energy ``norm`` over the CDR.

    python bench/scan.py --speed --agreement --json bench/results/scan.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import torch
from _report import machine, write_json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from energy import HEAVY_CHAINS

LIGHT_CHAINS = {  # real VL domains
    "trastuzumab-VL": (
        "DIQMTQSPSSLSASVGDRVTITCRASQDVNTAVAWYQQKPGKAPKLLIYSASFLYSGVPSRFSGSRSGTDFTLTISSLQPEDF"
        "ATYYCQQHYTTPPTFGQGTKVEIK"
    ),
    "adalimumab-VL": (
        "DIQMTQSPSSLSASVGDRVTITCRASQGIRNYLAWYQQKPGKAPKLLIYAASTLQSGVPSRFSGSGSGTDFTLTISSLQPEDV"
        "ATYYCQRYNRAPYTFGQGTKVEIK"
    ),
}


def _load(name: str) -> Any:
    from pyro_mlm.models.load import load_model

    return load_model(name, device="cpu")


def speed(repeats: int) -> dict:
    """Scan vs score-one-by-one on trastuzumab CDR-H3 under Sapiens-H."""
    from pyro_mlm import MLMEnergy
    from pyro_mlm.landscape.mutants import single_mutants
    from pyro_mlm.scoring.score import score_sequences

    mlm = _load("sapiens-h")
    wild = HEAVY_CHAINS["trastuzumab"]
    region = {"free": "cdrh3", "numbering": "imgt"}
    best: dict[str, float] = {}
    table = None
    for _ in range(repeats):
        began = time.perf_counter()
        table = single_mutants(MLMEnergy(mlm), wild, "cdrh3")
        best["scan"] = min(best.get("scan", 1e9), time.perf_counter() - began)
    assert table is not None
    mutants = [
        wild[: int(r["position"]) - 1] + r["mutant"] + wild[int(r["position"]) :]
        for r in table.to_dict("records")
    ]
    for _ in range(repeats):
        began = time.perf_counter()
        base = score_sequences(mlm, [wild], ["norm"], progress=False, region=region)[0]
        scored = [
            score_sequences(mlm, [m], ["norm"], progress=False, region=region)[0] for m in mutants
        ]
        best["score"] = min(best.get("score", 1e9), time.perf_counter() - began)
    delta = [s["energy_norm"] - base["energy_norm"] for s in scored]
    # score rounds to 4 decimals: the difference is bounded by that rounding plus float error
    worst = max(abs(d - e) for d, e in zip(delta, table["delta_energy"], strict=True))
    free = 13
    rows = {"scan": len(mutants) * (free - 1) + free, "score": (len(mutants) + 1) * free}
    out = {
        "model": "sapiens-h",
        "chain": "trastuzumab VH, CDR-H3 (IMGT 105-117)",
        "mutants": len(mutants),
        "max_abs_delta_difference": round(worst, 6),
    }
    for name in ("scan", "score"):
        out[name] = {
            "seconds": round(best[name], 3),
            "mutants_per_s": round(len(mutants) / best[name], 1),
            "rows": rows[name],
            "rows_per_s": round(rows[name] / best[name], 1),
        }
    out["scan_speedup_per_mutant"] = round(best["score"] / best["scan"], 2)
    return out


def agreement(models: list[str], top: int, few: list[str]) -> list[dict]:
    """Spearman and top-N overlap of the exact Delta E_MLM and the masked marginal: every
    chain under Sapiens, the chains ``few`` under AntiBERTy (10x the cost per row)."""
    from pyro_mlm import MLMEnergy
    from pyro_mlm.landscape.compare import agreement as agree
    from pyro_mlm.landscape.mutants import single_mutants

    chains = [(n, s, "cdrh3", "H") for n, s in HEAVY_CHAINS.items()]
    chains += [(n, s, "cdrl3", "L") for n, s in LIGHT_CHAINS.items()]
    results = []
    for model in models:
        loaded: dict[str, object] = {}
        for name, sequence, region, chain in chains:
            if model == "antiberty" and name not in few:
                continue
            model_name = (
                {"H": "sapiens-h", "L": "sapiens-l"}[chain] if model == "sapiens" else model
            )
            if model_name not in loaded:
                loaded[model_name] = _load(model_name)
            began = time.perf_counter()
            table = single_mutants(MLMEnergy(loaded[model_name]), sequence, region)
            seconds = time.perf_counter() - began
            stats = agree(table.to_dict("records"), top)
            row = {
                "model": model_name, "chain": name, "region": region, "mutants": len(table),
                "spearman": stats["spearman"], f"top{top}_overlap": stats["overlap"],
                "seconds": round(seconds, 1),
                "mean_abs_context_term": round(
                    float((table["delta_mlm"] + table["masked_marginal"]).abs().mean()), 3
                ),
            }  # fmt: skip
            print(row, flush=True)
            results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--agreement", action="store_true")
    parser.add_argument("--models", default="sapiens,antiberty")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--json", default="bench/results/scan.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--antiberty-chains", default="trastuzumab,pembrolizumab,trastuzumab-VL",
        help="the chains scanned under AntiBERTy (each ~3k rows at ~20 rows/s on 2 cores)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    result: dict = {"machine": machine(), "threads": args.threads, "load_at_start": round(load, 2)}
    if args.speed:
        result["speed"] = speed(args.repeats)
        s = result["speed"]
        print(
            f"scan {s['scan']['mutants_per_s']} mutants/s ({s['scan']['rows_per_s']} rows/s), "
            f"score one by one {s['score']['mutants_per_s']} mutants/s "
            f"({s['score']['rows_per_s']} rows/s): {s['scan_speedup_per_mutant']}x; "
            f"max |dE difference| {s['max_abs_delta_difference']}"
        )
    if args.agreement:
        few = args.antiberty_chains.split(",")
        result["agreement"] = agreement(args.models.split(","), args.top, few)
    result["load_at_end"] = round(os.getloadavg()[0], 2)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
