"""The read model checked against the histories it projects, and made good from them.

Every row the journeys write (their applicant row, decisions, accepted reports' published part,
notifications, APS sanctions, interview panels) is the input of a `project_journey` local
activity, or a row a journey handed over with its answer to a close; an aftermath's revocations
(a DIS or dismissal after the journey ended) are the input of `project_revocations`. Neither input is in the history
(a local activity's marker holds only its result), but replaying the history runs the same code,
which hands the same projections to the same calls: replay captures them here, in the order they
were written, each local activity's once its marker shows it done. So the read model a round
should have is derived from its histories alone, and compared with the one it has, column by
column, in PostgreSQL's own types (a notification's sealed value opened with the payload keys,
and compared with the text and notice its journey wrote). The NIP register (`nips`, written by
`issue_nip`) is held to the NIP each journey's state records it was given.

On a round that is running, a journey in the middle of a workflow task has written what its
history does not show yet: it can show as a row ahead of (or behind) its history until the task
completes. Check again; a difference that stays is one.

What this does not cover, because no history holds it: portal accounts, publications, the
notification delivery state, NIP serials, the page store and the national lists
(docs/OPERATIONS.md, section 4).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import asyncpg
from temporalio import workflow
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from activities.purges import purged_on, purged_tables
from activities.readmodel import (
    ReadModel,
    applicant_row,
    notification_facts,
    notification_row,
    panel_rows,
    sanction_rows,
    sealed_notification,
    trail_rows,
)
from activities.revocations import RevocationWriter
from auditing.history import (
    AuditError,
    RecordedHistory,
    ReplayOutcome,
    fetched,
    replay,
    round_query,
    when_done,
)
from domain.aftermath import RevocationRows
from domain.aftermath import row as revocation_row
from domain.codes import Terminal
from domain.contracts import JourneyProjection
from domain.protocol import PROJECT_JOURNEY, PROJECT_REVOCATIONS
from runtime.codec import PayloadDecryptionError
from runtime.sealed import ColumnCipher
from workflows.ids import aftermath_of, journey_workflow_id

# The applicants columns a projection writes; `version` is compared apart (behind, ahead).
ROW_COLUMNS = (
    ("formasi_code", "text"),
    ("name", "text"),
    ("stage", "text"),
    ("admin", "text"),
    ("skd_code", "text"),
    ("skd_total", "integer"),
    ("skb_score", "numeric"),
    ("final_score", "numeric"),
    ("final_code", "text"),
    ("placed_formasi", "text"),
    ("terminal", "text"),
    ("sanction_rounds", "integer"),
    ("tmt", "date"),
)
DECISION_COLUMNS = (
    ("at", "timestamptz"),
    ("stage", "text"),
    ("outcome", "text"),
    ("actor", "text"),
    ("rule_version", "text"),
    ("rules_digest", "text"),
)
REVOCATION_COLUMNS = (
    ("code", "text"),
    ("at", "timestamptz"),
    ("journey_terminal", "text"),
    ("decree_no", "text"),
    ("reported_by", "text"),
    ("report_id", "text"),
)
# An APS sanction's columns that follow from the journey; its imposed_at is the time of the
# journey's Withdrew decision as the history records it, and it bars rounds, never to a last day
# (barred_until NULL: review of 12-07, an entry rewritten to bar until 2099 was named only for its
# rounds, and the repair, which set them beside the date, broke the table's CHECK).
SANCTION_COLUMNS = (
    ("imposed_by", "text"),
    ("imposed_at", "timestamptz"),
    ("rounds", "integer"),
    ("barred_until", "date"),
    ("reason", "text"),
)
WITHDREW = Terminal.WITHDRAWN.value  # the outcome of the decision an APS sanction is imposed by
CHUNK = 500  # applicants compared (and repaired) per statement

# What a difference is, and whether --repair makes it good.
KINDS = {
    "row missing": "written",
    "row behind": "written (the histories' newer version), then overwritten with its content "
    "(the write keeps a row's formasi_code)",
    "row altered": "overwritten with the histories' content, same version",
    "row ahead": "left: the read model holds a version the histories do not reach (a Temporal "
    "database restored to an earlier instant?); re-send what was acknowledged after it",
    "row without history": "left: no journey of the round wrote it",
    "decision missing": "written",
    "decision altered": "overwritten with the histories' content (a later time too)",
    "decision without history": "left: no history holds a decision at that place",
    "report missing": "written",
    "report altered": "overwritten with the histories' published part",
    "report without history": "left: no history holds that report; an announcement may print it",
    "notification missing": "written, to be delivered (again: whether it was is not known)",
    "notification altered": "sealed again with the histories' text, to be delivered (again: "
    "whether what was there went out is not known)",
    "notification without history": "left: no history holds that notification; undelivered, the "
    "deliverer sends it to the applicant",
    "sanction missing": "written",
    "sanction altered": "overwritten with the histories' content (the imposing round, the time of "
    "the withdrawal, the rounds barred and no last day, the reason)",
    "sanction without history": "left: no journey withdrew for it (or on another subject); it "
    "bars its subject from later rounds until removed",
    "revocation missing": "written",
    "revocation altered": "overwritten with the histories' content (a later time too)",
    "revocation without history": "left: no aftermath holds a revocation at that place",
    "panel missing": "written",
    "panel altered": "overwritten with the histories' panel (its members, or a version behind)",
    "panel ahead": "left: the read model holds a version of the panel the histories do not reach",
    "panel without history": "left: no draw or change of the journey holds that panel",
    # The NIP register is where a person appointed again (any round) gets the NIP they hold: a
    # person checks against BKN's records before putting back the NIP the journey was given.
    "nip missing": "left: the person's next appointment would be given a second NIP; insert the "
    "journey's NIP back (with its person) once checked",
    "nip altered": "left: the person's next appointment would be given the register's; put the "
    "journey's NIP back once checked",
    "nip without history": "left: the journey's history holds no NIP",
}
REPAIRED = {k for k, v in KINDS.items() if not v.startswith("left")}


@dataclass(frozen=True)
class Difference:
    """One place where the read model is not what the histories say."""

    kind: str  # a key of KINDS
    applicant_id: str
    detail: str = ""
    place: int | str | None = None  # a decision's seq, a report's id

    @property
    def repairable(self) -> bool:
        return self.kind in REPAIRED

    def order(self) -> tuple:
        """Listed by applicant, then by kind and place: the same however the work was split."""
        return (self.applicant_id, self.kind, str(self.place), self.detail)


@dataclass
class Projected:
    """What the histories say the read model holds for one round."""

    round_id: str
    # per applicant, every projection its journey and aftermath wrote, in the order written
    projections: dict[str, list[JourneyProjection]] = field(default_factory=dict)
    # per applicant, what its aftermath handed to `project_revocations`, in the order written
    revocations: dict[str, list[RevocationRows]] = field(default_factory=dict)
    replay_failures: list[ReplayOutcome] = field(default_factory=list)

    def row(self, applicant_id: str) -> dict | None:
        """The applicant's row: the newest version written (an aftermath's rows have version 0)."""
        written = self.projections.get(applicant_id, [])
        return applicant_row(max(written, key=lambda p: p.version)) if written else None

    def nip(self, applicant_id: str) -> str | None:
        """The NIP the applicant's journey was given, as its newest projection holds it."""
        written = self.projections.get(applicant_id, [])
        return max(written, key=lambda p: p.version).state.nip if written else None

    def person(self, applicant_id: str) -> str | None:
        """The person the journey asked its NIP for (its start's sanction key, the NIK's
        round-independent pseudonym), or None for a journey started without one."""
        written = self.projections.get(applicant_id, [])
        return next((p.sanction_key for p in written if p.sanction_key), None)


