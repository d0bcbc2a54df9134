"""The applicant's sheet: one frozen record of what is known about one applicant, and the rules
that fold reports into it.

Everything here is pure: the journey workflow keeps one `ApplicantSheet` and replaces it with the
folded one when a report is accepted; the auditor's recompute folds the same reports from a
history into a sheet of its own and gets the same SKB result. Adding a report kind means a model
in `domain/messages.py`, an entry in `REPORT_RULES` below and a line in `domain/protocol.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from pydantic import BaseModel

from domain.administration import admin_decision, appeal_refusal
from domain.appointment import withdrawal_sanction
from domain.codes import AdminDecision, FinalCode, SkdCode, Stage, Terminal
from domain.config import ComponentKind, ReportKind, SkbComponent, days_after
from domain.errors import RuleViolation
from domain.events import Disqualified, JourneyEvent, Withdrew
from domain.integration import final_score
from domain.messages import (
    AdminReport,
    AppealAnswer,
    AppealFiling,
    ChangeKeys,
    CloseWindow,
    ConflictDeclaration,
    Decision,
    Dismissal,
    Disqualification,
    ExtendWindow,
    FilingReport,
    GateReport,
    JourneyRules,
    JourneyState,
    LatsarReport,
    MoveTmt,
    OfferAnswer,
    OptimalisasiOffer,
    PanelReview,
    PanelScoreReport,
    RecordPublication,
    Report,
    SkbScoreReport,
    SkdReport,
    Withdrawal,
    fraction_text,
)
from domain.objectivity import outlier
from domain.panels import assigned_panel
from domain.ranking import FinalEntry
from domain.registration import Registration
from domain.skb import PanelScore, aggregate_panel, skb_outcome, validate_component_score
from domain.skd import SkdKey, SkdScores, passes_threshold, skd_rank_key, validate_skd_scores


class ApplicantSheet(BaseModel, frozen=True, hide_input_in_errors=True):
    """What is known about one applicant: the registration, every accepted report, every code."""

    applicant_id: str
    formasi_code: str
    registration: Registration
    tmt: date
    stage: Stage = Stage.REGISTERED
    admin_report: AdminReport | None = None
    admin: AdminDecision | None = None
    admin_announced_at: datetime | None = None
    appeal: AppealFiling | None = None
    appeal_answer: AppealAnswer | None = None
    skd: SkdReport | None = None
    skd_closed: bool = False
    skd_code: SkdCode | None = None
    skb_scores: dict[str, SkbScoreReport] = {}
    panel: dict[str, dict[str, PanelScoreReport]] = {}
    gates: dict[str, GateReport] = {}
    skb_closed: bool = False
    skb_score: str | None = None
    final_entry: FinalEntry | None = None
    final_code: FinalCode | None = None
    placed_formasi: str | None = None
    offer: OptimalisasiOffer | None = None
    offer_answer: OfferAnswer | None = None
    filing: FilingReport | None = None
    # A late taker's own time to file (patch late-taker-filing-time): its acceptance plus the
    # filing window's length, when its offer carried one.
    file_until: datetime | None = None
    nip: str | None = None
    latsar: LatsarReport | None = None
    ending: Disqualification | Withdrawal | None = None  # accepted, applied at the next step
    # The sanggah against the final result (patch final-sanggah): open from the final announcement
    # until the round confirms the ranking after it.
    final_announced_at: datetime | None = None
    final_sanggah_open: bool = False
    final_appeal: AppealFiling | None = None
    final_appeal_answer: AppealAnswer | None = None
    final_confirmed: bool = False
    # Panels with a pool (issue 16), by component: the seed of this applicant's order, declared
    # conflicts and committee reviews by panellist, flagged scores (panellist -> why) and the
    # scores struck out (a conflict found after scoring, or a review that had it scored again).
    panel_seeds: dict[str, int] = {}
    conflicts: dict[str, dict[str, ConflictDeclaration]] = {}
    reviews: dict[str, dict[str, PanelReview]] = {}
    flags: dict[str, dict[str, str]] = {}
    struck: dict[str, dict[str, PanelScoreReport]] = {}
    received_at: dict[str, datetime] = {}  # report id -> when the journey accepted it
    # Sanggah windows and answer times counted in calendar days of the round's zone, each ending at
    # 24:00 there (domain.config.days_after; patch appeal-days-end-at-midnight). False in journeys
    # recorded before it: a window of 3 days was 72 hours from the announcement.
    deadlines_by_day: bool = False
    terminal: Terminal | None = None
    terminal_reason: str = ""
    sanction_rounds: int = 0

    def but(self, **changes: Any) -> ApplicantSheet:
        """This sheet with some facts changed."""
        return self.model_copy(update=changes)

    @property
    def open(self) -> bool:
        """Neither ended nor about to end."""
        return self.terminal is None and self.ending is None

    @property
    def passed(self) -> bool:
        """Won a seat, in the formasi or by optimalisasi."""
        return self.final_code in (FinalCode.PASSED, FinalCode.PASSED_OPTIMALISASI)

    def skd_scores(self) -> SkdScores | None:
        """The recorded SKD scores, if any."""
        if self.skd is None:
            return None
        return SkdScores(twk=self.skd.twk, tiu=self.skd.tiu, tkp=self.skd.tkp)


# --- refusals: whether a report can be taken now -------------------------------------------------


def _ended(sheet: ApplicantSheet) -> str | None:
    if sheet.open:
        return None
    return f"the journey has ended ({sheet.terminal.value if sheet.terminal else 'ending'})"


def _not_allowed(report: Report, rules: JourneyRules, *kinds: str) -> str | None:
    if any(report.reported_by in rules.reporters.get(k, []) for k in kinds):
        return None
    return f"{report.reported_by} is not allowed to report {kinds[0]} in this round"


def _at_stage(sheet: ApplicantSheet, *stages: Stage) -> str | None:
    if sheet.stage in stages:
        return None
    return f"the applicant is at stage {sheet.stage.value}, not {stages[0].value}"


def _required(
    sheet: ApplicantSheet, report: Report, rules: JourneyRules, kind: str, *stages: Stage
) -> str | None:
    return _ended(sheet) or _not_allowed(report, rules, kind) or _at_stage(sheet, *stages)


def _component(
    sheet: ApplicantSheet,
    report: SkbScoreReport | PanelScoreReport | GateReport,
    rules: JourneyRules,
    kind: ComponentKind,
) -> tuple[SkbComponent | None, str | None]:
    component = rules.skb.component(report.component)
    if component is None:
        return None, f"SKB component {report.component!r} is not part of this round"
    if component.kind != kind:
        return (
            None,
            f"SKB component {component.name} is a {component.kind.value} component, not {kind.value}",
        )
    problem = _required(sheet, report, rules, component.name, Stage.SKB)
    if problem is None and sheet.skb_closed:
        problem = "the SKB window is closed"
    return component, problem


def _score_problem(component: SkbComponent, score: float) -> str | None:
    try:
        validate_component_score(component, score)
    except RuleViolation as exc:
        return str(exc)
    return None


def _recorded_once(
    kind: str, field: str, already: str, *stages: Stage
) -> Callable[[ApplicantSheet, Report, JourneyRules, datetime], str | None]:
    """The refusal of a report taken once, at `stages`, from the identities allowed `kind`."""

    def refusal(sheet: ApplicantSheet, r: Report, rules: JourneyRules, now: datetime) -> str | None:
        problem = _required(sheet, r, rules, kind, *stages)
        if problem is None and getattr(sheet, field) is not None:
            problem = already
        return problem

    return refusal


_refuse_admin = _recorded_once(
    ReportKind.ADMIN,
    "admin_report",
    "an administrative result is already recorded for this applicant",
    Stage.ADMIN_CHECK,
    Stage.REGISTERED,
)
_refuse_filing_once = _recorded_once(
    ReportKind.FILING, "filing", "filing is already recorded", Stage.FILING
)


def _refuse_filing(
    sheet: ApplicantSheet, r: Report, rules: JourneyRules, now: datetime
) -> str | None:
    """A filing taken once, at the filing stage, saying one thing: complete with nothing missing,
    or incomplete naming what is missing (DOMAIN.md stage 10: the DRH and documents, the health
    and drug-free certificates among them). A filing `complete` that lists a missing certificate
    went on to the NIP; one incomplete naming nothing ended TMS-DRH with no reason."""
    assert isinstance(r, FilingReport)
    problem = _refuse_filing_once(sheet, r, rules, now)
    if problem is None and r.complete and r.missing:
        problem = (
            f"a filing reported complete lists {len(r.missing)} missing document(s) "
            f"({', '.join(r.missing)}): report complete = false, or leave missing empty"
        )
    elif problem is None and not r.complete and not r.missing:
        problem = "a filing reported incomplete names no missing document (missing is empty)"
    return problem


_refuse_latsar = _recorded_once(
    ReportKind.LATSAR,
    "latsar",
    "Latsar can be taken only once; a result is already recorded",
    Stage.LATSAR,
)


def _deadline(
    sheet: ApplicantSheet, rules: JourneyRules, at: datetime, span: timedelta
) -> datetime:
    """The end of `span` from `at`, in calendar days when the journey counts them so."""
    return days_after(at, span, rules.timezone) if sheet.deadlines_by_day else at + span


def admin_appeal_closes(sheet: ApplicantSheet, rules: JourneyRules) -> datetime | None:
    """When the sanggah window of the administration result closes (None before it is out)."""
    if sheet.admin_announced_at is None:
        return None
    return _deadline(sheet, rules, sheet.admin_announced_at, rules.appeal.window)


def appeal_answer_due(sheet: ApplicantSheet, rules: JourneyRules, filed: datetime) -> datetime:
    """When the instansi's answer to a sanggah filed at `filed` is due."""
    return _deadline(sheet, rules, filed, rules.appeal.answer_within)


