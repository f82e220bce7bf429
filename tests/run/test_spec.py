"""The choices a run offers (pyro_mlm/run/spec.py, torch-free for --help) equal what the
code behind them takes."""

from __future__ import annotations

import typing

import pytest

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.energy import Parametrization
from pyro_mlm.run import spec
from pyro_mlm.samplers import scan


def test_the_run_choices_are_the_owners_choices(mlm) -> None:
    assert spec.ENERGIES == typing.get_args(Parametrization)
    assert spec.SCANS == scan.SCANS == typing.get_args(scan.Scan)
    for over in spec.ENERGY_OVER:
        assert Target(MLMEnergy(mlm), over=over).over == over
    with pytest.raises(ValueError):
        Target(MLMEnergy(mlm), over="everything")
