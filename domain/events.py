"""What happened to an applicant: one past-tense event class per kind of decision.

A journey decides by recording one of these. Each renders to the `Decision` record that the
journey's history has always carried (stage, outcome, actor, input), so an auditor reads the
same trail and replaying an old history derives exactly the records it holds. Auditors match
records with `Event.matches(decision)` instead of comparing free text.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, ClassVar

from pydantic import BaseModel

from domain.administration import DocumentFinding
from domain.codes import AdminDecision, FinalCode, SkdCode, Stage, Terminal
from domain.config import Category
from domain.messages import (
    AdminReport,
    Announcement,
    AppealAnswer,
    Decision,
    Dismissal,
    Disqualification,
    LatsarReport,
    Report,
    Withdrawal,
)
from domain.registration import Refusal
from domain.skd import SkdScores


class JourneyEvent(BaseModel, frozen=True):
    """A decision about one applicant. Subclasses name the stage and the outcome."""

    stage: ClassVar[Stage]
    outcome: ClassVar[str] = ""

    def actor(self) -> str:
        """Who supplied the decisive input ("system" when a rule or a deadline decided)."""
        return "system"

    def code(self) -> str:
        """The outcome as recorded (a result code or a past-tense word)."""
        return self.outcome

    def at_stage(self) -> Stage:
        """The stage the decision belongs to."""
        return self.stage

    def inputs(self) -> dict[str, Any]:
        """The inputs the decision was made from, as recorded in the trail."""
        return {}

    def record(self, at: datetime, rule_version: str, rules_digest: str) -> Decision:
        """The decision record the history carries."""
        return Decision(
            at=at,
            stage=self.at_stage(),
            outcome=self.code(),
            actor=self.actor(),
            input=self.inputs(),
            rule_version=rule_version,
            rules_digest=rules_digest,
        )

    @classmethod
    def matches(cls, record: Decision) -> bool:
        """Whether a recorded decision is one of this kind (for events with a fixed outcome)."""
        return record.stage == cls.stage and record.outcome == cls.outcome


class _Reasoned(JourneyEvent, frozen=True):
    """A decision made by a rule or a deadline, with the reason in words."""

    reason: str

    def inputs(self) -> dict[str, Any]:
        return {"reason": self.reason}


# --- registration -------------------------------------------------------------------------------


class Registered(JourneyEvent, frozen=True):
    stage = Stage.REGISTERED
    outcome = "registered"
    formasi: str
    registered_by: str

    def actor(self) -> str:
        return self.registered_by

    def inputs(self) -> dict[str, Any]:
        return {"formasi": self.formasi}


class RegistrationRefused(JourneyEvent, frozen=True):
    stage = Stage.REGISTERED
    outcome = "refused"
    applied_on: date
    refusals: list[Refusal]

    def inputs(self) -> dict[str, Any]:
        return {
            "applied_on": self.applied_on.isoformat(),
            "refusals": [r.model_dump() for r in self.refusals],
        }


class NotAdmitted(_Reasoned, frozen=True):
    """The journey's start does not agree with its round (rules, formasi, window, signature)."""

    stage = Stage.REGISTERED
    outcome = "not admitted"


# --- administration and sanggah -----------------------------------------------------------------


class AdminChecked(JourneyEvent, frozen=True):
    """MS or TMS from the instansi's report, with a reason per failing document."""

    stage = Stage.ADMIN_CHECK
    decision: AdminDecision
    report: AdminReport

    def code(self) -> str:
        return self.decision.value

    def actor(self) -> str:
        return self.report.reported_by

    def inputs(self) -> dict[str, Any]:
        return self.report.record()

    @property
    def findings(self) -> list[DocumentFinding]:
        return list(self.report.findings)


class AdminNotDecided(_Reasoned, frozen=True):
    """No result before the administration window closed: TMS."""

    stage = Stage.ADMIN_CHECK
    outcome = AdminDecision.TMS.value


class AppealDecided(JourneyEvent, frozen=True):
    stage = Stage.ADMIN_APPEAL
    decision: AdminDecision
    answer: AppealAnswer

    def code(self) -> str:
        return self.decision.value

    def actor(self) -> str:
        return self.answer.reported_by

    def inputs(self) -> dict[str, Any]:
        return self.answer.record()


