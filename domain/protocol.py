"""The protocol between processes: every workflow, update, signal, query and activity, by name,
with its input and output types.

Callers use these references instead of strings: `await REPORT_SKD.execute(handle, report)`,
`await ANNOUNCE.send(handle, announcement)`, `await JOURNEY_STATE.ask(handle)`. Handles are
Temporal's (a client's workflow handle, or a workflow's external handle); this module only names
the methods it calls on them, so it stays free of Temporal and of I/O. A name here is a contract
with every recorded history: renaming one breaks replay.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from domain.aftermath import (
    AftermathStart,
    AftermathState,
    JourneyEnd,
    JourneyEndRequest,
    RevocationRows,
)
from domain.contracts import (
    BroadcastRequest,
    BroadcastResult,
    CloseAnswer,
    JourneyProjection,
    NipIssued,
    NipRequest,
    OfferSends,
    OffersSent,
    SignalByUpdate,
)
from domain.messages import (
    Ack,
    AdminReport,
    Announcement,
    AppealAnswer,
    AppealFiling,
    ChangeKeys,
    CloseWindow,
    ConflictDeclaration,
    Dismissal,
    Disqualification,
    EntryCorrection,
    ExtendWindow,
    FilingReport,
    FinalEntryReply,
    FormasiResult,
    FormasiStart,
    FormasiState,
    GateReport,
    JourneyStart,
    JourneyState,
    LatsarReport,
    MoveTmt,
    OfferAnswer,
    OfferReply,
    OptimalisasiOffer,
    PanelReview,
    PanelScoreReport,
    RecordPublication,
    RegistrationConfirm,
    RegistrationOutcome,
    Report,
    RoundBoardWrite,
    RoundStart,
    RoundState,
    RoundView,
    RoundViewRequest,
    SanctionCheck,
    SanctionVerdict,
    SeatVacated,
    SkbScoreReport,
    SkdEntryReply,
    SkdReport,
    Withdrawal,
)
from domain.pages import (
    AllocationRequest,
    AllocationResult,
    FinalPages,
    FinalPagesRequest,
    LeafRead,
    PageFold,
    PageKeep,
    PageRead,
    PageRef,
    SkdCut,
    SkdPagesRequest,
)

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class Workflow(Generic[In, Out]):
    """A workflow type: its name, start input and result."""

    name: str
    input: type[In]
    output: type[Out]


@dataclass(frozen=True)
class Update(Generic[In, Out]):
    """An update: validated by the workflow before anything is recorded, answered with `output`."""

    name: str
    input: type[In]
    output: type[Out]

    async def execute(self, handle: Any, message: In, **options: Any) -> Out:
        """Send the update through a client's workflow handle and wait for its answer."""
        return await handle.execute_update(self.name, message, result_type=self.output, **options)


@dataclass(frozen=True)
class Signal(Generic[In]):
    """A signal: passes only between the project's own workflows."""

    name: str
    input: type[In]

    async def send(self, handle: Any, message: In) -> None:
        """Signal through a client's or a workflow's handle."""
        await handle.signal(self.name, message)


@dataclass(frozen=True)
class Query(Generic[In, Out]):
    """A read-only question; `input` is None for a query without an argument."""

    name: str
    input: type[In] | None
    output: type[Out]

    async def ask(self, handle: Any, *arg: In, **options: Any) -> Out:
        """Query through a client's workflow handle."""
        return await handle.query(self.name, *arg, result_type=self.output, **options)


@dataclass(frozen=True)
class Activity(Generic[In, Out]):
    """An activity: the I/O a workflow asks a worker to do."""

    name: str
    input: type[In]
    output: type[Out]


# --- workflows ----------------------------------------------------------------------------------

APPLICANT_JOURNEY = Workflow("ApplicantJourney", JourneyStart, JourneyState)
FORMASI_SELECTION = Workflow("FormasiSelection", FormasiStart, FormasiState)
RECRUITMENT_ROUND = Workflow("RecruitmentRound", RoundStart, RoundState)

# --- ApplicantJourney: reports from services and the portal (updates) ---------------------------

