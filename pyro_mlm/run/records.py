"""The one draw-record schema: a line of ``samples.jsonl``, written and read back.

A draw record is one chain's draw after one sweep: the fields of :data:`FIELDS` (with
their JSON types) and then every field of the sampler's sweep info (a ``NamedTuple`` of
``[C]`` or ``[C, n]`` tensors), under its own name except for :data:`RENAMES`. So a
per-sweep statistic a sampler adds to its info (replica exchange's ``swap_rate``,
regenerate's ``regenerations``, tuned's ``candidate``) is written, read back by
:func:`stat_arrays`, stored in ``posterior.nc``'s ``sample_stats`` and summarised in
``summary.csv`` with no edit here or there. Wall times stay out of the records: a
resumed run replays its draws byte for byte. Records may hold sequences of different
lengths (a run over a variable-length region): read back with ``fixed_length=False``,
``tokens`` is padded with :data:`PAD` and ``length`` holds each draw's.

>>> sorted(FIELDS)[:3]
['accept_prob', 'acceptance_rate', 'chain']
>>> RENAMES["is_novel"]
'novel_rate'
"""

from __future__ import annotations

from typing import Any

import numpy as np

# the fields every draw record has, and the JSON types they must have
FIELDS: dict[str, tuple[type, ...]] = {
    "chain": (int,),
    "draw": (int,),
    "sequence": (str,),
    "energy": (int, float),
    "hamming": (int,),
    "acceptance_rate": (int, float),
    "novel_rate": (int, float),
    "accept_prob": (int, float),
    "tokens": (list,),
}
# sweep-info field -> record key, where they differ
RENAMES = {"is_novel": "novel_rate"}
INTEGER_STATS = ("rows",)  # recorded as JSON integers
PAD = -1  # token id padding the shorter sequences of a run whose lengths vary


def draw_record(
    chain: int,
    draw: int,
    sequence: str,
    energy: float,
    hamming: int,
    info: Any,
    tokens: list[int],
) -> dict[str, Any]:
    """One chain's record: :data:`FIELDS` and every field of ``info`` (this chain's row)."""
    record: dict[str, Any] = {
        "chain": chain,
        "draw": draw,
        "sequence": sequence,
        "energy": float(energy),
        "hamming": int(hamming),
    }
    for name, value in info._asdict().items():
        record[RENAMES.get(name, name)] = _json_value(value[chain], name)
    record["tokens"] = [int(t) for t in tokens]
    return record


def stat_names(record: dict[str, Any]) -> list[str]:
    """The per-sweep statistics of a record, by their sweep-info names."""
    back = {v: k for k, v in RENAMES.items()}
    out = [back.get(k, k) for k in ("acceptance_rate", "novel_rate", "accept_prob")]
    return out + [k for k in record if k not in FIELDS]


def stat_arrays(ordered: list[list[dict[str, Any]]]) -> dict[str, np.ndarray]:
    """``[chain, draw, ...]`` float arrays of every statistic that all records hold.

    Raises ``ValueError`` naming a statistic whose values do not form one array.
    """
    first = ordered[0][0]
    data: dict[str, np.ndarray] = {}
    for name in stat_names(first):
        key = RENAMES.get(name, name)
        if not all(key in x for chain in ordered for x in chain):
            continue  # a statistic some sweeps lack (a run resumed by another version)
        try:
            data[name] = np.array([[x[key] for x in chain] for chain in ordered], np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"the {key!r} values are malformed") from err
    return data


def padded_tokens(ordered: list[list[dict[str, Any]]]) -> np.ndarray:
    """``[chain, draw, L_max]`` token ids of records whose sequences may differ in length,
    each padded with :data:`PAD` after its end."""
    longest = max(len(x["tokens"]) for chain in ordered for x in chain)
    out = np.full((len(ordered), len(ordered[0]), longest), PAD, dtype=np.int64)
    for c, chain in enumerate(ordered):
        for d, record in enumerate(chain):
            out[c, d, : len(record["tokens"])] = record["tokens"]
    return out


def _json_value(value: Any, name: str) -> Any:
    """One chain's info value for JSON: an int (rows), a float, or a list (per pair)."""
    if value.dim():
        return [round(float(v), 6) for v in value]
    return int(value) if name in INTEGER_STATS else float(value)