def final_appeal_closes(sheet: ApplicantSheet, rules: JourneyRules) -> datetime | None:
    """When the sanggah window of the final result closes (None before it is out)."""
    if sheet.final_announced_at is None:
        return None
    return _deadline(sheet, rules, sheet.final_announced_at, rules.appeal.window)


def _in_final_sanggah(sheet: ApplicantSheet) -> bool:
    """Whether a sanggah now is against the final result (the administration's is long over)."""
    return sheet.final_announced_at is not None


def _refuse_final_appeal(
    sheet: ApplicantSheet, r: AppealFiling, rules: JourneyRules, now: datetime
) -> str | None:
    """A sanggah against the final result: once, within the window of the final announcement,
    while the round still takes them."""
    problem = _ended(sheet) or _not_allowed(r, rules, ReportKind.PORTAL)
    announced = sheet.final_announced_at
    assert announced is not None
    if problem is None and (not sheet.final_sanggah_open or sheet.final_confirmed):
        problem = "the round takes no sanggah against the final result now"
    if problem is None and sheet.final_appeal is not None:
        problem = "a sanggah against the final result may be filed once"
    closes = final_appeal_closes(sheet, rules)
    assert closes is not None
    if problem is None and now >= closes:
        problem = f"the sanggah window of the final result closed at {closes.isoformat()}"
    return problem