class _Capture(Interceptor):
    """Keeps, by run, what the replayed code hands to the read model's local activities
    (`project_journey`, `project_revocations`) and each row a journey hands over with a close's
    answer."""

    KEPT = (PROJECT_JOURNEY.name, PROJECT_REVOCATIONS.name)

    def __init__(self) -> None:
        self.by_run: dict[str, list[JourneyProjection | RevocationRows]] = defaultdict(list)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        by_run = self.by_run
        kept = self.KEPT

        class Outbound(WorkflowOutboundInterceptor):
            def start_local_activity(self, input: StartLocalActivityInput):
                handle = super().start_local_activity(input)
                if input.activity in kept and input.args:
                    # Kept once the history shows it done (a write whose marker is not recorded
                    # yet, at the end of an open run, is not).
                    when_done(handle, partial(by_run[workflow.info().run_id].append, input.args[0]))
                return handle

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

            async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
                result = await super().handle_update_handler(input)
                row = getattr(result, "row", None)
                if isinstance(row, JourneyProjection):
                    by_run[workflow.info().run_id].append(row)
                return result

        return Inbound


async def projected(
    round_id: str,
    histories: Iterable[RecordedHistory],
    converter: DataConverter,
    on_result: Callable[[ReplayOutcome], None] | None = None,
) -> Projected:
    """Replay the round's journeys and aftermaths and keep what each wrote to the read model."""
    runs = [h for h in histories if h.kind in ("journey", "aftermath")]
    capture = _Capture()
    outcomes = await replay(
        [h.history for h in runs], converter, interceptors=[capture], on_result=on_result
    )
    failed = {o.run_id for o in outcomes if o.failure is not None}
    result = Projected(round_id, replay_failures=[o for o in outcomes if o.failure is not None])
    for h in runs:  # journey before its aftermath: their ids sort so (auditing.history)
        if h.run_id in failed:
            continue
        for p in capture.by_run.get(h.run_id, []):
            if isinstance(p, RevocationRows):
                if p.round_id == round_id:
                    result.revocations.setdefault(p.applicant_id, []).append(p)
            elif p.state.round_id == round_id:
                result.projections.setdefault(p.state.applicant_id, []).append(p)
    return result


