"""Inputs and outputs of the activities: plain models the workflows can import in the sandbox."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from domain.messages import (
    Announcement,
    CloseReply,
    Decision,
    JourneyState,
    OptimalisasiOffer,
)
from domain.notices import Notice
from domain.pages import PageRef
from domain.registration import Gender


class Notification(BaseModel, frozen=True):
    """A message to the applicant about an outcome; delivered by the configured transport."""

    key: str  # unique per applicant: the stage and outcome it reports
    text: str  # in Indonesian; recorded before notices existed: the only content
    notice: Notice | None = None  # its facts, rendered in the configured language on delivery


class JourneyProjection(BaseModel, frozen=True):
    """The read-model row of one applicant, with the decisions and notifications since the last one."""

    version: int
    state: JourneyState
    registration_no: str
    name: str  # kept by the read model only for applicants an announcement lists (migration 007)
    category: str  # not stored since migration 007 (no reader); sent still, as recorded
    first_seq: int  # sequence number of new_decisions[0] in the journey's trail
    new_decisions: list[Decision] = []
    notifications: list[Notification] = []
    reports: list[tuple[str, str, dict]] = []  # (report_id, kind, content) accepted since last
    sanction_key: str = ""  # the JourneyStart's: where an APS with a sanction is registered


class CloseAnswer(CloseReply, frozen=True):
    """A journey's answer to the close with the read-model row it would have written once at rest
    after the close, if any (patch close-answered-with-row, workflows/versions.py).

    The broadcast writes the rows of a page in one statement, so the journey runs no local activity
    at the close; the formasi gets only the CloseReply part. A repeated close gets the same answer,
    row included, so a retried page writes it again (every read-model write is idempotent).
    """

    row: JourneyProjection | None = None

    def reply(self) -> CloseReply:
        """The part the formasi ranks by, without the row."""
        return CloseReply(**{name: getattr(self, name) for name in CloseReply.model_fields})


class NipRequest(BaseModel, frozen=True):
    """Ask BKN's NIP service for the NIP of one appointed person (at most one, ever)."""

    round_id: str
    applicant_id: str
    birth_date: date
    tmt: date
    gender: Gender
    # The NIK's round-independent keyed pseudonym (the journey's sanction_key): the person, across
    # rounds. Left out while empty (journeys that sent none are asked by round and number only).
    person: str = Field(default="", max_length=64, exclude_if=lambda p: not p)


class NipIssued(BaseModel, frozen=True):
    """The person's NIP: the same on every retry, and in every round."""

    nip: str
    newly_issued: bool
    # The round in which the person was given it, when another: a person appointed again keeps
    # the NIP they hold. Left out while empty.
    held_from_round: str = Field(default="", exclude_if=lambda r: not r)


class OfferSend(BaseModel, frozen=True):
    """One optimalisasi offer, sealed by the round, and the journey it goes to."""

    workflow_id: str
    offer: OptimalisasiOffer


class OfferSends(BaseModel, frozen=True):
    """The offers of one allocation (at most 500), sent by the round's local activity."""

    offers: list[OfferSend]


class OffersSent(BaseModel, frozen=True):
    """Which offers could not be delivered: their journey has ended (or never ran)."""

    not_delivered: list[str] = []  # offer ids


class SignalByUpdate(BaseModel, frozen=True):
    """A signal a workflow could not send because the receiving run takes no more signals
    (another sender spent them): the same message, for the update that takes it instead
    (domain.protocol.BY_UPDATE), sent by an activity, since a workflow cannot send an update."""

    workflow_id: str = Field(min_length=1, max_length=300)
    signal: str = Field(min_length=1, max_length=100)
    message: dict[str, Any]  # the sealed message, as its JSON


TAKEN = "taken"  # send_by_update's answer when the update was taken (else why it was not)


class BroadcastRequest(BaseModel, frozen=True):
    """Deliver an announcement to the running journeys of a formasi: all, or one page of them."""

    round_id: str
    formasi_code: str
    announcement: Announcement
    page_size: int = 0  # 0: every journey in one call
    page_token: str | None = None  # base64 of the visibility page token to continue from
    # "signal": `announce` to each journey (and the closes of histories before close-by-update);
    # "close": the `close_stage` update, whose answers come back in the result
    mode: str = "signal"
    # Not empty: tell exactly these journeys (one page of them) instead of listing the formasi's.
    workflow_ids: list[str] = []
    # Mode "close" (patch paged-ranking): keep the page's answers in the page store and return
    # its reference instead of the answers, so that the result stays small however large the page.
    keep_replies: bool = False


class BroadcastResult(BaseModel, frozen=True):
    """How many journeys the announcement reached, and where the next page starts."""

    delivered: int
    next_page_token: str | None = None  # None: that was the last page
    replies: list[CloseReply] = []  # mode "close": each journey's answer, in listing order
    # keep_replies: the page of answers that rank (a key or an entry), and how many answered
    kept: PageRef | None = None
    replied: int = 0