# --- SKD ----------------------------------------------------------------------------------------


class SkdAbsent(_Reasoned, frozen=True):
    stage = Stage.SKD
    outcome = SkdCode.ABSENT.value


class SkdRanked(JourneyEvent, frozen=True):
    """The applicant's SKD code against the formasi's announced cut."""

    stage = Stage.SKD_RANKING
    skd_code: SkdCode
    scores: SkdScores
    category: Category
    announcement: Announcement  # the formasi's skd_result, with the cut

    def code(self) -> str:
        return self.skd_code.value

    def actor(self) -> str:
        return "formasi"

    def inputs(self) -> dict[str, Any]:
        cut_key = self.announcement.cut_key
        return {
            "twk": self.scores.twk,
            "tiu": self.scores.tiu,
            "tkp": self.scores.tkp,
            "total": self.scores.total,
            "category": self.category.value,
            "cut_key": list(cut_key) if cut_key else None,
            "announcement_id": self.announcement.announcement_id,
        }


# --- SKB, final ranking, optimalisasi -----------------------------------------------------------


class SkbFailed(_Reasoned, frozen=True):
    """Absent from the SKB CAT (TH), or out by a gate or an unreported component (TMS-SKB)."""

    stage = Stage.SKB
    final_code: FinalCode

    def code(self) -> str:
        return self.final_code.value


class SkbCompleted(JourneyEvent, frozen=True):
    stage = Stage.SKB
    outcome = "completed"
    skb_score: str | None
    final_score: str | None
    components: dict[str, Any]

    def inputs(self) -> dict[str, Any]:
        return {
            "skb_score": self.skb_score,
            "final_score": self.final_score,
            "components": self.components,
        }


class FinalRanked(JourneyEvent, frozen=True):
    stage = Stage.FINAL_RANKING
    final_code: FinalCode
    announcement_id: str
    final_score: str | None

    def code(self) -> str:
        return self.final_code.value

    def actor(self) -> str:
        return "formasi"

    def inputs(self) -> dict[str, Any]:
        return {"announcement_id": self.announcement_id, "final_score": self.final_score}


class PanelAssigned(JourneyEvent, frozen=True):
    """The applicant's interview panel, drawn from the pool by a recorded seed (domain/panels.py)."""

    stage = Stage.SKB
    outcome = "panel assigned"
    component: str
    seed: int
    panellists: list[str]

    def inputs(self) -> dict[str, Any]:
        return {"component": self.component, "seed": self.seed, "panellists": self.panellists}


class PanelChanged(JourneyEvent, frozen=True):
    """A conflict recorded or a review made: who is out, who is drawn next, what was struck."""

    stage = Stage.SKB
    outcome = "panel changed"
    component: str
    cause: Report  # the conflict declaration or the review
    panellists: list[str]  # the panel as it stands now
    struck: float | None = None  # a score the change struck out

    def actor(self) -> str:
        return self.cause.reported_by

    def inputs(self) -> dict[str, Any]:
        return {
            **self.cause.record(),
            "panel": self.panellists,
            "struck_score": self.struck,
        }


def recorded_panels(decisions: Iterable[Decision]) -> dict[str, list[str]]:
    """Each panel component's panel as `decisions` (a journey's trail, or part of it) leave it: the
    last draw or change of each, in the order recorded."""
    panels: dict[str, list[str]] = {}
    for d in decisions:
        if PanelAssigned.matches(d):
            panels[str(d.input["component"])] = [str(p) for p in d.input["panellists"]]
        elif PanelChanged.matches(d):
            panels[str(d.input["component"])] = [str(p) for p in d.input["panel"]]
    return panels


class PanelScoreRefused(JourneyEvent, frozen=True):
    """A panel score from a panellist with a conflict of interest: taken into the record only."""

    stage = Stage.SKB
    outcome = "score refused"
    report: Report
    reason: str

    def actor(self) -> str:
        return self.report.reported_by

    def inputs(self) -> dict[str, Any]:
        return {**self.report.record(), "reason": self.reason}


