"""A real worker on the session's embedded stack, on a task queue of its own per test."""

from __future__ import annotations

import uuid

import pytest_asyncio

from apps.fleet import build_worker
from runtime.db import open_pool


@pytest_asyncio.fixture(loop_scope="session")
async def running_worker(client, stack, stack_settings):
    """Yield (settings, pool) while a worker runs every workflow and activity."""
    pool = await open_pool(stack.database_url, max_size=8)
    settings = stack_settings.model_copy(update={"task_queue": f"test-{uuid.uuid4().hex[:8]}"})
    worker = await build_worker(client, settings, pool)
    async with worker:
        yield settings, pool
    await pool.close()
