"""A local activity whose attempts keep failing ends after LOCAL_ATTEMPTS, and its workflow pauses
on a timer (patch local-activity-attempts), instead of holding its workflow task open.

The SDK's core (temporalio 1.35.0) does not end such a local activity at its schedule-to-close:
with the read model down a journey kept its task open, heartbeating every 8 s, for as long as the
outage lasted (about 1,350 history events an hour).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker

from domain.protocol import Activity
from scripts.record_histories import patch_markers
from workflows.calls import LOCAL_ATTEMPTS, LOCAL_PAUSE, run_local_activity_until_done
from workflows.versions import LOCAL_ACTIVITY_ATTEMPTS

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Write(BaseModel):
    row: str


ATTEMPTS: list[int] = []
WRITE = Activity("write_while_down", Write, type(None))


@activity.defn(name=WRITE.name)
async def write_while_down(write: Write) -> None:
    ATTEMPTS.append(activity.info().attempt)
    raise ConnectionRefusedError(111, "the read model is down")


@workflow.defn(name="WritesWhileDown", sandboxed=False)
class WritesWhileDown:
    @workflow.run
    async def run(self, write: Write) -> None:
        await run_local_activity_until_done(WRITE, write, timedelta(seconds=5))


async def test_failing_attempts_end_in_a_pause_not_an_open_task(client):
    queue = f"attempts-{uuid.uuid4().hex[:8]}"
    ATTEMPTS.clear()
    async with Worker(
        client, task_queue=queue, workflows=[WritesWhileDown], activities=[write_while_down]
    ):
        handle = await client.start_workflow(
            WritesWhileDown.run, Write(row="r"), id=queue, task_queue=queue
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                history = await handle.fetch_history()
                timers = [
                    e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
                    for e in history.events
                    if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
                ]
                if timers or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
            assert timers == [LOCAL_PAUSE.total_seconds()], (len(history.events), ATTEMPTS)
            assert ATTEMPTS == list(range(1, LOCAL_ATTEMPTS + 1))
            markers = [
                e.marker_recorded_event_attributes.marker_name
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            ]
            assert markers.count("core_local_activity") == 1
            assert LOCAL_ACTIVITY_ATTEMPTS in patch_markers(history)  # decided at the failure
            # The task was held open only while the attempts ran (about a minute of heartbeats
            # every 8 s, 3 events each), not for as long as the activity fails.
            assert len(history.events) < 40, len(history.events)
        finally:
            await handle.terminate("test over")
