"""The read model's revocations: DIS or dismissal after the journey ended (migration 008)."""

from __future__ import annotations

import json

import asyncpg
from temporalio import activity

from domain.aftermath import RevocationRows, row
from domain.protocol import PROJECT_REVOCATIONS

_INSERT_SQL = """
INSERT INTO revocations (round_id, applicant_id, seq, code, at, journey_terminal, decree_no,
    reported_by, report_id)
SELECT x.round_id, x.applicant_id, x.seq, x.code, x.at, x.journey_terminal, x.decree_no,
    x.reported_by, x.report_id
FROM jsonb_to_recordset($1::jsonb) AS x(round_id text, applicant_id text, seq integer, code text,
    at timestamptz, journey_terminal text, decree_no text, reported_by text, report_id text)
ON CONFLICT DO NOTHING
"""


class RevocationWriter:
    """Writes an aftermath's revocations; a retried write lands on the same rows."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name=PROJECT_REVOCATIONS.name)
    async def project_revocations(self, rows: RevocationRows) -> None:
        """Insert the revocations, keyed by round, applicant and their order in the aftermath."""
        values = [
            row(r, rows.round_id, rows.applicant_id, rows.first_seq + i)
            for i, r in enumerate(rows.revocations)
        ]
        if values:
            await self.pool.execute(_INSERT_SQL, json.dumps(values))
