"""Notifications leave through the outbox: each once, a failed hand-over retried on the next pass."""

from __future__ import annotations

import uuid

import pytest

from activities.notify import FileTransport, deliver_pending
from runtime.db import open_pool

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FlakyTransport:
    """A transport that refuses one key once (like an SMS gateway timing out), recording the rest."""

    def __init__(self, round_id: str, refuse_once: str) -> None:
        self.round_id, self.refuse_once = round_id, refuse_once
        self.sent: list[str] = []

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        if round_id != self.round_id:
            return  # rows of other tests in the session database
        if key == self.refuse_once:
            self.refuse_once = ""
            raise ConnectionError("gateway timeout")
        self.sent.append(key)


async def test_each_notification_is_delivered_once_and_a_failure_is_retried(stack, tmp_path):
    round_id = f"notify-{uuid.uuid4().hex[:6]}"
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        await pool.executemany(
            "INSERT INTO notifications (round_id, applicant_id, key, text) VALUES ($1, $2, $3, $4)",
            [
                (round_id, "APPLICANT1", k, f"text {k}")
                for k in ("registered", "admin-MS", "skd-P/L")
            ],
        )
        transport = FlakyTransport(round_id, refuse_once="admin-MS")
        await deliver_pending(pool, transport)
        assert sorted(transport.sent) == ["registered", "skd-P/L"]
        await deliver_pending(pool, transport)
        await deliver_pending(pool, transport)
        assert sorted(transport.sent) == ["admin-MS", "registered", "skd-P/L"]  # each once
        undelivered = await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE round_id = $1 AND delivered_at IS NULL",
            round_id,
        )
        assert undelivered == 0

        await pool.execute(
            "INSERT INTO notifications (round_id, applicant_id, key, text) VALUES ($1, 'A2', 'k', 't')",
            round_id,
        )
        path = tmp_path / "out.jsonl"
        await deliver_pending(pool, FileTransport(path))
        assert f'"round_id": "{round_id}"' in path.read_text()
    finally:
        await pool.close()