class PanelScoreFlagged(JourneyEvent, frozen=True):
    """A panel score far from the rest of its panel: the committee reviews it before SKB closes."""

    stage = Stage.SKB
    outcome = "score flagged"
    component: str
    panellist: str
    reason: str

    def inputs(self) -> dict[str, Any]:
        return {"component": self.component, "panellist": self.panellist, "reason": self.reason}


class PanelFlagUnreviewed(JourneyEvent, frozen=True):
    """SKB closed with a flagged score the committee did not review: it counts as it is."""

    stage = Stage.SKB
    outcome = "flag not reviewed"
    component: str
    panellist: str

    def inputs(self) -> dict[str, Any]:
        return {"component": self.component, "panellist": self.panellist}


class FinalAppealDecided(JourneyEvent, frozen=True):
    """The instansi answered a sanggah against the final result; an accepted one may correct
    SKB scores, and then the final score is integrated again."""

    stage = Stage.FINAL_APPEAL
    answer: AppealAnswer
    old_final_score: str | None = None
    new_final_score: str | None = None

    def code(self) -> str:
        return "accepted" if self.answer.accepted else "rejected"

    @classmethod
    def matches(cls, record: Decision) -> bool:
        return record.stage == cls.stage and record.outcome in ("accepted", "rejected")

    def actor(self) -> str:
        return self.answer.reported_by

    def inputs(self) -> dict[str, Any]:
        return {
            **self.answer.record(),
            "old_final_score": self.old_final_score,
            "new_final_score": self.new_final_score,
        }


class FinalAppealUnanswered(_Reasoned, frozen=True):
    """A sanggah against the final result that was not answered in time: the result stands."""

    stage = Stage.FINAL_APPEAL
    outcome = "not answered"


class FinalConfirmed(JourneyEvent, frozen=True):
    """The ranking after the final sanggah: the result as it stands from now on."""

    stage = Stage.FINAL_APPEAL
    final_code: FinalCode
    announcement_id: str
    final_score: str | None
    changed: bool  # the ranking again turned this applicant's result around

    def code(self) -> str:
        return self.final_code.value

    def actor(self) -> str:
        return "formasi"

    def inputs(self) -> dict[str, Any]:
        return {
            "announcement_id": self.announcement_id,
            "final_score": self.final_score,
            "changed": self.changed,
        }


class OfferAnswered(JourneyEvent, frozen=True):
    """The applicant accepted or declined an optimalisasi seat (unanswered counts as declined)."""

    stage = Stage.OPTIMALISASI
    accepted: bool
    answered_by: str
    offer_id: str
    to_formasi: str
    answered: bool

    def code(self) -> str:
        return "accepted" if self.accepted else "declined"

    def actor(self) -> str:
        return self.answered_by

    def inputs(self) -> dict[str, Any]:
        return {"offer_id": self.offer_id, "to_formasi": self.to_formasi, "answered": self.answered}


# --- filing, NIP, appointment, probation --------------------------------------------------------


class FilingIncomplete(JourneyEvent, frozen=True):
    stage = Stage.FILING
    outcome = "incomplete"
    missing: list[str]
    reported_by: str

    def actor(self) -> str:
        return self.reported_by

    def inputs(self) -> dict[str, Any]:
        return {"missing": self.missing}


class FilingCompleted(JourneyEvent, frozen=True):
    stage = Stage.FILING
    outcome = "complete"
    reported_by: str

    def actor(self) -> str:
        return self.reported_by


class NipIssued(JourneyEvent, frozen=True):
    stage = Stage.NIP
    outcome = "issued"
    nip: str

    def actor(self) -> str:
        return "bkn"

    def inputs(self) -> dict[str, Any]:
        return {"nip": self.nip}


class Appointed(JourneyEvent, frozen=True):
    """The SK CPNS with its TMT."""

    stage = Stage.APPOINTMENT
    outcome = "SK CPNS"
    tmt: date
    formasi: str | None

    def actor(self) -> str:
        return "instansi"

    def inputs(self) -> dict[str, Any]:
        return {"tmt": self.tmt.isoformat(), "formasi": self.formasi}


class LatsarJudged(JourneyEvent, frozen=True):
    stage = Stage.LATSAR
    result: Terminal
    report: LatsarReport

    def code(self) -> str:
        return self.result.value

    def actor(self) -> str:
        return self.report.reported_by

    def inputs(self) -> dict[str, Any]:
        return self.report.record()


