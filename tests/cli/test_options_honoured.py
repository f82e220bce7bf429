"""Options checked against what they act on (issue 34): a value the sampler cannot honour
is refused naming the flag and the limit, never recorded and silently replaced; a length
prior file with a length listed twice is refused naming both lines; under --lengths the
region-size options are checked against MAX, whatever the start's length."""

from __future__ import annotations

import pytest

from pyro_mlm.cli import main

TEXT = "a b c d e f"
BASE = ["sample", "--sequence", TEXT, "--samples", "2", "--warmup", "0", "--no-progress"]


def _prior_with_a_length_twice(tmp_path) -> str:
    path = tmp_path / "prior.txt"
    path.write_text("1 1.0\n2 1.0\n# comment\n3 2.0\n2 5.0\n")
    return str(path)


def _binary_prior(tmp_path) -> str:
    path = tmp_path / "prior.bin"
    path.write_bytes(bytes(range(256)) * 4)
    return str(path)


REFUSED = [
    (["--free", "2-4", "--lengths", "1-4", "--length-moves", "0"],
     "--length-moves must be >= 1, got 0"),
    (["--free", "2-4", "--kernel", "regenerate", "--regen-block", "window", "--regen-size", "20"],
     "--regen-size 20 is larger than the 3 free positions; give at most 3"),
    (["--free", "2-4", "--kernel", "block", "--block-size", "9"],
     "--block-size 9 is larger than the 3 free positions"),
    (["--free", "2-3", "--lengths", "1-3", "--kernel", "block", "--block-size", "4"],
     "--block-size 4 is larger than the 3 free positions"),  # MAX is the limit
    (["--free", "2-4", "--lengths", "1-4", "--length-prior", "PRIOR"],
     "lines 2 and 5 both give length 2 a weight"),
    (["--free", "2-4", "--lengths", "1-4", "--length-prior", "BINARY"],
     "is not a text file (not UTF-8)"),
    (["--free", "2-4", "--lengths", "1-10000000000"],  # a typo: checked before any padding
     "--lengths 1-10000000000: a region of 10000000000 makes the sequence 10000000005 tokens "
     "long, but the model takes at most 32 (special tokens included); the largest MAX that "
     "fits is 27"),
    (["--free", "2-4", "--kernel", "regenerate", "--regen-prob", "2"],
     "--regen-prob: expected a probability in (0, 1], got '2'"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "message"), REFUSED, ids=lambda c: " ".join(c)[-40:])