def _typed(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{name} {kind}" for name, kind in columns)


def _differing(columns: tuple[tuple[str, str], ...], a: str, b: str) -> str:
    cases = ", ".join(
        f"CASE WHEN {a}.{name} IS DISTINCT FROM {b}.{name} THEN '{name}' END" for name, _ in columns
    )
    return f"array_remove(ARRAY[{cases}]::text[], NULL)"


_ROWS_SQL = f"""
SELECT x.applicant_id, x.version, a.version AS stored_version,
    {_differing(ROW_COLUMNS, "a", "x")} AS differing
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, version integer, {_typed(ROW_COLUMNS)})
LEFT JOIN applicants a ON a.round_id = $1 AND a.applicant_id = x.applicant_id
"""
_DECISIONS_SQL = f"""
SELECT x.applicant_id, x.seq, d.seq IS NULL AS missing,
    {_differing(DECISION_COLUMNS, "d", "x")} AS differing,
    extract(epoch FROM d.at - x.at)::float8 AS at_offset
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, seq integer, {_typed(DECISION_COLUMNS)})
LEFT JOIN decisions d ON d.round_id = $1 AND d.applicant_id = x.applicant_id AND d.seq = x.seq
"""
_EXTRA_DECISIONS_SQL = """
SELECT d.applicant_id, d.seq FROM decisions d
WHERE d.round_id = $1 AND d.applicant_id = ANY($2::text[])
  AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset($3::jsonb) AS x(applicant_id text, seq integer)
                  WHERE x.applicant_id = d.applicant_id AND x.seq = d.seq)
ORDER BY d.applicant_id, d.seq
"""
_REPORTS_SQL = """
SELECT x.applicant_id, x.report_id, r.report_id IS NULL AS missing,
    (r.kind IS DISTINCT FROM x.kind OR r.content IS DISTINCT FROM x.content) AS altered
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, report_id text, kind text, content jsonb)
LEFT JOIN stage_reports r
    ON r.round_id = $1 AND r.applicant_id = x.applicant_id AND r.report_id = x.report_id
"""
# Rows no history wrote (review of 12-07): a report added beside a journey's own changed what the
# SKD announcement prints (it takes the first `skd` row by report id), and an APS sanction moved
# to another subject, or one for an applicant who never withdrew, barred them from later rounds.
_EXTRA_REPORTS_SQL = """
SELECT r.applicant_id, r.report_id FROM stage_reports r
WHERE r.round_id = $1 AND r.applicant_id = ANY($2::text[])
  AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset($3::jsonb) AS x(applicant_id text, report_id text)
                  WHERE x.applicant_id = r.applicant_id AND x.report_id = r.report_id)
ORDER BY r.applicant_id, r.report_id
"""
_EXTRA_SANCTIONS_SQL = """
SELECT s.origin FROM sanctions s
WHERE s.kind = 'APS' AND s.origin = ANY($1::text[])
  AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset($2::jsonb) AS x(origin text, subject text)
                  WHERE x.origin = s.origin AND x.subject = s.subject)
ORDER BY s.origin
"""
_REPORTS_WITHOUT_JOURNEY_SQL = """
SELECT applicant_id, report_id FROM stage_reports
WHERE round_id = $1 AND applicant_id <> ALL($2::text[]) ORDER BY applicant_id, report_id
"""
_DECISIONS_WITHOUT_JOURNEY_SQL = """
SELECT applicant_id, seq FROM decisions
WHERE round_id = $1 AND applicant_id <> ALL($2::text[]) ORDER BY applicant_id, seq
"""
_SANCTIONS_WITHOUT_JOURNEY_SQL = """
SELECT origin FROM sanctions
WHERE kind = 'APS' AND left(origin, length($1) + 1) = $1 || '/' AND origin <> ALL($2::text[])
ORDER BY origin
"""
# A notification's content: its sealed value (opened with the payload keys), or a row's text and
# notice in clear, which the deliverer sends as they stand (review of 12-07: only keys were
# compared, so a text rewritten in clear went out unnamed).
_NOTIFICATIONS_SQL = """
SELECT x.applicant_id, x.key, n.key IS NULL AS missing, n.text, n.notice::text AS notice,
    n.sealed, n.delivered_at IS NOT NULL AS delivered
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, key text)
LEFT JOIN notifications n ON n.round_id = $1 AND n.applicant_id = x.applicant_id AND n.key = x.key
ORDER BY x.applicant_id, x.key
"""
# Notifications no history wrote: beside a journey's own, or of an applicant no journey of the
# round has (review of 12-07); undelivered, the deliverer sends them.
_EXTRA_NOTIFICATIONS_SQL = """
SELECT n.applicant_id, n.key FROM notifications n
WHERE n.round_id = $1 AND n.applicant_id = ANY($2::text[])
  AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset($3::jsonb) AS x(applicant_id text, key text)
                  WHERE x.applicant_id = n.applicant_id AND x.key = n.key)
ORDER BY n.applicant_id, n.key
"""
_NOTIFICATIONS_WITHOUT_JOURNEY_SQL = """
SELECT applicant_id, key FROM notifications
WHERE round_id = $1 AND applicant_id <> ALL($2::text[]) ORDER BY applicant_id, key
"""
_SANCTIONS_SQL = f"""
SELECT x.origin, s.origin IS NULL AS missing, {_differing(SANCTION_COLUMNS, "s", "x")} AS differing
FROM jsonb_to_recordset($1::jsonb) AS x(subject text, origin text, {_typed(SANCTION_COLUMNS)})
LEFT JOIN sanctions s ON s.kind = 'APS' AND s.origin = x.origin AND s.subject = x.subject
"""
_REVOCATIONS_SQL = f"""
SELECT x.applicant_id, x.seq, r.seq IS NULL AS missing,
    {_differing(REVOCATION_COLUMNS, "r", "x")} AS differing
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, seq integer, {_typed(REVOCATION_COLUMNS)})
LEFT JOIN revocations r ON r.round_id = $1 AND r.applicant_id = x.applicant_id AND r.seq = x.seq
"""
_EXTRA_REVOCATIONS_SQL = """
SELECT r.applicant_id, r.seq FROM revocations r
WHERE r.round_id = $1
  AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, seq integer)
                  WHERE x.applicant_id = r.applicant_id AND x.seq = r.seq)
  AND r.applicant_id = ANY($3::text[])
ORDER BY r.applicant_id, r.seq
"""
_REVOCATIONS_WITHOUT_JOURNEY_SQL = """
SELECT applicant_id, seq FROM revocations WHERE round_id = $1 AND applicant_id <> ALL($2::text[])
ORDER BY applicant_id, seq
"""
_PANELS_SQL = """
SELECT x.applicant_id, x.component, x.version, s.version AS stored_version,
    s.panellists IS DISTINCT FROM x.panellists AS members_differ
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, component text, panellists text[],
    version integer)
LEFT JOIN panel_seats s
    ON s.round_id = $1 AND s.applicant_id = x.applicant_id AND s.component = x.component
"""
_EXTRA_PANELS_SQL = """
SELECT s.applicant_id, s.component FROM panel_seats s
WHERE s.round_id = $1 AND s.applicant_id = ANY($2::text[])
  AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset($3::jsonb) AS x(applicant_id text, component text)
                  WHERE x.applicant_id = s.applicant_id AND x.component = s.component)
ORDER BY s.applicant_id, s.component
"""
_PANELS_WITHOUT_JOURNEY_SQL = """
SELECT applicant_id, component FROM panel_seats WHERE round_id = $1 AND applicant_id <> ALL($2::text[])
ORDER BY applicant_id, component
"""
# A journey's NIP is its register row, or (appointed again) the row of the round that issued it to
# the person; the register's row of a journey that was given none is one no history explains.
_NIPS_SQL = """
SELECT x.applicant_id, x.nip, n.nip AS stored,
    x.person IS NOT NULL AND n.person IS DISTINCT FROM x.person AS other_person,
    x.nip IS NOT NULL AND EXISTS (
        SELECT 1 FROM nips h WHERE h.nip = x.nip AND h.round_id <> $1
            AND (x.person IS NULL OR h.person = x.person)
    ) AS held
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, nip text, person text)
LEFT JOIN nips n ON n.round_id = $1 AND n.applicant_id = x.applicant_id
ORDER BY x.applicant_id
"""
# The register's rows of this round for applicants no journey of it has: a NIP moved off its
# journey's row (review of 12-07), or one written for nobody.
_NIPS_WITHOUT_JOURNEY_SQL = """
SELECT applicant_id FROM nips WHERE round_id = $1 AND applicant_id <> ALL($2::text[])
ORDER BY applicant_id
"""
_WITHOUT_HISTORY_SQL = """
SELECT applicant_id FROM applicants WHERE round_id = $1 AND applicant_id <> ALL($2::text[])
ORDER BY applicant_id
"""
# Repair of what the writes leave alone: a row's content altered at the version the histories
# reach (or behind it: the write keeps formasi_code), and a report's (written once; a decision or
# a revocation is written again if it differs).
_OVERWRITE_ROWS_SQL = f"""
UPDATE applicants a SET {", ".join(f"{name} = x.{name}" for name, _ in ROW_COLUMNS)},
    updated_at = now()
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, version integer, {_typed(ROW_COLUMNS)})
WHERE a.round_id = $1 AND a.applicant_id = x.applicant_id AND a.version = x.version
"""
# A decision, revocation or APS sanction whose stored time is later than the histories' (the write
# never lets an earlier time replace a later one: a late first attempt must not undo its retry's).
_OVERWRITE_DECISIONS_SQL = f"""
UPDATE decisions d SET {", ".join(f"{name} = x.{name}" for name, _ in DECISION_COLUMNS)}
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, seq integer, {_typed(DECISION_COLUMNS)})
WHERE d.round_id = $1 AND d.applicant_id = x.applicant_id AND d.seq = x.seq
"""
_OVERWRITE_SANCTIONS_SQL = f"""
UPDATE sanctions s SET {", ".join(f"{name} = x.{name}" for name, _ in SANCTION_COLUMNS)}
FROM jsonb_to_recordset($1::jsonb) AS x(subject text, origin text, {_typed(SANCTION_COLUMNS)})
WHERE s.kind = 'APS' AND s.origin = x.origin AND s.subject = x.subject
"""
_OVERWRITE_REVOCATIONS_SQL = f"""
UPDATE revocations r SET {", ".join(f"{name} = x.{name}" for name, _ in REVOCATION_COLUMNS)}
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, seq integer, {_typed(REVOCATION_COLUMNS)})
WHERE r.round_id = $1 AND r.applicant_id = x.applicant_id AND r.seq = x.seq
"""
_OVERWRITE_PANELS_SQL = """
UPDATE panel_seats s SET panellists = x.panellists, version = x.version
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, component text, panellists text[],
    version integer)
WHERE s.round_id = $1 AND s.applicant_id = x.applicant_id AND s.component = x.component
"""
# A notification altered, sealed again and put back in the deliverer's queue.
_OVERWRITE_NOTIFICATIONS_SQL = """
UPDATE notifications n SET text = '', notice = NULL, sealed = decode(x.sealed, 'base64'),
    delivered_at = NULL, attempts = 0, next_attempt_at = NULL, given_up_at = NULL
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, key text, sealed text)
WHERE n.round_id = $1 AND n.applicant_id = x.applicant_id AND n.key = x.key
"""
_OVERWRITE_REPORTS_SQL = """
UPDATE stage_reports r SET kind = x.kind, content = x.content
FROM jsonb_to_recordset($2::jsonb) AS x(applicant_id text, report_id text, kind text, content jsonb)
WHERE r.round_id = $1 AND r.applicant_id = x.applicant_id AND r.report_id = x.report_id
"""


@dataclass
class _Expected:
    """The rows the histories say a chunk of applicants has."""

    rows: list[dict] = field(default_factory=list)
    decisions: dict[tuple[str, int], dict] = field(default_factory=dict)
    reports: dict[tuple[str, str], dict] = field(default_factory=dict)
    # by applicant and key: what its sealed value holds (notification_facts)
    notifications: dict[tuple[str, str], dict] = field(default_factory=dict)
    notifications_purged: bool = False  # a row emptied by the purge is what it should be
    sanctions: dict[str, dict] = field(default_factory=dict)  # by origin
    revocations: dict[tuple[str, int], dict] = field(default_factory=dict)
    panels: dict[tuple[str, str], dict] = field(default_factory=dict)  # by applicant, component
    nips: list[dict] = field(default_factory=list)  # every applicant's, None for none given

    @classmethod
    def of(
        cls, projected: Projected, applicants: list[str], purged: frozenset[str] = frozenset()
    ) -> _Expected:
        """What the histories wrote for `applicants`; of a round whose personal data was purged
        from the tables `purged` (client/retention.py), what the purge left of it."""
        out = cls(notifications_purged="notifications" in purged)
        for applicant_id in applicants:
            row = projected.row(applicant_id)
            if row is not None:
                if "applicants" in purged:
                    row = {**row, "name": ""}
                out.rows.append(row)
                out.nips.append(
                    {
                        "applicant_id": applicant_id,
                        "nip": projected.nip(applicant_id),
                        "person": projected.person(applicant_id),
                    }
                )
            trail: dict[int, dict] = {}  # this applicant's decisions by place
            for p in projected.projections[applicant_id]:
                decisions, reports = trail_rows(p)
                for d in decisions:  # a place written again: the later write holds, as in
                    out.decisions[(applicant_id, d["seq"])] = d  # the read model's own write
                    trail[d["seq"]] = d
                for r in reports:
                    if "stage_reports" in purged:
                        r = {**r, "content": {}}
                    out.reports.setdefault((applicant_id, r["report_id"]), r)
                for n in p.notifications:  # a key is written once: the first write holds
                    out.notifications.setdefault((applicant_id, n.key), notification_facts(n))
                for s in sanction_rows(p):  # the last write's content, as the write keeps it
                    out.sanctions[s["origin"]] = s
                for x in panel_rows(p) if "panel_seats" not in purged else ():
                    # the newest version, as the write keeps it
                    place = (applicant_id, x["component"])
                    if place not in out.panels or out.panels[place]["version"] <= x["version"]:
                        out.panels[place] = x
            origin = f"{projected.round_id}/{applicant_id}"
            if origin in out.sanctions:  # imposed when the journey decided Withdrew, at the time
                out.sanctions[origin] = {  # recorded (a place written again: the later write)
                    **out.sanctions[origin],
                    "imposed_at": next(
                        (d["at"] for d in trail.values() if d["outcome"] == WITHDREW), None
                    ),
                }
            for rows in projected.revocations.get(applicant_id, []):
                for i, r in enumerate(rows.revocations):
                    seq = rows.first_seq + i
                    out.revocations[(applicant_id, seq)] = revocation_row(
                        r, rows.round_id, applicant_id, seq
                    )  # a later write of a place is the one recorded (its task's attempt)
        return out


def _notification_altered(
    r: asyncpg.Record, round_id: str, facts: dict, purged: bool, cipher: ColumnCipher | None
) -> str | None:
    """How a stored notification differs from what its journey wrote (`facts`), or None. Said
    without its text. A sealed value is opened only with `cipher`; a row in clear is compared
    without it."""
    clear = r["text"] != "" or r["notice"] is not None
    if r["sealed"] is None:
        if not clear and (r["delivered"] or purged):
            # emptied by the purge, or a row from before sealing (migration 007) once delivered
            return None
        notice = None if r["notice"] is None else json.loads(r["notice"])
        # The deliverer renders the notice, or sends the text of a row without one.
        if r["text"] != facts["text"] or (notice is not None and notice != facts["notice"]):
            return "in clear, with another text than the histories'"
        return None
    if cipher is None:
        return None
    try:
        opened = json.loads(
            cipher.open(r["sealed"], notification_row(round_id, r["applicant_id"], r["key"]))
        )
    except (PayloadDecryptionError, ValueError):
        return "its sealed value does not open (altered, or sealed under a key not held)"
    return None if opened == facts else "sealed with another text than the histories'"


async def _compare_chunk(
    conn: asyncpg.Connection,
    round_id: str,
    expected: _Expected,
    applicants: list[str],
    cipher: ColumnCipher | None = None,
) -> list[Difference]:
    out: list[Difference] = []
    for r in await conn.fetch(_ROWS_SQL, round_id, json.dumps(expected.rows)):
        who, version, stored = r["applicant_id"], r["version"], r["stored_version"]
        if stored is None:
            out.append(Difference("row missing", who, f"version {version}"))
        elif stored < version:
            out.append(Difference("row behind", who, f"version {stored}, the histories' {version}"))
        elif stored > version:
            out.append(Difference("row ahead", who, f"version {stored}, the histories' {version}"))
        elif r["differing"]:
            out.append(Difference("row altered", who, ", ".join(r["differing"])))
    decisions = list(expected.decisions.values())
    for r in await conn.fetch(_DECISIONS_SQL, round_id, json.dumps(decisions)):
        if r["missing"]:
            out.append(
                Difference("decision missing", r["applicant_id"], f"seq {r['seq']}", r["seq"])
            )
        elif r["differing"]:
            detail = f"seq {r['seq']}: {', '.join(r['differing'])}"
            if r["at_offset"]:  # a task that wrote, then failed: the history has its retry's time
                side = "earlier" if r["at_offset"] < 0 else "later"
                detail += f" (the read model's {abs(r['at_offset']):.3f} s {side})"
            out.append(Difference("decision altered", r["applicant_id"], detail, r["seq"]))
    places = [{"applicant_id": a, "seq": s} for a, s in expected.decisions]
    for r in await conn.fetch(_EXTRA_DECISIONS_SQL, round_id, applicants, json.dumps(places)):
        out.append(Difference("decision without history", r["applicant_id"], f"seq {r['seq']}"))
    reports = list(expected.reports.values())
    for r in await conn.fetch(_REPORTS_SQL, round_id, json.dumps(reports)):
        if r["missing"]:
            out.append(Difference("report missing", r["applicant_id"], r["report_id"]))
        elif r["altered"]:
            out.append(
                Difference("report altered", r["applicant_id"], r["report_id"], r["report_id"])
            )
    places = [{"applicant_id": a, "report_id": r} for a, r in expected.reports]
    for r in await conn.fetch(_EXTRA_REPORTS_SQL, round_id, applicants, json.dumps(places)):
        out.append(Difference("report without history", r["applicant_id"], r["report_id"]))
    keys = [{"applicant_id": a, "key": k} for a, k in sorted(expected.notifications)]
    for r in await conn.fetch(_NOTIFICATIONS_SQL, round_id, json.dumps(keys)):
        who, key = r["applicant_id"], r["key"]
        if r["missing"]:
            out.append(Difference("notification missing", who, key))
        elif why := _notification_altered(
            r, round_id, expected.notifications[who, key], expected.notifications_purged, cipher
        ):
            out.append(Difference("notification altered", who, f"{key}: {why}", key))
    for r in await conn.fetch(_EXTRA_NOTIFICATIONS_SQL, round_id, applicants, json.dumps(keys)):
        out.append(Difference("notification without history", r["applicant_id"], r["key"]))
    sanctions = list(expected.sanctions.values())
    for r in await conn.fetch(_SANCTIONS_SQL, json.dumps(sanctions)):
        who = r["origin"].rsplit("/", 1)[-1]
        if r["missing"]:
            out.append(Difference("sanction missing", who, "APS"))
        elif r["differing"]:
            out.append(Difference("sanction altered", who, f"APS: {', '.join(r['differing'])}"))
    origins = [f"{round_id}/{a}" for a in applicants]
    held = [{"origin": s["origin"], "subject": s["subject"]} for s in sanctions]
    for r in await conn.fetch(_EXTRA_SANCTIONS_SQL, origins, json.dumps(held)):
        who = r["origin"].rsplit("/", 1)[-1]
        out.append(Difference("sanction without history", who, "APS"))
    revocations = list(expected.revocations.values())
    for r in await conn.fetch(_REVOCATIONS_SQL, round_id, json.dumps(revocations)):
        who, seq = r["applicant_id"], r["seq"]
        if r["missing"]:
            out.append(Difference("revocation missing", who, f"seq {seq}", seq))
        elif r["differing"]:
            detail = f"seq {seq}: {', '.join(r['differing'])}"
            out.append(Difference("revocation altered", who, detail, seq))
    places = [{"applicant_id": a, "seq": q} for a, q in expected.revocations]
    for r in await conn.fetch(_EXTRA_REVOCATIONS_SQL, round_id, json.dumps(places), applicants):
        out.append(Difference("revocation without history", r["applicant_id"], f"seq {r['seq']}"))
    for r in await conn.fetch(_NIPS_SQL, round_id, json.dumps(expected.nips)):
        who = r["applicant_id"]
        if r["nip"] is None:
            if r["stored"] is not None:
                out.append(Difference("nip without history", who, "the journey was given none"))
        elif r["stored"] is None:
            if not r["held"]:
                out.append(Difference("nip missing", who, "no row of it in the register"))
        elif r["stored"] != r["nip"]:
            detail = "the register's differs from the one the journey was given"
            out.append(Difference("nip altered", who, detail))
        elif r["other_person"]:
            # Another person's row: the person's next appointment would be given a second NIP,
            # and the one named there this one's (review of 12-07).
            detail = "the register names another person for it than the journey asked it for"
            out.append(Difference("nip altered", who, detail))
    return out + await _compare_panels(conn, round_id, expected, applicants)


async def _compare_panels(
    conn: asyncpg.Connection, round_id: str, expected: _Expected, applicants: list[str]
) -> list[Difference]:
    out: list[Difference] = []
    panels = list(expected.panels.values())
    for r in await conn.fetch(_PANELS_SQL, round_id, json.dumps(panels)):
        who, component, version = r["applicant_id"], r["component"], r["version"]
        stored = r["stored_version"]
        if stored is None:
            out.append(Difference("panel missing", who, component, component))
        elif stored > version:
            detail = f"{component}: version {stored}, the histories' {version}"
            out.append(Difference("panel ahead", who, detail, component))
        elif stored < version:
            detail = f"{component}: version {stored}, the histories' {version}"
            out.append(Difference("panel altered", who, detail, component))
        elif r["members_differ"]:
            out.append(Difference("panel altered", who, f"{component}: members", component))
    places = [{"applicant_id": a, "component": c} for a, c in expected.panels]
    for r in await conn.fetch(_EXTRA_PANELS_SQL, round_id, applicants, json.dumps(places)):
        out.append(
            Difference("panel without history", r["applicant_id"], r["component"], r["component"])
        )
    return out


@dataclass
class ReadModelCheck:
    """The outcome of a check (and of a repair, when one was made)."""

    round_id: str
    applicants: int  # applicants the histories wrote rows for
    differences: list[Difference]
    replay_failures: list[ReplayOutcome]
    repaired: int = 0  # differences made good by the repair, counted by checking again

    @property
    def ok(self) -> bool:
        return not self.differences and not self.replay_failures

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for d in self.differences:
            counts[d.kind] += 1
        return dict(sorted(counts.items()))


async def _differences(
    pool: asyncpg.Pool, projected: Projected, cipher: ColumnCipher | None = None
) -> list[Difference]:
    """What differs for the applicants `projected` holds, chunk by chunk; a notification's sealed
    value is opened with `cipher` (without it, only one in clear is compared). Of a round whose
    personal data was purged, only what the purge keeps is compared: the record
    (`personal_data_purges`) names the tables, and the histories' values are taken as the purge
    left them (a name empty, a report's content `{}`, no panel seats, a notification empty)."""
    applicants = sorted(projected.projections)
    differences: list[Difference] = []
    async with pool.acquire() as conn:
        purged = await purged_tables(conn, projected.round_id)
        for first in range(0, len(applicants), CHUNK):
            chunk = applicants[first : first + CHUNK]
            expected = _Expected.of(projected, chunk, purged)
            differences += await _compare_chunk(conn, projected.round_id, expected, chunk, cipher)
    return differences


async def _without_history(pool: asyncpg.Pool, round_id: str, known: list[str]) -> list[Difference]:
    """Rows, decisions, reports, notifications, APS sanctions, revocations and panels of
    applicants no journey of the round wrote."""
    origins = [f"{round_id}/{a}" for a in known]
    return (
        [
            Difference("row without history", r["applicant_id"])
            for r in await pool.fetch(_WITHOUT_HISTORY_SQL, round_id, known)
        ]
        + [
            Difference("decision without history", r["applicant_id"], f"seq {r['seq']}")
            for r in await pool.fetch(_DECISIONS_WITHOUT_JOURNEY_SQL, round_id, known)
        ]
        + [
            Difference("report without history", r["applicant_id"], r["report_id"])
            for r in await pool.fetch(_REPORTS_WITHOUT_JOURNEY_SQL, round_id, known)
        ]
        + [
            Difference("notification without history", r["applicant_id"], r["key"])
            for r in await pool.fetch(_NOTIFICATIONS_WITHOUT_JOURNEY_SQL, round_id, known)
        ]
        + [
            Difference("sanction without history", r["origin"].rsplit("/", 1)[-1], "APS")
            for r in await pool.fetch(_SANCTIONS_WITHOUT_JOURNEY_SQL, round_id, origins)
        ]
        + [
            Difference("nip without history", r["applicant_id"], "no journey of the round has it")
            for r in await pool.fetch(_NIPS_WITHOUT_JOURNEY_SQL, round_id, known)
        ]
        + [
            Difference("revocation without history", r["applicant_id"], f"seq {r['seq']}")
            for r in await pool.fetch(_REVOCATIONS_WITHOUT_JOURNEY_SQL, round_id, known)
        ]
        + [
            Difference("panel without history", r["applicant_id"], r["component"], r["component"])
            for r in await pool.fetch(_PANELS_WITHOUT_JOURNEY_SQL, round_id, known)
        ]
    )


async def _finished(pool: asyncpg.Pool, result: ReadModelCheck, known: list[str]) -> ReadModelCheck:
    """`result` with the rows of applicants no history wrote, every difference in its order."""
    result.differences += await _without_history(pool, result.round_id, sorted(known))
    result.differences.sort(key=Difference.order)
    return result


async def check(
    pool: asyncpg.Pool, projected: Projected, cipher: ColumnCipher | None = None
) -> ReadModelCheck:
    """Compare the read model with what the histories say; change nothing. With `cipher` (the
    payload keys), the notifications' sealed values are opened and compared too."""
    result = ReadModelCheck(
        projected.round_id,
        len(projected.projections),
        await _differences(pool, projected, cipher),
        projected.replay_failures,
    )
    return await _finished(pool, result, list(projected.projections))


async def _repair(
    pool: asyncpg.Pool, read_model: ReadModel, projected: Projected
) -> tuple[list[Difference], int]:
    """Make good the differences of the applicants `projected` holds: (what is left, how many
    were made good)."""
    async with pool.acquire() as conn:
        if purged_at := await purged_on(conn, projected.round_id):
            raise AuditError(
                f"round {projected.round_id}: its personal data was purged from the read model on "
                f"{purged_at:%Y-%m-%d %H:%M} UTC (personal_data_purges); a repair would write it "
                "back from the histories. Check without --repair, and mend by hand what it names"
            )
    before = await _differences(pool, projected, read_model.cipher)
    touched = sorted({d.applicant_id for d in before if d.repairable})
    round_id = projected.round_id
    altered = {(d.kind, d.applicant_id, d.place) for d in before}
    for first in range(0, len(touched), CHUNK):
        chunk = [a for a in touched[first : first + CHUNK] if a in projected.projections]
        await read_model.write_rows([p for a in chunk for p in projected.projections[a]])
        revocations = RevocationWriter(read_model.pool)
        for rows in (r for a in chunk for r in projected.revocations.get(a, [])):
            await revocations.project_revocations(rows)
        expected = _Expected.of(projected, chunk)
        # A row behind is brought to the histories' version by the write, which leaves its
        # formasi_code alone (a journey's formasi never changes): its content is overwritten too,
        # so one pass leaves it clean (review of 12-07: an altered formasi_code took a second).
        rows = [
            r for r in expected.rows
            if {("row altered", r["applicant_id"], None), ("row behind", r["applicant_id"], None)}
            & altered
        ]  # fmt: skip
        reports = [
            r for (who, rid), r in expected.reports.items()
            if ("report altered", who, rid) in altered
        ]  # fmt: skip
        decisions = [
            d for (who, seq), d in expected.decisions.items()
            if ("decision altered", who, seq) in altered
        ]  # fmt: skip
        revoked = [
            r for (who, seq), r in expected.revocations.items()
            if ("revocation altered", who, seq) in altered
        ]  # fmt: skip
        panels = [
            x for (who, component), x in expected.panels.items()
            if ("panel altered", who, component) in altered
        ]  # fmt: skip
        notes = [
            {
                "applicant_id": who,
                "key": key,
                "sealed": sealed_notification(read_model.cipher, round_id, who, key, facts),
            }
            for (who, key), facts in expected.notifications.items()
            if ("notification altered", who, key) in altered
        ]
        sanctioned = {d.applicant_id for d in before if d.kind == "sanction altered"}
        sanctions = [
            x for origin, x in expected.sanctions.items()
            if origin.rsplit("/", 1)[-1] in sanctioned
        ]  # fmt: skip
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_OVERWRITE_ROWS_SQL, round_id, json.dumps(rows))
            await conn.execute(_OVERWRITE_REPORTS_SQL, round_id, json.dumps(reports))
            await conn.execute(_OVERWRITE_DECISIONS_SQL, round_id, json.dumps(decisions))
            await conn.execute(_OVERWRITE_REVOCATIONS_SQL, round_id, json.dumps(revoked))
            await conn.execute(_OVERWRITE_PANELS_SQL, round_id, json.dumps(panels))
            await conn.execute(_OVERWRITE_SANCTIONS_SQL, json.dumps(sanctions))
            await conn.execute(_OVERWRITE_NOTIFICATIONS_SQL, round_id, json.dumps(notes))
    after = await _differences(pool, projected, read_model.cipher) if touched else before
    return after, len(before) - len(after)


