"""The committee's view of what is still outstanding before the administration, SKD, SKB or Latsar
window closes (`starter.py outstanding`): per formasi, each report the journeys still await (the
administration result; the SKD result; each SKB score, gate and panel component, a panel with fewer
standing scores than its `min_panellists`; the Latsar result of each CPNS at Latsar), how many
applicants lack it and which, by registration number.

Who stands at the administrative check, SKD, SKB or Latsar comes from the read model (applicants.stage, written when a journey
enters the stage), and a drawn panel's members from panel_seats. What each of them has been sent
does not: a journey writes the reports it accepts to the read model with its next row, which
during a window is the row written at the close, too late for this view. So the reports are read
from each journey's own history (its accepted report updates, folded by `domain.sheet.with_report`
as the journey folds them, conflicts, reviews and refused scores included, as the auditor's
recompute does) and judged by `domain.outstanding.awaited_reports`, the close's own rule. One
history read per applicant at the stage, HISTORY_READS at a time: no query, no workflow task, no
action counted on the journeys. The journeys stay the authority: a report accepted after the read,
or an applicant who entered the stage after the read model was read, shows at the next run.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client

from client.api import RecruitmentApi, RefusedError
from client.status import RoundView
from domain.codes import Stage
from domain.config import RoundConfig
from domain.messages import JourneyStart
from domain.outstanding import AwaitedReport, awaited_reports
from domain.protocol import JOURNEY_REPORTS
from domain.sheet import ApplicantSheet, with_report
from workflows.ids import journey_workflow_id

HISTORY_READS = 8  # journeys' histories read at once

# The windows whose reports the view awaits, and the journey stage each awaits them at.
WINDOW_STAGES = {
    "administration": Stage.ADMIN_CHECK,
    "skd": Stage.SKD,
    "skb": Stage.SKB,
    "latsar": Stage.LATSAR,
}
# What a missing report's `ends_as` says at Latsar, whose close ends nobody: the CPNS stays CPNS.
STAYS_CPNS = "CPNS"
_STAGE_ORDER = {s.value: i for i, s in enumerate(WINDOW_STAGES.values())}

_IN_STAGE_SQL = """
SELECT applicant_id, formasi_code, stage FROM applicants
WHERE round_id = $1 AND terminal IS NULL AND stage = ANY($2::text[])
  AND ($3::text IS NULL OR formasi_code = $3)
ORDER BY formasi_code, applicant_id
"""

_SEATS_SQL = """
SELECT applicant_id, component, panellists FROM panel_seats
WHERE round_id = $1 AND applicant_id = ANY($2::text[])
"""


class WindowClose(BaseModel, frozen=True):
    """A window whose reports the view awaits: when it closes (with every extension) and whether
    it is open now."""

    name: str
    closes: datetime
    state: str  # "belum dibuka", "dibuka" or "ditutup" (client/status.py)


class MissingApplicant(BaseModel, frozen=True):
    """An applicant who still lacks a report: the registration number, and for a panel how many
    panellists' scores stand and which of the drawn panel have not scored."""

    applicant_id: str
    scored: int | None = None
    not_scored: list[str] = []


class MissingReport(BaseModel, frozen=True):
    """One awaited report of one formasi: what it is, what the close gives an applicant without
    it, and who lacks it."""

    stage: str
    component: str
    kind: str  # "admin", "skd", "score", "gate", "panel" or "latsar"
    ends_as: str  # TMS, TH or TMS-SKB; CPNS at Latsar (STAYS_CPNS: the close ends nobody)
    needed: int = 0  # a panel: the scores it needs
    missing: int
    applicants: list[MissingApplicant]


class FormasiOutstanding(BaseModel, frozen=True):
    """A formasi's applicants at each awaited stage, and every report some of them still lack."""

    formasi_code: str
    at_stage: dict[str, int]  # applicants at the administrative check, SKD, SKB and Latsar
    reports: list[MissingReport]


class Outstanding(BaseModel, frozen=True):
    """What `starter.py outstanding --json` prints and the gateway answers."""

    round_id: str
    formasi_filter: str | None = None
    read_at: datetime
    windows: list[WindowClose]
    formasi: list[FormasiOutstanding]
    source: str = (
        "stages from the read model, reports from the journeys' histories at read_at; the "
        "journeys are the authority, and a report accepted since shows at the next read"
    )

    @property
    def applicants_missing(self) -> int:
        """Applicants who lack at least one report."""
        return len({a.applicant_id for f in self.formasi for r in f.reports for a in r.applicants})


