"""What an outage looks like to a command: the Temporal server or the database not reached, or the
engine reached but silent, told in one line (`stopped: ...`, exit 3) instead of a traceback.
For every entry point: starter.py, audit.py, worker.py."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from temporalio.client import RPCTimeoutOrCancelledError, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from runtime.db import database_unavailable


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _cause(exc: BaseException) -> str:
    """The short reason of a connection failure: `Connection refused`, not a transport dump."""
    text = str(exc)
    quoted = re.search(r'message: "([^"]+)"', text)
    if quoted:
        return quoted.group(1)
    if isinstance(exc, ConnectionError) and exc.errno:
        return os.strerror(exc.errno)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(text.split())[:200] or type(exc).__name__


def unreachable(exc: BaseException, settings=None) -> str | None:
    """What cannot be reached, when `exc` says that the Temporal server or the database does not
    answer (at the start or lost during the command); None for any other error."""
    if (isinstance(exc, RPCError) and exc.status == RPCStatusCode.UNAVAILABLE) or (
        isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect")
    ):
        where = "the Temporal server"
        if settings is not None and settings.temporal_address:
            where += f" at {settings.temporal_address} (CASN_TEMPORAL_ADDRESS)"
        elif settings is not None:
            where = f"the embedded Temporal server on port {settings.temporal_port}"
        return f"{where} cannot be reached: {_cause(exc)}"
    if database_unavailable(exc):  # refused, lost, shutting down or restarting (runtime/db.py)
        where = "the database"
        if settings is not None and settings.database_url:
            where += f" at {_without_password(str(settings.database_url))} (CASN_DATABASE_URL)"
        elif settings is not None:
            where = f"the embedded database on port {settings.postgres_port}"
        return f"{where} cannot be reached: {_cause(exc)}"
    return None


def engine_silent(exc: BaseException) -> str | None:
    """Why the engine, reached, could not answer, when `exc` says so: no worker polls the
    workflow's task queue (the server's "no poller seen"), a worker that could not replay it, an
    answer that did not come in time. None for any other error."""
    if isinstance(exc, RPCError) and exc.status == RPCStatusCode.FAILED_PRECONDITION:
        return (
            f"the engine could not answer: {exc.message} (is a worker running? python3 worker.py "
            "run)"
        )
    if isinstance(exc, WorkflowQueryFailedError):
        return f"the worker could not answer for the workflow: {' '.join(str(exc).split())[:200]}"
    if isinstance(exc, RPCError) and exc.status in (
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
    ):
        # A query waits for the workflow's task: with no worker at all the call ends at its own
        # deadline ("Timeout expired") or with the connection's long poll cut ("h2 protocol
        # error"), both seen here. Ctrl-C is a KeyboardInterrupt, not this.
        return (
            f"the engine did not answer: {exc.message} (is a worker running? python3 worker.py run)"
        )
    if isinstance(exc, RPCTimeoutOrCancelledError):
        return "the engine did not answer in time (is a worker running? python3 worker.py run)"
    return None


def stopped_line(exc: BaseException, settings=None) -> str | None:
    """The one line to print for an outage (`unreachable` or `engine_silent`) and what to do,
    or None when `exc` is not one."""
    down = unreachable(exc, settings)
    if down:
        return f"{down}; start it or fix the setting, then run the same command again"
    silent = engine_silent(exc)
    if silent:
        return f"{silent}; run the same command again once it answers"
    return None


def read_settings_or_none():
    """The settings, to name the server that did not answer; None when they cannot be read
    (the line then says less, not nothing)."""
    from runtime.settings import load_settings

    try:
        return load_settings()
    except Exception:
        return None