def final_answer_due(sheet: ApplicantSheet, rules: JourneyRules) -> datetime | None:
    """When the instansi's answer to the final sanggah is due (None without one)."""
    if sheet.final_appeal is None:
        return None
    filed = sheet.received_at.get(sheet.final_appeal.report_id)
    return None if filed is None else appeal_answer_due(sheet, rules, filed)


def final_sanggah_over(sheet: ApplicantSheet, rules: JourneyRules) -> datetime | None:
    """When this applicant's final sanggah is over, nothing of it accepted from then on: the filing
    window's end, or the answer's due time when one was filed (both exclusive ends). The round
    confirms the ranking no earlier than this for any applicant (workflows/round.py)."""
    window_end = final_appeal_closes(sheet, rules)
    if window_end is None:
        return None
    due = final_answer_due(sheet, rules)
    return max(window_end, due) if due is not None else window_end


def _refuse_final_answer(
    sheet: ApplicantSheet, r: AppealAnswer, rules: JourneyRules, now: datetime
) -> str | None:
    problem = _ended(sheet) or _not_allowed(r, rules, ReportKind.APPEAL_ANSWER)
    if problem is None and sheet.final_appeal is None:
        problem = "no sanggah against the final result has been filed"
    if problem is None and sheet.final_appeal_answer is not None:
        problem = "the sanggah against the final result is already answered"
    due = final_answer_due(sheet, rules)
    # `due` is an exclusive end (24:00 of the seventh day), as a window's close is.
    if problem is None and (sheet.final_confirmed or (due is not None and now >= due)):
        problem = "the time to answer the sanggah against the final result has passed"
    if problem is None and r.corrected_scores and not r.accepted:
        problem = "a rejected sanggah corrects no score"
    for name, score in r.corrected_scores.items():
        if problem is not None:
            break
        component = rules.skb.component(name)
        if component is None or component.kind == ComponentKind.GATE:
            problem = f"corrected_scores: {name!r} is not a scored SKB component of this round"
        elif not _has_score(sheet, component):
            problem = f"corrected_scores: no {name} score was recorded to correct"
        else:
            problem = _score_problem(component, score)
            if problem is not None:
                problem = f"corrected_scores.{name}: {problem}"
    return problem


def _has_score(sheet: ApplicantSheet, component: SkbComponent) -> bool:
    """Whether the sheet holds a score of `component` to correct: a scored component's report, or
    a panel whose standing scores make its mean (at least `min_panellists`)."""
    if component.kind == ComponentKind.SCORE:
        return component.name in sheet.skb_scores
    return len(sheet.panel.get(component.name, {})) >= component.min_panellists


def _refuse_appeal(
    sheet: ApplicantSheet, r: AppealFiling, rules: JourneyRules, now: datetime
) -> str | None:
    if _in_final_sanggah(sheet):
        return _refuse_final_appeal(sheet, r, rules, now)
    return (
        _ended(sheet)
        or _not_allowed(r, rules, ReportKind.PORTAL)
        or appeal_refusal(
            sheet.admin if sheet.stage == Stage.ADMIN_APPEAL else None,
            sheet.admin_announced_at,
            now,
            rules.appeal.window,
            sheet.appeal is not None,
            admin_appeal_closes(sheet, rules),
        )
    )


def _refuse_appeal_answer(
    sheet: ApplicantSheet, r: AppealAnswer, rules: JourneyRules, now: datetime
) -> str | None:
    if _in_final_sanggah(sheet):
        return _refuse_final_answer(sheet, r, rules, now)
    if r.corrected_scores:
        return "only an answer to a sanggah against the final result corrects scores"
    problem = _required(sheet, r, rules, ReportKind.APPEAL_ANSWER, Stage.ADMIN_APPEAL)
    if problem is None and sheet.appeal is None:
        problem = "no appeal has been filed"
    if problem is None and sheet.appeal_answer is not None:
        problem = "the appeal is already answered"
    return problem


def _refuse_skd(
    sheet: ApplicantSheet, r: SkdReport, rules: JourneyRules, now: datetime
) -> str | None:
    problem = _required(sheet, r, rules, ReportKind.SKD, Stage.SKD)
    if problem is None and sheet.skd_closed:
        problem = "the SKD window is closed"
    if problem is None and sheet.skd is not None:
        problem = f"SKD scores are already recorded (report {sheet.skd.report_id})"
    if problem is None:
        try:
            validate_skd_scores(SkdScores(twk=r.twk, tiu=r.tiu, tkp=r.tkp), rules.skd)
        except RuleViolation as exc:
            problem = str(exc)
    return problem


def _refuse_skb_score(
    sheet: ApplicantSheet, r: SkbScoreReport, rules: JourneyRules, now: datetime
) -> str | None:
    component, problem = _component(sheet, r, rules, ComponentKind.SCORE)
    if problem is None and r.component in sheet.skb_scores:
        problem = f"a {r.component} score is already recorded"
    if problem is None and component is not None:
        problem = _score_problem(component, r.score)
    return problem


def panel_of(sheet: ApplicantSheet, component: SkbComponent) -> list[str] | None:
    """The applicant's panel for a component with a pool, as it stands (None: no assignment)."""
    seed = sheet.panel_seeds.get(component.name)
    if not component.assign or seed is None:
        return None
    excluded = set(sheet.conflicts.get(component.name, {})) | {
        p for p, review in sheet.reviews.get(component.name, {}).items() if not review.keep
    }
    return assigned_panel(component.panellists, seed, component.assign, excluded)


def conflict_refusal(sheet: ApplicantSheet, r: Report, rules: JourneyRules) -> str | None:
    """Why a panel score is taken into the record as refused: its panellist declared (or the
    committee found) a conflict of interest with this applicant. None for every other report."""
    if not isinstance(r, PanelScoreReport):
        return None
    conflict = sheet.conflicts.get(r.component, {}).get(r.panellist)
    if conflict is None:
        return None
    return (
        f"panellist {r.panellist} has a conflict of interest with this applicant "
        f"({conflict.kind.value}, recorded by {conflict.reported_by}); the score is refused"
    )


