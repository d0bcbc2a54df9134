"""Messages between services, operators and the workflows: commands in, facts out.

Every report carries an idempotency key (`report_id`) and the reporter's identity. Fields added
later need defaults, so that recorded histories still decode.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from domain.administration import DocumentFinding
from domain.codes import AdminDecision, FinalCode, SkdCode, Stage, Terminal
from domain.config import (
    FOLD_PAGES_AT,
    MAX_WINDOW,
    AppealRules,
    Duration,
    Formasi,
    IntegrationRules,
    Schedule,
    SkbRules,
    SkdRules,
    Window,
    with_offset,
)
from domain.digest import canonical_digest
from domain.integration import display_score
from domain.optimalisasi import CandidateProfile
from domain.pages import MAX_PAGE_ITEMS, PageRef
from domain.panels import ConflictKind
from domain.ranking import FinalEntry
from domain.registration import Registration
from domain.signing import validity_problem
from domain.skd import SkdKey

Id = Field(min_length=1, max_length=100)


def _not_true_or_false(value: object) -> object:
    """A score is a number: pydantic would read true as 1 and false as 0, so that a service's bug
    that sends a flag where a score is due would be recorded as a score."""
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a score: send the number")
    return value


# A score as a report carries it: a number, or text of one (a row of a report file), never
# true or false, and never NaN or an infinity (JSON as Python writes it may carry them; the
# payload converter would turn them into null on the way to the journey). Its range is the rules'
# to judge (domain/skd.py, domain/skb.py).
WholeScore = Annotated[int, BeforeValidator(_not_true_or_false)]
Score = Annotated[float, BeforeValidator(_not_true_or_false), Field(allow_inf_nan=False)]


class Report(BaseModel, frozen=True):
    """What every message from outside carries: an idempotency key, who sends it, and their
    signature over the rest (a detached JWS, domain/signing.py; empty in rounds without keys)."""

    report_id: str = Id
    reported_by: str = Id
    signature: str = Field(default="", max_length=1000)
    # Until when the signature may be acted on (domain/signing.py validity_problem): a signed
    # message someone kept, refused or never sent, is no order once this has passed. Signed with
    # the rest; left out of the message when unset, so messages signed before it verify as
    # they were signed.
    valid_until: datetime | None = Field(default=None, exclude_if=lambda at: at is None)

    @field_validator("valid_until")
    @classmethod
    def _valid_until_aware(cls, moment: datetime | None) -> datetime | None:
        return None if moment is None else with_offset(moment)

    def record(self) -> dict:
        """The message as a decision records its input: its content, without the signature and
        its validity (the signed message itself stays in the history's update event)."""
        return self.model_dump(mode="json", exclude={"signature", "valid_until"})

    def content_digest(self) -> str:
        """SHA-256 of what the message says: the same key with another digest is a conflict.

        Its signature and validity are how it travels, not what it says: the same report signed
        again with a later `valid_until` (a report file sent again the next day) is a repeat,
        answered with its first outcome, not a conflict."""
        return canonical_digest(self.record())

    def legacy_digest(self) -> str:
        """The digest as it was before `valid_until`: over the content and the signature. A
        round or aftermath that continued as new carries its ledger's digests, some made so
        (workflows/ledger.py accepts either)."""
        return canonical_digest(self)


class AdminReport(Report, frozen=True):
    """The instansi's administrative check: no findings means MS."""

    findings: list[DocumentFinding] = []


class AppealFiling(Report, frozen=True):
    """An applicant's sanggah against a TMS or final result (filed through the portal)."""

    reason: str = Field(min_length=1, max_length=2000)


class AppealAnswer(Report, frozen=True):
    """The instansi's answer to a sanggah.

    An accepted sanggah against the final result may correct SKB scores (component -> the
    corrected score on the component's scale); the formasi then ranks again. Left out of the dump
    while empty, so answers signed before corrections existed keep their signatures.
    """

    accepted: bool
    note: str = Field(default="", max_length=2000)
    corrected_scores: dict[str, Score] = Field(
        default_factory=dict, max_length=20, exclude_if=lambda scores: not scores
    )


class SkdReport(Report, frozen=True):
    """Scores of one SKD sitting from the CAT system."""

    twk: WholeScore
    tiu: WholeScore
    tkp: WholeScore
    session_id: str = Field(default="", max_length=100)


class SkbScoreReport(Report, frozen=True):
    """A score of one SKB component (CAT, practical, psychology, ...), on the component's scale."""

    component: str = Id
    score: Score


class PanelScoreReport(Report, frozen=True):
    """One interview panellist's score of one applicant."""

    component: str = Id
    panellist: str = Id
    score: Score


class ConflictDeclaration(Report, frozen=True):
    """A conflict of interest between a panellist and this applicant (issue 16): declared by the
    panellist before scoring, or found by the committee (an operator) at any time before the SKB
    closes. The panellist does not score this applicant; a score already given is struck."""

    component: str = Id
    panellist: str = Id
    kind: ConflictKind
    note: str = Field(default="", max_length=2000)


# The reports a panellist sends about a candidate they know by code only (issue 16): signed for
# the candidate's code instead of the journey when sent through the gateway by code
# (domain.panels.report_audiences).
BLIND_REPORTS = (PanelScoreReport, ConflictDeclaration)


class PanelReview(Report, frozen=True):
    """The committee's review of a flagged panel score: kept as it is, or struck and scored again
    by the next panellist of the applicant's order."""

    component: str = Id
    panellist: str = Id  # whose flagged score is reviewed
    keep: bool
    note: str = Field(default="", max_length=2000)


class GateReport(Report, frozen=True):
    """An MS/TMS result of a gate component (the health test)."""

    component: str = Id
    decision: AdminDecision
    note: str = Field(default="", max_length=500)


class FilingReport(Report, frozen=True):
    """Pemberkasan: the DRH and documents are complete, or what is missing."""

    complete: bool
    missing: list[str] = []


class LatsarReport(Report, frozen=True):
    """The training agency's Latsar result and the probation health finding.

    DOMAIN.md stage 12: passing Latsar *and being healthy* makes a CPNS a PNS. `healthy` keeps its
    default so that reports recorded without it decode as they were taken, but a report from
    outside must state it (`unstated`): a report that left it out counted as healthy."""

    passed: bool
    healthy: bool = True


def unstated(message: BaseModel) -> list[str]:
    """The fields a message from outside must state although its model has a default for them
    (kept for the messages recorded before): checked where the message enters, at the gateway and
    in the report files, against the fields the sender gave."""
    if isinstance(message, LatsarReport) and "healthy" not in message.model_fields_set:
        return ["healthy"]
    return []


class Disqualification(Report, frozen=True):
    """DIS at any stage, even after the NIP, with its reason."""

    reason: str = Field(min_length=1, max_length=2000)


class Dismissal(Report, frozen=True):
    """The instansi's dismissal (pemberhentian) of an appointed PNS after the journey has ended,
    by a decree (surat keputusan) with its number and reason. Taken by the applicant's aftermath
    (workflows/aftermath.py), never by a running journey: during probation the Latsar report
    decides."""

    decree_no: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=2000)


