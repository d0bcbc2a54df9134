"""The PostgreSQL read model: applicants, decisions, reports, notifications, panels and NIPs.

It keeps only what its readers need (docs/ARCHITECTURE.md, "What the read model keeps, and for
whom"): no NIK, names only for the announcements, no decision inputs, and of a report only what
the announcements publish. The journeys' histories, encrypted by the payload codec, are the record.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys

import asyncpg
from temporalio import activity

from domain.appointment import format_nip
from domain.codes import Terminal
from domain.contracts import JourneyProjection, NipIssued, NipRequest, Notification
from domain.events import recorded_panels
from domain.messages import JourneyState
from domain.protocol import ISSUE_NIP, PROJECT_JOURNEY
from runtime.sealed import ColumnCipher

_UPSERT_SQL = """
WITH src AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(round_id text, applicant_id text, formasi_code text,
        name text, stage text, admin text, skd_code text, skd_total integer, skb_score numeric,
        final_score numeric, final_code text, placed_formasi text, terminal text,
        sanction_rounds integer, tmt date, version integer)
), row AS (
    INSERT INTO applicants (round_id, applicant_id, formasi_code, name, stage, admin,
        skd_code, skd_total, skb_score, final_score, final_code, placed_formasi, terminal,
        sanction_rounds, tmt, version)
    SELECT round_id, applicant_id, formasi_code, name, stage, admin, skd_code, skd_total,
        skb_score, final_score, final_code, placed_formasi, terminal, sanction_rounds, tmt,
        version
    FROM src
    ON CONFLICT (round_id, applicant_id) DO UPDATE SET
        name = EXCLUDED.name, stage = EXCLUDED.stage, admin = EXCLUDED.admin, skd_code = EXCLUDED.skd_code,
        skd_total = EXCLUDED.skd_total, skb_score = EXCLUDED.skb_score,
        final_score = EXCLUDED.final_score, final_code = EXCLUDED.final_code,
        placed_formasi = EXCLUDED.placed_formasi, terminal = EXCLUDED.terminal,
        sanction_rounds = EXCLUDED.sanction_rounds, tmt = EXCLUDED.tmt,
        version = EXCLUDED.version, updated_at = now()
    WHERE applicants.version < EXCLUDED.version
), new_decisions AS (
    INSERT INTO decisions (round_id, applicant_id, seq, at, stage, outcome, actor, rule_version,
        rules_digest)
    SELECT x.round_id, x.applicant_id, x.seq, x.at, x.stage, x.outcome, x.actor, x.rule_version,
        x.rules_digest
    FROM jsonb_to_recordset($2::jsonb) AS x(round_id text, applicant_id text, seq integer, at timestamptz,
        stage text, outcome text, actor text, rule_version text, rules_digest text)
    ON CONFLICT (round_id, applicant_id, seq) DO UPDATE SET
        at = EXCLUDED.at, stage = EXCLUDED.stage, outcome = EXCLUDED.outcome,
        actor = EXCLUDED.actor, rule_version = EXCLUDED.rule_version,
        rules_digest = EXCLUDED.rules_digest
    WHERE EXCLUDED.at >= decisions.at  -- a late first attempt never undoes its retry's write
      AND (decisions.at, decisions.stage, decisions.outcome, decisions.actor,
           decisions.rule_version, decisions.rules_digest)
        IS DISTINCT FROM (EXCLUDED.at, EXCLUDED.stage, EXCLUDED.outcome, EXCLUDED.actor,
           EXCLUDED.rule_version, EXCLUDED.rules_digest)
), new_sanctions AS (
    INSERT INTO sanctions (subject, kind, origin, imposed_by, imposed_at, rounds, reason)
    SELECT x.subject, 'APS', x.origin, x.imposed_by, COALESCE(x.imposed_at, s.imposed_at, now()),
        x.rounds, x.reason
    FROM jsonb_to_recordset($5::jsonb) AS x(subject text, origin text, imposed_by text,
        imposed_at timestamptz, rounds integer, reason text)
    LEFT JOIN sanctions s ON s.kind = 'APS' AND s.origin = x.origin AND s.subject = x.subject
    ON CONFLICT (kind, origin, subject) DO UPDATE SET
        imposed_by = EXCLUDED.imposed_by, imposed_at = EXCLUDED.imposed_at,
        rounds = EXCLUDED.rounds, reason = EXCLUDED.reason,
        barred_until = NULL  -- an APS bars rounds, never to a day (the table's CHECK: one of them)
    WHERE EXCLUDED.imposed_at >= sanctions.imposed_at  -- as for decisions: a late first attempt
      AND (sanctions.imposed_by, sanctions.imposed_at, sanctions.rounds, sanctions.reason)
        IS DISTINCT FROM (EXCLUDED.imposed_by, EXCLUDED.imposed_at, EXCLUDED.rounds, EXCLUDED.reason)
), new_reports AS (
    INSERT INTO stage_reports (round_id, applicant_id, report_id, kind, content)
    SELECT x.round_id, x.applicant_id, x.report_id, x.kind, x.content
    FROM jsonb_to_recordset($3::jsonb) AS x(round_id text, applicant_id text, report_id text, kind text,
        content jsonb)
    ON CONFLICT DO NOTHING
), new_panels AS (
    INSERT INTO panel_seats (round_id, applicant_id, component, panellists, version)
    SELECT x.round_id, x.applicant_id, x.component, x.panellists, x.version
    FROM jsonb_to_recordset($6::jsonb) AS x(round_id text, applicant_id text, component text,
        panellists text[], version integer)
    ON CONFLICT (round_id, applicant_id, component) DO UPDATE SET
        panellists = EXCLUDED.panellists, version = EXCLUDED.version
    WHERE panel_seats.version < EXCLUDED.version
)
INSERT INTO notifications (round_id, applicant_id, key, text, sealed, created_at)
SELECT x.v ->> 'round_id', x.v ->> 'applicant_id', x.v ->> 'key', '',
    decode(x.v ->> 'sealed', 'base64'), now() + (x.n - 1) * interval '1 microsecond'
FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY AS x(v, n)
ON CONFLICT DO NOTHING
"""
# Above: a write's notifications are dated a microsecond apart in the order the journey recorded
# them (now() is the transaction's start, the same for every row): the deliverer hands one
# applicant's notices over in created_at order (activities/notify.py); a tie falls back to key.

BATCH_MAX = 256


def _enum(value) -> str | None:
    return value.value if value is not None else None


def sanction_rows(p: JourneyProjection) -> list[dict]:
    """The sanctions-register entry of a journey that ended in APS with a sanction (client/sanctions.py):
    keyed by the start's sanction key, never the NIK; none for journeys started without one.

    Its imposed_at is the journey's Withdrew decision's time, in the projection that carries that
    decision; a later projection has none (None), and its write keeps the time the entry has."""
    s = p.state
    if not (p.sanction_key and s.terminal == Terminal.WITHDRAWN and s.sanction_rounds > 0):
        return []
    withdrawn = [d.at for d in p.new_decisions if d.outcome == Terminal.WITHDRAWN.value]
    return [
        {
            "subject": p.sanction_key,
            "origin": f"{s.round_id}/{s.applicant_id}",
            "imposed_by": s.round_id,
            "imposed_at": withdrawn[0].isoformat() if withdrawn else None,
            "rounds": s.sanction_rounds,
            "reason": s.terminal_reason,
        }
    ]


# What the read model keeps of an accepted report: the part the announcements publish (migration
# 007). The rest of it (health findings, panel scores, documents, reasons) is in the history only.
PUBLISHED_REPORT_FIELDS = {"skd": ("twk", "tiu", "tkp")}


def published_part(kind: str, content: dict) -> dict:
    """The fields of a report the announcements publish (an SKD report's subtest scores), or {}."""
    return {f: content[f] for f in PUBLISHED_REPORT_FIELDS.get(kind, ()) if f in content}


def announced_name(p: JourneyProjection) -> str:
    """The applicant's name as the read model keeps it: for the announcements, which list it, so
    empty for a journey that ended before any result they list (a registration refused or not
    admitted: no administrative result, and not a DIS or APS, which the announcements list)."""
    s = p.state
    listed_late = s.terminal in (Terminal.DISQUALIFIED, Terminal.WITHDRAWN)
    if s.terminal is not None and s.admin is None and not listed_late:
        return ""
    return p.name


def notification_row(round_id: str, applicant_id: str, key: str) -> str:
    """What a notification's sealed value is bound to (activities/notify.py opens it so)."""
    return f"notifications/{round_id}/{applicant_id}/{key}"


def notification_facts(n: Notification) -> dict:
    """What a notification's sealed value holds: its text and its notice's facts (JSON)."""
    return {"text": n.text, "notice": n.notice.model_dump(mode="json") if n.notice else None}


def sealed_notification(
    cipher: ColumnCipher, round_id: str, applicant_id: str, key: str, facts: dict
) -> str:
    """A notification's facts (failing documents with their reasons, a DIS reason, the NIP),
    sealed for the deliverer and bound to its row, in base64; text and notice stay empty."""
    sealed = cipher.seal(json.dumps(facts).encode(), notification_row(round_id, applicant_id, key))
    return base64.b64encode(sealed).decode()


def _sealed(cipher: ColumnCipher, s: JourneyState, n: Notification) -> str:
    return sealed_notification(cipher, s.round_id, s.applicant_id, n.key, notification_facts(n))


def applicant_row(p: JourneyProjection) -> dict:
    """The applicants row of one projection, as the upsert takes it (auditing/readmodel.py
    compares the read model with these)."""
    s = p.state
    return {
        "round_id": s.round_id,
        "applicant_id": s.applicant_id,
        "formasi_code": s.formasi_code,
        "name": announced_name(p),
        "stage": s.stage.value,
        "admin": _enum(s.admin),
        "skd_code": _enum(s.skd_code),
        "skd_total": s.skd_total,
        "skb_score": s.skb_score,
        "final_score": s.final_score,
        "final_code": _enum(s.final_code),
        "placed_formasi": s.placed_formasi,
        "terminal": _enum(s.terminal),
        "sanction_rounds": s.sanction_rounds,
        "tmt": s.tmt.isoformat() if s.tmt else None,
        "version": p.version,
    }


def panel_rows(p: JourneyProjection) -> list[dict]:
    """The panels a projection's new decisions drew or changed, each component's as it stands
    after them (the panel_seats rows, migration 016)."""
    key = {"round_id": p.state.round_id, "applicant_id": p.state.applicant_id}
    return [
        {**key, "component": c, "panellists": members, "version": p.version}
        for c, members in sorted(recorded_panels(p.new_decisions).items())
    ]


def trail_rows(p: JourneyProjection) -> tuple[list[dict], list[dict]]:
    """The decision and report rows a projection adds."""
    key = {"round_id": p.state.round_id, "applicant_id": p.state.applicant_id}
    decisions = [
        {
            **key,
            "seq": p.first_seq + i,
            "at": d.at.isoformat(),
            "stage": d.stage,
            "outcome": d.outcome,
            "actor": d.actor,
            "rule_version": d.rule_version,
            "rules_digest": d.rules_digest,
        }
        for i, d in enumerate(p.new_decisions)
    ]
    reports = [
        {**key, "report_id": rid, "kind": kind, "content": published_part(kind, content)}
        for rid, kind, content in p.reports
    ]
    return decisions, reports


def _projection_rows(
    p: JourneyProjection, cipher: ColumnCipher
) -> tuple[dict, list[dict], list[dict], list[dict]]:
    """The applicant row and the new decision, report and notification rows of one projection."""
    s = p.state
    key = {"round_id": s.round_id, "applicant_id": s.applicant_id}
    decisions, reports = trail_rows(p)
    notes = [{**key, "key": n.key, "sealed": _sealed(cipher, s, n)} for n in p.notifications]
    return applicant_row(p), decisions, reports, notes


class NipSerialsBehind(RuntimeError):
    """The NIP a serial would give is already in the register, and not this person's."""


class ReadModel:
    """Activities over one asyncpg pool. Every write is idempotent under retries.

    Projections are group-committed: while one write is on its way to PostgreSQL, the
    projections that arrive meanwhile wait and go together in the next statement (at most
    BATCH_MAX). Each local activity still completes only once its own rows are committed, so a
    journey never moves on before its read-model row is written. There is no timer: a lone
    projection is written at once.
    """

    def __init__(self, pool: asyncpg.Pool, cipher: ColumnCipher) -> None:
        self.pool = pool
        self.cipher = cipher  # seals the notifications (their facts are report contents)
        self._queue: list[tuple[JourneyProjection, asyncio.Future[None]]] = []
        self._writing = False
        self._drainer: asyncio.Task[None] | None = None
        self.statements = (
            0  # write statements sent (batches and single fallbacks), for the benchmark
        )

    @activity.defn(name=PROJECT_JOURNEY.name)
    async def project_journey(self, p: JourneyProjection) -> None:
        """Upsert the applicant's row (a newer version always wins) and append what is new.

        One statement per batch, so one round trip and one implicit transaction: the rows, the
        new decisions, the accepted reports and the notifications land together or not at all.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((p, done))
        if not self._writing:
            self._writing = True
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        await done

    async def _drain(self) -> None:
        batch: list[tuple[JourneyProjection, asyncio.Future[None]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
                await self._write_batch(batch)
                batch = []
        except BaseException as exc:
            # Interrupted mid-batch (cancelled, the pool closing): the batch's activities must
            # fail and retry, never wait for a write that will not come.
            for _, done in batch:
                if done.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    done.cancel()
                else:
                    done.set_exception(exc)
            raise
        finally:
            self._writing = False

    async def _write_batch(
        self, batch: list[tuple[JourneyProjection, asyncio.Future[None]]]
    ) -> None:
        try:
            await self._write([p for p, _ in batch])
        except Exception:  # noqa: BLE001 - one bad projection must not fail the others with it
            if len(batch) == 1:
                _settle(batch[0][1], sys.exc_info()[1])
                return
            for p, done in batch:
                try:
                    await self._write([p])
                except Exception as exc:  # noqa: BLE001 - its own activity fails and retries
                    _settle(done, exc)
                else:
                    _settle(done, None)
            return
        for _, done in batch:
            _settle(done, None)

    async def write_rows(self, projections: list[JourneyProjection]) -> None:
        """Rows that journeys handed over with their answer to a close (activities/broadcast.py),
        in one statement (BATCH_MAX at a time), not through the journeys' local activities."""
        for first in range(0, len(projections), BATCH_MAX):
            await self._write(projections[first : first + BATCH_MAX])

    async def _write(self, projections: list[JourneyProjection]) -> None:
        # A journey's projections are sequential (one local activity at a time), but a retried
        # activity may meet its first attempt here: keep the newest version of each applicant,
        # since one statement cannot update a row twice. Both activities' rows are kept anyway.
        rows: dict[tuple[str, str], dict] = {}
        # A decision's place is written again by the attempt of a workflow task that follows one
        # which failed after writing (a GC pause, a worker lost): the later write is the one the
        # history records (its workflow.now() is the later task's), so it wins; one statement
        # cannot update a place twice, so within it the last one is kept.
        decisions: dict[tuple[str, str, int], dict] = {}
        reports: list[dict] = []
        notes: list[dict] = []
        # A panel as its newest projection left it (one statement cannot update a row twice).
        panels: dict[tuple[str, str, str], dict] = {}
        # A journey's APS entry, once: the last write's content, and the withdrawal's time of the
        # last projection that carries it (a later attempt's, as for its decision).
        sanctions: dict[tuple[str, str], dict] = {}
        for p in projections:
            for s in sanction_rows(p):
                key = (s["subject"], s["origin"])
                if s["imposed_at"] is None and key in sanctions:
                    s = {**s, "imposed_at": sanctions[key]["imposed_at"]}
                sanctions[key] = s
            row, d, r, n = _projection_rows(p, self.cipher)
            key = (row["round_id"], row["applicant_id"])
            if key not in rows or rows[key]["version"] < row["version"]:
                rows[key] = row
            decisions.update(((x["round_id"], x["applicant_id"], x["seq"]), x) for x in d)
            reports += r
            notes += n
            for x in panel_rows(p):
                place = (x["round_id"], x["applicant_id"], x["component"])
                if place not in panels or panels[place]["version"] < x["version"]:
                    panels[place] = x
        self.statements += 1
        await self.pool.execute(
            _UPSERT_SQL,
            json.dumps(list(rows.values())),
            json.dumps(list(decisions.values())),
            json.dumps(reports),
            json.dumps(notes),
            json.dumps(list(sanctions.values())),
            json.dumps(list(panels.values())),
        )

    @activity.defn(name=ISSUE_NIP.name)
    async def issue_nip(self, req: NipRequest) -> NipIssued:
        """The person's NIP: issued once; any retry gets the same number back, and so does the
        same person appointed in another round (`req.person`, the NIK's round-independent
        pseudonym): a person holds one NIP, never two."""
        async with self.pool.acquire() as conn:
            held = await self._nip_held(conn, req)
            if held is not None:
                return held
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
                        "INSERT INTO nips (round_id, applicant_id, nip, person) "
                        "VALUES ($1, $2, $3, $4)",
                        req.round_id,
                        req.applicant_id,
                        nip,
                        req.person or None,
                    )
            except asyncpg.UniqueViolationError as exc:
                # A concurrent attempt for the same person won (in this round or another): its
                # NIP is the person's NIP.
                held = await self._nip_held(conn, req)
                if held is None:
                    # Nobody's attempt won: the serial counter is behind the register (a restore
                    # of one without the other). Said without the driver's DETAIL, which quotes
                    # the NIP (a birth date and a sex) into the worker's log on every retry.
                    raise NipSerialsBehind(
                        f"a NIP for {req.applicant_id} in {req.round_id}: the next serial of its "
                        f"prefix is already in the register ({exc.constraint_name}); nip_serials "
                        "is behind nips (docs/OPERATIONS.md 4)"
                    ) from None
                return held
            activity.logger.info("nip issued", extra={"applicant": req.applicant_id})
            return NipIssued(nip=nip, newly_issued=True)

    @staticmethod
    async def _nip_held(conn: asyncpg.Connection, req: NipRequest) -> NipIssued | None:
        """The NIP this registration was given, or the one the person holds from another round."""
        existing = await conn.fetchval(
            "SELECT nip FROM nips WHERE round_id = $1 AND applicant_id = $2",
            req.round_id,
            req.applicant_id,
        )
        if existing:
            return NipIssued(nip=existing, newly_issued=False)
        if not req.person:
            return None
        row = await conn.fetchrow(
            "SELECT round_id, applicant_id, nip FROM nips WHERE person = $1", req.person
        )
        if row is None:
            return None
        # Appointed again: the person keeps the NIP they hold. Said, by registration numbers.
        activity.logger.warning(
            "nip held from another round",
            extra={
                "applicant": req.applicant_id,
                "round": req.round_id,
                "held_by": row["applicant_id"],
                "held_in": row["round_id"],
            },
        )
        return NipIssued(nip=row["nip"], newly_issued=False, held_from_round=row["round_id"])


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # the activity was cancelled meanwhile
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
