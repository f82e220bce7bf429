"""Every bad input a user can give: one clear line from the CLI, a clear exception from the API.

CLI cases check exit status 2, exactly one ``error:`` line on stderr, no traceback, no
output directory left behind, and that the model's weights were never read when the
mistake could be seen without them. API cases check the exception type and that the
message says what was expected. Each damaged-run case starts from a real finished run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import TRASTUZUMAB_VH, packaged_installed, tiny_mlm

import pyro_mlm.models.load
from pyro_mlm import EnergyError, MaskedMH, MLMEnergy, potential_fn
from pyro_mlm.cli import main

TEXT = "a b c d e f g h"


@pytest.fixture(scope="module")
def finished_run(model_dir, tmp_path_factory) -> str:
    """A finished 3-chain run (2 warm-up + 4 draws) to copy and damage."""
    out = str(tmp_path_factory.mktemp("runs") / "run")
    argv = ["sample", "--model", model_dir, "--sequence", TEXT, "--free", "2-7", "--chains", "3"]
    assert main([*argv, "--warmup", "2", "--samples", "4", "--out", out, "--no-progress"]) == 0
    return out


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def _edit_line(path: Path, number: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[number - 1]
    lines[number - 1] = lines[number - 1].replace(old, new)
    path.write_text("".join(lines))


# (name, damage applied to a copy of the finished run, message parts)
DAMAGED_RUNS: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("empty checkpoint", lambda d: (d / "checkpoint.pt").write_bytes(b""), ["damaged"]),
    ("truncated checkpoint", lambda d: _truncate(d / "checkpoint.pt", 300), ["damaged"]),
    (
        "garbage checkpoint",
        lambda d: (d / "checkpoint.pt").write_bytes(bytes(range(256)) * 20),
        ["damaged"],
    ),
    (
        "checkpoint of something else",
        lambda d: torch.save({"weights": torch.zeros(3)}, d / "checkpoint.pt"),
        ["damaged", "lacks"],
    ),
    (
        "record with missing keys",
        lambda d: _append(d / "samples.jsonl", '{"foo": 1}\n'),
        ["samples.jsonl line 13", "lacks"],
    ),
    (
        "chain id the run does not have",
        lambda d: _edit_line(d / "samples.jsonl", 3, '"chain": 2', '"chain": 7'),
        ["samples.jsonl line 3", "chain 7 does not exist"],
    ),
    (
        "invalid JSON line",
        lambda d: _edit_line(d / "samples.jsonl", 5, '"chain"', '"chain'),
        ["samples.jsonl line 5", "not a JSON"],
    ),
    (
        "repeated draw",
        lambda d: _append(
            d / "samples.jsonl", (d / "samples.jsonl").read_text().splitlines()[0] + "\n"
        ),
        ["samples.jsonl", "chain 0 has draw 0 where draw 4 was expected"],
    ),
    (
        "torn last line",
        lambda d: _append(d / "samples.jsonl", '{"chain": 0, "dr'),
        [],  # what a kill in the middle of a write leaves: skipped, and the run continues
    ),
    ("corrupt run.json", lambda d: (d / "run.json").write_text("{garbage"), ["run.json"]),
    ("binary run.json", lambda d: (d / "run.json").write_bytes(b"\xff\xfe\x00\x01"), ["run.json"]),
    (
        "run.json with a bad field",
        lambda d: (d / "run.json").write_text(
            (d / "run.json").read_text().replace('"seed": 0', '"seed": "zero"')
        ),
        ["run.json", "seed"],
    ),
]


@pytest.mark.parametrize(
    ("damage", "parts"), [c[1:] for c in DAMAGED_RUNS], ids=[c[0] for c in DAMAGED_RUNS]
)
def test_a_damaged_run_directory_is_one_line(
    finished_run, tmp_path, capsys, monkeypatch, damage, parts
) -> None:
    directory = tmp_path / "run"
    shutil.copytree(finished_run, directory)
    damage(directory)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    code = main(["sample", "--resume", str(directory), "--samples", "5", "--no-progress"])
    out, err = capsys.readouterr()
    if not parts:  # the one tolerated damage: the run continues
        assert code == 0, err
        return
    assert code == 2, out + err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    assert str(directory) in err  # the message names the file
    after = {p.name: p.read_bytes() for p in directory.iterdir()}
    damaged_spec = "run.json" in err
    if not damaged_spec:  # nothing was written into a run that cannot continue
        assert {k: v for k, v in after.items() if k != "run.json"} == {
            k: v for k, v in before.items() if k != "run.json"
        }


class _NoWeights:
    """Stands in for load_model: a case that reaches it has not been checked early enough."""

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the weights were loaded before the input was checked")


# (name, argv after "sample", message part); each runs with --model and --out added
BAD_SAMPLE_ARGS: list[tuple[str, list[str], str]] = [
    ("reversed range", ["--sequence", TEXT, "--free", "6-2"], "is reversed; write it low-high"),
    ("position 0", ["--sequence", TEXT, "--free", "0"], "positions are 1-based"),
    ("range past the end", ["--sequence", TEXT, "--free", "3-30"], "falls outside the sequence"),
    ("unknown word", ["--sequence", "a b zz"], "outside the vocabulary"),
    ("negative seed", ["--sequence", TEXT, "--seed", "-1"], "--seed must be in [0, 4294967295]"),
    ("huge seed", ["--sequence", TEXT, "--seed", str(2**40)], "--seed must be in"),
    ("bad temperature", ["--sequence", TEXT, "--temperature", "0"], "finite and > 0"),
    ("nan temperature", ["--sequence", TEXT, "--temperature", "nan"], "finite and > 0"),
    ("bad device", ["--sequence", TEXT, "--device", "gpu"], "unknown device 'gpu'"),
    ("different lengths", ["--sequence", "a b", "--sequence", "a b c"], "different lengths"),
    ("too long", ["--sequence", " ".join(["a"] * 40)], "has only 32 positions"),
    ("free mask string", ["--sequence", TEXT, "--free", "**"], "has 2 characters"),
    ("unknown expert", ["--sequence", TEXT, "--expert", "charm"], "unknown expert 'charm'"),
    ("expert key", ["--sequence", TEXT, "--expert", "max-mutations:q=1"], "takes no key 'q'"),
    ("expert value", ["--sequence", TEXT, "--expert", "max-mutations:k=x"], "needs k=<integer>"),
    ("bad regex", ["--sequence", TEXT, "--expert", "forbid:a(b"], "does not compile"),
    ("allowed range", ["--sequence", TEXT, "--expert", "allowed:7-12:a"], "falls outside"),
    ("allowed token", ["--sequence", TEXT, "--expert", "allowed:2:zz"], "'zz' is not a token"),
    (
        "start breaks a constraint",
        ["--sequence", TEXT, "--free", "2-7", "--expert", "forbid:c d"],
        "violates the constraint forbid c d (it holds 'c d' at residues 3-4)",  # as --free counts
    ),
    (
        "composition on text",
        ["--sequence", TEXT, "--expert", "composition:property=charge;target=0"],
        "needs a protein model",
    ),
]


@pytest.mark.parametrize(
    ("argv", "message"), [c[1:] for c in BAD_SAMPLE_ARGS], ids=[c[0] for c in BAD_SAMPLE_ARGS]
)
def test_bad_sample_input_is_one_line_before_the_weights_load(
    model_dir, tmp_path, capsys, monkeypatch, argv, message
) -> None:
    monkeypatch.setattr(pyro_mlm.models.load, "load_model", _NoWeights())
    out = tmp_path / "out"
    code = main(["sample", *argv, "--model", model_dir, "--out", str(out), "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()  # nothing is created for a run that never starts


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_cpu_only_torch_is_one_line(model_dir, tmp_path, capsys) -> None:
    code = main(["score", "--model", model_dir, "a b", "--device", "cuda"])
    _, err = capsys.readouterr()
    assert code == 2 and "use --device cpu" in err and err.count("\n") == 1
    code = main(["sample", "--model", model_dir, "--sequence", TEXT, "--device", "cuda:0"])
    _, err = capsys.readouterr()
    assert code == 2 and "use --device cpu" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xd8", "is not a text file"),
        (b"a b c\x00d e\n", "holds NUL bytes"),
        (b"\n\n# only a comment\n", "holds no sequence"),
    ],
)
def test_a_bad_sequences_file_names_the_file(
    model_dir, tmp_path, capsys, monkeypatch, content, message
) -> None:
    monkeypatch.setattr(pyro_mlm.models.load, "load_model", _NoWeights())
    path = tmp_path / "starts.fa"
    path.write_bytes(content)
    for argv in (
        ["sample", "--model", model_dir, "--sequences-file", str(path), "--out", str(tmp_path)],
        ["score", "--model", model_dir, "--file", str(path)],
    ):
        code = main(argv)
        _, err = capsys.readouterr()
        assert code == 2 and str(path) in err and message in err, err


def test_score_checks_every_sequence_before_the_weights_load(model_dir, capsys, monkeypatch):
    monkeypatch.setattr(pyro_mlm.models.load, "load_model", _NoWeights())
    code = main(["score", "--model", model_dir, "a b", "c zz"])
    _, err = capsys.readouterr()
    assert code == 2 and "sequence 2:" in err and "outside the vocabulary" in err


# ---------------------------------------------------------------- API: experts and energies
def _at_h(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """An expert that returns ``value`` for any sequence with word 'h' (id 12) at position 2."""

    def expert(tokens: torch.Tensor) -> torch.Tensor:
        return torch.where(tokens[:, 2] == 12, value, 0.0)

    return expert


@pytest.mark.parametrize(
    ("value", "words"),
    [(float("-inf"), ["must not return -inf", "chain"]), (float("nan"), ["nan", "chain"])],
)
def test_an_expert_returning_minus_inf_or_nan_mid_run_is_an_error(mlm, value, words) -> None:
    from conftest import run_mcmc

    free = torch.zeros(8, dtype=torch.bool)
    free[2] = True  # one free position, so the bad value is proposed within a few steps
    kernel = MaskedMH(MLMEnergy(mlm), free=free, extra_potential=_at_h(value))
    start = mlm.encode("a b c d e f").repeat(3, 1)
    with pytest.raises(EnergyError) as caught:
        run_mcmc(kernel, start, samples=200, warmup=0)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert "'a h c d e f'" in message  # the sequence is named


@pytest.mark.parametrize("value", [float("-inf"), float("nan")])
def test_a_bad_expert_value_at_the_start_is_an_error_not_forbidden(mlm, value) -> None:
    kernel = MaskedMH(MLMEnergy(mlm), extra_potential=_at_h(value))
    kernel.initial_params = {"tokens": mlm.encode("a h c").repeat(2, 1)}
    with pytest.raises(EnergyError, match="chain 0") as caught:
        kernel.setup(0)
    assert "forbid" not in str(caught.value).split(":")[0]


@pytest.mark.parametrize(
    ("returned", "error", "message"),
    [
        (None, TypeError, "returned NoneType; it must return a float tensor [N]"),
        ("1.0", TypeError, "returned str"),
        ([[1.0, 2.0]], ValueError, "returned shape (1, 2)"),
        (torch.tensor([True, False]), TypeError, "torch.bool"),
    ],
)
def test_an_expert_returning_the_wrong_thing_says_what_was_expected(
    mlm, returned, error, message
) -> None:
    kernel = MaskedMH(MLMEnergy(mlm), extra_potential=lambda tokens: returned)
    kernel.initial_params = {"tokens": mlm.encode("a b c").repeat(2, 1)}
    with pytest.raises(error) as caught:
        kernel.setup(0)
    assert message in str(caught.value), str(caught.value)


def test_the_potential_applies_the_same_checks(mlm) -> None:
    potential = potential_fn(MLMEnergy(mlm), extra_potential=lambda t: torch.full((1,), torch.nan))
    with pytest.raises(EnergyError, match="sequence 0 of the batch"):
        potential({"tokens": mlm.encode("a b c").unsqueeze(0)})


def test_a_nan_mlm_energy_names_model_dtype_and_device() -> None:
    broken = tiny_mlm()
    with torch.no_grad():
        broken.model.bert.embeddings.word_embeddings.weight[7].fill_(float("nan"))
    kernel = MaskedMH(MLMEnergy(broken))
    kernel.initial_params = {"tokens": broken.encode("a b c").repeat(2, 1)}
    with pytest.raises(EnergyError) as caught:
        kernel.setup(0)
    message = str(caught.value)
    assert "MLM energy" in message and "torch.float32" in message and "cpu" in message
    assert "chain 0" in message and "'a b c'" in message


def test_damaged_checkpoint_from_the_api_is_a_value_error(finished_run, tmp_path) -> None:
    from pyro_mlm.run.store import DamagedRunError, load_checkpoint

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DamagedRunError, match="is damaged") as caught:
        load_checkpoint(str(path))
    assert isinstance(caught.value, ValueError) and str(path) in str(caught.value)
    assert os.path.exists(os.path.join(finished_run, "checkpoint.pt"))


def test_a_numbered_region_without_anarci_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    """cdrh1 needs ANARCI; cdrh3 falls back to the conserved motifs and says so."""
    import pyro_mlm.design.numbering

    if not packaged_installed("antiberty"):
        pytest.skip("antiberty is not installed")
    monkeypatch.setattr(pyro_mlm.models.load, "load_model", _NoWeights())
    monkeypatch.setattr(pyro_mlm.design.numbering, "anarci_available", lambda: False)
    vh = TRASTUZUMAB_VH
    argv = ["sample", "--model", "antiberty", "--sequence", vh, "--free", "cdrh1"]
    code = main([*argv, "--out", str(tmp_path / "o")])
    _, err = capsys.readouterr()
    assert code == 2 and "numbered regions need ANARCI: pip install 'pyro-mlm[numbering]'" in err, (
        err
    )
    assert err.count("\n") == 1
    import pyro_mlm.design.sites
    from pyro_mlm.design.sites import parse_free
    from pyro_mlm.models.load import load_vocabulary

    monkeypatch.setattr(pyro_mlm.design.sites, "_NOTED", set())
    vocab = load_vocabulary("antiberty")
    mask = parse_free("cdrh3", vocab.encode(vh), vocab)
    mask = parse_free("cdrh3", vocab.encode(vh), vocab)  # a second chain: no second note
    assert vocab.region_text(vocab.encode(vh)[mask]) == "SRWGGDGFYAMDY"
    assert capsys.readouterr().err.count("cdrh3 is read from the conserved YYC and WGxG") == 1
