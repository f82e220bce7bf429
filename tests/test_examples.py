"""The main job (examples/sample_antiberty.py) end to end on a short real AntiBERTy run."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("antiberty") is None, reason="needs pip install antiberty==0.1.3"
)


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location(
        "sample_antiberty", EXAMPLES / "sample_antiberty.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["sample_antiberty"] = module
    spec.loader.exec_module(module)
    return module


def test_cdr_h3_is_found_between_the_conserved_motifs(example) -> None:
    seq = example.TRASTUZUMAB_VH
    first, last = example.cdr_h3_range(seq)
    assert seq[first - 1 : last] == "SRWGGDGFYAMDY"
    with pytest.raises(ValueError, match="pass --free START-END"):
        example.cdr_h3_range("EVQLVESGG")


def test_main_job_short_run_writes_its_outputs(example, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CI", "1")
    code = example.main(
        [
            "--chains",
            "2",
            "--warmup",
            "1",
            "--samples",
            "2",
            "--free",
            "100-101",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "acceptance rate" in out and "r_hat" in out and "NOT CONVERGED" in out
    assert (tmp_path / "trace.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "summary.csv").read_text().splitlines()[0].startswith(",mcse_mean")
    from pyro_mlm.diagnostics import _arviz

    idata = _arviz().from_netcdf(tmp_path / "posterior.nc")
    assert idata.posterior["tokens"].shape[:2] == (2, 2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--free", "500-600"], "falls outside the sequence"),
        (["--free", "abc"], "must look like 98-110"),
        (["--sequence", "EVQLVXJ"], "outside the vocabulary"),
        (["--temperature", "0"], "temperature must be finite and > 0"),
    ],
)
def test_main_job_errors_are_one_clear_line(example, capsys, argv, message) -> None:
    assert example.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
