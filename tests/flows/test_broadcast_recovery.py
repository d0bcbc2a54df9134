"""A worker killed (SIGKILL) in the middle of the SKD close: a second worker finishes the broadcast.

The first worker is a real `worker.py run` process; it is frozen as soon as it has started one of
the close's pages, and killed only if that page is still unfinished, so the kill always lands
mid-broadcast. The page's retry on the second worker resumes it: every journey is closed once, and
the cut is the one domain.ranking computes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from apps.fleet import build_worker
from client.api import RecruitmentApi
from domain.protocol import BROADCAST, CLOSE_STAGE
from runtime.db import open_pool
from runtime.settings import Settings
from tests.flows.test_formasi_continue_as_new import (
    close,
    drive_to_skd,
    expected_codes,
    register_all,
    report_skd,
    skd_scores,
    start_round,
    terminate_round,
    wait_skd_codes,
)
from tests.roundkit import TEST_KEYRING
from workflows.ids import formasi_workflow_id, journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]


def worker_process(settings: Settings, log: Path) -> subprocess.Popen:
    """`worker.py run` on the session's embedded stack and the test's own task queue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASN_")}
    env.update(
        CASN_DATA_DIR=str(settings.data_dir),
        CASN_TEMPORAL_PORT=str(settings.temporal_port),
        CASN_TEMPORAL_UI_PORT=str(settings.temporal_ui_port),
        CASN_POSTGRES_PORT=str(settings.postgres_port),
        CASN_TASK_QUEUE=settings.task_queue,
        CASN_METRICS_PORT="0",
        CASN_LOG_LEVEL="WARNING",
        CASN_LOG_FORMAT="json",
    )
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


async def kill_mid_page(formasi: WorkflowHandle, worker: subprocess.Popen, timeout: float) -> str:
    """SIGKILL `worker` while it holds an unfinished broadcast page; the page's activity id.

    The worker is stopped (SIGSTOP) the moment a page shows as started on it; if that page is still
    pending while nothing can move on the worker, it is killed, else it goes on and the next page
    is tried.
    """
    deadline = time.monotonic() + timeout
    identity = f"{worker.pid}@"
    while time.monotonic() < deadline:
        pending = [
            a
            for a in (await formasi.describe()).raw_description.pending_activities
            if a.activity_type.name == BROADCAST.name
            and a.last_worker_identity.startswith(identity)
            and a.last_started_time.seconds
        ]
        if pending:
            os.kill(worker.pid, signal.SIGSTOP)
            still = {
                a.activity_id for a in (await formasi.describe()).raw_description.pending_activities
            }
            if pending[0].activity_id in still:
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait()
                return pending[0].activity_id
            os.kill(worker.pid, signal.SIGCONT)
        await asyncio.sleep(0.01)
    raise AssertionError(f"no broadcast page started on worker {worker.pid} in {timeout:g} s")


async def close_updates(client: Client, workflow_id: str) -> list[str]:
    """The update ids of the close_stage updates the journey's history accepted."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        == CLOSE_STAGE.name
    ]


async def broadcast_attempts(client: Client, workflow_id: str) -> list[int]:
    """The attempt of every broadcast page that finished, over every run of the formasi."""
    attempts = []
    async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=run.run_id).fetch_history()
        scheduled = {
            e.event_id
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name == BROADCAST.name
        }
        attempts += [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
        ]
    return attempts


async def test_a_worker_killed_mid_close_is_replaced_and_every_journey_closed_once(
    client, keys, stack, stack_settings, tmp_path
):
    count, quota = 24, 2  # the round's broadcast pages hold 8 journeys: three pages per close
    settings = stack_settings.model_copy(update={"task_queue": f"kill-{uuid.uuid4().hex[:8]}"})
    pool = await open_pool(stack.database_url, max_size=8)
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"kill-{uuid.uuid4().hex[:6]}"
    scores = skd_scores(count, quota, seed=3)
    first = worker_process(settings, tmp_path / "first-worker.log")
    try:
        config = await start_round(api, round_id, quota, tmp_path)
        ids = await register_all(api, config, count)
        await drive_to_skd(client, api, config, ids)
        await report_skd(api, round_id, ids, scores, ids)
        fid = formasi_workflow_id(round_id, "F1")
        await close(api, round_id, "skd")
        await kill_mid_page(client.get_workflow_handle(fid), first, timeout=60)

        async with await build_worker(client, settings, pool):
            codes = await wait_skd_codes(client, round_id, ids, timeout=90)
            assert codes == expected_codes(scores, quota)
            assert max(await broadcast_attempts(client, fid)) >= 2  # the killed page, retried
            closes = {
                a: await close_updates(client, journey_workflow_id(round_id, a))
                for a in ids.values()
            }
            twice = {a: u for a, u in closes.items() if len(u) != 1}
            assert not twice, twice  # a repeat is answered, not run again
            await terminate_round(client, round_id)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        await pool.close()