def _refuse_panel(
    sheet: ApplicantSheet, r: PanelScoreReport, rules: JourneyRules, now: datetime
) -> str | None:
    component, problem = _component(sheet, r, rules, ComponentKind.PANEL)
    pooled = component is not None and (component.assign or bool(component.panellists))
    if problem is None and pooled and r.reported_by != r.panellist:
        # First: a pool member naming another panellist learnt from "already scored" whether
        # that one had scored this applicant (review of 12-07).
        problem = _not_own_key(r)
    if problem is None and r.panellist in sheet.panel.get(r.component, {}):
        problem = f"panellist {r.panellist} has already scored this applicant"
    if problem is None and component is not None:
        problem = _score_problem(component, r.score)
    if problem is None and component is not None and component.assign:
        panel = panel_of(sheet, component)
        if r.reported_by != r.panellist:
            problem = _not_own_key(r)
        elif r.panellist in sheet.conflicts.get(r.component, {}):
            problem = None  # taken, and recorded as refused (conflict_refusal)
        elif r.panellist in sheet.reviews.get(r.component, {}):
            problem = f"panellist {r.panellist} was replaced on this panel after a review"
        elif panel is None or r.panellist not in panel:
            problem = f"panellist {r.panellist} is not on this applicant's {r.component} panel"
    elif problem is None and component is not None and component.panellists:
        # A pool and no draw: any of the pool scores, each with their own key (else one key of
        # the pool would make a panel of two under names of its choosing).
        if r.reported_by != r.panellist:
            problem = _not_own_key(r)
        elif r.panellist not in component.panellists:
            problem = f"panellist {r.panellist} is not in the {r.component} panel's pool"
    return problem


def _not_own_key(r: PanelScoreReport) -> str:
    return f"panellist {r.panellist} scores with their own key, not {r.reported_by}'s"


def _panel_sender(r: PanelScoreReport, rules: JourneyRules) -> str | None:
    """A panel score comes from a reporter of its component; on a panel with a pool (drawn or
    not), from the panellist it names."""
    problem = _not_allowed(r, rules, r.component)
    component = rules.skb.component(r.component)
    if problem is None and component is not None and (component.assign or component.panellists):
        problem = None if r.reported_by == r.panellist else _not_own_key(r)
    return problem


def _fold_panel(sheet: ApplicantSheet, r: PanelScoreReport) -> ApplicantSheet:
    """A panel score into the panel; a panellist with a conflict is refused (nothing changes)."""
    if r.panellist in sheet.conflicts.get(r.component, {}):
        return sheet
    panel = {**sheet.panel.get(r.component, {}), r.panellist: r}
    return sheet.but(panel={**sheet.panel, r.component: panel})


def flag_scores(
    sheet: ApplicantSheet, rules: JourneyRules, *, exact: bool = True
) -> ApplicantSheet:
    """Flag the panel scores that differ from the rest of their panel by more than the component's
    margin; a flag stays until reviewed, a score once flagged is not flagged again. `exact=False`:
    in binary floating point, as journeys recorded before patch panel-margin-decimal did
    (domain.objectivity.outlier)."""
    flags = dict(sheet.flags)
    for component in rules.skb.components:
        margin = component.outlier_margin
        scores = sheet.panel.get(component.name, {})
        if margin is None or len(scores) < 2:
            continue
        known = dict(flags.get(component.name, {}))
        values = {p: r.score for p, r in scores.items()}
        for p in outlier(values, margin, exact=exact):
            if p not in known:
                rest = ", ".join(f"{v:g}" for q, v in values.items() if q != p)
                known[p] = (
                    f"{values[p]:g} differs from the rest of the panel ({rest}) by more than {margin:g}"
                )
        flags[component.name] = known
    return sheet.but(flags={c: f for c, f in flags.items() if f})


def _panel_component(
    sheet: ApplicantSheet, r: ConflictDeclaration | PanelReview, rules: JourneyRules
) -> tuple[SkbComponent | None, str | None]:
    component = rules.skb.component(r.component)
    if component is None or component.kind != ComponentKind.PANEL or not component.assign:
        return None, f"{r.component!r} is not a panel component with a pool in this round"
    if r.panellist not in component.panellists:
        return None, f"{r.panellist} is not in the {r.component} panel's pool"
    problem = _ended(sheet) or _at_stage(sheet, Stage.SKB)
    if problem is None and sheet.skb_closed:
        problem = "the SKB window is closed"
    return component, problem


def _refuse_conflict(
    sheet: ApplicantSheet, r: ConflictDeclaration, rules: JourneyRules, now: datetime
) -> str | None:
    _, problem = _panel_component(sheet, r, rules)
    committee = r.reported_by in rules.reporters.get(ReportKind.OPERATOR, [])
    problem = problem or _conflict_sender(r, rules)
    if problem is None and r.panellist in sheet.conflicts.get(r.component, {}):
        problem = f"a conflict of {r.panellist} with this applicant is already recorded"
    if problem is None and not committee and r.panellist in sheet.panel.get(r.component, {}):
        problem = (
            f"panellist {r.panellist} has scored this applicant already: a conflict is declared "
            "before scoring; one found after it is recorded by the committee"
        )
    return problem


def _conflict_sender(r: ConflictDeclaration, rules: JourneyRules) -> str | None:
    """A conflict is declared by the panellist themselves, or recorded by the committee."""
    committee = r.reported_by in rules.reporters.get(ReportKind.OPERATOR, [])
    if r.reported_by != r.panellist and not committee:
        return (
            f"{r.reported_by} may not declare a conflict for {r.panellist}: the panellist "
            "declares their own, the committee records one it finds"
        )
    return None


