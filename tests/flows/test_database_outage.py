"""The read-model database down for a while: reports are still taken, nothing is lost or doubled.

The journeys' histories are the source of truth; their projections into PostgreSQL are local
activities that retry until the database is back, then the read model equals the workflows. The
round keeps its schedule; an early close of registration is taken at once but acknowledged only
once the round's board (docs/ARCHITECTURE.md) is written, when the database is back.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio
from rich.console import Console
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from activities.rounds import RoundBoards
from apps.fleet import build_worker
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import AdminReport, CloseWindow, JourneyState
from runtime.connection import data_converter
from runtime.db import open_pool
from runtime.embedded import _stop_postgres, ensure_stack, isolated_settings, stop_stack
from runtime.keys import load_or_create_keys
from runtime.logs import REPEAT_WINDOW_S
from runtime.sealed import ColumnCipher
from runtime.settings import LogFormat
from runtime.telemetry import core_logging
from starter import Context, status, unreachable
from tests.flows.test_round_end_to_end import _state, _wait_stage
from tests.roundkit import (
    OPERATOR,
    TEST_KEYRING,
    compressed_round,
    create_round_file,
    formasi,
    registration,
)
from tests.test_logs import captured_logs
from workflows.calls import LOCAL_PAUSE
from workflows.ids import round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

OUTAGE_S = 3  # the database stays down this long after the decisions
CLOSE_REGISTRATION = CloseWindow(
    report_id="close-reg", reported_by=OPERATOR, window="registration", reason="test"
)


@pytest_asyncio.fixture(loop_scope="session")
async def private_stack(server_dir):
    """A stack of this test's own: stopping its PostgreSQL disturbs no other test."""
    settings = isolated_settings(
        server_dir("outage"), task_queue="outage-test", log_format=LogFormat.JSON
    )
    info = await ensure_stack(settings)
    try:
        yield settings, info
    finally:
        stop_stack(settings)


