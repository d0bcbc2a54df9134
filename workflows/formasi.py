"""FormasiSelection: the selection committee of one formasi.

It hears from every applicant of the formasi but keeps only what ranking needs: the top
3 x quota SKD keys and the final entries of those who went on to SKB. Its state is bounded by
the seats; it continues-as-new before the history grows long, carrying that state.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.codes import Phase
    from domain.contracts import BroadcastRequest, BroadcastResult
    from domain.messages import (
        Announcement,
        Decision,
        EntryCorrection,
        FinalEntryReply,
        FormasiResult,
        FormasiStart,
        FormasiState,
        SkdEntryReply,
        fraction_text,
    )
    from domain.optimalisasi import CandidateProfile
    from domain.pages import (
        LINES,
        MAX_PAGE_ITEMS,
        FinalPages,
        FinalPagesRequest,
        LeafRead,
        PageRead,
        PageRef,
        SkdCut,
        SkdPagesRequest,
        ids_of,
        leaf_pages,
        page_size,
    )
    from domain.protocol import (
        BROADCAST,
        ENTRY_CORRECTED_UPDATE,
        FORMASI_PHASE_UPDATE,
        FORMASI_RESULT,
        RANK_FINAL_PAGES,
        RANK_SKD_PAGES,
        READ_LEAF,
        READ_PAGE,
    )
    from domain.ranking import FinalEntry, FinalRanking, SkdCutTracker, rank_final, skd_cut_size
    from domain.seal import sealed
    from workflows.calls import (
        PAGE_TIMEOUT,
        changed_keys,
        fold_pages,
        run_activity,
        run_local_activity_until_done,
        sealed_or_refused,
        signal_message,
        tell,
    )
    from workflows.ids import journey_workflow_id, round_workflow_id
    from workflows.ledger import decision
    from workflows.versions import (
        FOLDED_PAGES,
        LOCAL_ACTIVITY_BACKOFF_TIMERS,
        PAGED_RANKING,
        RESULTS_NAME_FORMASI,
    )

BROADCAST_TIMEOUT = timedelta(hours=2)
RANKING_TIMEOUT = timedelta(
    hours=1
)  # an activity that ranks from pages (a few seconds per 100,000)
# What the round announces to a formasi, in the order it does (a TMT move may come at any time).
ROUND_PHASES = (
    Phase.ADMINISTRATION,
    Phase.SKD_CLOSED,
    Phase.SKB_CLOSED,
    Phase.OPTIMALISASI_CLOSED,
    Phase.FILING_CLOSED,
    Phase.ROUND_CLOSED,
)
SKEW = timedelta(days=1)  # a sender's clock: never more than this ahead of the receiver's
M = TypeVar("M", bound=BaseModel)


def _plausible_time(at: datetime) -> bool:
    """A time with a zone, not in the future beyond clock skew (later ones overflow arithmetic)."""
    return at.tzinfo is not None and at.utcoffset() is not None and at <= workflow.now() + SKEW


def _iso_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _entry_problem(barrier: Barrier | None, ranking: str, applicant_id: str) -> str | None:
    """Why an entry signal cannot count towards `barrier`, or None."""
    if barrier is None:
        return f"outside {ranking}"
    if barrier.by_update:
        return f"{ranking} takes its answers from the close_stage update, not by signal"
    if not 0 < len(applicant_id) <= 100:
        return "the applicant id is empty or too long"
    return None


def _plausible_entry(entry: FinalEntry) -> bool:
    """A GPA on the 0-4 scale and SKD scores that are not negative (a NaN breaks the ranking)."""
    skd = entry.skd
    return math.isfinite(entry.gpa) and 0 <= entry.gpa <= 4 and min(skd.twk, skd.tiu, skd.tkp) >= 0


class Barrier(BaseModel):
    """A phase waiting for a reply from every applicant the close announcement reached."""

    announcement: Announcement
    expected: int | None = None  # set once the close announcement has been delivered
    replies: int = 0
    # True: the close goes out as the journeys' `close_stage` update and each page's answers come
    # back in the broadcast's result (patch close-by-update). False: `announce` signals, answered
    # by `skd_entry`/`final_entry` signals that the barrier counts (older histories).
    by_update: bool = False


class Paging(BaseModel):
    """An announcement being delivered page by page; carried across continue-as-new."""

    announcement_id: str
    page_token: str | None = None
    delivered: int = 0
    offset: int = 0  # delivery to a list of applicants: how many of the list were told


class FormasiCarry(BaseModel):
    """Everything a FormasiSelection run hands to the next one."""

    queue: list[Announcement] = []
    paging: Paging | None = None
    processed: list[str] = []  # announcement ids already handled
    skd_barrier: Barrier | None = None
    tracker: SkdCutTracker | None = None
    final_barrier: Barrier | None = None
    final_entries: list[FinalEntry] = []
    profiles: dict[str, CandidateProfile] = {}  # applicant id -> major, application date
    # The final sanggah (FormasiStart.final_sanggah): entries an accepted sanggah corrected, by
    # applicant (None: the correction failed a gate), and whether the ranking is confirmed.
    corrections: dict[str, FinalEntry | None] = {}
    correction_answers: dict[str, str] = {}  # applicant id -> the answer that corrected it
    final_ranked: bool = False
    final_confirmed: bool = False
    # Patch paged-ranking (decided by the first run, carried): the answers to the closes are kept
    # as pages (their references here), and each ranking is an activity's result, kept as pages.
    paged: bool = False
    skd_pages: list[PageRef] = []
    entry_pages: list[PageRef] = []
    # Patch folded-page-references (decided by the first run, carried): skd_pages and entry_pages
    # are folded into an index page (domain.pages.PageFold) when they reach the start's
    # fold_pages_at, so they may hold index pages; entries_kept counts the entries under them.
    folded: bool = False
    entries_kept: int = 0
    skd_cut: SkdCut | None = None
    ranked: FinalPages | None = None  # the final ranking
    confirmed: FinalPages | None = None  # the ranking after the final sanggah
    result_at: datetime | None = None  # when the result being told was announced (every page's)
    decisions: list[Decision] = []
    runs: int = 1
    done: bool = False


@workflow.defn
class FormasiSelection:
    """Ranks the formasi when the round closes a stage and announces to its applicants."""

    @workflow.init
    def __init__(self, start: FormasiStart) -> None:
        self.start = start
        self.carry = FormasiCarry.model_validate(start.carry) if start.carry else FormasiCarry()
        self.own_limit = False
        self.backoff_timers = False  # patch local-activity-backoff-timers, decided at each run
        self.names_itself = False  # patch results-name-formasi, decided at each run
        if self.carry.tracker is None:
            self.carry.tracker = SkdCutTracker(
                capacity=skd_cut_size(start.formasi.quota, start.rules.skd)
            )

    @workflow.run
    async def run(self, start: FormasiStart) -> FormasiState:
        self.own_limit = workflow.patched("continue-as-new-on-own-count")
        self.backoff_timers = workflow.patched(LOCAL_ACTIVITY_BACKOFF_TIMERS)
        self.names_itself = workflow.patched(RESULTS_NAME_FORMASI)
        if not start.carry:
            self.carry.paged = workflow.patched(PAGED_RANKING)
            self.carry.folded = self.carry.paged and workflow.patched(FOLDED_PAGES)
        if self.carry.skd_barrier is not None:
            await self._skd_ranking(self.carry.skd_barrier.announcement)
        if self.carry.final_barrier is not None:
            await self._final_ranking(self.carry.final_barrier.announcement)
        while not self.carry.done:
            await workflow.wait_condition(lambda: bool(self.carry.queue) or self._should_continue())
            if self._should_continue():
                self._continue_as_new()
            # Popped only once handled: a continue-as-new in the middle resumes it.
            announcement = self.carry.queue[0]
            if announcement.announcement_id not in self.carry.processed:
                if announcement.phase == Phase.SKD_CLOSED:
                    await self._skd_ranking(announcement)
                elif announcement.phase == Phase.SKB_CLOSED:
                    await self._final_ranking(announcement)
                elif announcement.phase == Phase.FINAL_APPEAL_CLOSED:
                    await self._confirm_final(announcement)
                elif announcement.phase == Phase.ROUND_CLOSED:
                    self.carry.done = True
                elif announcement.phase == Phase.OPTIMALISASI_CLOSED:
                    # Deprecated patch: histories that recorded its marker still replay.
                    workflow.deprecate_patch("announce-to-candidates")
                    # Only those the final ranking left out wait in optimalisasi; the winners would
                    # ignore it. The carried entries rank the same as they did at the final ranking.
                    if self.carry.paged:
                        ranking = self.carry.confirmed or self.carry.ranked
                        if ranking is not None:
                            await self._deliver_pages(announcement, ranking, [False])
                    else:
                        others = rank_final(
                            self.carry.final_entries, self.start.formasi.quota
                        ).others
                        await self._deliver_to(announcement, others)
                else:
                    await self._deliver(announcement)
                if announcement.announcement_id not in self.carry.processed:
                    self.carry.processed.append(announcement.announcement_id)
            self.carry.queue.pop(0)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _skd_ranking(self, closed: Announcement) -> None:
        """Close SKD for every applicant, collect their keys, find the cut and announce it."""
        barrier = self.carry.skd_barrier or self._barrier(closed)
        self.carry.skd_barrier = barrier
        await self._await_replies(barrier)
        tracker = self.carry.tracker
        assert tracker is not None
        cut_key = tracker.cut_key()
        passers = tracker.seen
        pages: dict = {}
        if self.carry.paged:
            if self.carry.skd_cut is None:
                self.carry.skd_cut = await run_activity(
                    RANK_SKD_PAGES,
                    SkdPagesRequest(
                        owner=workflow.info().workflow_id,
                        capacity=tracker.capacity,
                        pages=self.carry.skd_pages,
                    ),
                    **self._ranking_options(),
                )
            cut_key, passers = self.carry.skd_cut.cut_key, self.carry.skd_cut.passers
            pages = {"pages": [p.digest for p in self.carry.skd_pages]}
        self._decide_once(
            "skd_ranking",
            "cut",
            {
                "announcement_id": closed.announcement_id,
                "quota": self.start.formasi.quota,
                "cut_size": tracker.capacity,
                "replies": barrier.replies,
                "passers_seen": passers,
                "cut_key": list(cut_key) if cut_key else None,
                **pages,
            },
        )
        result = sealed(
            Announcement(
                announcement_id=f"{closed.announcement_id}/result",
                phase=Phase.SKD_RESULT,
                at=workflow.now(),
                cut_key=cut_key,
                formasi_code=self._result_name(),
            ),
            self.start.secret,
        )
        await self._deliver(result)
        self.carry.skd_barrier = None
        self.carry.skd_pages = []
        self.carry.processed.append(closed.announcement_id)

    async def _final_ranking(self, closed: Announcement) -> None:
        """Close SKB, collect final entries, rank by the full tie-break chain and announce."""
        barrier = self.carry.final_barrier or self._barrier(closed)
        self.carry.final_barrier = barrier
        await self._await_replies(barrier)
        if self.carry.paged:
            await self._final_ranking_paged(closed)
            return
        ranking = rank_final(self.carry.final_entries, self.start.formasi.quota)
        by_id = {e.applicant_id: e for e in self.carry.final_entries}
        self._decide_once(
            "final_ranking",
            "ranked",
            {
                "announcement_id": closed.announcement_id,
                "quota": self.start.formasi.quota,
                "entries": len(self.carry.final_entries),
                "winners": [[a, fraction_text(by_id[a].final_score)] for a in ranking.winners],
                "others": [[a, fraction_text(by_id[a].final_score)] for a in ranking.others],
            },
        )
        result = sealed(
            Announcement(
                announcement_id=f"{closed.announcement_id}/result",
                phase=Phase.FINAL_RESULT,
                at=workflow.now(),
                winners=ranking.winners,
                formasi_code=self._result_name(),
            ),
            self.start.secret,
        )
        await self._deliver(result)
        await self._tell_round(ranking, by_id)
        self.carry.final_barrier = None
        self.carry.final_ranked = True
        self.carry.processed.append(closed.announcement_id)

    async def _final_ranking_paged(self, closed: Announcement) -> None:
        """The final ranking from the pages of answers (patch paged-ranking): ranked by an
        activity, recorded by the references of its pages, told a page of applicants at a time."""
        if self.carry.ranked is None:
            self.carry.ranked = await self._rank_final_pages()
        ranked = self.carry.ranked
        self._decide_once(
            "final_ranking",
            "ranked",
            {
                "announcement_id": closed.announcement_id,
                "quota": self.start.formasi.quota,
                "entries": ranked.entries,
                **self._pages_record(ranked),
            },
        )
        await self._announce_ranking(closed, Phase.FINAL_RESULT, ranked)
        self.carry.final_barrier = None
        self.carry.final_ranked = True
        self.carry.processed.append(closed.announcement_id)

    def _pages_record(self, ranking: FinalPages) -> dict:
        """What a decision records of a ranking kept as pages: counts and page digests (the
        recompute builds the same pages from its own ranking and compares the digests)."""
        record = {
            "page_items": self._page_items(),
            "winners_count": ranking.n_winners,
            "others_count": ranking.n_others,
            "winner_pages": [p.digest for p in ranking.winners],
            "other_pages": [p.digest for p in ranking.others],
        }
        if ranking.fold_at is not None:  # the digests are the roots of folded lists
            record["fold_at"] = ranking.fold_at
        return record

    async def _confirm_final(self, closed: Announcement) -> None:
        """The final sanggah is over: rank again with the corrected entries, record the ranking,
        tell every applicant of the ranking the result as it now stands, and the round."""
        if self.carry.paged:
            await self._confirm_final_paged(closed)
            return
        before = rank_final(self.carry.final_entries, self.start.formasi.quota)
        old = {e.applicant_id: e for e in self.carry.final_entries}
        corrections = self.carry.corrections
        entries = [
            fixed
            for e in self.carry.final_entries
            if (fixed := corrections[e.applicant_id] if e.applicant_id in corrections else e)
            is not None
        ]
        ranking = rank_final(entries, self.start.formasi.quota)
        by_id = {e.applicant_id: e for e in entries}
        self._decide_once(
            "final_ranking",
            "confirmed",
            {
                "announcement_id": closed.announcement_id,
                "quota": self.start.formasi.quota,
                "corrections": [
                    [
                        a,
                        fraction_text(old[a].final_score) if a in old else None,
                        fraction_text(e.final_score) if e is not None else None,
                        self.carry.correction_answers.get(a, ""),
                    ]
                    for a, e in sorted(self.carry.corrections.items())
                ],
                "changed": ranking.winners != before.winners,
                "winners": [[a, fraction_text(by_id[a].final_score)] for a in ranking.winners],
                "others": [[a, fraction_text(by_id[a].final_score)] for a in ranking.others],
            },
        )
        self.carry.final_entries = entries
        self.carry.final_confirmed = True
        result = sealed(
            Announcement(
                announcement_id=f"{closed.announcement_id}/result",
                phase=Phase.FINAL_CONFIRMED,
                at=workflow.now(),
                winners=ranking.winners,
                formasi_code=self._result_name(),
            ),
            self.start.secret,
        )
        await self._deliver_to(result, [*ranking.winners, *ranking.others])
        await self._tell_round(ranking, by_id, confirmed=True)

    async def _confirm_final_paged(self, closed: Announcement) -> None:
        """`_confirm_final` from pages: the activity ranks again with the corrections and says
        whether the winners changed and what each corrected applicant scored before."""
        ranked = self.carry.ranked
        assert ranked is not None
        if self.carry.confirmed is None:
            self.carry.confirmed = await self._rank_final_pages(
                corrections=self.carry.corrections, previous_winners=ranked.winners
            )
        confirmed = self.carry.confirmed
        self._decide_once(
            "final_ranking",
            "confirmed",
            {
                "announcement_id": closed.announcement_id,
                "quota": self.start.formasi.quota,
                "corrections": [
                    [
                        a,
                        confirmed.scores_before.get(a),
                        fraction_text(e.final_score) if e is not None else None,
                        self.carry.correction_answers.get(a, ""),
                    ]
                    for a, e in sorted(self.carry.corrections.items())
                ],
                "changed": confirmed.changed,
                "entries": confirmed.entries,
                **self._pages_record(confirmed),
            },
        )
        self.carry.final_confirmed = True
        await self._announce_ranking(closed, Phase.FINAL_CONFIRMED, confirmed, confirmed=True)

    async def _rank_final_pages(self, **correcting) -> FinalPages:
        """The final ranking of the kept entries, by the activity (with the final sanggah's
        corrections and the ranking before, when `correcting` names them)."""
        return await run_activity(
            RANK_FINAL_PAGES,
            FinalPagesRequest(
                owner=workflow.info().workflow_id,
                quota=self.start.formasi.quota,
                pages=self.carry.entry_pages,
                page_items=self._page_items(),
                fold_at=self.start.fold_pages_at if self.carry.folded else None,
                **correcting,
            ),
            **self._ranking_options(),
        )

    async def _announce_ranking(
        self, closed: Announcement, phase: Phase, ranking: FinalPages, confirmed: bool = False
    ) -> None:
        """Tell the ranking's applicants their result a page at a time (one time for every page,
        kept across continue-as-new), then the round."""
        if self.carry.result_at is None:
            self.carry.result_at = workflow.now()
        result = Announcement(
            announcement_id=f"{closed.announcement_id}/result",
            phase=phase,
            at=self.carry.result_at,
            formasi_code=self._result_name(),
        )
        await self._deliver_pages(result, ranking, [True, False], result=True)
        await self._tell_round_pages(ranking, confirmed=confirmed)
        self.carry.result_at = None

    async def _tell_round_pages(self, ranking: FinalPages, confirmed: bool = False) -> None:
        """The round's result of this formasi as references: the winners' and the candidates'
        pages, which the round reads when optimalisasi needs them."""
        await self._send_result(
            FormasiResult(
                formasi_code=self.start.formasi.code,
                vacancies=self.start.formasi.quota - ranking.n_winners,
                candidates=[],
                winners=[],
                confirmed=confirmed,
                winner_pages=ranking.winners,
                candidate_pages=ranking.candidates,
                winners_count=ranking.n_winners,
                candidates_count=ranking.n_others,
                fold_at=ranking.fold_at,
            )
        )

    async def _send_result(self, result: FormasiResult) -> None:
        """Seal this formasi's result and signal it to the round (as an update when the round's
        run takes no more signals: `tell`)."""
        await tell(
            FORMASI_RESULT,
            round_workflow_id(self.start.round_id),
            sealed(result, self.start.secret),
        )

    async def _deliver_pages(
        self,
        announcement: Announcement,
        ranking: FinalPages,
        parts: list[bool],
        result: bool = False,
    ) -> int:
        """Tell the applicants listed in a ranking's line pages, a page at a time. `parts` names
        the lists in order, True for the winners', False for the others'. A `result` names a
        winners' page's applicants as its winners, and none otherwise, sealed page by page: each
        journey hears only its own page's winners, and no signal grows with the quota.

        Folded lists (patch folded-page-references) are counted from the lines the ranking kept,
        and each page is read at its place under the list's roots (local activity read_leaf);
        others hold every page's reference (read_page)."""
        folded = ranking.fold_at is not None
        size = self._page_items()
        counted = [
            (refs, leaf_pages(lines, size) if folded else len(refs), winners)
            for refs, lines, winners in (
                (ranking.winners, ranking.n_winners, True)
                if winners
                else (ranking.others, ranking.n_others, False)
                for winners in parts
            )
        ]
        total = sum(n for _, n, _ in counted)
        paging = self._paging(announcement)
        while paging.offset < total:
            part, offset = 0, paging.offset
            while offset >= counted[part][1]:
                offset -= counted[part][1]
                part += 1
            refs, _, winners = counted[part]
            if folded:
                read = run_local_activity_until_done(
                    READ_LEAF,
                    LeafRead(kind=LINES, pages=refs, offset=offset),
                    PAGE_TIMEOUT,
                    backoff_timers=self.backoff_timers,
                )
            else:
                read = run_local_activity_until_done(
                    READ_PAGE,
                    PageRead(kind=LINES, page=refs[offset]),
                    PAGE_TIMEOUT,
                    backoff_timers=self.backoff_timers,
                )
            ids = ids_of(await read)
            told = announcement
            if result:
                told = sealed(
                    announcement.model_copy(update={"winners": ids if winners else []}),
                    self.start.secret,
                )
            page = await self._broadcast(told, len(ids), None, applicant_ids=ids)
            paging.delivered += page.delivered
            paging.offset += 1
            if paging.offset < total and self._should_continue():
                self._continue_as_new()
        self.carry.paging = None
        return paging.delivered

    def _result_name(self) -> str:
        """The formasi code a result carries under its seal (patch results-name-formasi)."""
        return self.start.formasi.code if self.names_itself else ""

    def _page_items(self) -> int:
        return page_size(self.start.page_size or MAX_PAGE_ITEMS)

    def _ranking_options(self) -> dict:
        return {
            "start_to_close_timeout": RANKING_TIMEOUT,
            "heartbeat_timeout": timedelta(minutes=1),
            "retry_policy": RetryPolicy(maximum_interval=timedelta(seconds=30)),
        }

    async def _tell_round(
        self, ranking: FinalRanking, by_id: dict[str, FinalEntry], confirmed: bool = False
    ) -> None:
        """The round's result of this formasi: empty seats, the winners, and those who lost on
        rank with what optimalisasi's pool needs of them (confirmed: after the final sanggah)."""
        await self._send_result(
            FormasiResult(
                formasi_code=self.start.formasi.code,
                vacancies=self.start.formasi.quota - len(ranking.winners),
                candidates=[by_id[a] for a in ranking.others],
                winners=ranking.winners,
                profiles={
                    a: self.carry.profiles[a] for a in ranking.others if a in self.carry.profiles
                },
                confirmed=confirmed,
            )
        )

    def _barrier(self, closed: Announcement) -> Barrier:
        return Barrier(announcement=closed, by_update=workflow.patched("close-by-update"))

    async def _await_replies(self, barrier: Barrier) -> None:
        if barrier.by_update:
            if self.carry.paged and barrier.expected is not None:
                return  # delivered before a continue-as-new: its answers are in the pages
            barrier.expected = await self._deliver(
                barrier.announcement, "close", lambda page: self._absorb(barrier, page)
            )
            return
        if barrier.expected is None:
            barrier.expected = await self._deliver(barrier.announcement)
        while True:
            await workflow.wait_condition(
                lambda: barrier.replies >= (barrier.expected or 0) or self._should_continue()
            )
            if barrier.replies >= (barrier.expected or 0):
                return
            self._continue_as_new()

    async def _absorb(self, barrier: Barrier, page: BroadcastResult) -> None:
        """Take one page's answers to a close: SKD keys into the cut tracker, final entries kept
        (paged: the reference of the page of answers the broadcast kept)."""
        if self.carry.paged:
            barrier.replies += page.replied
            if page.kept is not None:
                if barrier.announcement.phase == Phase.SKD_CLOSED:
                    await self._keep(self.carry.skd_pages, page.kept)
                else:
                    self.carry.entries_kept += page.kept.count
                    await self._keep(self.carry.entry_pages, page.kept)
            return
        for reply in page.replies:
            barrier.replies += 1
            if reply.key is not None and self.carry.tracker is not None:
                self.carry.tracker.add(reply.applicant_id, tuple(reply.key))
            if reply.entry is not None and all(
                e.applicant_id != reply.applicant_id for e in self.carry.final_entries
            ):
                self.carry.final_entries.append(reply.entry)
                if reply.profile is not None:
                    self.carry.profiles[reply.applicant_id] = reply.profile

    async def _keep(self, pages: list[PageRef], ref: PageRef) -> None:
        """Add a kept page's reference to a carried list; folded (patch folded-page-references),
        a list that reaches fold_pages_at becomes the one reference of an index page of them."""
        pages.append(ref)
        if self.carry.folded and len(pages) >= self.start.fold_pages_at:
            await fold_pages(pages, backoff_timers=self.backoff_timers)

    async def _deliver(
        self,
        announcement: Announcement,
        mode: str = "signal",
        on_page: Callable[[BroadcastResult], Awaitable[None]] | None = None,
    ) -> int:
        """Tell every running journey, a page at a time, continuing-as-new between pages if asked.

        Replies to a close arrive while later pages are still being delivered; paging keeps a
        run's history bounded however large the formasi is. `on_page` takes each page's result
        before the paging moves on, so a continue-as-new between pages carries what it held.
        """
        if not workflow.patched("paged-broadcast"):
            return (await self._broadcast(announcement, 0, None)).delivered
        if announcement.phase in (Phase.OPTIMALISASI_CLOSED, Phase.FILING_CLOSED):
            # Deprecated patch (its branch asked each journey through a query that is gone):
            # histories that recorded its marker still replay.
            workflow.deprecate_patch("announce-without-asking")
        paging = self._paging(announcement)
        while True:
            page = await self._broadcast(
                announcement, self.start.page_size, paging.page_token, mode
            )
            if on_page is not None:
                await on_page(page)
            paging.delivered += page.delivered
            paging.page_token = page.next_page_token
            if page.next_page_token is None:
                break
            if self._should_continue():
                self._continue_as_new()
        self.carry.paging = None
        return paging.delivered

    async def _deliver_to(self, announcement: Announcement, applicant_ids: list[str]) -> int:
        """Signal the announcement to the listed applicants' journeys, a page at a time."""
        paging = self._paging(announcement)
        size = self.start.page_size or len(applicant_ids)
        while paging.offset < len(applicant_ids):
            page = applicant_ids[paging.offset : paging.offset + size]
            result = await self._broadcast(announcement, len(page), None, applicant_ids=page)
            paging.delivered += result.delivered
            paging.offset += len(page)
            if paging.offset < len(applicant_ids) and self._should_continue():
                self._continue_as_new()
        self.carry.paging = None
        return paging.delivered

    def _paging(self, announcement: Announcement) -> Paging:
        """The delivery of `announcement` under way (carried across continue-as-new), or a new one."""
        paging = self.carry.paging
        if paging is None or paging.announcement_id != announcement.announcement_id:
            paging = self.carry.paging = Paging(announcement_id=announcement.announcement_id)
        return paging

    async def _broadcast(
        self,
        announcement: Announcement,
        page_size: int,
        token: str | None,
        mode: str = "signal",
        applicant_ids: list[str] | None = None,
    ) -> BroadcastResult:
        return await run_activity(
            BROADCAST,
            BroadcastRequest(
                round_id=self.start.round_id,
                formasi_code=self.start.formasi.code,
                announcement=announcement,
                page_size=page_size,
                page_token=token,
                mode=mode,
                keep_replies=self.carry.paged and mode == "close",
                workflow_ids=[
                    journey_workflow_id(self.start.round_id, a) for a in applicant_ids or []
                ],
            ),
            start_to_close_timeout=BROADCAST_TIMEOUT,
            # A killed worker's page is retried elsewhere 10 s after its last heartbeat (sent every
            # 8 s at most; activities/broadcast.py), resuming from the progress the heartbeat carried.
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )

    # --- messages ------------------------------------------------------------------------------

    @workflow.signal
    def phase(self, *args: object) -> None:
        """The round closed a phase (or asks for an announcement to the formasi's applicants).

        Only what the round sends is queued: its phases under its announcement ids, each once and
        in the round's order (a TMT move at any time, with its date). Anything else is ignored with
        a warning: a forged `round_closed` would end this formasi, and the round's next
        announcement to it would then fail.
        """
        announcement = signal_message(Announcement, args, self.start.secret)
        if isinstance(announcement, str):
            self._ignored("phase", announcement)
            return
        known = {a.announcement_id for a in self.carry.queue} | set(self.carry.processed)
        if announcement.announcement_id in known:
            return
        problem = self._phase_problem(announcement)
        if problem:
            self._ignored("phase", problem)
            return
        self.carry.queue.append(announcement)

    def _phase_problem(self, a: Announcement) -> str | None:
        """Why the round cannot have sent `a` now, or None."""
        sanggah = self.start.final_sanggah and a.phase == Phase.FINAL_APPEAL_CLOSED
        if (
            a.phase not in (Phase.TMT_MOVED, Phase.KEYS_CHANGED)
            and a.phase not in ROUND_PHASES
            and not sanggah
        ):
            return "the phase is not one the round announces to a formasi"
        prefix = f"{self.start.round_id}/{a.phase}/"
        if not (
            a.announcement_id.startswith(prefix) and a.announcement_id[len(prefix) :].isdigit()
        ):
            return "the announcement id is not one of the round's"
        if not _plausible_time(a.at):
            return "at is not a time with a zone, or is in the future"
        if a.phase == Phase.TMT_MOVED:
            return None if _iso_date(a.note) else "a TMT move whose note is not an ISO date"
        if a.phase == Phase.KEYS_CHANGED:
            return None if changed_keys(a.note) else "a key change whose note is not its keys"
        heard = self._phases_heard()
        if a.phase in heard:
            return f"{a.phase} was announced already"
        if sanggah:
            if Phase.SKB_CLOSED not in heard or Phase.OPTIMALISASI_CLOSED in heard:
                return f"{a.phase} outside the time after the SKB close and before optimalisasi"
            return None
        i = ROUND_PHASES.index(Phase(a.phase))
        if i > 0 and ROUND_PHASES[i - 1] not in heard:
            return f"{a.phase} before {ROUND_PHASES[i - 1]}"
        return None

    def _phases_heard(self) -> set[str]:
        """The round's phases queued or handled (ids of the round's announcements name them)."""
        heard = {a.phase for a in self.carry.queue}
        for announcement_id in self.carry.processed:
            parts = announcement_id.split("/")
            if len(parts) == 3 and parts[0] == self.start.round_id:
                heard.add(parts[1])
        return heard

    # --- `phase` and `entry_corrected` as updates (workflows/calls.py `tell`): what the round and
    # a journey send once this run takes no more signals, because another sender spent them.
    # Only what the round's workflows sealed is let in; a refused update leaves nothing.

    @workflow.update(name=FORMASI_PHASE_UPDATE.name)
    def phase_update(self, *args: object) -> bool:
        self.phase(*args)
        return True

    @phase_update.validator
    def validate_phase_update(self, *args: object) -> None:
        self._sealed_or_refused(Announcement, args, FORMASI_PHASE_UPDATE.name)

    @workflow.update(name=ENTRY_CORRECTED_UPDATE.name)
    def entry_corrected_update(self, *args: object) -> bool:
        self.entry_corrected(*args)
        return True

    @entry_corrected_update.validator
    def validate_entry_corrected_update(self, *args: object) -> None:
        self._sealed_or_refused(EntryCorrection, args, ENTRY_CORRECTED_UPDATE.name)

    def _sealed_or_refused(
        self, model: type[BaseModel], args: tuple[object, ...], name: str
    ) -> None:
        subject = f"{name} to formasi {self.start.formasi.code} of round {self.start.round_id}"
        sealed_or_refused(model, args, self.start.secret, subject)

    @workflow.signal
    def skd_entry(self, *args: object) -> None:
        """An applicant's answer to the SKD close by signal: its key when it passed its threshold."""
        reply = signal_message(SkdEntryReply, args)
        if isinstance(reply, str):
            self._ignored("skd_entry", reply)
            return
        barrier = self.carry.skd_barrier
        problem = _entry_problem(barrier, "the SKD ranking", reply.applicant_id)
        if problem:
            self._ignored("skd_entry", problem)
            return
        assert barrier is not None
        barrier.replies += 1
        if reply.key is not None and self.carry.tracker is not None:
            self.carry.tracker.add(reply.applicant_id, tuple(reply.key))

    @workflow.signal
    def final_entry(self, *args: object) -> None:
        """An applicant's answer to the SKB close by signal: its final entry when it completed SKB."""
        reply = signal_message(FinalEntryReply, args)
        if isinstance(reply, str):
            self._ignored("final_entry", reply)
            return
        barrier = self.carry.final_barrier
        problem = _entry_problem(barrier, "the final ranking", reply.applicant_id)
        entry = reply.entry
        if problem is None and entry is not None:
            if entry.applicant_id != reply.applicant_id:
                problem = "the entry is another applicant's"
            elif entry.formasi_code != self.start.formasi.code:
                problem = "the entry is for another formasi"
            elif not _plausible_entry(entry):
                problem = "the entry's GPA or SKD scores are impossible"
        if problem:
            self._ignored("final_entry", problem)
            return
        assert barrier is not None
        barrier.replies += 1
        if entry is not None and all(
            e.applicant_id != reply.applicant_id for e in self.carry.final_entries
        ):
            self.carry.final_entries.append(entry)
            if reply.profile is not None:
                self.carry.profiles[reply.applicant_id] = reply.profile

    @workflow.signal
    def entry_corrected(self, *args: object) -> None:
        """A journey's final entry as an accepted final sanggah corrected it (sealed)."""
        correction = signal_message(EntryCorrection, args, self.start.secret)
        if isinstance(correction, str):
            self._ignored("entry_corrected", correction)
            return
        entry = correction.entry
        known = {e.applicant_id for e in self.carry.final_entries}
        problem = None
        if not self.start.final_sanggah or not self.carry.final_ranked:
            problem = "no final sanggah is open in this formasi"
        elif self.carry.final_confirmed:
            problem = "the ranking after the final sanggah is already confirmed"
        elif correction.applicant_id not in known and not self.carry.paged:
            # Paged, the formasi holds no list of its entrants: the ranking activity takes a
            # correction only for an applicant in the pages (the seal says a journey sent it).
            problem = "the applicant is not in the final ranking"
        elif correction.applicant_id in self.carry.corrections:
            problem = "the applicant's entry is corrected already"
        elif entry is not None and (
            entry.applicant_id != correction.applicant_id
            or entry.formasi_code != self.start.formasi.code
            or not _plausible_entry(entry)
        ):
            problem = "the entry is another applicant's, another formasi's, or impossible"
        if problem:
            self._ignored("entry_corrected", problem)
            if self.carry.final_confirmed and (
                correction.applicant_id in known or self.carry.paged
            ):
                # Recorded: an auditor must see a correction the ranking could not take.
                self._decide(
                    "final_ranking",
                    "correction too late",
                    {"applicant_id": correction.applicant_id, "answer_id": correction.answer_id},
                )
            return
        self.carry.corrections[correction.applicant_id] = entry
        self.carry.correction_answers[correction.applicant_id] = correction.answer_id

    def _ignored(self, signal: str, problem: str) -> None:
        """Log a signal that changes nothing: the signal, the workflow and why; never its content."""
        workflow.logger.warning(
            "signal %s to %s ignored: %s", signal, workflow.info().workflow_id, problem
        )

    @workflow.query
    def state(self) -> FormasiState:
        """Progress of this formasi's selection."""
        barrier = self.carry.skd_barrier or self.carry.final_barrier
        awaiting = None
        if barrier is not None:
            awaiting = (
                f"{barrier.announcement.phase}: {barrier.replies} of {barrier.expected} replies"
            )
        tracker = self.carry.tracker
        return FormasiState(
            round_id=self.start.round_id,
            formasi_code=self.start.formasi.code,
            quota=self.start.formasi.quota,
            runs=self.carry.runs,
            processed=list(self.carry.processed),
            awaiting=awaiting,
            skd_cut_key=(
                self.carry.skd_cut.cut_key
                if self.carry.skd_cut
                else tracker.cut_key()
                if tracker
                else None
            ),
            skd_passers_seen=(
                self.carry.skd_cut.passers if self.carry.skd_cut else tracker.seen if tracker else 0
            ),
            final_entries=(
                self.carry.ranked.entries
                if self.carry.ranked
                else self.carry.entries_kept
                if self.carry.folded
                else sum(p.count for p in self.carry.entry_pages) or len(self.carry.final_entries)
            ),
            decisions=list(self.carry.decisions),
        )

    def _decide_once(self, stage: str, outcome: str, inputs: dict) -> None:
        """Record a ranking once, even when a continue-as-new made its run do it again."""
        key = inputs["announcement_id"]
        if not any(
            d.input.get("announcement_id") == key and d.outcome == outcome
            for d in self.carry.decisions
        ):
            self._decide(stage, outcome, inputs)

    def _decide(self, stage: str, outcome: str, inputs: dict) -> None:
        rules = self.start.rules
        self.carry.decisions.append(
            decision(
                stage,
                outcome,
                f"formasi:{self.start.formasi.code}",
                inputs,
                rules.rule_version,
                rules.rules_digest,
            )
        )

    def _should_continue(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        # The server suggests at 4,096 events; replies that arrive while a page is being
        # delivered land in the same run, so continue on our own count with a page's margin.
        return (
            self.own_limit and info.get_current_history_length() >= self.start.continue_after_events
        )

    def _continue_as_new(self) -> None:
        self.carry.runs += 1
        # The same start with the state carried: no field of the start can be left behind (the
        # final sanggah's flag once was, and the next run ignored the round's close of it).
        workflow.continue_as_new(
            self.start.model_copy(update={"carry": self.carry.model_dump(mode="json")})
        )
