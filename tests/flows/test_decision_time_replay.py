"""What `workflow.now()` gives on replay when a local activity outlasts its workflow task's
heartbeat (temporalio 1.35.0; looked for after `bench chaos`, BENCHMARKS.md "Servers killed
mid-round").

A local activity still running at 80% of the workflow task timeout (no workflow of the engine
sets one: the server's 10 s, so 8 s) makes the SDK's core complete the task and take a new one (a
"heartbeat"), every 8 s until the local activity ends; its marker is recorded by the last of
those tasks. When the heartbeat completes a task that has recorded nothing yet, replay folds it
into the next: the code that ran before the local activity sees the next task's start on replay,
8 s (per heartbeat) after the start it saw live. The code after a local activity sees the same
time live and replayed (the later of its task's start and the local activity's completion,
which its marker holds).

A small workflow of the test's own (started with a 4 s task timeout, so its heartbeat comes at
3.2 s and each test waits 5 s, not 10; the journey's test keeps the server's 10 s) shows it
every time, in its first task and in a task a signal starts, but not when the task before the
signal's accepted an update: then every time replays as it ran. The journey's own case of that
shape (an announcement's task that decides MS while its row's write waits past the heartbeat on
a lock, after the task that took its administration report by update) replays with the time it
was written too, and check-read-model finds nothing (docs/AUDIT.md, "A decision's time"). Why an
update before makes the difference is not established. These tests hold what the SDK and the
journey do as they are, so that an upgrade or a change that alters it is seen.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Replayer, Worker

from auditing.readmodel import check_round
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import AdminReport, CloseWindow
from runtime.connection import data_converter
from tests.flows.test_round_end_to_end import _wait_phase, _wait_stage
from tests.flows.test_sanctions import _person, _round, _until
from tests.roundkit import OPEN_NOW, OPERATOR, TEST_KEYRING
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

SEEN: list[tuple[bool, str, datetime, str]] = []  # (replaying, where, workflow.now(), run id)
SERVER_HEARTBEAT = timedelta(seconds=8)  # 80% of the server's default 10 s workflow task timeout
# The small workflow's own task timeout: the same heartbeat (80% of it), sooner.
TASK_TIMEOUT = timedelta(seconds=4)
HEARTBEAT = TASK_TIMEOUT * 0.8


@activity.defn(name="decision_time_sleep")
async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@workflow.defn(name="DecidesAroundALocalActivity", sandboxed=False)
class DecidesAroundALocalActivity:
    """Takes the time before a local activity of `slow` seconds and after it; with `quick_first`,
    a quick local activity comes first and the time is taken between the two too (as a journey
    asks the round, decides, writes its row); with `poked_first`, all that in the task a signal
    starts."""

    def __init__(self) -> None:
        self.poked = False
        self.bumped = 0

    @workflow.run
    async def run(self, slow: float, quick_first: bool, poked_first: bool = False) -> None:
        if poked_first:  # as a journey's task that an announcement (a signal) starts
            await workflow.wait_condition(lambda: self.poked)
        self._seen("before")
        if quick_first:
            await self._sleep(0.1)
            self._seen("between")
        await self._sleep(slow)
        self._seen("after")

    async def _sleep(self, seconds: float) -> None:
        await workflow.execute_local_activity(
            "decision_time_sleep", seconds, start_to_close_timeout=timedelta(seconds=30)
        )

    @workflow.signal
    def poke(self) -> None:
        self.poked = True

    @workflow.update
    def bump(self) -> int:
        """An update, accepted in a task of its own (as a journey takes a report)."""
        self.bumped += 1
        return self.bumped

    def _seen(self, where: str) -> None:
        SEEN.append((workflow.unsafe.is_replaying(), where, workflow.now(), workflow.info().run_id))


def _task_starts(history) -> list[datetime]:
    """The start of every workflow task of the history, in order."""
    return [
        e.event_time.ToDatetime(tzinfo=UTC)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    ]


async def _run_and_replay(
    client,
    slow: float,
    quick_first: bool = False,
    poked_first: bool = False,
    updated_first: bool = False,
):
    """Run the workflow with a local activity of `slow` seconds, then replay its history: the times
    seen live and replayed, by where, and the history's workflow task starts."""
    SEEN.clear()
    queue = f"decision-time-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[DecidesAroundALocalActivity], activities=[sleep]
    ):
        handle = await client.start_workflow(
            DecidesAroundALocalActivity.run,
            args=[slow, quick_first, poked_first],
            id=queue,
            task_queue=queue,
            task_timeout=TASK_TIMEOUT,
        )
        if poked_first:
            await asyncio.sleep(0.5)
            if updated_first:
                await handle.execute_update(DecidesAroundALocalActivity.bump)
                await asyncio.sleep(0.5)
            await handle.signal(DecidesAroundALocalActivity.poke)
        await handle.result()
    history = await handle.fetch_history()
    await Replayer(
        workflows=[DecidesAroundALocalActivity], data_converter=client.data_converter
    ).replay_workflow(history)
    live = {where: at for replaying, where, at, _ in SEEN if not replaying}
    replayed = {where: at for replaying, where, at, _ in SEEN if replaying}
    return live, replayed, _task_starts(history)


