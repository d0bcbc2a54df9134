"""The broadcast's backlog gate: an announcement's signals wait while the task queue is backed up.

The gate's logic is checked with a reader that plays a backlog's course; the reader itself
(DescribeTaskQueue) against the session's embedded Temporal server, with workflows that no
worker takes.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.broadcast import BacklogGate, task_queue_backlog

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Backlog:
    """A task queue's backlog as the server would tell it, one value per reading."""

    def __init__(self, *readings: int | RPCStatusCode, fail: bool = False) -> None:
        self.readings = list(readings)
        self.fail = fail
        self.reads = 0

    async def __call__(self, task_queue: str) -> int:
        self.reads += 1
        if self.fail:
            raise RPCError("unknown method DescribeTaskQueue", RPCStatusCode.UNIMPLEMENTED, b"")
        reading = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        if isinstance(reading, RPCStatusCode):
            raise RPCError(f"failed with {reading.name}", reading, b"")
        return reading


async def test_signals_wait_until_the_backlog_is_down_to_the_limit():
    backlog = Backlog(900, 400, 150)
    gate = BacklogGate(backlog, limit=200, check_every=0.05, wait_max=5.0)
    waited = await gate.wait("q")
    assert backlog.reads == 3
    assert waited >= 2 * 0.05  # two readings over the limit, each followed by a pause
    assert await gate.wait("q") < 0.05  # the last reading (150) still serves: no wait


async def test_one_reading_serves_every_delivery_in_its_interval():
    backlog = Backlog(10)
    gate = BacklogGate(backlog, limit=200, check_every=10.0)
    await asyncio.gather(*(gate.wait("q") for _ in range(32)))
    assert backlog.reads == 1
    await gate.wait("another-queue")  # each queue has its own reading
    assert backlog.reads == 2


async def test_a_backlog_that_does_not_drain_holds_each_signal_at_most_wait_max():
    backlog = Backlog(50_000)
    gate = BacklogGate(backlog, limit=200, check_every=0.05, wait_max=0.3)
    started = time.monotonic()
    waited = await gate.wait("q")
    assert 0.3 <= waited < 1.0
    assert time.monotonic() - started < 1.0
    assert gate.enabled


async def test_a_server_that_cannot_tell_turns_the_gate_off():
    backlog = Backlog(fail=True)
    gate = BacklogGate(backlog, limit=200, check_every=0.05)
    assert await gate.wait("q") < 0.05
    assert not gate.enabled
    await gate.wait("q")
    assert backlog.reads == 1  # not asked again


@pytest.mark.parametrize(
    "failure",
    [RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE],
)
async def test_a_passing_failure_skips_one_reading_and_the_gate_stays_on(failure):
    # The 100,000 run: one DescribeTaskQueue cut short under load ("operation was canceled")
    # turned the gate off for the rest of the worker's life, and the backlog came back.
    backlog = Backlog(failure, 5_000, 100)
    gate = BacklogGate(backlog, limit=200, check_every=0.05, wait_max=5.0)
    assert await gate.wait("q") < 0.05  # no reading: this delivery goes on
    assert gate.enabled and gate.failed_readings == 1
    await asyncio.sleep(0.06)
    waited = await gate.wait("q")  # read again: 5,000 waits, then 100 lets it go
    assert waited >= 0.05
    assert backlog.reads == 3
    assert gate.enabled


async def test_a_failed_reading_is_not_read_again_within_its_interval():
    backlog = Backlog(RPCStatusCode.UNAVAILABLE, 5_000)
    gate = BacklogGate(backlog, limit=200, check_every=10.0)
    await asyncio.gather(*(gate.wait("q") for _ in range(32)))
    assert backlog.reads == 1  # a struggling server is asked once an interval, not 32 times


async def test_limit_zero_never_reads():
    backlog = Backlog(50_000)
    gate = BacklogGate(backlog, limit=0)
    assert await gate.wait("q") < 0.05
    assert backlog.reads == 0


async def test_the_embedded_server_tells_the_backlog_of_tasks_no_worker_takes(client: Client):
    queue = f"backlog-{uuid.uuid4().hex[:8]}"
    read = task_queue_backlog(client)
    assert await read(queue) == 0
    handles = [
        await client.start_workflow("NoWorkerRunsThis", id=f"{queue}-{i}", task_queue=queue)
        for i in range(3)
    ]
    try:
        deadline = time.monotonic() + 20
        seen = 0
        while time.monotonic() < deadline:
            seen = await read(queue)
            if seen == 3:
                break
            await asyncio.sleep(0.5)
        assert seen == 3
    finally:
        for handle in handles:
            await handle.terminate("test over")