class Withdrawal(Report, frozen=True):
    """The applicant withdraws (mengundurkan diri)."""

    reason: str = Field(default="", max_length=2000)


class OfferAnswer(Report, frozen=True):
    """The applicant's answer to an optimalisasi offer."""

    accept: bool


class Ack(BaseModel, frozen=True):
    """The answer to an accepted report; a repeat of the same report returns the same Ack."""

    report_id: str
    applicant_id: str  # empty for an operator command to the round
    stage: str
    effect: str
    recorded_at: datetime
    # A report taken into the record as refused (a panellist with a conflict of interest scoring
    # anyway, issue 16): the refusal is a decision in the history, and the sender is told so.
    refused: bool = Field(default=False, exclude_if=lambda refused: not refused)
    # Set by the client that found this very report answered before it sent it (the first
    # answer, marked: client.api.RecruitmentApi.submit), so a sender counts a repeat without
    # comparing its clock with the server's. Never set by a workflow, so never in a history.
    repeat: bool = Field(default=False, exclude_if=lambda repeat: not repeat)


class JourneyRules(BaseModel, frozen=True):
    """The part of the round's rules an applicant's journey needs, with the rules' digest."""

    rule_version: str
    rules_digest: str
    skd: SkdRules
    skb: SkbRules
    integration: IntegrationRules
    appeal: AppealRules
    reporters: dict[str, list[str]]
    withdrawal_sanction_rounds: int = 2
    identities: dict[str, str] = {}  # identity -> public key; when set, reports must be signed
    # The round's time zone: sanggah days end at 24:00 there (domain.config.days_after). Left out
    # of the dump at Asia/Jakarta, so that start inputs recorded before it keep their signatures.
    timezone: str = Field(
        default="Asia/Jakarta", max_length=64, exclude_if=lambda zone: zone == "Asia/Jakarta"
    )
    # A compressed round's own end of the probation (domain.config.Schedule.probation_ends); None
    # for every other round, whose CPNS serve one year from the TMT. Left out of the dump when
    # None, so that start inputs recorded before it keep their signatures.
    probation_ends: datetime | None = Field(default=None, exclude_if=lambda ends: ends is None)


