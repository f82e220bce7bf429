"""Sharded runs (pyro_mlm/run/shards.py) in this process and on Ray's local instance:
the same draws, byte for byte, whatever runs the shards and whatever gets killed.

Ray tests are skipped where Ray is not installed (CI installs it with the dev extra)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.cli import main
from pyro_mlm.run.shards import local_backend, run_sharded, shard_specs
from pyro_mlm.run.spec import RunSpec

pytestmark = pytest.mark.integration  # Ray's local instance and worker processes

TEXT = "a b c d e f g h"


def _args(model_dir: str, out: str, *extra: str) -> list[str]:
    return [
        "sample", "--no-progress", "--sequence", TEXT, "--free", "2-7", "--chains", "4",
        "--warmup", "2", "--samples", "6", "--model", model_dir, "--out", out, *extra,
    ]  # fmt: skip


def _bytes(path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def reference(model_dir, tmp_path_factory) -> bytes:
    """The 2-shard run in this process: the draws every other way must reproduce."""
    out = str(tmp_path_factory.mktemp("reference") / "run")
    assert main(_args(model_dir, out, "--workers", "2")) == 0
    return _bytes(os.path.join(out, "samples.jsonl"))


def test_shards_split_chains_with_their_own_seeds() -> None:
    spec = RunSpec(model="m", sequences=tuple("abcde"), seed=7, shards=2)
    shards = shard_specs(spec)
    assert [s.sequences for s in shards] == [("a", "b"), ("c", "d", "e")]
    assert len({s.seed for s in shards}) == 2 and all(s.shards == 1 for s in shards)
    with pytest.raises(ValueError, match="at most one shard per chain"):
        shard_specs(spec.replace(shards=6))


def test_merged_draws_have_global_chain_ids(reference) -> None:
    records = [json.loads(line) for line in reference.decode().splitlines()]
    assert len(records) == 4 * 6
    assert [(r["draw"], r["chain"]) for r in records] == [
        (d, c) for d in range(6) for c in range(4)
    ]


def test_a_killed_driver_resumes_to_the_same_draws(model_dir, tmp_path, reference) -> None:
    """kill -9 the driver once the first chunk is merged; --resume finishes the run."""
    out = str(tmp_path / "run")
    script = (
        "import sys; from pyro_mlm.run import shards; shards.DEFAULT_CHUNK = 2; "
        "from pyro_mlm.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = [sys.executable, "-c", script, *_args(model_dir, out, "--workers", "2")]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    merged = os.path.join(out, "samples.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if os.path.exists(merged) and os.path.getsize(merged) > 0:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert len(_bytes(merged).splitlines()) < 24
    assert main(["sample", "--no-progress", "--resume", out]) == 0
    assert _bytes(merged) == reference


def _campaign_args(model_dir: str, out: str, starts: str, *extra: str) -> list[str]:
    return [
        "sample", "--no-progress", "--campaign", "--sequences-file", starts, "--free", "2-4",
        "--chains", "2", "--warmup", "1", "--samples", "4", "--model", model_dir, "--out", out,
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def campaign(model_dir, tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("campaign")
    starts = folder / "starts.fasta"
    starts.write_text(">one\na b c d e\n>two\nh g f e d c\n>three\nb b b b b\n")
    out = str(folder / "run")
    assert main(_campaign_args(model_dir, out, str(starts), "--threads", "1")) == 0  # as a worker
    return str(starts), out


def test_a_campaign_runs_every_start_and_summarises(campaign) -> None:
    import csv

    _, out = campaign
    with open(os.path.join(out, "campaign.csv"), encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["start"] for r in rows] == ["a b c d e", "h g f e d c", "b b b b b"]
    for k, row in enumerate(rows):
        job = os.path.join(out, "runs", str(k))
        assert int(row["draws"]) == 4 and os.path.exists(os.path.join(job, "designs.csv"))
        records = [
            json.loads(line) for line in _bytes(os.path.join(job, "samples.jsonl")).splitlines()
        ]
        assert len(records) == 2 * 4
        fixed = row["start"].split()
        for r in records:  # words 2-4 free, the rest as the start
            words = r["sequence"].split()
            assert words[0] == fixed[0] and words[4:] == fixed[4:]
    # a finished campaign resumes to the same table, running nothing again
    before = _bytes(os.path.join(out, "runs", "1", "samples.jsonl"))
    assert main(["sample", "--no-progress", "--resume", out]) == 0
    assert _bytes(os.path.join(out, "runs", "1", "samples.jsonl")) == before


# ---------------------------------------------------------------- Ray
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    from pyro_mlm.run.ray_backend import restore_handlers, saved_handlers

    handlers = saved_handlers()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    restore_handlers(handlers)  # ray.init leaves its SIGTERM handler behind


def test_ray_run_equals_the_in_process_sharded_run(local_ray, model_dir, tmp_path, reference):
    out = str(tmp_path / "run")
    assert main(_args(model_dir, out, "--workers", "2", "--backend", "ray")) == 0
    assert _bytes(os.path.join(out, "samples.jsonl")) == reference
    assert os.path.exists(os.path.join(out, "logo.png"))


def test_a_campaign_on_two_ray_workers_equals_the_local_one(
    local_ray, model_dir, tmp_path, campaign
) -> None:
    starts, reference = campaign
    out = str(tmp_path / "run")
    assert main(_campaign_args(model_dir, out, starts, "--backend", "ray", "--workers", "2")) == 0
    for k in range(3):
        path = os.path.join("runs", str(k), "samples.jsonl")
        assert _bytes(os.path.join(out, path)) == _bytes(os.path.join(reference, path))


def test_a_killed_worker_is_restarted_and_nothing_is_lost(
    local_ray, model_dir, tmp_path, reference
):
    """SIGKILL one actor's process in the middle of an advance; Ray restarts it, it resumes
    from its shard's checkpoint, and the merged draws equal the fault-free run's."""
    from pyro_mlm.run.ray_backend import ray_backend

    factory, call, close = ray_backend()
    killed = []

    def call_and_kill(runners, method, args):
        if method == "advance" and args[0] >= 4 and not killed:
            pid = ray.get(runners[0].pid.remote())
            refs = [getattr(r, method).remote(*args) for r in runners]
            time.sleep(0.3)  # the advance is under way
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            result = list(ray.get(refs))
            assert ray.get(runners[0].pid.remote()) != pid  # a new worker process
            return result
        return call(runners, method, args)

    spec = RunSpec(
        model=model_dir, sequences=(TEXT,) * 4, free="2-7", warmup=2, samples=6, shards=2
    )
    out = str(tmp_path / "run")
    try:
        result = run_sharded(spec, out, factory, call_and_kill, progress=False, chunk=2)
    finally:
        close()
    assert killed and result.completed
    assert _bytes(os.path.join(out, "samples.jsonl")) == reference


def test_a_two_node_cluster_runs_a_job_through_address(model_dir, tmp_path, reference):
    """A head and a second node on this machine (ray.cluster_utils.Cluster), joined with
    --address as a user would join a real cluster."""
    from ray.cluster_utils import Cluster

    from pyro_mlm.run.ray_backend import restore_handlers, saved_handlers

    if ray.is_initialized():
        ray.shutdown()
    handlers = saved_handlers()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        out = str(tmp_path / "run")
        argv = _args(model_dir, out, "--workers", "2", "--backend", "ray")
        assert main([*argv, "--address", cluster.address]) == 0
        assert _bytes(os.path.join(out, "samples.jsonl")) == reference
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        restore_handlers(handlers)


def test_without_ray_the_message_says_how_to_install(monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    from pyro_mlm.run.ray_backend import import_ray

    with pytest.raises(ValueError, match=r"pip install 'pyro-mlm\[ray\]'"):
        import_ray()


def test_local_backend_runs_shards_in_turn(model_dir, tmp_path, reference) -> None:
    factory, call = local_backend(1)
    spec = RunSpec(
        model=model_dir, sequences=(TEXT,) * 4, free="2-7", warmup=2, samples=6, shards=2
    )
    out = str(tmp_path / "run")
    run_sharded(spec, out, factory, call, progress=False, chunk=4)  # another chunking
    assert _bytes(os.path.join(out, "samples.jsonl")) == reference


# ---------------------------------------------------------------- scoring at scale
def _score_texts() -> list[str]:
    import random

    rng = random.Random(0)
    return [" ".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 9))) for _ in range(300)]


def test_ray_scoring_equals_local_and_a_rerun_writes_no_duplicate(
    local_ray, model_dir, tmp_path, capsys
) -> None:
    import csv

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(_score_texts()) + "\n")
    local, remote = str(tmp_path / "local.csv"), str(tmp_path / "ray.csv")
    base = ["score", "--file", str(texts), "--model", model_dir, "--no-progress"]
    assert main([*base, "--out", local, "--threads", "1"]) == 0
    assert main([*base, "--out", remote, "--backend", "ray", "--workers", "2"]) == 0
    assert _bytes(local) == _bytes(remote)
    with open(local, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["index"]) for r in rows] == list(range(300))
    # an interruption: the first 100 rows and a torn line are left; the re-run completes it
    lines = _bytes(remote).decode().splitlines(keepends=True)
    with open(remote, "w", encoding="utf-8") as handle:
        handle.write("".join(lines[:101]) + lines[101][:7])
    capsys.readouterr()
    assert main([*base, "--out", remote, "--backend", "ray", "--workers", "2"]) == 0
    assert "200 rows written now, 100 already there" in capsys.readouterr().out
    with open(remote, encoding="utf-8") as handle:
        again = list(csv.DictReader(handle))
    assert sorted(int(r["index"]) for r in again) == list(range(300))  # none twice
    assert sorted(again, key=lambda r: int(r["index"])) == rows


# ------------------------------------------------------------------ the target does not move
SHARD_EXPERTS = [
    "max-mutations:k=1",
    "forbid:pattern=h h",
    "allowed:2-3:b|c|h",
    "mlm:model={model_dir};weight=0.5",
]


@pytest.mark.parametrize("expert", SHARD_EXPERTS)
def test_every_shard_targets_the_runs_law(model_dir, expert) -> None:
    """Each shard builds its experts against the run's chain 0, not its own first chain:
    its target's energy is the unsharded run's at every sequence (the law, exactly)."""
    from pyro_mlm.models.load import load_model
    from pyro_mlm.run.prepare import build_experts, prepare
    from pyro_mlm.run.shards import shard_specs
    from pyro_mlm.run.spec import RunSpec

    mlm = load_model(model_dir)
    text = expert.format(model_dir=model_dir)
    starts = ("a b c d e f", "a b c d e f", "a h c d e f", "a h c d e f")  # 1 apart
    spec = RunSpec(model=model_dir, sequences=starts, free="2-5", experts=(text,), shards=2)

    def energies(run: RunSpec, probes: torch.Tensor) -> torch.Tensor:
        tokens, free = prepare(run, mlm)
        target = Target(MLMEnergy(mlm), build_experts(run, mlm, tokens, free, weights=True))
        return target(probes, free[:1].expand_as(probes))

    generator = torch.Generator().manual_seed(0)
    probes = torch.stack([mlm.encode(starts[0])] * 64)
    words = mlm.proposable_ids[torch.randint(8, (64, 4), generator=generator)]
    probes[:, 2:6] = words
    probes[:8] = torch.stack([mlm.encode(s) for s in starts * 2])
    expected = energies(spec, probes)
    for shard in shard_specs(spec):
        assert torch.equal(energies(shard, probes), expected), shard.sequences


def test_a_sharded_max_mutations_run_stays_within_k_of_the_runs_parent(model_dir, tmp_path):
    out = tmp_path / "run"
    argv = [
        "sample", "--model", model_dir, "--sequence", "a b c d e f", "--sequence",
        "a b c d e f", "--sequence", "a h c d e f", "--sequence", "a h c d e f",
        "--free", "2-5", "--expert", "max-mutations:k=1", "--warmup", "2", "--samples", "10",
        "--workers", "2", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    parent = "a b c d e f".split()
    with open(out / "samples.jsonl", encoding="utf-8") as handle:
        for line in handle:
            words = json.loads(line)["sequence"].split()
            assert sum(a != b for a, b in zip(words, parent, strict=True)) <= 1
