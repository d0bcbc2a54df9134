"""A worker asked to stop while the read model is down stops, and nothing it left is lost; a
command sent again once the database is back ends the round's pause.

Before runtime/stopping.py the shutdown never ended: the SDK's core kept retrying the round's
board write and the journeys' projections every 10 s while the worker stopped, past their 60 s
schedule-to-close, and the workflow tasks they belonged to stayed open (a probe waited 240 s).
Since patch local-activity-backoff-timers a new workflow holds a failing local activity in its
task for at most 7 s (its longer back-offs are timers), so this stop no longer depends on the
interceptor, which remains for workflows started before it (tests/test_stopping.py checks it,
and scripts/local_activity_shutdown.py shows the SDK's part).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from activities.rounds import RoundBoards
from apps.fleet import build_worker
from auditing.history import replay
from client.api import RecruitmentApi
from runtime.connection import data_converter
from runtime.db import open_pool
from runtime.embedded import _stop_postgres, ensure_stack, isolated_settings, stop_stack
from runtime.keys import load_or_create_keys
from runtime.sealed import ColumnCipher
from scripts.record_histories import patch_markers, timers_started
from tests.flows.test_database_outage import (
    CLOSE_REGISTRATION,
    _outage,
    _rows,
    start_outage_round,
)
from tests.roundkit import TEST_KEYRING
from workflows.calls import LOCAL_ATTEMPTS_FOR, LOCAL_PAUSE, local_pause_bounds
from workflows.ids import journey_workflow_id, round_workflow_id
from workflows.versions import LOCAL_ACTIVITY_GROWING_PAUSE

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROUND = "outage"  # the name test_database_outage's helpers use (a server of its own)
STOP_WITHIN_S = 60  # a liveness bound, not a speed target: before the fix it never stopped


@pytest_asyncio.fixture(loop_scope="session")
async def own_stack(server_dir):
    """A stack of this test's own: its PostgreSQL is stopped."""
    settings = isolated_settings(server_dir("stopping"), task_queue="stopping-test")
    info = await ensure_stack(settings)
    try:
        yield settings, info
    finally:
        stop_stack(settings)


async def _pauses(handle, shortest: timedelta, longest: timedelta) -> int:
    """How many timers of the workflow are pauses within these bounds."""
    history = await handle.fetch_history()
    return sum(1 for t in timers_started(history) if shortest <= t <= longest)


async def test_a_worker_stops_while_the_read_model_is_down(own_stack, tmp_path):
    settings, info = own_stack
    keys = load_or_create_keys(settings)
    client = await Client.connect(info.temporal_address, data_converter=data_converter(keys))
    pool = await open_pool(info.database_url, max_size=4)
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    ids: list[str] = []
    try:
        worker = await build_worker(client, settings, pool)
        running = asyncio.create_task(worker.run())
        ids = await start_outage_round(api, client, tmp_path)

        assert _stop_postgres(settings.data_dir.resolve()) is not None
        # Decided with the database down (as in test_database_outage): the journeys' projections
        # and the round's board write fail and retry; the early close of registration waits.
        _, close_reg = await _outage(api, client, ids)

        began = time.monotonic()
        try:
            await asyncio.wait_for(worker.shutdown(), STOP_WITHIN_S)
        except TimeoutError:
            raise AssertionError(
                f"the worker did not stop within {STOP_WITHIN_S} s with the read model down"
            ) from None
        stopped_in = time.monotonic() - began
        await running

        # Nothing failed: the workflows wait (on the pause's timer), the command is still open.
        for wid in [round_workflow_id(ROUND), *(journey_workflow_id(ROUND, a) for a in ids)]:
            description = await client.get_workflow_handle(wid).describe()
            assert description.status == WorkflowExecutionStatus.RUNNING, (wid, stopped_in)
        assert not close_reg.done(), "the command was answered by a worker that was stopping"

        # A new worker while the database is still down: the round's board write runs out of its
        # first series (or was ended by the stop) and pauses (patch local-activity-growing-pause).
        shortest, longest = local_pause_bounds(0)  # the first pause
        round_handle = client.get_workflow_handle(round_workflow_id(ROUND))
        async with await build_worker(client, settings, pool):
            deadline = time.monotonic() + LOCAL_ATTEMPTS_FOR.total_seconds() + 60
            while not await _pauses(round_handle, shortest, longest):
                assert time.monotonic() < deadline, "the round's board write never paused"
                await asyncio.sleep(1)
            # The database back; the operator sends the close again: the round's pause ends at
            # once, the board is written and both commands are acknowledged.
            await ensure_stack(settings)
            wait_s = LOCAL_PAUSE.total_seconds() + 60
            again = await asyncio.wait_for(api.command(ROUND, CLOSE_REGISTRATION), timeout=wait_s)
            assert again.effect == "registration closed early"
            ack = await asyncio.wait_for(close_reg, timeout=wait_s)
            assert ack.effect == "registration closed early"
            board = await RoundBoards(pool, ColumnCipher.from_keys(keys)).get(
                round_workflow_id(ROUND)
            )
            assert board is not None and board.view.registration_closed_at is not None
            # Each journey writes its row when its own pause ends (its first or second).
            deadline = time.monotonic() + local_pause_bounds(1)[1].total_seconds() + 60
            while True:
                rows = await _rows(info.database_url, ids)
                if all(r is not None and r["admin"] == "MS" for r in rows.values()):
                    break
                assert time.monotonic() < deadline, rows
                await asyncio.sleep(0.5)
            assert all(r["reports"] == 1 for r in rows.values()), rows  # once, however retried
        # The round's history shows the path: no failed workflow task, its pause, and the pause's
        # timer cancelled by the command sent again (not fired).
        history = await round_handle.fetch_history()
        kinds = [e.event_type for e in history.events]
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds
        assert await _pauses(round_handle, shortest, longest)
        assert EventType.EVENT_TYPE_TIMER_CANCELED in kinds, "the command did not end the pause"
        # The patch is in the histories, and they replay as they ran.
        histories = [
            await client.get_workflow_handle(wid).fetch_history()
            for wid in [round_workflow_id(ROUND), *(journey_workflow_id(ROUND, a) for a in ids)]
        ]
        assert LOCAL_ACTIVITY_GROWING_PAUSE in patch_markers(histories[0])
        outcomes = await replay(histories, client.data_converter)
        assert all(o.ok for o in outcomes), [
            (o.workflow_id, o.failure or o.drift) for o in outcomes
        ]
    finally:
        await pool.close()
        for wid in [round_workflow_id(ROUND), *(journey_workflow_id(ROUND, a) for a in ids)]:
            try:
                await client.get_workflow_handle(wid).terminate("test over")
            except Exception:  # noqa: BLE001 - already ended
                pass