def formasi_checked(config: RoundConfig, formasi: str | None) -> None:
    """RefusedError when the round has no formasi `formasi`, naming the ones it has."""
    if formasi is not None and config.formasi_by_code(formasi) is None:
        codes = ", ".join(f.code for f in config.formasi)
        raise RefusedError(
            f"formasi {formasi} is not in round {config.round_id} (its formasi: {codes})"
        )


async def journey_sheet(client: Client, round_id: str, applicant_id: str) -> ApplicantSheet:
    """The applicant's sheet as its journey's history makes it: the start, then every accepted
    report (the administration's, SKD and SKB results, conflicts and reviews), folded in the order
    accepted. (A refused update
    never reaches a history: its validator rejects it first.)"""
    handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
    converter = client.data_converter
    sheet: ApplicantSheet | None = None
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_started_event_attributes"):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [start] = await converter.decode(list(payloads)[:1], [JourneyStart])
            sheet = ApplicantSheet(
                applicant_id=start.applicant_id,
                formasi_code=start.formasi.code,
                registration=start.registration,
                tmt=start.tmt,
            )
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            update = JOURNEY_REPORTS.get(request.input.name)
            if update is None or sheet is None:
                continue
            [report] = await converter.decode(list(request.input.args.payloads)[:1], [update.input])
            sheet = with_report(sheet, report)
    if sheet is None:
        raise RefusedError(f"the journey of {applicant_id} in round {round_id} has no start")
    return sheet


async def outstanding_view(
    api: RecruitmentApi,
    db: Any,
    config: RoundConfig,
    view: RoundView,
    formasi: str | None,
    now: datetime,
) -> Outstanding:
    """The round's outstanding reports (`db`: an asyncpg connection or pool of the read model;
    `view`: the round as it stands, for its windows' close times)."""
    formasi_checked(config, formasi)
    round_id = config.round_id
    rows = await db.fetch(
        _IN_STAGE_SQL, round_id, [s.value for s in WINDOW_STAGES.values()], formasi
    )
    seats: dict[tuple[str, str], list[str]] = {
        (r["applicant_id"], r["component"]): list(r["panellists"])
        for r in await db.fetch(_SEATS_SQL, round_id, [r["applicant_id"] for r in rows])
    }
    reads = asyncio.Semaphore(HISTORY_READS)

    async def sheet_of(row) -> ApplicantSheet:
        async with reads:
            return await journey_sheet(api.client, round_id, row["applicant_id"])

    sheets = await asyncio.gather(*(sheet_of(r) for r in rows))
    rules = api.journey_rules(config)
    at_stage: dict[str, Counter] = {f.code: Counter() for f in config.formasi}
    lacking: dict[tuple[str, str, str], tuple[AwaitedReport, list[MissingApplicant]]] = {}
    for row, sheet in zip(rows, sheets, strict=True):
        at_stage.setdefault(row["formasi_code"], Counter())[row["stage"]] += 1
        for a in awaited_reports(sheet, rules, Stage(row["stage"])):
            place = (row["formasi_code"], a.stage.value, a.component)
            entry = MissingApplicant(applicant_id=row["applicant_id"])
            if a.kind == "panel":
                # Who of the drawn panel (panel_seats, after every conflict and review) has not
                # scored: the panellists to chase. None drawn: a panel without a pool.
                scored = sheet.panel.get(a.component, {})
                drawn = seats.get((row["applicant_id"], a.component), [])
                entry = MissingApplicant(
                    applicant_id=row["applicant_id"],
                    scored=a.scored,
                    not_scored=[p for p in drawn if p not in scored],
                )
            lacking.setdefault(place, (a, []))[1].append(entry)
    shown = [formasi] if formasi is not None else [f.code for f in config.formasi]
    order = {c.name: i for i, c in enumerate(rules.skb.components)}
    return Outstanding(
        round_id=round_id,
        formasi_filter=formasi,
        read_at=now,
        windows=[
            WindowClose(name=w.name, closes=w.closes, state=w.state)
            for w in view.windows
            if w.name in WINDOW_STAGES
        ],
        formasi=[
            FormasiOutstanding(
                formasi_code=code,
                at_stage={
                    s.value: at_stage.get(code, Counter())[s.value] for s in WINDOW_STAGES.values()
                },
                reports=[
                    MissingReport(
                        stage=a.stage.value,
                        component=a.component,
                        kind=a.kind,
                        ends_as=STAYS_CPNS if a.ends_as is None else a.ends_as.value,
                        needed=a.needed,
                        missing=len(who),
                        applicants=who,
                    )
                    for (f, _, _), (a, who) in sorted(
                        lacking.items(),
                        key=lambda i: (_STAGE_ORDER[i[0][1]], order.get(i[0][2], -1)),
                    )
                    if f == code
                ],
            )
            for code in shown
        ],
    )
