"""What arrives at an applicant's journey, and how it is recorded: the journey's message handlers.

Reports from services and the portal all take one path, the dynamic update: decoded by the
protocol table, judged by the sheet's rules in the validator (a refused report leaves no trace),
folded into the sheet by the handler (a repeat returns its first answer). The formasi closes SKD
and SKB with the `close_stage` update, answered from the sheet; the formasi and the round announce
by signal. The process that waits on all this is `workflows.applicant.ApplicantJourney`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import events as ev
    from domain import notices
    from domain.admission import registration_refusal
    from domain.codes import Phase, Stage
    from domain.digest import canonical_digest
    from domain.messages import (
        BLIND_REPORTS,
        Ack,
        Announcement,
        CloseReply,
        ConflictDeclaration,
        Decision,
        FinalEntryReply,
        JourneyRules,
        JourneyStart,
        JourneyState,
        OfferAnswer,
        OptimalisasiOffer,
        PanelReview,
        PanelScoreReport,
        RegistrationConfirm,
        RegistrationOutcome,
        Report,
        SkdEntryReply,
        validity_refusal,
    )
    from domain.optimalisasi import CandidateProfile
    from domain.panels import report_audiences
    from domain.protocol import (
        ANNOUNCE_UPDATE,
        FINAL_ENTRY,
        JOURNEY_REPORTS,
        OFFER_SEAT_UPDATE,
        SKD_ENTRY,
    )
    from domain.ranking import FinalEntry
    from domain.seal import seal_problem
    from domain.sheet import (
        ApplicantSheet,
        SkbResult,
        close_skb,
        close_skd,
        conflict_refusal,
        flag_scores,
        journey_state,
        panel_of,
        refusal,
        rule_for,
        unreviewed_flags,
        without_late_panel_changes,
    )
    from domain.signing import problem_for_every, signature_problem
    from domain.skd import SkdKey
    from workflows.calls import (
        changed_keys,
        decode,
        sealed_or_refused,
        signal_message,
        workflow_handle,
    )
    from workflows.ids import formasi_workflow_id
    from workflows.ledger import Ledger
    from workflows.outbox import ReadModelOutbox
    from workflows.versions import (
        OFFER_KEPT_UNTIL_OPTIMALISASI,
        PANEL_CHANGE_AFTER_CLOSE,
        PANEL_CHANGE_WRITTEN,
        PANEL_MARGIN_DECIMAL,
        SEALED_BEFORE_ADMISSION,
        TMT_MOVE_WRITTEN,
        TMT_NOTICE_PER_MOVE,
        patched,
    )

CLOSES = (Phase.SKD_CLOSED, Phase.SKB_CLOSED)
PHASES = frozenset(p.value for p in Phase)
ANSWER_BY_AHEAD = timedelta(days=366)  # an offer's answer_by: never later than this from now
SKEW = timedelta(days=1)  # a sender's clock: never more than this ahead of the receiver's
# Announcements kept until the journey is admitted and knows its round's secret: the round and
# its formasi send none before, in practice; past this many, more are ignored (an attacker's).
HELD_BEFORE_ADMISSION = 16
M = TypeVar("M", bound=BaseModel)


def _plausible_time(at: datetime, ahead: timedelta = SKEW) -> bool:
    """A time with a zone, not later than `ahead` from now (later ones overflow the arithmetic)."""
    return at.tzinfo is not None and at.utcoffset() is not None and at <= workflow.now() + ahead


def _before(a: Announcement, current: datetime | None) -> bool:
    """True when `a` was announced no later than the change the journey's view already holds
    (None: the journey was admitted by a round that does not say, or before it said)."""
    return current is not None and a.at <= current


def _iso_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _announcement_problem(a: Announcement) -> str | None:
    """Why `a` cannot be an announcement of the formasi or the round, or None."""
    if a.phase not in PHASES:
        return "the phase is not one of the round's phases"
    note_limit = 10_000 if a.phase == Phase.KEYS_CHANGED else 200  # keys of many identities
    if not 0 < len(a.announcement_id) <= 200 or len(a.note) > note_limit:
        return "the announcement id or note is empty or too long"
    if not _plausible_time(a.at):
        return "at is not a time with a zone, or is in the future"
    if a.phase == Phase.TMT_MOVED and a.note and _iso_date(a.note) is None:
        return "a TMT move whose note is not an ISO date"
    return None


class JourneyInbox:
    """The journey's updates, signals and queries, over the state the journey keeps."""

    start: JourneyStart
    rules: JourneyRules
    sheet: ApplicantSheet
    decisions: list[Decision]
    ledger: Ledger
    announcements: dict[str, Announcement]
    tmt_moves_seen: list[str]
    close_replies: dict[str, CloseReply]
    outbox: ReadModelOutbox
    skb_composed: SkbResult
    secret: str
    key_changes_seen: list[str]
    row_to_write: bool  # something changed the row while the journey waits: write it now
    close_with_row: bool  # patch close-answered-with-row
    close_waiting: CloseReply | None  # a close's answer, waiting for the row at the next rest
    resting: bool  # the run waits for something to arrive (ApplicantJourney._wait)
    run_done: bool  # the run has written its last row: a close now gets no row
    # (payload, report) of the report update just validated, for its handler (_report_of)
    _validated: tuple[object, Report] | None
    registration_confirmed: bool  # confirm_registration answered: later ones are refused
    admitted: bool  # the round's answer is in: its secret, rules and keys are this journey's
    held: list[tuple[object, ...]]  # announcements that came before admission (patch below)
    keys_current_at: datetime | None  # the latest key change this journey's keys include
    tmt_current_at: datetime | None  # the latest TMT move this journey's TMT includes

    # --- reports from services and the portal: one path for every kind ----------------------

    @workflow.update(dynamic=True)
    def report(self, name: str, args: Sequence[RawValue]) -> Ack:
        """Any report of the protocol's journey table (report_skd, file_appeal, withdraw, ...)."""
        report = self._report_of(name, args)
        rule = rule_for(report)
        refused = conflict_refusal(self.sheet, report, self.rules)
        taken: list[Report] = []  # the report, once the ledger applied it (not a repeat)

        def apply() -> None:
            before = self.sheet
            taken.append(report)
            folded = rule.fold(self.sheet, report)
            received = {**folded.received_at, report.report_id: workflow.now()}
            self.sheet = folded.but(received_at=received)
            if refused:
                self._decide(ev.PanelScoreRefused(report=report, reason=refused))
            elif isinstance(report, (PanelScoreReport, ConflictDeclaration, PanelReview)):
                self._panel_recorded(before, report)

        def answer() -> Ack:
            self.outbox.accepted(report.report_id, rule.label(report), report.record())
            return Ack(
                report_id=report.report_id,
                applicant_id=self.start.applicant_id,
                stage=self.sheet.stage,
                effect=refused or rule.effect(report),
                recorded_at=workflow.now(),
                refused=bool(refused),
            )

        ack = self.ledger.accept(report, apply, answer)
        if taken and isinstance(report, OfferAnswer):
            self._offer_answered_now(report)
        return ack

    def _offer_answered_now(self, answer: OfferAnswer) -> None:
        """The journey's (ApplicantJourney): an answer to its offer was just taken."""
        raise NotImplementedError

    @report.validator
    def validate_report(self, name: str, args: Sequence[RawValue]) -> None:
        self._validated = None
        report: Report = decode(
            JOURNEY_REPORTS, name, args, f"for applicant {self.start.applicant_id}"
        )
        if len(args) == 1:
            # The handler that follows in this activation gets the same payload: decoded once.
            self._validated = (args[0].payload, report)
        start = self.start
        audiences = report_audiences(
            workflow.info().workflow_id,
            start.round_id,
            start.candidate_code,
            isinstance(report, BLIND_REPORTS),
        )
        problem = problem_for_every(
            partial(signature_problem, report, self.rules.identities), audiences
        )
        if problem:
            self.ledger.refuse(report, problem)
        if self.ledger.is_repeat(report):
            return
        problem = validity_refusal(report, self.rules.identities, workflow.now()) or refusal(
            self.sheet, report, self.rules, workflow.now()
        )
        if problem:
            self.ledger.refuse(report, problem)

    def _report_of(self, name: str, args: Sequence[RawValue]) -> Report:
        """The report in `args`: as its validator decoded it just before, when it did (replay
        runs no validator, and decodes here; the result is the same)."""
        held, self._validated = self._validated, None
        if held is not None and len(args) == 1 and held[0] == args[0].payload:
            return held[1]
        return decode(JOURNEY_REPORTS, name, args, f"for applicant {self.start.applicant_id}")

    # --- from the formasi and the round -------------------------------------------------------

    @workflow.update
    async def close_stage(self, announcement: Announcement) -> CloseReply:
        """The formasi closes SKD or SKB; the answer is what this applicant ranks by, if anything.

        The answer travels back in the update's result, so closing costs the journey no signal. A
        repeat, from a retried broadcast page, gets the first answer again. Since the patch
        close-answered-with-row the answer waits for the journey to come to rest after the close
        (in the same workflow task) and carries its read-model row, which the broadcast writes.
        """
        known = self.close_replies.get(announcement.phase)
        if known is not None:
            return known
        waiting = self.close_waiting
        if waiting is not None and waiting.phase == announcement.phase:
            await workflow.wait_condition(lambda: announcement.phase in self.close_replies)
            return self.close_replies[announcement.phase]
        self.announcements.setdefault(announcement.phase, announcement)
        closing_skd = announcement.phase == Phase.SKD_CLOSED
        entry = None if closing_skd else self._close_skb(announcement.at)
        reply = CloseReply(
            applicant_id=self.start.applicant_id,
            phase=announcement.phase,
            key=self._close_skd(announcement.at) if closing_skd else None,
            entry=entry,
            profile=self._profile() if entry is not None else None,
        )
        # Only a journey at rest waits for its row (it has it within this workflow task); one busy
        # elsewhere (a local activity, a signal on its way) answers at once, as before the patch.
        if self.close_with_row and self.resting and not self.run_done:
            self.close_waiting = reply
            await workflow.wait_condition(lambda: self.close_waiting is None or self.run_done)
            self.close_waiting = None
        return self.close_replies.setdefault(announcement.phase, reply)

    @close_stage.validator
    def validate_close_stage(self, announcement: Announcement) -> None:
        problem = None
        if not self.admitted:
            # Before its admission the journey cannot tell its round's seal from none. The
            # formasi's page fails and is tried again, by when the journey has been admitted.
            problem = "the journey is not admitted by its round yet: it takes no close before"
        elif announcement.phase not in CLOSES:
            problem = f"phase {announcement.phase!r} is not one of {', '.join(CLOSES)}"
        elif announcement.phase not in self.close_replies:  # a repeat gets its first answer
            problem = seal_problem(announcement, self.secret)
        if problem:
            raise ApplicationError(
                f"close_stage for applicant {self.start.applicant_id}: {problem}",
                type="ReportRefused",
                non_retryable=True,
            )

    @workflow.signal
    async def announce(self, *args: object) -> None:
        """A phase closed or a result is out. Repeats (by announcement id) change nothing.

        Anyone who reaches Temporal can signal: what the formasi or the round could not have sent
        is ignored with a warning (the argument is decoded here, so that no argument count or
        content can fail the workflow task).
        """
        if not self.admitted and self._patched(SEALED_BEFORE_ADMISSION):
            # Before its admission the journey does not know its round's secret, and an unsealed
            # announcement would pass as one of a round without seals (a forged administration
            # result 30 days old made a TMS): kept, and judged once the round has answered.
            if len(self.held) < HELD_BEFORE_ADMISSION:
                self.held.append(args)
            else:
                self._ignored("announce", "more announcements before admission than are kept")
            return
        await self._announced(args)

    @workflow.update(name=ANNOUNCE_UPDATE.name)
    async def announce_update(self, *args: object) -> bool:
        """`announce` as an update (domain.protocol.ANNOUNCE_UPDATE): the broadcast sends it once
        this run takes no more signals, because another sender spent them. Judged as the signal
        is; a repeat (by announcement id) changes nothing."""
        await self._announced(args)
        return True

    @announce_update.validator
    def validate_announce_update(self, *args: object) -> None:
        self._sealed_or_refused(Announcement, args, ANNOUNCE_UPDATE.name, _announcement_problem)

    async def _take_held(self) -> None:
        """The announcements that came before admission, judged now that the secret is known."""
        held, self.held = self.held, []
        for args in held:
            await self._announced(args)

    async def _announced(self, args: tuple[object, ...]) -> None:
        announcement = signal_message(Announcement, args, self.secret)
        problem = (
            announcement if isinstance(announcement, str) else _announcement_problem(announcement)
        )
        if problem:
            self._ignored("announce", problem)
            return
        assert isinstance(announcement, Announcement)
        if announcement.formasi_code and announcement.formasi_code != self.start.formasi.code:
            # A result of another formasi of the round (sealed with the same secret): copied.
            self._ignored("announce", "a result of another formasi, not of this journey's")
            return
        if announcement.announcement_id in {a.announcement_id for a in self.announcements.values()}:
            return
        if announcement.phase == Phase.KEYS_CHANGED:
            self._change_keys(announcement)
            return
        if announcement.phase == Phase.TMT_MOVED:
            # The TMT can move more than once: each move is its own announcement.
            if announcement.announcement_id not in self.tmt_moves_seen:
                if _before(announcement, self.tmt_current_at):
                    self._ignored("announce", "a TMT move older than the TMT this journey has")
                    return
                self.tmt_moves_seen.append(announcement.announcement_id)
                if self.tmt_current_at is not None:
                    self.tmt_current_at = announcement.at
                if self.sheet.terminal is None and announcement.note:
                    self._move_tmt(announcement)
            return
        if announcement.phase in self.announcements:
            return
        self.announcements[announcement.phase] = announcement
        # Closes by signal, answered by signal: formasi runs before the patch close-by-update.
        formasi = workflow_handle(formasi_workflow_id(self.start.round_id, self.start.formasi.code))
        try:
            if announcement.phase == Phase.SKD_CLOSED:
                await SKD_ENTRY.send(
                    formasi,
                    SkdEntryReply(applicant_id=self.start.applicant_id, key=self._close_skd()),
                )
            elif announcement.phase == Phase.SKB_CLOSED:
                entry = self._close_skb()
                await FINAL_ENTRY.send(
                    formasi,
                    FinalEntryReply(
                        applicant_id=self.start.applicant_id,
                        entry=entry,
                        profile=self._profile() if entry is not None else None,
                    ),
                )
        except Exception as exc:  # noqa: BLE001 - a formasi that has ended cannot take the answer
            self._ignored(
                "announce", f"the answer to {announcement.phase} was not delivered: {exc}"
            )

    @workflow.update(name=OFFER_SEAT_UPDATE.name)
    def offer_seat_update(self, *args: object) -> bool:
        """`offer_seat` as an update (domain.protocol.OFFER_SEAT_UPDATE): what the round's offers
        are sent as once this run takes no more signals, because another sender spent them."""
        self.offer_seat(*args)
        return True

    @offer_seat_update.validator
    def validate_offer_seat_update(self, *args: object) -> None:
        self._sealed_or_refused(OptimalisasiOffer, args, OFFER_SEAT_UPDATE.name)

    def _sealed_or_refused(
        self,
        model: type[BaseModel],
        args: tuple[object, ...],
        name: str,
        extra: Callable[[Any], str | None] = lambda _: None,
    ) -> None:
        """An update standing for a signal: sealed by the round's workflows, and taken only once
        the journey is admitted (as for a close: the sender's attempt fails and is tried again,
        by when it has been; the signal path keeps what came before, an update cannot wait)."""
        subject = f"{name} for applicant {self.start.applicant_id}"
        if not self.admitted:
            raise ApplicationError(
                f"{subject}: the journey is not admitted by its round yet: it takes none before",
                type="ReportRefused",
                non_retryable=True,
            )
        sealed_or_refused(model, args, self.secret, subject, extra=extra)

    @workflow.signal
    def offer_seat(self, *args: object) -> None:
        """The round offers an optimalisasi seat (an offer the round could not have made is ignored)."""
        offer = signal_message(OptimalisasiOffer, args, self.secret)
        if isinstance(offer, str):
            self._ignored("offer_seat", offer)
            return
        if offer in (self.sheet.offer, self.offer_after_end):
            # The offer held, again: its sender delivers at least once (send_offers retried
            # after a worker stopped mid-way). Nothing to change, and nothing to warn about.
            return
        problem = None
        if self.sheet.stage != Stage.OPTIMALISASI and not (
            # Not yet told its final result (the round offers as soon as every result is in):
            # kept until the journey is in optimalisasi; or ended, still writing its last row:
            # declined when the run ends (patch offer-kept-until-optimalisasi).
            self.sheet.stage in (Stage.FINAL_RANKING, Stage.FINAL_APPEAL, Stage.ENDED)
            and self._patched(OFFER_KEPT_UNTIL_OPTIMALISASI)
        ):
            problem = f"the journey is not in optimalisasi (it is in {self.sheet.stage})"
        elif self.sheet.offer is not None:
            problem = "the journey already holds an offer"
        elif offer.offer_id != (
            f"{self.start.round_id}/offer/{self.start.applicant_id}/{offer.to_formasi}"
        ):
            problem = "the offer id is not the round's offer to this applicant"
        elif not _plausible_time(offer.answer_by, ahead=ANSWER_BY_AHEAD):
            problem = "answer_by is not a time with a zone within a year from now"
        if problem:
            self._ignored("offer_seat", problem)
            return
        if self.sheet.stage == Stage.ENDED:
            self.offer_after_end = offer
            return
        self._set(offer=offer)

    def _panel_recorded(
        self, before, report: PanelScoreReport | ConflictDeclaration | PanelReview
    ) -> None:
        """What a panel report changed, as decisions: the panel after a conflict or a review, and
        the scores the panel's margin now flags."""
        component = self.rules.skb.component(report.component)
        if component is None:
            return
        if isinstance(report, (ConflictDeclaration, PanelReview)):
            struck = before.panel.get(report.component, {}).get(report.panellist)
            gone = struck is not None and report.panellist not in self.sheet.panel.get(
                report.component, {}
            )
            self._decide(
                ev.PanelChanged(
                    component=report.component,
                    cause=report,
                    panellists=panel_of(self.sheet, component) or [],
                    struck=struck.score if gone and struck is not None else None,
                )
            )
            if self._patched(PANEL_CHANGE_WRITTEN):
                self.row_to_write = True  # the sheets read the panel from the read model
        flagged = flag_scores(self.sheet, self.rules)
        in_floats = flag_scores(self.sheet, self.rules, exact=False)
        if flagged.flags != in_floats.flags and not self._patched(PANEL_MARGIN_DECIMAL):
            flagged = in_floats  # a tie on the margin, recorded before the decimal rule
        known = self.sheet.flags.get(report.component, {})
        for panellist, reason in flagged.flags.get(report.component, {}).items():
            if panellist not in known:
                self._decide(
                    ev.PanelScoreFlagged(
                        component=report.component, panellist=panellist, reason=reason
                    )
                )
        self.sheet = flagged

    def _change_keys(self, announcement: Announcement) -> None:
        """The round gave identities new keys: reports are checked against them from now on.

        Only a sealed journey takes a key change (an unsealed one is of a round recorded before
        seals, where a forged change could not be told from the round's)."""
        keys = changed_keys(announcement.note)
        if not self.secret or keys is None:
            self._ignored("announce", "a key change this journey cannot verify came from its round")
            return
        if announcement.announcement_id in self.key_changes_seen:
            return
        if _before(announcement, self.keys_current_at):
            # Announced before the keys the journey was admitted with, or took since: an old key
            # change, copied from another journey's history, would switch a revoked key back on.
            self._ignored("announce", "a key change older than the keys this journey has")
            return
        self.key_changes_seen.append(announcement.announcement_id)
        if self.keys_current_at is not None:
            self.keys_current_at = announcement.at
        self.rules = self.rules.model_copy(update={"identities": {**self.rules.identities, **keys}})

    def _ignored(self, signal: str, problem: str) -> None:
        """Log a signal that changes nothing: the signal, the workflow and why; never its content."""
        workflow.logger.warning(
            "signal %s to %s ignored: %s", signal, workflow.info().workflow_id, problem
        )

    # --- from RecruitmentApi.register, with the start -------------------------------------------

    @workflow.update
    async def confirm_registration(self, confirm: RegistrationConfirm) -> RegistrationOutcome:
        """Answered once the journey has judged its admission and written its first row (or
        refused the registration and ended): the registration is answered with what the
        applicant will see, and a burst of starts waits for the journeys' first tasks.

        Changes nothing the run reads: only the flag by which its validator refuses a second one."""
        await workflow.wait_condition(lambda: self.outbox.rows_written > 0)
        self.registration_confirmed = True
        return RegistrationOutcome(
            applicant_id=self.start.applicant_id,
            stage=self.sheet.stage,
            refused=registration_refusal(self.state()),
        )

    @confirm_registration.validator
    def validate_confirm_registration(self, confirm: RegistrationConfirm) -> None:
        problem = None
        if self.registration_confirmed:
            problem = "the registration was confirmed already; ask registration_digest"
        elif confirm.registration_digest != canonical_digest(self.start.registration):
            problem = "the digest is not that of the registration this journey was started with"
        if problem:
            raise ApplicationError(
                f"confirm_registration for applicant {self.start.applicant_id}: {problem}",
                type="ReportRefused",
                non_retryable=True,
            )

    @workflow.query
    def registration_digest(self) -> str:
        """Digest of the registration: lets a repeated import tell a repeat from a conflict."""
        return canonical_digest(self.start.registration)

    @workflow.query
    def state(self) -> JourneyState:
        """The journey's current stage, codes and full decision trail."""
        return journey_state(self.sheet, self.start.round_id, self.decisions)

    # --- shared with the process ---------------------------------------------------------------

    def _close_skd(self, closed_at: datetime | None = None) -> SkdKey | None:
        self.sheet, key, late = close_skd(self.sheet, self.rules, closed_at)
        self._record_late(late, closed_at)
        return key

    def _close_skb(self, closed_at: datetime | None = None) -> FinalEntry | None:
        # A conflict or review accepted after the round closed the SKB (before its close reached
        # this journey) counts no more than a score then does: what it struck stands again.
        undone, late_changes = without_late_panel_changes(self.sheet, closed_at)
        if late_changes and self._patched(PANEL_CHANGE_AFTER_CLOSE):
            self.sheet = undone
            self._record_late(late_changes, closed_at)
        if self.sheet.stage == Stage.SKB and self.sheet.terminal is None:
            for component, panellists in unreviewed_flags(self.sheet).items():
                for panellist in panellists:
                    self._decide(ev.PanelFlagUnreviewed(component=component, panellist=panellist))
        self.sheet, self.skb_composed, late = close_skb(self.sheet, self.rules, closed_at)
        self._record_late(late, closed_at)
        return self.skb_composed.entry

    def _profile(self) -> CandidateProfile:
        """What optimalisasi's pool needs of this applicant besides its final entry."""
        return CandidateProfile(
            major=self.sheet.registration.major, applied_on=self.start.applied_on
        )

    def _record_late(self, late: Sequence[Report], closed_at: datetime | None) -> None:
        for report in late:
            assert closed_at is not None
            self._decide(
                ev.ReportAfterClose(
                    during=self.sheet.stage,
                    report=report,
                    received_at=self.sheet.received_at[report.report_id],
                    closed_at=closed_at,
                )
            )

    def _move_tmt(self, announcement: Announcement) -> None:
        new_tmt = date.fromisoformat(announcement.note)
        if new_tmt != self.sheet.tmt:
            self._decide(
                ev.TmtMoved(
                    during=self.sheet.stage,
                    old=self.sheet.tmt,
                    new=new_tmt,
                    announcement_id=announcement.announcement_id,
                )
            )
            self._set(tmt=new_tmt)
            if workflow.patched(TMT_MOVE_WRITTEN):
                # The NIP, once issued, never changes; the SK's TMT and the record do.
                key = f"tmt-moved-{new_tmt.isoformat()}"
                if workflow.patched(TMT_NOTICE_PER_MOVE):
                    key += "-" + announcement.announcement_id.rsplit("/", 1)[-1]
                self.outbox.notify(key, notices.tmt_moved(new_tmt, self.sheet.nip))
                self.row_to_write = True

    def _decide(self, event: ev.JourneyEvent) -> None:
        self.decisions.append(
            event.record(workflow.now(), self.rules.rule_version, self.rules.rules_digest)
        )

    def _set(self, **facts) -> None:
        self.sheet = self.sheet.but(**facts)

    def _patched(self, patch: str) -> bool:
        return patched(patch, self.start.engine_version)
