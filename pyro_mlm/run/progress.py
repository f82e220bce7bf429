"""Progress of a long job: a tqdm bar on a terminal, plain lines in a log file.

With stderr a terminal, a tqdm bar; otherwise (a log file, a batch job) one plain
line every ``interval`` seconds and at the end, with the step counts, the job's
statistics, the elapsed time and an estimate of the time left. Off when disabled or
when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

PLAIN_INTERVAL = 30.0  # seconds between plain progress lines


class Progress:
    """Counts ``total`` steps of a job, starting at ``done``.

    Parameters
    ----------
    total, done
        Steps in the whole job (None when the job stops on a rule, such as the stop rule
        of ``--until-converged``: no estimate of the time left then) and steps already
        done (a resumed run).
    enabled
        ``False`` shows nothing.
    desc, unit
        A label and the name of one step (``"sweep"``, ``"seq"``).
    interval
        Seconds between plain lines when stderr is not a terminal.
    stream
        Where to write (default ``sys.stderr``).
    """

    def __init__(
        self,
        total: int | None,
        done: int = 0,
        *,
        enabled: bool = True,
        desc: str = "",
        unit: str = "step",
        interval: float = PLAIN_INTERVAL,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.done, self.start_done = total, done, done
        self.desc, self.unit, self.interval = desc, unit, interval
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and not os.environ.get("CI")
        self.began = self.last_line = time.perf_counter()
        self.stats: Mapping[str, Any] = {}
        self.phase = ""
        self.printed = -1  # ``done`` at the last plain line
        self._bar: Any = None
        if self.enabled and _is_tty(self.stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=done, unit=unit, desc=desc, file=self.stream)

    def update(
        self, steps: int = 1, stats: Mapping[str, Any] | None = None, phase: str = ""
    ) -> None:
        """Count ``steps`` more done, with the latest statistics and phase label."""
        self.done += steps
        self.stats = stats if stats is not None else self.stats
        self.phase = phase or self.phase
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix(dict(self.stats), refresh=False)
            if phase:
                self._bar.set_description(phase)
            self._bar.update(steps)
            return
        now = time.perf_counter()
        if self.done == self.start_done + steps or now - self.last_line >= self.interval:
            self._line(now)

    def close(self) -> None:
        """Close the bar, or write the last plain line."""
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.done > self.start_done and self.printed != self.done:
            self._line(time.perf_counter())  # not twice when the last update just printed

    def _line(self, now: float) -> None:
        self.last_line, self.printed = now, self.done
        elapsed = now - self.began
        ran = self.done - self.start_done
        of = "" if self.total is None else f"/{self.total}"
        parts = [f"{self.desc}: {self.unit} {self.done}{of}"]
        if self.phase:
            parts.append(self.phase)
        parts += [f"{k} {v}" for k, v in self.stats.items()]
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if self.total is not None:
            left = (self.total - self.done) * elapsed / ran if ran else float("nan")
            parts.append(f"left ~{format_seconds(left)}" if self.done < self.total else "done")
        print(", ".join(parts), file=self.stream, flush=True)


def format_seconds(seconds: float) -> str:
    """``75`` -> ``'1m15s'``, ``3725`` -> ``'1h02m'``."""
    if seconds != seconds:  # NaN
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False
