"""The new battery of bad inputs (issue 23): each is one ``error:`` line and exit 2 on the
command line, with nothing left behind, or a ValueError/TypeError naming what was expected
in the Python API; never a traceback, never a silent wrong run."""

from __future__ import annotations

import pytest
import torch

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.cli import main
from pyro_mlm.samplers import build_sampler

TEXT = "a b c d e f"
BASE = ["sample", "--sequence", TEXT, "--free", "2-4", "--samples", "2", "--no-progress"]
CLI_CASES = [
    (["--workers", "2", "--threads-per-worker", "-1"], "--threads-per-worker must be >= 1"),
    (["--workers", "2", "--threads-per-worker", "0"], "--threads-per-worker must be >= 1"),
    (["--address", "ray://head:10001"], "--address does not apply to --backend local"),
    (["--gpus-per-worker", "1"], "--gpus-per-worker does not apply to --backend local"),
    (["--chains", "1000000000"], "needs about"),  # conditionals: chains x L x K floats
]


@pytest.mark.parametrize(("flags", "message"), CLI_CASES, ids=lambda c: " ".join(c)[:30])
def test_a_bad_flag_is_one_line_and_leaves_nothing(model_dir, tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main([*BASE, "--model", model_dir, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


def test_a_huge_chain_count_names_the_memory_it_needs(model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*BASE, "--model", model_dir, "--chains", "100000000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "GiB for the cached conditionals" in err and "x 8 positions x 13 tokens" in err


def test_optimize_checks_its_out_before_annealing(model_dir, tmp_path, capsys) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "best.csv"
    argv = ["optimize", "--model", model_dir, "--sequence", TEXT, "--free", "2-4"]
    assert main([*argv, "--sweeps", "2", "--out", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write it" in err[0] and "annealed" not in err[0]


# ------------------------------------------------------------------ the Python API
def _mask(mlm, rows: int = 2) -> torch.Tensor:
    free = torch.zeros(rows, 8, dtype=torch.bool)
    free[:, 2:5] = True
    return free


API_CASES = [
    ("a special token freed", lambda m: m.encode(TEXT).repeat(2, 1), "special",
     lambda f: f.index_fill(1, torch.tensor([0]), True)),
    ("tokens of the wrong length", lambda m: m.encode("a b").repeat(2, 1), "the sampler was "
     "built for 2 chains of length 8", None),
    ("tokens of the wrong chain count", lambda m: m.encode(TEXT).repeat(3, 1), "built for 2 "
     "chains", None),
    ("an id outside the vocabulary", lambda m: m.encode(TEXT).repeat(2, 1).index_fill(
        1, torch.tensor([3]), 99), "outside the vocabulary", None),
    ("float tokens", lambda m: m.encode(TEXT).repeat(2, 1).double(), "integer token ids", None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "tokens", "message", "free"), API_CASES, ids=lambda c: str(c))
@pytest.mark.parametrize("sampler", ["mh", "block", "replica-exchange"])
def test_sampler_init_checks_like_the_kernel(mlm, name, tokens, message, free, sampler) -> None:
    mask = _mask(mlm)
    if free is not None:
        with pytest.raises(ValueError, match=message):
            build_sampler(sampler, Target(MLMEnergy(mlm)), free(mask)).init(tokens(mlm))
        return
    built = build_sampler(sampler, Target(MLMEnergy(mlm)), mask)
    error = TypeError if name == "float tokens" else ValueError
    with pytest.raises(error, match=message):
        built.init(tokens(mlm))


def test_build_sampler_names_its_own_arguments(mlm) -> None:
    with pytest.raises(ValueError, match="proposals_per_sweep must be a positive int"):
        build_sampler("mh", Target(MLMEnergy(mlm)), _mask(mlm), proposals_per_sweep=0)
    with pytest.raises(ValueError, match=r"free must be a \[C, L\] bool mask"):
        build_sampler("mh", Target(MLMEnergy(mlm)), _mask(mlm).long())
