"""Info records: what a proposal or a sweep did in each chain, as ``[C]`` tensors.

A record is a frozen dataclass, so that one record extends another by inheriting its
fields (a :class:`~pyro_mlm.samplers.tuned.TunedInfo` is a
:class:`~pyro_mlm.samplers.base.SweepInfo` plus ``candidate``) instead of listing them
again; it reads like a ``NamedTuple`` (``_asdict``, ``_replace``, ``_fields``, iteration in
field order), which the shells use to record and save every field without knowing them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, TypeVar

import torch

R = TypeVar("R", bound="Record")


@dataclasses.dataclass(frozen=True, eq=False)
class Record:
    """Base of the info records (no field of its own)."""

    @property
    def _fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))

    def _asdict(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self._fields}

    def _replace(self: R, **changes: Any) -> R:
        return dataclasses.replace(self, **changes)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self._asdict().values())


_EXTENDED: dict[tuple[type, tuple[str, ...]], type] = {}


def extended(parent: type[R], suffix: str, names: tuple[str, ...]) -> Any:
    """The record class ``parent`` plus tensor fields ``names`` (built once), for a record
    whose parent is known only at run time (the variable-length sampler adds ``length`` and
    ``length_accept`` to its inner sampler's sweep info); typed ``Any``: its fields are known
    only at run time."""
    key = (parent, names)
    if key not in _EXTENDED:
        _EXTENDED[key] = dataclasses.make_dataclass(
            parent.__name__ + suffix,
            [(name, torch.Tensor) for name in names],
            bases=(parent,),
            frozen=True,
            eq=False,
        )
    return _EXTENDED[key]
