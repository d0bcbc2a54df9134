"""Delivering notifications to applicants: the read model's table is the outbox.

Journeys record a notification with every outcome (in the same statement as their read-model
row). A deliverer takes undelivered rows, hands each to the configured transport (SMS, e-mail,
the portal's inbox; here a JSON-lines file) and marks it delivered. A transport failure leaves
the row for the next pass: delivery is at least once, and each row carries a stable key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import asyncpg


class Transport(Protocol):
    """Where notifications go. `send` raises when the message could not be handed over."""

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None: ...


class FileTransport:
    """Appends each notification as a JSON line: the transport of the embedded stack and the demo."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(
                json.dumps(
                    {"round_id": round_id, "applicant_id": applicant_id, "key": key, "text": text}
                )
                + "\n"
            )


async def deliver_pending(
    pool: asyncpg.Pool, transport: Transport, batch: int = 500, round_id: str | None = None
) -> int:
    """Deliver up to `batch` undelivered notifications (of one round, or all); returns the count.

    Rows are locked with SKIP LOCKED, so several deliverers can run side by side.
    """
    delivered = 0
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """
            SELECT round_id, applicant_id, key, text FROM notifications
            WHERE delivered_at IS NULL AND ($2::text IS NULL OR round_id = $2)
            ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED
            """,
            batch,
            round_id,
        )
        for r in rows:
            try:
                await transport.send(r["round_id"], r["applicant_id"], r["key"], r["text"])
            except Exception:  # noqa: BLE001 - left undelivered for the next pass
                continue
            await conn.execute(
                "UPDATE notifications SET delivered_at = now() "
                "WHERE round_id = $1 AND applicant_id = $2 AND key = $3",
                r["round_id"],
                r["applicant_id"],
                r["key"],
            )
            delivered += 1
    return delivered
