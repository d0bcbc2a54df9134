"""Delivering notifications to applicants: the read model's table is the outbox.

Journeys record a notification with every outcome (in the same statement as their read-model
row). A deliverer takes undelivered rows, hands each to the configured transport (SMS, e-mail,
the portal's inbox; here a JSON-lines file) and marks it delivered at once. A failure (the
transport refused, the row cannot be opened) is tried again after a growing back-off, and after
10 attempts the row is given up and kept (migration 017). Delivery is at least once, and each row
carries a stable key; a deliverer that loses the database mid-pass and rides the outage out
remembers the row it had handed over and marks it without sending it again.

The text is rendered here, from the row's notice (domain/notices.py), in the language the
deliverer is given (`CASN_NOTIFICATION_LANGUAGE`: Indonesian by default, English by the setting).
The journey records the facts, not a language: workflow code must not read the environment. A
row written before notices existed is delivered with the text it recorded.

A row's text and facts are sealed (migration 007, runtime/sealed.py: they repeat what reports
said, such as each failing document's reason, and the NIP), so the deliverer opens them with the
payload key set. A row in clear (`sealed` NULL) is delivered only when it was written before
sealing began (its created_at before migration 007's applied_at in schema_migrations), and emptied
once delivered. Any other row in clear was written by no journey (every row a journey has written
since is sealed and bound to its row): it is given up at once, never sent (`NOT_SEALED`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from activities.readmodel import notification_row
from domain.notices import Language, Notice, render
from runtime.db import DatabaseSilentError, raised_while
from runtime.files import open_private
from runtime.logs import get_logger
from runtime.sealed import ColumnCipher

log = get_logger(__name__)


class Transport(Protocol):
    """Where notifications go. `send` raises when the message could not be handed over; the
    exception's text goes into the log line of each failed attempt (`notification not delivered`,
    for the operator to see why), so a transport must not put the recipient's address or number
    in it. The last attempt's warning names the error's kind only."""

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


# How long the deliverer waits for any one statement or connection (apps/fleet.py,
# open_deliverer_pool). Its statements take milliseconds; without a bound a server that stopped
# answering without closing the connection (SIGSTOP, a network partition) held a pass for ever.
# A pass cut this way ends after at most about twice this (the statement, then its transaction's
# rollback), and the deliverer waits the outage out.
STATEMENT_TIMEOUT_S = 10.0

RETRY_FIRST = timedelta(minutes=1)
RETRY_LONGEST = timedelta(hours=4)
MAX_ATTEMPTS = 10


def retry_delay(attempts: int) -> timedelta:
    """How long a row waits after its `attempts`-th failed hand-over: 1 minute after the first,
    doubling, at most 4 hours (10 attempts span about 8 hours)."""
    return min(RETRY_FIRST * 2 ** min(attempts - 1, 16), RETRY_LONGEST)


@dataclass(frozen=True)
class DeliveryPass:
    """What one pass did: rows delivered, failed (to be tried again), given up (`refused` of
    them: in clear, written by no journey); the rows
    (of its round, or all) that wait for their next attempt after it; and the rows it found due
    (`due`, at most its batch: a full batch says more may be due now)."""

    delivered: int = 0
    failed: int = 0
    given_up: int = 0
    waiting: int = 0
    due: int = 0
    refused: int = 0  # of `given_up`: rows in clear that no journey sealed, never handed over


# A row waits while an older row of its applicant is neither delivered nor given up: one
# applicant's notices are handed over in the order its journey recorded them (created_at; a write's
# rows are a microsecond apart, activities/readmodel.py), ties (rows from before that, or written
# by hand) by key. Index notifications_pending_order (migration 025) answers it from the
# undelivered rows alone. OFFSET 0 keeps it a subquery asked per row with that row's applicant:
# as an anti-join, on a table not analysed since a million rows came (a restore, a national
# close), the planner took the index by round only and filtered the applicant, 313 s for a pass
# of one round of 20,000 undelivered rows, where the subquery takes milliseconds.
_OLDER_PENDING = """
NOT EXISTS (
    SELECT 1 FROM notifications o
    WHERE o.round_id = n.round_id AND o.applicant_id = n.applicant_id
      AND o.delivered_at IS NULL AND o.given_up_at IS NULL
      AND (o.created_at, o.key) < (n.created_at, n.key)
    OFFSET 0
)"""

# Rows due: never tried first (a head of failing rows cannot hold them back), then by when due;
# each the oldest undelivered row of its applicant, so no row listed waits for another.
_DUE = f"""
SELECT round_id, applicant_id, key FROM notifications n
WHERE delivered_at IS NULL AND given_up_at IS NULL
  AND (next_attempt_at IS NULL OR next_attempt_at <= now())
  AND ($2::text IS NULL OR round_id = $2)
  AND {_OLDER_PENDING}