async def repair(pool: asyncpg.Pool, read_model: ReadModel, projected: Projected) -> ReadModelCheck:
    """Make good what `check` finds and can be made good, then check again.

    Each applicant with a difference has every projection of its histories written again through
    the read model's own write (`ReadModel.write_rows`): what is missing is added, a row behind is
    brought to the histories' version, a decision that differs takes the histories' content,
    nothing already there is written twice. Then what that write leaves alone by design (a row at
    the histories' version, a report whose content differs, a decision or revocation stored with
    a later time) is overwritten with the histories' content. What no history explains (a row
    ahead of its histories, a row or decision without one) is left for a person, and stays in
    the result. Missing notifications are written as undelivered, so they are delivered (again)."""
    left, made_good = await _repair(pool, read_model, projected)
    result = ReadModelCheck(
        projected.round_id, len(projected.projections), left, projected.replay_failures, made_good
    )
    return await _finished(pool, result, list(projected.projections))


async def _runs(client: Client, round_id: str) -> dict[str, list[tuple[str, str, datetime]]]:
    """Every journey and aftermath run of the round, by journey id: (workflow id, run id, start)."""
    runs: dict[str, list[tuple[str, str, datetime]]] = defaultdict(list)
    for kind in ("journey", "aftermath"):
        async for e in client.list_workflows(round_query(round_id, kind)):
            after = aftermath_of(e.id) if kind == "aftermath" else None
            journey = journey_workflow_id(*after) if after else e.id
            runs[journey].append((e.id, e.run_id, e.start_time))
    return runs


