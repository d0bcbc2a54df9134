"""RecruitmentRound: the round's schedule on durable timers, operator commands, optimalisasi."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import NoReturn, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from domain.appointment import tmt_move_problem
    from domain.codes import WINDOWS, Phase, RoundPhase
    from domain.config import (
        Formasi,
        ReportKind,
        RoundConfig,
        early_close_refusal,
        extended,
        parse_round_config,
        sanggah_answered_by,
    )
    from domain.contracts import OfferSend, OfferSends
    from domain.digest import canonical_json
    from domain.messages import (
        PUBLICATION_RECORDED,
        Ack,
        Announcement,
        ChangeKeys,
        CloseWindow,
        Decision,
        ExtendWindow,
        FormasiResult,
        FormasiStart,
        JourneyRules,
        MoveTmt,
        OfferReply,
        OptimalisasiOffer,
        RecordPublication,
        Report,
        RoundBoard,
        RoundBoardWrite,
        RoundCarry,
        RoundStart,
        RoundState,
        RoundView,
        SeatVacated,
        record_refusal,
        recorded_publications,
        validity_refusal,
    )
    from domain.national import beyond_national_window
    from domain.optimalisasi import (
        OFFER_UNANSWERED,
        OFFERS_BY_LOCAL_ACTIVITY_COSTS,
        SIGNAL_COSTS,
        CandidateProfile,
        Offer,
        OptimalisasiCandidate,
        Vacancy,
        allocate,
        handed_on,
        impossible_entry,
        local_date,
        offer_room,
        seats_by_formasi,
    )
    from domain.pages import (
        CANDIDATES,
        LINES,
        MAX_PAGE_ITEMS,
        OFFERS,
        AllocationRequest,
        AllocationResult,
        Candidate,
        PageKeep,
        PageRead,
        PageRef,
        ResultPages,
        ids_of,
    )
    from domain.protocol import (
        ALLOCATE_PAGES,
        FORMASI_PHASE,
        FORMASI_RESULT_UPDATE,
        KEEP_PAGE,
        OFFER_REPLY_UPDATE,
        OFFER_SEAT,
        PUBLISH_ROUND_BOARD,
        READ_PAGE,
        SEAT_VACATED_UPDATE,
        SEND_OFFERS,
    )
    from domain.ranking import FinalEntry
    from domain.seal import sealed
    from domain.signing import SigningKeyError, public_key, signature_problem
    from runtime.attributes import FORMASI_CODE, RECRUITMENT_STAGE, ROUND_ID, WORKFLOW_KIND
    from workflows.calls import (
        PAGE_TIMEOUT,
        fold_pages,
        run_local_activity_until_done,
        sealed_or_refused,
        signal_message,
        tell,
        workflow_handle,
    )
    from workflows.formasi import FormasiSelection
    from workflows.ids import formasi_workflow_id, journey_workflow_id
    from workflows.ledger import Ledger, decision
    from workflows.versions import (
        ALLOCATION_OVER_PAGES,
        ANNOUNCEMENT_NUMBERED_AT_COMMAND,
        APPEAL_DAYS_END_AT_MIDNIGHT,
        COMMANDS_AFTER_RUN_BEGINS,
        CONTINUE_IN_ITS_OWN_TASK,
        FILING_CLOSE_RECORDED,
        FINAL_SANGGAH,
        FORMASI_STARTED_TOGETHER,
        LATE_TAKER_FILING_TIME,
        LOCAL_ACTIVITY_BACKOFF_TIMERS,
        OFFERED_PAGES_FOLDED,
        OFFERS_BY_LOCAL_ACTIVITY,
        OPTIMALISASI_ANSWER_DEADLINE,
        OPTIMALISASI_BUDGET,
        OPTIMALISASI_BY_CHANGE,
        OPTIMALISASI_CONTINUES,
        OPTIMALISASI_FILLS_MOST,
        OPTIMALISASI_POOL,
        OPTIMALISASI_SEAT_GIVEN_UP_ONCE,
        OPTIMALISASI_SHARE_PER_RUN,
        OPTIMALISASI_UNTIL_FILING_CLOSES,
        REGISTRATION_MINIMUM,
        ROUND_VIEW_BOARD,
    )

M = TypeVar("M", bound=BaseModel)  # a signal's message (RecruitmentRound._signal_message)
OFFERS_PER_TASK = 500  # optimalisasi offers sent together (patch optimalisasi-by-change)

# The windows before the final ranking, and what the formasi are told when each closes.
SELECTION_WINDOWS = {
    RoundPhase.REGISTRATION: None,
    RoundPhase.ADMINISTRATION: Phase.ADMINISTRATION,
    RoundPhase.SKD: Phase.SKD_CLOSED,
    RoundPhase.SKB: Phase.SKB_CLOSED,
}
# After the final sanggah's window and answer time: time for the corrections that journeys send
# on their last accepted answers to reach their formasi before it confirms its ranking.
CORRECTION_MARGIN = timedelta(seconds=2)
BOARD_WRITE_TIMEOUT = timedelta(seconds=15)
ALLOCATION_TIMEOUT = timedelta(minutes=30)  # reads every candidate page of the round
CONTINUE_AFTER = timedelta(milliseconds=10)  # patch continue-in-its-own-task: a task boundary
SEND_OFFERS_TIMEOUT = timedelta(seconds=60)  # up to OFFERS_PER_TASK signals, 32 at a time


def journey_rules(config: RoundConfig) -> JourneyRules:
    """The rules every journey of the round is judged by, with their digest."""
    return JourneyRules(
        rule_version=config.rule_version,
        rules_digest=config.digest(),
        skd=config.skd,
        skb=config.skb,
        integration=config.integration,
        appeal=config.appeal,
        reporters=config.reporters,
        withdrawal_sanction_rounds=config.withdrawal_sanction_rounds,
        identities=config.identities,
        timezone=config.timezone,
        probation_ends=config.schedule.probation_ends,
    )


@workflow.defn
class RecruitmentRound:
    """One instansi's round: phases on durable timers from the configured schedule."""

    @workflow.init
    def __init__(self, start: RoundStart) -> None:
        self.config = parse_round_config(start.config, "round configuration")
        self.schedule = self.config.schedule
        self.phase = RoundPhase.REGISTRATION
        self.closed: list[str] = []
        self.closed_at: dict[str, datetime] = {}  # window -> when the round closed it
        self.secret = ""  # seals the messages of the round's own workflows (domain/seal.py)
        self.identities = dict(self.config.identities)  # the keys in force (change_keys)
        self.journey_rules = journey_rules(self.config)  # built once: every admission asks for it
        self.early: dict[str, str] = {}
        self.schedule_changed = False
        self.decisions: list[Decision] = []
        self.ledger = Ledger("command", "", "CommandRefused")
        self.results: dict[str, FormasiResult] = {}
        # Results kept as pages (patch paged-ranking, decided by the formasi): read from the page
        # store when optimalisasi needs them; not in the state query, which stays small.
        self.page_candidates: dict[str, list[FinalEntry]] = {}
        self.page_profiles: dict[str, CandidateProfile] = {}
        self.page_winners: dict[str, set[str]] = {}
        self.offers_in_run = 0  # offers this run made (optimalisasi_offers_per_run)
        self.offer_targets: dict[str, str] = {}  # offer id -> applicant id
        self.offer_status: dict[str, str] = {}
        self.offers_answered = 0  # offers no longer pending: counted, not summed at every wake
        self.offers_declined = 0  # of which declined (or not delivered, or unanswered)
        # Patch optimalisasi-answer-deadline, decided in each run the first time it waits for an
        # answer or continues (None: not yet); the answer_by of the latest offer made, and the task that
        # sleeps until it plus the round's grace.
        self.answer_deadline: bool | None = None
        self.last_answer_by: datetime | None = None
        self.deadline_watch: asyncio.Task | None = None
        # Patch optimalisasi-by-change: the declines and seats given up counted at the last
        # allocation, and those its decisions have recorded.
        self.allocated_after: tuple[int, int] | None = None
        self.recorded_declined: set[str] = set()
        self.recorded_given_up: set[str] = set()
        self.vacated: dict[str, str] = {}  # applicant id -> formasi whose seat it gave up
        # Patch optimalisasi-budget: signals received (Temporal refuses a run's 10,001st); an
        # allocation cut to the history budget (allocate again once its offers are answered);
        # and the stop, once nothing is pending and no offer fits.
        self.signals_received = 0
        # Commands taken, repeats included: one ends the pause of a board write that waits out a
        # read-model outage (patch local-activity-growing-pause), so a command sent again once the
        # database is back is acknowledged at once.
        self.commands_taken = 0
        self.backoff_timers = False  # patch local-activity-backoff-timers, decided when run starts
        self.offers_cut = False
        self.offers_stopped = False
        # Patch optimalisasi-until-filing-closes: seats given up during filing are offered again.
        self.refill_in_filing = False
        # Patch optimalisasi-seat-given-up-once, decided when a seat's optimalisasi taker gives it up.
        self.given_up_once = False
        # Patch optimalisasi-share-per-run, decided in each run the first time its share would be
        # passed (None: not yet).
        self.share_per_run: bool | None = None
        # Patch offered-pages-folded, decided in each run the first time its list of offered pages
        # reaches fold_pages_at (None: not yet).
        self.folds_offered: bool | None = None
        self.final_sanggah = False  # patch final-sanggah: the sanggah against the final result
        # Patch round-view-board: the view journeys are judged by, written where they read it.
        self.keeps_board = False
        self.keeps_registration_open = False  # patch registration-minimum, decided when run starts
        # When this run last changed keys or moved the TMT: the view says so (RoundView), and a
        # journey admitted with it takes no change announced earlier.
        self.keys_changed_at: datetime | None = None
        self.tmt_moved_at: datetime | None = None
        # Whether run has decided the patches above and started every formasi (a continued run:
        # it had); a command that comes first waits for it (patch commands-after-run-begins).
        self.run_began = start.carry is not None
        self.board: RoundBoard | None = None  # as last published
        self.board_version = 0
        self.board_written = 0  # the highest version known written
        self.board_writes: list[asyncio.Task] = []  # written meanwhile (_publish_board_meanwhile)
        self.created_by = start.created_by
        self.offer_formasi: dict[str, str] = {}  # offer id -> the formasi it offers a seat in
        # Patch optimalisasi-continues: decided when optimalisasi begins; the runs before this one,
        # the decisions they left in their histories, and the allocations this run recorded.
        self.start = start
        self.continues: bool | None = None
        self.runs = 0
        self.decisions_left = 0
        self.allocations_in_run = 0
        # What this run knows of the offers of the runs before it: the applicants offered, as
        # pages and the rest (also kept by this run for its own offers), the offers accepted by
        # formasi, and the declines no allocation has recorded yet.
        self.offered_pages: list[PageRef] = []
        self.offered_tail: list[str] = []
        self.accepted_before: dict[str, int] = {}
        self.declined_before: set[str] = set()
        if start.carry is not None:
            self._resume(RoundCarry.model_validate(start.carry))
        else:
            # Here, not in run: a command that reaches the round in its first task is handled
            # before run begins, and is still recorded after the round opened.
            self._decide(
                RoundPhase.REGISTRATION,
                "round opened",
                self.created_by,
                {"rules_digest": self.config.digest()},
            )

    @workflow.run
    async def run(self, start: RoundStart) -> RoundState:
        if start.carry is not None:
            # Continued in optimalisasi or filing (patch optimalisasi-continues): on from there. The
            # offers carried are counted by formasi, so a seat given up is counted once.
            self._seat_given_up_once()
            await self._optimalisasi_until_filing_closes()
            return await self._to_the_close()
        if workflow.patched("sealed-messages"):
            # Drawn from the workflow's deterministic random, so replay draws the same.
            self.secret = f"{workflow.random().getrandbits(256):064x}"
        # Decided before the formasi start and before any journey asks the round for its view.
        self.final_sanggah = workflow.patched(FINAL_SANGGAH)
        self.keeps_board = workflow.patched(ROUND_VIEW_BOARD)
        self.backoff_timers = workflow.patched(LOCAL_ACTIVITY_BACKOFF_TIMERS)
        self.keeps_registration_open = workflow.patched(REGISTRATION_MINIMUM)
        self._publish_board_meanwhile()
        await self._start_formasi()
        self.run_began = True
        for phase, told in SELECTION_WINDOWS.items():
            self._enter(phase)
            await self._until_closed(phase)
            self._window_closed(phase)
            if phase == RoundPhase.REGISTRATION:
                self._publish_board_meanwhile()
            if told is not None:
                await self._tell_formasi(told)
        self._enter(RoundPhase.FINAL_APPEAL)
        await workflow.wait_condition(lambda: len(self.results) == len(self.config.formasi))
        if self.final_sanggah:
            await self._final_sanggah()
        else:
            await workflow.sleep(self.config.appeal.window)
        self._enter(RoundPhase.OPTIMALISASI)
        if workflow.patched(OPTIMALISASI_UNTIL_FILING_CLOSES):
            # A seat given up before the filing window closes still goes to the next in the pool:
            # those who lost on rank wait in optimalisasi until filing closes.
            self.refill_in_filing = True
            await self._optimalisasi_until_filing_closes()
        else:
            await self._optimalisasi()
            await self._tell_formasi(Phase.OPTIMALISASI_CLOSED)
            self._enter(RoundPhase.FILING)
            await self._until_closed(RoundPhase.FILING)
        return await self._to_the_close()

    async def _optimalisasi_until_filing_closes(self) -> None:
        """Optimalisasi, then filing, during which a seat given up still goes to the next in the
        pool (patch optimalisasi-until-filing-closes); a continued run starts in either."""
        if self.phase == RoundPhase.OPTIMALISASI:
            await self._optimalisasi()
            self._enter(RoundPhase.FILING)
        # Every seat given up before filing closes goes to the next in the pool; offers made
        # before the close are answered before it takes effect.
        await self._until_closed(RoundPhase.FILING, each_wake=self._optimalisasi)
        if workflow.patched(FILING_CLOSE_RECORDED):
            # Recorded as every window before it is: the moment it took effect, which is after
            # its scheduled close when an offer's answer was waited for.
            self._window_closed(
                RoundPhase.FILING, scheduled=self.schedule.filing.closes.isoformat()
            )
        await self._tell_formasi(Phase.OPTIMALISASI_CLOSED)

    def _window_closed(self, phase: RoundPhase, **inputs: str) -> None:
        """Record that a window closed now, with whether it closed early and any `inputs`."""
        self.closed.append(phase)
        self.closed_at[phase] = workflow.now()
        self._decide(phase, "window closed", "schedule", {"early": self.early.get(phase), **inputs})

    async def _to_the_close(self) -> RoundState:
        """From filing's close to the round's: Latsar, then closed."""
        await self._tell_formasi(Phase.FILING_CLOSED)
        self._enter(RoundPhase.LATSAR)
        await self._until_closed(RoundPhase.LATSAR)
        await self._tell_formasi(Phase.ROUND_CLOSED)
        self._enter(RoundPhase.CLOSED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _final_sanggah(self) -> None:
        """Take the sanggah against the final result, then have every formasi confirm its ranking.

        Each journey takes a sanggah within the window from its final announcement and the
        instansi's answer within its time from the filing (domain/sheet.py). Every announcement was
        made before its formasi's result reached the round, so once the window and the answer
        time have passed since the last result, no journey takes anything more; the margin lets
        the corrections that journeys send on their last accepted answers reach their formasi.
        """
        appeal = self.config.appeal
        if workflow.patched(APPEAL_DAYS_END_AT_MIDNIGHT):
            # Each window ends at 24:00 of its last day, and so does each answer time counted
            # from a filing made on that day at the latest (domain/sheet.py, deadlines_by_day).
            # (The answer time is above 0, so that is never before the window's close.)
            due = sanggah_answered_by(workflow.now(), appeal, self.config.timezone)
            await workflow.sleep(due - workflow.now() + CORRECTION_MARGIN)
        else:
            await workflow.sleep(appeal.window + appeal.answer_within + CORRECTION_MARGIN)
        self._decide(RoundPhase.FINAL_APPEAL, "window closed", "schedule", {})
        await self._tell_formasi(Phase.FINAL_APPEAL_CLOSED)
        await workflow.wait_condition(
            lambda: (
                all(r.confirmed for r in self.results.values())
                and len(self.results) == len(self.config.formasi)
            )
        )

    async def _read_result_pages(self) -> None:
        """Read the winners and candidates of every result kept as pages (once), each page checked
        against its digest, and take the candidates as `_result_problem` takes listed ones.

        Only when a seat is empty: a round whose formasi all filled their quota never reads its
        candidates, and its history does not grow with them. Until then a seat given up is taken
        at its (sealed) word, as before a result is in."""
        if not any(self._vacancies(f.code) > 0 for f in self.config.formasi):
            return
        for code, result in sorted(self.results.items()):
            if not result.paged or code in self.page_candidates:
                continue
            winners: set[str] = set()
            for ref in result.winner_pages:
                winners.update(ids_of(await self._read_page(LINES, ref)))
            entries: list[FinalEntry] = []
            for ref in result.candidate_pages:
                for item in await self._read_page(CANDIDATES, ref):
                    candidate = Candidate.model_validate(item)
                    if (
                        impossible_entry(candidate.entry, code)
                        or candidate.entry.applicant_id in winners
                    ):
                        workflow.logger.warning(
                            "round %s: a candidate of formasi %s ignored: another formasi's, "
                            "impossible, or also a winner",
                            self.config.round_id,
                            code,
                        )
                        continue
                    entries.append(candidate.entry)
                    if candidate.profile is not None:
                        self.page_profiles[candidate.entry.applicant_id] = candidate.profile
            self.page_winners[code] = winners
            self.page_candidates[code] = entries

    async def _read_page(self, kind: str, ref: PageRef) -> list:
        return await run_local_activity_until_done(
            READ_PAGE,
            PageRead(kind=kind, page=ref),
            PAGE_TIMEOUT,
            backoff_timers=self.backoff_timers,
        )

    def _enter(self, phase: RoundPhase) -> None:
        """Move to a phase; the RecruitmentStage search attribute lets operators filter rounds by it."""
        self.phase = phase
        if workflow.patched("stage-search-attribute"):
            workflow.upsert_search_attributes([RECRUITMENT_STAGE.value_set(phase.value)])

    async def _start_formasi(self) -> None:
        """Start every formasi: together, in one workflow task (patch formasi-started-together),
        or one task per formasi, as rounds recorded before it did."""
        if workflow.patched(FORMASI_STARTED_TOGETHER):
            await asyncio.gather(*(self._start_one_formasi(f) for f in self.config.formasi))
        else:
            for f in self.config.formasi:
                await self._start_one_formasi(f)

    async def _start_one_formasi(self, f: Formasi) -> None:
        handle = await workflow.start_child_workflow(
            FormasiSelection.run,
            FormasiStart(
                round_id=self.config.round_id,
                formasi=f,
                rules=self.journey_rules,
                page_size=self.config.broadcast_page_size,
                fold_pages_at=self.config.fold_pages_at,
                secret=self.secret,
                final_sanggah=self.final_sanggah,
            ),
            id=formasi_workflow_id(self.config.round_id, f.code),
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(ROUND_ID, self.config.round_id),
                    SearchAttributePair(FORMASI_CODE, f.code),
                    SearchAttributePair(WORKFLOW_KIND, "formasi"),
                ]
            ),
        )
        handle.add_done_callback(self._formasi_ended)

    def _formasi_ended(self, ended) -> None:
        """A formasi that fails or is terminated is worth a warning; its history says why."""
        if not ended.cancelled() and ended.exception() is not None:
            workflow.logger.warning("a formasi workflow ended abnormally: %s", ended.exception())

    async def _until_closed(self, phase: RoundPhase, each_wake=None) -> None:
        """Sleep until the window closes; an extension or an early close wakes the timer. With
        `each_wake`, a seat given up wakes it too, and `each_wake` runs first and at every wake."""
        while True:
            if each_wake is not None:
                await each_wake()
            if phase in self.early:
                return
            vacated = len(self.vacated)
            remaining = getattr(self.schedule, phase).closes - workflow.now()
            if remaining <= timedelta(0):
                return
            self.schedule_changed = False
            try:
                await workflow.wait_condition(
                    lambda vacated=vacated: (
                        self.schedule_changed
                        or phase in self.early
                        or (each_wake is not None and len(self.vacated) > vacated)
                    ),
                    timeout=remaining,
                )
            except TimeoutError:
                return

    def _decisions_so_far(self) -> int:
        """Decisions over every run: a continued run's announcement ids stay new."""
        return self.decisions_left + len(self.decisions)

    def _command_number(self) -> int | None:
        """The number the announcement of the command being taken now will carry: the count
        with its decision, fixed before anything can interleave (patch
        announcement-numbered-at-command); None before the patch (counted when told)."""
        if not workflow.patched(ANNOUNCEMENT_NUMBERED_AT_COMMAND):
            return None
        return self._decisions_so_far() + 1

    async def _tell_formasi(self, phase: Phase, note: str = "", number: int | None = None) -> None:
        announcement = sealed(
            Announcement(
                announcement_id=(
                    f"{self.config.round_id}/{phase.value}/"
                    f"{self._decisions_so_far() if number is None else number}"
                ),
                phase=phase,
                at=workflow.now(),
                note=note,
            ),
            self.secret,
        )
        formasi = [formasi_workflow_id(self.config.round_id, f.code) for f in self.config.formasi]
        if workflow.patched("tell-formasi-together"):
            # Every formasi's signal leaves in one workflow task instead of one task per formasi.
            await asyncio.gather(*(tell(FORMASI_PHASE, f, announcement) for f in formasi))
        else:
            for f in formasi:
                await tell(FORMASI_PHASE, f, announcement)

    async def _optimalisasi(self) -> None:
        """Offer empty seats, best first; a decline or a vacated seat passes on to the next in rank."""
        # Results kept as pages are allocated over in an activity (patch allocation-over-pages):
        # the candidates stay in the page store, out of the round's history.
        over_pages = (
            bool(self.results)
            and all(r.paged for r in self.results.values())
            and workflow.patched(ALLOCATION_OVER_PAGES)
        )
        if not over_pages:
            await self._read_result_pages()
        by_code = {f.code: f for f in self.config.formasi}
        # The pool (patch optimalisasi-pool): a seat's formasi must accept the candidate's major
        # and age as registration would; rounds recorded before compare jabatan and education only.
        pool = workflow.patched(OPTIMALISASI_POOL)
        candidates = (
            []
            if over_pages
            else [
                OptimalisasiCandidate(
                    entry=e,
                    jabatan=by_code[e.formasi_code].jabatan,
                    education_level=by_code[e.formasi_code].education_level,
                    profile=(
                        r.profiles.get(e.applicant_id) or self.page_profiles.get(e.applicant_id)
                    )
                    if pool
                    else None,
                )
                for code, r in self.results.items()
                for e in (self.page_candidates.get(code, []) if r.paged else r.candidates)
            ]
        )
        judged_on = self._registration_closed_on() if pool else None
        by_change = workflow.patched(OPTIMALISASI_BY_CHANGE)
        fills_most = workflow.patched(OPTIMALISASI_FILLS_MOST)
        # Patch offers-by-local-activity: the offers leave in a local activity, which the budget
        # counts at its own costs.
        by_local = by_change and workflow.patched(OFFERS_BY_LOCAL_ACTIVITY)
        costs = OFFERS_BY_LOCAL_ACTIVITY_COSTS if by_local else SIGNAL_COSTS
        if self.continues is None:
            # Patch optimalisasi-continues, for rounds that allocate over pages, pool their
            # candidates, send offers by a local activity and refill during filing.
            self.continues = (
                over_pages
                and pool
                and by_local
                and self.refill_in_filing
                and workflow.patched(OPTIMALISASI_CONTINUES)
            )
        while True:
            if self.offers_stopped:
                # Past the history budget: the offers made are answered, no more are made.
                if self.offers_answered == len(self.offer_status):
                    return
                await self._await_answer()
                continue
            changes = (self.offers_declined, len(self.vacated))
            all_answered = self.offers_answered == len(self.offer_status)
            # After a cut, the room its pending offers held is free once every one is answered.
            again = self.offers_cut and all_answered
            if by_change and changes == self.allocated_after and not again:
                # Only acceptances since the last allocation: it would offer nothing again.
                if all_answered:
                    return
                await self._await_answer()
                continue
            if (
                self._may_continue(by_count=True)
                and self.offers_in_run >= self.config.optimalisasi_offers_per_run
            ):
                # This run has made its share of offers: its state lists them (patch
                # optimalisasi-continues); the next run allocates from here.
                await self._continue_as_new()
            self.allocated_after = changes
            self.offers_cut = False
            pending = len(self.offer_status) - self.offers_answered
            history_length = workflow.info().get_current_history_length()
            room = offer_room(
                self.config.optimalisasi_history_budget,
                history_length,
                self.signals_received,
                pending,
                **costs,
            )
            if room == 0 and pending and self._may_continue():
                await self._continue_as_new()  # the pending offers' answers reach the next run
            if room == 0 and pending and workflow.patched(OPTIMALISASI_BUDGET):
                # No offer fits until the pending ones are answered: allocate then.
                self.offers_cut = True
                await self._await_answer()
                continue
            # Offers accepted or still pending hold their seats and their candidates.
            held: dict[str, int] = {}
            placed: set[str] = set()
            declined: set[str] = set()
            for offer_id, status in self.offer_status.items():
                if status == "declined":
                    declined.add(self.offer_targets[offer_id])
                elif (
                    self.refill_in_filing
                    and self.offer_targets[offer_id] in self.vacated
                    and not self._seat_given_up_once()
                ):
                    # Accepted, then given up, before patch optimalisasi-seat-given-up-once: the
                    # seat no longer held, and counted in the seats given up too (twice).
                    placed.add(self.offer_targets[offer_id])
                else:
                    held[self.offer_formasi[offer_id]] = (
                        held.get(self.offer_formasi[offer_id], 0) + 1
                    )
                    placed.add(self.offer_targets[offer_id])
            for code, accepted in self.accepted_before.items():
                held[code] = held.get(code, 0) + accepted
            declined |= self.declined_before
            vacancies = [
                Vacancy(
                    formasi_code=code,
                    jabatan=f.jabatan,
                    education_level=f.education_level,
                    seats=seats,
                    formasi=f if pool else None,
                )
                for code, f in by_code.items()
                if (seats := self._vacancies(code) - held.get(code, 0)) > 0
            ]
            beyond: dict[str, int] = {}  # found past the room the allocation was asked for
            if over_pages:
                offers, beyond = await self._allocate_over_pages(
                    vacancies, placed, declined, judged_on, pool, room, fills_most
                )
            else:
                offers = allocate(
                    vacancies,
                    [c for c in candidates if c.entry.applicant_id not in placed],
                    declined,
                    judged_on,
                    fill_most=fills_most,
                )
            found = len(offers) + sum(beyond.values())
            if not found and "pending" not in self.offer_status.values():
                return
            if found > room and self._may_continue():
                # The next run allocates again from the same state, with its whole budget.
                await self._continue_as_new()
            share = self._share_left(found)
            if share is not None and self._may_continue(by_count=True):
                await self._continue_as_new()  # the next run allocates with its whole share
            cut_at = room if share is None else min(room, share)
            cut = offers[cut_at:] if len(offers) > cut_at else []
            not_offered: dict[str, int] = {}
            if (cut or beyond) and workflow.patched(OPTIMALISASI_BUDGET):
                offers = offers[:cut_at]  # best first: the allocation stopped after `cut_at` offers
                not_offered = seats_by_formasi(o.to_formasi for o in cut)
                for code, seats in beyond.items():
                    not_offered[code] = not_offered.get(code, 0) + seats
                not_offered = dict(sorted(not_offered.items()))
            # What auditing/recompute.py needs to allocate again from these inputs.
            inputs: dict = {
                "vacancies": {v.formasi_code: v.seats for v in vacancies},
                "offers": [[o.applicant_id, o.to_formasi] for o in offers],
            }
            if not_offered:
                # What offer_room read: recompute checks the cut against it.
                inputs["cut_at"] = cut_at
                inputs["not_offered"] = not_offered
                if share is not None:
                    # The run's share left (patch optimalisasi-share-per-run): recompute checks
                    # the cut at the smaller of it and the budget's room.
                    inputs["share"] = {
                        "offers_per_run": self.config.optimalisasi_offers_per_run,
                        "offers_in_run": self.offers_in_run,
                    }
                inputs["budget"] = {
                    "history_budget": self.config.optimalisasi_history_budget,
                    "history_length": history_length,
                    "signals_received": self.signals_received,
                    "pending": pending,
                    **(costs if by_local else {}),
                }
            if by_change:
                # Only the declines and seats given up since the previous allocation: recompute
                # adds them up.
                inputs["declined_since"] = sorted(declined - self.recorded_declined)
                self.recorded_declined |= declined
            else:
                inputs["declined"] = sorted(declined)
            if pool:
                inputs.update(pool=OPTIMALISASI_POOL, judged_on=str(judged_on))
            if fills_most:
                inputs["fill"] = OPTIMALISASI_FILLS_MOST
            if self.given_up_once:
                inputs["seat_given_up"] = OPTIMALISASI_SEAT_GIVEN_UP_ONCE
            if self.refill_in_filing and by_change:
                inputs["given_up_since"] = sorted(set(self.vacated) - self.recorded_given_up)
                self.recorded_given_up |= set(self.vacated)
            elif self.refill_in_filing:
                inputs["given_up"] = sorted(self.vacated)
            self._decide("optimalisasi", "allocated", "round", inputs)
            self.allocations_in_run += 1
            if not_offered and room == 0:
                self._stop_offers(not_offered, history_length)  # nothing pending, none fits
            elif not_offered:
                self.offers_cut = True
            sends = []
            local: list[OfferSend] = []
            answer_by = workflow.now() + self.config.offer_answer_within
            filing_within = None
            if offers:
                self.last_answer_by = answer_by
                filing_within = self._late_filing_time()
            for o in offers:
                offer_id = self._offer_id(o.applicant_id, o.to_formasi)
                offer = sealed(
                    OptimalisasiOffer(
                        offer_id=offer_id,
                        to_formasi=o.to_formasi,
                        answer_by=answer_by,
                        filing_within=filing_within,
                    ),
                    self.secret,
                )
                self.offers_in_run += 1
                self._track_offer(offer_id, o.applicant_id, o.to_formasi, "pending")
                if self.continues:
                    self.offered_tail.append(o.applicant_id)
                journey = journey_workflow_id(self.config.round_id, o.applicant_id)
                if by_local:
                    local.append(OfferSend(workflow_id=journey, offer=offer))
                elif by_change:
                    sends.append(self._send_offer(workflow_handle(journey), offer_id, offer))
                else:
                    await tell(OFFER_SEAT, journey, offer)
            # The offers leave OFFERS_PER_TASK to a workflow task: the server refuses a task that
            # would leave more than 2,000 signals pending (NumPendingSignalsLimit) and retries it
            # for ever.
            for first in range(0, len(sends), OFFERS_PER_TASK):
                await asyncio.gather(*sends[first : first + OFFERS_PER_TASK])
            # Patch offers-by-local-activity: OFFERS_PER_TASK offers to a local activity, one
            # marker each, run one after the other in this workflow task.
            for first in range(0, len(local), OFFERS_PER_TASK):
                sent = await run_local_activity_until_done(
                    SEND_OFFERS,
                    OfferSends(offers=local[first : first + OFFERS_PER_TASK]),
                    SEND_OFFERS_TIMEOUT,
                    backoff_timers=self.backoff_timers,
                )
                for offer_id in sent.not_delivered:
                    self._not_delivered(offer_id)
            if share is not None and cut_at == share and not_offered:
                # Cut to the run's share: the next run offers the rest now, not after an answer.
                await self._continue_as_new()
            await self._await_answer()

    def _late_filing_time(self) -> timedelta | None:
        """What an offer gives its taker to file, from accepting, when that ends after filing's
        close (patch late-taker-filing-time): the filing window's length as it stands, so a seat
        taken late in filing, or after its close (held for the answer), is filed for in as long
        as every winner had. Only offers made while filing is open carry it: a taker who
        accepted an earlier offer has the whole window, as every winner has, and ends at its
        close (on time or early) as they do. None in rounds recorded before it."""
        if self.phase != RoundPhase.FILING or not workflow.patched(LATE_TAKER_FILING_TIME):
            return None
        return self.schedule.filing.closes - self.schedule.filing.opens

    def _offer_id(self, applicant_id: str, formasi_code: str) -> str:
        return f"{self.config.round_id}/offer/{applicant_id}/{formasi_code}"

    def _track_offer(
        self, offer_id: str, applicant_id: str, formasi_code: str, status: str
    ) -> None:
        self.offer_targets[offer_id] = applicant_id
        self.offer_formasi[offer_id] = formasi_code
        self.offer_status[offer_id] = status

    def _share_left(self, found: int) -> int | None:
        """The offers this run may still make when an allocation finds more (patch
        optimalisasi-share-per-run, decided the first time a run's share would be passed), None
        when it finds no more, or in a round that does not continue."""
        if not self.continues:
            return None
        left = max(0, self.config.optimalisasi_offers_per_run - self.offers_in_run)
        if found <= left:
            return None
        if self.share_per_run is None:
            self.share_per_run = workflow.patched(OPTIMALISASI_SHARE_PER_RUN)
        return left if self.share_per_run else None

    def _seat_given_up_once(self) -> bool:
        """Patch optimalisasi-seat-given-up-once: an accepted offer whose taker gave the seat up
        still holds it, so the seat is freed once, by being given up."""
        if not self.given_up_once:
            self.given_up_once = workflow.patched(OPTIMALISASI_SEAT_GIVEN_UP_ONCE)
        return self.given_up_once

    def _may_continue(self, by_count: bool = False) -> bool:
        """Continue-as-new rather than cut or wait (patch optimalisasi-continues): once this run
        has recorded an allocation, so every run makes offers and none continues at once, and its
        history has taken half the budget. Offers pending take a new run's room as they take this
        one's: while they, not the history, leave no room, a new run would be no roomier, and the
        allocation is cut (or waits for their answers) as before."""
        if not self.continues or self.allocations_in_run == 0:
            return False
        # Past its share of offers (`by_count`) a run continues whatever its history's length.
        return (
            by_count
            or 2 * workflow.info().get_current_history_length()
            >= self.config.optimalisasi_history_budget
        )

    async def _continue_as_new(self) -> NoReturn:
        """Continue the round as a new run with its history's whole budget, carrying its state.

        Commands in flight finish here first (their answers are in the carried ledger), and the
        board as it stands is written. Offers pending stay pending: their answers are signals to
        the round's workflow id, which the new run receives."""
        await self._keep_offered_pages()  # fewer than MAX_PAGE_ITEMS listed in the carry
        if workflow.patched(CONTINUE_IN_ITS_OWN_TASK):
            # End this task on a timer, so what its local activities did (offers sent, pages
            # kept) is recorded before the continuation: a task that continues is refused when a
            # signal arrives while it runs, and its retry would run them all again.
            await workflow.sleep(CONTINUE_AFTER)
        # Nothing is awaited between this wait and the continue-as-new: no command starts after it.
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self.board_written >= self.board_version
        )
        carry = self._carry()
        workflow.logger.info(
            "round %s continues as new in %s: run %d, %d events, %d offers pending",
            self.config.round_id,
            self.phase,
            carry.runs + 1,
            workflow.info().get_current_history_length(),
            len(carry.pending),
        )
        workflow.continue_as_new(
            self.start.model_copy(update={"carry": carry.model_dump(mode="json")})
        )

    def _carry(self) -> RoundCarry:
        accepted = dict(self.accepted_before)
        declined = set(self.declined_before)
        pending: dict[str, str] = {}
        for offer_id, status in self.offer_status.items():
            applicant, code = self.offer_targets[offer_id], self.offer_formasi[offer_id]
            if status == "pending":
                pending[applicant] = code
            elif status == "accepted":
                accepted[code] = accepted.get(code, 0) + 1
            else:
                declined.add(applicant)
        kept = handed_on(self.decisions)
        return RoundCarry(
            runs=self.runs + 1,
            phase=self.phase,
            schedule=self.schedule,
            closed=self.closed,
            closed_at=self.closed_at,
            early=self.early,
            identities=self.identities,
            secret=self.secret,
            created_by=self.created_by,
            decisions=kept,
            decisions_left=self.decisions_left + len(self.decisions) - len(kept),
            commands=self.ledger.answers,
            commands_taken=self.commands_taken,
            results=self.results,
            vacated=self.vacated,
            given_up_since=sorted(set(self.vacated) - self.recorded_given_up),
            offered_pages=self.offered_pages,
            offered_tail=self.offered_tail,
            accepted_by_formasi=dict(sorted(accepted.items())),
            offers_declined=self.offers_declined,
            declined_since=sorted(declined - self.recorded_declined),
            pending=pending,
            final_sanggah=self.final_sanggah,
            keeps_board=self.keeps_board,
            backoff_timers=self.backoff_timers,
            board_version=self.board_version,
            # Patch optimalisasi-answer-deadline (decided here when the run has not waited for an
            # answer yet): the next run's deadline for the offers it carries pending.
            last_answer_by=self.last_answer_by if self._keeps_answer_deadline() else None,
        )

    def _resume(self, carry: RoundCarry) -> None:
        """The state a continued run starts from (patch optimalisasi-continues)."""
        self.runs = carry.runs
        self.phase = RoundPhase(carry.phase)
        self.schedule = carry.schedule
        self.closed = list(carry.closed)
        self.closed_at = dict(carry.closed_at)
        self.early = dict(carry.early)
        self.identities = dict(carry.identities)
        self.secret = carry.secret
        self.created_by = carry.created_by
        self.decisions = list(carry.decisions)
        self.decisions_left = carry.decisions_left
        self.ledger.answers = dict(carry.commands)
        self.commands_taken = carry.commands_taken
        self.results = dict(carry.results)
        self.vacated = dict(carry.vacated)
        self.recorded_given_up = set(carry.vacated) - set(carry.given_up_since)
        self.offered_pages = list(carry.offered_pages)
        self.offered_tail = list(carry.offered_tail)
        self.accepted_before = dict(carry.accepted_by_formasi)
        self.declined_before = set(carry.declined_since)
        self.offers_declined = carry.offers_declined
        self.last_answer_by = carry.last_answer_by
        for applicant, formasi_code in carry.pending.items():
            offer_id = self._offer_id(applicant, formasi_code)
            self._track_offer(offer_id, applicant, formasi_code, "pending")
        self.refill_in_filing = True
        self.continues = True
        self.final_sanggah = carry.final_sanggah
        self.keeps_board = carry.keeps_board
        self.backoff_timers = carry.backoff_timers
        # The board as the previous run last wrote it: a change writes a higher version.
        self.board_version = self.board_written = carry.board_version
        self.board = RoundBoard(view=self._view(None), formasi=list(self.config.formasi))

    def decisions_handed_on(self) -> list[Decision]:
        """What this run hands on if it continues: the auditor compares it with the carry."""
        return handed_on(self.decisions)

    def _stop_offers(self, not_offered: dict[str, int], history_length: int) -> None:
        """Record that optimalisasi stops offering at the history budget, and what it leaves.

        Only once no offer is pending: a history and a count of signals only grow, so no offer
        will fit again."""
        self.offers_stopped = True
        self._decide(
            "optimalisasi",
            "offers stopped",
            "round",
            {
                "reason": "the round's history budget: no more offers are made in this round",
                "history_length": history_length,
                "history_budget": self.config.optimalisasi_history_budget,
                "signals_received": self.signals_received,
                "offers_made": len(self.offer_status),
                "seats_not_offered": not_offered,
            },
        )
        workflow.logger.warning(
            "round %s: optimalisasi stops offering at %d history events (budget %d): %d seats "
            "with a candidate are not offered",
            self.config.round_id,
            history_length,
            self.config.optimalisasi_history_budget,
            sum(not_offered.values()),
        )

    async def _send_offer(
        self, handle: workflow.ExternalWorkflowHandle, offer_id: str, offer: OptimalisasiOffer
    ) -> None:
        """Send an offer; one to a journey that has ended counts as declined, and its seat passes
        on (before patch optimalisasi-by-change the failed signal failed the round)."""
        try:
            await tell(OFFER_SEAT, handle.id, offer)
        except ApplicationError as exc:
            if exc.type != "ExternalWorkflowExecutionNotFound":
                raise
            self._not_delivered(offer_id)

    def _not_delivered(self, offer_id: str) -> None:
        """An offer whose journey has ended: declined, and its seat passes on."""
        if self.offer_status.get(offer_id) != "pending":
            return  # answered meanwhile (a repeated send of an offer already taken)
        self.offer_status[offer_id] = "declined"
        self.offers_answered += 1
        self.offers_declined += 1
        self._decide(
            "optimalisasi",
            "offer not delivered",
            "round",
            {"offer_id": offer_id, "reason": "the journey has ended: counted as declined"},
        )

    async def _await_answer(self) -> None:
        """Until an offer is answered, a seat given up, or no offer is pending. Since patch
        optimalisasi-answer-deadline an offer left unanswered past the round's deadline counts as
        answered (declined)."""
        answered, vacated = self.offers_answered, len(self.vacated)
        if self.offers_answered < len(self.offer_status) and self._keeps_answer_deadline():
            self._watch_answer_deadline()
        await workflow.wait_condition(
            lambda: (
                self.offers_answered > answered
                or len(self.vacated) > vacated
                or self.offers_answered == len(self.offer_status)
            )
        )

    def _keeps_answer_deadline(self) -> bool:
        """Patch optimalisasi-answer-deadline, decided the first time a run waits for an answer or
        hands on its latest answer_by (continue-as-new)."""
        if self.answer_deadline is None:
            self.answer_deadline = workflow.patched(OPTIMALISASI_ANSWER_DEADLINE)
        return self.answer_deadline

    def _watch_answer_deadline(self) -> None:
        """Start the deadline's timer unless one is running: one timer at a time, not one per
        wait, so an answer that wakes the round costs no timer event."""
        if self.deadline_watch is None or self.deadline_watch.done():
            self.deadline_watch = asyncio.create_task(self._answer_deadline())

    async def _answer_deadline(self) -> None:
        """Sleep until the latest pending offer's answer_by plus the round's grace (later offers
        move it on); then every offer still pending is declined for no answer."""
        if self.last_answer_by is None:
            # Offers carried from a run before the patch: each was made before this run began,
            # so its answer_by is earlier than this.
            self.last_answer_by = workflow.now() + self.config.offer_answer_within
        while self.offers_answered < len(self.offer_status):
            due = self.last_answer_by + self.config.offer_answer_grace
            if workflow.now() < due:
                await workflow.sleep(due - workflow.now())
                continue
            self._unanswered(due)

    def _unanswered(self, due: datetime) -> None:
        """Every offer still pending at the round's deadline: declined, and its seat passes on."""
        unanswered = [o for o, status in self.offer_status.items() if status == "pending"]
        for offer_id in unanswered:
            self.offer_status[offer_id] = "declined"
            self._decide(
                "optimalisasi",
                OFFER_UNANSWERED,
                "round",
                {
                    "offer_id": offer_id,
                    "deadline": due.isoformat(),
                    "reason": "no answer from the journey by the latest offer's answer_by and "
                    "the round's offer_answer_grace: counted as declined",
                },
            )
        self.offers_answered += len(unanswered)
        self.offers_declined += len(unanswered)
        workflow.logger.warning(
            "round %s: %d optimalisasi offers unanswered at the round's deadline %s: counted as "
            "declined, their seats pass on",
            self.config.round_id,
            len(unanswered),
            due.isoformat(),
        )

    async def _allocate_over_pages(
        self,
        vacancies: list[Vacancy],
        placed: set[str],
        declined: set[str],
        judged_on: date | None,
        pool: bool,
        room: int,
        fill_most: bool = False,
    ) -> tuple[list[Offer], dict[str, int]]:
        """`allocate` over the candidates' pages, in an activity; no seat, no call. With patch
        optimalisasi-continues at most `room` offers come back, and the seats of the rest by
        formasi: the result is bounded by what the round can offer, not by the seats found."""
        if not vacancies:
            return [], {}
        if self.continues:
            # Everyone offered, whatever the answer, in pages and the rest listed (patch
            # optimalisasi-continues): the request does not grow with the offers made.
            await self._keep_offered_pages()
            placed, declined = set(), set()
        allocated = await workflow.execute_activity(
            ALLOCATE_PAGES.name,
            AllocationRequest(
                round_id=self.config.round_id,
                formasi=list(self.config.formasi),
                results=[
                    ResultPages(
                        formasi_code=code,
                        winner_pages=r.winner_pages,
                        candidate_pages=r.candidate_pages,
                    )
                    for code, r in self.results.items()
                ],
                vacancies=vacancies,
                placed=sorted(placed),
                declined=sorted(declined),
                judged_on=judged_on,
                pool=pool,
                offered_pages=self.offered_pages,
                offered=self.offered_tail,
                offers_in_pages=bool(self.continues),
                limit=room if self.continues else None,
                fill_most=fill_most,
            ),
            result_type=AllocationResult,
            start_to_close_timeout=ALLOCATION_TIMEOUT,
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        if not allocated.offer_pages:
            return allocated.offers, allocated.not_offered
        # More than MAX_PAGE_ITEMS offers (patch optimalisasi-continues): read page by page, each
        # checked against its digest, one marker each.
        offers: list[Offer] = []
        for ref in allocated.offer_pages:
            offers += [Offer.model_validate(o) for o in await self._read_page(OFFERS, ref)]
        return offers, allocated.not_offered

    async def _keep_offered_pages(self) -> None:
        """Keep the applicants offered since the last page as pages of MAX_PAGE_ITEMS, in the
        order offered (a local activity each, its reference recorded in its marker)."""
        while len(self.offered_tail) >= MAX_PAGE_ITEMS:
            ref = await run_local_activity_until_done(
                KEEP_PAGE,
                PageKeep(
                    owner=workflow.info().workflow_id, items=self.offered_tail[:MAX_PAGE_ITEMS]
                ),
                PAGE_TIMEOUT,
                backoff_timers=self.backoff_timers,
            )
            self.offered_pages.append(ref)
            del self.offered_tail[:MAX_PAGE_ITEMS]
            if len(self.offered_pages) >= self.config.fold_pages_at:
                if self.folds_offered is None:
                    self.folds_offered = workflow.patched(OFFERED_PAGES_FOLDED)
                if self.folds_offered:
                    await fold_pages(self.offered_pages, backoff_timers=self.backoff_timers)

    def _registration_closed_on(self) -> date:
        """The local date registration closed: ages of candidates without an application date."""
        closed = self.closed_at.get(RoundPhase.REGISTRATION, self.schedule.registration.closes)
        return local_date(closed, self.config.timezone)

    def _vacancies(self, formasi_code: str) -> int:
        """Seats of a formasi left after its final ranking, plus seats given up since."""
        result = self.results.get(formasi_code)
        base = result.vacancies if result else 0
        return base + sum(1 for f in self.vacated.values() if f == formasi_code)

    # --- operator commands (updates with validators) -----------------------------------------

    @workflow.update
    async def extend_window(self, command: ExtendWindow) -> Ack:
        """Extend an open window; the extension and its reason are recorded."""
        effect = f"{command.window} extended"
        if command.shift_later:
            moved = command.new_closes - getattr(self.schedule, command.window).closes
            effect += f", the later windows moved by {moved}"
        ack = await self._accept(command, lambda: self._extend(command), effect)
        await self._publish_board()
        return ack

    @extend_window.validator
    def validate_extend_window(self, command: ExtendWindow) -> None:
        if self._check_repeat(command):
            return
        window = self._open_window(command, command.window)
        if command.new_closes <= window.closes:
            self._refuse(
                command,
                f"new_closes {command.new_closes.isoformat()} is not after the current close "
                f"{window.closes.isoformat()}",
            )
        # A round that joined a national round sits its national windows (the SKD on CAT): an
        # extension stays within the one of the same name (rounds created before know none).
        beyond = beyond_national_window(
            self.start.national_windows,
            command.window,
            command.new_closes,
            self.config.national_round,
        )
        if beyond:
            self._refuse(command, beyond)
        if command.shift_later:
            if self.config.national_round:
                self._refuse(
                    command,
                    f"the round keeps national round {self.config.national_round}'s schedule: its "
                    "later windows cannot move on their own",
                )
            try:
                extended(self.schedule, command.window, command.new_closes, shift_later=True)
            except ValueError as exc:
                self._refuse(command, f"moving the later windows: {exc}")
            return
        later = self._next_window(command.window)
        if later is not None and command.new_closes > later.opens:
            self._refuse(
                command,
                f"new_closes {command.new_closes.isoformat()} is after the next window opens "
                f"({later.opens.isoformat()}); with shift_later every later window moves by as "
                "much (starter.py extend-window --shift-later)",
            )
        # The schedule it gives must be one a round file may have: latsar, with no next window,
        # took any close before (a year's typo, 2209, was recorded as the round's schedule).
        try:
            extended(self.schedule, command.window, command.new_closes, shift_later=False)
        except ValueError as exc:
            self._refuse(command, f"the schedule it gives: {exc}")

    @workflow.update
    async def close_window(self, command: CloseWindow) -> Ack:
        """Close an open window early, with a recorded reason. Registration's close is on the
        board before it is acknowledged: no journey started after the acknowledgement is let in."""
        ack = await self._accept(
            command,
            lambda: self.early.__setitem__(command.window, command.reason),
            f"{command.window} closed early",
        )
        if self.keeps_board and command.window == RoundPhase.REGISTRATION:
            await workflow.wait_condition(lambda: RoundPhase.REGISTRATION in self.closed_at)
            await self._publish_board()
        return ack

    @close_window.validator
    def validate_close_window(self, command: CloseWindow) -> None:
        if self._check_repeat(command):
            return
        window = self._open_window(command, command.window)
        # Before the run begins only a new round can be here, and it takes the patch.
        minimum = self.keeps_registration_open or not self.run_began
        if command.window == RoundPhase.REGISTRATION and minimum:
            problem = early_close_refusal(self.config, window.opens, workflow.now())
            if problem:
                self._refuse(command, problem)

    @workflow.update
    async def move_tmt(self, command: MoveTmt) -> Ack:
        """Move the TMT; every applicant's journey still running records the move."""
        repeat = self.ledger.seen(command)
        number = None if repeat else self._command_number()  # _accept records the decision
        ack = await self._accept(
            command, lambda: self._move(command), f"TMT moved to {command.new_tmt.isoformat()}"
        )
        await self._publish_board()  # before the journeys hear it: a NIP reads the TMT there
        if not repeat:
            # The round's TMT when told (patch announcement-numbered-at-command): a later move
            # taken in the same task may be told first, and the journeys end at the last.
            told = command.new_tmt if number is None else self.schedule.tmt
            await self._tell_formasi(Phase.TMT_MOVED, told.isoformat(), number)
        return ack

    @move_tmt.validator
    def validate_move_tmt(self, command: MoveTmt) -> None:
        if self._check_repeat(command):
            return
        self._operator(command)
        if command.new_tmt == self.schedule.tmt:
            self._refuse(command, f"the TMT is already {command.new_tmt.isoformat()}")
        # A validator's check (not run on replay): histories that took a move stay as they are.
        opened = local_date(self.schedule.registration.opens, self.config.timezone)
        if problem := tmt_move_problem(command.new_tmt, opened):
            self._refuse(command, problem)
        if self.phase == RoundPhase.CLOSED:
            self._refuse(command, "the round is closed")

    @workflow.update
    async def record_publication(self, command: RecordPublication) -> Ack:
        """Record that publication `seq` of the round's announcements is stored, with its body
        hash (client/publication.py records each publication so): `audit.py verify-announcements
        --round-id` holds the stored chain to it, so a publication removed from the database's
        end shows. Changes nothing else."""
        return await self._accept(
            command, lambda: None, f"{PUBLICATION_RECORDED} {command.seq} ({command.stage})"
        )

    @record_publication.validator
    def validate_record_publication(self, command: RecordPublication) -> None:
        if self._check_repeat(command):
            return
        self._operator(command)
        problem = record_refusal(recorded_publications(self.decisions), command)
        if problem:
            self._refuse(command, problem)

    @workflow.update
    async def change_keys(self, command: ChangeKeys) -> Ack:
        """New public keys for identities of the round; every running journey takes them."""
        repeat = self.ledger.seen(command)
        number = None if repeat else self._command_number()  # _accept records the decision
        ack = await self._accept(
            command,
            lambda: self._change_keys(command),
            f"keys changed for {', '.join(sorted(command.identities))}",
        )
        await self._publish_board()
        if not repeat:
            # The identities' keys when told (as a TMT move's date): the last change of a key
            # wins whichever announcement the journeys hear last.
            keys = command.identities
            if number is not None:
                keys = {identity: self.identities[identity] for identity in command.identities}
            await self._tell_formasi(Phase.KEYS_CHANGED, canonical_json(keys), number)
        return ack

    @change_keys.validator
    def validate_change_keys(self, command: ChangeKeys) -> None:
        if self._check_repeat(command):
            return
        self._operator(command)
        if not self.identities:
            self._refuse(command, "this round takes unsigned reports: it has no keys to change")
        unknown = sorted(set(command.identities) - set(self.identities))
        if unknown:
            self._refuse(command, f"{', '.join(unknown)}: not identities of this round")
        for identity, key in command.identities.items():
            try:
                public_key(key, identity)
            except SigningKeyError as exc:
                self._refuse(command, str(exc))
        if self.phase == RoundPhase.CLOSED:
            self._refuse(command, "the round is closed")

    @workflow.signal
    def formasi_result(self, *args: object) -> None:
        """A formasi's final ranking: its empty seats and who lost on rank (one per formasi).

        Anyone who reaches Temporal can signal: a result no formasi of this round could have sent
        is ignored with a warning (the argument is decoded here, so that no argument count or
        content can fail the workflow task).
        """
        self.signals_received += 1
        result = self._signal_message(FormasiResult, args)
        problem = result if isinstance(result, str) else self._result_problem(result)
        if problem:
            self._ignored("formasi_result", problem)
            return
        known = self.results.get(result.formasi_code)
        if known is None or (result.confirmed and not known.confirmed):
            # The ranking confirmed after the final sanggah replaces the first one.
            self.results[result.formasi_code] = result

    def _result_problem(self, result: FormasiResult) -> str | None:
        """Why no formasi of this round can have sent `result` now, or None."""
        formasi = {f.code: f for f in self.config.formasi}.get(result.formasi_code)
        if formasi is None:
            return "no such formasi in this round"
        if RoundPhase.SKB not in self.closed:
            return "the SKB window has not closed"
        known = self.results.get(result.formasi_code)
        if result.confirmed and not self.final_sanggah:
            return "this round takes no confirmed result"
        if known is None and result.confirmed:
            return "a confirmed result before the first one"
        if known is not None and not (result.confirmed and not known.confirmed):
            return None if known == result else "this formasi's result is recorded already"
        if result.paged:
            if result.winners or result.candidates or result.profiles:
                return "a result kept as pages lists winners or candidates too"
            if result.fold_at is None:
                counted = (
                    sum(p.count for p in result.winner_pages) == result.winners_count
                    and sum(p.count for p in result.candidate_pages) == result.candidates_count
                )
            else:  # folded: at most fold_at references each, their counts are index children
                counted = (
                    max(len(result.winner_pages), len(result.candidate_pages)) <= result.fold_at
                    and bool(result.winner_pages) == bool(result.winners_count)
                    and bool(result.candidate_pages) == bool(result.candidates_count)
                )
            if (
                not counted
                or result.winners_count > formasi.quota
                or result.vacancies != formasi.quota - result.winners_count
            ):
                return "its pages, winners and vacancies do not add up to the formasi's quota"
            return None
        winners = result.winners
        if (
            len(set(winners)) != len(winners)
            or len(winners) > formasi.quota
            or result.vacancies != formasi.quota - len(winners)
        ):
            return "its winners and vacancies do not add up to the formasi's quota"
        others = [e.applicant_id for e in result.candidates]
        if len(set(others)) != len(others) or set(others) & set(winners):
            return "a candidate is listed twice, or also as a winner"
        if any(impossible_entry(e, result.formasi_code) for e in result.candidates):
            return "a candidate's entry is for another formasi, or impossible"
        return None

    @workflow.signal
    def seat_vacated(self, *args: object) -> None:
        """A winner withdrew or was disqualified before the NIP: the seat goes to optimalisasi."""
        self.signals_received += 1
        vacated = self._signal_message(SeatVacated, args)
        problem = vacated if isinstance(vacated, str) else self._vacated_problem(vacated)
        if problem:
            self._ignored("seat_vacated", problem)
            return
        not_refilled = {RoundPhase.FILING, RoundPhase.LATSAR, RoundPhase.CLOSED}
        if self.refill_in_filing:
            not_refilled.discard(RoundPhase.FILING)
        if self.phase in not_refilled:
            self._decide(
                self.phase,
                "seat vacated after optimalisasi; not refilled in this round",
                "journey",
                vacated.model_dump(mode="json", exclude={"seal"}),
            )
            return
        if vacated.applicant_id not in self.vacated:
            self.vacated[vacated.applicant_id] = vacated.formasi_code
            self._decide(
                self.phase,
                "seat vacated",
                "journey",
                vacated.model_dump(mode="json", exclude={"seal"}),
            )

    def _vacated_problem(self, vacated: SeatVacated) -> str | None:
        """Why `vacated` cannot be a seat given up in this round, or None.

        Before its formasi's result is in (a winner can withdraw while the result is on its way),
        any applicant of a formasi of the round is taken at its word.
        """
        if vacated.formasi_code not in {f.code for f in self.config.formasi}:
            return "no such formasi in this round"
        if RoundPhase.SKB not in self.closed:
            return "nobody holds a seat before the SKB window closes"
        if not 0 < len(vacated.applicant_id) <= 100:
            return "the applicant id is empty or too long"
        result = self.results.get(vacated.formasi_code)
        placed = {
            self.offer_targets[offer_id]
            for offer_id, status in self.offer_status.items()
            if status == "accepted" and self.offer_formasi[offer_id] == vacated.formasi_code
        }
        winners = (
            self.page_winners.get(vacated.formasi_code)
            if result is not None and result.paged
            else None
            if result is None
            else set(result.winners)
        )
        if winners is not None and vacated.applicant_id not in {*winners, *placed}:
            return "the applicant holds no seat in that formasi"
        return None

    @workflow.signal
    def offer_reply(self, *args: object) -> None:
        """A journey's answer to an optimalisasi offer (to no offer pending to it: ignored)."""
        self.signals_received += 1
        reply = self._signal_message(OfferReply, args)
        if isinstance(reply, str):
            self._ignored("offer_reply", reply)
            return
        if (
            self.offer_status.get(reply.offer_id) != "pending"
            or self.offer_targets.get(reply.offer_id) != reply.applicant_id
        ):
            self._ignored("offer_reply", "no offer with that id is pending to that applicant")
            return
        self.offer_status[reply.offer_id] = "accepted" if reply.accepted else "declined"
        self.offers_answered += 1
        self.offers_declined += not reply.accepted

    # --- the same three signals as updates (workflows/calls.py `tell`): what a formasi or a
    # journey sends once this run takes no more signals, because another sender spent them. The
    # validator lets in only a message sealed by the round's own workflows, so a refused update,
    # which leaves nothing in the history, is all another sender can make of them.

    @workflow.update(name=FORMASI_RESULT_UPDATE.name)
    def formasi_result_update(self, *args: object) -> bool:
        self.formasi_result(*args)
        return True

    @formasi_result_update.validator
    def validate_formasi_result_update(self, *args: object) -> None:
        self._sealed_or_refused(FormasiResult, args, FORMASI_RESULT_UPDATE.name)

    @workflow.update(name=SEAT_VACATED_UPDATE.name)
    def seat_vacated_update(self, *args: object) -> bool:
        self.seat_vacated(*args)
        return True

    @seat_vacated_update.validator
    def validate_seat_vacated_update(self, *args: object) -> None:
        self._sealed_or_refused(SeatVacated, args, SEAT_VACATED_UPDATE.name)

    @workflow.update(name=OFFER_REPLY_UPDATE.name)
    def offer_reply_update(self, *args: object) -> bool:
        self.offer_reply(*args)
        return True

    @offer_reply_update.validator
    def validate_offer_reply_update(self, *args: object) -> None:
        self._sealed_or_refused(OfferReply, args, OFFER_REPLY_UPDATE.name)

    def _sealed_or_refused(
        self, model: type[BaseModel], args: tuple[object, ...], name: str
    ) -> None:
        subject = f"{name} to round {self.config.round_id}"
        sealed_or_refused(model, args, self.secret, subject, self.ledger.error_type)

    def _signal_message(self, model: type[M], args: tuple[object, ...]) -> M | str:
        return signal_message(model, args, self.secret)

    def _ignored(self, signal: str, problem: str) -> None:
        """Log a signal that changes nothing: the signal, the workflow and why; never its content."""
        workflow.logger.warning(
            "signal %s to %s ignored: %s", signal, workflow.info().workflow_id, problem
        )

    @workflow.query
    def state(self) -> RoundState:
        """Phase, schedule (with extensions), results and offers."""
        return RoundState(
            round_id=self.config.round_id,
            phase=self.phase,
            schedule=self.schedule,
            closed=list(self.closed),
            formasi_results=dict(self.results),
            offers=dict(self.offer_status),
            decisions=list(self.decisions),
        )

    @workflow.query
    def config_digest(self) -> str:
        """The digest of the rules this round runs by."""
        return self.config.digest()

    @workflow.query
    def rules_view(self, formasi_code: str) -> RoundView:
        """What a starting journey is judged by: the round's rules, the formasi, the registration
        window and the TMT, as they stand."""
        return self._view(self.config.formasi_by_code(formasi_code))

    def _view(self, formasi: Formasi | None) -> RoundView:
        return RoundView(
            rules=self.journey_rules.model_copy(update={"identities": self.identities}),
            formasi=formasi,
            tmt=self.schedule.tmt,
            registration_closes=self.schedule.registration.closes,
            registration_opens=self.schedule.registration.opens,
            national_round=self.config.national_round,
            registration_closed_at=self.closed_at.get(RoundPhase.REGISTRATION),
            secret=self.secret,
            final_sanggah=self.final_sanggah,
            keys_changed_at=self.keys_changed_at,
            tmt_moved_at=self.tmt_moved_at,
        )

    # --- helpers ----------------------------------------------------------------------------------

    def _publish_board_meanwhile(self) -> None:
        """Write the board without holding up the round (its schedule goes on while the database
        is down). A journey that finds no board asks the round; a close on the schedule is on the
        board already, as the window's `closes`."""
        if self.keeps_board:
            self.board_writes.append(asyncio.create_task(self._publish_board()))

    async def _publish_board(self) -> None:
        """Write the view journeys are judged by, if it changed since it was last written, and
        return once the view as it stands is written (patch round-view-board; a local activity,
        retried until done). Every change of the view calls this before it is acknowledged."""
        if not self.keeps_board:
            return
        board = RoundBoard(view=self._view(None), formasi=list(self.config.formasi))
        if board == self.board:
            version = self.board_version
            await workflow.wait_condition(lambda: self.board_written >= version)
            return
        self.board = board
        # Grows with the workflow's clock, so a reset run's boards replace the old run's too.
        now_us = int(workflow.now().timestamp() * 1_000_000)
        self.board_version = version = max(self.board_version + 1, now_us)
        await run_local_activity_until_done(
            PUBLISH_ROUND_BOARD,
            RoundBoardWrite(workflow_id=workflow.info().workflow_id, version=version, board=board),
            BOARD_WRITE_TIMEOUT,
            woken_by=lambda: self.commands_taken,
            backoff_timers=self.backoff_timers,
        )
        self.board_written = max(self.board_written, version)

    def _extend(self, command: ExtendWindow) -> None:
        if command.shift_later:
            # Only in commands written since ExtendWindow.shift_later: no recorded history has one.
            self.schedule = extended(self.schedule, command.window, command.new_closes, True)
        else:
            window = getattr(self.schedule, command.window)
            self.schedule = self.schedule.model_copy(
                update={command.window: window.model_copy(update={"closes": command.new_closes})}
            )
        self.schedule_changed = True

    def _move(self, command: MoveTmt) -> None:
        self.schedule = self.schedule.model_copy(update={"tmt": command.new_tmt})
        self.tmt_moved_at = workflow.now()  # its announcement's `at` is no earlier

    def _change_keys(self, command: ChangeKeys) -> None:
        self.identities.update(command.identities)
        self.keys_changed_at = workflow.now()  # its announcement's `at` is no earlier

    def _operator(self, command: Report) -> None:
        if command.reported_by not in self.config.reporters.get(ReportKind.OPERATOR, []):
            self._refuse(
                command, f"{command.reported_by} is not an operator of round {self.config.round_id}"
            )

    def _open_window(self, command: Report, name: str):
        self._operator(command)
        if name not in WINDOWS:
            self._refuse(command, f"window {name!r} is not one of {', '.join(WINDOWS)}")
        window = getattr(self.schedule, name)
        if name in self.closed or name in self.early or workflow.now() >= window.closes:
            self._refuse(command, f"the {name} window is already closed")
        if self.phase != name:
            # The round's phase, not the calendar, says what is open: an earlier window closed
            # early moves the round on before the next window's calendar opening.
            self._refuse(
                command, f"the {name} window is not open yet (the round is in {self.phase})"
            )
        return window

    def _next_window(self, name: str):
        i = WINDOWS.index(RoundPhase(name))
        return getattr(self.schedule, WINDOWS[i + 1]) if i + 1 < len(WINDOWS) else None

    def _refuse(self, command: Report, problem: str) -> None:
        self.ledger.refuse(command, problem)

    def _check_repeat(self, command: Report) -> bool:
        """Refuse a command its operator did not sign (in a round with keys); True for a repeat."""
        problem = signature_problem(command, self.identities, workflow.info().workflow_id)
        if problem:
            self._refuse(command, problem)
        if self.ledger.is_repeat(command):
            return True
        problem = validity_refusal(command, self.identities, workflow.now())
        if problem:
            self._refuse(command, problem)
        return False

    async def _accept(self, command: Report, apply, effect: str) -> Ack:
        """Take an operator command into the record (a repeat gets its first answer), then, for
        a command that reached the round before it had begun (in its first workflow tasks, before
        `run` decided whether the round keeps its board and started every formasi), wait until it
        has: its change is then written to the board and told to every formasi as a later
        command's is (patch commands-after-run-begins; asked only then, so later commands write
        no marker)."""
        self.commands_taken += 1

        def answer() -> Ack:
            self._decide(self.phase, effect, command.reported_by, command.record())
            return Ack(
                report_id=command.report_id,
                applicant_id="",
                stage=self.phase,
                effect=effect,
                recorded_at=workflow.now(),
            )

        ack = self.ledger.accept(command, apply, answer)
        if not self.run_began and workflow.patched(COMMANDS_AFTER_RUN_BEGINS):
            await workflow.wait_condition(lambda: self.run_began)
        return ack

    def _decide(self, phase: str, outcome: str, actor: str, inputs: dict) -> None:
        self.decisions.append(
            decision(phase, outcome, actor, inputs, self.config.rule_version, self.config.digest())
        )
