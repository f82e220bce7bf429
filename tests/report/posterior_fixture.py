"""Writes ``data/posterior_arviz<MAJOR>.nc``: a tiny run's draws as the installed ArviZ line
writes ``posterior.nc`` (``test_posterior_file.py`` reads the files of both lines in each).
Run once per line: ``python tests/report/posterior_fixture.py`` under Python 3.11 (ArviZ
0.x) and under Python 3.12+ (ArviZ 1.x)."""

from __future__ import annotations

import pathlib

import numpy as np

CHAINS, DRAWS, POSITIONS = 3, 12, 5


def draws() -> dict[str, np.ndarray]:
    """Seeded draws with every kind of field a run records: token ids, energy, Hamming,
    the decoded text, per-sweep statistics (a vector one too)."""
    rng = np.random.default_rng(20261207)
    tokens = rng.integers(5, 9, size=(CHAINS, DRAWS, POSITIONS))
    tokens[..., 0], tokens[..., -1] = 2, 3  # special tokens never change
    letters = np.array(list("abcdefghi"))
    return {
        "tokens": tokens,
        "energy": rng.normal(10.0, 1.0, size=(CHAINS, DRAWS)),
        "hamming": (tokens != tokens[0, 0]).sum(-1),
        "sequence": np.array([[" ".join(letters[row[1:-1]]) for row in chain] for chain in tokens]),
        "free_region": np.array(
            [[" ".join(letters[row[2:4]]) for row in chain] for chain in tokens]
        ),
        "lp": -rng.normal(10.0, 1.0, size=(CHAINS, DRAWS)),
        "acceptance_rate": rng.random((CHAINS, DRAWS)),
        "rows": np.full((CHAINS, DRAWS), 3),
        "swap_rate": rng.random((CHAINS, DRAWS, 2)),
    }


RESIDUE = np.array([0, 1, 2, 3, 0])


def path(major: int) -> pathlib.Path:
    return pathlib.Path(__file__).with_name("data") / f"posterior_arviz{major}.nc"


if __name__ == "__main__":
    from pyro_mlm.report.arviz_compat import line, to_netcdf
    from pyro_mlm.report.diagnostics import inference_data_from_draws

    out = path(line())
    to_netcdf(inference_data_from_draws(draws(), residue=RESIDUE), str(out))
    print(f"wrote {out}")
