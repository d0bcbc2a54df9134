"""A round's personal data purged from the read model once its purpose has ended (UU 27/2022;
client/retention.py, `starter.py purge-personal-data`, docs/OPERATIONS.md 8), on the session's
real stack: a small round played to its final ranking, refused while it runs and within its
retention, counted by a dry run, purged in batches with its record, purged again to no effect;
the record cannot be altered, the auditor's check finds the kept record as the histories wrote it,
and the operator's status and the portal's login say that the data is gone."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import structlog
from argon2 import PasswordHasher
from rich.console import Console

from activities.readmodel import ReadModel
from auditing.history import AuditError, round_histories
from auditing.pagestore import check_pages
from auditing.pagestore import rebuild as rebuild_pages
from auditing.readmodel import check_round, projected, repair
from client.api import RecruitmentApi, RefusedError, UnknownError
from client.retention import PERSONAL, pending
from runtime.connection import data_converter
from runtime.embedded import owner_database_url
from runtime.sealed import ColumnCipher
from scripts.record_histories import run_small_round
from starter import Context, lookup, purge_personal_data, status
from tests.forked import DRIVER
from tests.roundkit import TEST_KEYRING, command_env
from tests.web.test_portal import log_in, text_of

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "kata-sandi-yang-panjang-1"
OVERRIDE = "uji penghapusan, surat 800/17/2026"

# What the purge keeps of a round: the record of the selection, every column of it.
KEPT = {
    "applicants": "SELECT round_id, applicant_id, formasi_code, stage, admin, skd_code, skd_total, "
    "skb_score, final_score, final_code, placed_formasi, terminal, sanction_rounds, tmt, version, "
    "updated_at FROM applicants WHERE round_id = $1 ORDER BY applicant_id",
    "decisions": "SELECT * FROM decisions WHERE round_id = $1 ORDER BY applicant_id, seq",
    "stage_reports": "SELECT applicant_id, report_id, kind FROM stage_reports WHERE round_id = $1 "
    "ORDER BY applicant_id, report_id",
    "notifications": "SELECT applicant_id, key, created_at, delivered_at FROM notifications "
    "WHERE round_id = $1 ORDER BY applicant_id, key",
    "nips": "SELECT * FROM nips WHERE round_id = $1 ORDER BY applicant_id",
    "sanctions": "SELECT * FROM sanctions WHERE origin LIKE $1 || '/%' ORDER BY origin",
    "revocations": "SELECT * FROM revocations WHERE round_id = $1 ORDER BY applicant_id, seq",
    "access_log": "SELECT * FROM access_log WHERE round_id = $1 ORDER BY id",
    "skm_responses": "SELECT * FROM skm_responses WHERE round_id = $1 ORDER BY id",
    "round_boards": "SELECT * FROM round_boards WHERE split_part(workflow_id, '/', 1) = $1",
}


async def kept(pool, round_id: str) -> dict[str, list[dict]]:
    return {t: [dict(r) for r in await pool.fetch(sql, round_id)] for t, sql in KEPT.items()}


async def recorded(pool, round_id: str) -> list[dict]:
    rows = await pool.fetch(
        "SELECT * FROM personal_data_purges WHERE round_id = $1 ORDER BY id", round_id
    )
    return [dict(r) for r in rows]


def _context(client, keys, settings, stack) -> Context:
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    return Context(api, stack.database_url, Console(file=io.StringIO(), width=200))


def _said(ctx: Context) -> str:
    out = ctx.console.file.getvalue()  # type: ignore[attr-defined]
    ctx.console.file = io.StringIO()
    return " ".join(out.split())


async def _end_the_round(client, round_id: str) -> None:
    """End every workflow of the round (as its own end would), and wait until visibility says so."""
    query = f"RoundId = '{round_id}' AND ExecutionStatus = 'Running'"
    async for e in client.list_workflows(query):
        await client.get_workflow_handle(e.id, run_id=e.run_id).terminate("the test round ends")
    for _ in range(100):
        if (await client.count_workflows(query)).count == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"workflows of {round_id} still listed as running")


async def test_a_round_is_purged_only_once_ended_and_keeps_its_record_and_says_so(
    client, keys, running_worker, stack, stack_settings, http, tmp_path
):
    settings, pool = running_worker
    round_id, ids = await run_small_round(
        client, settings.task_queue, keys.pseudonym_key, answer_within=1
    )
    c1 = ids["C1"]
    # What the small round does not write itself: a portal account (its session opened by a real
    # login below) and a survey answer's mark.
    await pool.execute(
        "INSERT INTO portal_accounts (round_id, applicant_id, password_hash) VALUES ($1, $2, $3)",
        round_id,
        c1,
        PasswordHasher().hash(PASSWORD),
    )
    await pool.execute(
        "INSERT INTO skm_taken (round_id, applicant_id, stage) VALUES ($1, $2, 'registration')",
        round_id,
        c1,
    )
    logged_in = await log_in(http, round_id, c1, PASSWORD)
    assert logged_in.status_code == 303, text_of(logged_in.text)
    http.cookies.clear()
    await asyncio.sleep(1.0)  # visibility lists the last starts

    ctx = _context(client, keys, settings, stack)
    before = await pending(pool, round_id)
    assert before["applicants"] == 3 and before["notifications"] > 0, before
    assert before["portal_accounts"] == before["portal_sessions"] == before["skm_taken"] == 1
    assert before["pages"] > 0, before
    record_before = await kept(pool, round_id)

    # Refused while the round runs, however it is asked: its journeys would write it back.
    with pytest.raises(RefusedError, match=r"is still running \(\d+ workflows of it run\)"):
        await purge_personal_data(ctx, round_id, "dpo-test", 400, OVERRIDE)
    assert await pending(pool, round_id) == before

    await _end_the_round(client, round_id)

    # Ended now: refused within its retention (400 days by default), naming until when.
    with pytest.raises(RefusedError, match=r"its retention of 400 days runs until (\S+)") as no:
        await purge_personal_data(ctx, round_id, "dpo-test", 400)
    until = datetime.strptime(no.value.args[0].split("runs until ")[1][:16], "%Y-%m-%d %H:%M")
    assert until.replace(tzinfo=UTC) - datetime.now(UTC) > timedelta(days=399)
    assert await pending(pool, round_id) == before and await recorded(pool, round_id) == []

    # The dry run, as an operator runs it: a table of what would go, per table; nothing changes.
    env = command_env(
        stack.temporal_address, stack.database_url, keys, tmp_path / "d", COLUMNS="200"
    )
    dry = await asyncio.to_thread(
        DRIVER.run, "starter.py", ["purge-personal-data", round_id, "--dry-run"], env, tmp_path, 120
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    for c in PERSONAL:
        line = next(x for x in dry.stdout.splitlines() if f" {c.table} " in x)
        assert f" {before[c.table]:,} " in line, (c.table, line)
    assert "clear name" in dry.stdout and "delete rows" in dry.stdout
    assert "a purge now would be refused" in " ".join(dry.stdout.split())
    assert await pending(pool, round_id) == before and await recorded(pool, round_id) == []

    # Purged before its retention ends, with the reason: one transaction and one record per batch.
    with structlog.testing.capture_logs() as logs:
        done = await purge_personal_data(ctx, round_id, "dpo-test", 400, OVERRIDE, batch=2)
    [warned] = [e for e in logs if e["event"] == "personal data purged before the retention ends"]
    assert warned["log_level"] == "warning" and warned["reason"] == OVERRIDE
    assert warned["purged_by"] == "dpo-test" and warned["round_id"] == round_id
    assert done == before
    assert set((await pending(pool, round_id)).values()) == {0}
    names = await pool.fetch("SELECT name FROM applicants WHERE round_id = $1", round_id)
    assert {r["name"] for r in names} == {""}
    notes = await pool.fetch("SELECT * FROM notifications WHERE round_id = $1", round_id)
    assert all(n["sealed"] is None and n["text"] == "" and n["notice"] is None for n in notes)
    assert all(n["delivered_at"] is not None or n["given_up_at"] is not None for n in notes)
    assert await kept(pool, round_id) == record_before  # the record of the selection, untouched
    rows = await recorded(pool, round_id)
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["table_name"]] = totals.get(r["table_name"], 0) + r["rows"]
        assert r["rows"] <= 2 and r["purged_by"] == "dpo-test" and r["os_user"]
        assert r["override_reason"] == OVERRIDE and r["retention_days"] == 400
        assert r["round_ended_at"] is not None
    assert totals == {t: n for t, n in before.items() if n}
    assert len({r["run_id"] for r in rows}) == 1

    # Again: nothing left, nothing changed, nothing recorded.
    again = await purge_personal_data(ctx, round_id, "dpo-test", 400, OVERRIDE)
    assert set(again.values()) == {0}
    assert "no personal data left to purge" in _said(ctx)
    assert await recorded(pool, round_id) == rows
    assert await kept(pool, round_id) == record_before

    # The record cannot be altered, removed or emptied: the processes' role is granted none of it,
    # and the tables' owner meets the trigger.
    owner = await asyncpg.connect(owner_database_url(stack_settings))
    try:
        for sql, args in (
            ("UPDATE personal_data_purges SET rows = 1 WHERE round_id = $1", [round_id]),
            ("DELETE FROM personal_data_purges WHERE round_id = $1", [round_id]),
            ("TRUNCATE personal_data_purges", []),
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await pool.execute(sql, *args)
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await owner.execute(sql, *args)
    finally:
        await owner.close()
    assert await recorded(pool, round_id) == rows

    # The auditor's check compares what the purge kept: the histories' record, no difference.
    checked = await check_round(client, pool, round_id, data_converter(keys))
    assert checked.replay_failures == [] and checked.differences == [], checked.differences
    assert checked.applicants == 3
    # A name written back is personal data where none should be: named.
    await pool.execute(
        "UPDATE applicants SET name = 'Budi' WHERE round_id = $1 AND applicant_id = $2",
        round_id,
        c1,
    )
    found = await check_round(client, pool, round_id, data_converter(keys))
    assert [(d.kind, d.applicant_id, d.detail) for d in found.differences] == [
        ("row altered", c1, "name")
    ]
    await purge_personal_data(ctx, round_id, "dpo-test", 400, OVERRIDE)  # cleared, and recorded
    # A repair would write the purged data back from the histories: refused.
    histories = await round_histories(client, round_id, "journey")
    with pytest.raises(AuditError, match="personal data was purged"):
        await repair(
            pool,
            ReadModel(pool, ColumnCipher.from_keys(keys)),
            await projected(round_id, histories, data_converter(keys)),
        )

    # The page store: the pages the formasi's and round's histories reference went with the purge
    # (deleted, not missing), and making them again would write their data back: refused.
    owners = [
        *await round_histories(client, round_id, "formasi"),
        *await round_histories(client, round_id, "round"),
    ]
    cipher = ColumnCipher.from_keys(keys)
    pages = await check_pages(pool, cipher, round_id, owners, data_converter(keys))
    assert pages.problems == [] and pages.purged_on is not None, pages.problems[:3]
    assert pages.purged == pages.referenced > 0
    with pytest.raises(AuditError, match="personal data was purged"):
        await rebuild_pages(client, pool, cipher, round_id, owners, data_converter(keys), pages)

    # The operator's status says so, as a line and in JSON; the funnel is still counted.
    await status(ctx, round_id)
    shown = _said(ctx)
    assert f"personal data purged: round {round_id}'s personal data was purged" in shown, shown
    await status(ctx, round_id, as_json=True)
    document = json.loads(ctx.console.file.getvalue())  # type: ignore[attr-defined]
    assert document["personal_data_purged_at"] is not None
    assert sum(sum(per.values()) for per in document["funnel"].values()) == 3

    # The portal's login says the round's data is gone, not that the password is wrong.
    refused = await log_in(http, round_id, c1, PASSWORD)
    assert refused.status_code == 410, text_of(refused.text)
    assert "telah dihapus" in text_of(refused.text) and "UU 27/2022" in text_of(refused.text)


async def test_looking_up_an_applicant_of_a_purged_round_gone_from_temporal_says_it_was_purged(
    client, keys, running_worker, stack
):
    settings, pool = running_worker
    # A round purged long ago: the namespace has deleted its histories, its record is kept.
    round_id = f"gone-{uuid.uuid4().hex[:6]}"
    await pool.execute(
        "INSERT INTO personal_data_purges (run_id, round_id, table_name, action, columns, rows, "
        "purged_by, os_user, round_ended_at, retention_days) VALUES ($1, $2, 'applicants', "
        "'cleared', '{name}', 3, 'dpo-test', 'root', now() - interval '500 days', 400)",
        uuid.uuid4(),
        round_id,
    )
    ctx = _context(client, keys, settings, stack)
    with pytest.raises(UnknownError, match=f"round {round_id}'s personal data was purged from"):
        await lookup(ctx, round_id, "A" * 16)
    with pytest.raises(UnknownError) as other:  # a round never purged: as before
        await lookup(ctx, f"none-{uuid.uuid4().hex[:6]}", "A" * 16)
    assert "purged" not in str(other.value)
