"""The read model's connection pool."""

from __future__ import annotations

import os

import asyncpg


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Nothing to undo on release: our code opens no cursors, LISTENs, SETs or session locks.

    asyncpg's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`
    on every release: a second round trip for each one-statement projection. An open
    transaction is still rolled back by asyncpg before this runs. The migration lock is taken and
    released explicitly (runtime/migrate.py).
    """


async def open_pool(
    database_url: str,
    *,
    max_size: int = 10,
    min_size: int = 1,
    timeout: float | None = None,
) -> asyncpg.Pool:
    """A pool for the read model; connections are handed back without a reset round trip.

    With `min_size` above 0, asyncpg reconnects a lost connection in the background and logs a
    warning with its traceback at every failed try (1 s, doubling to 60 s) while the database is
    down; with 0 the pool connects only when asked, and a caller that waits out an outage itself
    says so once.

    With `timeout`, every statement (asyncpg's `command_timeout`) and every connection attempt
    ends after that many seconds with TimeoutError, so that a server that stopped answering
    without closing the connection (stopped, a network cut) or a lock held elsewhere cannot hold
    a caller for ever; asyncpg then cancels the statement, and closes the connection if the
    cancellation is not answered in time either."""
    bounds = {} if timeout is None else {"command_timeout": timeout, "timeout": timeout}
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        **bounds,
    )
    assert pool is not None
    return pool


def raised_by_database(exc: BaseException) -> bool:
    """Whether `exc` was raised inside asyncpg: an OSError there (a refused or lost connection) is
    the database's, one elsewhere is not."""
    tb = exc.__traceback__
    while tb is not None:
        if f"{os.sep}asyncpg{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


# The database gone or not taking connections for now: a connection refused or lost (its server
# killed, a network cut), its shutdown or crash restart, its start-up or recovery; and (below) no
# answer within a caller's bound (DatabaseSilentError). Not an outage:
# a bad statement, a permission denied, a missing column or table (a schema behind the code).
_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,  # class 08, with ConnectionDoesNotExistError
    asyncpg.CannotConnectNowError,  # 57P03: starting up, in recovery
    asyncpg.AdminShutdownError,  # 57P01: a fast or smart shutdown, pg_terminate_backend
    asyncpg.CrashShutdownError,  # 57P02: another backend crashed, the server restarts
)


class DatabaseSilentError(TimeoutError):
    """The database did not answer a statement or a connection within a caller's bound: its server
    stopped or cut off without a reset, or a lock held elsewhere. An outage to wait out, as one
    refused."""


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached now (an outage to wait out), not that
    what was asked of it is wrong. An error raised while handling such an error counts too:
    asyncpg's `transaction()` answers a lost connection with "the underlying connection is
    closed" on its way out."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (*_UNAVAILABLE, DatabaseSilentError)) or (
            isinstance(current, OSError) and raised_by_database(current)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False
