"""What the record of purges (`personal_data_purges`, migration 020) says of a round: read by the
auditor's check of the read model, which compares only what a purge kept, and by the operator's
and the applicants' pages, which say that a round's personal data is gone rather than fail to find
it. The purge itself is client/retention.py's."""

from __future__ import annotations

from datetime import datetime
from typing import Any


async def purged_tables(db: Any, round_id: str) -> frozenset[str]:
    """The tables of which the record says some of the round's personal data was purged."""
    rows = await db.fetch(
        "SELECT DISTINCT table_name FROM personal_data_purges WHERE round_id = $1", round_id
    )
    return frozenset(r["table_name"] for r in rows)


async def purged_on(db: Any, round_id: str) -> datetime | None:
    """When the round's personal data was first purged; None when it never was."""
    return await db.fetchval(
        "SELECT min(purged_at) FROM personal_data_purges WHERE round_id = $1", round_id
    )
