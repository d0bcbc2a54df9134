"""What an applicant and a round look like to people: the one service layer that `starter.py`
(status, lookup) and the applicant portal show.

Built from what the engine says, never from a copy: a round from the rules it was created with
(`RecruitmentApi.round_config`) and its state query (the schedule in force, every decision); an
applicant from its journey's state query. Words for applicants are Indonesian and times are in
the round's zone (`waktu`, `batas`: WIB, WITA or WIT).

What an applicant may do now (`can_appeal`, `pending_offer`, `can_withdraw`) mirrors the journey's
own refusals (`domain/sheet.py`), so the portal offers a form only when the journey would take
it; the journey still decides when the form is sent.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from temporalio.service import RPCError, RPCStatusCode

from client.api import RecruitmentApi, UnknownError
from domain.aftermath import AftermathState
from domain.appointment import PROBATION_SERVED, withdrawal_sanction
from domain.codes import WINDOWS, AdminDecision, FinalCode, RoundPhase, Stage, Terminal
from domain.config import RoundConfig, days_after
from domain.local_time import JAKARTA, LocalReading, reading, zone_note
from domain.messages import Decision, JourneyState, RoundState
from domain.optimalisasi import OFFER_UNANSWERED
from domain.protocol import AFTERMATH_STATE, JOURNEY_STATE, Query
from runtime.metrics import record_status_read
from workflows.ids import aftermath_workflow_id, journey_workflow_id

WIB = ZoneInfo(JAKARTA)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des")


def waktu(moment: datetime | None, zone: str = JAKARTA) -> str:
    """A moment as applicants read it, in the round's zone `zone`: `20 Agu 2027 23.59 WIT`
    ("-" for none)."""
    if moment is None:
        return "-"
    return _read(reading(moment, zone))


def wib(moment: datetime | None) -> str:
    """A moment in WIB, for what is about no one round (the operator's tables): `20 Agu 2027
    23.59 WIB`."""
    return waktu(moment, JAKARTA)


def batas(moment: datetime | None, zone: str = JAKARTA) -> str:
    """A deadline (the first moment that is too late) as applicants read it, in the round's zone:
    one at exactly 00:00 is `23 Agu 2027 24.00 WIT`, the day still in it, not `24 Agu 2027 00.00`."""
    if moment is None:
        return "-"
    return _read(reading(moment, zone, deadline=True))


def catatan_waktu(zone: str | None, several: bool = False) -> str:
    """What a page says of its times: in the zone of the round it is about, named (`WIT (UTC+9)`);
    a page about no round in WIB; a page of `several` rounds each in its own zone."""
    if several:
        return (
            "Waktu setiap seleksi ditampilkan dalam zona waktu seleksi itu (WIB, WITA atau WIT), "
            "yang disebutkan pada setiap waktu."
        )
    if zone is None:
        return f"Waktu ditampilkan dalam {zone_note(JAKARTA)}."
    return f"Waktu ditampilkan dalam {zone_note(zone)}, zona waktu seleksi ini."


def _read(local: LocalReading) -> str:
    return f"{tanggal(local.day)} {local.hour}.{local.minute} {local.zone}"


def tanggal(day: date | None) -> str:
    """A date as applicants read it: `1 Mar 2027` ("-" for none)."""
    if day is None:
        return "-"
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def angka(value: object) -> str:
    """A score as applicants read it: with a decimal comma (`81,500`). A point is the thousands
    separator in Indonesian, so `81.500` reads as eighty-one thousand five hundred."""
    return str(value).replace(".", ",")


# --- words ---------------------------------------------------------------------------------------

WINDOW_LABELS: dict[str, str] = {
    RoundPhase.REGISTRATION: "Pendaftaran",
    RoundPhase.ADMINISTRATION: "Seleksi administrasi",
    RoundPhase.SKD: "SKD",
    RoundPhase.SKB: "SKB",
    RoundPhase.FILING: "Pemberkasan",
    RoundPhase.LATSAR: "Latsar",
}

PHASE_LABELS: dict[str, str] = {
    **WINDOW_LABELS,
    RoundPhase.FINAL_APPEAL: "Masa sanggah hasil akhir",
    RoundPhase.OPTIMALISASI: "Optimalisasi",
    RoundPhase.CLOSED: "Selesai",
}

STAGE_LABELS: dict[str, str] = {
    Stage.REGISTERED: "Pendaftaran",
    Stage.ADMIN_CHECK: "Seleksi administrasi",
    Stage.ADMIN_APPEAL: "Sanggah seleksi administrasi",
    Stage.SKD: "SKD",
    Stage.SKD_RANKING: "Pemeringkatan SKD",
    Stage.SKB: "SKB",
    Stage.FINAL_RANKING: "Pengumuman hasil akhir",
    Stage.FINAL_APPEAL: "Sanggah hasil akhir",
    Stage.OPTIMALISASI: "Optimalisasi",
    Stage.FILING: "Pemberkasan",
    Stage.NIP: "Penetapan NIP",
    Stage.APPOINTMENT: "Pengangkatan CPNS",
    Stage.LATSAR: "Latsar",
    Stage.ENDED: "Selesai",
}

TERMINAL_LABELS: dict[str, str] = {
    Terminal.TMS: "Tidak memenuhi syarat administrasi (TMS)",
    Terminal.SKD_PASSED_OUTSIDE_CUT: "Lulus nilai ambang batas SKD, di luar peringkat peserta SKB (P)",
    Terminal.SKD_FAILED: "Tidak lulus nilai ambang batas SKD (T/L)",
    Terminal.ABSENT: "Tidak hadir (TH)",
    Terminal.DISQUALIFIED: "Diskualifikasi (DIS)",
    Terminal.SKB_GATE_FAILED: "Tidak memenuhi syarat SKB (TMS-SKB)",
    Terminal.NOT_PASSED: "Tidak lulus (TL)",
    Terminal.WITHDRAWN: "Mengundurkan diri (APS)",
    Terminal.FILING_INCOMPLETE: "Pemberkasan tidak lengkap (TMS-DRH)",
    Terminal.PNS: "Diangkat menjadi PNS",
    Terminal.DISMISSED: "Diberhentikan",
}

# The deadline of each window, as an applicant standing in it reads it.
_WINDOW_DEADLINES: dict[str, str] = {
    RoundPhase.REGISTRATION: "Batas pendaftaran",
    RoundPhase.ADMINISTRATION: "Batas seleksi administrasi",
    RoundPhase.SKD: "Batas pelaksanaan SKD",
    RoundPhase.SKB: "Batas pelaksanaan SKB",
    RoundPhase.FILING: "Batas pemberkasan",
    RoundPhase.LATSAR: "Batas Latsar",
}

# The round's window an applicant at a stage waits on.
_STAGE_WINDOW: dict[Stage, RoundPhase] = {
    Stage.REGISTERED: RoundPhase.REGISTRATION,
    Stage.ADMIN_CHECK: RoundPhase.ADMINISTRATION,
    Stage.SKD: RoundPhase.SKD,
    Stage.SKB: RoundPhase.SKB,
    Stage.FILING: RoundPhase.FILING,
    Stage.LATSAR: RoundPhase.LATSAR,
}

# The order a round's phases come in (RecruitmentRound.run).
_PHASE_ORDER: tuple[str, ...] = (
    RoundPhase.REGISTRATION,
    RoundPhase.ADMINISTRATION,
    RoundPhase.SKD,
    RoundPhase.SKB,
    RoundPhase.FINAL_APPEAL,
    RoundPhase.OPTIMALISASI,
    RoundPhase.FILING,
    RoundPhase.LATSAR,
    RoundPhase.CLOSED,
)

# The journey's reasons (workflows/applicant.py, domain/sheet.py), in Indonesian. A text with {}
# matches a reason that starts with the key; the rest (a note, a list of documents, a number) goes
# in its place. Unknown reasons are shown as recorded.
_REASONS: dict[str, str] = {
    "TMS; no appeal within the appeal window": (
        "Tidak memenuhi syarat administrasi (TMS); tidak ada sanggah dalam masa sanggah."
    ),
    "TMS; the appeal was not answered within its time": (
        "Tidak memenuhi syarat administrasi (TMS); sanggah tidak dijawab dalam batas waktunya."
    ),
    "TMS; appeal rejected: ": "Tidak memenuhi syarat administrasi (TMS); sanggah ditolak: {}",
    "registration refused: ": "Pendaftaran ditolak: {}",
    "no decision before the window closed": (
        "Hasil seleksi administrasi tidak dilaporkan sebelum batas waktu: tidak memenuhi syarat "
        "(TMS)."
    ),
    "TH: did not sit the SKD": "Tidak hadir pada SKD (TH).",
    "no SKD result when the SKD window closed": (
        "Tidak ada nilai SKD saat pelaksanaan SKD ditutup: tidak hadir (TH)."
    ),
    "T/L: below the SKD threshold of the category": (
        "Tidak lulus nilai ambang batas SKD untuk kategori pelamar (T/L)."
    ),
    "P: passed the threshold, outside the SKB cut": (
        "Lulus nilai ambang batas SKD, tetapi di luar peringkat peserta SKB (P)."
    ),
    "TH: no SKB CAT score when the SKB window closed": (
        "Tidak ada nilai SKB CAT saat SKB ditutup: tidak hadir (TH)."
    ),
    "SKB incomplete: ": "Nilai SKB tidak lengkap (TMS-SKB): {}",
    "SKB gate failed: ": "Tidak memenuhi syarat pada komponen SKB (TMS-SKB): {}",
    "TL: lost on rank; no optimalisasi seat": (
        "Tidak lulus (TL): di luar kuota formasi dan tidak mendapat formasi melalui optimalisasi."
    ),
    "TL: declined the optimalisasi offer": (
        "Tidak lulus (TL): tawaran optimalisasi ditolak atau tidak dijawab."
    ),
    "filing incomplete: ": "Pemberkasan tidak lengkap (TMS-DRH): {}",
    "PNS: passed Latsar": "Lulus Latsar; diangkat menjadi PNS.",
    PROBATION_SERVED: "Masa percobaan satu tahun sejak TMT selesai pada {}; diangkat menjadi PNS.",
    "dismissed: Latsar or health not passed": (
        "Tidak lulus Latsar atau tidak memenuhi syarat kesehatan; diberhentikan."
    ),
    "DIS: ": "Diskualifikasi (DIS): {}",
    "APS: withdrew; barred from the next ": (
        "Mengundurkan diri (APS); tidak dapat melamar pada {} seleksi berikutnya."
    ),
    "APS: withdrew": "Mengundurkan diri (APS).",
}


def reason_text(reason: str) -> str:
    """A reason the journey recorded, in Indonesian (as recorded when it is not a known one)."""
    exact = _REASONS.get(reason)
    if exact is not None and "{}" not in exact:
        return exact
    for known, text in _REASONS.items():
        if "{}" in text and reason.startswith(known):
            rest = reason[len(known) :]
            if known.startswith("APS"):
                rest = rest.removesuffix(" rounds")
            return text.format(rest)
    return reason


# --- the round -------------------------------------------------------------------------------------


class Extension(BaseModel, frozen=True):
    """One extension of a window, as the round recorded it."""

    at: datetime
    new_closes: datetime
    reason: str
    by: str


class TmtMove(BaseModel, frozen=True):
    """One move of the TMT (a government decision), as the round recorded it."""

    at: datetime
    from_tmt: date
    to_tmt: date
    reason: str
    by: str


class WindowView(BaseModel, frozen=True):
    """One window of the round: the schedule in force (extensions included) and where it stands."""

    name: str
    label: str
    opens: datetime
    closes: datetime  # in force, with every extension
    original_closes: datetime  # as the round was created
    extensions: list[Extension] = []
    state: Literal["belum dibuka", "dibuka", "ditutup"]
    closed_at: datetime | None = None  # when the round closed it, if known
    closed_early: bool = False
    closed_early_reason: str = ""

    @staticmethod
    def wib(moment: datetime | None) -> str:
        """`20 Agu 2027 23.59 WIB`."""
        return wib(moment)

    def state_text(self) -> str:
        """Where the window stands, in words: `ditutup lebih awal 3 Agu 2027 10.00 WIB`."""
        if self.state != "ditutup":
            return self.state
        early = " lebih awal" if self.closed_early else ""
        when = f" {wib(self.closed_at)}" if self.closed_at else ""
        return f"ditutup{early}{when}"


class FormasiInfo(BaseModel, frozen=True):
    """A formasi of the round, as applicants read it."""

    code: str
    jabatan: str
    unit: str
    education_level: str
    quota: int


class OfferUnanswered(BaseModel, frozen=True):
    """An optimalisasi offer the round counted as declined because no answer came by its deadline
    (the latest pending offer's answer_by plus offer_answer_grace; docs/OPERATIONS.md 2.6)."""

    at: datetime
    offer_id: str
    deadline: datetime


class OffersStopped(BaseModel, frozen=True):
    """Optimalisasi stopped at the round's history budget (patch optimalisasi-budget): the seats
    it did not offer, by formasi, stay empty in this round (docs/OPERATIONS.md 6.10)."""

    at: datetime
    history_length: int
    history_budget: int
    offers_made: int
    seats_not_offered: dict[str, int]


class RoundView(BaseModel, frozen=True):
    """A round as people read it: every window, its extensions and closes, and the TMT's moves."""

    round_id: str
    instansi: str
    phase: str
    phase_label: str
    windows: list[WindowView]
    tmt: date  # in force, with every move
    original_tmt: date
    tmt_moves: list[TmtMove] = []
    formasi: list[FormasiInfo] = []
    offers_stopped: OffersStopped | None = None
    # Offers of the round's current run counted as declined for no answer (earlier runs' stay in
    # their own histories: domain.optimalisasi.LEFT_IN_THEIR_RUN).
    offers_unanswered: list[OfferUnanswered] = []
    # The digest of the rules the round was created with (RoundConfig.digest): a copy of the
    # round's file is the round's when it digests the same.
    rules_digest: str = ""
    as_of: datetime

    def window(self, name: str) -> WindowView | None:
        """The window of that name (registration, administration, skd, skb, filing, latsar)."""
        return next((w for w in self.windows if w.name == name), None)

    def jabatan(self, formasi_code: str | None) -> str:
        """The job title of a formasi of the round ("" when there is none of that code)."""
        return next((f.jabatan for f in self.formasi if f.code == formasi_code), "")


def _window_view(name: str, config: RoundConfig, state: RoundState, now: datetime) -> WindowView:
    original = getattr(config.schedule, name)
    current = getattr(state.schedule, name)
    decisions = state.decisions
    extensions = [
        Extension(
            at=d.at,
            new_closes=d.input.get("new_closes", current.closes),
            reason=str(d.input.get("reason", "")),
            by=d.actor,
        )
        for d in decisions
        if d.outcome == f"{name} extended"
    ]
    early = next((d for d in decisions if d.outcome == f"{name} closed early"), None)
    closed = next((d for d in decisions if d.stage == name and d.outcome == "window closed"), None)
    here = _PHASE_ORDER.index(name)
    phase = _PHASE_ORDER.index(state.phase) if state.phase in _PHASE_ORDER else here
    state_: Literal["belum dibuka", "dibuka", "ditutup"]
    if name in state.closed or phase > here or now >= current.closes:
        state_ = "ditutup"
    elif phase == here:
        # The round's phase, not the calendar, says what is open (a window closed early moves
        # the round on before the next window's calendar opening).
        state_ = "dibuka"
    else:
        state_ = "belum dibuka"
    closed_at = None
    if state_ == "ditutup":
        if closed is not None:
            closed_at = closed.at
        elif early is not None:
            closed_at = early.at
        elif current.closes <= now:
            closed_at = current.closes
    return WindowView(
        name=name,
        label=WINDOW_LABELS[name],
        opens=current.opens,
        closes=current.closes,
        original_closes=original.closes,
        extensions=extensions,
        state=state_,
        closed_at=closed_at,
        closed_early=early is not None,
        closed_early_reason=str(early.input.get("reason", "")) if early else "",
    )


def _tmt_moves(config: RoundConfig, decisions: Sequence[Decision]) -> list[TmtMove]:
    moves: list[TmtMove] = []
    tmt = config.schedule.tmt
    for d in decisions:
        if not d.outcome.startswith("TMT moved to") or "new_tmt" not in d.input:
            continue
        new = date.fromisoformat(str(d.input["new_tmt"]))
        moves.append(
            TmtMove(
                at=d.at, from_tmt=tmt, to_tmt=new, reason=str(d.input.get("reason", "")), by=d.actor
            )
        )
        tmt = new
    return moves


def _offers_stopped(decisions: Sequence[Decision]) -> OffersStopped | None:
    stop = next(
        (d for d in decisions if (d.stage, d.outcome) == ("optimalisasi", "offers stopped")), None
    )
    if stop is None:
        return None
    return OffersStopped(
        at=stop.at,
        history_length=stop.input.get("history_length", 0),
        history_budget=stop.input.get("history_budget", 0),
        offers_made=stop.input.get("offers_made", 0),
        seats_not_offered=stop.input.get("seats_not_offered", {}),
    )


def _offers_unanswered(decisions: Sequence[Decision]) -> list[OfferUnanswered]:
    return [
        OfferUnanswered(
            at=d.at,
            offer_id=str(d.input.get("offer_id", "")),
            deadline=datetime.fromisoformat(str(d.input["deadline"])),
        )
        for d in decisions
        if (d.stage, d.outcome) == ("optimalisasi", OFFER_UNANSWERED)
    ]


def build_round_view(config: RoundConfig, state: RoundState, now: datetime) -> RoundView:
    """The round as people read it, from its rules as created and its state as it stands."""
    return RoundView(
        round_id=config.round_id,
        instansi=config.instansi,
        rules_digest=config.digest(),
        phase=state.phase,
        phase_label=PHASE_LABELS.get(state.phase, state.phase),
        windows=[_window_view(w, config, state, now) for w in WINDOWS],
        tmt=state.schedule.tmt,
        original_tmt=config.schedule.tmt,
        tmt_moves=_tmt_moves(config, state.decisions),
        formasi=[
            FormasiInfo(
                code=f.code,
                jabatan=f.jabatan,
                unit=f.unit,
                education_level=f.education_level,
                quota=f.quota,
            )
            for f in config.formasi
        ],
        offers_stopped=_offers_stopped(state.decisions),
        offers_unanswered=_offers_unanswered(state.decisions),
        as_of=now,
    )


async def round_view(api: RecruitmentApi, round_id: str, now: datetime | None = None) -> RoundView:
    """The round as people read it; UnknownError when there is no such round."""
    config = await api.round_config(round_id)
    state = await api.round_state(round_id)
    return build_round_view(config, state, now or datetime.now(WIB))


class RoundStatus(BaseModel, frozen=True):
    """The round as its operators read it (`starter.py status`, directly or through the gateway):
    every window with its extensions and early close, the TMT and its moves, and the funnel per
    formasi. A half that cannot be read now is null, with why beside it; the other half is still
    given."""

    round_id: str
    round: RoundView | None = Field(description="the round's workflow's view; null: see why")
    round_problem: str | None = Field(default=None, description="why `round` is null")
    funnel: dict[str, dict[str, int]] | None = Field(
        description="per formasi, applicants at each stage or result code (the read model's)"
    )
    funnel_problem: str | None = Field(default=None, description="why `funnel` is null")
    personal_data_purged_at: datetime | None = Field(
        default=None,
        description="when the round's personal data was purged from the read model "
        "(`starter.py purge-personal-data`); null: it was not. The funnel is kept.",
    )

    @classmethod
    def of(
        cls,
        round_id: str,
        view: RoundView | None,
        round_problem: str | None,
        counts: dict[str, Counter] | None,
        funnel_problem: str | None,
        purged_at: datetime | None = None,
    ) -> RoundStatus:
        """The status of what was read: the funnel sorted by formasi, then code."""
        funnel = (
            None
            if counts is None
            else {f: dict(sorted(per.items())) for f, per in sorted(counts.items())}
        )
        return cls(
            round_id=round_id,
            round=view,
            round_problem=round_problem,
            funnel=funnel,
            funnel_problem=funnel_problem,
            personal_data_purged_at=purged_at,
        )


# The funnel's code for a registration its journey refused.
REFUSED = "refused"


async def funnel_counts(db: Any, round_id: str) -> dict[str, Counter]:
    """The round's funnel from the read model (`db`: an asyncpg connection or pool): per formasi,
    how many applicants stand at each stage, or at their result code once their journey ended.
    A registration its journey refused (ended TMS before any administrative result, as the
    national funnel counts it: client/national.py) is counted as `refused`, not as the
    administration's TMS."""
    rows = await db.fetch(
        """SELECT formasi_code, CASE WHEN terminal = $2 AND admin IS NULL THEN $3
                ELSE coalesce(terminal, stage) END AS code, count(*) AS n
           FROM applicants WHERE round_id = $1 GROUP BY 1, 2""",
        round_id,
        Terminal.TMS.value,
        REFUSED,
    )
    counts: dict[str, Counter] = {}
    for r in rows:
        counts.setdefault(r["formasi_code"], Counter())[r["code"]] = r["n"]
    return counts


# --- the applicant -------------------------------------------------------------------------------


class DecisionDetail(BaseModel, frozen=True):
    """One item behind a decision: a failing document and why, a missing document, a field."""

    item: str
    reason: str


class DecisionView(BaseModel, frozen=True):
    """One decision of the applicant's trail, with its reason in Indonesian."""

    at: datetime
    stage: str
    stage_label: str
    outcome: str
    reason: str
    details: list[DecisionDetail] = []
    actor: str


class Deadline(BaseModel, frozen=True):
    """A deadline that applies to the applicant now."""

    label: str
    at: datetime


class PendingOffer(BaseModel, frozen=True):
    """An optimalisasi offer the applicant can still answer."""

    offer_id: str
    to_formasi: str
    to_jabatan: str = ""
    answer_by: datetime


class RevocationView(BaseModel, frozen=True):
    """A DIS or a dismissal recorded after the journey ended (domain/aftermath.py)."""

    code: str  # DIS | DIBERHENTIKAN
    label: str  # in Indonesian
    at: datetime
    journey_terminal: str  # what the journey had ended as
    reason: str  # as the instansi wrote it
    decree_no: str = ""


class ApplicantView(BaseModel, frozen=True):
    """An applicant as they (and an operator) read their status: codes, every decision with its
    reason, the deadlines that apply now and what they may do now."""

    round_id: str
    applicant_id: str
    formasi_code: str
    jabatan: str = ""
    stage: str
    stage_label: str
    admin: AdminDecision | None = None
    skd_code: str | None = None
    skd_total: int | None = None
    skb_score: str | None = None
    final_score: str | None = None
    final_code: FinalCode | None = None
    placed_formasi: str | None = None
    nip: str | None = None
    tmt: date | None = None
    terminal: Terminal | None = None
    terminal_reason: str = ""  # as the journey recorded it
    terminal_label: str = ""  # the outcome, in Indonesian
    terminal_text: str = ""  # the reason, in Indonesian
    sanction_rounds: int = 0
    # Recorded after the journey ended (its aftermath), oldest first; `standing` is the status as
    # it stands: the last of them, or what the journey ended as.
    revocations: list[RevocationView] = []
    standing: str | None = None
    decisions: list[DecisionView] = []
    deadlines: list[Deadline] = []
    can_appeal: bool = False
    pending_offer: PendingOffer | None = None
    can_withdraw: bool = False
    withdrawal_sanction_rounds: int = 0  # rounds a withdrawal now would bar them from
    as_of: datetime


def _scores(i: dict) -> str:
    return f"TWK {i.get('twk')}, TIU {i.get('tiu')}, TKP {i.get('tkp')}, total {i.get('total')}"


def _explain(d: Decision) -> tuple[str, list[DecisionDetail]]:
    """The reason of one recorded decision in Indonesian, and the items behind it."""
    i, stage, outcome = d.input, d.stage, d.outcome
    if stage == Stage.ENDED and "journey_terminal" in i and d.actor != "system":
        ended_as = TERMINAL_LABELS.get(str(i["journey_terminal"]), str(i["journey_terminal"]))
        if outcome == Terminal.DISMISSED:
            return (
                f"Diberhentikan dengan keputusan nomor {i.get('decree_no')}: {i.get('reason')}",
                [],
            )
        return (
            f"Diskualifikasi (DIS) setelah seleksi berakhir (semula: {ended_as}); hasil seleksi "
            f"dibatalkan: {i.get('reason')}",
            [],
        )
    if outcome == "TMT moved":
        return f"TMT dipindahkan dari {i.get('from')} ke {i.get('to')}.", []
    if outcome == "arrived after the close":
        return (
            f"Laporan {i.get('report_id')} diterima setelah tahap ditutup; tidak diperhitungkan.",
            [],
        )
    if outcome == Terminal.DISQUALIFIED and "reason" in i and d.actor != "system":
        return f"Diskualifikasi (DIS): {i['reason']}", []
    if outcome == Terminal.WITHDRAWN and "sanction_rounds" in i:
        n = int(i.get("sanction_rounds") or 0)
        barred = f"; tidak dapat melamar pada {n} seleksi berikutnya" if n else ""
        return f"Mengundurkan diri (APS){barred}.", []
    if d.actor == "system" and outcome in set(Terminal) and set(i) == {"reason"}:
        return reason_text(str(i["reason"])), []
    if stage == Stage.REGISTERED:
        if outcome == "registered":
            return f"Pendaftaran diterima untuk formasi {i.get('formasi')}.", []
        if outcome == "refused":
            return "Pendaftaran ditolak: tidak memenuhi persyaratan.", [
                DecisionDetail(item=str(r.get("field")), reason=str(r.get("reason")))
                for r in i.get("refusals", [])
            ]
        return f"Pendaftaran tidak diterima oleh panitia seleksi: {i.get('reason', '')}", []
    if stage == Stage.ADMIN_CHECK:
        if "findings" not in i:
            return reason_text(str(i.get("reason", ""))), []
        if outcome == AdminDecision.MS:
            return "Memenuhi syarat administrasi (MS).", []
        findings = [
            DecisionDetail(item=str(f.get("document")), reason=str(f.get("reason")))
            for f in i.get("findings", [])
        ]
        return (
            f"Tidak memenuhi syarat administrasi (TMS): {len(findings)} dokumen tidak memenuhi "
            "syarat.",
            findings,
        )
    if stage == Stage.ADMIN_APPEAL:
        note = str(i.get("note") or "")
        if outcome == AdminDecision.MS:
            return "Sanggah diterima: memenuhi syarat administrasi (MS)." + (
                f" {note}" if note else ""
            ), []
        return "Sanggah ditolak: tetap tidak memenuhi syarat (TMS)." + (
            f" {note}" if note else ""
        ), []
    if stage == Stage.SKD:
        return reason_text(str(i.get("reason", ""))), []
    if stage == Stage.SKD_RANKING:
        text = {
            "P/L": "Lulus nilai ambang batas dan masuk peringkat peserta SKB (P/L).",
            "P": "Lulus nilai ambang batas, tetapi di luar peringkat peserta SKB (P).",
            "T/L": "Tidak lulus nilai ambang batas SKD (T/L).",
        }.get(outcome, f"Hasil SKD: {outcome}.")
        return f"{text} Nilai SKD: {_scores(i)}.", []
    if stage == Stage.SKB:
        if outcome == "completed":
            return (
                f"SKB selesai. Nilai SKB {angka(i.get('skb_score'))}, "
                f"nilai akhir {angka(i.get('final_score'))}.",
                [],
            )
        return reason_text(str(i.get("reason", ""))), []
    if stage == Stage.FINAL_RANKING:
        if outcome == FinalCode.PASSED:
            return f"Lulus (P/L) dengan nilai akhir {angka(i.get('final_score'))}.", []
        return (
            f"Tidak lulus (TL) dengan nilai akhir {angka(i.get('final_score'))}: di luar kuota "
            "formasi; "
            "dapat ditawari formasi lain melalui optimalisasi.",
            [],
        )
    if stage == Stage.OPTIMALISASI:
        if outcome == "accepted":
            return f"Tawaran optimalisasi ke formasi {i.get('to_formasi')} diterima (P/L-2).", []
        if not i.get("answered", True):
            return (
                f"Tawaran optimalisasi ke formasi {i.get('to_formasi')} tidak dijawab sampai "
                "batas waktu: dianggap ditolak.",
                [],
            )
        return f"Tawaran optimalisasi ke formasi {i.get('to_formasi')} ditolak.", []
    if stage == Stage.FILING:
        if outcome == "complete":
            return "Pemberkasan lengkap.", []
        missing = [
            DecisionDetail(item=str(m), reason="belum diserahkan") for m in i.get("missing", [])
        ]
        return "Pemberkasan tidak lengkap.", missing
    if stage == Stage.NIP:
        return f"NIP ditetapkan: {i.get('nip')}.", []
    if stage == Stage.APPOINTMENT:
        return f"Diangkat sebagai CPNS dengan TMT {i.get('tmt')}.", []
    if stage == Stage.LATSAR:
        if outcome == Terminal.PNS:
            # The judgement: PNS at once before patch probation-year, since at the year's end.
            return "Lulus Latsar dan memenuhi syarat kesehatan untuk diangkat menjadi PNS.", []
        return "Tidak lulus Latsar atau tidak memenuhi syarat kesehatan; diberhentikan.", []
    return reason_text(str(i.get("reason", outcome))), []


def decision_view(d: Decision) -> DecisionView:
    """One recorded decision as the applicant reads it."""
    reason, details = _explain(d)
    return DecisionView(
        at=d.at,
        stage=d.stage,
        stage_label=STAGE_LABELS.get(d.stage, PHASE_LABELS.get(d.stage, d.stage)),
        outcome=d.outcome,
        reason=reason,
        details=details,
        actor=d.actor,
    )


def _after(journey: JourneyState, config: RoundConfig, at: datetime, span: timedelta) -> datetime:
    """A sanggah deadline as the journey counts it (domain/sheet.py, deadlines_by_day)."""
    return days_after(at, span, config.timezone) if journey.deadlines_by_day else at + span


def build_applicant_view(
    journey: JourneyState,
    config: RoundConfig,
    round_: RoundView,
    now: datetime,
    aftermath: AftermathState | None = None,
) -> ApplicantView:
    """The applicant as they read their status, from the journey's state and the round's view,
    and what was recorded after the journey ended (its aftermath), if anything.

    What they may do mirrors the journey's refusals: a sanggah while a TMS is within its window
    and none was filed, an answer to an offer held and unanswered before its deadline, a
    withdrawal while the journey runs."""
    open_ = journey.terminal is None and not journey.ending_pending
    deadlines: list[Deadline] = []
    can_appeal = False
    if open_ and journey.stage == Stage.ADMIN_APPEAL and journey.admin == AdminDecision.TMS:
        if journey.appeal_filed_at is None and journey.admin_announced_at is not None:
            appeal_closes = _after(
                journey, config, journey.admin_announced_at, config.appeal.window
            )
            can_appeal = now < appeal_closes
            if can_appeal:
                deadlines.append(Deadline(label="Batas pengajuan sanggah", at=appeal_closes))
        elif journey.appeal_filed_at is not None and not journey.appeal_answered:
            deadlines.append(
                Deadline(
                    label="Batas jawaban sanggah oleh instansi",
                    at=_after(
                        journey, config, journey.appeal_filed_at, config.appeal.answer_within
                    ),
                )
            )
    elif (
        open_
        and journey.stage == Stage.FINAL_APPEAL
        and journey.final_announced_at is not None
        and not journey.final_confirmed
    ):
        # The sanggah against the final result (domain/sheet.py _refuse_final_appeal).
        if journey.final_appeal_filed_at is None:
            appeal_closes = _after(
                journey, config, journey.final_announced_at, config.appeal.window
            )
            can_appeal = now < appeal_closes
            if can_appeal:
                deadlines.append(
                    Deadline(label="Batas pengajuan sanggah hasil akhir", at=appeal_closes)
                )
        elif not journey.final_appeal_answered:
            deadlines.append(
                Deadline(
                    label="Batas jawaban sanggah hasil akhir oleh instansi",
                    at=_after(
                        journey, config, journey.final_appeal_filed_at, config.appeal.answer_within
                    ),
                )
            )
    pending = None
    offer = journey.offer
    if (
        open_
        and offer is not None
        and journey.stage == Stage.OPTIMALISASI
        and not journey.offer_answered
        and now < offer.answer_by
    ):
        pending = PendingOffer(
            offer_id=offer.offer_id,
            to_formasi=offer.to_formasi,
            to_jabatan=round_.jabatan(offer.to_formasi),
            answer_by=offer.answer_by,
        )
        deadlines.append(Deadline(label="Batas menjawab tawaran optimalisasi", at=offer.answer_by))
    window_name = _STAGE_WINDOW.get(journey.stage)
    window = round_.window(window_name) if open_ and window_name else None
    # A late taker files until its own time when that is later than the window's close, and
    # after the close (patch late-taker-filing-time).
    own = journey.file_until if journey.stage == Stage.FILING and open_ else None
    if window is not None and window.state != "ditutup":
        closes = window.closes if own is None else max(window.closes, own)
        deadlines.append(Deadline(label=_WINDOW_DEADLINES[window.name], at=closes))
    elif own is not None and now < own:
        deadlines.append(Deadline(label=_WINDOW_DEADLINES[RoundPhase.FILING], at=own))
    passed = journey.final_code in (FinalCode.PASSED, FinalCode.PASSED_OPTIMALISASI)
    return ApplicantView(
        round_id=journey.round_id,
        applicant_id=journey.applicant_id,
        formasi_code=journey.formasi_code,
        jabatan=round_.jabatan(journey.formasi_code),
        stage=journey.stage,
        stage_label=STAGE_LABELS.get(journey.stage, journey.stage),
        admin=journey.admin,
        skd_code=journey.skd_code.value if journey.skd_code else None,
        skd_total=journey.skd_total,
        skb_score=journey.skb_score,
        final_score=journey.final_score,
        final_code=journey.final_code,
        placed_formasi=journey.placed_formasi,
        nip=journey.nip,
        tmt=journey.tmt,
        terminal=journey.terminal,
        terminal_reason=journey.terminal_reason,
        terminal_label=TERMINAL_LABELS.get(journey.terminal, journey.terminal)
        if journey.terminal
        else "",
        terminal_text=reason_text(journey.terminal_reason) if journey.terminal_reason else "",
        sanction_rounds=journey.sanction_rounds,
        revocations=[
            RevocationView(
                code=r.code,
                label=TERMINAL_LABELS.get(r.code, r.code),
                at=r.at,
                journey_terminal=r.journey_terminal.value,
                reason=r.reason,
                decree_no=r.decree_no,
            )
            for r in (aftermath.revocations if aftermath else [])
        ],
        standing=aftermath.standing
        if aftermath and aftermath.revocations
        else (journey.terminal.value if journey.terminal else None),
        decisions=[
            decision_view(d)
            for d in [*journey.decisions, *(aftermath.decisions if aftermath else [])]
        ],
        deadlines=sorted(deadlines, key=lambda d: d.at),
        can_appeal=can_appeal,
        pending_offer=pending,
        can_withdraw=open_,
        withdrawal_sanction_rounds=withdrawal_sanction(passed, config.withdrawal_sanction_rounds)
        if open_
        else 0,
        as_of=now,
    )


class StateCache:
    """The last state each workflow answered, kept with the run and the history length it had
    then: answered again while the history has not grown, asked again once it has.

    A workflow's state changes only through events in its history, so an unchanged history
    length (a describe, which the server answers from the execution's record, no worker and no
    replay) means the state the workflow last answered still holds; any signal, update, timer or
    activity adds events and the next read asks the workflow again. A journey that has ended never
    changes: every later read is a describe, where a query would make a worker replay the whole
    history. Holds at most `size` workflows (the least recently read go first); 0 keeps none."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"status cache size {size} is below 0")
        self.size = size
        self.hits = 0
        self.asked = 0
        self._entries: OrderedDict[str, tuple[tuple[str, int], Any]] = OrderedDict()

    async def ask(self, handle: Any, query: Query) -> Any:
        """`query`'s answer from the workflow of `handle`, or the one it gave at this length of
        its history. RPCError (NOT_FOUND for no such workflow) as the query would raise it."""
        if self.size == 0:
            self.asked += 1
            return await query.ask(handle)
        description = await handle.describe()
        mark = (
            description.run_id,
            description.raw_description.workflow_execution_info.history_length,
        )
        key = f"{query.name}:{handle.id}"
        cached = self._entries.get(key)
        if cached is not None and cached[0] == mark:
            self._entries.move_to_end(key)
            self.hits += 1
            record_status_read("cache")
            return cached[1]
        answer = await query.ask(handle)
        self.asked += 1
        record_status_read("engine")
        self._entries[key] = (mark, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return answer


async def journey_state(
    api: RecruitmentApi, round_id: str, applicant_id: str, cache: StateCache | None = None
) -> JourneyState:
    """The journey's own state query (through `cache` when given); UnknownError when there is no
    such applicant."""
    handle = api.client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
    try:
        if cache is not None:
            return await cache.ask(handle, JOURNEY_STATE)
        return await JOURNEY_STATE.ask(handle)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise UnknownError(
                f"no applicant {applicant_id} in round {round_id}: check the registration number"
            ) from None
        raise


async def aftermath_state(
    api: RecruitmentApi, round_id: str, applicant_id: str, cache: StateCache | None = None
) -> AftermathState | None:
    """The applicant's aftermath (a DIS or dismissal after the journey ended); None when nothing
    was reported after the journey ended."""
    handle = api.client.get_workflow_handle(aftermath_workflow_id(round_id, applicant_id))
    try:
        if cache is not None:
            return await cache.ask(handle, AFTERMATH_STATE)
        return await AFTERMATH_STATE.ask(handle)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def applicant_view(
    api: RecruitmentApi,
    round_id: str,
    applicant_id: str,
    *,
    config: RoundConfig | None = None,
    state: RoundState | None = None,
    now: datetime | None = None,
    cache: StateCache | None = None,
) -> ApplicantView:
    """The applicant's status as they read it. UnknownError for an unknown round or applicant.

    A caller that keeps the round's configuration and state (the gateway's RoundDirectory) passes
    them, so that a status page costs one query; with a `cache` (the gateway's) a page whose
    journey has not changed since it was last read costs a describe and no query."""
    config = config or await api.round_config(round_id)
    journey = await journey_state(api, round_id, applicant_id, cache)
    state = state or await api.round_state(round_id)
    now = now or datetime.now(WIB)
    # Only a journey that has ended can have an aftermath: one more query, for those only.
    after = await aftermath_state(api, round_id, applicant_id, cache) if journey.terminal else None
    return build_applicant_view(journey, config, build_round_view(config, state, now), now, after)
