"""The read model's connection pool."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg

from runtime.logs import get_logger

log = get_logger(__name__)


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

    With `min_size` above 0, asyncpg reconnects a lost connection in the background (1 s,
    doubling to 60 s) while the database is down: an outage is told in one warning when those
    tries begin and one line when a connection is made again (`PoolOutageLine`), not a warning
    with a traceback at every try; with 0 the pool connects only when asked, and a caller that
    waits out an outage itself says so once.

    With `timeout`, every statement (asyncpg's `command_timeout`) and every connection attempt
    ends after that many seconds with TimeoutError, so that a server that stopped answering
    without closing the connection (stopped, a network cut) or a lock held elsewhere cannot hold
    a caller for ever; asyncpg then cancels the statement, and closes the connection if the
    cancellation is not answered in time either."""
    outages = tell_pool_outages()
    bounds = {} if timeout is None else {"command_timeout": timeout, "timeout": timeout}
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        init=outages.connected,
        **bounds,
    )
    assert pool is not None
    return pool


# asyncpg's line for a failed try to reconnect a pool's kept connection (asyncpg/pool.py,
# `_maintain_min_size`), written with its traceback at every try.
_POOL_LOGGER = "asyncpg.pool"
_FLOOR_NOT_RESTORED = "Failed to restore the pool connection floor"


@dataclass
class _Reconnecting:
    """One pool's background reconnection through an outage: when it began, its failed tries."""

    since: float
    tries: int = 0


class PoolOutageLine(logging.Filter):
    """asyncpg's warnings of a pool that cannot reconnect its kept connection, told as an outage.

    While the database cannot be reached (`database_unavailable`), asyncpg tries again after 1 s,
    doubling to 60 s, and logs every failed try as a warning with its traceback. Those are left
    out; each pool's tries write one warning when they begin, `database down: the pool reconnects
    until it answers`, and one info line once a connection is made, `database back: the pool
    reconnected`, with the outage's length and the tries. A try that fails for another reason
    (a password refused, a database missing) and every other line of asyncpg's are written as
    asyncpg wrote them.

    One pool's tries run in one task of asyncpg's until a connection is made: the task tells one
    pool's outage from another's."""

    def __init__(self, clock=time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._reconnecting: weakref.WeakKeyDictionary[asyncio.Task, _Reconnecting] = (
            weakref.WeakKeyDictionary()
        )

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not (
            exc is not None
            and isinstance(record.msg, str)
            and record.msg.startswith(_FLOOR_NOT_RESTORED)
            and database_unavailable(exc)
        ):
            return True
        task = _current_task()
        seen = self._reconnecting.get(task) if task is not None else None
        if seen is None:
            seen = _Reconnecting(since=self._clock())
            if task is not None:
                self._reconnecting[task] = seen
            log.warning(
                "database down: the pool reconnects until it answers",
                error=f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200],
                retry_every_s="1 to 60",
            )
        seen.tries += 1
        return False

    async def connected(self, _conn: asyncpg.Connection) -> None:
        """A pool made a connection (asyncpg's `init`): the end of its outage, if it had one."""
        task = _current_task()
        seen = self._reconnecting.pop(task, None) if task is not None else None
        if seen is not None:
            log.info(
                "database back: the pool reconnected",
                down_s=round(self._clock() - seen.since, 1),
                tries=seen.tries,
            )


def _current_task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return None


def tell_pool_outages() -> PoolOutageLine:
    """The process's PoolOutageLine, put on asyncpg's pool logger the first time."""
    logger = logging.getLogger(_POOL_LOGGER)
    for existing in logger.filters:
        if isinstance(existing, PoolOutageLine):
            return existing
    line = PoolOutageLine()
    logger.addFilter(line)
    return line


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


# What a read of the database raises when it cannot be made or used now, for a caller that answers
# "not available" rather than decide whether it is an outage (the gateway's 503, the read-model
# gauges): the connection's errors, the server's, and asyncpg's protocol left mid-message by a
# connection lost as a message was read (activities/notify.py, found by killing the server).
DATABASE_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
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
    return any(
        isinstance(e, (*_UNAVAILABLE, DatabaseSilentError))
        or (isinstance(e, OSError) and raised_by_database(e))
        for e in raised_while(exc)
    )


def raised_while(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then the error it was raised from or while handling, and so on down the chain
    (each once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