class JourneyStart(BaseModel, frozen=True, hide_input_in_errors=True):
    """Input of an ApplicantJourney: the accepted registration and the rules it is judged by."""

    round_id: str
    applicant_id: str  # the registration number; a keyed pseudonym of the NIK
    registration: Registration
    formasi: Formasi
    rules: JourneyRules
    registered_by: str
    tmt: date
    # The behaviour the journey was started under. 1: decided by `workflow.patched` markers, as
    # every history recorded before engine 2 was. 2: every journey patch up to and including
    # `nip-local-activity` applies from the start, so no patch marker (and no
    # TemporalChangeVersion upsert) is written. Missing in older start inputs, hence default 1.
    engine_version: int = 1
    # The date (in the instansi's time zone) the registration's eligibility was judged on. The
    # journey judges it again by the same rules and date, so a journey started without the API
    # cannot carry an ineligible registration forward. None in older start inputs: not re-judged.
    applied_on: date | None = None
    # The sanctions register's key of the NIK (client/sanctions.py): the same in every round, so a
    # sanction this journey ends in finds the person in the next. Left out of the dump while
    # empty, so that start inputs recorded before it keep their signatures.
    sanction_key: str = Field(default="", max_length=64, exclude_if=lambda key: not key)
    # The NIK's claim in the national round the round joined (its workflow id, client/national.py):
    # the journey checks it is this registration's. Left out of the dump while empty.
    national_claim: str = Field(default="", max_length=300, exclude_if=lambda claim: not claim)
    # The applicant's candidate code on panel sheets (domain.panels.candidate_code, keyed with the
    # pseudonym key the journey never holds), for checking a panellist's report signed for that
    # code. Left out of the dump while empty, so that start inputs recorded before it keep their
    # signatures; a journey started without it takes panellists' reports signed for itself only.
    candidate_code: str = Field(default="", max_length=20, exclude_if=lambda code: not code)
    # Who asked for the registration, when it is not `registered_by` itself: the gateway's caller
    # (an operator's API key) on whose request the gateway's portal key signed it. The signature
    # covers it. Left out of the dump while empty, so that start inputs recorded before it keep
    # their signatures.
    submitted_by: str = Field(default="", max_length=100, exclude_if=lambda who: not who)
    # The registering identity's signature over the rest (domain/signing.py), in a round with keys.
    signature: str = Field(default="", max_length=1000)


class RegistrationConfirm(BaseModel, frozen=True):
    """Sent with a journey's start (update-with-start): answered once the journey has judged its
    admission and written its first read-model row, so that a registration is answered with what
    the applicant will see, and a burst cannot run ahead of the journeys' first tasks."""

    # The digest of the registration the sender started the journey with (canonical_digest).
    registration_digest: str = Field(pattern=r"^[0-9a-f]{64}$")


class RegistrationOutcome(BaseModel, frozen=True):
    """The journey's answer to RegistrationConfirm: its stage once its first row is written, and
    the reason when the journey refused the registration (it has then ended)."""

    applicant_id: str
    stage: str
    refused: str = ""  # why the journey refused the registration; empty when it took it


class RoundViewRequest(BaseModel, frozen=True):
    """Ask the round what a journey of it must be judged by."""

    round_id: str
    workflow_id: str  # the round's RecruitmentRound workflow
    formasi_code: str