def _fold_conflict(sheet: ApplicantSheet, r: ConflictDeclaration) -> ApplicantSheet:
    """Record the conflict; a score the panellist gave already is struck out."""
    conflicts = {**sheet.conflicts.get(r.component, {}), r.panellist: r}
    sheet = sheet.but(conflicts={**sheet.conflicts, r.component: conflicts})
    return _strike(sheet, r.component, r.panellist)


def _strike(sheet: ApplicantSheet, component: str, panellist: str) -> ApplicantSheet:
    scores = dict(sheet.panel.get(component, {}))
    score = scores.pop(panellist, None)
    if score is None:
        return sheet
    struck = {**sheet.struck.get(component, {}), panellist: score}
    return sheet.but(
        panel={**sheet.panel, component: scores}, struck={**sheet.struck, component: struck}
    )


def _refuse_review(
    sheet: ApplicantSheet, r: PanelReview, rules: JourneyRules, now: datetime
) -> str | None:
    _, problem = _panel_component(sheet, r, rules)
    problem = problem or _not_allowed(r, rules, ReportKind.OPERATOR)
    if problem is None and r.panellist not in sheet.flags.get(r.component, {}):
        problem = f"no flagged {r.component} score of {r.panellist} to review"
    if problem is None and r.panellist in sheet.reviews.get(r.component, {}):
        problem = f"the flagged score of {r.panellist} is already reviewed"
    return problem


def _fold_review(sheet: ApplicantSheet, r: PanelReview) -> ApplicantSheet:
    """Record the review; a score not kept is struck and the next panellist is drawn."""
    reviews = {**sheet.reviews.get(r.component, {}), r.panellist: r}
    sheet = sheet.but(reviews={**sheet.reviews, r.component: reviews})
    return sheet if r.keep else _strike(sheet, r.component, r.panellist)


def unreviewed_flags(sheet: ApplicantSheet) -> dict[str, list[str]]:
    """Flagged scores the committee has not reviewed yet, by component."""
    out = {
        c: [p for p in flags if p not in sheet.reviews.get(c, {})]
        for c, flags in sheet.flags.items()
    }
    return {c: ps for c, ps in out.items() if ps}


def _refuse_gate(
    sheet: ApplicantSheet, r: GateReport, rules: JourneyRules, now: datetime
) -> str | None:
    _, problem = _component(sheet, r, rules, ComponentKind.GATE)
    if problem is None and r.component in sheet.gates:
        problem = f"a {r.component} result is already recorded"
    return problem


def _refuse_offer_answer(
    sheet: ApplicantSheet, r: OfferAnswer, rules: JourneyRules, now: datetime
) -> str | None:
    problem = _ended(sheet) or _not_allowed(r, rules, ReportKind.PORTAL)
    if problem is None and (sheet.offer is None or sheet.stage != Stage.OPTIMALISASI):
        problem = "there is no optimalisasi offer to answer"
    if problem is None and sheet.offer_answer is not None:
        problem = "the offer is already answered"
    if problem is None and sheet.offer is not None and now >= sheet.offer.answer_by:
        # Past its time the journey declines the offer, whatever comes after: an answer then
        # would be acknowledged as taken and not be (a review found it).
        problem = (
            f"the offer had to be answered by {sheet.offer.answer_by.isoformat()}: it is declined"
        )
    return problem


def _refuse_disqualification(
    sheet: ApplicantSheet, r: Disqualification, rules: JourneyRules, now: datetime
) -> str | None:
    return _ended(sheet) or _not_allowed(r, rules, ReportKind.OPERATOR)


def _refuse_withdrawal(
    sheet: ApplicantSheet, r: Withdrawal, rules: JourneyRules, now: datetime
) -> str | None:
    return _ended(sheet) or _not_allowed(r, rules, ReportKind.PORTAL, ReportKind.OPERATOR)


# --- the table: one entry per report kind --------------------------------------------------------


@dataclass(frozen=True)
class ReportRule:
    """How one kind of report is judged, folded in and acknowledged."""

    refusal: Callable[[ApplicantSheet, Any, JourneyRules, datetime], str | None]
    fold: Callable[[ApplicantSheet, Any], ApplicantSheet]
    label: Callable[[Any], str]  # what the read model files the accepted report under
    effect: Callable[[Any], str]  # the acknowledgement's words


def _set(field: str) -> Callable[[ApplicantSheet, Any], ApplicantSheet]:
    return lambda sheet, report: sheet.but(**{field: report})


def _fixed(text: str) -> Callable[[Any], str]:
    return lambda report: text