@dataclass
class _Chunk:
    """What one chunk of journeys gave (picklable: it crosses processes)."""

    differences: list[Difference]
    repaired: int
    failures: list[tuple[str, str, str]]  # (workflow id, run id, the failure)
    applicants: list[str]
    runs: int  # the journey and aftermath runs it replayed


async def _check_chunk(
    client: Client,
    pool: asyncpg.Pool,
    round_id: str,
    converter: DataConverter,
    read_model: ReadModel | None,
    listed: list[tuple[str, str, datetime]],
    on_result: Callable[[ReplayOutcome], None] | None = None,
    cipher: ColumnCipher | None = None,
) -> _Chunk:
    """Fetch, replay, compare (and make good) the runs of some journeys, then let them go."""
    listed = sorted(listed, key=lambda r: (r[0], r[2]))  # a journey's runs, then its aftermath's
    histories = [await fetched(client, wid, rid) for wid, rid, _ in listed]
    found = await projected(round_id, histories, converter, on_result)
    del histories
    if read_model is None:
        differences, repaired = await _differences(pool, found, cipher), 0
    else:
        differences, repaired = await _repair(pool, read_model, found)
    failures = [
        (o.workflow_id, o.run_id, f"{type(o.failure).__name__}: {o.failure}")
        for o in found.replay_failures
    ]
    return _Chunk(differences, repaired, failures, sorted(found.projections), len(listed))