class RoundView(BaseModel, frozen=True):
    """What the round says, when a journey starts: its rules and its registration window.

    Read from the round's own workflow (the operator created it), not from the journey's start
    input, which anyone who can reach Temporal can write.
    """

    found: bool = True
    rules: JourneyRules | None = None
    formasi: Formasi | None = None  # the round's formasi of that code, if it has one
    tmt: date | None = None  # the TMT as it stands (moves included)
    registration_closes: datetime | None = None  # the close as it stands (extensions included)
    # The round's registration opening: the sanctions register counts "the next N rounds" by it.
    # None in answers recorded before the journey checked the register itself.
    registration_opens: datetime | None = None
    # The national round the round joined (its national_id), whose claim a journey checks.
    national_round: str | None = None
    registration_closed_at: datetime | None = None  # when the round closed it, if it has
    secret: str = ""  # the round's seal secret (domain/seal.py), for the journey's messages
    # The round takes the sanggah against the final result and confirms the ranking after it
    # (patch final-sanggah); False from rounds started before.
    final_sanggah: bool = False
    # Read from the board the round wrote (patch round-view-board) rather than by asking the round
    # workflow; False in every answer recorded before the board existed: they asked.
    from_board: bool = False
    # When the round last changed keys and moved the TMT, as this view has them (its announcements'
    # `at` are no earlier): a journey admitted with this view takes no change announced before
    # them, which a sealed announcement copied from an older history would be. None: no change
    # (and in every answer recorded before these were kept).
    keys_changed_at: datetime | None = None
    tmt_moved_at: datetime | None = None


class SanctionCheck(BaseModel, frozen=True):
    """Ask the sanctions register whether it bars a registration (activities/sanctions.py)."""

    round_id: str
    registration_opens: datetime | None  # None: the round's entry on the register's calendar
    subject: str = Field(min_length=1, max_length=64)  # the NIK's key in the register
    applied_on: date


class SanctionVerdict(BaseModel, frozen=True):
    """The register's answer: why the registration is barred, one reason per entry (none: not)."""

    reasons: list[str] = []


class RoundBoard(BaseModel, frozen=True):
    """What a round publishes for its journeys to read without asking it (patch round-view-board):
    the round-wide part of every RoundView, and its formasi. Written before the change it shows is
    acknowledged, so no journey started after an acknowledged close reads an older board."""

    view: RoundView  # formasi None
    formasi: list[Formasi]

    def view_for(self, formasi_code: str) -> RoundView:
        """The view a journey of `formasi_code` is judged by, as the round's query would give it."""
        formasi = next((f for f in self.formasi if f.code == formasi_code), None)
        return self.view.model_copy(update={"formasi": formasi, "from_board": True})


class RoundBoardWrite(BaseModel, frozen=True):
    """One publication of a round's board; a later `version` replaces an earlier one, never the
    other way round (a retried or overtaken write changes nothing)."""

    workflow_id: str
    version: int = Field(ge=0)
    board: RoundBoard


class Decision(BaseModel, frozen=True):
    """One recorded decision in an applicant's trail."""

    at: datetime
    stage: str  # a journey Stage, or the round's / formasi's phase
    outcome: str
    actor: str
    input: dict = {}
    rule_version: str = ""
    rules_digest: str = ""