REPORT_RULES: dict[type[Report], ReportRule] = {
    AdminReport: ReportRule(
        _refuse_admin,
        _set("admin_report"),
        _fixed("admin"),
        _fixed("administrative result recorded"),
    ),
    AppealFiling: ReportRule(
        _refuse_appeal,
        lambda s, r: s.but(**{"final_appeal" if _in_final_sanggah(s) else "appeal": r}),
        _fixed("appeal"),
        _fixed("appeal filed"),
    ),
    AppealAnswer: ReportRule(
        _refuse_appeal_answer,
        lambda s, r: s.but(
            **{"final_appeal_answer" if _in_final_sanggah(s) else "appeal_answer": r}
        ),
        _fixed("appeal_answer"),
        _fixed("appeal answered"),
    ),
    SkdReport: ReportRule(_refuse_skd, _set("skd"), _fixed("skd"), _fixed("SKD scores recorded")),
    SkbScoreReport: ReportRule(
        _refuse_skb_score,
        lambda s, r: s.but(skb_scores={**s.skb_scores, r.component: r}),
        lambda r: f"skb:{r.component}",
        lambda r: f"SKB {r.component} score recorded",
    ),
    PanelScoreReport: ReportRule(
        _refuse_panel,
        _fold_panel,
        lambda r: f"skb:{r.component}",
        lambda r: f"{r.component} score of panellist {r.panellist} recorded",
    ),
    ConflictDeclaration: ReportRule(
        _refuse_conflict,
        _fold_conflict,
        lambda r: f"conflict:{r.component}",
        lambda r: (
            f"conflict of {r.panellist} recorded; {r.panellist} does not score this applicant"
        ),
    ),
    PanelReview: ReportRule(
        _refuse_review,
        _fold_review,
        lambda r: f"review:{r.component}",
        lambda r: (
            f"flagged score of {r.panellist} kept"
            if r.keep
            else f"flagged score of {r.panellist} struck; the next panellist scores"
        ),
    ),
    GateReport: ReportRule(
        _refuse_gate,
        lambda s, r: s.but(gates={**s.gates, r.component: r}),
        lambda r: f"skb:{r.component}",
        lambda r: f"{r.component} {r.decision.value} recorded",
    ),
    OfferAnswer: ReportRule(
        _refuse_offer_answer,
        _set("offer_answer"),
        _fixed("offer"),
        lambda r: "offer accepted" if r.accept else "offer declined",
    ),
    FilingReport: ReportRule(
        _refuse_filing, _set("filing"), _fixed("filing"), _fixed("filing recorded")
    ),
    LatsarReport: ReportRule(
        _refuse_latsar, _set("latsar"), _fixed("latsar"), _fixed("Latsar result recorded")
    ),
    Disqualification: ReportRule(
        _refuse_disqualification, _set("ending"), _fixed("disqualify"), _fixed("disqualified")
    ),
    Withdrawal: ReportRule(
        _refuse_withdrawal, _set("ending"), _fixed("withdraw"), _fixed("withdrawal recorded")
    ),
}


def rule_for(report: Report) -> ReportRule:
    """The rule of a report's kind."""
    return REPORT_RULES[type(report)]


def refusal(
    sheet: ApplicantSheet, report: Report, rules: JourneyRules, now: datetime
) -> str | None:
    """Why this report cannot be taken now under the rules, or None when it can."""
    return rule_for(report).refusal(sheet, report, rules, now)


def with_report(sheet: ApplicantSheet, report: Report) -> ApplicantSheet:
    """The sheet with an accepted report added."""
    return rule_for(report).fold(sheet, report)


def _from(*kinds: str) -> Callable[[Report, JourneyRules], str | None]:
    return lambda report, rules: _not_allowed(report, rules, *kinds)


def _from_component(report: Any, rules: JourneyRules) -> str | None:
    return _not_allowed(report, rules, report.component)


# Who may send each kind of report: the reporter kinds the refusals above check (an SKB report's
# kind is its component). The round's commands and the aftermath's reports are an operator's, as
# workflows/round.py and domain/aftermath.py check them.
SENDERS: dict[type[Report], Callable[[Any, JourneyRules], str | None]] = {
    AdminReport: _from(ReportKind.ADMIN),
    AppealFiling: _from(ReportKind.PORTAL),
    AppealAnswer: _from(ReportKind.APPEAL_ANSWER),
    SkdReport: _from(ReportKind.SKD),
    SkbScoreReport: _from_component,
    PanelScoreReport: _panel_sender,
    ConflictDeclaration: _conflict_sender,
    PanelReview: _from(ReportKind.OPERATOR),
    GateReport: _from_component,
    OfferAnswer: _from(ReportKind.PORTAL),
    FilingReport: _from(ReportKind.FILING),
    LatsarReport: _from(ReportKind.LATSAR),
    Disqualification: _from(ReportKind.OPERATOR),
    Withdrawal: _from(ReportKind.PORTAL, ReportKind.OPERATOR),
    Dismissal: _from(ReportKind.OPERATOR),
    ExtendWindow: _from(ReportKind.OPERATOR),
    CloseWindow: _from(ReportKind.OPERATOR),
    MoveTmt: _from(ReportKind.OPERATOR),
    ChangeKeys: _from(ReportKind.OPERATOR),
    RecordPublication: _from(ReportKind.OPERATOR),
}


def sender_refusal(report: Report, rules: JourneyRules) -> str | None:
    """Why the identity that sent `report` may not send that kind of report under the rules
    (None when it may): the part of a report's refusal about who sent it, without the stage, the
    window or the content. The auditor checks every recorded report and command with it."""
    senders = SENDERS.get(type(report))
    if senders is None:
        return f"a {type(report).__name__} is no kind of report the round takes"
    return senders(report, rules)


# --- what the formasi ranks by -------------------------------------------------------------------


def _after(sheet: ApplicantSheet, report: Report, closed_at: datetime | None) -> bool:
    """Whether the journey accepted `report` after the round closed its stage at `closed_at`.

    The round closes a stage at one instant; the close reaches each journey a little later, and
    a report accepted in between must not count (it arrived after the stage closed)."""
    received = sheet.received_at.get(report.report_id)
    return closed_at is not None and received is not None and received > closed_at


def close_skd(
    sheet: ApplicantSheet, rules: JourneyRules, closed_at: datetime | None = None
) -> tuple[ApplicantSheet, SkdKey | None, list[Report]]:
    """SKD closes for this applicant (the round closed it at `closed_at`): no more SKD reports;
    the key it ranks by, if any, and the reports that arrived after the close (not counted)."""
    late: list[Report] = []
    if sheet.skd is not None and _after(sheet, sheet.skd, closed_at):
        late, sheet = [sheet.skd], sheet.but(skd=None)
    closed = sheet.but(skd_closed=True)
    return closed, skd_key(closed, rules), late


