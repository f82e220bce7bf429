"""What the Pyro kernel keeps beside Pyro's samples: each kept draw's tokens and records.

Pyro's defaults compute on every saved site and every diagnostic: ``MCMC.summary()`` prints
a row per element of each site and ``MCMC.diagnostics()`` prints every value the kernel's
``diagnostics()`` returns. So the kernel saves only the chain's summaries as sites
(``save_params``: ``energy``, ``hamming``, ``length`` where the region's length varies,
Pyro's own option for "large nuisance variables") and hands the token ids and per-sweep
records of the kept draws to Pyro as one :class:`SweepRecords` per chain, which prints as
one line. :func:`~pyro_mlm.pyro.conversion.get_tokens` and
:func:`~pyro_mlm.pyro.conversion.to_inference_data` read them back; ``MCMC(...,
save_params=["tokens", "energy", "hamming"])`` puts the tokens in ``get_samples()`` too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

SUMMARY_SITES = ("energy", "hamming")  # saved by default; "length" too where it varies
RECORDS_KEY = "draws"  # the key of MCMC.diagnostics() that holds each chain's records


def record_sweep(
    records: dict[str, list[torch.Tensor]], info: Any, tokens: torch.Tensor, seconds: float
) -> None:
    """Append a kept sweep to ``records`` (name -> per-sweep ``[C, ...]`` tensors): the sweep
    info's fields, the chains' ``tokens`` and the sweep's wall time ``seconds``."""
    records.setdefault("seconds", []).append(torch.full(info.rows.shape, seconds))
    for name, value in info._asdict().items():
        records.setdefault(name, []).append(value.cpu())
    records.setdefault("tokens", []).append(tokens.cpu())


class SweepRecords(Mapping[str, torch.Tensor]):
    """One Pyro chain's kept draws: name -> ``[draws, C, ...]`` tensor (``tokens [draws, C,
    L]`` as long ids, each sweep-info field, ``seconds``), and ``initial_tokens [C, L]``.

    A read-only mapping whose ``repr`` is one line (what ``MCMC.diagnostics()`` shows).
    """

    def __init__(
        self, records: dict[str, torch.Tensor], initial_tokens: torch.Tensor | None
    ) -> None:
        self._records = dict(records)
        self.initial_tokens = initial_tokens

    @classmethod
    def stacked(
        cls, lists: dict[str, list[torch.Tensor]], initial_tokens: torch.Tensor | None
    ) -> SweepRecords:
        """From per-sweep lists of ``[C, ...]`` tensors (empty lists: no kept draw)."""
        return cls({k: torch.stack(v) for k, v in lists.items() if v}, initial_tokens)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._records[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def draws(self) -> int:
        """The kept draws recorded."""
        return next((int(v.shape[0]) for v in self._records.values()), 0)

    def __repr__(self) -> str:
        chains = next((int(v.shape[1]) for v in self._records.values() if v.dim() > 1), 0)
        return (
            f"SweepRecords({self.draws} draws x {chains} chains: {', '.join(self._records)}; "
            "pyro_mlm.get_tokens(mcmc), pyro_mlm.to_inference_data(mcmc))"
        )