class JourneyState(BaseModel, frozen=True):
    """What the journey's query returns: the current stage, codes and every decision so far."""

    round_id: str
    applicant_id: str
    formasi_code: str
    stage: Stage
    admin: AdminDecision | None = None
    skd_code: SkdCode | None = None
    skd_total: int | None = None
    skb_score: str | None = None
    final_score: str | None = None
    final_code: FinalCode | None = None
    placed_formasi: str | None = None
    nip: str | None = None
    tmt: date | None = None
    terminal: Terminal | None = None
    terminal_reason: str = ""
    sanction_rounds: int = 0
    decisions: list[Decision] = []
    # What the portal needs to offer a form only when the journey would take it (client/status.py).
    admin_announced_at: datetime | None = None  # the sanggah window runs from here
    appeal_filed_at: datetime | None = None  # the instansi's answer is due from here
    appeal_answered: bool = False
    offer: OptimalisasiOffer | None = None  # an optimalisasi offer held, without its seal
    offer_answered: bool = False
    # A late taker may file until then at the least (patch late-taker-filing-time). Left out of
    # the dump while None, so the rows of every other journey read as before.
    file_until: datetime | None = Field(default=None, exclude_if=lambda until: until is None)
    final_announced_at: datetime | None = None  # the final sanggah window runs from here
    final_appeal_filed_at: datetime | None = None
    final_appeal_answered: bool = False
    final_confirmed: bool = False  # the ranking after the final sanggah is out
    # Sanggah windows and answer times end at 24:00 of their last calendar day in the round's zone
    # (domain.sheet.ApplicantSheet.deadlines_by_day); False: they last exactly their duration.
    deadlines_by_day: bool = False
    ending_pending: bool = False  # a withdrawal or DIS accepted, applied at the journey's next step


# --- between workflows ------------------------------------------------------------------------


class Announcement(BaseModel, frozen=True):
    """A formasi or the round tells its applicants that a phase closed or a result is out."""

    announcement_id: str
    phase: str  # administration | skd_closed | skd_result | skb_closed | final_result | ...
    at: datetime
    cut_key: SkdKey | None = None
    winners: list[str] = []
    note: str = ""
    seal: str = Field(default="", max_length=64)  # domain/seal.py: from the round's workflows
    # The formasi whose result this is (patch results-name-formasi), under the seal: every formasi
    # of a round seals with the round's secret and numbers its results alike, so without it one
    # formasi's result, copied from a history, would be taken by another's journeys. Left out of
    # the dump while empty, so results sealed before it keep their seals.
    formasi_code: str = Field(default="", max_length=100, exclude_if=lambda code: not code)


class SkdEntryReply(BaseModel, frozen=True):
    """A journey's answer to `skd_closed`: its key if it passed its category's threshold."""

    applicant_id: str
    key: SkdKey | None = None


class FinalEntryReply(BaseModel, frozen=True):
    """A journey's answer to `skb_closed`: its final entry if it completed SKB and passed every gate."""

    applicant_id: str
    entry: FinalEntry | None = None
    profile: CandidateProfile | None = None  # with an entry: major and application date


class EntryCorrection(BaseModel, frozen=True):
    """A journey tells its formasi that an accepted final sanggah corrected its final entry."""

    applicant_id: str
    entry: FinalEntry | None  # None: the corrected scores fail a gate or a floor
    answer_id: str = Field(max_length=200)  # the instansi's answer that corrected it
    seal: str = Field(default="", max_length=64)  # domain/seal.py: from the round's workflows


class CloseReply(BaseModel, frozen=True):
    """A journey's answer to the `close_stage` update: what the formasi ranks it by, if anything.

    At `skd_closed`: its SKD key when it passed its category's threshold. At `skb_closed`: its
    final entry when it completed SKB and passed every gate. None when it does not rank.
    """

    applicant_id: str
    phase: str
    key: SkdKey | None = None
    entry: FinalEntry | None = None
    profile: CandidateProfile | None = None  # with an entry: what optimalisasi's pool needs


class OptimalisasiOffer(BaseModel, frozen=True):
    """The round offers a seat in another formasi (P/L-2 once accepted)."""

    offer_id: str
    to_formasi: str
    answer_by: datetime
    # The least time the taker has to file (DRH and documents) from accepting, when that ends
    # after filing's close (patch late-taker-filing-time): as long as the filing window gave every
    # winner. Left out of the dump while None, so offers sealed before it keep their seals.
    filing_within: Duration | None = Field(
        default=None,
        gt=timedelta(0),
        le=MAX_WINDOW,
        exclude_if=lambda within: within is None,
    )
    seal: str = Field(default="", max_length=64)  # domain/seal.py: from the round's workflows


class OfferReply(BaseModel, frozen=True):
    """A journey tells the round how its applicant answered an offer."""

    offer_id: str
    applicant_id: str
    accepted: bool
    seal: str = Field(default="", max_length=64)  # domain/seal.py: from the round's workflows


