"""Port offsets for test sessions that run side by side.

The suite runs in several pytest-xdist worker processes (run.py test), each with an embedded
stack of its own. Every fixed port a test uses is its base plus `OFFSET`: CASN_TEST_PORT_OFFSET
(0 to 99: two whole test sessions on one machine, each with its own) plus 100 for each worker
after the first ("gw1" is 100, "gw2" 200; run.py allows 8 workers), so no two workers' servers,
of one session or of two, ask for the same port.
"""

from __future__ import annotations

import os

# A session's offset is below STEP and a worker's a multiple of it, up to 8 workers; the fixed
# bases (tests/conftest.py, test_embedded_stack, test_formasi_continue_as_new) lie at least 1,000
# apart, so no base plus an offset meets another (tests/test_run_command.py checks every pair).
STEP = 100


def worker_index(name: str | None) -> int:
    """The worker's number in PYTEST_XDIST_WORKER ("gw3" is 3); 0 without xdist."""
    if not name:
        return 0
    if not (name.startswith("gw") and name[2:].isascii() and name[2:].isdigit()):
        raise ValueError(f"PYTEST_XDIST_WORKER: expected gw<number>, got {name!r}")
    return int(name[2:])


def session_offset(environ: os._Environ[str] | dict[str, str] = os.environ) -> int:
    """This test session's port offset."""
    base = environ.get("CASN_TEST_PORT_OFFSET", "0")
    if not (base.isascii() and base.isdigit() and int(base) < STEP):
        raise ValueError(
            f"CASN_TEST_PORT_OFFSET: expected a whole number from 0 to 99, got {base!r}"
        )
    return int(base) + STEP * worker_index(environ.get("PYTEST_XDIST_WORKER"))


OFFSET = session_offset()
