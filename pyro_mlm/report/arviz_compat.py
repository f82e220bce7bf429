"""The one module that knows which ArviZ line is installed: 0.x or 1.x.

pip installs ArviZ 0.23 on Python 3.10/3.11 and ArviZ 1.x (arviz-base, arviz-stats,
arviz-plots) on Python >= 3.12. The two lines hold the same draws in different objects:

==================  ================================  ==================================
                    ArviZ 0.x                         ArviZ 1.x
==================  ================================  ==================================
object              ``InferenceData``                 ``xarray.DataTree``
a group             ``idata.posterior`` (Dataset)     ``dt["posterior"]`` (a DataTree
                                                      node: ``.to_dataset()``)
``from_dict``       ``from_dict(posterior=...)``      ``from_dict({"posterior": ...})``
Pyro converter      ``az.from_pyro(mcmc)``            none (use ``to_inference_data``)
netCDF              ``h5netcdf`` a dependency         no backend installed with it
``az.summary``      94% HDI, rounded to 2 decimals,   89% equal-tailed interval, tail
                    tail ESS at 5% and 95%            ESS at 11% and 89%
==================  ================================  ==================================

Every function here returns or reads the installed line's native object, so a user's
own ``az.summary``, ``az.rhat``, ``az.plot_trace`` work on what the library gives. The
statistics the library reports (:func:`rhat`, :func:`ess`, :func:`mcse`) are the same
definitions on both lines (rank-normalised split R-hat, bulk ESS, tail ESS at the 5% and
95% quantiles, MCSE of the mean and of the sd, Vehtari et al. 2021): the same numbers,
tested on fixed draws in both.
"""

from __future__ import annotations

import functools
import warnings
from types import ModuleType
from typing import Any

import numpy as np

GROUPS = ("posterior", "sample_stats", "constant_data", "sequences")
TAIL_PROB = (0.05, 0.95)  # ArviZ 0.x's tail-ESS quantiles; 1.x's default is 0.11 and 0.89


@functools.cache
def arviz() -> ModuleType:
    """The installed ArviZ, imported without 0.23's refactor notice."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

    return az


def line() -> int:
    """The installed ArviZ's major version: 0 (InferenceData) or 1 (DataTree)."""
    return int(arviz().__version__.split(".")[0])


def build(
    groups: dict[str, dict[str, np.ndarray]],
    dims: dict[str, list[str]],
    posterior_coords: dict[str, tuple[Any, np.ndarray]] | None = None,
) -> Any:
    """The installed line's object from arrays ``[chain, draw, ...]`` per group.

    ``groups`` maps a group name (``posterior``, ``sample_stats``, ``constant_data``, and
    ``sequences``: ours, which ArviZ's defaults never read) to its variables; ``dims``
    names each variable's dimensions after ``(chain, draw)`` (all of them for
    ``constant_data``); ``posterior_coords`` are extra coordinates of the posterior and of
    ``sequences`` (e.g. the decoded sequence over ``(chain, draw)``).
    """
    import xarray as xr

    az = arviz()
    given = {k: v for k, v in groups.items() if v and k != "sequences"}
    with warnings.catch_warnings():
        # a short run (fewer draws than chains) is valid; ArviZ suspects a transposed array
        warnings.filterwarnings("ignore", message="More chains", category=UserWarning)  # 0.x
        warnings.filterwarnings("ignore", message="Found chain dimension", category=UserWarning)
        if line() >= 1:
            data = az.from_dict(given, dims=dims)
        else:
            data = az.from_dict(**given, dims=dims)
    posterior = dataset(data, "posterior")
    if posterior_coords:
        posterior = posterior.assign_coords(posterior_coords)
        if line() >= 1:
            data["posterior"] = posterior
        else:
            data.posterior = posterior
    if groups.get("sequences"):
        extra = xr.Dataset(
            {k: (("chain", "draw", *dims.get(k, [])), v) for k, v in groups["sequences"].items()},
            coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values},
        ).assign_coords(posterior_coords or {})
        if line() >= 1:
            data["sequences"] = xr.DataTree(extra)
        else:
            data.add_groups({"sequences": extra})
    return data


def has_group(data: Any, name: str) -> bool:
    """Whether ``data`` (either line's object) has the group ``name``."""
    if line() >= 1:
        return name in data.children
    return name in data.groups()


def dataset(data: Any, name: str = "posterior") -> Any:
    """The group ``name`` of ``data`` as an ``xarray.Dataset`` (either line)."""
    if not has_group(data, name):
        raise KeyError(f"no {name} group in the inference data")
    group = data[name]
    return group.to_dataset() if line() >= 1 else group


def to_netcdf(data: Any, path: str) -> None:
    """Write ``data`` as netCDF-4 groups (``h5netcdf``): readable by either line's
    ``az.from_netcdf`` (and by ``xarray.open_datatree``)."""
    import importlib.util

    missing = [m for m in ("h5netcdf", "h5py") if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(
            f"{path} needs the netCDF backend {' and '.join(missing)}, which pyro-mlm "
            f"declares: pip install {' '.join(missing)} (the draws are in samples.jsonl)"
        )
    data.to_netcdf(path, engine="h5netcdf")


def from_netcdf(path: str) -> Any:
    """Read a file :func:`to_netcdf` wrote, under either line, as the installed line's
    object."""
    return arviz().from_netcdf(path, engine="h5netcdf")


def rhat(values: np.ndarray) -> float:
    """Rank-normalised split R-hat of ``values [chains, draws]`` (both lines' default)."""
    return float(arviz().rhat(np.ascontiguousarray(values, dtype=float)))


def ess(values: np.ndarray, method: str = "bulk") -> float:
    """Bulk or tail ESS of ``values [chains, draws]``; the tail ESS at the 5% and 95%
    quantiles on both lines."""
    az = arviz()
    values = np.ascontiguousarray(values, dtype=float)
    if method == "tail" and line() >= 1:
        return float(az.ess(values, method="tail", prob=TAIL_PROB))
    return float(az.ess(values, method=method))


def mcse(values: np.ndarray, method: str = "mean") -> float:
    """Monte Carlo standard error of the mean or the sd of ``values [chains, draws]``."""
    return float(arviz().mcse(np.ascontiguousarray(values, dtype=float), method=method))