async def test_reports_survive_a_read_model_outage(private_stack, tmp_path):
    settings, info = private_stack
    keys = load_or_create_keys(settings)
    # The core's own lines (e.g. "[TMPRL1104] ... Workflow task duration exceeded") go into the
    # log as a worker's do (runtime/telemetry.py), so the outage's line count includes them.
    client = await Client.connect(
        info.temporal_address,
        data_converter=data_converter(keys),
        runtime=Runtime(telemetry=TelemetryConfig(logging=core_logging(settings))),
    )
    pool = await open_pool(info.database_url, max_size=4)
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    ids: list[str] = []
    try:
        async with await build_worker(client, settings, pool):
            ids = await start_outage_round(api, client, tmp_path)

            began = time.monotonic()
            with captured_logs(settings) as log_lines:
                assert _stop_postgres(settings.data_dir.resolve()) is not None
                states, close_reg = await _outage(api, client, ids)
                await _status_without_read_model(api, info.database_url)
                await ensure_stack(settings)  # PostgreSQL back (the Temporal server is reused)
                # An outage longer than a local activity's attempts (about a minute, on a loaded
                # machine) adds the workflow's pause on its timer before the write is made.
                back_within = LOCAL_PAUSE.total_seconds() + 60
                ack = await asyncio.wait_for(close_reg, timeout=back_within)
                assert ack.effect == "registration closed early"
                board = await RoundBoards(pool, ColumnCipher.from_keys(keys)).get(
                    round_workflow_id("outage")
                )
                assert board is not None and board.view.registration_closed_at is not None
                deadline = time.monotonic() + back_within
                while True:
                    rows = await _rows(info.database_url, ids)
                    if (
                        all(r is not None and r["admin"] == "MS" for r in rows.values())
                        or time.monotonic() > deadline
                    ):
                        break
                    await asyncio.sleep(0.5)
            # Every projection retried against the same refused connection: each cause is written
            # once per window, then once more with the count of its repeats (35 lines without, 6
            # with). Which causes appear depends on timing (a pool's reconnect may meet the
            # database shutting down, or refused), so the bound is per cause, not in all.
            windows = 1 + int((time.monotonic() - began) // REPEAT_WINDOW_S)
            records = [json.loads(line) for line in log_lines.getvalue().splitlines()]
            failures = [r for r in records if r["level"] in ("warning", "error")]
            causes = Counter(_cause(r) for r in failures)
            assert max(causes.values()) <= 2 * windows, (windows, causes)
            assert sum(r.get("repeated", 0) for r in failures) > 0, failures
            for a, state in zip(ids, states, strict=True):
                now = await _state(client, "outage", a)
                assert rows[a] is not None and rows[a]["admin"] == "MS", (a, rows[a])
                assert rows[a]["decisions"] == len(now.decisions) >= len(state.decisions)
                assert rows[a]["reports"] == 1  # the report once, however many retries
    finally:
        await pool.close()
        for a in ids:
            await client.get_workflow_handle(f"outage/applicant/{a}").terminate("test over")


async def start_outage_round(api, client, tmp_path) -> list[str]:
    """The one-formasi round "outage" (long windows: the committee closes them), three applicants
    registered and at the administrative check; their applicant ids."""
    config = compressed_round(
        "outage",
        [formasi("F1", 1)],
        {
            "registration": (-60, 600),
            "administration": (600, 1200),
            "skd": (1200, 1800),
            "skb": (1800, 2400),
            "filing": (2400, 3000),
            "latsar": (3000, 3600),
        },
        t0=datetime.now(UTC),
    )
    await create_round_file(api, config, tmp_path)
    ids = [
        (await api.register(config, registration(i, "F1"), "sscasn")).applicant_id
        for i in (1, 2, 3)
    ]
    for a in ids:
        await _wait_stage(client, "outage", a, {Stage.ADMIN_CHECK})
    return ids


async def _outage(api, client, ids: list[str]) -> tuple[list[JourneyState], asyncio.Task]:
    """With the database down the engine still takes the results and decides; the early close
    of registration is taken (the round moves on) but waits for the board to be acknowledged."""
    for i, a in enumerate(ids):
        await api.report(
            "outage", a, AdminReport(report_id=f"adm-{i}", reported_by="bkpsdm-verifikator")
        )
    close_reg = asyncio.create_task(api.command("outage", CLOSE_REGISTRATION))
    await _until(
        lambda: api.round_state("outage"),
        lambda state: state.phase == "administration",
        "the round never reached administration",
    )
    await asyncio.sleep(1)
    assert not close_reg.done(), (
        f"answered before the board could be written: {_outcome(close_reg)}"
    )
    await api.command(
        "outage",
        CloseWindow(
            report_id="close-adm",
            reported_by=OPERATOR,
            window="administration",
            reason="test",
        ),
    )
    states = [await _wait_decision(client, a, "MS") for a in ids]
    await asyncio.sleep(OUTAGE_S)  # the projections fail and retry meanwhile
    assert not close_reg.done(), f"answered with the database down: {_outcome(close_reg)}"
    return states, close_reg


async def _status_without_read_model(api, database_url: str) -> None:
    """`starter.py status` with the database down shows the round from its workflow, says why
    the funnel is missing, and ends with the database's error (the command exits 3)."""
    for as_json in (True, False):
        out = io.StringIO()
        ctx = Context(api, database_url, Console(file=out, width=250))
        with pytest.raises(Exception) as raised:  # refused, or asyncpg.CannotConnectNowError
            await status(ctx, "outage", as_json=as_json)
        assert unreachable(raised.value) is not None, raised.value
        if as_json:
            document = json.loads(out.getvalue())
            assert document["round"]["phase"] == "skd", document["round"]
            assert document["funnel"] is None
            assert document["funnel_problem"].startswith("the database cannot be reached")
        else:
            shown = out.getvalue()
            assert "Windows of round outage" in shown, shown
            assert "funnel of round outage: not shown: the database cannot be reached" in shown


def _outcome(task: asyncio.Task) -> str:
    """What a finished command task gave: its acknowledgement or its exception."""
    error = task.exception()
    return repr(error) if error is not None else repr(task.result())


async def _wait_decision(client, applicant_id: str, outcome: str) -> JourneyState:
    return await _until(
        lambda: _state(client, "outage", applicant_id),
        lambda state: any(d.outcome == outcome for d in state.decisions),
        f"{applicant_id}: no {outcome} decision while the database was down",
    )


async def _until(ask, done, failure: str, timeout: float = 40):
    """The first answer to `ask` (a query) that is `done`. A query that times out is asked again:
    with the database down a workflow's task stays open while its local activity retries, and a
    query waits for that task, on a loaded machine longer than the server waits for a query."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = await ask()
            if done(answer):
                return answer
        except RPCError as err:
            if "Timeout expired" not in err.message and err.status not in (
                RPCStatusCode.CANCELLED,
                RPCStatusCode.DEADLINE_EXCEEDED,
            ):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(failure)
        await asyncio.sleep(0.3)


def _cause(record: dict) -> tuple[str, str]:
    """A written warning's logger and cause (the exception's last line, else the event), with
    numbers and ids left out, as runtime.logs.cause_of groups the lines it holds back."""
    trace = (record.get("exception") or "").strip().splitlines()
    what = trace[-1] if trace else record["event"]
    return record.get("logger", ""), re.sub(r"[0-9a-f]{8,}|\d+", "#", what)[:160]


async def _rows(database_url: str, ids: list[str]) -> dict:
    try:
        conn = await asyncpg.connect(database_url, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return dict.fromkeys(ids)
    try:
        out = {}
        for a in ids:
            row = await conn.fetchrow(
                "SELECT admin, (SELECT count(*) FROM decisions d WHERE d.round_id = a.round_id "
                "AND d.applicant_id = a.applicant_id) AS decisions, (SELECT count(*) FROM stage_reports r "
                "WHERE r.round_id = a.round_id AND r.applicant_id = a.applicant_id) AS reports "
                "FROM applicants a WHERE round_id = 'outage' AND applicant_id = $1",
                a,
            )
            out[a] = dict(row) if row else None
        return out
    finally:
        await conn.close()


async def test_a_pool_whose_database_is_stopped_says_so_in_one_line_not_a_traceback(
    private_stack,
):
    """A worker's or a gateway's pool keeps a connection open: asyncpg reconnects it in the
    background while the database is down (1 s, 2, 4, ...), and wrote a warning with its
    traceback at every try."""
    settings, info = private_stack
    pool = await open_pool(info.database_url, max_size=2)
    try:
        with captured_logs(settings) as log_lines:
            assert _stop_postgres(settings.data_dir.resolve()) is not None
            await asyncio.sleep(8)  # the first tries against the stopped server
            await ensure_stack(settings)  # PostgreSQL back (the Temporal server is reused)
            assert pool.get_size() == 0  # its kept connection lost
            deadline = time.monotonic() + 90
            while pool.get_size() == 0:  # reconnected by asyncpg, not by a query of ours
                assert time.monotonic() < deadline, "the pool did not reconnect within 90 s"
                await asyncio.sleep(0.5)
            assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
    records = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    from_pool = [r for r in records if r.get("logger") in ("asyncpg.pool", "runtime.db")]
    assert [(r["level"], r["event"]) for r in from_pool] == [
        ("warning", "database down: the pool reconnects until it answers"),
        ("info", "database back: the pool reconnected"),
    ], from_pool
    assert not any("exception" in r for r in records), records
    assert from_pool[1]["tries"] >= 3 and from_pool[1]["down_s"] > 5, from_pool[1]