REPORT_ADMIN = Update("report_admin", AdminReport, Ack)
FILE_APPEAL = Update("file_appeal", AppealFiling, Ack)
ANSWER_APPEAL = Update("answer_appeal", AppealAnswer, Ack)
REPORT_SKD = Update("report_skd", SkdReport, Ack)
REPORT_SKB_SCORE = Update("report_skb_score", SkbScoreReport, Ack)
REPORT_PANEL_SCORE = Update("report_panel_score", PanelScoreReport, Ack)
DECLARE_CONFLICT = Update("declare_conflict", ConflictDeclaration, Ack)
REVIEW_PANEL_SCORE = Update("review_panel_score", PanelReview, Ack)
REPORT_GATE = Update("report_gate", GateReport, Ack)
ANSWER_OFFER = Update("answer_offer", OfferAnswer, Ack)
REPORT_FILING = Update("report_filing", FilingReport, Ack)
REPORT_LATSAR = Update("report_latsar", LatsarReport, Ack)
DISQUALIFY = Update("disqualify", Disqualification, Ack)
WITHDRAW = Update("withdraw", Withdrawal, Ack)

JOURNEY_REPORTS: dict[str, Update[Any, Ack]] = {
    u.name: u
    for u in (
        REPORT_ADMIN,
        FILE_APPEAL,
        ANSWER_APPEAL,
        REPORT_SKD,
        REPORT_SKB_SCORE,
        REPORT_PANEL_SCORE,
        DECLARE_CONFLICT,
        REVIEW_PANEL_SCORE,
        REPORT_GATE,
        ANSWER_OFFER,
        REPORT_FILING,
        REPORT_LATSAR,
        DISQUALIFY,
        WITHDRAW,
    )
}
_REPORT_UPDATE = {u.input: u for u in JOURNEY_REPORTS.values()}


def report_update(report: Report) -> Update[Any, Ack]:
    """The journey update that carries this report."""
    return _REPORT_UPDATE[type(report)]


# --- ApplicantJourney: from its formasi and its round -------------------------------------------

# The answer is a CloseAnswer: a CloseReply, with the journey's read-model row since the patch
# close-answered-with-row (decoding a journey's older answer gives row=None).
CLOSE_STAGE = Update("close_stage", Announcement, CloseAnswer)


# A close's update id names the page of journeys it was sent with: the listing's digest and the
# journey's place in it. So each journey's history records which page its answer went into, and
# a page of answers lost from the page store can be made again from the journeys' histories
# (auditing/pagestore.py). One id per close, listing and journey: a retry that resumes the same
# listing sends the same id, answered by the server from the journey's record.
_CLOSE_UPDATE_ID = re.compile(
    r"close_stage-(?P<announcement>.+)@(?P<listing>[0-9a-f]{16})\.(?P<at>\d+)"
)


def listing_digest(workflow_ids: Sequence[str]) -> str:
    """16 hex digits naming one listing of journeys (their ids, in order)."""
    return hashlib.sha256("\n".join(workflow_ids).encode()).hexdigest()[:16]


def close_update_id(announcement_id: str, listing: str, position: int) -> str:
    """The update id of a close sent to the journey at `position` of the listing `listing`."""
    return f"{CLOSE_STAGE.name}-{announcement_id}@{listing}.{position}"


def close_page_of(update_id: str) -> tuple[str, str, int] | None:
    """(announcement id, listing, position) of a close's update id; None for any other id (a
    close sent before the id named its page: `close_stage-<announcement id>`)."""
    m = _CLOSE_UPDATE_ID.fullmatch(update_id)
    return (m["announcement"], m["listing"], int(m["at"])) if m else None


ANNOUNCE = Signal("announce", Announcement)
# `announce` and `offer_seat` as updates: what a broadcast or the offers' activity sends once the
# journey's run takes no more signals (its 10,000 spent by anyone who reaches Temporal). A
# refused update leaves nothing in the history, so nobody else can use this way up.
ANNOUNCE_UPDATE = Update("announce_update", Announcement, bool)
OFFER_SEAT_UPDATE = Update("offer_seat_update", OptimalisasiOffer, bool)
OFFER_SEAT = Signal("offer_seat", OptimalisasiOffer)
JOURNEY_STATE: Query[None, JourneyState] = Query("state", None, JourneyState)
REGISTRATION_DIGEST: Query[None, str] = Query("registration_digest", None, str)
# Sent by RecruitmentApi.register with the journey's start (update-with-start): the answer waits
# for the journey's first read-model row. Taken once per journey; later ones are refused unrecorded.
CONFIRM_REGISTRATION = Update("confirm_registration", RegistrationConfirm, RegistrationOutcome)

# --- ApplicantAftermath: DIS or dismissal after the journey ended (domain/aftermath.py) ---------

APPLICANT_AFTERMATH = Workflow("ApplicantAftermath", AftermathStart, AftermathState)
DISMISS = Update("dismiss", Dismissal, Ack)
# A DIS travels by the journey's own update name: the same signed message, whichever of the two
# workflows takes it.
AFTERMATH_REPORTS: dict[str, Update[Any, Ack]] = {u.name: u for u in (DISQUALIFY, DISMISS)}
AFTERMATH_STATE: Query[None, AftermathState] = Query("state", None, AftermathState)

