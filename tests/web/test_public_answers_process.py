"""The public announcements' answer process ends with the gateway that started it, however the
gateway ends (gateway/public_answers.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A gateway process in miniature: it starts the answer process as the gateway does, says the
# pids, and waits to be killed.
_GATEWAY = """
import os, sys, time
from gateway.public_answers import _started_pool
pool = _started_pool()
print(os.getpid(), *pool._processes, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose; its parent (init) reaps it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_the_answer_process_ends_when_its_gateway_is_killed():
    gateway = subprocess.Popen(
        [sys.executable, "-c", _GATEWAY], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    line: list[str] = []
    try:
        line = gateway.stdout.readline().split()
        assert len(line) == 2, line
        worker = int(line[1])
        assert _alive(worker)
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
        deadline = time.monotonic() + 15
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), f"answer process {worker} outlived its gateway"
    finally:
        if gateway.poll() is None:
            gateway.kill()
        for pid in line[1:]:
            if _alive(int(pid)):
                os.kill(int(pid), signal.SIGKILL)
