"""A local activity whose attempts keep failing ends after LOCAL_ATTEMPTS, and its workflow pauses
on a timer (patch local-activity-attempts) instead of holding its workflow task open; while it
keeps failing the pause grows to LOCAL_PAUSE_MOST and each series is short, and a command to the
workflow ends a pause early (patch local-activity-growing-pause).

The SDK's core (temporalio 1.35.0) does not end such a local activity at its schedule-to-close:
with the read model down a journey kept its task open, heartbeating every 8 s, for as long as the
outage lasted (about 1,350 history events an hour). With a pause of a minute after every series,
it still grew about 30 events every two minutes.

On the time-skipping test server: the pauses are skipped, the attempts (the SDK core's own
back-off, about a minute in the first series) run in real time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from domain.protocol import Activity
from runtime.connection import data_converter
from scripts.record_histories import patch_markers, timers_started
from workflows.calls import (
    LOCAL_ATTEMPTS,
    LOCAL_ATTEMPTS_AFTER_PAUSE,
    LOCAL_PAUSE_MOST,
    local_pause,
    local_pause_bounds,
    run_local_activity_until_done,
)
from workflows.versions import LOCAL_ACTIVITY_ATTEMPTS, LOCAL_ACTIVITY_GROWING_PAUSE

FAILED_SERIES = 6  # the read model is down for this many series of attempts, then back
DOWN_FOR = LOCAL_ATTEMPTS + (FAILED_SERIES - 1) * LOCAL_ATTEMPTS_AFTER_PAUSE  # attempts that fail


class Write(BaseModel):
    row: str


ATTEMPTS: list[int] = []
WRITE = Activity("write_while_down", Write, type(None))


@activity.defn(name=WRITE.name)
async def write_while_down(write: Write) -> None:
    ATTEMPTS.append(activity.info().attempt)
    if len(ATTEMPTS) <= DOWN_FOR:
        raise ConnectionRefusedError(111, "the read model is down")


@workflow.defn(name="WritesWhileDown", sandboxed=False)
class WritesWhileDown:
    def __init__(self) -> None:
        self.commands = 0  # as the round counts its commands: each ends a pause

    @workflow.run
    async def run(self, write: Write) -> None:
        await run_local_activity_until_done(
            WRITE, write, timedelta(seconds=5), woken_by=lambda: self.commands
        )

    @workflow.signal
    def command(self) -> None:
        self.commands += 1


async def _first_timer(handle, within: float) -> int:
    """The event id of the workflow's first timer, once it has started."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        history = await handle.fetch_history()
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                return e.event_id
        await asyncio.sleep(0.5)
    raise AssertionError(f"no pause within {within} s: attempts {ATTEMPTS}")


def test_the_pause_doubles_to_its_most_and_is_shortened_by_at_most_a_quarter():
    minutes = [local_pause_bounds(n)[1] / timedelta(minutes=1) for n in range(7)]
    assert minutes == [1, 2, 4, 8, 10, 10, 10]
    for n in range(7):
        shortest, longest = local_pause_bounds(n)
        assert shortest == longest * 0.75
        assert shortest <= local_pause(n, 0.5) <= longest
    assert local_pause(60, 0.0) == LOCAL_PAUSE_MOST  # no overflow however long the outage


