"""Command-line inputs read from files, and the error type for a mistake in them."""

from __future__ import annotations

import os
import sys


class UsageError(ValueError):
    """A mistake in the command line, reported as one line."""


def read_sequences(path: str) -> list[str]:
    """Sequences from a FASTA file (``>`` headers) or one per line; ``-`` reads stdin.

    See :func:`read_records`, which keeps each record's name.
    """
    return [sequence for _, sequence in read_records(path)]


def read_records(path: str) -> list[tuple[str, str]]:
    """``(name, sequence)`` records from FASTA (``>`` headers) or one sequence per line.

    FASTA: the name is the header's text after ``>``; a record's sequence lines are
    joined. A non-blank line before the first header, or a header with no sequence, is
    a ``UsageError`` naming the file and line: such input is never dropped silently.
    One per line: blank lines and ``#`` comments are skipped, and the name is
    ``seq<line number>``. A file that is not UTF-8 text (a binary file, say) is a
    ``UsageError`` naming it.
    """
    if path == "-":
        lines = sys.stdin.read().splitlines()
    else:
        if not os.path.isfile(path):
            raise UsageError(f"no such file: {path}")
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UsageError(
                f"{path} is not a text file (byte {err.start} is not UTF-8); give FASTA or "
                "one sequence per line"
            ) from err
        if "\x00" in text:
            raise UsageError(
                f"{path} is not a text file (it holds NUL bytes); give FASTA or one "
                "sequence per line"
            )
        lines = text.splitlines()
    records: list[tuple[str, str, int]] = []  # name, sequence, header line
    if any(line.startswith(">") for line in lines):
        for number, line in enumerate(lines, 1):
            if line.startswith(">"):
                if records and not records[-1][1]:
                    _empty_record(path, records[-1])
                records.append((line[1:].strip() or f"record{len(records) + 1}", "", number))
            elif line.strip():
                if not records:
                    raise UsageError(
                        f"{path} line {number}: sequence text before the first '>' header; "
                        "give each sequence a header line, or use one sequence per line"
                    )
                name, sequence, head = records[-1]
                records[-1] = (name, sequence + line.strip(), head)
        if records and not records[-1][1]:
            _empty_record(path, records[-1])
    else:
        records = [
            (f"seq{number}", line.strip(), number)
            for number, line in enumerate(lines, 1)
            if line.strip() and not line.startswith("#")
        ]
    if not records:
        raise UsageError(f"{path} holds no sequence")
    return [(name, sequence) for name, sequence, _ in records]


def _empty_record(path: str, record: tuple[str, str, int]) -> None:
    raise UsageError(
        f"{path} line {record[2]}: the record {record[0]!r} has no sequence; remove its "
        "header or give its sequence"
    )


def check_scale_out(args: object, *, gpus: bool = True) -> None:
    """Scale-out flags that the chosen backend would ignore, or out of range, refused
    before anything is created: ``--address`` and ``--gpus-per-worker`` need ``--backend
    ray``; ``--threads-per-worker``, ``--workers`` and ``--gpus-per-worker`` need sane
    values (``0`` threads is not silently 1)."""
    backend = getattr(args, "backend", "local")
    for name, needs_ray in (("address", True), ("gpus_per_worker", gpus)):
        value = getattr(args, name, None)
        if needs_ray and value is not None and backend != "ray":
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} does not apply to --backend local; use --backend ray")
    for name, low in (("threads_per_worker", 1), ("workers", 1)):
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise UsageError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    gpus_given = getattr(args, "gpus_per_worker", None)
    if gpus_given is not None and not 0 <= gpus_given < float("inf"):
        raise UsageError(f"--gpus-per-worker must be >= 0, got {gpus_given}")


def check_memory(chains: int, length: int, tokens: int, replicas: int = 1) -> None:
    """Refuse, with the figure, a run whose cached conditionals cannot fit in memory.

    Each chain (each replica, with replica exchange) caches its masked conditionals:
    ``chains x L x K`` float32 scores, the dominant term of a run's memory.
    """
    need = 4.0 * chains * replicas * length * tokens
    try:
        total = float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return
    if need > 0.5 * total:
        raise UsageError(
            f"--chains {chains} needs about {need / 2**30:.1f} GiB for the cached conditionals "
            f"({chains} chains x {replicas} replicas x {length} positions x {tokens} tokens x 4 "
            f"bytes), more than half of this machine's {total / 2**30:.1f} GiB; use fewer "
            "chains, or --workers on several machines"
        )


# the packaged models that pick their chain's model from the start: name -> (heavy, light)
BY_CHAIN = {"sapiens": ("sapiens-h", "sapiens-l")}


def resolve_model(name: str, sequence: str | None) -> str:
    """The model a run reads: ``sapiens`` becomes Sapiens' heavy- or light-chain model by the
    chain type of the start (:func:`pyro_mlm.design.numbering.chain_type`), said on stderr;
    any other name is returned as given. A start that is no antibody chain, or none (a
    ``--length`` start), is a ``UsageError`` naming the models to choose from."""
    if name not in BY_CHAIN:
        return name
    heavy, light = BY_CHAIN[name]
    if not sequence:
        raise UsageError(
            f"--model {name} picks the heavy or light model from the starting chain, and there "
            f"is none to read (--length): give --model {heavy} or {light}"
        )
    from pyro_mlm.design.numbering import chain_type

    chain, how = chain_type(sequence)
    if chain is None:
        raise UsageError(
            f"--model {name} picks the heavy or light model from the starting chain, and the "
            f"start is neither ({how}): give --model {heavy}, {light} or another model"
        )
    chosen = heavy if chain == "H" else light
    print(
        f"model: {chosen} ({how}; --model {light if chain == 'H' else heavy} for the other)",
        file=sys.stderr,
    )
    return chosen
