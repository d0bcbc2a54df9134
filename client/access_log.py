"""The access log: who read an applicant's record through the gateway, and how (migration 015).

The gateway records each operator's lookup before it answers it; `audit.py access-log` lists
them for an inspector. A lookup by NIK is kept under the registration number, never the NIK.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class Access(BaseModel, frozen=True):
    """One recorded read of an applicant's record."""

    at: datetime
    round_id: str
    applicant_id: str
    reader: str
    what: str
    by_nik: bool
    found: bool
    request_id: str


async def record_access(
    db: Any,
    *,
    round_id: str,
    applicant_id: str,
    reader: str,
    by_nik: bool,
    found: bool,
    request_id: str = "",
    what: str = "lookup",
) -> None:
    """Record one read (`db`: an asyncpg connection or pool). Raises what the database raises:
    a read that cannot be recorded is not answered."""
    await db.execute(
        """INSERT INTO access_log (round_id, applicant_id, reader, what, by_nik, found, request_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        round_id,
        applicant_id,
        reader,
        what,
        by_nik,
        found,
        request_id[:100],
    )


async def accesses(
    db: Any,
    round_id: str,
    applicant_id: str | None = None,
    reader: str | None = None,
    limit: int = 1000,
) -> list[Access]:
    """The round's recorded reads, newest first: of one applicant, or by one reader, if given."""
    rows = await db.fetch(
        """SELECT at, round_id, applicant_id, reader, what, by_nik, found, request_id
           FROM access_log
           WHERE round_id = $1 AND ($2::text IS NULL OR applicant_id = $2)
             AND ($3::text IS NULL OR reader = $3)
           ORDER BY at DESC, id DESC LIMIT $4""",
        round_id,
        applicant_id,
        reader,
        limit,
    )
    return [Access(**dict(r)) for r in rows]
