"""Port offsets for test sessions that run side by side.

The suite runs in several pytest-xdist worker processes (`-n` in pyproject.toml's addopts), each
with an embedded stack of its own. Every fixed port a test uses is its base plus `OFFSET`:
CASN_TEST_PORT_OFFSET (two whole test sessions on one machine) plus 100 for each worker after the
first ("gw1" is 100, "gw2" 200; run.py allows 8 workers), so no two workers' servers ask for the same port.
"""

from __future__ import annotations

import os

STEP = 100  # far enough apart that no base plus an offset meets another base plus another


def worker_index(name: str | None) -> int:
    """The worker's number in PYTEST_XDIST_WORKER ("gw3" is 3); 0 without xdist."""
    if not name:
        return 0
    if not (name.startswith("gw") and name[2:].isdigit()):
        raise ValueError(f"PYTEST_XDIST_WORKER: expected gw<number>, got {name!r}")
    return int(name[2:])


def session_offset(environ: os._Environ[str] | dict[str, str] = os.environ) -> int:
    """This test session's port offset."""
    base = environ.get("CASN_TEST_PORT_OFFSET", "0")
    try:
        given = int(base)
    except ValueError:
        raise ValueError(f"CASN_TEST_PORT_OFFSET: expected a whole number, got {base!r}") from None
    return given + STEP * worker_index(environ.get("PYTEST_XDIST_WORKER"))


OFFSET = session_offset()
