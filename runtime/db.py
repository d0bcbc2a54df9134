"""The read model's connection pool."""

from __future__ import annotations

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