ORDER BY next_attempt_at NULLS FIRST, created_at LIMIT $1
"""

# The row again, locked for its hand-over: skipped when another deliverer holds it, or has
# delivered it or failed it since it was listed, or an older row of its applicant is now pending.
# `before_sealing`: written before migration 007 began sealing the rows (false when unknown).
_CLAIM = f"""
SELECT round_id, applicant_id, key, text, notice, sealed, attempts,
    coalesce(created_at < (SELECT applied_at FROM schema_migrations WHERE version = 7), false)
        AS before_sealing
FROM notifications n
WHERE round_id = $1 AND applicant_id = $2 AND key = $3
  AND delivered_at IS NULL AND given_up_at IS NULL
  AND (next_attempt_at IS NULL OR next_attempt_at <= now())
  AND {_OLDER_PENDING}
FOR UPDATE SKIP LOCKED
"""

# A row from before in clear is emptied; a sealed row keeps its sealed value.
# Delivered: emptied, its sealed value too. A row marked undelivered again by someone who can
# write the table is then a row in clear, which is given up, not sent again (a delivered TMS sent
# again after the appeal was accepted); the histories keep what it said (audit.py
# check-read-model takes an emptied delivered row as what it should be).
_DELIVERED = """
UPDATE notifications SET delivered_at = now(), text = '', notice = NULL, sealed = NULL
WHERE round_id = $1 AND applicant_id = $2 AND key = $3
"""

# A row in clear written after sealing began: given up without a hand-over (its text is kept,
# for a person to look at).
_REFUSED = """
UPDATE notifications SET given_up_at = now()
WHERE round_id = $1 AND applicant_id = $2 AND key = $3
"""

NOT_SEALED = "NotSealed"

_FAILED = """
UPDATE notifications SET attempts = $4, next_attempt_at = now() + $5::interval,
    given_up_at = CASE WHEN $6 THEN now() END
WHERE round_id = $1 AND applicant_id = $2 AND key = $3
"""

_WAITING = """
SELECT count(*) FROM notifications
WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at > now()
  AND ($1::text IS NULL OR round_id = $1)
