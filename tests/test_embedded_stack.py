"""The embedded stack with real servers: start once, reuse, survive a restart, stop cleanly.

These tests run their own stack (own data_dir and ports) so they can stop and restart it
without disturbing the session stack of the other tests.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import psutil
import pytest
import pytest_asyncio
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from runtime.embedded import (
    StackError,
    ensure_stack,
    isolated_settings,
    owner_database_url,
    stop_stack,
)
from runtime.guard import guard_stacks
from runtime.settings import LogFormat, load_settings
from tests.ports import OFFSET

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[1]
PORTS = {
    "temporal_port": 27233 + OFFSET,
    "temporal_ui_port": 28233 + OFFSET,
    "postgres_port": 25432 + OFFSET,
}


def _settings(data_dir, **overrides):
    values = dict(
        data_dir=data_dir,
        temporal_address=None,
        database_url=None,
        temporal_namespace="default",
        log_format=LogFormat.JSON,
        **PORTS,
    )
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture(scope="module")
def own_settings(server_dir):
    """Settings of this module's private stack."""
    return _settings(server_dir("own-stack"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def own_stack(own_settings):
    """This module's stack, started once; whatever runs at the end is stopped."""
    info = await ensure_stack(own_settings)
    yield info
    stop_stack(own_settings)


def _temporal_pid(settings) -> int:
    return int((settings.data_dir / "temporal" / "server.pid").read_text())


def _postgres_pid(settings) -> int:
    return int((settings.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@workflow.defn(sandboxed=False)
class CollectingWorkflow:
    """Collects signalled items until told to finish; its state lives only in its history."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.finished = False

    @workflow.run
    async def run(self, first: str) -> list[str]:
        await workflow.wait_condition(lambda: self.finished)
        return [first, *self.items]

    @workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


async def test_first_call_starts_both_servers_and_migrates(own_stack):
    assert own_stack.started_temporal and own_stack.started_postgres
    assert "001_schema_migrations" in own_stack.migrations_applied
    assert own_stack.ui_url == f"http://127.0.0.1:{PORTS['temporal_ui_port']}"


async def test_second_call_reuses_the_same_servers(own_stack, own_settings):
    pids = (_temporal_pid(own_settings), _postgres_pid(own_settings))

    again = await ensure_stack(own_settings)

    assert (again.started_temporal, again.started_postgres) == (False, False)
    assert (_temporal_pid(own_settings), _postgres_pid(own_settings)) == pids
    assert again.migrations_applied == []


async def test_stopping_only_what_a_call_started_leaves_reused_servers(own_stack, own_settings):
    pids = (_temporal_pid(own_settings), _postgres_pid(own_settings))
    again = await ensure_stack(own_settings)  # finds both running: started neither

    stopped = stop_stack(own_settings, only=again)

    assert stopped == []
    assert all(_running(pid) for pid in pids)


async def test_concurrent_calls_start_nothing_twice(own_stack, own_settings):
    results = await asyncio.gather(*(ensure_stack(own_settings) for _ in range(3)))

    assert not any(r.started_temporal or r.started_postgres for r in results)


async def test_restart_keeps_workflows_and_read_model_rows(own_stack, own_settings):
    task_queue = f"restart-{uuid.uuid4()}"
    workflow_id = f"restart-{uuid.uuid4()}"
    owner = await asyncpg.connect(owner_database_url(own_settings))  # the processes make no table
    await owner.execute("CREATE TABLE IF NOT EXISTS restart_probe (id text primary key)")
    await owner.close()
    conn = await asyncpg.connect(own_stack.database_url)
    await conn.execute("INSERT INTO restart_probe VALUES ($1)", workflow_id)
    await conn.close()
    client = await Client.connect(own_stack.temporal_address)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[CollectingWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            CollectingWorkflow.run, "before", id=workflow_id, task_queue=task_queue
        )
        await handle.signal(CollectingWorkflow.add, "also before")
        await handle.query("__stack_trace")  # the worker has processed the signal

    stopped = stop_stack(own_settings)
    restarted = await ensure_stack(own_settings)

    assert len(stopped) == 2
    assert restarted.started_temporal and restarted.started_postgres
    client = await Client.connect(restarted.temporal_address)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[CollectingWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = client.get_workflow_handle(workflow_id)
        await handle.signal(CollectingWorkflow.add, "after")
        await handle.signal(CollectingWorkflow.finish)
        result = await handle.result()
    conn = await asyncpg.connect(restarted.database_url)
    row = await conn.fetchval("SELECT id FROM restart_probe WHERE id = $1", workflow_id)
    await conn.close()

    assert result == ["before", "also before", "after"]
    assert row == workflow_id


async def test_stop_stack_stops_both_servers(own_stack, own_settings):
    await ensure_stack(own_settings)
    pids = (_temporal_pid(own_settings), _postgres_pid(own_settings))

    stopped = stop_stack(own_settings)

    assert len(stopped) == 2
    assert not any(_running(pid) for pid in pids)
    assert stop_stack(own_settings) == []


@pytest.mark.parametrize(
    ("server", "setting", "overrides"),
    [
        ("temporal", "CASN_TEMPORAL_PORT", {"database_url": "postgresql://x@127.0.0.1:1/x"}),
        ("postgres", "CASN_POSTGRES_PORT", {"temporal_address": "127.0.0.1:1"}),
    ],
)
async def test_port_held_by_a_foreign_socket_is_a_stack_error(
    server_dir, server, setting, overrides
):
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        settings = _settings(server_dir("foreign-port"), **{f"{server}_port": port}, **overrides)

        with pytest.raises(StackError) as caught:
            await ensure_stack(settings)

    message = str(caught.value)
    assert f"port {port}" in message and setting in message
    assert stop_stack(settings) == []


async def test_a_failed_start_leaves_no_server_of_ours_running(server_dir):
    """PostgreSQL cannot start (its port is taken): the Temporal server this call started is stopped."""
    with socket.socket() as foreign, socket.socket() as free:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        free.bind(("127.0.0.1", 0))
        temporal_port = free.getsockname()[1]
        free.close()
        settings = isolated_settings(
            server_dir("failed-start"),
            ports=(temporal_port, temporal_port + 1, foreign.getsockname()[1]),
        )
        with pytest.raises(StackError):
            await ensure_stack(settings)
    assert stop_stack(settings) == []  # nothing of ours is left to stop
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", temporal_port)) != 0  # the Temporal server is gone


OWNER = """
import asyncio, sys, time
from pathlib import Path
from runtime.embedded import ensure_stack, isolated_settings
from runtime.guard import guard_stacks
root = Path(sys.argv[1])
for name in ("one", "two"):
    (root / name).mkdir()
    asyncio.run(ensure_stack(isolated_settings(root / name)))
guard_stacks(root, remove=True)
print("ready", flush=True)
time.sleep(600)
"""


def _until_ready(owner: subprocess.Popen) -> list[str]:
    """The owner's output (its log lines, then "ready") up to "ready" or its end."""
    lines: list[str] = []
    while line := owner.stdout.readline():
        lines.append(line.strip())
        if lines[-1] == "ready":
            break
    return lines


async def test_stacks_whose_owner_is_killed_are_stopped_and_removed_by_their_guard(server_dir):
    """The owner of two stacks dies without its teardown (SIGKILL): its guard stops all four
    servers, by their pids, and removes the directory they ran under."""
    root = server_dir("guarded")
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(root)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    stacks = [isolated_settings(root / name) for name in ("one", "two")]
    try:
        lines = await asyncio.wait_for(asyncio.to_thread(_until_ready, owner), 180)
        assert lines[-1:] == ["ready"], f"the owner did not start its stacks: {lines}"
        pids = [f(s) for s in stacks for f in (_temporal_pid, _postgres_pid)]
        assert all(_running(pid) for pid in pids)

        owner.kill()
        owner.wait(10)
        deadline = asyncio.get_running_loop().time() + 60
        while any(_running(pid) for pid in pids) or root.exists():
            assert asyncio.get_running_loop().time() < deadline, (
                f"the guard left servers running or the directory: "
                f"{[pid for pid in pids if _running(pid)]}, {root.exists()}"
            )
            await asyncio.sleep(0.2)
    finally:
        if owner.poll() is None:
            owner.kill()
        for settings in stacks:  # whatever the guard did not stop
            if settings.data_dir.exists():
                stop_stack(settings)


async def test_a_released_guard_leaves_the_servers_running(own_stack, own_settings):
    await ensure_stack(own_settings)
    pids = (_temporal_pid(own_settings), _postgres_pid(own_settings))
    guard = guard_stacks(own_settings.data_dir)

    guard.release()

    assert guard.process.returncode == 0
    assert all(_running(pid) for pid in pids)