def test_a_value_the_sampler_cannot_honour_is_refused(
    model_dir, tmp_path, capsys, flags, message
) -> None:
    files = {"PRIOR": _prior_with_a_length_twice, "BINARY": _binary_prior}
    flags = [files[f](tmp_path) if f in files else f for f in flags]
    out = tmp_path / "run"
    assert main([*BASE, "--model", model_dir, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("start_region", ["2-2", "2-3"], ids=["one-position", "two-positions"])
def test_under_lengths_a_block_up_to_max_runs_from_any_start(
    model_dir, tmp_path, capsys, start_region
) -> None:
    """--lengths 1-3 --block-size 2 was refused from a one-position start and accepted from a
    two-position one: the limit is MAX, so both run."""
    flags = ["--free", start_region, "--lengths", "1-3", "--kernel", "block", "--block-size", "2"]
    assert main([*BASE, "--model", model_dir, *flags, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    ("parent", "code"),
    [("a b c d e f", 0), ("a b c c d d e f", 0), ("a b e f", 0), ("b b c d e f", 2)],
    ids=["the-start", "a-longer-region", "a-shorter-region", "another-framework"],
)
def test_lengths_take_max_mutations_with_a_parent(model_dir, tmp_path, capsys, parent, code):
    """The parent's region is read like the start's (between the same flanks, any length):
    the README's campaign with --lengths runs; a parent whose framework differs is refused."""
    expert = f"max-mutations:k=3;parent={parent}"
    flags = ["--free", "2-5", "--lengths", "1-5", "--expert", expert]
    out = tmp_path / "run"
    assert main([*BASE, "--model", model_dir, *flags, "--out", str(out)]) == code
    err = capsys.readouterr().err
    if code:
        assert "outside the free region differs from the start's" in err


# ------------------------------------------------------------------ the same, through the API
@pytest.mark.parametrize(
    ("lengths", "error", "message"),
    [
        ((1.5, 3), TypeError, r"lengths takes \(MIN, MAX\), two integers"),
        ((1, 2, 3), TypeError, r"lengths takes \(MIN, MAX\), two integers"),
        ([0.2, 0.3, 0.5], TypeError, "two integers"),  # weights per length, not a range
        (3, TypeError, r"lengths takes \(MIN, MAX\) or 'MIN-MAX', got int"),
        ("3-1", ValueError, "1 <= MIN < MAX"),
    ],
    ids=["float", "three-values", "weights", "int", "reversed"],
)
def test_the_kernel_refuses_bad_lengths_at_construction(lengths, error, message) -> None:
    from conftest import tiny_mlm

    from pyro_mlm import MLMEnergy, SamplerKernel

    with pytest.raises(error, match=message):
        SamplerKernel(MLMEnergy(tiny_mlm()), sampler="mh", lengths=lengths)


def test_the_kernel_checks_the_models_limit_before_padding() -> None:
    import torch
    from conftest import run_mcmc, tiny_mlm

    from pyro_mlm import MLMEnergy, SamplerKernel

    mlm = tiny_mlm()
    free = torch.zeros(8, dtype=torch.bool)
    free[2:5] = True
    with pytest.raises(ValueError, match="longer than the 32 positions the model takes"):
        SamplerKernel(MLMEnergy(mlm), sampler="mh", lengths=(1, 10**10), free=free)
    kernel = SamplerKernel(MLMEnergy(mlm), sampler="mh", lengths=(1, 30), free=free)
    with pytest.raises(ValueError, match="the largest MAX that fits is 27"):
        run_mcmc(kernel, mlm.encode(TEXT).repeat(2, 1), samples=1, warmup=0)


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"length_prior": [0.2, 0.3, 0.5]}, TypeError, "length_prior takes 'uniform'"),
        ({"length_prior": "penalty:x"}, ValueError, "penalty:VALUE needs a finite number"),
        ({"length_prior": "no/such/file"}, ValueError, "no such file"),
        ({"length_moves": 2.5}, ValueError, "length_moves must be an integer >= 1"),
        ({"length_moves": 0}, ValueError, "length_moves must be an integer >= 1"),
    ],
    ids=["weights-list", "bad-penalty", "missing-file", "float-moves", "zero-moves"],
)
def test_the_kernel_refuses_bad_length_settings_at_construction(settings, error, message):
    import torch
    from conftest import tiny_mlm

    from pyro_mlm import MLMEnergy, SamplerKernel

    with pytest.raises(error, match=message):
        SamplerKernel(MLMEnergy(tiny_mlm()), sampler="mh", lengths=(1, 3), **settings)
    tensor = torch.zeros(3)  # MAX + 1 = 4 entries wanted
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        SamplerKernel(MLMEnergy(tiny_mlm()), sampler="mh", lengths=(1, 3), length_prior=tensor)


@pytest.mark.parametrize(
    ("flag", "suggested"),
    [
        ("--chain", "--chains"),
        ("--warm", "--warmup"),
        ("--chians", "--chains"),
        ("--sed", "--seed"),
    ],
)
def test_abbreviated_and_mistyped_flags_are_refused_with_a_suggestion(capsys, flag, suggested):
    """argparse would take --chain for --chains and --warm for --warmup: they look like typos
    of other flags, so no flag is abbreviated, and the closest valid one is suggested."""
    with pytest.raises(SystemExit) as stop:
        main(["sample", "--sequence", TEXT, flag, "2"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {flag} 2 ({flag}: did you mean {suggested}?)" in err