@asynccontextmanager
async def _started(test_server_path, keys, workflow_cls, activity_fn):
    """A time-skipping server of its own, a worker of `workflow_cls` and `activity_fn`, and the
    workflow started: its handle."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_path), data_converter=data_converter(keys)
    )
    async with env:
        queue = f"attempts-{uuid.uuid4().hex[:8]}"
        async with Worker(
            env.client, task_queue=queue, workflows=[workflow_cls], activities=[activity_fn]
        ):
            yield await env.client.start_workflow(
                workflow_cls.run, Write(row="r"), id=queue, task_queue=queue
            )


async def _replays(workflow_cls, keys, history) -> None:
    """The history replays as it ran (the pauses drawn from the workflow's random alike)."""
    await Replayer(workflows=[workflow_cls], data_converter=data_converter(keys)).replay_workflow(
        history
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_failing_attempts_end_in_a_growing_pause_not_an_open_task(test_server_path, keys):
    ATTEMPTS.clear()
    async with _started(test_server_path, keys, WritesWhileDown, write_while_down) as handle:
        # The first pause is in real time (nothing skips it until the result is awaited): a
        # command sent during it ends it.
        first_pause = await _first_timer(handle, within=120)
        await handle.signal(WritesWhileDown.command)
        try:
            # Without the bound on attempts the first series never ends (the task stays open).
            await asyncio.wait_for(handle.result(), timeout=150)
        except TimeoutError:
            history = await handle.fetch_history()
            raise AssertionError(
                f"still running after 150 s: {len(history.events)} events, attempts {ATTEMPTS}"
            ) from None
        history = await handle.fetch_history()

    events = list(history.events)
    # Nine attempts, then three after each pause, then the one that succeeds.
    assert ATTEMPTS == (
        list(range(1, LOCAL_ATTEMPTS + 1))
        + list(range(1, LOCAL_ATTEMPTS_AFTER_PAUSE + 1)) * (FAILED_SERIES - 1)
        + [1]
    )
    timers = timers_started(history)
    assert len(timers) == FAILED_SERIES, timers
    for n, pause in enumerate(timers):
        shortest, longest = local_pause_bounds(n)
        assert shortest <= pause <= longest, (n, timers)
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert markers.count("core_local_activity") == FAILED_SERIES + 1  # one per series
    assert {LOCAL_ACTIVITY_ATTEMPTS, LOCAL_ACTIVITY_GROWING_PAUSE} <= set(patch_markers(history))

    # The command ended the first pause: its timer was cancelled, not fired.
    kinds = [e.event_type for e in events]
    assert kinds.count(EventType.EVENT_TYPE_TIMER_CANCELED) == 1, first_pause
    assert kinds.count(EventType.EVENT_TYPE_TIMER_FIRED) == FAILED_SERIES - 1
    # The first series held the task open about a minute (heartbeats every 8 s, 3 events each);
    # each later one is a single task: the timer's end, the task, the marker, the next timer
    # (and the command's signal, after the first pause).
    started = [i for i, kind in enumerate(kinds) if kind == EventType.EVENT_TYPE_TIMER_STARTED]
    ended = [
        i
        for i, kind in enumerate(kinds)
        if kind in (EventType.EVENT_TYPE_TIMER_FIRED, EventType.EVENT_TYPE_TIMER_CANCELED)
    ]
    assert started[0] < 40, started[0]
    per_series = [nxt - end for end, nxt in zip(ended, started[1:], strict=False)]
    assert per_series[0] <= 7 and max(per_series[1:]) <= 6, per_series

    await _replays(WritesWhileDown, keys, history)


FIRST_SERIES_FAILS: list[int] = []


@activity.defn(name="write_after_a_blip")
async def write_after_a_blip(write: Write) -> None:
    FIRST_SERIES_FAILS.append(activity.info().attempt)
    if len(FIRST_SERIES_FAILS) <= LOCAL_ATTEMPTS:
        raise ConnectionRefusedError(111, "the read model is down")


BLIP = Activity("write_after_a_blip", Write, type(None))


@workflow.defn(name="WritesWithBackoffTimers", sandboxed=False)
class WritesWithBackoffTimers:
    @workflow.run
    async def run(self, write: Write) -> None:
        await run_local_activity_until_done(BLIP, write, timedelta(seconds=5), backoff_timers=True)

    @workflow.query
    def where(self) -> int:
        return 1


@pytest.mark.asyncio(loop_scope="session")
async def test_the_first_series_answers_queries_between_its_attempts(test_server_path, keys):
    """Patch local-activity-backoff-timers: the first series' back-offs of 8 and 10 s are timers,
    the workflow task closed meanwhile, so a query is answered at once. Before, the task stayed
    open for the whole series and a query waited for its heartbeat (every 8 s)."""
    FIRST_SERIES_FAILS.clear()
    async with _started(
        test_server_path, keys, WritesWithBackoffTimers, write_after_a_blip
    ) as handle:
        # Attempts 1 to 4 run within 7 s; from then on the back-offs are timers (real time:
        # nothing skips them until the result is awaited). Ask four times, 3 s apart.
        deadline = time.monotonic() + 60
        while len(FIRST_SERIES_FAILS) < 5:
            assert time.monotonic() < deadline, FIRST_SERIES_FAILS
            await asyncio.sleep(0.2)
        took = []
        for _ in range(4):
            began = time.monotonic()
            await handle.query(WritesWithBackoffTimers.where)
            took.append(time.monotonic() - began)
            await asyncio.sleep(3)
        await asyncio.wait_for(handle.result(), timeout=150)
        history = await handle.fetch_history()

    # With the task open, a query waits for the next heartbeat: up to 8 s.
    assert max(took) < 2.0, took
    assert FIRST_SERIES_FAILS == list(range(1, LOCAL_ATTEMPTS + 1)) + [1]
    timers = [t.total_seconds() for t in timers_started(history)]
    # The back-offs after attempts 4 to 8 (8, 10, 10, 10, 10 s; 1, 2 and 4 s ran in the task),
    # then the pause after the series.
    assert timers[:-1] == [8, 10, 10, 10, 10], timers
    shortest, longest = local_pause_bounds(0)
    assert shortest.total_seconds() <= timers[-1] <= longest.total_seconds(), timers
    await _replays(WritesWithBackoffTimers, keys, history)