# The kind each report about an applicant is sent as over HTTP: the gateway's path
# (/api/v1/rounds/{round}/applicants/{no}/{kind}) and a batch item's `kind`. Its update's name
# without the report_ prefix the journey's updates share; a dismissal is the applicant's too
# (its aftermath takes it, as it takes a DIS after the journey ended).
SERVICE_KINDS: dict[str, Update[Any, Ack]] = {
    **{name.removeprefix("report_"): u for name, u in JOURNEY_REPORTS.items()},
    DISMISS.name: DISMISS,
}
_SERVICE_KIND = {u.input: kind for kind, u in SERVICE_KINDS.items()}


def service_kind(report: Report) -> str:
    """The kind `report` is sent as over HTTP (SERVICE_KINDS)."""
    return _SERVICE_KIND[type(report)]


# --- FormasiSelection ---------------------------------------------------------------------------

FORMASI_PHASE = Signal("phase", Announcement)
SKD_ENTRY = Signal("skd_entry", SkdEntryReply)  # journeys' answers before close-by-update
FINAL_ENTRY = Signal("final_entry", FinalEntryReply)  # ditto
ENTRY_CORRECTED = Signal("entry_corrected", EntryCorrection)  # after an accepted final sanggah
# The round's phases and the corrections as updates, for a formasi whose run takes no more
# signals (SEND_BY_UPDATE).
FORMASI_PHASE_UPDATE = Update("phase_update", Announcement, bool)
ENTRY_CORRECTED_UPDATE = Update("entry_corrected_update", EntryCorrection, bool)
FORMASI_STATE: Query[None, FormasiState] = Query("state", None, FormasiState)

# --- RecruitmentRound ---------------------------------------------------------------------------

EXTEND_WINDOW = Update("extend_window", ExtendWindow, Ack)
CLOSE_WINDOW = Update("close_window", CloseWindow, Ack)
MOVE_TMT = Update("move_tmt", MoveTmt, Ack)
CHANGE_KEYS = Update("change_keys", ChangeKeys, Ack)
RECORD_PUBLICATION = Update("record_publication", RecordPublication, Ack)
FORMASI_RESULT = Signal("formasi_result", FormasiResult)
SEAT_VACATED = Signal("seat_vacated", SeatVacated)
OFFER_REPLY = Signal("offer_reply", OfferReply)
# The same three as updates, for a round whose run takes no more signals (SEND_BY_UPDATE).
FORMASI_RESULT_UPDATE = Update("formasi_result_update", FormasiResult, bool)
SEAT_VACATED_UPDATE = Update("seat_vacated_update", SeatVacated, bool)
OFFER_REPLY_UPDATE = Update("offer_reply_update", OfferReply, bool)
_COMMAND_UPDATE: dict[type, Update[Any, Ack]] = {
    u.input: u for u in (EXTEND_WINDOW, CLOSE_WINDOW, MOVE_TMT, CHANGE_KEYS, RECORD_PUBLICATION)
}


def command_update(command: Report) -> Update[Any, Ack]:
    """The round update that carries this operator command."""
    return _COMMAND_UPDATE[type(command)]


# The kind each operator command is sent as over HTTP: the gateway's path
# (/api/v1/rounds/{round}/commands/{kind}).
COMMAND_KINDS: dict[str, Update[Any, Ack]] = {
    "extend-window": EXTEND_WINDOW,
    "close-window": CLOSE_WINDOW,
    "move-tmt": MOVE_TMT,
    "change-keys": CHANGE_KEYS,
}
_COMMAND_KIND = {u.input: kind for kind, u in COMMAND_KINDS.items()}


def command_kind(command: Report) -> str:
    """The kind `command` is sent as over HTTP (COMMAND_KINDS)."""
    return _COMMAND_KIND[type(command)]


ROUND_VIEW: Query[str, RoundView] = Query("rules_view", str, RoundView)
ROUND_STATE: Query[None, RoundState] = Query("state", None, RoundState)
CONFIG_DIGEST: Query[None, str] = Query("config_digest", None, str)

# --- activities ---------------------------------------------------------------------------------

PROJECT_JOURNEY = Activity("project_journey", JourneyProjection, type(None))
ISSUE_NIP = Activity("issue_nip", NipRequest, NipIssued)
BROADCAST = Activity("broadcast", BroadcastRequest, BroadcastResult)
# The failure type of a local activity ended because its worker stops (runtime/stopping.py); the
# workflow pauses on a timer and asks again (workflows/calls.py: run_local_activity_until_done).
WORKER_STOPPING = "WorkerStopping"

