"""The README's Quickstart runs as written (so it cannot drift from the library)."""

from __future__ import annotations

import contextlib
import io
import os
import re

import pytest
from conftest import arviz_constant_warnings_allowed, packaged_installed

pytestmark = pytest.mark.integration  # the packaged Sapiens-H

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def python_block(heading: str = "## Quickstart") -> str:
    """The first python block of the README's section that starts with ``heading``."""
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match is not None, f"{heading!r} has no python block"
    return match.group(1)


@pytest.mark.skipif(not packaged_installed("sapiens-h"), reason="needs sapiens==1.0.5")
def test_the_quickstart_runs_as_written(monkeypatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), arviz_constant_warnings_allowed():
        namespace: dict[str, object] = {}
        exec(compile(python_block(), "README.md#quickstart", "exec"), namespace)
    printed = out.getvalue()
    assert "energy" in printed and "hamming" in printed and "r_hat" in printed
    draws, tokens = namespace["draws"], namespace["tokens"]
    assert set(draws) == {"energy", "hamming"} and draws["energy"].shape == (4, 20)
    assert tokens.shape[:2] == (4, 20)
    assert set(namespace["idata"].posterior.data_vars) == {"energy", "hamming"}
    # Pyro's table: a header, the two summaries' rows (no row per token position)
    table = printed[: printed.index("mean", printed.index("hamming"))]
    assert "tokens[" not in printed and table.count("\n") < 12


@pytest.mark.skipif(not packaged_installed("sapiens-h"), reason="needs sapiens==1.0.5")
def test_the_scan_snippet_runs_as_written() -> None:
    block = python_block("## The exact single-mutant landscape")
    out = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md#scan", "exec"), namespace)
    table = namespace["table"]
    assert len(table) == 13 * 19 and table["label"].iloc[0] in (
        "105",  # IMGT, where ANARCI numbers the chain
        "98",  # the residue number, where it is not installed
    )
    best = table.nsmallest(5, "delta_energy")
    assert "delta_energy" in out.getvalue() and all(m in out.getvalue() for m in best["mutation"])
