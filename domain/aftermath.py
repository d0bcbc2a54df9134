"""After the journey: a DIS or a dismissal that comes once the applicant's journey has ended.

DOMAIN.md: a cheating finding is DIS, "which can be applied at any later stage too, even after
appointment"; a PNS can be dismissed by the instansi's decree. A journey that has ended takes no
more reports, and its history is closed. What happens to the applicant after it is recorded in the
applicant's aftermath (workflows/aftermath.py), a history of its own linked to the journey by id,
whose decisions take what the journey ended as (its terminal and NIP) as inputs.

The rules here are pure: who may report it, what the journey must have ended as, what is already
recorded. The aftermath checks them when it decides; the portal and the announcements read the
result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from domain import events as ev
from domain.codes import Terminal
from domain.config import ReportKind
from domain.messages import (
    Ack,
    Decision,
    Dismissal,
    Disqualification,
    JourneyRules,
    JourneyState,
    RoundView,
)

AfterEndReport = Disqualification | Dismissal


class JourneyEndRequest(BaseModel, frozen=True):
    """Ask for how a journey ended (the aftermath derives the id from its own)."""

    workflow_id: str


class JourneyEnd(BaseModel, frozen=True):
    """How a journey stands, read from Temporal: its result (the JourneyState it returned) once
    it has completed."""

    found: bool = True
    status: str = ""  # running | completed | terminated | failed | ... (lower case)
    state: JourneyState | None = None  # the journey's result, when it completed


class Revocation(BaseModel, frozen=True):
    """One DIS or dismissal recorded after the journey ended."""

    code: str  # DIS | DIBERHENTIKAN
    at: datetime
    journey_terminal: Terminal
    nip: str | None = None
    reported_by: str
    report_id: str
    reason: str
    decree_no: str = ""  # a dismissal's decree


class CarriedAnswer(BaseModel, frozen=True):
    """One report an earlier run of the aftermath answered: a repeat gets this answer again."""

    report_id: str
    digest: str  # the content digest it was answered for: other content under its id is refused
    ack: Ack


class AftermathCarry(BaseModel, frozen=True):
    """What an aftermath's run hands to the next when it continues as new (patch
    aftermath-continues-as-new): its whole record, every row of it already written. The next run
    takes it only when the server started it as that run's continuation, never from a client."""

    journey: JourneyState  # how the journey ended, as the first run read it (kept: a closed
    # journey's history is deleted after the namespace's retention, the aftermath's record is not)
    view: RoundView  # the round's keys and reporters as last read, and when
    keys_read_at: datetime | None
    read_tried_at: datetime | None
    answers: list[CarriedAnswer] = Field(default_factory=list)
    revocations: list[Revocation] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    runs: int = Field(ge=1)  # the runs before the one it starts


class AftermathStart(BaseModel, frozen=True):
    """Input of an ApplicantAftermath. Only for reading its history: the aftermath takes its
    round and applicant from its own workflow id, and refuses to work when these disagree. `carry`
    is set only by the aftermath itself when it continues as new; a client's start that sets it is
    refused."""

    round_id: str = Field(min_length=1, max_length=100)
    applicant_id: str = Field(min_length=1, max_length=100)
    carry: AftermathCarry | None = None


class AftermathState(BaseModel, frozen=True):
    """What the aftermath's query returns: what the journey ended as, every revocation since and
    the decisions that recorded them."""

    round_id: str
    applicant_id: str
    ready: bool = False  # it has read the round and the journey's end
    problem: str = ""  # why it takes no report (no such round, the journey has not ended)
    journey_terminal: Terminal | None = None
    nip: str | None = None
    journey_decisions: int = 0  # the journey's trail length: the aftermath's decisions follow it
    revocations: list[Revocation] = []
    decisions: list[Decision] = []

    @property
    def standing(self) -> str | None:
        """The applicant's status as it stands: the last revocation, or what the journey ended as."""
        if self.revocations:
            return self.revocations[-1].code
        return self.journey_terminal.value if self.journey_terminal else None


class RevocationRows(BaseModel, frozen=True):
    """The read model's revocation rows of one aftermath since its last write (migration 008).
    Its decisions and notifications go the journey's way (PROJECT_JOURNEY, numbered after the
    journey's, with a row version that never wins over the journey's row)."""

    round_id: str
    applicant_id: str
    first_seq: int  # the index of revocations[0] among the aftermath's
    revocations: list[Revocation] = []


