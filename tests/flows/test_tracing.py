"""CASN_TRACING: the SDK's OpenTelemetry interceptor on the client traces a workflow from the
client's start to the worker's run, in one trace. No OTLP exporter package is installed here, so
the spans go to the log (runtime/telemetry.py), where this test reads them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from apps.fleet import build_worker
from client.api import RecruitmentApi
from runtime.connection import connect
from runtime.db import open_pool
from tests.roundkit import SCHEDULE_IN_DAYS, TEST_KEYRING, compressed_round, create_round_file
from tests.roundkit import formasi as make_formasi
from tests.test_logs import captured_logs
from workflows.ids import round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_round_is_traced_from_the_client_start_to_the_worker_run(
    stack, stack_settings, keys, tmp_path
):
    settings = stack_settings.model_copy(
        update={"tracing": True, "task_queue": f"trace-{uuid.uuid4().hex[:8]}"}
    )
    round_id = f"trace-{uuid.uuid4().hex[:6]}"
    with captured_logs(settings) as buffer:
        client = await connect(settings, stack, keys)
        pool = await open_pool(stack.database_url, max_size=2)
        api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
        try:
            async with await build_worker(client, settings, pool):
                config = compressed_round(
                    round_id, [make_formasi("F1", 1)], SCHEDULE_IN_DAYS, t0=datetime.now(UTC)
                )
                await create_round_file(api, config, tmp_path)
                await api.round_state(round_id)  # answered once the round has run
        finally:
            await client.get_workflow_handle(round_workflow_id(round_id)).terminate("test over")
            await pool.close()
    spans = {}
    for line in buffer.getvalue().splitlines():
        record = json.loads(line)
        if record["event"] == "span":
            spans.setdefault(record["name"], record)
    start, run = spans["StartWorkflow:RecruitmentRound"], spans["RunWorkflow:RecruitmentRound"]
    assert run["trace_id"] == start["trace_id"]
    assert run["parent_id"] == start["span_id"]
