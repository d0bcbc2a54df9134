"""ApplicantJourney: one applicant's way through the round, from registration to PNS.

The run method reads as the process. Reports from services arrive as validated updates: a
refused report leaves no trace; a repeated report returns its first answer. Announcements
from the applicant's formasi and from the round arrive as signals.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.contracts import JourneyProjection, NipIssued, NipRequest, Notification
    from domain.administration import admin_decision, appeal_outcome, appeal_refusal
    from domain.appointment import probation_outcome, withdrawal_sanction
    from domain.codes import AdminDecision, FinalCode, SkdCode, Stage, Terminal
    from domain.config import ComponentKind, ReportKind
    from domain.errors import RuleViolation
    from domain.integration import final_score
    from domain.messages import (
        Ack,
        AdminReport,
        Announcement,
        AppealAnswer,
        AppealFiling,
        CloseReply,
        Decision,
        Disqualification,
        FilingReport,
        FinalEntryReply,
        GateReport,
        JourneyStart,
        JourneyState,
        LatsarReport,
        OfferAnswer,
        OfferReply,
        OptimalisasiOffer,
        PanelScoreReport,
        Report,
        SeatVacated,
        SkbScoreReport,
        SkdEntryReply,
        SkdReport,
        Withdrawal,
        fraction_text,
    )
    from domain.ranking import FinalEntry, skd_code
    from domain.registration import check_registration
    from domain.skb import PanelScore, aggregate_panel, skb_outcome, validate_component_score
    from domain.skd import SkdScores, passes_threshold, skd_rank_key, validate_skd_scores
    from workflows.ids import formasi_workflow_id, round_workflow_id
    from workflows.ledger import Ledger, decision

PROJECT_TIMEOUT = timedelta(seconds=30)
NIP_TIMEOUT = timedelta(seconds=30)
ENGINE_VERSION = 2  # what RecruitmentApi starts new journeys with (see JourneyStart.engine_version)

# Patches that engine 2 applies without a marker. A new patch is added to neither list: it is
# called with workflow.patched until the next engine version folds it in.
ENGINE_2_PATCHES = frozenset(
    {"project-at-rest", "reply-after-end", "record-every-ending", "nip-local-activity"}
)

# Announcements a journey can no longer use once it is at one of these stages. Formasi runs
# between the patches broadcast-to-waiting and announce-without-asking asked each journey
# (`waits_for`) and skipped those; later runs tell every journey, which costs less.
PAST_PHASE: dict[str, frozenset[Stage]] = {
    "optimalisasi_closed": frozenset({Stage.FILING, Stage.NIP, Stage.APPOINTMENT, Stage.LATSAR, Stage.ENDED}),
    "filing_closed": frozenset({Stage.NIP, Stage.APPOINTMENT, Stage.LATSAR, Stage.ENDED}),
}
CLOSES = ("skd_closed", "skb_closed")


class JourneyEnded(Exception):
    """Raised inside the run when a disqualification or withdrawal ends the journey."""


@workflow.defn
class ApplicantJourney:
    """The applicant's own state machine; its history is the applicant's audit trail."""

    @workflow.init
    def __init__(self, start: JourneyStart) -> None:
        self.start = start
        self.rules = start.rules
        self.stage = Stage.REGISTERED
        self.decisions: list[Decision] = []
        self.ledger = Ledger("report", f" for applicant {start.applicant_id}", "ReportRefused")
        self.announcements: dict[str, Announcement] = {}
        self.admin_report: AdminReport | None = None
        self.admin: AdminDecision | None = None
        self.admin_announced_at: datetime | None = None
        self.appeal: AppealFiling | None = None
        self.appeal_answer: AppealAnswer | None = None
        self.skd: SkdReport | None = None
        self.skd_closed = False
        self.skd_code: SkdCode | None = None
        self.skb_scores: dict[str, SkbScoreReport] = {}
        self.panel: dict[str, dict[str, PanelScoreReport]] = {}
        self.gates: dict[str, GateReport] = {}
        self.skb_closed = False
        self.skb_score: str | None = None
        self.final_entry: FinalEntry | None = None
        self.final_code: FinalCode | None = None
        self.placed_formasi: str | None = None
        self.offer: OptimalisasiOffer | None = None
        self.offer_answer: OfferAnswer | None = None
        self.filing: FilingReport | None = None
        self.nip: str | None = None
        self.tmt = start.tmt
        self.tmt_moves_seen: list[str] = []  # ids of TMT announcements already applied
        self.latsar: LatsarReport | None = None
        self.terminal: Terminal | None = None
        self.terminal_reason = ""
        self.sanction_rounds = 0
        self.ending: Report | None = None  # a disqualification or withdrawal waiting to be applied
        self.version = 0
        self.projected_decisions = 0
        self.pending_notifications: list[Notification] = []
        self.pending_reports: list[tuple[str, str, dict]] = []
        self._skb_failure: tuple[Terminal, str] = (Terminal.ABSENT, "")
        self.project_at_rest = False
        self.unprojected = False
        self.close_replies: dict[str, CloseReply] = {}

    # --- the process -----------------------------------------------------------------------

    @workflow.run
    async def run(self, start: JourneyStart) -> JourneyState:
        # Project the read model when the journey comes to rest (before it waits), not after
        # every step: fewer local activities per journey. Older histories project eagerly.
        self.project_at_rest = self._patched("project-at-rest")
        try:
            self._judge_eligibility()
            self._decide(Stage.REGISTERED, "registered", start.registered_by, {"formasi": start.formasi.code})
            self._notify("registered", f"Registration {start.applicant_id} accepted for formasi {start.formasi.code}.")
            await self.administrative_check()
            await self.skd_stage()
            await self.skb_stage()
            await self.final_outcome()
            await self.filing_stage()
            await self.appointment()
            await self.probation()
        except JourneyEnded:
            pass
        self.stage = Stage.ENDED
        await self._write_projection()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    def _judge_eligibility(self) -> None:
        """The registration rules again, on the date the API judged them: a refusal ends the journey.

        RecruitmentApi refuses an ineligible registration before any journey starts; this keeps a
        journey started some other way from carrying one forward.
        """
        if self.start.applied_on is None:
            return
        refusals = check_registration(self.start.registration, self.start.formasi, self.start.applied_on)
        if refusals:
            self._decide(Stage.REGISTERED, "refused", "system", {
                "applied_on": self.start.applied_on.isoformat(),
                "refusals": [r.model_dump() for r in refusals],
            })
            self._end(Terminal.TMS, "registration refused: " + "; ".join(str(r) for r in refusals))

    async def administrative_check(self) -> None:
        """MS/TMS when the administration announcement is out; a TMS may be appealed once."""
        self.stage = Stage.ADMIN_CHECK
        await self._project()
        announcement = await self._announcement("administration")
        self.admin_announced_at = announcement.at
        if self.admin_report is None:
            self.admin = AdminDecision.TMS
            self._decide(Stage.ADMIN_CHECK, "TMS", "system", {"reason": "no decision before the window closed"})
        else:
            self.admin = admin_decision(list(self.admin_report.findings))
            self._decide(
                Stage.ADMIN_CHECK,
                self.admin.value,
                self.admin_report.reported_by,
                self.admin_report.model_dump(mode="json"),
            )
        self._notify(f"admin-{self.admin.value}", f"Administrative check: {self.admin.value}.")
        if self.admin == AdminDecision.TMS:
            self.stage = Stage.ADMIN_APPEAL
        await self._project()
        if self.admin == AdminDecision.MS:
            return
        window_end = announcement.at + self.rules.appeal.window
        filed = await self._wait(lambda: self.appeal is not None, until=window_end)
        if not filed:
            self._end(Terminal.TMS, "TMS; no appeal within the appeal window")
        answer_by = workflow.now() + self.rules.appeal.answer_within
        answered = await self._wait(lambda: self.appeal_answer is not None, until=answer_by)
        if not answered:
            self._end(Terminal.TMS, "TMS; the appeal was not answered within its time")
        assert self.appeal_answer is not None
        self.admin = appeal_outcome(self.appeal_answer.accepted)
        self._decide(
            Stage.ADMIN_APPEAL,
            self.admin.value,
            self.appeal_answer.reported_by,
            self.appeal_answer.model_dump(mode="json"),
        )
        if self.admin == AdminDecision.TMS:
            self._end(Terminal.TMS, f"TMS; appeal rejected: {self.appeal_answer.note}")
        self._notify("appeal-accepted", "Your appeal was accepted: MS.")
        await self._project()

    async def skd_stage(self) -> None:
        """SKD result or TH at the close; P/L goes on, P, T/L and TH end here."""
        self.stage = Stage.SKD
        await self._project()
        await self._wait(lambda: self.skd_closed)
        if self.skd is None:
            self.skd_code = SkdCode.ABSENT
            self._decide(Stage.SKD, "TH", "system", {"reason": "no SKD result when the SKD window closed"})
            self._end(Terminal.ABSENT, "TH: did not sit the SKD")
        scores = self._skd_scores()
        passed = passes_threshold(scores, self.start.registration.category, self.rules.skd)
        self.stage = Stage.SKD_RANKING
        result = await self._announcement("skd_result")
        self.skd_code = skd_code(passed, skd_rank_key(scores), result.cut_key)
        self._decide(
            Stage.SKD_RANKING,
            self.skd_code.value,
            "formasi",
            {
                "twk": scores.twk,
                "tiu": scores.tiu,
                "tkp": scores.tkp,
                "total": scores.total,
                "category": self.start.registration.category.value,
                "cut_key": list(result.cut_key) if result.cut_key else None,
                "announcement_id": result.announcement_id,
            },
        )
        self._notify(f"skd-{self.skd_code.value}", f"SKD result: {self.skd_code.value}, total {scores.total}.")
        if self.skd_code == SkdCode.FAILED:
            self._end(Terminal.SKD_FAILED, "T/L: below the SKD threshold of the category")
        if self.skd_code == SkdCode.PASSED:
            self._end(Terminal.SKD_PASSED_OUTSIDE_CUT, "P: passed the threshold, outside the SKB cut")
        await self._project()

    async def skb_stage(self) -> None:
        """SKB components within the SKB window; the composition and gates are applied at the close."""
        self.stage = Stage.SKB
        await self._project()
        await self._wait(lambda: self.skb_closed)
        # The reply to the formasi was sent when the close arrived; here the trail records why.
        if self.final_entry is None:
            code, reason = self._skb_failure
            self.final_code = FinalCode.ABSENT if code == Terminal.ABSENT else FinalCode.GATE_FAILED
            self._decide(Stage.SKB, self.final_code.value, "system", {"reason": reason})
            self._end(code, reason)
        self._decide(
            Stage.SKB,
            "completed",
            "system",
            {
                "skb_score": self.skb_score,
                "final_score": fraction_text(self.final_entry.final_score),
                "components": self._skb_inputs(),
            },
        )
        await self._project()

    async def final_outcome(self) -> None:
        """P/L by rank within the quota; otherwise wait for optimalisasi until the round ends it."""
        self.stage = Stage.FINAL_RANKING
        result = await self._announcement("final_result")
        if self.start.applicant_id in result.winners:
            self.final_code = FinalCode.PASSED
            self.placed_formasi = self.start.formasi.code
        else:
            self.final_code = FinalCode.NOT_PASSED
        self._decide(
            Stage.FINAL_RANKING,
            self.final_code.value,
            "formasi",
            {"announcement_id": result.announcement_id, "final_score": self.state().final_score},
        )
        self._notify(f"final-{self.final_code.value}", f"Final result: {self.final_code.value}.")
        await self._project()
        if self.final_code == FinalCode.PASSED:
            return
        self.stage = Stage.OPTIMALISASI
        while True:
            await self._wait(lambda: self.offer is not None or "optimalisasi_closed" in self.announcements)
            if self.offer is None:
                self._end(Terminal.NOT_PASSED, "TL: lost on rank; no optimalisasi seat")
            offer = self.offer
            answered = await self._wait(lambda: self.offer_answer is not None, until=offer.answer_by)
            accepted = bool(answered and self.offer_answer and self.offer_answer.accept)
            actor = self.offer_answer.reported_by if self.offer_answer else "system"
            await workflow.get_external_workflow_handle(round_workflow_id(self.start.round_id)).signal(
                "offer_reply",
                OfferReply(offer_id=offer.offer_id, applicant_id=self.start.applicant_id, accepted=accepted),
            )
            self._decide(
                Stage.OPTIMALISASI,
                "accepted" if accepted else "declined",
                actor,
                {"offer_id": offer.offer_id, "to_formasi": offer.to_formasi, "answered": bool(answered)},
            )
            if accepted:
                self.final_code = FinalCode.PASSED_OPTIMALISASI
                self.placed_formasi = offer.to_formasi
                self._notify("final-P/L-2", f"Optimalisasi: seat in formasi {offer.to_formasi} (P/L-2).")
                await self._project()
                return
            self._end(Terminal.NOT_PASSED, "TL: declined the optimalisasi offer")

    async def filing_stage(self) -> None:
        """Pemberkasan (DRH and documents) before the filing window closes."""
        self.stage = Stage.FILING
        await self._project()
        await self._wait(lambda: self.filing is not None or "filing_closed" in self.announcements)
        if self.filing is None or not self.filing.complete:
            missing = self.filing.missing if self.filing else ["DRH"]
            self._decide(Stage.FILING, "incomplete", self.filing.reported_by if self.filing else "system",
                         {"missing": missing})
            self._end(Terminal.FILING_INCOMPLETE, f"filing incomplete: {', '.join(missing)}")
        self._decide(Stage.FILING, "complete", self.filing.reported_by, {})

    async def appointment(self) -> None:
        """NIP from BKN (once per person, whatever retries) and the SK CPNS with its TMT."""
        self.stage = Stage.NIP
        reg = self.start.registration
        request = NipRequest(
            round_id=self.start.round_id,
            applicant_id=self.start.applicant_id,
            birth_date=reg.birth_date,
            tmt=self.tmt,
            gender=reg.gender,
        )
        retry = RetryPolicy(maximum_interval=timedelta(seconds=30))
        issued: NipIssued
        if self._patched("nip-local-activity"):
            # The NIP service is idempotent per person, so a local activity (one marker, no
            # activity task, no extra workflow task) is as safe as an activity and cheaper.
            issued = await workflow.execute_local_activity(
                "issue_nip", request, result_type=NipIssued, start_to_close_timeout=NIP_TIMEOUT, retry_policy=retry
            )
        else:
            issued = await workflow.execute_activity(
                "issue_nip", request, result_type=NipIssued, start_to_close_timeout=NIP_TIMEOUT, retry_policy=retry
            )
        self.nip = issued.nip
        self._decide(Stage.NIP, "issued", "bkn", {"nip": issued.nip})
        self.stage = Stage.APPOINTMENT
        self._decide(Stage.APPOINTMENT, "SK CPNS", "instansi",
                     {"tmt": self.tmt.isoformat(), "formasi": self.placed_formasi})
        self._notify("appointed", f"Appointed CPNS, NIP {issued.nip}, TMT {self.tmt.isoformat()}.")
        await self._project()

    async def probation(self) -> None:
        """One year as CPNS with Latsar: PNS, or dismissed."""
        self.stage = Stage.LATSAR
        await self._project()
        await self._wait(lambda: self.latsar is not None)
        assert self.latsar is not None
        outcome = probation_outcome(self.latsar.passed, self.latsar.healthy)
        self._decide(Stage.LATSAR, outcome.value, self.latsar.reported_by, self.latsar.model_dump(mode="json"))
        reason = "PNS: passed Latsar" if outcome == Terminal.PNS else "dismissed: Latsar or health not passed"
        self._end(outcome, reason)

    # --- reports from services (updates with validators) ------------------------------------

    @workflow.update
    def report_admin(self, report: AdminReport) -> Ack:
        """The instansi's MS/TMS with a reason per failing document."""
        return self._accept(report, "admin", lambda: setattr(self, "admin_report", report), "administrative result recorded")

    @report_admin.validator
    def validate_report_admin(self, report: AdminReport) -> None:
        if self._check_repeat(report):
            return
        self._require(ReportKind.ADMIN, report, Stage.ADMIN_CHECK, Stage.REGISTERED)
        if self.admin_report is not None:
            self._refuse(report, "an administrative result is already recorded for this applicant")

    @workflow.update
    def file_appeal(self, filing: AppealFiling) -> Ack:
        """The applicant's sanggah against the TMS result."""
        return self._accept(filing, "appeal", lambda: setattr(self, "appeal", filing), "appeal filed")

    @file_appeal.validator
    def validate_file_appeal(self, filing: AppealFiling) -> None:
        if self._check_repeat(filing):
            return
        self._check_open(filing)
        self._allowed(ReportKind.PORTAL, filing)
        refusal = appeal_refusal(
            self.admin if self.stage == Stage.ADMIN_APPEAL else None,
            self.admin_announced_at,
            workflow.now(),
            self.rules.appeal.window,
            self.appeal is not None,
        )
        if refusal:
            self._refuse(filing, refusal)

    @workflow.update
    def answer_appeal(self, answer: AppealAnswer) -> Ack:
        """The instansi's answer to the sanggah."""
        return self._accept(answer, "appeal_answer", lambda: setattr(self, "appeal_answer", answer), "appeal answered")

    @answer_appeal.validator
    def validate_answer_appeal(self, answer: AppealAnswer) -> None:
        if self._check_repeat(answer):
            return
        self._require(ReportKind.APPEAL_ANSWER, answer, Stage.ADMIN_APPEAL)
        if self.appeal is None:
            self._refuse(answer, "no appeal has been filed")
        if self.appeal_answer is not None:
            self._refuse(answer, "the appeal is already answered")

    @workflow.update
    def report_skd(self, report: SkdReport) -> Ack:
        """Scores of the applicant's SKD sitting from the CAT system."""
        return self._accept(report, "skd", lambda: setattr(self, "skd", report), "SKD scores recorded")

    @report_skd.validator
    def validate_report_skd(self, report: SkdReport) -> None:
        if self._check_repeat(report):
            return
        self._require(ReportKind.SKD, report, Stage.SKD)
        if self.skd_closed:
            self._refuse(report, "the SKD window is closed")
        if self.skd is not None:
            self._refuse(report, f"SKD scores are already recorded (report {self.skd.report_id})")
        try:
            validate_skd_scores(SkdScores(twk=report.twk, tiu=report.tiu, tkp=report.tkp), self.rules.skd)
        except RuleViolation as exc:
            self._refuse(report, str(exc))

    @workflow.update
    def report_skb_score(self, report: SkbScoreReport) -> Ack:
        """A score of one SKB component (CAT or another scored component)."""
        return self._accept(report, f"skb:{report.component}", lambda: self.skb_scores.__setitem__(report.component, report),
                            f"SKB {report.component} score recorded")

    @report_skb_score.validator
    def validate_report_skb_score(self, report: SkbScoreReport) -> None:
        if self._check_repeat(report):
            return
        component = self._skb_component(report, report.component, ComponentKind.SCORE)
        if report.component in self.skb_scores:
            self._refuse(report, f"a {report.component} score is already recorded")
        self._check_score(report, component, report.score)

    @workflow.update
    def report_panel_score(self, report: PanelScoreReport) -> Ack:
        """One interview panellist's score; every panellist's score is kept."""
        return self._accept(
            report,
            f"skb:{report.component}",
            lambda: self.panel.setdefault(report.component, {}).__setitem__(report.panellist, report),
            f"{report.component} score of panellist {report.panellist} recorded",
        )

    @report_panel_score.validator
    def validate_report_panel_score(self, report: PanelScoreReport) -> None:
        if self._check_repeat(report):
            return
        component = self._skb_component(report, report.component, ComponentKind.PANEL)
        if report.panellist in self.panel.get(report.component, {}):
            self._refuse(report, f"panellist {report.panellist} has already scored this applicant")
        self._check_score(report, component, report.score)

    @workflow.update
    def report_gate(self, report: GateReport) -> Ack:
        """An MS/TMS gate result (the health test)."""
        return self._accept(report, f"skb:{report.component}", lambda: self.gates.__setitem__(report.component, report),
                            f"{report.component} {report.decision.value} recorded")

    @report_gate.validator
    def validate_report_gate(self, report: GateReport) -> None:
        if self._check_repeat(report):
            return
        self._skb_component(report, report.component, ComponentKind.GATE)
        if report.component in self.gates:
            self._refuse(report, f"a {report.component} result is already recorded")

    @workflow.update
    def answer_offer(self, answer: OfferAnswer) -> Ack:
        """The applicant accepts or declines an optimalisasi offer."""
        return self._accept(answer, "offer", lambda: setattr(self, "offer_answer", answer),
                            "offer accepted" if answer.accept else "offer declined")

    @answer_offer.validator
    def validate_answer_offer(self, answer: OfferAnswer) -> None:
        if self._check_repeat(answer):
            return
        self._check_open(answer)
        self._allowed(ReportKind.PORTAL, answer)
        if self.offer is None or self.stage != Stage.OPTIMALISASI:
            self._refuse(answer, "there is no optimalisasi offer to answer")
        if self.offer_answer is not None:
            self._refuse(answer, "the offer is already answered")

    @workflow.update
    def report_filing(self, report: FilingReport) -> Ack:
        """Pemberkasan result: DRH and documents complete, or what is missing."""
        return self._accept(report, "filing", lambda: setattr(self, "filing", report), "filing recorded")

    @report_filing.validator
    def validate_report_filing(self, report: FilingReport) -> None:
        if self._check_repeat(report):
            return
        self._require(ReportKind.FILING, report, Stage.FILING)
        if self.filing is not None:
            self._refuse(report, "filing is already recorded")

    @workflow.update
    def report_latsar(self, report: LatsarReport) -> Ack:
        """The training agency's Latsar result."""
        return self._accept(report, "latsar", lambda: setattr(self, "latsar", report), "Latsar result recorded")

    @report_latsar.validator
    def validate_report_latsar(self, report: LatsarReport) -> None:
        if self._check_repeat(report):
            return
        self._require(ReportKind.LATSAR, report, Stage.LATSAR)
        if self.latsar is not None:
            self._refuse(report, "Latsar can be taken only once; a result is already recorded")

    @workflow.update
    def disqualify(self, report: Disqualification) -> Ack:
        """DIS at any stage, even after the NIP."""
        return self._accept(report, "disqualify", lambda: self._apply_ending(report), "disqualified")

    @disqualify.validator
    def validate_disqualify(self, report: Disqualification) -> None:
        if self._check_repeat(report):
            return
        self._check_open(report)
        self._allowed(ReportKind.OPERATOR, report)

    @workflow.update
    def withdraw(self, report: Withdrawal) -> Ack:
        """The applicant withdraws; after passing this bars them from the next rounds."""
        return self._accept(report, "withdraw", lambda: self._apply_ending(report), "withdrawal recorded")

    @withdraw.validator
    def validate_withdraw(self, report: Withdrawal) -> None:
        if self._check_repeat(report):
            return
        self._check_open(report)
        self._allowed(ReportKind.PORTAL, report, ReportKind.OPERATOR)

    # --- announcements from the formasi and the round (signals) -----------------------------

    @workflow.signal
    async def announce(self, announcement: Announcement) -> None:
        """A phase closed or a result is out. Repeats (by announcement id) change nothing."""
        if announcement.announcement_id in {a.announcement_id for a in self.announcements.values()}:
            return
        if announcement.phase == "tmt_moved":
            # The TMT can move more than once: each move is its own announcement (repeats by id
            # change nothing), not one per phase like a stage close.
            if announcement.announcement_id not in self.tmt_moves_seen:
                self.tmt_moves_seen.append(announcement.announcement_id)
                if self.terminal is None and announcement.note:
                    self._move_tmt(announcement)
            return
        if announcement.phase in self.announcements:
            return
        self.announcements[announcement.phase] = announcement
        if self.terminal is not None and not self._patched("reply-after-end"):
            return
        if announcement.phase == "skd_closed":
            self.skd_closed = True
            await self._reply_skd()
        elif announcement.phase == "skb_closed":
            self.skb_closed = True
            await self._reply_skb()

    @workflow.update
    def close_stage(self, announcement: Announcement) -> CloseReply:
        """The formasi closes SKD or SKB; the answer is what this applicant ranks by, if anything.

        The answer travels back in the update's result, so the journey sends the formasi no signal
        (and spends no workflow task on one). A repeat, from a retried broadcast page, gets the
        first answer again.
        """
        known = self.close_replies.get(announcement.phase)
        if known is not None:
            return known
        self.announcements.setdefault(announcement.phase, announcement)
        if announcement.phase == "skd_closed":
            self.skd_closed = True
            reply = CloseReply(applicant_id=self.start.applicant_id, phase=announcement.phase, key=self._skd_key())
        else:
            self.skb_closed = True
            reply = CloseReply(applicant_id=self.start.applicant_id, phase=announcement.phase, entry=self._close_skb())
        self.close_replies[announcement.phase] = reply
        return reply

    @close_stage.validator
    def validate_close_stage(self, announcement: Announcement) -> None:
        if announcement.phase not in CLOSES:
            raise ApplicationError(
                f"close_stage for applicant {self.start.applicant_id}: phase {announcement.phase!r} is not one of "
                f"{', '.join(CLOSES)}",
                type="ReportRefused",
                non_retryable=True,
            )

    @workflow.query
    def waits_for(self, phase: str) -> bool:
        """Whether an announcement of `phase` can still change this journey."""
        if self.terminal is not None or self.ending is not None:
            return False
        return self.stage not in PAST_PHASE.get(phase, frozenset())

    @workflow.signal
    def offer_seat(self, offer: OptimalisasiOffer) -> None:
        """The round offers an optimalisasi seat."""
        if self.offer is None and self.stage == Stage.OPTIMALISASI:
            self.offer = offer

    @workflow.query
    def registration_digest(self) -> str:
        """SHA-256 of the registration: lets a repeated import tell a repeat from a conflict."""
        import hashlib
        import json

        body = json.dumps(self.start.registration.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()

    @workflow.query
    def state(self) -> JourneyState:
        """The journey's current stage, codes and full decision trail."""
        entry = self.final_entry
        return JourneyState(
            round_id=self.start.round_id,
            applicant_id=self.start.applicant_id,
            formasi_code=self.start.formasi.code,
            stage=self.stage,
            admin=self.admin,
            skd_code=self.skd_code,
            skd_total=self._skd_scores().total if self.skd else None,
            skb_score=self.skb_score,
            final_score=fraction_text(entry.final_score) if entry else None,
            final_code=self.final_code,
            placed_formasi=self.placed_formasi,
            nip=self.nip,
            tmt=self.tmt,
            terminal=self.terminal,
            terminal_reason=self.terminal_reason,
            sanction_rounds=self.sanction_rounds,
            decisions=list(self.decisions),
        )

    # --- helpers ------------------------------------------------------------------------------

    def _skd_scores(self) -> SkdScores:
        assert self.skd is not None
        return SkdScores(twk=self.skd.twk, tiu=self.skd.tiu, tkp=self.skd.tkp)

    def _skd_key(self):
        """This applicant's SKD key, or None when absent, ended or below the threshold."""
        if self.skd is None or self.stage != Stage.SKD or self.terminal is not None:
            return None
        scores = self._skd_scores()
        if not passes_threshold(scores, self.start.registration.category, self.rules.skd):
            return None
        return skd_rank_key(scores)

    def _close_skb(self) -> FinalEntry | None:
        """Compose SKB and apply the gates: the final entry, or None when out."""
        self.final_entry = None
        if self.stage == Stage.SKB and self.terminal is None:
            self.final_entry = self._compose_skb()
        return self.final_entry

    async def _reply_skd(self) -> None:
        """Tell the formasi this applicant's key by signal (formasi runs before close-by-update)."""
        await self._formasi().signal("skd_entry", SkdEntryReply(applicant_id=self.start.applicant_id, key=self._skd_key()))

    async def _reply_skb(self) -> None:
        """Tell the formasi the final entry by signal (formasi runs before close-by-update)."""
        await self._formasi().signal(
            "final_entry", FinalEntryReply(applicant_id=self.start.applicant_id, entry=self._close_skb())
        )

    def _compose_skb(self) -> FinalEntry | None:
        rules = self.rules.skb
        if "cat" not in self.skb_scores:
            self._skb_failure = (Terminal.ABSENT, "TH: no SKB CAT score when the SKB window closed")
            return None
        scores: dict = {}
        gates = {}
        missing = []
        for c in rules.components:
            if c.kind == ComponentKind.SCORE:
                if c.name in self.skb_scores:
                    scores[c.name] = self.skb_scores[c.name].score
                else:
                    missing.append(c.name)
            elif c.kind == ComponentKind.PANEL:
                panel = list(self.panel.get(c.name, {}).values())
                try:
                    scores[c.name] = aggregate_panel(
                        [PanelScore(panellist=p.panellist, score=p.score) for p in panel], c
                    )
                except RuleViolation:
                    missing.append(f"{c.name} (panel of {len(panel)})")
            else:
                if c.name in self.gates:
                    gates[c.name] = self.gates[c.name].decision
                else:
                    missing.append(c.name)
        if missing:
            self._skb_failure = (Terminal.SKB_GATE_FAILED, f"SKB incomplete: {', '.join(missing)} not reported")
            return None
        outcome = skb_outcome(scores, gates, rules)
        self.skb_score = fraction_text(outcome.score)
        if not outcome.passed_gates:
            self._skb_failure = (Terminal.SKB_GATE_FAILED, "SKB gate failed: " + "; ".join(outcome.gate_failures))
            return None
        reg = self.start.registration
        return FinalEntry(
            applicant_id=self.start.applicant_id,
            formasi_code=self.start.formasi.code,
            final_score=final_score(self._skd_scores().total, outcome.score, self.rules.integration, self.rules.skd),
            skd=self._skd_scores(),
            gpa=reg.gpa,
            birth_date=reg.birth_date,
        )

    def _skb_inputs(self) -> dict:
        return {
            "scores": {k: v.score for k, v in self.skb_scores.items()},
            "panel": {k: {p: r.score for p, r in v.items()} for k, v in self.panel.items()},
            "gates": {k: v.decision.value for k, v in self.gates.items()},
        }

    def _move_tmt(self, announcement: Announcement) -> None:
        from datetime import date

        new_tmt = date.fromisoformat(announcement.note)
        if new_tmt != self.tmt:
            self._decide(self.stage, "TMT moved", "round", {"from": self.tmt.isoformat(), "to": new_tmt.isoformat(),
                                                            "announcement_id": announcement.announcement_id})
            self.tmt = new_tmt

    def _formasi(self):
        return workflow.get_external_workflow_handle(formasi_workflow_id(self.start.round_id, self.start.formasi.code))

    async def _announcement(self, phase: str) -> Announcement:
        await self._wait(lambda: phase in self.announcements)
        return self.announcements[phase]

    async def _wait(self, condition: Callable[[], bool], until: datetime | None = None) -> bool:
        """Wait for `condition`, a deadline, or an ending; raise JourneyEnded on an ending."""
        timeout = None
        if until is not None:
            timeout = max(until - workflow.now(), timedelta(0))
        if self.unprojected and not (condition() or self.ending is not None):
            await self._write_projection()
        try:
            await workflow.wait_condition(lambda: condition() or self.ending is not None, timeout=timeout)
        except TimeoutError:
            return False
        if self.ending is not None:
            await self._finish_ending()
        return True

    def _apply_ending(self, report: Report) -> None:
        self.ending = report

    async def _finish_ending(self) -> None:
        report = self.ending
        assert report is not None
        if self.placed_formasi is not None and self.nip is None:
            # A seat won but not yet taken up goes back to the round for optimalisasi.
            await workflow.get_external_workflow_handle(round_workflow_id(self.start.round_id)).signal(
                "seat_vacated", SeatVacated(applicant_id=self.start.applicant_id, formasi_code=self.placed_formasi)
            )
        if isinstance(report, Disqualification):
            self._decide(self.stage, "DIS", report.reported_by, report.model_dump(mode="json"))
            self._end(Terminal.DISQUALIFIED, f"DIS: {report.reason}")
        passed = self.final_code in (FinalCode.PASSED, FinalCode.PASSED_OPTIMALISASI)
        self.sanction_rounds = withdrawal_sanction(passed, self.rules.withdrawal_sanction_rounds)
        self._decide(self.stage, "APS", report.reported_by,
                     {**report.model_dump(mode="json"), "sanction_rounds": self.sanction_rounds})
        self._end(Terminal.WITHDRAWN, "APS: withdrew" + (
            f"; barred from the next {self.sanction_rounds} rounds" if self.sanction_rounds else ""))

    def _end(self, terminal: Terminal, reason: str) -> None:
        self.terminal = terminal
        self.terminal_reason = reason
        last = self.decisions[-1] if self.decisions else None
        caused_by_last = last is not None and last.outcome == terminal.value
        if self._patched("record-every-ending"):
            # The ending is its own decision unless the decision just made is the ending itself
            # (a TMS that ends three days later, when the appeal window closes, is recorded again).
            caused_by_last = caused_by_last and last is not None and last.at == workflow.now()
        if not caused_by_last:
            self._decide(self.stage, terminal.value, "system", {"reason": reason})
        self._notify(f"end-{terminal.value}", f"Your selection ended: {reason}.")
        raise JourneyEnded()

    def _decide(self, stage: Stage, outcome: str, actor: str, inputs: dict) -> None:
        self.decisions.append(
            decision(stage, outcome, actor, inputs, self.rules.rule_version, self.rules.rules_digest)
        )

    def _patched(self, patch: str) -> bool:
        """workflow.patched, except that an engine-2 journey has every engine-2 patch without a marker."""
        if self.start.engine_version >= 2 and patch in ENGINE_2_PATCHES:
            return True
        return workflow.patched(patch)

    def _notify(self, key: str, text: str) -> None:
        self.pending_notifications.append(Notification(key=key, text=text))

    async def _project(self) -> None:
        """The read model needs this state: write it now, or at the next rest (patch project-at-rest)."""
        if self.project_at_rest:
            self.unprojected = True
        else:
            await self._write_projection()

    async def _write_projection(self) -> None:
        """Write the read-model row (a local activity: one marker event, no extra task)."""
        self.unprojected = False
        self.version += 1
        reg = self.start.registration
        projection = JourneyProjection(
            version=self.version,
            # The trail travels as new_decisions; the row needs the state without it.
            state=self.state().model_copy(update={"decisions": []}),
            registration_no=self.start.applicant_id,
            name=reg.name,
            category=reg.category.value,
            first_seq=self.projected_decisions,
            new_decisions=self.decisions[self.projected_decisions:],
            notifications=self.pending_notifications,
            reports=self.pending_reports,
        )
        await workflow.execute_local_activity(
            "project_journey",
            projection,
            start_to_close_timeout=PROJECT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
        )
        self.projected_decisions = len(self.decisions)
        self.pending_notifications = []
        self.pending_reports = []

    # validation helpers: each refusal names the report, the applicant and what is wrong

    def _refuse(self, report: Report, problem: str) -> None:
        self.ledger.refuse(report, problem)

    def _check_repeat(self, report: Report) -> bool:
        """True for an exact repeat (answered from the record); refuse the same key with new content."""
        return self.ledger.is_repeat(report)

    def _check_open(self, report: Report) -> None:
        if self.terminal is not None or self.ending is not None:
            self._refuse(report, f"the journey has ended ({self.terminal.value if self.terminal else 'ending'})")

    def _require(self, kind: str, report: Report, stage: Stage, *also: Stage) -> None:
        self._check_open(report)
        self._allowed(kind, report)
        if self.stage != stage and self.stage not in also:
            self._refuse(report, f"the applicant is at stage {self.stage.value}, not {stage.value}")

    def _allowed(self, kind: str, report: Report, *alternatives: str) -> None:
        if not any(report.reported_by in self.rules.reporters.get(k, []) for k in (kind, *alternatives)):
            self._refuse(report, f"{report.reported_by} is not allowed to report {kind} in this round")

    def _skb_component(self, report: Report, name: str, kind: ComponentKind):
        component = self.rules.skb.component(name)
        if component is None:
            self._refuse(report, f"SKB component {name!r} is not part of this round")
        if component.kind != kind:
            self._refuse(report, f"SKB component {name} is a {component.kind.value} component, not {kind.value}")
        self._require(name, report, Stage.SKB)
        if self.skb_closed:
            self._refuse(report, "the SKB window is closed")
        return component

    def _check_score(self, report: Report, component, score: float) -> None:
        try:
            validate_component_score(component, score)
        except RuleViolation as exc:
            self._refuse(report, str(exc))

    def _accept(self, report: Report, kind: str, apply: Callable[[], None], effect: str) -> Ack:
        def answer() -> Ack:
            self.pending_reports.append((report.report_id, kind, report.model_dump(mode="json")))
            return Ack(
                report_id=report.report_id,
                applicant_id=self.start.applicant_id,
                stage=self.stage,
                effect=effect,
                recorded_at=workflow.now(),
            )

        return self.ledger.accept(report, apply, answer)