READ_ROUND = Activity("read_round", RoundViewRequest, RoundView)
CHECK_SANCTIONS = Activity("check_sanctions", SanctionCheck, SanctionVerdict)
PUBLISH_ROUND_BOARD = Activity("publish_round_board", RoundBoardWrite, type(None))
READ_JOURNEY_END = Activity("read_journey_end", JourneyEndRequest, JourneyEnd)
PROJECT_REVOCATIONS = Activity("project_revocations", RevocationRows, type(None))
# The page store (domain/pages.py, issue 17 item 1): rankings of lists kept as pages.
READ_PAGE = Activity("read_page", PageRead, list)
READ_LEAF = Activity("read_leaf", LeafRead, list)
FOLD_PAGES = Activity("fold_pages", PageFold, PageRef)
RANK_SKD_PAGES = Activity("rank_skd_pages", SkdPagesRequest, SkdCut)
RANK_FINAL_PAGES = Activity("rank_final_pages", FinalPagesRequest, FinalPages)
ALLOCATE_PAGES = Activity("allocate_pages", AllocationRequest, AllocationResult)
# The applicants a round has offered, kept as pages (patch optimalisasi-continues).
KEEP_PAGE = Activity("keep_page", PageKeep, PageRef)
# The round's optimalisasi offers, sent as `offer_seat` signals (patch offers-by-local-activity).
SEND_OFFERS = Activity("send_offers", OfferSends, OffersSent)
# A signal between the round's workflows sent as its update (BY_UPDATE) when the receiving run
# takes no more signals; answers "taken", or why not (patch signal-by-update-when-spent).
SEND_BY_UPDATE = Activity("send_by_update", SignalByUpdate, str)

# --- everything, for readers of recorded histories ----------------------------------------------

WORKFLOWS: tuple[Workflow[Any, Any], ...] = (
    APPLICANT_JOURNEY,
    FORMASI_SELECTION,
    RECRUITMENT_ROUND,
    APPLICANT_AFTERMATH,
)
UPDATES: tuple[Update[Any, Any], ...] = (
    *JOURNEY_REPORTS.values(),
    CLOSE_STAGE,
    ANNOUNCE_UPDATE,
    OFFER_SEAT_UPDATE,
    FORMASI_PHASE_UPDATE,
    ENTRY_CORRECTED_UPDATE,
    FORMASI_RESULT_UPDATE,
    SEAT_VACATED_UPDATE,
    OFFER_REPLY_UPDATE,
    CONFIRM_REGISTRATION,
    EXTEND_WINDOW,
    CLOSE_WINDOW,
    MOVE_TMT,
    CHANGE_KEYS,
    RECORD_PUBLICATION,
    DISMISS,
)
# Every activity a workflow asks for by name (the national claims' are in domain/national.py).
ACTIVITIES: tuple[Activity[Any, Any], ...] = (
    PROJECT_JOURNEY,
    ISSUE_NIP,
    BROADCAST,
    READ_ROUND,
    CHECK_SANCTIONS,
    PUBLISH_ROUND_BOARD,
    READ_JOURNEY_END,
    PROJECT_REVOCATIONS,
    READ_PAGE,
    READ_LEAF,
    FOLD_PAGES,
    RANK_SKD_PAGES,
    RANK_FINAL_PAGES,
    ALLOCATE_PAGES,
    KEEP_PAGE,
    SEND_OFFERS,
    SEND_BY_UPDATE,
)
# The update that takes each signal's message when the receiving run takes no more signals.
BY_UPDATE: dict[str, Update[Any, bool]] = {
    ANNOUNCE.name: ANNOUNCE_UPDATE,
    OFFER_SEAT.name: OFFER_SEAT_UPDATE,
    FORMASI_PHASE.name: FORMASI_PHASE_UPDATE,
    ENTRY_CORRECTED.name: ENTRY_CORRECTED_UPDATE,
    FORMASI_RESULT.name: FORMASI_RESULT_UPDATE,
    SEAT_VACATED.name: SEAT_VACATED_UPDATE,
    OFFER_REPLY.name: OFFER_REPLY_UPDATE,
}
SIGNALS: tuple[Signal[Any], ...] = (
    ANNOUNCE,
    OFFER_SEAT,
    FORMASI_PHASE,
    SKD_ENTRY,
    FINAL_ENTRY,
    ENTRY_CORRECTED,
    FORMASI_RESULT,
    SEAT_VACATED,
    OFFER_REPLY,
)
