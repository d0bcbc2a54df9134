"""The PostgreSQL read model: applicants, decisions, reports, notifications and NIPs."""

from __future__ import annotations

import json

import asyncpg
from temporalio import activity

from activities.contracts import JourneyProjection, NipIssued, NipRequest
from domain.appointment import format_nip


class ReadModel:
    """Activities over one asyncpg pool. Every write is idempotent under retries."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="project_journey")
    async def project_journey(self, p: JourneyProjection) -> None:
        """Upsert the applicant's row (a newer version always wins) and append what is new.

        One statement, so one round trip and one implicit transaction: the row, the new decisions,
        the accepted reports and the notifications land together or not at all.
        """
        s = p.state
        decisions = [
            {"seq": p.first_seq + i, "at": d.at.isoformat(), "stage": d.stage, "outcome": d.outcome,
             "actor": d.actor, "input": d.input, "rule_version": d.rule_version, "rules_digest": d.rules_digest}
            for i, d in enumerate(p.new_decisions)
        ]
        reports = [{"report_id": rid, "kind": kind, "content": content} for rid, kind, content in p.reports]
        notes = [{"key": n.key, "text": n.text} for n in p.notifications]
        await self.pool.execute(
            """
            WITH row AS (
                INSERT INTO applicants (round_id, applicant_id, formasi_code, name, category, stage, admin,
                    skd_code, skd_total, skb_score, final_score, final_code, placed_formasi, terminal,
                    terminal_reason, sanction_rounds, tmt, version)
                VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)
                ON CONFLICT (round_id, applicant_id) DO UPDATE SET
                    stage = EXCLUDED.stage, admin = EXCLUDED.admin, skd_code = EXCLUDED.skd_code,
                    skd_total = EXCLUDED.skd_total, skb_score = EXCLUDED.skb_score,
                    final_score = EXCLUDED.final_score, final_code = EXCLUDED.final_code,
                    placed_formasi = EXCLUDED.placed_formasi, terminal = EXCLUDED.terminal,
                    terminal_reason = EXCLUDED.terminal_reason,
                    sanction_rounds = EXCLUDED.sanction_rounds, tmt = EXCLUDED.tmt,
                    version = EXCLUDED.version, updated_at = now()
                WHERE applicants.version < EXCLUDED.version
            ), new_decisions AS (
                INSERT INTO decisions (round_id, applicant_id, seq, at, stage, outcome, actor, input,
                    rule_version, rules_digest)
                SELECT $1, $2, x.seq, x.at, x.stage, x.outcome, x.actor, x.input, x.rule_version, x.rules_digest
                FROM jsonb_to_recordset($19::jsonb) AS x(seq integer, at timestamptz, stage text, outcome text,
                    actor text, input jsonb, rule_version text, rules_digest text)
                ON CONFLICT DO NOTHING
            ), new_reports AS (
                INSERT INTO stage_reports (round_id, applicant_id, report_id, kind, content)
                SELECT $1, $2, x.report_id, x.kind, x.content
                FROM jsonb_to_recordset($20::jsonb) AS x(report_id text, kind text, content jsonb)
                ON CONFLICT DO NOTHING
            )
            INSERT INTO notifications (round_id, applicant_id, key, text)
            SELECT $1, $2, x.key, x.text FROM jsonb_to_recordset($21::jsonb) AS x(key text, text text)
            ON CONFLICT DO NOTHING
            """,
            s.round_id, s.applicant_id, s.formasi_code, p.name, p.category, s.stage.value,
            s.admin.value if s.admin else None, s.skd_code.value if s.skd_code else None,
            s.skd_total, s.skb_score, s.final_score,
            s.final_code.value if s.final_code else None, s.placed_formasi,
            s.terminal.value if s.terminal else None, s.terminal_reason, s.sanction_rounds,
            s.tmt, p.version, json.dumps(decisions), json.dumps(reports), json.dumps(notes),
        )

    @activity.defn(name="issue_nip")
    async def issue_nip(self, req: NipRequest) -> NipIssued:
        """The person's NIP: issued once; any retry gets the same number back."""
        async with self.pool.acquire() as conn:
            existing = await conn.fetchval(
                "SELECT nip FROM nips WHERE round_id = $1 AND applicant_id = $2", req.round_id, req.applicant_id
            )
            if existing:
                return NipIssued(nip=existing, newly_issued=False)
            prefix = format_nip(req.birth_date, req.tmt, req.gender, 1)[:15]
            try:
                async with conn.transaction():
                    serial = await conn.fetchval(
                        """
                        INSERT INTO nip_serials (prefix, last_serial) VALUES ($1, 1)
                        ON CONFLICT (prefix) DO UPDATE SET last_serial = nip_serials.last_serial + 1
                        RETURNING last_serial
                        """,
                        prefix,
                    )
                    nip = format_nip(req.birth_date, req.tmt, req.gender, serial)
                    await conn.execute(
                        "INSERT INTO nips (round_id, applicant_id, nip) VALUES ($1, $2, $3)",
                        req.round_id, req.applicant_id, nip,
                    )
            except asyncpg.UniqueViolationError:
                # A concurrent attempt for the same person won; its NIP is the person's NIP.
                nip = await conn.fetchval(
                    "SELECT nip FROM nips WHERE round_id = $1 AND applicant_id = $2", req.round_id, req.applicant_id
                )
                if nip is None:
                    raise
                return NipIssued(nip=nip, newly_issued=False)
            activity.logger.info("nip issued", extra={"applicant": req.applicant_id})
            return NipIssued(nip=nip, newly_issued=True)
