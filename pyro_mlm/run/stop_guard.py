"""Stop requests (SIGINT, SIGTERM) that never tear a sweep being saved."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class Interrupted(Exception):
    """Raised inside the sweep loop by SIGINT (Ctrl-C) or SIGTERM (``kill``)."""


class StopGuard:
    """SIGINT and SIGTERM stop the run, but never while a sweep is being saved.

    Outside ``with guard:`` a signal raises :class:`Interrupted` at once; inside, it
    is held and raised when the block ends, so ``samples.jsonl`` never holds a torn
    sweep and the checkpoint always matches it (``kill -9`` is handled on resume).
    """

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.depth:
            self.pending = True
        else:
            raise Interrupted

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.depth -= 1
        if self.pending and not self.depth and exc_type is None:
            self.pending = False
            raise Interrupted

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        signals = (signal.SIGINT, signal.SIGTERM)
        try:
            previous = [signal.signal(sig, self._handler) for sig in signals]
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            for sig, handler in zip(signals, previous, strict=True):
                signal.signal(sig, handler)