# --- at any stage -------------------------------------------------------------------------------


class _AtStage(JourneyEvent, frozen=True):
    """A decision recorded at whatever stage the journey stands."""

    during: Stage

    def at_stage(self) -> Stage:
        return self.during

    @classmethod
    def matches(cls, record: Decision) -> bool:
        return record.outcome == cls.outcome


class TmtMoved(_AtStage, frozen=True):
    outcome = "TMT moved"
    old: date
    new: date
    announcement_id: str

    def actor(self) -> str:
        return "round"

    def inputs(self) -> dict[str, Any]:
        return {
            "from": self.old.isoformat(),
            "to": self.new.isoformat(),
            "announcement_id": self.announcement_id,
        }


class Disqualified(_AtStage, frozen=True):
    outcome = Terminal.DISQUALIFIED.value
    report: Disqualification

    def actor(self) -> str:
        return self.report.reported_by

    def inputs(self) -> dict[str, Any]:
        return self.report.record()


class Withdrew(_AtStage, frozen=True):
    outcome = Terminal.WITHDRAWN.value
    report: Withdrawal
    sanction_rounds: int

    def actor(self) -> str:
        return self.report.reported_by

    def inputs(self) -> dict[str, Any]:
        return {**self.report.record(), "sanction_rounds": self.sanction_rounds}


class SeatGivenBack(_AtStage, frozen=True):
    """An ending accepted before the final result reached the journey, which then named it a winner:
    the seat goes back to the round for optimalisasi (DOMAIN.md stage 9). Not a pass: the
    applicant was never told the result, so a withdrawal is not one after passing."""

    outcome = "seat given back"
    formasi: str
    announcement_id: str

    def actor(self) -> str:
        return "formasi"

    def inputs(self) -> dict[str, Any]:
        return {"formasi": self.formasi, "announcement_id": self.announcement_id}


class SelectionEnded(_AtStage, frozen=True):
    """The journey's terminal outcome, when no decision just made is itself the ending."""

    terminal: Terminal
    reason: str

    def code(self) -> str:
        return self.terminal.value

    def inputs(self) -> dict[str, Any]:
        return {"reason": self.reason}

    @classmethod
    def matches(cls, record: Decision) -> bool:
        return record.actor == "system" and record.outcome in set(Terminal)


class ReportAfterClose(_AtStage, frozen=True):
    """A report the journey accepted after the round had closed its stage: not counted."""

    outcome = "arrived after the close"
    report: Report
    received_at: datetime
    closed_at: datetime

    def actor(self) -> str:
        return self.report.reported_by

    def inputs(self) -> dict[str, Any]:
        return {
            "report_id": self.report.report_id,
            "received_at": self.received_at.isoformat(),
            "closed_at": self.closed_at.isoformat(),
        }


# --- after the journey has ended (workflows/aftermath.py) ---------------------------------------


class _AfterEnd(JourneyEvent, frozen=True):
    """A decision about an applicant whose journey has ended, recorded in the applicant's
    aftermath with what the journey ended as (its terminal and NIP) among its inputs."""

    stage = Stage.ENDED
    terminal: Terminal  # what the journey ended as
    nip: str | None = None  # the NIP the journey issued, if it did

    def ended_as(self) -> dict[str, Any]:
        return {"journey_terminal": self.terminal.value, "nip": self.nip}


class DisqualifiedAfterEnd(_AfterEnd, frozen=True):
    """DIS found after the journey ended (DOMAIN.md: "even after appointment"): the selection's
    result is annulled; the journey's history keeps what it decided then."""

    outcome = Terminal.DISQUALIFIED.value
    report: Disqualification

    def actor(self) -> str:
        return self.report.reported_by

    def inputs(self) -> dict[str, Any]:
        return {**self.report.record(), **self.ended_as()}


class DismissedAfterEnd(_AfterEnd, frozen=True):
    """The instansi dismissed the appointed PNS by decree after the journey ended."""

    outcome = Terminal.DISMISSED.value
    report: Dismissal

    def actor(self) -> str:
        return self.report.reported_by

    def inputs(self) -> dict[str, Any]:
        return {**self.report.record(), **self.ended_as()}