def _chunks(runs: dict[str, list[tuple[str, str, datetime]]], size: int):
    journeys = sorted(runs)
    for first in range(0, len(journeys), size):
        yield [r for j in journeys[first : first + size] for r in runs[j]]


def _gather(round_id: str, chunks: list[_Chunk]) -> tuple[ReadModelCheck, list[str]]:
    result = ReadModelCheck(round_id, 0, [], [])
    known: list[str] = []
    for c in sorted(chunks, key=lambda c: c.applicants[:1]):  # as one process would list them
        result.differences += c.differences
        result.repaired += c.repaired
        result.replay_failures += [
            ReplayOutcome(wid, rid, failure=RuntimeError(text)) for wid, rid, text in c.failures
        ]
        result.applicants += len(c.applicants)
        known += c.applicants
    return result, known


async def _listed_runs(client: Client, round_id: str) -> dict[str, list[tuple[str, str, datetime]]]:
    runs = await _runs(client, round_id)
    if not runs:
        raise AuditError(
            f"no journeys found for round {round_id!r} (query {round_query(round_id, 'journey')!r})"
        )
    return runs


async def check_round(
    client: Client,
    pool: asyncpg.Pool,
    round_id: str,
    converter: DataConverter,
    read_model: ReadModel | None = None,
    on_result: Callable[[ReplayOutcome], None] | None = None,
    on_listed: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
    cipher: ColumnCipher | None = None,
) -> ReadModelCheck:
    """`check` (or with `read_model`, `repair`) of a whole round, `chunk` journeys at a time:
    their histories fetched, replayed, compared (and made good), then let go, so that what is
    held at once does not grow with the round. `on_listed` hears how many runs there are;
    `cipher` opens the notifications' sealed values (`read_model`'s when repairing)."""
    runs = await _listed_runs(client, round_id)
    if on_listed:
        on_listed(sum(len(r) for r in runs.values()))
    done = [
        await _check_chunk(client, pool, round_id, converter, read_model, listed, on_result, cipher)
        for listed in _chunks(runs, chunk)
    ]
    return await _finished(pool, *_gather(round_id, done))


