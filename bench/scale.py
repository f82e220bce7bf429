"""Benchmark: a sharded run on Ray with 1 and 2 workers (one thread each) on this machine.

Task: Sapiens-H, trastuzumab CDR-H3, single-site MH, 8 chains split over the workers.
Reports masked rows per second and draws (chain-sweeps) per second, the speed-up of 2
workers over 1, and the driver's overhead: the time it spends fetching, merging and
writing draws as a fraction of the sampling loop (actor start-up and model loading are
reported apart, since a long run pays them once).

    python bench/scale.py --samples 20 --json bench/results/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from _report import machine, write_json

from pyro_mlm.run.ray_backend import import_ray, ray_backend
from pyro_mlm.run.shards import run_sharded
from pyro_mlm.run.spec import RunSpec

VH = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQ"
    "MNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
)


def one(workers: int, args: argparse.Namespace, folder: str) -> dict:
    spec = RunSpec(
        model=args.model, sequences=(VH,) * args.chains, free="cdrh3", warmup=args.warmup,
        samples=args.samples, shards=workers, seed=args.seed,
    )  # fmt: skip
    ray = import_ray()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    began = time.perf_counter()
    factory, call, close = ray_backend(threads_per_worker=1)
    timings: dict[str, float] = {"startup": 0.0}

    def started(shard: int, shard_spec: RunSpec, shard_folder: str) -> object:
        tick = time.perf_counter()  # actor start and model load, apart from sampling
        actor = factory(shard, shard_spec, shard_folder)
        ray.get(actor.pid.remote())
        timings["startup"] += time.perf_counter() - tick
        return actor

    try:
        out = os.path.join(folder, f"w{workers}")
        run_sharded(spec, out, started, call, progress=False, chunk=args.chunk, timings=timings)
    finally:
        close()
        ray.shutdown()
    total = time.perf_counter() - began
    with open(os.path.join(out, "samples.jsonl"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    rows = sum(r["rows"] for r in records)
    loop = timings["advance"] + timings["merge"]
    return {
        "workers": workers,
        "draws": len(records),
        "rows": rows,
        "seconds_total": total,
        "seconds_sampling_loop": loop,
        "seconds_startup": timings["startup"],
        "rows_per_s": rows / timings["advance"],
        "draws_per_s": len(records) / timings["advance"],
        "driver_fraction": timings["merge"] / loop,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sapiens-h")
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="bench/results/scale.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        results = [one(w, args, folder) for w in (1, 2)]
    base = results[0]
    print(
        f"{'workers':>7}{'draws':>7}{'rows/s':>9}{'draws/s':>9}{'speed-up':>9}"
        f"{'driver':>8}{'start s':>9}{'total s':>9}"
    )
    for r in results:
        r["speedup"] = r["rows_per_s"] / base["rows_per_s"]
        print(
            f"{r['workers']:>7}{r['draws']:>7}{r['rows_per_s']:>9.1f}{r['draws_per_s']:>9.2f}"
            f"{r['speedup']:>9.2f}{r['driver_fraction']:>8.2%}{r['seconds_startup']:>9.1f}"
            f"{r['seconds_total']:>9.1f}"
        )
    write_json(
        args.json,
        {
            "command": "python bench/scale.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": machine(),
            "model": args.model,
            "chains": args.chains,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