def skd_key(sheet: ApplicantSheet, rules: JourneyRules) -> SkdKey | None:
    """The SKD key this applicant ranks by, or None when absent, ended or below the threshold."""
    scores = sheet.skd_scores()
    if scores is None or sheet.stage != Stage.SKD or sheet.terminal is not None:
        return None
    if not passes_threshold(scores, sheet.registration.category, rules.skd):
        return None
    return skd_rank_key(scores)


@dataclass(frozen=True)
class SkbResult:
    """The SKB composition: the final entry, or why there is none (TH or TMS-SKB)."""

    entry: FinalEntry | None
    skb_score: str | None = None  # set whenever every component was reported
    failure: Terminal = Terminal.ABSENT
    reason: str = ""


def skb_result(
    sheet: ApplicantSheet, rules: JourneyRules, panels_corrected: Mapping[str, float] | None = None
) -> SkbResult:
    """Compose SKB from the accepted reports, apply the gates and integrate the final score; a
    panel named in `panels_corrected` (an accepted final sanggah, `corrected`) takes that score
    for its mean."""
    if "cat" not in sheet.skb_scores:
        return SkbResult(None, reason="TH: no SKB CAT score when the SKB window closed")
    scores: dict[str, Fraction | float] = {}
    gates: dict[str, AdminDecision] = {}
    missing: list[str] = []
    for c in rules.skb.components:
        if c.kind == ComponentKind.SCORE:
            if c.name in sheet.skb_scores:
                scores[c.name] = sheet.skb_scores[c.name].score
            else:
                missing.append(c.name)
        elif c.kind == ComponentKind.PANEL and panels_corrected and c.name in panels_corrected:
            scores[c.name] = Fraction(str(panels_corrected[c.name]))
        elif c.kind == ComponentKind.PANEL:
            panel = list(sheet.panel.get(c.name, {}).values())
            try:
                scores[c.name] = aggregate_panel(
                    [PanelScore(panellist=p.panellist, score=p.score) for p in panel], c
                )
            except RuleViolation:
                missing.append(f"{c.name} (panel of {len(panel)})")
        elif c.name in sheet.gates:
            gates[c.name] = sheet.gates[c.name].decision
        else:
            missing.append(c.name)
    if missing:
        return SkbResult(
            None,
            failure=Terminal.SKB_GATE_FAILED,
            reason=f"SKB incomplete: {', '.join(missing)} not reported",
        )
    outcome = skb_outcome(scores, gates, rules.skb)
    skb_score = fraction_text(outcome.score)
    if not outcome.passed_gates:
        return SkbResult(
            None,
            skb_score,
            Terminal.SKB_GATE_FAILED,
            "SKB gate failed: " + "; ".join(outcome.gate_failures),
        )
    skd = sheet.skd_scores()
    assert skd is not None, "SKB is reached only with SKD scores"
    reg = sheet.registration
    entry = FinalEntry(
        applicant_id=sheet.applicant_id,
        formasi_code=sheet.formasi_code,
        final_score=final_score(skd.total, outcome.score, rules.integration, rules.skd),
        skd=skd,
        gpa=reg.gpa,
        birth_date=reg.birth_date,
    )
    return SkbResult(entry, skb_score)


def without_late_panel_changes(
    sheet: ApplicantSheet, closed_at: datetime | None
) -> tuple[ApplicantSheet, list[ConflictDeclaration | PanelReview]]:
    """The sheet without the conflict declarations and panel reviews the journey accepted after the
    round closed the SKB at `closed_at`, and those changes, first received first.

    They arrived after the close, as a score then does, and change nothing: a score one of them
    struck stands again, unless a change accepted before the close struck it as well."""
    changes: list[ConflictDeclaration | PanelReview] = [
        *(r for by in sheet.conflicts.values() for r in by.values()),
        *(r for by in sheet.reviews.values() for r in by.values()),
    ]
    late = sorted(
        (r for r in changes if _after(sheet, r, closed_at)),
        key=lambda r: (sheet.received_at[r.report_id], r.report_id),
    )
    if not late:
        return sheet, []
    dropped = {r.report_id for r in late}
    conflicts = {
        c: {p: r for p, r in by.items() if r.report_id not in dropped}
        for c, by in sheet.conflicts.items()
    }
    reviews = {
        c: {p: r for p, r in by.items() if r.report_id not in dropped}
        for c, by in sheet.reviews.items()
    }
    panel = {c: dict(by) for c, by in sheet.panel.items()}
    struck = {c: dict(by) for c, by in sheet.struck.items()}
    for r in late:
        component, panellist = r.component, r.panellist
        review = reviews.get(component, {}).get(panellist)
        still_out = panellist in conflicts.get(component, {}) or (
            review is not None and not review.keep
        )
        score = struck.get(component, {}).pop(panellist, None)
        if score is None:
            continue
        if still_out:
            struck[component][panellist] = score
        else:
            panel.setdefault(component, {})[panellist] = score
    return (
        sheet.but(
            conflicts={c: by for c, by in conflicts.items() if by},
            reviews={c: by for c, by in reviews.items() if by},
            panel=panel,
            struck={c: by for c, by in struck.items() if by},
        ),
        late,
    )


