#!/usr/bin/env python3
"""The project's developer commands, with nothing but Python 3.11+ installed.

    python3 run.py demo      # a sample round end to end on the embedded stack
    python3 run.py serve     # the gateway (portal, service API, announcements), a worker, the
                             # notification deliverer and the auditors' codec server for the
                             # Temporal Web UI, on the embedded stack
    python3 run.py test      # the whole test suite (what CI runs), in 4 processes; CASN_TEST_WORKERS=1 in one
    python3 run.py lint      # ruff check, ruff format --check, and mypy on domain/
    python3 run.py stop      # stop the embedded servers this project started
    python3 run.py bench     # the benchmark harness (long; not part of the tests)

Each command first makes sure .venv exists and matches requirements.lock (what the engine runs
on) and requirements-dev.lock (embedded servers, test and lint tools).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
LOCKS = (ROOT / "requirements.lock", ROOT / "requirements-dev.lock")
STAMP = VENV / ".lock-digest"


def ensure_venv() -> None:
    """Create the virtual environment and install the locked dependencies when they changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py runs on whatever python3 the user has
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    digest = hashlib.sha256(b"".join(lock.read_bytes() for lock in LOCKS)).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text() == digest:
        return
    if not has_pip(PY):
        # A .venv without pip is what a python3 without ensurepip (Debian's python3 without
        # python3-venv) leaves behind: made again from scratch, not reused for ever.
        print(f"creating virtual environment in {VENV}", flush=True)
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            sys.exit(
                f"cannot create the virtual environment {VENV}: {exc}. This python3 cannot "
                "make one with pip (on Debian or Ubuntu: apt-get install python3-venv); "
                "then run the same command again"
            )
    print("installing locked dependencies (requirements.lock, requirements-dev.lock)", flush=True)
    installed = subprocess.run(
        [
            str(PY),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *(arg for lock in LOCKS for arg in ("-r", str(lock))),
        ]
    )
    if installed.returncode != 0:
        sys.exit(
            f"installing the locked dependencies into {VENV} failed (pip's message above); "
            "run the same command again once its cause is fixed"
        )
    STAMP.write_text(digest)


def has_pip(python: Path) -> bool:
    """Whether `python` exists and runs pip."""
    if not python.exists():
        return False
    ran = subprocess.run(
        [str(python), "-m", "pip", "--version"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return ran.returncode == 0


CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> None:
    """Install Debian's chromium for the browser tests when it is missing (apt-get, as root or
    through sudo). When that fails the browser tests fail and say why; they are never skipped."""
    if CHROMIUM.exists():
        return
    apt = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    if os.geteuid() != 0:
        apt = ["sudo", "-n", *apt]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing chromium for the browser tests (apt-get)", flush=True)
    try:
        if subprocess.run(apt, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            update = (
                ["apt-get", "update"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get", "update"]
            )
            subprocess.run(update, env=env, stdout=subprocess.DEVNULL)
            subprocess.run(apt, env=env, stdout=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        print(f"cannot install chromium: {exc}; the browser tests will fail", flush=True)


# The suite waits on workflow timers and windows far more than it computes (one process keeps a
# 2-core machine under a load of 1): it runs in 4 pytest-xdist workers, each with an embedded
# stack of its own (tests/ports.py), a module on one worker with its module fixtures.
# CASN_TEST_WORKERS=1 runs it in this process, as plain pytest. (Until stop 33 one process was the
# default: the database-outage test failed under the load of three, on a query timed out, and then
# hung because a worker could not stop with the database down. Three until stop 47: 1,878 tests
# took 964 s in three from a fresh clone, 806 s in four, on this machine within an hour.)
TEST_WORKERS = "CASN_TEST_WORKERS"
DEFAULT_TEST_WORKERS = 4


def suite_workers(environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """The number of test processes: CASN_TEST_WORKERS, a whole number from 1 to 8 (default 4)."""
    given = environ.get(TEST_WORKERS, "").strip()
    if not given:
        return DEFAULT_TEST_WORKERS
    if not (given.isascii() and given.isdigit()) or not 1 <= int(given) <= 8:
        sys.exit(f"{TEST_WORKERS}: expected a whole number from 1 to 8, got {given!r}")
    return int(given)


def suite_command(workers: int) -> list[str]:
    """pytest, in `workers` processes (one runs the suite in this process, as plain pytest does)."""
    # The modules in the order tests/conftest.py gives them, the slowest first (tests/order.py),
    # not xdist's default of the most tests first.
    parallel = (
        ["-n", str(workers), "--dist", "loadscope", "--no-loadscope-reorder"] if workers > 1 else []
    )
    return [str(PY), "-m", "pytest", "-q", *parallel]


def main(argv: list[str]) -> int:
    commands = {
        "demo": [str(PY), "starter.py", "demo"],
        "test": [],  # suite_command, once CASN_TEST_WORKERS is read
        "lint": [
            str(PY),
            "-c",
            "import subprocess, sys; m = [sys.executable, '-m']; sys.exit("
            "subprocess.call(m + ['ruff', 'check', '.']) or subprocess.call(m + ['ruff', 'format', '--check', '.'])"
            " or subprocess.call(m + ['mypy']))",
        ],
        "serve": [str(PY), "serve.py", "--with-worker", "--sample-round", "--with-codec"],
        "stop": [str(PY), "worker.py", "stop-stack"],
        "bench": [str(PY), "bench.py"],
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    if argv[0] == "test":
        commands["test"] = suite_command(suite_workers())  # a bad setting stops before any set-up
    ensure_venv()
    if argv[0] == "test":
        ensure_chromium()
    os.chdir(ROOT)
    # The command takes this process's place, so a signal sent to it (Ctrl-C, `timeout`, a
    # supervisor's SIGTERM) reaches the program that runs the servers and stops them, and its
    # exit status is the command's.
    command = commands[argv[0]] + argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
