"""The one line a command prints when a server cannot be reached (runtime/outage.py): a database
shutting down or restarting is one of them, not a traceback."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from runtime.embedded import isolated_settings
from runtime.outage import unreachable


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_database_that_does_not_answer_is_named_in_one_line(error, tmp_path: Path):
    if isinstance(error, OSError):
        # An OSError counts only when asyncpg raised it: one from the connect path.
        try:
            raise error
        except OSError as exc:
            error = _raised_in_asyncpg(exc)
    settings = isolated_settings(tmp_path, ports=(17233, 18233, 15432))
    line = unreachable(error, settings)
    assert line is not None and line.startswith("the embedded database on port 15432 cannot be"), (
        line
    )


def test_an_error_in_what_was_asked_is_not_an_outage():
    assert unreachable(asyncpg.InsufficientPrivilegeError("permission denied")) is None
    assert unreachable(asyncpg.UndefinedColumnError('column "x" does not exist')) is None
    assert unreachable(ValueError("a bug")) is None


def _raised_in_asyncpg(exc: OSError) -> OSError:
    """`exc` with a traceback through asyncpg's connect, as a refused connection has."""
    import asyncpg.connect_utils as connect_utils

    code = compile("raise exc", connect_utils.__file__, "exec")
    try:
        exec(code, {"exc": exc})
    except OSError as raised:
        return raised
    raise AssertionError("not raised")