"""


async def deliver_pass(
    pool: asyncpg.Pool,
    transport: Transport,
    batch: int = 500,
    round_id: str | None = None,
    language: Language = Language.ID,
    cipher: ColumnCipher | None = None,
    stop: asyncio.Event | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    handed_over: set[tuple[str, str, str]] | None = None,
) -> DeliveryPass:
    """Deliver up to `batch` notifications that are due (of one round, or all).

    Each row is claimed, handed over and marked in a transaction of its own, so an interruption
    sends again at most the one notification in flight. The claim is a row lock taken with SKIP
    LOCKED and held through the send: another deliverer passes over the row, and a deliverer that
    dies releases it with its connection (no lease to expire). A row that fails waits
    `retry_delay(attempts)` before it is due again; after `max_attempts` it is given up (kept,
    never deleted) and logged once as a warning. Each text is rendered in `language`; sealed rows
    are opened with `cipher` (a row that cannot be opened fails). A row in clear written after
    sealing began is given up at once, never handed over, and logged so (`refused`). Once `stop`
    is set, the pass ends after the row in flight.

    `handed_over` is the caller's memory of rows handed over whose mark has not committed: a row
    is added once the transport took it and removed once its mark committed. A pass cut between
    the two (the database lost) leaves it there, and the next pass given the same set marks that
    row without sending it again: a deliverer that rides out an outage sends nothing twice.

    A statement or connection that outlasts the pool's bound (open_pool's `timeout`: the
    deliverer's is STATEMENT_TIMEOUT_S) ends the pass with DatabaseSilentError, an outage of the
    database (runtime/db.py), and what was handed over stays in `handed_over` as for a lost one.
    """
    try:
        return await _deliver_pass(
            pool, transport, batch, round_id, language, cipher, stop, max_attempts, handed_over
        )
    except Exception as exc:
        # The transport's own timeouts are counted as failures, in the pass. A statement past the
        # pool's timeout raises TimeoutError, or, when asyncpg closed the connection that would
        # not answer its cancel, whatever the transaction's rollback then met (the connection
        # closed), with the TimeoutError as its context: either way the database went silent.
        if not any(isinstance(e, TimeoutError) for e in raised_while(exc)):
            raise
        raise DatabaseSilentError(
            "the database did not answer within the pool's timeout (its server stopped or cut "
            "off without a reset, or a lock held elsewhere)"
        ) from exc


async def _deliver_pass(
    pool: asyncpg.Pool,
    transport: Transport,
    batch: int,
    round_id: str | None,
    language: Language,
    cipher: ColumnCipher | None,
    stop: asyncio.Event | None,
    max_attempts: int,
    handed_over: set[tuple[str, str, str]] | None,
) -> DeliveryPass:
    delivered = failed = given_up = refused = 0
    sent = set() if handed_over is None else handed_over
    async with pool.acquire() as conn:
        try:
            rows = await conn.fetch(_DUE, batch, round_id)
            for row in rows:
                if stop is not None and stop.is_set():
                    break
                async with conn.transaction():
                    r = await conn.fetchrow(
                        _CLAIM, row["round_id"], row["applicant_id"], row["key"]
                    )
                    if r is None:
                        continue
                    where = (r["round_id"], r["applicant_id"], r["key"])
                    if where in sent:
                        _log_marked_late(where)
                    elif r["sealed"] is None and not r["before_sealing"]:
                        await conn.execute(_REFUSED, *where)
                        _log_refused(r)
                        given_up += 1
                        refused += 1
                        continue
                    else:
                        try:
                            text = _row_text(r, cipher, language)
                            await transport.send(*where, text)
                        except Exception as exc:  # noqa: BLE001 - tried again after its back-off
                            attempts = r["attempts"] + 1
                            giving_up = attempts >= max_attempts
                            await conn.execute(
                                _FAILED, *where, attempts, retry_delay(attempts), giving_up
                            )
                            _log_failure(r, attempts, giving_up, exc)
                            failed += 1
                            given_up += giving_up
                            continue
                        sent.add(where)
                    await conn.execute(_DELIVERED, *where)
                    delivered += 1
                sent.discard(where)  # its mark committed
            waiting = await conn.fetchval(_WAITING, round_id)
        except (asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            if not _closed_under_us(conn):
                raise
            # Lost between two statements, the connection is taken back by the pool and asyncpg
            # says "released back to the pool" or "the underlying connection is closed"; lost as
            # a server message was being read (PostgreSQL SIGKILLed), its protocol is left
            # mid-message and the next statement meets "cannot switch to state ...; another
            # operation (2) is in progress" (an InternalClientError, found by killing the server
            # at random points of a pass). Either is the database's outage, said as such
            # (runtime/db.py, database_unavailable); on a connection still open, a bug, raised.
            raise asyncpg.ConnectionDoesNotExistError(
                f"the connection to the database was lost during the pass ({exc})"
            ) from exc
    return DeliveryPass(delivered, failed, given_up, waiting, len(rows), refused)


def _closed_under_us(conn: asyncpg.Connection) -> bool:
    """Whether the pass's connection was closed (the server gone), which asyncpg's pool answers by
    taking it back from the pass: asking a connection taken back raises."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


def _log_marked_late(where: tuple[str, str, str]) -> None:
    """A row this deliverer handed over before the database was lost, marked now, not sent again."""
    log.info(
        "notification marked delivered after the database came back",
        round_id=where[0],
        applicant_id=where[1],
        key=where[2],
        note="handed over before the connection was lost; not sent again",
    )


def _log_refused(r: asyncpg.Record) -> None:
    """A row in clear that no journey sealed, given up without a hand-over: a warning naming the
    row, never its text (whoever wrote it chose it)."""
    log.warning(
        "notification given up",
        round_id=r["round_id"],
        applicant_id=r["applicant_id"],
        key=r["key"],
        attempts=r["attempts"],
        error=NOT_SEALED,
        reason="written in clear after sealing began (migration 007): no journey wrote it",
    )


def _log_failure(r: asyncpg.Record, attempts: int, giving_up: bool, exc: Exception) -> None:
    """A failed attempt as info, with the error; the last one, once, as a warning naming the row
    and the error's kind only (a transport's message may name the recipient)."""
    where = {"round_id": r["round_id"], "applicant_id": r["applicant_id"], "key": r["key"]}
    if giving_up:
        log.warning("notification given up", **where, attempts=attempts, error=type(exc).__name__)
        return
    log.info(
        "notification not delivered",
        **where,
        attempts=attempts,
        retry_in_s=int(retry_delay(attempts).total_seconds()),
        error=f"{type(exc).__name__}: {exc}"[:300],
    )


async def deliver_pending(pool: asyncpg.Pool, transport: Transport, **options: Any) -> int:
    """`deliver_pass` (same options) for callers that want only the count delivered."""
    return (await deliver_pass(pool, transport, **options)).delivered