class SeatVacated(BaseModel, frozen=True):
    """A journey tells the round that its applicant gave up (or lost) a seat before the NIP."""

    applicant_id: str
    formasi_code: str
    seal: str = Field(default="", max_length=64)  # domain/seal.py: from the round's workflows


class FormasiResult(BaseModel, frozen=True):
    """A formasi's final result for optimalisasi: empty seats and those who lost on rank."""

    formasi_code: str
    vacancies: int
    candidates: list[FinalEntry]
    winners: list[str]
    # applicant id -> major and application date of each candidate (optimalisasi's pool);
    # empty in results recorded before they were sent.
    profiles: dict[str, CandidateProfile] = {}
    # The result after the final sanggah (patch final-sanggah): it replaces the first one.
    confirmed: bool = False
    # Patch paged-ranking: the winners' lines and the candidates ({entry, profile}) in the page
    # store (domain/pages.py) instead of `winners`, `candidates` and `profiles`, which stay empty.
    winner_pages: list[PageRef] = []
    candidate_pages: list[PageRef] = []
    winners_count: int = 0
    candidates_count: int = 0
    # Patch folded-page-references: the page lists are folded into index pages at this many
    # (domain.pages.fold_refs), so their counts are children, not lines.
    fold_at: int | None = Field(default=None, ge=2, le=MAX_PAGE_ITEMS)

    @model_serializer(mode="wrap")
    def _without_empty_profiles(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A result recorded before profiles (or pages) dumps (and so seals) as it did when sent.
        data = handler(self)
        if not self.profiles:
            data.pop("profiles", None)
        if not self.confirmed:
            data.pop("confirmed", None)
        if not self.paged:
            for name in ("winner_pages", "candidate_pages", "winners_count", "candidates_count"):
                data.pop(name, None)
        if self.fold_at is None:
            data.pop("fold_at", None)
        return data

    @property
    def paged(self) -> bool:
        """Whether the lists are in the page store (patch paged-ranking). A folded result is,
        even when its formasi ranked nobody (an empty result said nothing of it before)."""
        return bool(
            self.winner_pages
            or self.candidate_pages
            or self.winners_count
            or self.fold_at is not None
        )

    @property
    def n_winners(self) -> int:
        return self.winners_count if self.paged else len(self.winners)

    @property
    def n_candidates(self) -> int:
        return self.candidates_count if self.paged else len(self.candidates)

    seal: str = Field(default="", max_length=64)  # domain/seal.py: from the round's workflows


def fraction_text(value: Fraction | None) -> str | None:
    """A score for display: three decimals, half up, exactly (domain/integration.py)."""
    return None if value is None else display_score(value)


class FormasiState(BaseModel):
    """What the formasi's query returns."""

    round_id: str
    formasi_code: str
    quota: int
    runs: int
    processed: list[str]
    awaiting: str | None = Field(default=None, description="the reply barrier it waits on, if any")
    skd_cut_key: tuple[int, int, int, int] | None = None
    skd_passers_seen: int = 0
    final_entries: int = 0
    decisions: list[Decision] = []


class RoundState(BaseModel):
    """What the round's query returns."""

    round_id: str
    phase: str
    schedule: Schedule
    closed: list[str]
    formasi_results: dict[str, FormasiResult]
    # offer id -> "pending" | "accepted" | "declined". A run continued in optimalisasi (patch
    # optimalisasi-continues) lists its own offers and those pending when it began, and its
    # decisions are those handed on plus its own: auditing.history.offers_of and decisions_of
    # join the runs.
    offers: dict[str, str]
    decisions: list[Decision]


# --- operator commands to the round ------------------------------------------------------------


class ExtendWindow(Report, frozen=True):
    """Extend an open window (a deadline extension by letter), recorded with its reason."""

    window: str
    new_closes: datetime
    reason: str = Field(min_length=1, max_length=2000)
    # Every later window, opening and close, moves by as much as this one's close (the 2024
    # registration's four days moved the whole schedule). Left out of the message when false, so
    # commands signed before it was written verify as they were signed.
    shift_later: bool = Field(default=False, exclude_if=lambda shift: not shift)

    @field_validator("new_closes")
    @classmethod
    def _aware(cls, moment: datetime) -> datetime:
        return with_offset(moment)


class CloseWindow(Report, frozen=True):
    """Close an open window early; only with a recorded reason."""

    window: str
    reason: str = Field(min_length=1, max_length=2000)


class MoveTmt(Report, frozen=True):
    """Move the TMT of the SK CPNS (a government decision), recorded with its reason."""

    new_tmt: date
    reason: str = Field(min_length=1, max_length=2000)


class ChangeKeys(Report, frozen=True):
    """Give identities of the round new public keys (a key lost or retired), recorded with its
    reason; signed by an operator under the keys in force. Signatures made before stay valid."""

    identities: dict[str, str] = Field(min_length=1, max_length=100)  # identity -> new key (JWK x)
    reason: str = Field(min_length=1, max_length=2000)


class RecordPublication(Report, frozen=True):
    """An operator records in the round's history that publication `seq` of its announcements
    (client/publication.py) is stored, with its body hash: the chain's tail, which the chain
    itself cannot show, is then on record where the database's owner cannot remove it. Each
    follows the one before (`prev_sha256` its body hash, 64 zeros for the first)."""

    seq: int = Field(ge=1, le=100_000)
    stage: str = Field(min_length=1, max_length=20)
    body_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    prev_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


# What a person sends by acting now: an operator's command (the round's, a DIS, a dismissal, a
# withdrawal, a panel's review, a conflict the committee finds), what the portal sends for an
# applicant (a sanggah, an offer's answer, a withdrawal), and a conflict a panellist declares
# (it strikes a score). In a round with keys each must carry `valid_until`, so that a signed
# order kept by anyone who saw it (refused, or never sent) cannot be played later. A service's
# result report may carry one too, and is then held to it.
TIME_BOUND: tuple[type[Report], ...] = (
    ConflictDeclaration,
    AppealFiling,
    OfferAnswer,
    Withdrawal,
    Disqualification,
    Dismissal,
    PanelReview,
    ExtendWindow,
    CloseWindow,
    MoveTmt,
    ChangeKeys,
    RecordPublication,
)


def validity_refusal(message: Report, identities: dict[str, str], now: datetime) -> str | None:
    """Why `message` may not be acted on at `now` for its `valid_until` (None when it may): held
    to it when it carries one; in a round with keys, refused without one if it is TIME_BOUND.
    Checked in the validators after the repeat check: a repeat is answered whatever its
    validity, since answering it changes nothing."""
    required = bool(identities) and isinstance(message, TIME_BOUND)
    return validity_problem(message, now, required=required)


ZERO_SHA256 = "0" * 64  # the link before a round's first publication
PUBLICATION_RECORDED = "publication recorded"  # the round's decision: "... 3 (final)"


def recorded_publications(decisions: Iterable[Decision]) -> dict[int, tuple[str, str, datetime]]:
    """The publications a round has on record, from its decisions: seq -> (body hash, who
    recorded it, when)."""
    found: dict[int, tuple[str, str, datetime]] = {}
    for d in decisions:
        if d.outcome.startswith(PUBLICATION_RECORDED):
            try:
                record = RecordPublication.model_validate(d.input)
            except ValueError:
                continue
            found[record.seq] = (record.body_sha256, record.reported_by, d.at)
    return found


def record_refusal(
    recorded: dict[int, tuple[str, str, datetime]], record: RecordPublication
) -> str | None:
    """Why a round with these publications on record refuses `record`: one hash per number, and
    each after the hash of the one before when that one is on record (in any order otherwise, so
    that a record that failed holds up none after it). None when it takes it."""
    known = recorded.get(record.seq)
    before = ZERO_SHA256 if record.seq == 1 else recorded.get(record.seq - 1, (None,))[0]
    if known is not None and known[0] != record.body_sha256:
        return (
            f"publication {record.seq} is on record with another hash ({known[0][:16]}…), "
            f"not {record.body_sha256[:16]}…"
        )
    if before is not None and before != record.prev_sha256:
        return (
            f"publication {record.seq} (after {record.prev_sha256[:16]}…) does not follow "
            f"publication {record.seq - 1} on record ({before[:16]}…)"
        )
    return None


class FormasiStart(BaseModel, frozen=True):
    """Input of a FormasiSelection run; `carry` continues a previous run's state."""

    round_id: str
    formasi: Formasi
    rules: JourneyRules
    carry: dict | None = None
    page_size: int = (
        500  # journeys per broadcast page; the formasi may continue-as-new between pages
    )
    continue_after_events: int = (
        3000  # continue-as-new at this history length (before the 4,096 suggestion)
    )
    # references a formasi carries before it folds them into an index page (domain.pages.PageFold)
    fold_pages_at: int = Field(default=FOLD_PAGES_AT, ge=2, le=MAX_PAGE_ITEMS)
    secret: str = ""  # the round's seal secret (domain/seal.py); empty in rounds before seals
    # The round takes the final sanggah (patch final-sanggah): the formasi confirms its ranking
    # when the round closes it, ranking again with the scores accepted sanggah corrected.
    final_sanggah: bool = Field(default=False, exclude_if=lambda on: not on)


class RoundStart(BaseModel, frozen=True):
    """Input of a RecruitmentRound: the validated configuration it runs."""

    config_toml: str  # the operator's file, kept verbatim in the history
    config: dict  # the parsed document; re-validated inside the workflow
    created_by: str
    # Public fingerprints of the keys the round was created with ("payload", "pseudonym"): a
    # client holding other keys is refused (client/api.py). Empty in rounds created before.
    key_ids: dict[str, str] = {}
    # A continued run's state (RoundCarry, patch optimalisasi-continues); absent in the first run.
    carry: dict | None = Field(default=None, exclude_if=lambda carry: carry is None)
    # The windows of the national round the round joined, as its national file set them when the
    # round was created: an extension stays within them (domain.national.beyond_national_window).
    # Empty for a round of no national round, and in rounds created before.
    national_windows: dict[str, Window] = Field(default={}, exclude_if=lambda windows: not windows)


class RoundCarry(BaseModel, frozen=True):
    """What a RecruitmentRound hands to its next run when it continues-as-new in optimalisasi
    (patch optimalisasi-continues): the state later allocations, signals, commands and queries
    read, without what grows with the offers made but nothing later reads.

    Left in the run that made them: its allocations, its offers not delivered and the seats given
    up during it (`handed_on` says which decisions), and its offers' answers, which its state
    lists; the auditor reads them from that run's replay. Of the offers answered the next run
    needs only who was offered (never offered again: in pages), how many accepted seats each
    formasi holds, and the declines no allocation has recorded yet. So nothing carried grows with
    the offers made but the page references (one for each 500 offered) and the offers pending,
    which the history budget bounds.
    """

    runs: int = Field(ge=1)  # runs before this one
    phase: str
    schedule: Schedule
    closed: list[str]
    closed_at: dict[str, datetime]
    early: dict[str, str]
    identities: dict[str, str]
    secret: str
    created_by: str
    decisions: list[Decision]  # those handed on (domain.optimalisasi.handed_on)
    decisions_left: int = Field(ge=0)  # decided in earlier runs and left in their histories
    commands: dict[str, tuple[str, Ack]]  # the ledger: command id -> (content digest, answer)
    commands_taken: int = Field(ge=0)
    results: dict[str, FormasiResult]
    vacated: dict[str, str]  # applicant id -> formasi whose seat it gave up
    given_up_since: list[str]  # of those, not yet recorded by an allocation
    offered_pages: list[PageRef]  # applicants offered a seat, in pages of 500 (kind OFFERED)
    offered_tail: list[str] = Field(max_length=MAX_PAGE_ITEMS)  # offered since the last page
    accepted_by_formasi: dict[str, int]  # offers accepted, by the formasi they hold a seat in
    offers_declined: int = Field(ge=0)  # declined or not delivered, every run
    declined_since: list[str]  # declines not yet recorded by an allocation
    pending: dict[str, str]  # offers not yet answered: applicant id -> formasi
    final_sanggah: bool
    keeps_board: bool
    backoff_timers: bool
    board_version: int = Field(ge=0)  # the board as last written; the next run writes above it
    # The answer_by of the latest offer made (patch optimalisasi-answer-deadline): the next run's
    # deadline for the offers carried pending. None from a run before the patch: the next run
    # counts from its own start, later than any answer_by of theirs.
    last_answer_by: datetime | None = None
