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
ON CONFLICT (round_id, applicant_id, seq) DO UPDATE SET
    code = EXCLUDED.code, at = EXCLUDED.at, journey_terminal = EXCLUDED.journey_terminal,
    decree_no = EXCLUDED.decree_no, reported_by = EXCLUDED.reported_by,
    report_id = EXCLUDED.report_id
WHERE EXCLUDED.at >= revocations.at  -- a late first attempt never undoes its retry's write
  AND (revocations.code, revocations.at, revocations.journey_terminal, revocations.decree_no,
       revocations.reported_by, revocations.report_id)
    IS DISTINCT FROM (EXCLUDED.code, EXCLUDED.at, EXCLUDED.journey_terminal, EXCLUDED.decree_no,
       EXCLUDED.reported_by, EXCLUDED.report_id)
"""


class RevocationWriter:
    """Writes an aftermath's revocations; a retried write lands on the same rows, and the write of
    a later attempt of the aftermath's workflow task (the one its history records, with its own
    time) replaces what an attempt that failed after writing wrote."""

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
