"""A process that ran a sample, a sharded Ray run's session and a scoring run in-process
still stops on SIGTERM and Ctrl-C: every signal guard is removed when its run ends (so the
test suite itself can be stopped)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration  # subprocesses killed mid-run

SCRIPT = """
import signal, sys, time
from pyro_mlm.cli import main
out = sys.argv[2]
base = ["--model", sys.argv[1], "--no-progress"]
assert main(["sample", *base, "--sequence", "a b c", "--free", "2", "--samples", "2",
             "--out", out + "/run"]) == 0
if sys.argv[3] == "ray":
    assert main(["score", *base, "a b", "--backend", "ray", "--out", out + "/s.csv"]) == 0
assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, signal.getsignal(signal.SIGTERM)
assert signal.getsignal(signal.SIGINT) == signal.default_int_handler
print("ready", flush=True)
time.sleep(600)
"""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("with_ray", [False, True], ids=["local", "ray"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_process_still_stops(model_dir, tmp_path, with_ray, sig) -> None:
    if with_ray:
        pytest.importorskip("ray")
    argv = [sys.executable, "-c", SCRIPT, model_dir, str(tmp_path), "ray" if with_ray else "-"]
    env = {**os.environ, "CI": "1"}
    log = tmp_path / "stderr.txt"
    with (
        open(log, "wb") as err,
        # SIGINT as a terminal gives it: a suite started as a background job (``cmd &`` in
        # a non-interactive shell) has SIGINT ignored, and a child would inherit that
        subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=err, env=env, preexec_fn=_default_sigint
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            lines = iter(proc.stdout.readline, b"")  # the runs print their results first
            assert b"ready\n" in lines, log.read_text()[-2000:]  # EOF first: it failed
            proc.send_signal(sig)
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is not None, "the signal did not stop the process"
            expected = -signal.SIGTERM if sig == signal.SIGTERM else 1  # KeyboardInterrupt
            assert proc.returncode == expected
        finally:
            proc.kill()