def _same(a: datetime, b: datetime) -> bool:
    """The same instant, but for the event time's nanoseconds (the SDK rounds, protobuf cuts)."""
    return abs(a - b) < timedelta(microseconds=2)


async def test_a_quick_local_activity_replays_every_time_as_it_ran(client):
    live, replayed, starts = await _run_and_replay(client, 0.2)
    assert len(starts) == 1
    assert live == replayed
    assert _same(live["before"], starts[0])


async def test_a_local_activity_past_the_heartbeat_moves_the_time_before_it_on_replay(client):
    live, replayed, starts = await _run_and_replay(client, HEARTBEAT.total_seconds() + 1.5)
    # The first task heartbeated once, with no command: a second task took the local activity over.
    assert len(starts) == 2, starts
    assert starts[1] - starts[0] >= HEARTBEAT
    # Live, the code before the local activity ran at the first task's start ...
    assert _same(live["before"], starts[0])
    # ... replayed, at the start of the task that recorded the marker: 8 s later.
    assert _same(replayed["before"], starts[1])
    # After the local activity both see its completion, recorded in its marker.
    assert replayed["after"] == live["after"]


async def test_a_marker_before_the_heartbeat_keeps_the_first_task_as_it_ran(client):
    """The heartbeat completes the first task with the quick local activity's marker: replay does
    not fold that task into the next, and every time is as it ran."""
    live, replayed, starts = await _run_and_replay(
        client, HEARTBEAT.total_seconds() + 1.5, quick_first=True
    )
    assert len(starts) == 2, starts
    assert _same(live["before"], starts[0])
    assert replayed == live


async def test_a_task_started_by_a_signal_moves_the_same_way(client):
    live, replayed, starts = await _run_and_replay(
        client, HEARTBEAT.total_seconds() + 1.5, poked_first=True
    )
    # The start's task, the signal's, and the one its heartbeat started.
    assert len(starts) == 3, starts
    assert _same(live["before"], starts[1])
    assert _same(replayed["before"], starts[2])
    assert replayed["after"] == live["after"]


async def test_after_a_task_that_accepted_an_update_the_heartbeat_is_not_folded(client):
    """As the journey below: the signal's task comes after one that accepted an update, and
    every time replays as it ran (seen every time; why the update matters is not established)."""
    live, replayed, starts = await _run_and_replay(
        client, HEARTBEAT.total_seconds() + 1.5, poked_first=True, updated_first=True
    )
    # The start's task, the update's, the signal's, and the one its heartbeat started.
    assert len(starts) == 4, starts
    assert _same(live["before"], starts[2])
    assert replayed == live


async def test_a_journey_deciding_ms_while_its_write_waits_on_a_lock_past_the_heartbeat(
    client, keys, running_worker, tmp_path
):
    """The journey's own path, as it is: the administration announcement (a signal) starts a task
    in which the journey decides MS and writes its row, and the write waits 11 s on a lock held on
    the decisions table, past the heartbeat. The history shows the heartbeat (two tasks before the
    write's marker) and the decision's time is the first task's start, live and replayed alike:
    check-read-model finds nothing. The task before the announcement's took the administration
    report by update, as in the small workflow above."""
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    seconds = {**OPEN_NOW, "registration": (-60, 3), "administration": (3, 600)}
    config, _ = await _round(api, tmp_path, "decision-time", seconds)
    round_id = config.round_id
    applicant = (await api.register(config, _person(date(1996, 4, 4)), "sscasn")).applicant_id
    assert applicant
    await _wait_stage(client, round_id, applicant, {Stage.ADMIN_CHECK})
    report = AdminReport(report_id="adm", reported_by="bkpsdm-verifikator")
    await api.report(round_id, applicant, report)
    await _wait_phase(api, round_id, "administration")
    async with pool.acquire() as conn:
        locked = conn.transaction()
        await locked.start()
        await conn.execute("LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE")
        close = CloseWindow(
            report_id="close-administration",
            reported_by=OPERATOR,
            window="administration",
            reason="done",
        )
        await api.command(round_id, close)
        await asyncio.sleep(SERVER_HEARTBEAT.total_seconds() + 3)
        await locked.rollback()
    await _wait_stage(client, round_id, applicant, {Stage.SKD})
    handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant))

    async def written():
        events = (await handle.fetch_history()).events
        return events if events[-1].event_type == EventType.EVENT_TYPE_MARKER_RECORDED else None

    events = await _until(written, "the MS row's marker in the history")
    signalled = max(
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )
    starts = [
        e.event_time.ToDatetime(tzinfo=UTC)
        for e in events
        if e.event_id > signalled and e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    ]
    assert len(starts) == 2, starts  # the write outlasted the heartbeat
    [ms] = await pool.fetch("SELECT at FROM decisions WHERE round_id = $1 AND seq = 1", round_id)
    assert _same(ms["at"], starts[0])
    checked = await check_round(client, pool, round_id, data_converter(keys))
    assert (checked.applicants, checked.differences) == (1, [])
