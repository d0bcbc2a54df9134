"""The purge of a round's personal data once its purpose has ended (UU 27/2022 "PDP").

The read model keeps two kinds of data of a round (docs/OPERATIONS.md 8 lists every column): the
record of the selection (who was announced with which code, the NIP register, the signed
announcements, sanctions with their barred rounds, revocations, the decisions' outline, the access
log), kept for good; and personal data its readers need only while the round runs (names,
notification texts, the published part of reports, portal accounts and sessions, panel seats,
who answered the survey, the sealed pages of answers and rankings), which `PERSONAL` names and
`purge` clears or deletes once the round has ended and its retention period has passed.

Each batch of a table is cleared in one transaction together with its row in
`personal_data_purges` (migration 020, append-only), so the record holds exactly what was done
even when a run stops half-way, and a second run finds nothing left and records nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from workflows.ids import round_workflow_id

# The workflow type of an applicant's aftermath (workflows/aftermath.py), which never ends.
AFTERMATH_TYPE = "ApplicantAftermath"
DEFAULT_RETENTION_DAYS = 400  # the Temporal namespace's retention (docs/OPERATIONS.md 1, 4)
MAX_RETENTION_DAYS = 3650
DEFAULT_BATCH = 2000


@dataclass(frozen=True)
class Clearing:
    """What the purge does to one table's rows of a round, and why those values are personal."""

    table: str
    action: Literal["cleared", "deleted"]
    columns: tuple[str, ...]  # the columns cleared; () when whole rows are deleted
    why: str
    where: str  # the rows of round $1 that still hold personal data (alias t)

    @property
    def pending_sql(self) -> str:
        return f"SELECT count(*) FROM {self.table} t WHERE {self.where}"


# The order matters only for portal_sessions, deleted before the accounts they cascade from, so
# that each is counted.
PERSONAL: tuple[Clearing, ...] = (
    Clearing(
        "applicants",
        "cleared",
        ("name",),
        "the name in clear; the signed announcements keep the names they published",
        "t.round_id = $1 AND t.name <> ''",
    ),
    Clearing(
        "notifications",
        "cleared",
        ("text", "notice", "sealed"),
        "what each notice told the applicant (reasons, the NIP); undelivered rows are given up",
        "t.round_id = $1 AND (t.text <> '' OR t.notice IS NOT NULL OR t.sealed IS NOT NULL)",
    ),
    Clearing(
        "stage_reports",
        "cleared",
        ("content",),
        "an SKD report's subtest scores; the SKD announcement keeps those it published",
        "t.round_id = $1 AND t.content <> '{}'::jsonb",
    ),
    Clearing(
        "panel_seats",
        "deleted",
        (),
        "who sat on each applicant's interview panel: needed for the sheets until SKB ends",
        "t.round_id = $1",
    ),
    Clearing(
        "portal_sessions",
        "deleted",
        (),
        "applicants' portal sessions",
        "t.round_id = $1",
    ),
    Clearing(
        "portal_accounts",
        "deleted",
        (),
        "applicants' portal accounts (password hashes)",
        "t.round_id = $1",
    ),
    Clearing(
        "skm_taken",
        "deleted",
        (),
        "that an applicant answered the survey at a stage (the answers stay, anonymous)",
        "t.round_id = $1",
    ),
    Clearing(
        "pages",
        "deleted",
        (),
        "the round's sealed pages: answers to closes, rankings (scores, birth dates, majors)",
        "split_part(t.owner, '/', 1) = $1",
    ),
)
BY_TABLE = {c.table: c for c in PERSONAL}

# How a batch of each table is cleared: at most $2 of round $1's rows that still hold personal
# data, locked in the batch's transaction.
_KEYS = {
    "applicants": "round_id, applicant_id",
    "notifications": "round_id, applicant_id, key",
    "stage_reports": "round_id, applicant_id, report_id",
    "panel_seats": "round_id, applicant_id, component",
    "portal_sessions": "token_sha256",
    "portal_accounts": "round_id, applicant_id",
    "skm_taken": "round_id, applicant_id, stage",
    "pages": "digest",
}
_SETS = {
    "applicants": "name = ''",
    "notifications": "text = '', notice = NULL, sealed = NULL, "
    "given_up_at = CASE WHEN delivered_at IS NULL THEN coalesce(given_up_at, now()) "
    "ELSE given_up_at END",
    "stage_reports": "content = '{}'::jsonb",
}


def _batch_sql(c: Clearing) -> str:
    keys = _KEYS[c.table]
    chosen = f"({keys}) IN (SELECT {keys} FROM {c.table} t WHERE {c.where} LIMIT $2 FOR UPDATE)"
    if c.action == "deleted":
        return f"DELETE FROM {c.table} WHERE {chosen}"
    return f"UPDATE {c.table} SET {_SETS[c.table]} WHERE {chosen}"


