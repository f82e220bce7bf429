"""Command-line inputs read from files, and the error type for a mistake in them."""

from __future__ import annotations

import os
import sys


class UsageError(ValueError):
    """A mistake in the command line, reported as one line."""


def read_sequences(path: str) -> list[str]:
    """Sequences from a FASTA file (``>`` headers) or one per line; ``-`` reads stdin.

    A file that is not UTF-8 text (a binary file, say) is a ``ValueError`` naming it.
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
    if any(line.startswith(">") for line in lines):
        out: list[str] = []
        for line in lines:
            if line.startswith(">"):
                out.append("")
            elif out:
                out[-1] += line.strip()
        texts = [s for s in out if s]
    else:
        texts = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not texts:
        raise UsageError(f"{path} holds no sequence")
    return texts
