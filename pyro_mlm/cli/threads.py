"""torch's thread count for a command, chosen from the load, and the note that says so."""

from __future__ import annotations

import sys

from pyro_mlm.cli.inputs import UsageError

THREAD_NOTE: list[str] = []  # said once the model loads (not before an input error)


def say_thread_note() -> None:
    """Print the note on threads that :func:`set_threads` left, once, on stderr."""
    while THREAD_NOTE:
        print(THREAD_NOTE.pop(), file=sys.stderr)


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads: ``--threads``, else ``OMP_NUM_THREADS`` if set, else the
    cores this process may use, or one thread (said once a model loads) when the
    machine's load already exceeds those cores.

    Several processes each running as many threads as there are cores ran 3-10x slower
    here than one thread each. Without torch imported yet (so a bad input is reported
    first), the count goes to ``OMP_NUM_THREADS``, which torch reads when it loads.
    """
    import os

    THREAD_NOTE.clear()
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    preset = os.environ.get("OMP_NUM_THREADS", "")
    if threads is None and preset.isdecimal() and int(preset) > 0:
        threads = int(preset)  # the environment's explicit choice, as torch would read it
    if threads is None:
        affinity = getattr(os, "sched_getaffinity", None)
        cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        threads = cores
        if cores > 1 and load > cores:
            threads = 1
            THREAD_NOTE[:] = [
                f"note: the load average ({load:.1f}) exceeds this machine's {cores} cores, "
                "so torch runs 1 thread (several processes with a thread per core each ran "
                "3-10x slower here); --threads N overrides"
            ]
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
