"""The order in which the deliverer hands one applicant's notices over, on the session's real
PostgreSQL, with the deliverer's own pass (activities/notify.py) and file transport: the order its
journey recorded them, a later notice waiting for an earlier one that failed (from review C)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import pytest

from activities.notify import FileTransport, deliver_pass
from activities.readmodel import notification_facts, sealed_notification
from domain import notices
from domain.contracts import Notification
from domain.notices import Language, render
from runtime.db import open_pool
from runtime.sealed import ColumnCipher

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _note(key: str, notice) -> Notification:
    return Notification(key=key, text=render(notice, Language.ID), notice=notice)


class FailsOnce(FileTransport):
    """A transport that refuses one key once (an SMS gateway's 503), then takes everything."""

    def __init__(self, path, key: str) -> None:
        super().__init__(path)
        self.key, self.failed = key, False

    async def send(self, round_id, applicant_id, key, text):
        if key == self.key and not self.failed:
            self.failed = True
            raise ConnectionError("gateway busy")
        await super().send(round_id, applicant_id, key, text)


async def test_a_later_notice_of_one_applicant_waits_for_an_earlier_one_that_failed_once(
    stack, keys, tmp_path
):
    """An applicant's TMS (with the appeal's deadline) is refused once by the transport; the
    'appeal accepted' written after it waits while the TMS waits its minute, and goes after it:
    the last message the applicant receives says the appeal was accepted. Another applicant's
    notice is not held back. (Before: 'appeal accepted' went first, the TMS a minute later.)"""
    round_id = f"order-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "notifications.jsonl"
    cipher = ColumnCipher.from_keys(keys)
    earlier = _note("admin-TMS", notices.admin_result("TMS", [], None))
    later = _note("appeal-accepted", notices.appeal_accepted())
    other = _note("registered", notices.registered("R0002", "F1"))
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        for who, n, age in (
            ("R0001", earlier, timedelta(minutes=2)),
            ("R0001", later, timedelta(minutes=1)),
            ("R0002", other, timedelta(minutes=3)),
        ):
            sealed = base64.b64decode(
                sealed_notification(cipher, round_id, who, n.key, notification_facts(n))
            )
            await pool.execute(
                "INSERT INTO notifications (round_id, applicant_id, key, text, sealed, created_at)"
                " VALUES ($1, $2, $3, '', $4, now() - $5::interval)",
                round_id,
                who,
                n.key,
                sealed,
                age,
            )
        transport = FailsOnce(out, "admin-TMS")
        first = await deliver_pass(pool, transport, round_id=round_id, cipher=cipher)
        sent_first = [line["key"] for line in _lines(out)]
        waiting = await deliver_pass(pool, transport, round_id=round_id, cipher=cipher)
        # A minute later the failed row is due again.
        await pool.execute(
            "UPDATE notifications SET next_attempt_at = now() WHERE round_id = $1 "
            "AND delivered_at IS NULL",
            round_id,
        )
        rest = [await deliver_pass(pool, transport, round_id=round_id, cipher=cipher)]
        while rest[-1].delivered and len(rest) < 5:
            rest.append(await deliver_pass(pool, transport, round_id=round_id, cipher=cipher))
    finally:
        await pool.close()
    assert (first.delivered, first.failed) == (1, 1)
    assert sent_first == ["registered"]  # R0002's, not held back; R0001's later one waits
    assert (waiting.delivered, waiting.failed, waiting.due) == (0, 0, 0)
    assert sum(p.delivered for p in rest) == 2
    sent = [line["key"] for line in _lines(out) if line["applicant_id"] == "R0001"]
    assert sent == ["admin-TMS", "appeal-accepted"], sent
