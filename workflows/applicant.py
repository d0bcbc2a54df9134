"""ApplicantJourney: one applicant's way through the round, from registration to PNS.

The run method reads as the process (DOMAIN.md's stage list). What is known about the applicant
is one frozen record, `domain.sheet.ApplicantSheet`, and every decision is a past-tense event of
`domain.events`. What arrives (reports, closes, announcements) is handled in `workflows.inbox`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import events as ev
    from domain import notices
    from domain.administration import appeal_outcome
    from domain.admission import admission_problem
    from domain.appointment import PROBATION_SERVED, probation_ends, probation_outcome
    from domain.codes import AdminDecision, FinalCode, Phase, SkdCode, Stage, Terminal
    from domain.contracts import CloseAnswer, NipRequest
    from domain.digest import canonical_digest
    from domain.local_time import JAKARTA
    from domain.messages import (
        Announcement,
        CloseReply,
        Decision,
        EntryCorrection,
        JourneyStart,
        JourneyState,
        OfferAnswer,
        OfferReply,
        OptimalisasiOffer,
        RoundView,
        RoundViewRequest,
        SanctionCheck,
        SeatVacated,
        fraction_text,
    )
    from domain.national import CHECK_CLAIM, RELEASE_CLAIM, ClaimCheck, ClaimRelease
    from domain.optimalisasi import local_date
    from domain.protocol import (
        CHECK_SANCTIONS,
        ENTRY_CORRECTED,
        ISSUE_NIP,
        OFFER_REPLY,
        READ_ROUND,
        SEAT_VACATED,
    )
    from domain.ranking import skd_code
    from domain.registration import (
        Refusal,
        application_date_problem,
        check_registration,
        mask_nik,
    )
    from domain.seal import sealed
    from domain.sheet import (
        ApplicantSheet,
        SkbResult,
        admin_appeal_closes,
        admin_result,
        appeal_answer_due,
        corrected,
        ending,
        panel_of,
        skb_inputs,
    )
    from domain.skd import passes_threshold, skd_rank_key
    from workflows.calls import run_local_activity_until_done, tell
    from workflows.ids import claim_workflow_id, formasi_workflow_id, round_workflow_id
    from workflows.inbox import JourneyInbox
    from workflows.ledger import Ledger
    from workflows.outbox import ReadModelOutbox
    from workflows.versions import (
        ACCEPTED_BEFORE_ENDING,
        APPEAL_DAYS_END_AT_MIDNIGHT,
        APPLIED_ON_ITS_START_DATE,
        CLAIM_RELEASED_BY_JOURNEY,
        CLOSE_ANSWERED_WITH_ROW,
        LOCAL_ACTIVITY_BACKOFF_TIMERS,
        NATIONAL_CLAIM_IN_JOURNEY,
        NIP_FROM_ROUND_TMT,
        NOTICE_IN_ROUND_ZONE,
        OFFER_KEPT_UNTIL_OPTIMALISASI,
        OFFER_REPLY_AT_ANSWER,
        PROBATION_YEAR,
        SANCTIONS_IN_JOURNEY,
        SEAT_BACK_TO_ENDED_ROUND,
        SEAT_GIVEN_BACK_AT_FILING,
        SEAT_GIVEN_BACK_BEFORE_RESULT,
    )

# The failure of a signal to a workflow that is not running (here: the round, once closed).
ROUND_GONE = "ExternalWorkflowExecutionNotFound"
NIP_TIMEOUT = timedelta(seconds=30)
ROUND_READ_TIMEOUT = timedelta(seconds=15)
ENGINE_VERSION = 6  # what RecruitmentApi starts new journeys with (workflows/versions.py)


class JourneyEnded(Exception):
    """Raised inside the run when the journey reaches its terminal outcome."""


@workflow.defn
class ApplicantJourney(JourneyInbox):
    """The applicant's own state machine; its history is the applicant's audit trail."""

    @workflow.init
    def __init__(self, start: JourneyStart) -> None:
        self.start = start
        self.rules = start.rules
        self.sheet = ApplicantSheet(
            applicant_id=start.applicant_id,
            formasi_code=start.formasi.code,
            registration=start.registration,
            tmt=start.tmt,
        )
        self.decisions: list[Decision] = []
        self.ledger = Ledger("report", f" for applicant {start.applicant_id}", "ReportRefused")
        self.announcements: dict[str, Announcement] = {}
        self.tmt_moves_seen: list[str] = []  # ids of TMT announcements already applied
        self.close_replies: dict[str, CloseReply] = {}
        self.outbox = ReadModelOutbox(start.sanction_key)
        self.skb_composed = SkbResult(None)  # the SKB composition at the close (TH until then)
        self.secret = ""  # the round's seal secret, once admitted (domain/seal.py)
        self.key_changes_seen: list[str] = []  # ids of keys_changed announcements applied
        self.final_sanggah = False  # the round takes the sanggah against the final result
        self.row_to_write = False
        self.final_answer_applied = False
        self.close_with_row = False  # patch close-answered-with-row, decided when the run starts
        self.backoff_timers = False  # patch local-activity-backoff-timers, decided likewise
        self.close_waiting: CloseReply | None = None
        self.resting = False  # the run waits in _wait: a close can have the row at once
        self.run_done = False
        self._validated = None  # the report update just validated, for its handler (inbox)
        self.registration_confirmed = False
        self.admitted = False  # set when the round's answer is in (or by a journey before it)
        self.held: list[tuple[object, ...]] = []
        self.keys_current_at: datetime | None = None
        self.tmt_current_at: datetime | None = None
        self.offer_replied = False  # the round has this journey's answer to its offer
        self.offer_reply_leaving = False  # sent as the answer was taken (offer-reply-at-answer)
        # The reply sent from an answer's update (offer-reply-at-answer): held only so the task
        # is not collected while it waits; the run waits on `offer_replied`, never on the task.
        self._reply_task: asyncio.Task[None] | None = None
        self.offer_after_end: OptimalisasiOffer | None = None  # came once the journey had ended
        self.offer_taken_at: datetime | None = None  # when this journey accepted its offer

    # --- the process -----------------------------------------------------------------------

    @workflow.run
    async def run(self, start: JourneyStart) -> JourneyState:
        # Write the read model when the journey comes to rest, not after every step (fewer local
        # activities per journey). Older histories write eagerly.
        self.outbox.at_rest = self._patched("project-at-rest")
        self.close_with_row = self._patched(CLOSE_ANSWERED_WITH_ROW)
        self.backoff_timers = self._patched(LOCAL_ACTIVITY_BACKOFF_TIMERS)
        self.outbox.backoff_timers = self.backoff_timers
        self._set(deadlines_by_day=self._patched(APPEAL_DAYS_END_AT_MIDNIGHT))
        try:
            await self.registration()
            await self.administrative_check()
            await self.skd_stage()
            await self.skb_stage()
            await self.final_outcome()
            await self.filing_stage()
            await self.appointment()
            await self.probation()
        except JourneyEnded:
            pass
        self._move_to(Stage.ENDED)
        # The last row is the journey's own write: nothing after it would repeat what it holds.
        await self._write()
        if self.offer_after_end is not None:
            # An offer that came while the last row was written: declined, so the seat passes on.
            await self._reply_to_offer(self.offer_after_end, False, None, False)
            await self._write()
        self.run_done = True  # a close that arrives now is answered without a row
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def registration(self) -> None:
        """Admitted by the round, and the registration rules again on the date the API judged them.

        RecruitmentApi refuses an ineligible registration before any journey starts; this keeps a
        journey started some other way (after registration closed, with rules, a formasi or a
        signature of its own) from carrying one forward: a refusal ends the journey. So do the
        sanctions register and, in a national round, the NIK's national claim, asked again here:
        a registrar that skipped them gets no further (engine 4). A refused registration lets
        the NIK's national claim go (patch claim-released-by-journey).
        """
        try:
            await self._judge_registration()
        except JourneyEnded:
            if self.start.national_claim and self._patched(CLAIM_RELEASED_BY_JOURNEY):
                release = ClaimRelease(
                    workflow_id=self.start.national_claim,
                    round_id=self.start.round_id,
                    applicant_id=self.start.applicant_id,
                )
                await run_local_activity_until_done(
                    RELEASE_CLAIM, release, ROUND_READ_TIMEOUT, backoff_timers=self.backoff_timers
                )
            raise
        start = self.start
        self._decide(ev.Registered(formasi=start.formasi.code, registered_by=start.registered_by))
        self.outbox.notify("registered", notices.registered(start.applicant_id, start.formasi.code))

    async def _judge_registration(self) -> None:
        start = self.start
        view = None
        if workflow.patched("admitted-by-round"):
            view = await self._admission()
        applied_on = start.applied_on
        if view is not None and view.rules is not None and self._patched(APPLIED_ON_ITS_START_DATE):
            # Judged on the date the journey started in the round's zone, not on whatever date
            # the registrar wrote: a backdated start made an over-age applicant eligible.
            started = workflow.info().workflow_start_time
            zone = view.rules.timezone
            if applied_on is None:
                applied_on = local_date(started, zone)
            problem = application_date_problem(applied_on, started, zone)
            if problem:
                refusal = Refusal(field="applied_on", value=applied_on.isoformat(), reason=problem)
                self._refuse_registration(local_date(started, zone), [refusal])
        if applied_on is not None:
            refusals = check_registration(start.registration, start.formasi, applied_on)
            if refusals:
                self._refuse_registration(applied_on, refusals)
        if view is not None and self._patched(SANCTIONS_IN_JOURNEY):
            await self._sanctions(view)
        if view is not None and self._patched(NATIONAL_CLAIM_IN_JOURNEY):
            await self._national_claim(view)
        self.admitted = True  # journeys recorded before admitted-by-round: no answer to wait for

    def _not_admitted(self, problem: str) -> NoReturn:
        self._decide(ev.NotAdmitted(reason=problem))
        self._end(Terminal.TMS, f"registration refused: {problem}")

    def _refuse_registration(self, applied_on: date, refusals: list[Refusal]) -> NoReturn:
        self._decide(ev.RegistrationRefused(applied_on=applied_on, refusals=refusals))
        self._end(Terminal.TMS, "registration refused: " + "; ".join(str(r) for r in refusals))

    async def _sanctions(self, view: RoundView) -> None:
        """The sanctions register, asked by the journey itself (patch sanctions-in-journey): what
        RecruitmentApi checked, again where the decision is made. In the task that read the round,
        so it costs no engine action."""
        start = self.start
        if not start.sanction_key or start.applied_on is None:
            missing = "sanctions register key" if not start.sanction_key else "application date"
            problem = f"the start carries no {missing}: the sanctions register cannot be asked"
            self._not_admitted(problem)
        check = SanctionCheck(
            round_id=start.round_id,
            registration_opens=view.registration_opens,
            subject=start.sanction_key,
            applied_on=start.applied_on,
        )
        verdict = await run_local_activity_until_done(
            CHECK_SANCTIONS, check, ROUND_READ_TIMEOUT, backoff_timers=self.backoff_timers
        )
        if verdict.reasons:
            nik = mask_nik(start.registration.nik)
            reason = "; ".join(verdict.reasons)
            self._refuse_registration(
                start.applied_on, [Refusal(field="nik", value=nik, reason=reason)]
            )

    async def _national_claim(self, view: RoundView) -> None:
        """The NIK's national claim, checked by the journey itself (patch
        national-claim-in-journey) when its round joined a national round: the claim must be this
        registration's. In the task that read the round: no engine action."""
        national = view.national_round
        if national is None:
            return
        start = self.start
        prefix = claim_workflow_id(national, "")
        claim = start.national_claim
        if not claim.startswith(prefix) or len(claim) == len(prefix):
            problem = f"the start carries no claim of national round {national}"
            self._not_admitted(problem)
        check = ClaimCheck(
            workflow_id=claim,
            national_id=national,
            round_id=start.round_id,
            applicant_id=start.applicant_id,
            registration_digest=canonical_digest(start.registration),
        )
        verdict = await run_local_activity_until_done(
            CHECK_CLAIM, check, ROUND_READ_TIMEOUT, backoff_timers=self.backoff_timers
        )
        if verdict.problem:
            self._not_admitted(verdict.problem)
        if verdict.refusal:
            assert start.applied_on is not None  # checked with the sanctions, before this
            nik = mask_nik(start.registration.nik)
            self._refuse_registration(
                start.applied_on, [Refusal(field="nik", value=nik, reason=verdict.refusal)]
            )

    async def _admission(self) -> RoundView:
        """Ask the round (a local activity: one marker) and judge this start by its answer."""
        request = RoundViewRequest(
            round_id=self.start.round_id,
            workflow_id=round_workflow_id(self.start.round_id),
            formasi_code=self.start.formasi.code,
        )
        # Bounded retries, then a durable timer: a round that does not answer (its worker busy or
        # restarting) holds no worker.
        view = await run_local_activity_until_done(
            READ_ROUND, request, ROUND_READ_TIMEOUT, backoff_timers=self.backoff_timers
        )
        info = workflow.info()
        problem = admission_problem(self.start, view, info.workflow_start_time, info.workflow_id)
        if problem:
            self._not_admitted(problem)
        assert view.rules is not None and view.tmt is not None
        self.rules = view.rules  # the round's, with the round's keys
        self.secret = view.secret  # checks the seals of what the round and the formasi send
        self.final_sanggah = view.final_sanggah
        self.keys_current_at = view.keys_changed_at
        self.tmt_current_at = view.tmt_moved_at
        self._set(tmt=view.tmt)
        self.admitted = True
        await self._take_held()
        return view

    def _notice_zone(self) -> str:
        """The zone the applicant's notices read their times in: the round's (patch
        notice-in-round-zone, asked only of a round outside WIB), else WIB as before."""
        zone = self.rules.timezone
        if zone == JAKARTA or not self._patched(NOTICE_IN_ROUND_ZONE):
            return JAKARTA
        return zone

    async def administrative_check(self) -> None:
        """MS/TMS when the administration announcement is out; a TMS may be appealed once."""
        await self._enter(Stage.ADMIN_CHECK)
        announcement = await self._announcement(Phase.ADMINISTRATION)
        report = self.sheet.admin_report
        admin = admin_result(self.sheet)
        self._set(admin_announced_at=announcement.at, admin=admin)
        if report is None:
            self._decide(ev.AdminNotDecided(reason="no decision before the window closed"))
        else:
            self._decide(ev.AdminChecked(decision=admin, report=report))
        self.outbox.notify(
            f"admin-{admin.value}",
            notices.admin_result(
                admin.value,
                report.findings if report is not None else [],
                appeal_until=admin_appeal_closes(self.sheet, self.rules),
                not_decided=report is None,
                timezone=self._notice_zone(),
            ),
        )
        if admin == AdminDecision.MS:
            await self._changed()
            return
        self._move_to(Stage.ADMIN_APPEAL)
        await self._changed()
        filed = await self._wait(
            lambda: self.sheet.appeal is not None, until=admin_appeal_closes(self.sheet, self.rules)
        )
        if not filed:
            self._end(Terminal.TMS, "TMS; no appeal within the appeal window")
        # Counted from the filing (as the portal shows it) once days end at 24:00; before, from
        # when the journey woke to it.
        appeal = self.sheet.appeal
        filed_at = self.sheet.received_at.get(appeal.report_id) if appeal else None
        if not self.sheet.deadlines_by_day or filed_at is None:
            filed_at = workflow.now()
        answered = await self._wait(
            lambda: self.sheet.appeal_answer is not None,
            until=appeal_answer_due(self.sheet, self.rules, filed_at),
        )
        answer = self.sheet.appeal_answer
        if not answered or answer is None:
            self._end(Terminal.TMS, "TMS; the appeal was not answered within its time")
        assert answer is not None
        self._set(admin=appeal_outcome(answer.accepted))
        self._decide(ev.AppealDecided(decision=self.sheet.admin, answer=answer))
        if self.sheet.admin == AdminDecision.TMS:
            self._end(Terminal.TMS, f"TMS; appeal rejected: {answer.note}")
        self.outbox.notify("appeal-accepted", notices.appeal_accepted())
        await self._changed()

    async def skd_stage(self) -> None:
        """SKD result or TH at the close; P/L goes on, P, T/L and TH end here."""
        await self._enter(Stage.SKD)
        await self._wait(lambda: self.sheet.skd_closed)
        scores = self.sheet.skd_scores()
        if scores is None:
            self._set(skd_code=SkdCode.ABSENT)
            self._decide(ev.SkdAbsent(reason="no SKD result when the SKD window closed"))
            self._end(Terminal.ABSENT, "TH: did not sit the SKD")
        assert scores is not None
        category = self.start.registration.category
        passed = passes_threshold(scores, category, self.rules.skd)
        self._move_to(Stage.SKD_RANKING)
        result = await self._announcement(Phase.SKD_RESULT)
        code = skd_code(passed, skd_rank_key(scores), result.cut_key)
        self._set(skd_code=code)
        self._decide(
            ev.SkdRanked(skd_code=code, scores=scores, category=category, announcement=result)
        )
        self.outbox.notify(f"skd-{code.value}", notices.skd_result(code.value, scores.total))
        if code == SkdCode.FAILED:
            self._end(Terminal.SKD_FAILED, "T/L: below the SKD threshold of the category")
        if code == SkdCode.PASSED:
            self._end(
                Terminal.SKD_PASSED_OUTSIDE_CUT, "P: passed the threshold, outside the SKB cut"
            )
        await self._changed()

    async def skb_stage(self) -> None:
        """SKB components within the SKB window; composed and gated when the SKB closes."""
        await self._enter(Stage.SKB)
        self._assign_panels()
        await self._wait(lambda: self.sheet.skb_closed)
        # The formasi had its answer when the close arrived; here the trail records why.
        entry = self.sheet.final_entry
        if entry is None:
            failure = self.skb_composed
            code = FinalCode.ABSENT if failure.failure == Terminal.ABSENT else FinalCode.GATE_FAILED
            self._set(final_code=code)
            self._decide(ev.SkbFailed(final_code=code, reason=failure.reason))
            self._end(failure.failure, failure.reason)
        assert entry is not None
        self._decide(
            ev.SkbCompleted(
                skb_score=self.sheet.skb_score,
                final_score=fraction_text(entry.final_score),
                components=skb_inputs(self.sheet),
            )
        )
        await self._changed()

    def _assign_panels(self) -> None:
        """Draw this applicant's panel of each component with a pool, from a recorded seed."""
        for component in self.rules.skb.components:
            if not component.assign:
                continue
            seed = workflow.random().getrandbits(63)
            self._set(panel_seeds={**self.sheet.panel_seeds, component.name: seed})
            self._decide(
                ev.PanelAssigned(
                    component=component.name,
                    seed=seed,
                    panellists=panel_of(self.sheet, component) or [],
                )
            )

    async def final_outcome(self) -> None:
        """P/L by rank within the quota; otherwise wait for optimalisasi until the round ends it."""
        self._move_to(Stage.FINAL_RANKING)
        result = await self._announcement(Phase.FINAL_RESULT)
        won = self.start.applicant_id in result.winners
        code = FinalCode.PASSED if won else FinalCode.NOT_PASSED
        self._set(final_code=code, placed_formasi=self.start.formasi.code if won else None)
        self._decide(
            ev.FinalRanked(
                final_code=code,
                announcement_id=result.announcement_id,
                final_score=self.state().final_score,
            )
        )
        self.outbox.notify(
            f"final-{code.value}", notices.final_result(code.value, self.start.formasi.code)
        )
        if self.final_sanggah:
            won = await self._final_sanggah(result, won)
        await self._changed()
        if won:
            if (
                self.sheet.offer is not None
                and not self.offer_replied
                and not self.offer_reply_leaving
            ):
                # An offer taken before the result was heard (patch offer-kept-until-optimalisasi)
                # while this journey's own ranking gives it a seat: the offer goes back.
                await self._reply_to_offer(self.sheet.offer, False, None, False)
            return
        self._move_to(Stage.OPTIMALISASI)
        await self._wait(
            lambda: self.sheet.offer is not None or Phase.OPTIMALISASI_CLOSED in self.announcements
        )
        offer = self.sheet.offer
        if offer is None:
            self._end(Terminal.NOT_PASSED, "TL: lost on rank; no optimalisasi seat")
        assert offer is not None
        answered = await self._wait(
            lambda: self.sheet.offer_answer is not None, until=offer.answer_by
        )
        answer = self.sheet.offer_answer
        accepted = bool(answered and answer and answer.accept)
        if self.offer_reply_leaving:
            await workflow.wait_condition(lambda: self.offer_replied)
        else:
            await self._reply_to_offer(offer, accepted, answer, bool(answered))
        if not accepted:
            self._end(Terminal.NOT_PASSED, "TL: declined the optimalisasi offer")
        self._set(final_code=FinalCode.PASSED_OPTIMALISASI, placed_formasi=offer.to_formasi)
        due = self._late_filing_due()
        if due is not None:
            self._set(file_until=due)  # filing_stage waits for it; the portal shows it
        self.outbox.notify(
            "final-P/L-2",
            # The zone is asked (a patch, in a round outside WIB) only for a notice that says a
            # time, as before late-taker-filing-time.
            notices.optimalisasi_seat(offer.to_formasi)
            if due is None
            else notices.optimalisasi_seat(offer.to_formasi, due, self._notice_zone()),
        )
        await self._changed()

    async def _final_sanggah(self, result: Announcement, won: bool) -> bool:
        """The sanggah against the final result, until the formasi confirms its ranking.

        An answer that corrects scores composes SKB and the final score again and tells the
        formasi, which ranks again when the round closes the sanggah. Whether this applicant won
        is what the confirmed ranking says."""
        self._set(final_announced_at=result.at, final_sanggah_open=True)
        await self._enter(Stage.FINAL_APPEAL)
        while True:
            await self._wait(
                lambda: Phase.FINAL_CONFIRMED in self.announcements or self._answer_to_apply()
            )
            if not self._answer_to_apply():
                break
            await self._apply_final_answer()
        if self.sheet.final_appeal is not None and self.sheet.final_appeal_answer is None:
            self._decide(
                ev.FinalAppealUnanswered(reason="the sanggah was not answered in its time")
            )
        confirmed = self.announcements[Phase.FINAL_CONFIRMED]
        won_now = self.start.applicant_id in confirmed.winners
        code = FinalCode.PASSED if won_now else FinalCode.NOT_PASSED
        self._set(
            final_confirmed=True,
            final_code=code,
            placed_formasi=self.start.formasi.code if won_now else None,
        )
        self._decide(
            ev.FinalConfirmed(
                final_code=code,
                announcement_id=confirmed.announcement_id,
                final_score=self.state().final_score,
                changed=won_now != won,
            )
        )
        if won_now != won:
            self.outbox.notify(
                f"final-confirmed-{code.value}",
                notices.final_result(code.value, self.start.formasi.code),
            )
        self._move_to(Stage.FINAL_RANKING)
        return won_now

    def _answer_to_apply(self) -> bool:
        return self.sheet.final_appeal_answer is not None and not self.final_answer_applied

    async def _apply_final_answer(self) -> None:
        answer = self.sheet.final_appeal_answer
        assert answer is not None
        self.final_answer_applied = True
        old = self.state().final_score
        correcting = answer.accepted and bool(answer.corrected_scores)
        failure = None
        if correcting:
            self.sheet, composed = corrected(self.sheet, self.rules)
            failure = None if composed.entry is not None else composed
            await tell(
                ENTRY_CORRECTED,
                formasi_workflow_id(self.start.round_id, self.start.formasi.code),
                sealed(
                    EntryCorrection(
                        applicant_id=self.start.applicant_id,
                        entry=composed.entry,
                        answer_id=answer.report_id,
                    ),
                    self.secret,
                ),
            )
        self._decide(
            ev.FinalAppealDecided(
                answer=answer, old_final_score=old, new_final_score=self.state().final_score
            )
        )
        self.outbox.notify(
            "final-appeal", notices.final_appeal_answered(answer.accepted, correcting)
        )
        if failure is not None:
            self._set(final_code=FinalCode.GATE_FAILED, placed_formasi=None)
            self._end(failure.failure, failure.reason)

    async def filing_stage(self) -> None:
        """Pemberkasan (DRH and documents) before the filing window closes."""
        await self._enter(Stage.FILING)
        await self._wait(
            lambda: self.sheet.filing is not None or Phase.FILING_CLOSED in self.announcements
        )
        due = self.sheet.file_until
        if self.sheet.filing is None and due is not None and workflow.now() < due:
            # A seat taken late in filing, or after its close (held for the answer): the taker
            # files in its own time, as long as the window gave every winner (patch
            # late-taker-filing-time, carried by the offer).
            await self._wait(lambda: self.sheet.filing is not None, until=due)
        filing = self.sheet.filing
        if filing is None or not filing.complete:
            missing = filing.missing if filing else ["DRH"]
            self._decide(
                ev.FilingIncomplete(
                    missing=missing, reported_by=filing.reported_by if filing else "system"
                )
            )
            if (
                filing is not None
                and self.sheet.placed_formasi is not None
                and self._patched(SEAT_GIVEN_BACK_AT_FILING)
            ):
                # Reported incomplete while the window is open: the round still refills the seat.
                await self._give_seat_back()
            self._end(Terminal.FILING_INCOMPLETE, f"filing incomplete: {', '.join(missing)}")
        assert filing is not None
        self._decide(ev.FilingCompleted(reported_by=filing.reported_by))

    def _late_filing_due(self) -> datetime | None:
        """Until when this journey's taker may file at the least, from accepting its offer, when
        the offer gave a time to file (patch late-taker-filing-time); None otherwise."""
        offer = self.sheet.offer
        if offer is None or offer.filing_within is None or self.offer_taken_at is None:
            return None
        if self.sheet.final_code != FinalCode.PASSED_OPTIMALISASI:
            return None
        return self.offer_taken_at + offer.filing_within

    async def appointment(self) -> None:
        """NIP from BKN (once per person, whatever retries) and the SK CPNS with its TMT."""
        self._move_to(Stage.NIP)
        if workflow.patched(NIP_FROM_ROUND_TMT):
            await self._tmt_in_force()
        reg = self.start.registration
        request = NipRequest(
            round_id=self.start.round_id,
            applicant_id=self.start.applicant_id,
            birth_date=reg.birth_date,
            tmt=self.sheet.tmt,
            gender=reg.gender,
            person=self.start.sanction_key,  # the person across rounds: one NIP, never two
        )
        # The NIP service is idempotent per person, so a local activity (one marker, no task) is as
        # safe as an activity and cheaper.
        issued = await run_local_activity_until_done(
            ISSUE_NIP, request, NIP_TIMEOUT, backoff_timers=self.backoff_timers
        )
        self._set(nip=issued.nip)
        self._decide(ev.NipIssued(nip=issued.nip))
        self._move_to(Stage.APPOINTMENT)
        self._decide(ev.Appointed(tmt=self.sheet.tmt, formasi=self.sheet.placed_formasi))
        self.outbox.notify("appointed", notices.appointed(issued.nip, self.sheet.tmt))
        await self._changed()

    async def _tmt_in_force(self) -> None:
        """The TMT as the round has it now: a move whose announcement is still on its way counts."""
        view = await run_local_activity_until_done(
            READ_ROUND,
            RoundViewRequest(
                round_id=self.start.round_id,
                workflow_id=round_workflow_id(self.start.round_id),
                formasi_code=self.start.formasi.code,
            ),
            ROUND_READ_TIMEOUT,
            backoff_timers=self.backoff_timers,
        )
        if view.found and view.tmt is not None and view.tmt != self.sheet.tmt:
            self._decide(
                ev.TmtMoved(
                    during=self.sheet.stage, old=self.sheet.tmt, new=view.tmt, announcement_id=""
                )
            )
            self._set(tmt=view.tmt)

    async def probation(self) -> None:
        """One year as CPNS with Latsar: PNS, or dismissed."""
        await self._enter(Stage.LATSAR)
        await self._wait(lambda: self.sheet.latsar is not None)
        latsar = self.sheet.latsar
        assert latsar is not None
        outcome = probation_outcome(latsar.passed, latsar.healthy)
        self._decide(ev.LatsarJudged(result=outcome, report=latsar))
        if outcome != Terminal.PNS:
            self._end(outcome, "dismissed: Latsar or health not passed")
        if not self._patched(PROBATION_YEAR):
            self._end(outcome, "PNS: passed Latsar")
        served = await self._serve_probation()
        self._end(outcome, f"{PROBATION_SERVED}{served}")

    async def _serve_probation(self) -> str:
        """Wait until the CPNS's year of probation from the TMT ends, following a TMT moved
        meanwhile (an ending, a withdrawal, still ends the journey); the day it ended, in the
        round's zone."""
        rules = self.start.rules
        told = False
        while True:
            tmt = self.sheet.tmt
            ends = probation_ends(tmt, rules.timezone, rules.probation_ends)
            if workflow.now() >= ends:
                break
            if not told:
                self.outbox.notify("latsar-passed", notices.latsar_passed())
                told = True
            if not await self._wait(lambda tmt=tmt: self.sheet.tmt != tmt, until=ends):
                break
        return local_date(ends, rules.timezone).isoformat()

    async def _announcement(self, phase: str) -> Announcement:
        await self._wait(lambda: phase in self.announcements)
        return self.announcements[phase]

    async def _wait(self, condition: Callable[[], bool], until: datetime | None = None) -> bool:
        """Wait for `condition`, a deadline, or an ending; the ending is applied here. A change to
        the row while waiting (a TMT move) is written at once, and the wait goes on."""

        def done() -> bool:
            return condition() or self.sheet.ending is not None

        def woken() -> bool:
            return done() or self.row_to_write or self.close_waiting is not None

        while True:
            timeout = None if until is None else max(until - workflow.now(), timedelta(0))
            at_rest = not done()
            if at_rest and self.close_waiting is not None and not self._notice_due():
                # A close waits for its answer: the answer takes the row (close-answered-with-row).
                self._answer_close_with_row()
            elif at_rest and (self.outbox.unwritten or self.row_to_write or self.close_waiting):
                self.row_to_write = False
                await self._write()
            self.resting = True
            try:
                await workflow.wait_condition(woken, timeout=timeout)
            except TimeoutError:
                return False
            finally:
                self.resting = False
            if done():
                break
        if self.sheet.ending is not None:
            await self._finish_ending()
        return True

    async def _reply_to_offer(
        self, offer: OptimalisasiOffer, accepted: bool, answer: OfferAnswer | None, answered: bool
    ) -> None:
        """Tell the round the answer to its offer (declined when nobody answered), and record it."""
        if accepted:
            self.offer_taken_at = workflow.now()  # a late taker's time to file counts from here
        await tell(
            OFFER_REPLY,
            round_workflow_id(self.start.round_id),
            sealed(
                OfferReply(
                    offer_id=offer.offer_id, applicant_id=self.start.applicant_id, accepted=accepted
                ),
                self.secret,
            ),
        )
        self.offer_replied = True
        self._decide(
            ev.OfferAnswered(
                accepted=accepted,
                answered_by=answer.reported_by if answer else "system",
                offer_id=offer.offer_id,
                to_formasi=offer.to_formasi,
                answered=answered,
            )
        )

    def _offer_answered_now(self, answer: OfferAnswer) -> None:
        """Tell the round at once (patch offer-reply-at-answer): the run may be held in a row
        write while the round's deadline for the answer passes."""
        offer = self.sheet.offer
        if offer is None or self.offer_replied or self.offer_reply_leaving:
            return
        if not self._patched(OFFER_REPLY_AT_ANSWER):
            return
        self.offer_reply_leaving = True
        self._reply_task = asyncio.create_task(
            self._reply_to_offer(offer, answer.accept, answer, True)
        )

    async def _finish_ending(self) -> None:
        if self.offer_reply_leaving:
            # The round has this journey's answer: an acceptance is a seat it holds for it, which
            # an ending gives back as a placed journey's.
            await workflow.wait_condition(lambda: self.offer_replied)
            offer, answer = self.sheet.offer, self.sheet.offer_answer
            if offer and answer and answer.accept and self.sheet.placed_formasi is None:
                if self._patched(ACCEPTED_BEFORE_ENDING):
                    # Placed by optimalisasi: P/L-2, so a withdrawal now is one after passing.
                    self._set(
                        final_code=FinalCode.PASSED_OPTIMALISASI, placed_formasi=offer.to_formasi
                    )
                else:
                    self._set(placed_formasi=offer.to_formasi)
        if (
            self.sheet.offer is not None
            and not self.offer_replied
            and self._patched(OFFER_KEPT_UNTIL_OPTIMALISASI)
        ):
            # Ended (withdrew, disqualified) while an offer waited for its answer: declined, so
            # the round passes the seat to the next in rank instead of holding it for nobody.
            await self._reply_to_offer(self.sheet.offer, False, None, False)
        if (
            self.sheet.placed_formasi is None
            and self.sheet.final_entry is not None
            and Phase.FINAL_RESULT not in self.announcements
            and self._patched(SEAT_GIVEN_BACK_BEFORE_RESULT)
        ):
            await self._seat_won_unheard()
        if self.sheet.placed_formasi is not None and self.sheet.nip is None:
            await self._give_seat_back()
        event, terminal, reason = ending(self.sheet, self.rules)
        if isinstance(event, ev.Withdrew):
            self._set(sanction_rounds=event.sanction_rounds)
        self._decide(event)
        self._end(terminal, reason)

    async def _give_seat_back(self) -> None:
        """A seat won but not yet taken up (no NIP) goes back to the round for optimalisasi."""
        assert self.sheet.placed_formasi is not None
        try:
            await tell(
                SEAT_VACATED,
                round_workflow_id(self.start.round_id),
                sealed(
                    SeatVacated(
                        applicant_id=self.start.applicant_id,
                        formasi_code=self.sheet.placed_formasi,
                    ),
                    self.secret,
                ),
            )
        except ApplicationError as exc:
            # The round has ended (a late taker still filing when Latsar closed): nothing is
            # refilled then, and the journey goes on to its ending (patch seat-back-to-ended-round).
            if exc.type != ROUND_GONE or not self._patched(SEAT_BACK_TO_ENDED_ROUND):
                raise
            workflow.logger.warning(
                "journey %s: its round has ended; the seat it gives up is not refilled",
                workflow.info().workflow_id,
            )

    async def _seat_won_unheard(self) -> None:
        """Ended after its SKB answer was ranked and before the result reached it: wait for the
        result (the formasi tells every applicant it ranked), and give back a seat it names this
        applicant a winner of, so that optimalisasi fills it (patch seat-given-back-before-result)."""
        await workflow.wait_condition(lambda: Phase.FINAL_RESULT in self.announcements)
        result = self.announcements[Phase.FINAL_RESULT]
        if self.start.applicant_id not in result.winners:
            return
        self._set(placed_formasi=self.start.formasi.code)
        self._decide(
            ev.SeatGivenBack(
                during=self.sheet.stage,
                formasi=self.start.formasi.code,
                announcement_id=result.announcement_id,
            )
        )

    def _end(self, terminal: Terminal, reason: str) -> NoReturn:
        self._set(terminal=terminal, terminal_reason=reason)
        last = self.decisions[-1] if self.decisions else None
        caused_by_last = last is not None and last.outcome == terminal.value
        if self._patched("record-every-ending"):
            # The ending is its own decision unless the decision just made is the ending itself
            # (a TMS that ends three days later, when the appeal window closes, is recorded again).
            caused_by_last = caused_by_last and last is not None and last.at == workflow.now()
        if not caused_by_last:
            self._decide(
                ev.SelectionEnded(during=self.sheet.stage, terminal=terminal, reason=reason)
            )
        self.outbox.notify(f"end-{terminal.value}", notices.ended(terminal.value, reason))
        raise JourneyEnded()

    def _move_to(self, stage: Stage) -> None:
        self._set(stage=stage)

    async def _enter(self, stage: Stage) -> None:
        self._move_to(stage)
        await self._changed()

    async def _changed(self) -> None:
        await self.outbox.changed(*self._row())

    async def _write(self) -> None:
        await self.outbox.write(*self._row())

    def _notice_due(self) -> bool:
        """A TMT move or a notification waits to be written: the journey writes it itself, at once
        (a row handed to a close leaves notifications for the journey's next write)."""
        return self.row_to_write or bool(self.outbox.notifications)

    def _answer_close_with_row(self) -> None:
        """At rest after a close: the close's answer takes the row the journey would have written
        now, if any, and the broadcast writes it (a journey with nothing to write answers bare)."""
        waiting = self.close_waiting
        assert waiting is not None
        fields = {name: getattr(waiting, name) for name in CloseReply.model_fields}
        row = self.outbox.take(*self._row()) if self.outbox.unwritten else None
        self.close_replies[waiting.phase] = CloseAnswer(**fields, row=row)
        self.close_waiting = None

    def _row(self) -> tuple[JourneyState, str, str, list[Decision]]:
        # The trail travels as the outbox's new decisions; the row needs the state without it.
        reg = self.start.registration
        return (
            self.state().model_copy(update={"decisions": []}),
            reg.name,
            reg.category.value,
            self.decisions,
        )