# --- the same in several processes (audit.py check-read-model --processes N) ---------------------

_process: dict[str, Any] = {}  # a pool process's own loop, app, read-model pool and converter


def _process_start(repair: bool) -> None:
    from runtime.app import open_app
    from runtime.connection import data_converter
    from runtime.db import open_pool

    async def opened():
        app = await open_app()
        pool = await open_pool(app.stack.database_url, max_size=2)
        cipher = ColumnCipher.from_keys(app.keys)
        read_model = ReadModel(pool, cipher) if repair else None
        return app.client, pool, data_converter(app.keys), read_model, cipher

    loop = asyncio.new_event_loop()
    _process.update(loop=loop, opened=loop.run_until_complete(opened()))


def _process_chunk(task: tuple[str, list[tuple[str, str, datetime]]]) -> _Chunk:
    round_id, listed = task
    client, pool, converter, read_model, cipher = _process["opened"]
    return _process["loop"].run_until_complete(
        _check_chunk(client, pool, round_id, converter, read_model, listed, cipher=cipher)
    )


async def check_round_in_processes(
    client: Client,
    pool: asyncpg.Pool,
    round_id: str,
    processes: int,
    repair: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    on_listed: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> ReadModelCheck:
    """`check_round` with its chunks shared out among `processes` processes, each with its own
    connections (opened from the same settings). `on_chunk` hears how many runs each chunk had,
    as each is done, in any order; rows without history are looked for here, once, at the end."""
    runs = await _listed_runs(client, round_id)
    if on_listed:
        on_listed(sum(len(r) for r in runs.values()))
    tasks = [(round_id, listed) for listed in _chunks(runs, chunk)]
    context = multiprocessing.get_context("spawn")  # no copy of this process's loop or sockets
    done: list[_Chunk] = []
    with context.Pool(processes, initializer=_process_start, initargs=(repair,)) as shared:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Chunk | BaseException] = asyncio.Queue()

        def deliver(item) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        for task in tasks:
            shared.apply_async(_process_chunk, (task,), callback=deliver, error_callback=deliver)
        for _ in tasks:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            done.append(item)
            if on_chunk:
                on_chunk(item.runs)
    return await _finished(pool, *_gather(round_id, done))