_RECORD_SQL = """
INSERT INTO personal_data_purges (run_id, round_id, table_name, action, columns, rows, purged_by,
    os_user, round_ended_at, retention_days, override_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""


class PurgeRefused(Exception):
    """The round may not be purged now; the message says why and what to do."""


@dataclass(frozen=True)
class RoundEnd:
    """Whether the round still runs, and when it ended (or when its read model was last written,
    once Temporal has deleted the round's workflow)."""

    round_id: str
    running: int  # workflows of the round still running (the round's own among them), but
    # its applicants' aftermaths (AFTERMATH_TYPE)
    ended_at: datetime | None
    source: str  # where ended_at comes from, for the operator


@dataclass(frozen=True)
class PurgeRun:
    """Who purges, and on what grounds; every batch's record carries it."""

    round_id: str
    purged_by: str
    os_user: str
    retention_days: int
    round_ended_at: datetime | None
    override_reason: str | None = None
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class PurgeRecord:
    """A table's purges of a round, summed over the record's batches."""

    table: str
    action: str
    columns: tuple[str, ...]
    rows: int
    first_at: datetime
    last_at: datetime
    purged_by: tuple[str, ...]


async def round_end(client: Client, conn: asyncpg.Connection, round_id: str) -> RoundEnd:
    """How the round stands in Temporal: running workflows of the round (visibility's
    `RoundId`), and the round workflow's close time. Once the namespace's retention has deleted
    it, the end is the read model's last write for the round; with neither, PurgeRefused.

    An applicant's aftermath (a DIS or dismissal after the journey ended) is not counted: it runs
    for as long as such a report may still come, years after the round, and writes only its own
    applicant's decisions, notification and revocation, none of them what a purge cleared but the
    notification, which a later purge clears (docs/OPERATIONS.md 8.4)."""
    running = await client.count_workflows(
        f"RoundId = '{round_id}' AND ExecutionStatus = 'Running' "
        f"AND WorkflowType != '{AFTERMATH_TYPE}'"
    )
    try:
        described = await client.get_workflow_handle(round_workflow_id(round_id)).describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        described = None
    if described is not None:
        if described.status == WorkflowExecutionStatus.RUNNING:
            return RoundEnd(round_id, max(running.count, 1), None, "the round's workflow")
        return RoundEnd(
            round_id, running.count, described.close_time, "the round's workflow closed"
        )
    last = await conn.fetchval(
        "SELECT greatest((SELECT max(updated_at) FROM applicants WHERE round_id = $1), "
        "(SELECT max(at) FROM decisions WHERE round_id = $1))",
        round_id,
    )
    if last is None:
        raise PurgeRefused(
            f"round {round_id}: no such round (no workflow in Temporal, no row in the read model)"
        )
    return RoundEnd(
        round_id,
        running.count,
        last,
        "the read model's last write (Temporal no longer holds the round's workflow)",
    )


def refusal(end: RoundEnd, retention: timedelta, now: datetime, override: str | None) -> str | None:
    """Why the round may not be purged at `now`, or None. A running round is never purged: its
    journeys would write what was cleared back. Before its end plus `retention`, only with an
    override (its reason recorded)."""
    if end.running:
        return (
            f"round {end.round_id} is still running ({end.running} workflows of it run); purge "
            "it once the round's workflow and its journeys have ended (its applicants' "
            "aftermaths are not counted)"
        )
    assert end.ended_at is not None
    allowed = end.ended_at + retention
    if now < allowed and override is None:
        return (
            f"round {end.round_id} ended {end.ended_at:%Y-%m-%d %H:%M} UTC ({end.source}); its "
            f"retention of {retention.days} days runs until {allowed:%Y-%m-%d %H:%M} UTC. Run it "
            "then, or give --before-retention-ends REASON (recorded with the purge)"
        )
    return None


async def pending(conn: asyncpg.Connection, round_id: str) -> dict[str, int]:
    """Per table of `PERSONAL`, the round's rows that still hold personal data."""
    return {c.table: await conn.fetchval(c.pending_sql, round_id) for c in PERSONAL}


async def purge(
    pool: asyncpg.Pool,
    run: PurgeRun,
    batch: int = DEFAULT_BATCH,
    on_batch: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Clear or delete the round's personal data, table by table, `batch` rows a transaction,
    each batch recorded in `personal_data_purges` in its own transaction; return the rows done
    per table. `on_batch(table, rows)` hears each batch. Idempotent: what is done is not found
    again, and nothing is recorded for a table with nothing left."""
    done: dict[str, int] = {}
    for c in PERSONAL:
        done[c.table] = 0
        sql = _batch_sql(c)
        while True:
            async with pool.acquire() as conn, conn.transaction():
                status = await conn.execute(sql, run.round_id, batch)
                rows = int(status.rsplit(" ", 1)[-1])
                if rows == 0:
                    break
                await conn.execute(
                    _RECORD_SQL,
                    run.run_id,
                    run.round_id,
                    c.table,
                    c.action,
                    list(c.columns),
                    rows,
                    run.purged_by,
                    run.os_user,
                    run.round_ended_at,
                    run.retention_days,
                    run.override_reason,
                )
            done[c.table] += rows
            if on_batch:
                on_batch(c.table, rows)
    return done


async def purge_records(conn: asyncpg.Connection, round_id: str) -> list[PurgeRecord]:
    """What the record says was purged of the round, per table; [] for a round never purged."""
    rows = await conn.fetch(
        """
        SELECT table_name, action, columns, sum(rows)::bigint AS rows, min(purged_at) AS first_at,
            max(purged_at) AS last_at, array_agg(DISTINCT purged_by ORDER BY purged_by) AS who
        FROM personal_data_purges WHERE round_id = $1
        GROUP BY table_name, action, columns ORDER BY min(id)
        """,
        round_id,
    )
    return [
        PurgeRecord(
            r["table_name"],
            r["action"],
            tuple(r["columns"]),
            r["rows"],
            r["first_at"],
            r["last_at"],
            tuple(r["who"]),
        )
        for r in rows
    ]
