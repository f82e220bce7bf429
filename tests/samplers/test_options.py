"""Options that do not apply are refused by name, in one place (samplers/options.py), by
the command line, RunSpec, build_sampler and SamplerKernel alike: never accepted,
recorded in run.json, and ignored."""

from __future__ import annotations

import os

import pytest
import torch

from pyro_mlm import MLMEnergy, SamplerKernel, Target
from pyro_mlm.cli import main
from pyro_mlm.run.prepare import prepare
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.samplers import build_sampler

TEXT = "a b c d e f"
# (CLI flags, the message; the same setting through the Python API)
CASES = [
    (["--kernel", "tuned", "--proposal-temperature", "3"], "--proposal-temperature 3 does not "
     "apply to --kernel tuned", ("tuned", {}, {"proposal_temperature": 3.0})),
    (["--kernel", "replica-exchange", "--inner", "mh", "--block-size", "3"], "--block-size "
     "does not apply to replica exchange with --inner mh",
     ("replica-exchange", {"inner": "mh", "block_size": 3}, {})),
    (["--kernel", "gibbs", "--temperature", "2"], "--temperature 2 does not apply to --kernel "
     "gibbs", ("gibbs", {}, {"temperature": 2.0})),
    (["--kernel", "block", "--block-size", "20"], "--block-size 20 is larger than the 3 free "
     "positions", ("block", {"block_size": 20}, {})),
    (["--kernel", "mh", "--block-size", "2"], "--block-size does not apply to --kernel mh",
     ("mh", {"block_size": 2}, {})),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "message", "api"), CASES, ids=lambda c: str(c)[:40])
def test_the_command_line_refuses_it_by_name(model_dir, tmp_path, capsys, flags, message, api):
    out = tmp_path / "run"
    argv = ["sample", "--model", model_dir, "--sequence", TEXT, "--free", "2-4", *flags]
    assert main([*argv, "--samples", "2", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()  # nothing created


@pytest.mark.parametrize(("flags", "message", "api"), CASES, ids=lambda c: str(c)[:40])
def test_the_python_api_refuses_it_too(mlm, model_dir, flags, message, api) -> None:
    kernel, options, common = api
    energy = MLMEnergy(mlm, temperature=common.get("temperature", 1.0))
    tau = common.get("proposal_temperature", 1.0)
    free = torch.zeros(1, 8, dtype=torch.bool)
    free[0, 2:5] = True
    python_name = message.split(" ")[0].lstrip("-").replace("-", "_")
    with pytest.raises(ValueError, match=python_name):  # named as the caller spelled it
        build_sampler(kernel, Target(energy), free, proposal_temperature=tau, **options)
    if kernel != "block":  # the block size is checked against the free positions at setup
        with pytest.raises(ValueError, match=python_name):
            SamplerKernel(energy, sampler=kernel, proposal_temperature=tau, **options)
    spec = RunSpec(
        model=model_dir, sequences=(TEXT,), free="2-4", kernel=kernel, options=options,
        temperature=common.get("temperature", 1.0), proposal_temperature=tau,
    )  # fmt: skip
    with pytest.raises(ValueError, match=python_name):
        prepare(spec, mlm)


def test_optimize_applies_the_chains_rule_of_sample(model_dir, tmp_path, capsys) -> None:
    argv = ["optimize", "--model", model_dir, "--sequence", TEXT, "--sequence", "a h c d e f"]
    assert main([*argv, "--free", "2-4", "--chains", "4", "--sweeps", "2"]) == 2
    assert "2 starting sequences for 4 chains; give 1 or 4" in capsys.readouterr().err
    assert main([*argv, "--free", "2-4", "--sweeps", "2", "--no-progress"]) == 0
    assert "annealed 2 chains" in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "x")