def close_skb(
    sheet: ApplicantSheet, rules: JourneyRules, closed_at: datetime | None = None
) -> tuple[ApplicantSheet, SkbResult, list[Report]]:
    """SKB closes for this applicant (the round closed it at `closed_at`): no more SKB reports;
    composed and gated if still at SKB, without the reports that arrived after the close."""
    late: list[Report] = [
        *(r for r in sheet.skb_scores.values() if _after(sheet, r, closed_at)),
        *(r for p in sheet.panel.values() for r in p.values() if _after(sheet, r, closed_at)),
        *(r for r in sheet.gates.values() if _after(sheet, r, closed_at)),
    ]
    if late:
        dropped = {r.report_id for r in late}
        sheet = sheet.but(
            skb_scores={k: r for k, r in sheet.skb_scores.items() if r.report_id not in dropped},
            panel={
                c: {p: r for p, r in ps.items() if r.report_id not in dropped}
                for c, ps in sheet.panel.items()
            },
            gates={k: r for k, r in sheet.gates.items() if r.report_id not in dropped},
        )
    closed = sheet.but(skb_closed=True, final_entry=None)
    if closed.stage != Stage.SKB or closed.terminal is not None:
        return closed, SkbResult(None), late
    result = skb_result(closed, rules)
    return (
        closed.but(final_entry=result.entry, skb_score=result.skb_score or closed.skb_score),
        result,
        late,
    )


def corrected(sheet: ApplicantSheet, rules: JourneyRules) -> tuple[ApplicantSheet, SkbResult]:
    """The sheet with the scores an accepted final sanggah corrected, and its SKB composed again.

    The corrected score replaces the recorded one (the answer's record keeps both: the decision
    records the old and the new). A panel's corrected score replaces the panel's mean; each
    panellist's score stays as recorded, for audit. The entry is None when the correction fails a
    gate or a floor.
    """
    answer = sheet.final_appeal_answer
    assert answer is not None and answer.accepted and answer.corrected_scores
    scores = {
        name: report.model_copy(update={"score": answer.corrected_scores.get(name, report.score)})
        for name, report in sheet.skb_scores.items()
    }
    fixed = sheet.but(skb_scores=scores)
    panels = {
        c.name: answer.corrected_scores[c.name]
        for c in rules.skb.components
        if c.kind == ComponentKind.PANEL and c.name in answer.corrected_scores
    }
    result = skb_result(fixed, rules, panels)
    return (
        fixed.but(final_entry=result.entry, skb_score=result.skb_score or fixed.skb_score),
        result,
    )


def skb_inputs(sheet: ApplicantSheet) -> dict[str, Any]:
    """Every SKB input as recorded with the SKB decision."""
    return {
        "scores": {k: v.score for k, v in sheet.skb_scores.items()},
        "panel": {k: {p: r.score for p, r in v.items()} for k, v in sheet.panel.items()},
        "gates": {k: v.decision.value for k, v in sheet.gates.items()},
    }


def admin_result(sheet: ApplicantSheet) -> AdminDecision:
    """MS or TMS from the recorded administrative report (TMS when none came)."""
    if sheet.admin_report is None:
        return AdminDecision.TMS
    return admin_decision(list(sheet.admin_report.findings))


def journey_state(sheet: ApplicantSheet, round_id: str, decisions: list[Decision]) -> JourneyState:
    """What the journey's `state` query answers: the stage, every code and the decision trail."""
    scores = sheet.skd_scores()
    return JourneyState(
        round_id=round_id,
        applicant_id=sheet.applicant_id,
        formasi_code=sheet.formasi_code,
        stage=sheet.stage,
        admin=sheet.admin,
        skd_code=sheet.skd_code,
        skd_total=scores.total if scores else None,
        skb_score=sheet.skb_score,
        final_score=fraction_text(sheet.final_entry.final_score) if sheet.final_entry else None,
        final_code=sheet.final_code,
        placed_formasi=sheet.placed_formasi,
        nip=sheet.nip,
        tmt=sheet.tmt,
        terminal=sheet.terminal,
        terminal_reason=sheet.terminal_reason,
        sanction_rounds=sheet.sanction_rounds,
        decisions=list(decisions),
        admin_announced_at=sheet.admin_announced_at,
        appeal_filed_at=sheet.received_at.get(sheet.appeal.report_id) if sheet.appeal else None,
        appeal_answered=sheet.appeal_answer is not None,
        offer=sheet.offer.model_copy(update={"seal": ""}) if sheet.offer else None,
        file_until=sheet.file_until,
        offer_answered=sheet.offer_answer is not None,
        ending_pending=sheet.ending is not None and sheet.terminal is None,
        final_announced_at=sheet.final_announced_at if sheet.final_sanggah_open else None,
        final_appeal_filed_at=(
            sheet.received_at.get(sheet.final_appeal.report_id) if sheet.final_appeal else None
        ),
        final_appeal_answered=sheet.final_appeal_answer is not None,
        final_confirmed=sheet.final_confirmed,
        deadlines_by_day=sheet.deadlines_by_day,
    )


def ending(sheet: ApplicantSheet, rules: JourneyRules) -> tuple[JourneyEvent, Terminal, str]:
    """The decision an accepted disqualification or withdrawal comes to, with its terminal outcome.

    DIS applies at any stage, even after the NIP. A withdrawal after winning a seat (P/L, P/L-2)
    bars the applicant from the next rounds (`withdrawal_sanction_rounds`).
    """
    report = sheet.ending
    assert report is not None, "an ending is applied only once accepted"
    if isinstance(report, Disqualification):
        return (
            Disqualified(during=sheet.stage, report=report),
            Terminal.DISQUALIFIED,
            f"DIS: {report.reason}",
        )
    sanction = withdrawal_sanction(sheet.passed, rules.withdrawal_sanction_rounds)
    reason = "APS: withdrew" + (f"; barred from the next {sanction} rounds" if sanction else "")
    return (
        Withdrew(during=sheet.stage, report=report, sanction_rounds=sanction),
        Terminal.WITHDRAWN,
        reason,
    )
