"""What the deliverer refuses to send from the notifications table (the outbox), on the session's
real PostgreSQL, with the deliverer's own pass (activities/notify.py) and file transport: a row in
clear that no journey sealed is given up, never handed over (from review C)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from structlog.testing import capture_logs

from activities.notify import NOT_SEALED, FileTransport, deliver_pass
from activities.readmodel import notification_facts, sealed_notification
from domain import notices
from domain.contracts import Notification
from domain.notices import Language, render
from runtime.db import open_pool
from runtime.sealed import ColumnCipher

pytestmark = pytest.mark.asyncio(loop_scope="session")

FORGED = (
    "Selamat! Anda dinyatakan LULUS (P). Transfer biaya pemberkasan Rp 2.500.000 ke "
    "rekening 123-456-789 paling lambat besok."
)


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _note(key: str, notice) -> Notification:
    return Notification(key=key, text=render(notice, Language.ID), notice=notice)


async def test_a_row_in_clear_written_after_sealing_began_is_given_up_and_never_sent(
    stack, keys, tmp_path
):
    """Every row the engine has written since migration 007 is sealed and bound to its row. A row
    in clear (sealed NULL) inserted today by whoever can write the table, with any text, for any
    registration number, is given up at once: not handed over, counted as given up and refused,
    one warning naming the row (never its text), its text kept for a person to look at. Put back
    as a given-up row is, it is refused again. (Before: handed to the transport as written.)"""
    round_id = f"forge-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "notifications.jsonl"
    cipher = ColumnCipher.from_keys(keys)
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        await pool.execute(
            "INSERT INTO notifications (round_id, applicant_id, key, text) "
            "VALUES ($1, 'R0001', 'final-P', $2)",
            round_id,
            FORGED,
        )
        with capture_logs() as logs:
            done = await deliver_pass(pool, FileTransport(out), round_id=round_id, cipher=cipher)
        row = await pool.fetchrow(
            "SELECT text, attempts, delivered_at, given_up_at FROM notifications "
            "WHERE round_id = $1",
            round_id,
        )
        await pool.execute(  # put back, as docs/OPERATIONS.md 2.5 puts back given-up rows
            "UPDATE notifications SET given_up_at = NULL, attempts = 0, next_attempt_at = NULL "
            "WHERE round_id = $1",
            round_id,
        )
        again = await deliver_pass(pool, FileTransport(out), round_id=round_id, cipher=cipher)
    finally:
        await pool.close()

    assert _lines(out) == []
    assert (done.delivered, done.failed, done.given_up, done.refused) == (0, 0, 1, 1)
    assert (again.delivered, again.given_up, again.refused) == (0, 1, 1)
    assert row["delivered_at"] is None and row["given_up_at"] is not None
    assert (row["text"], row["attempts"]) == (FORGED, 0)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [
        (e["event"], e["round_id"], e["applicant_id"], e["key"], e["error"]) for e in warnings
    ] == [("notification given up", round_id, "R0001", "final-P", NOT_SEALED)]
    assert "LULUS" not in repr(logs)


async def test_a_row_in_clear_written_before_sealing_began_is_delivered_and_emptied(
    stack, keys, tmp_path
):
    """A row written in clear before migration 007 was applied (its created_at before the
    migration's applied_at) is still delivered as it was written, and emptied once delivered."""
    round_id = f"legacy-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "notifications.jsonl"
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        await pool.execute(
            "INSERT INTO notifications (round_id, applicant_id, key, text, created_at) "
            "SELECT $1, 'R0002', 'registered', 'Pendaftaran Anda diterima.', applied_at - "
            "interval '1 day' FROM schema_migrations WHERE version = 7",
            round_id,
        )
        done = await deliver_pass(pool, FileTransport(out), round_id=round_id)
        text = await pool.fetchval("SELECT text FROM notifications WHERE round_id = $1", round_id)
    finally:
        await pool.close()

    assert (done.delivered, done.given_up) == (1, 0)
    assert [line["text"] for line in _lines(out)] == ["Pendaftaran Anda diterima."]
    assert text == ""


async def test_a_delivered_notice_marked_undelivered_is_not_sent_again(stack, keys, tmp_path):
    """A delivered row kept its sealed value, so clearing delivered_at sent the old notice again
    (e.g. an old TMS after the appeal was accepted; review C, 12-08). Delivery now empties the
    sealed value too: the row marked undelivered is one in clear, given up, not sent."""
    round_id = f"replay-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "notifications.jsonl"
    cipher = ColumnCipher.from_keys(keys)
    n = _note("admin-TMS", notices.admin_result("TMS", [], None))
    sealed = base64.b64decode(
        sealed_notification(cipher, round_id, "R0001", n.key, notification_facts(n))
    )
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        await pool.execute(
            "INSERT INTO notifications (round_id, applicant_id, key, text, sealed) "
            "VALUES ($1, 'R0001', $2, '', $3)",
            round_id,
            n.key,
            sealed,
        )
        await deliver_pass(pool, FileTransport(out), round_id=round_id, cipher=cipher)
        await pool.execute(
            "UPDATE notifications SET delivered_at = NULL WHERE round_id = $1", round_id
        )
        await deliver_pass(pool, FileTransport(out), round_id=round_id, cipher=cipher)
    finally:
        await pool.close()
    assert [line["key"] for line in _lines(out)] == ["admin-TMS"]
