"""Delivering notifications to applicants: the read model's table is the outbox.

Journeys record a notification with every outcome (in the same statement as their read-model
row). A deliverer takes undelivered rows, hands each to the configured transport (SMS, e-mail,
the portal's inbox; here a JSON-lines file) and marks it delivered. A transport failure leaves
the row for the next pass: delivery is at least once, and each row carries a stable key.

The text is rendered here, from the row's notice (domain/notices.py), in the language the
deliverer is given (`CASN_NOTIFICATION_LANGUAGE`: Indonesian by default, English by the setting).
The journey records the facts, not a language: workflow code must not read the environment. A
row written before notices existed is delivered with the text it recorded.

A row's text and facts are sealed (migration 007, runtime/sealed.py: they repeat what reports
said, such as each failing document's reason, and the NIP), so the deliverer opens them with the
payload key set. A row from before, in clear, is delivered as it is and emptied once delivered.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Protocol

import asyncpg

from activities.readmodel import notification_row
from domain.notices import Language, Notice, render
from runtime.files import open_private
from runtime.logs import get_logger
from runtime.sealed import ColumnCipher

log = get_logger(__name__)


class Transport(Protocol):
    """Where notifications go. `send` raises when the message could not be handed over."""

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None: ...


class FileTransport:
    """Appends each notification as a JSON line: the transport of the embedded stack and the demo."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        with open_private(self.path, append=True, encoding="utf-8") as out:
            out.write(
                json.dumps(
                    {"round_id": round_id, "applicant_id": applicant_id, "key": key, "text": text}
                )
                + "\n"
            )


def notification_text(notice: str | None, recorded: str, language: Language) -> str:
    """A row's text in `language`: rendered from its notice (JSON), or as recorded without one."""
    if notice is None:
        return recorded
    return render(Notice.model_validate_json(notice), language)


def _row_text(r: asyncpg.Record, cipher: ColumnCipher | None, language: Language) -> str:
    """The text of one row: opened from its sealed value, or as a row from before has it."""
    if r["sealed"] is None:
        return notification_text(r["notice"], r["text"], language)
    if cipher is None:
        raise ValueError("the row is sealed and this deliverer was given no payload keys")
    row = notification_row(r["round_id"], r["applicant_id"], r["key"])
    facts = json.loads(cipher.open(r["sealed"], row))
    notice = facts["notice"]
    return notification_text(
        None if notice is None else json.dumps(notice), facts["text"], language
    )


_DUE = """
SELECT round_id, applicant_id, key FROM notifications
WHERE delivered_at IS NULL AND ($2::text IS NULL OR round_id = $2)
ORDER BY created_at LIMIT $1
"""

# The row again, locked for its hand-over: skipped when another deliverer holds it or has
# delivered it since it was listed.
_CLAIM = """
SELECT round_id, applicant_id, key, text, notice, sealed FROM notifications
WHERE round_id = $1 AND applicant_id = $2 AND key = $3 AND delivered_at IS NULL
FOR UPDATE SKIP LOCKED
"""


async def deliver_pending(
    pool: asyncpg.Pool,
    transport: Transport,
    batch: int = 500,
    round_id: str | None = None,
    language: Language = Language.ID,
    cipher: ColumnCipher | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Deliver up to `batch` undelivered notifications (of one round, or all); returns the count.

    Each row is claimed, handed over and marked delivered in a transaction of its own, so an
    interruption sends again at most the one notification in flight. The claim is a row lock
    taken with SKIP LOCKED and held through the send: another deliverer passes over the row, and
    a deliverer that dies releases it with its connection (no lease to expire). Each text is
    rendered in `language`; sealed rows are opened with `cipher` (without it they stay
    undelivered). Once `stop` is set, the pass ends after the row in flight.
    """
    delivered = 0
    async with pool.acquire() as conn:
        due = await conn.fetch(_DUE, batch, round_id)
        for row in due:
            if stop is not None and stop.is_set():
                break
            async with conn.transaction():
                r = await conn.fetchrow(_CLAIM, row["round_id"], row["applicant_id"], row["key"])
                if r is None:
                    continue
                try:
                    text = _row_text(r, cipher, language)
                    await transport.send(r["round_id"], r["applicant_id"], r["key"], text)
                except Exception as exc:  # noqa: BLE001 - left undelivered for the next pass
                    log.warning(
                        "notification not delivered",
                        round_id=r["round_id"],
                        applicant_id=r["applicant_id"],
                        key=r["key"],
                        error=f"{type(exc).__name__}: {exc}"[:300],
                    )
                    continue
                await conn.execute(
                    # A row from before in clear is emptied; a sealed row keeps its sealed value.
                    "UPDATE notifications SET delivered_at = now(), text = '', notice = NULL "
                    "WHERE round_id = $1 AND applicant_id = $2 AND key = $3",
                    r["round_id"],
                    r["applicant_id"],
                    r["key"],
                )
                delivered += 1
    return delivered