# --- the rules -----------------------------------------------------------------------------------


def end_problem(end: JourneyEnd, journey_id: str) -> str | None:
    """Why the aftermath of `journey_id` cannot take reports (None once the journey completed)."""
    if not end.found:
        return f"there is no journey {journey_id}"
    if end.status == "running":
        return "the journey has not ended: send the report to the journey"
    if end.status != "completed" or end.state is None or end.state.terminal is None:
        return f"the journey is {end.status or 'unknown'}, not ended with an outcome"
    return None


def _journey_report_ids(state: JourneyState) -> set[str]:
    return {str(d.input["report_id"]) for d in state.decisions if "report_id" in d.input}


def revocation_refusal(
    report: AfterEndReport,
    journey: JourneyState,
    revocations: Sequence[Revocation],
    rules: JourneyRules,
) -> str | None:
    """Why this report cannot be recorded after the journey ended, or None when it can.

    In the order checked: the reporter may report for the round's committee (operator); the
    report id is not one the journey used; a DIS needs an applicant not disqualified already; a
    dismissal needs an appointed PNS not disqualified or dismissed already."""
    if report.reported_by not in rules.reporters.get(ReportKind.OPERATOR, []):
        return f"{report.reported_by} is not allowed to report {ReportKind.OPERATOR} in this round"
    if report.report_id in _journey_report_ids(journey):
        return "this report id was used in the applicant's journey; use a new one"
    terminal = journey.terminal
    dis = next((r for r in revocations if r.code == Terminal.DISQUALIFIED), None)
    if isinstance(report, Disqualification):
        if terminal == Terminal.DISQUALIFIED:
            return "the applicant is already disqualified (DIS): the journey ended so"
        if dis is not None:
            return f"the applicant is already disqualified (DIS) since {dis.at.isoformat()}"
        return None
    if terminal != Terminal.PNS:
        return (
            "only an appointed PNS can be dismissed: the journey ended as "
            f"{terminal.value if terminal else 'nothing'}, not PNS"
        )
    if dis is not None:
        return f"the applicant is disqualified (DIS) since {dis.at.isoformat()}: no PNS to dismiss"
    dismissed = next((r for r in revocations if r.code == Terminal.DISMISSED), None)
    if dismissed is not None:
        return (
            f"the applicant is already dismissed by decree {dismissed.decree_no} since "
            f"{dismissed.at.isoformat()}"
        )
    return None


def decide(report: AfterEndReport, journey: JourneyState) -> ev.JourneyEvent:
    """The decision an accepted report makes, with what the journey ended as among its inputs."""
    assert journey.terminal is not None
    if isinstance(report, Disqualification):
        return ev.DisqualifiedAfterEnd(report=report, terminal=journey.terminal, nip=journey.nip)
    return ev.DismissedAfterEnd(report=report, terminal=journey.terminal, nip=journey.nip)


def revocation(report: AfterEndReport, journey: JourneyState, at: datetime) -> Revocation:
    """The revocation an accepted report records."""
    assert journey.terminal is not None
    return Revocation(
        code=(
            Terminal.DISQUALIFIED.value
            if isinstance(report, Disqualification)
            else Terminal.DISMISSED.value
        ),
        at=at,
        journey_terminal=journey.terminal,
        nip=journey.nip,
        reported_by=report.reported_by,
        report_id=report.report_id,
        reason=report.reason,
        decree_no=report.decree_no if isinstance(report, Dismissal) else "",
    )


def effect(report: AfterEndReport) -> str:
    """What an accepted report did, as its Ack says."""
    if isinstance(report, Disqualification):
        return "disqualified after the journey ended"
    return "dismissed after the journey ended"


def row(r: Revocation, round_id: str, applicant_id: str, seq: int) -> dict[str, Any]:
    """The read model's row of a revocation (no reason: the history keeps it, migration 008)."""
    return {
        "round_id": round_id,
        "applicant_id": applicant_id,
        "seq": seq,
        "code": r.code,
        "at": r.at.isoformat(),
        "journey_terminal": r.journey_terminal.value,
        "decree_no": r.decree_no or None,
        "reported_by": r.reported_by,
        "report_id": r.report_id,
    }
