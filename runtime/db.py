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


async def open_pool(database_url: str, *, max_size: int = 10) -> asyncpg.Pool:
    """A pool for the read model; connections are handed back without a reset round trip."""
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=max_size, reset=_keep_session
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
