"""One writer per output: a run directory or a score file is claimed for a process's life.

The claim is an exclusive ``flock`` on the directory (or file) itself, taken without
waiting: a second ``pyro-mlm sample --out DIR`` (or ``score --out F``, or a campaign) is
refused at once with one line, and the first goes on. The kernel drops the lock when
the process ends in any way (an error, Ctrl-C, ``kill -9``), so no stale lock is left,
and nothing is written to claim: no lock file sits beside the outputs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no claim, as before
    fcntl = None  # type: ignore[assignment]


class Claimed(ValueError):
    """Another process holds the output (a ``ValueError``: the CLI prints one line)."""


@contextlib.contextmanager
def claimed(path: str, what: str, *, directory: bool) -> Iterator[None]:
    """Hold ``path`` (a directory, created if missing, or a file, created empty if
    missing) exclusively while the block runs; ``Claimed`` at once if another holds it.

    A directory or file this call created and that is still empty when the block ends
    (a run that never started) is removed again, so a refused or failed start leaves
    nothing behind.
    """
    created = not os.path.exists(path)
    if directory:
        os.makedirs(path, exist_ok=True)
        fd = os.open(path, os.O_RDONLY)
    else:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Claimed(_held(path, what)) from None
        try:
            yield
        finally:
            if created:
                _remove_if_empty(path, directory)
    finally:
        os.close(fd)  # drops the lock


def check_unclaimed(path: str, what: str) -> None:
    """``Claimed`` now if another process holds ``path`` (a fast check before a command's
    other checks; :func:`claimed` takes the claim itself)."""
    if fcntl is None or not os.path.exists(path):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise Claimed(_held(path, what)) from None
    finally:
        os.close(fd)


def _held(path: str, what: str) -> str:
    return (
        f"{what} {path} is being written by another process; wait for it to finish (then "
        "--resume it), or choose another output"
    )


def _remove_if_empty(path: str, directory: bool) -> None:
    with contextlib.suppress(OSError):
        if directory and not os.listdir(path):
            os.rmdir(path)
        elif not directory and os.path.getsize(path) == 0:
            os.remove(path)
