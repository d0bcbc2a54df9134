"""The purge of a round's personal data and its applicants' aftermaths (a DIS after the journey
ended: workflows/aftermath.py, open for what may still come, never ending), on the session's real
stack (from review C)."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console
from temporalio.client import WorkflowExecutionStatus

from client.api import RecruitmentApi
from client.retention import AFTERMATH_TYPE, pending, purge_records
from domain.messages import Disqualification
from scripts.record_histories import run_small_round
from starter import Context, purge_personal_data
from tests.roundkit import OPERATOR, TEST_KEYRING
from workflows.ids import aftermath_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")
OVERRIDE = "uji penghapusan, surat 800/17/2026"


async def _end_round(client, round_id: str, keep: str | None = None) -> None:
    """End the round as it would end: its own workflow, formasi and journeys close (terminated
    here), all but `keep`, an aftermath, which nothing ends."""
    query = f"RoundId = '{round_id}' AND ExecutionStatus = 'Running'"
    async for e in client.list_workflows(query):
        if e.id != keep:
            await client.get_workflow_handle(e.id, run_id=e.run_id).terminate("the round ends")
    for _ in range(100):
        if (await client.count_workflows(query)).count == (keep is not None):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"round {round_id}: its workflows did not all close")


async def test_a_dis_after_the_journey_does_not_keep_the_round_from_being_purged(
    client, keys, running_worker, stack
):
    """One applicant's DIS after the journey ended starts an aftermath that runs for years,
    tagged with the round's RoundId. It is not counted as the round running: the ended round is
    purged (here before its retention, with an override), every applicant's personal data cleared,
    the aftermath still running. (Before: refused, '1 workflows of it run', for good.)"""
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id, ids = await run_small_round(
        client, settings.task_queue, keys.pseudonym_key, answer_within=1
    )
    c3 = ids["C3"]  # its journey has ended
    await api.report(
        round_id, c3, Disqualification(report_id="dis-c3", reported_by=OPERATOR, reason="joki")
    )
    after_id = aftermath_workflow_id(round_id, c3)
    await _end_round(client, round_id, keep=after_id)
    described = await client.get_workflow_handle(after_id).describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    assert described.workflow_type == AFTERMATH_TYPE

    assert sum((await pending(pool, round_id)).values()) > 0
    ctx = Context(api, stack.database_url, Console(file=io.StringIO(), width=200))
    await purge_personal_data(ctx, round_id, "dpo-test", 400, OVERRIDE)
    assert sum((await pending(pool, round_id)).values()) == 0
    described = await client.get_workflow_handle(after_id).describe()
    assert described.status == WorkflowExecutionStatus.RUNNING


async def test_what_an_aftermath_writes_after_a_purge_a_second_purge_clears(
    client, keys, running_worker, stack
):
    """A DIS reported after the round was purged starts an aftermath that writes its applicant's
    decision and revocation (the record, kept) and a sealed notification (personal): a second
    purge of the round clears that notification, recorded as a run of its own; a third finds
    nothing and records nothing."""
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id, ids = await run_small_round(
        client, settings.task_queue, keys.pseudonym_key, answer_within=1
    )
    await _end_round(client, round_id)
    ctx = Context(api, stack.database_url, Console(file=io.StringIO(), width=200))
    first = await purge_personal_data(ctx, round_id, "dpo-test", 400, OVERRIDE)
    assert sum((await pending(pool, round_id)).values()) == 0

    c3 = ids["C3"]
    await api.report(
        round_id, c3, Disqualification(report_id="dis-c3", reported_by=OPERATOR, reason="joki")
    )
    left = await pending(pool, round_id)
    assert {t: n for t, n in left.items() if n} == {"notifications": 1}
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM revocations WHERE round_id = $1 AND applicant_id = $2",
            round_id,
            c3,
        )
        == 1
    )

    second = await purge_personal_data(ctx, round_id, "dpo-test", 400, OVERRIDE)
    assert {t: n for t, n in second.items() if n} == {"notifications": 1}
    assert sum((await pending(pool, round_id)).values()) == 0
    third = await purge_personal_data(ctx, round_id, "dpo-test", 400, OVERRIDE)
    assert sum(third.values()) == 0
    runs = await pool.fetchval(
        "SELECT count(DISTINCT run_id) FROM personal_data_purges WHERE round_id = $1", round_id
    )
    assert runs == 2
    notes = [r for r in await purge_records(pool, round_id) if r.table == "notifications"]
    assert [r.rows for r in notes] == [first["notifications"] + 1]
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM revocations WHERE round_id = $1 AND applicant_id = $2",
            round_id,
            c3,
        )
        == 1
    )
