"""What a journey tells its applicant: a notice of facts, and its text in Indonesian or English.

Where the language is chosen: not in the workflow. A journey records a `Notice` (the kind of
news, the official outcome code, the failing documents with their reasons, the cause of an ending
and the free text it carries) with every outcome, and the text is rendered from it where it is
delivered (`activities/notify.py`, in the language of `CASN_NOTIFICATION_LANGUAGE`, Indonesian by
default). Reading a setting inside workflow code would make a replay depend on the machine. The
journey also stores the Indonesian rendering as the row's text (pure, the same on every replay),
so the table reads in the default language; rows written before notices existed carry only that
recorded text and are delivered as recorded.

No outcome is said twice. Each message names its outcome once, in words with the official code in
brackets. A journey's recorded reason begins with its own code ("DIS: ...", "PNS: passed Latsar");
it is never pasted after the outcome: `ended` looks its cause up, and only the free text the
reason carries (an instansi's note, a DIS reason, missing documents) goes into the message.

Free text written by people (a document's reason, an appeal note, a DIS reason) is quoted as
written, in whatever language its author used.
"""

from __future__ import annotations

import contextlib
import re
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.administration import DocumentFinding
from domain.appointment import PROBATION_SERVED
from domain.local_time import JAKARTA, reading

_MONTHS = {
    "id": ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}


class Language(StrEnum):
    """The language notifications are delivered in."""

    ID = "id"  # Bahasa Indonesia: the default, what applicants read
    EN = "en"


class NoticeKind(StrEnum):
    """What a notice reports."""

    REGISTERED = "registered"
    ADMIN_RESULT = "admin_result"
    APPEAL_ACCEPTED = "appeal_accepted"
    SKD_RESULT = "skd_result"
    FINAL_RESULT = "final_result"
    OPTIMALISASI_SEAT = "optimalisasi_seat"
    APPOINTED = "appointed"
    ENDED = "ended"
    REVOKED = "revoked"  # DIS or dismissal after the journey ended (domain/aftermath.py)
    FINAL_APPEAL_ANSWERED = "final_appeal_answered"
    TMT_MOVED = "tmt_moved"
    LATSAR_PASSED = "latsar_passed"  # judged PNS; appointed once the year of probation ends


class EndCause(StrEnum):
    """Why a journey ended, as the journey's recorded reason says it (see `ended`)."""

    REGISTRATION_REFUSED = "registration_refused"
    NO_APPEAL = "no_appeal"
    APPEAL_UNANSWERED = "appeal_unanswered"
    APPEAL_REJECTED = "appeal_rejected"
    SKD_ABSENT = "skd_absent"
    SKD_BELOW_THRESHOLD = "skd_below_threshold"
    SKD_OUTSIDE_CUT = "skd_outside_cut"
    SKB_ABSENT = "skb_absent"
    SKB_INCOMPLETE = "skb_incomplete"
    SKB_GATE_FAILED = "skb_gate_failed"
    NOT_PLACED = "not_placed"
    OFFER_DECLINED = "offer_declined"
    FILING_INCOMPLETE = "filing_incomplete"
    LATSAR_PASSED = "latsar_passed"
    PROBATION_SERVED = "probation_served"
    DISMISSED = "dismissed"
    DISQUALIFIED = "disqualified"
    WITHDREW_BARRED = "withdrew_barred"
    WITHDREW = "withdrew"
    OTHER = "other"  # a reason this table does not know: its text is kept, without its code


class Notice(BaseModel, frozen=True):
    """The facts of one notification; `render` turns them into text."""

    kind: NoticeKind
    outcome: str = ""  # the official code: MS/TMS, an SKD or final code, a terminal outcome
    registration_no: str = ""
    formasi: str = ""
    skd_total: int | None = None
    nip: str = ""
    tmt: date | None = None
    appeal_until: datetime | None = None  # a TMS may be appealed until then
    # A seat taken in optimalisasi may be filed for until then at the least (patch
    # late-taker-filing-time). Left out of the dump while None, so older notices keep their rows.
    file_until: datetime | None = Field(default=None, exclude_if=lambda until: until is None)
    findings: list[DocumentFinding] = []  # every failing document with its reason (TMS)
    not_decided: bool = False  # TMS because no decision was reported before the window closed
    cause: EndCause | None = None
    detail: str = ""  # the free text of the cause: a note, a reason, a list, a number
    decree_no: str = ""  # a dismissal's decree (REVOKED)
    # The round's zone, in which the applicant reads its times (appeal_until): WIB, WITA or WIT.
    # Left out of the dump at Asia/Jakarta, so that a WIB round's notices read as before.
    timezone: str = Field(default=JAKARTA, max_length=64, exclude_if=lambda z: z == JAKARTA)


# --- what the journey records -------------------------------------------------------------------


def registered(registration_no: str, formasi: str) -> Notice:
    """The registration was accepted."""
    return Notice(kind=NoticeKind.REGISTERED, registration_no=registration_no, formasi=formasi)


def admin_result(
    decision: str,
    findings: list[DocumentFinding],
    appeal_until: datetime | None,
    not_decided: bool = False,
    timezone: str = JAKARTA,
) -> Notice:
    """MS, or TMS with every failing document and its reason, and until when to appeal (read in
    the round's zone `timezone`)."""
    return Notice(
        kind=NoticeKind.ADMIN_RESULT,
        outcome=decision,
        findings=list(findings),
        appeal_until=appeal_until if decision == "TMS" else None,
        not_decided=not_decided,
        timezone=timezone,
    )


def appeal_accepted() -> Notice:
    """The sanggah against a TMS was accepted: MS."""
    return Notice(kind=NoticeKind.APPEAL_ACCEPTED, outcome="MS")


def skd_result(code: str, total: int) -> Notice:
    """The SKD code and total."""
    return Notice(kind=NoticeKind.SKD_RESULT, outcome=code, skd_total=total)


def final_result(code: str, formasi: str) -> Notice:
    """The final announcement's code."""
    return Notice(kind=NoticeKind.FINAL_RESULT, outcome=code, formasi=formasi)


def optimalisasi_seat(
    formasi: str, file_until: datetime | None = None, timezone: str = JAKARTA
) -> Notice:
    """A seat in another formasi by optimalisasi (P/L-2), and until when its taker may file at
    the least (read in the round's zone `timezone`), when the offer gave a time to file."""
    return Notice(
        kind=NoticeKind.OPTIMALISASI_SEAT,
        outcome="P/L-2",
        formasi=formasi,
        file_until=file_until,
        timezone=timezone if file_until is not None else JAKARTA,
    )


def final_appeal_answered(accepted: bool, corrected: bool) -> Notice:
    """The instansi's answer to the sanggah against the final result."""
    outcome = "corrected" if corrected else ("accepted" if accepted else "rejected")
    return Notice(kind=NoticeKind.FINAL_APPEAL_ANSWERED, outcome=outcome)


def tmt_moved(tmt: date, nip: str | None) -> Notice:
    """The SK's TMT moved by government decision; an NIP already issued stays as it is."""
    return Notice(kind=NoticeKind.TMT_MOVED, outcome="TMT", tmt=tmt, nip=nip or "")


def appointed(nip: str, tmt: date) -> Notice:
    """Appointed CPNS with a NIP and a TMT."""
    return Notice(kind=NoticeKind.APPOINTED, outcome="CPNS", nip=nip, tmt=tmt)


def latsar_passed() -> Notice:
    """Latsar passed and healthy: PNS once the year of probation from the TMT ends (a TMT move
    moves it, so the notice names no date; the TMT notices do)."""
    return Notice(kind=NoticeKind.LATSAR_PASSED, outcome="CPNS")


def revoked(code: str, reason: str, decree_no: str = "") -> Notice:
    """DIS after the journey ended, or (with its decree) a PNS's dismissal, with the reason."""
    return Notice(kind=NoticeKind.REVOKED, outcome=code, detail=reason, decree_no=decree_no)


# The journey's recorded reasons (workflows/applicant.py, domain/sheet.py): a key ending in a
# space or ": " is a prefix whose rest is the cause's free text.
_CAUSES: tuple[tuple[str, EndCause], ...] = (
    ("registration refused: ", EndCause.REGISTRATION_REFUSED),
    ("TMS; no appeal within the appeal window", EndCause.NO_APPEAL),
    ("TMS; the appeal was not answered within its time", EndCause.APPEAL_UNANSWERED),
    ("TMS; appeal rejected: ", EndCause.APPEAL_REJECTED),
    ("TH: did not sit the SKD", EndCause.SKD_ABSENT),
    ("T/L: below the SKD threshold of the category", EndCause.SKD_BELOW_THRESHOLD),
    ("P: passed the threshold, outside the SKB cut", EndCause.SKD_OUTSIDE_CUT),
    ("TH: no SKB CAT score when the SKB window closed", EndCause.SKB_ABSENT),
    ("SKB incomplete: ", EndCause.SKB_INCOMPLETE),
    ("SKB gate failed: ", EndCause.SKB_GATE_FAILED),
    ("TL: lost on rank; no optimalisasi seat", EndCause.NOT_PLACED),
    ("TL: declined the optimalisasi offer", EndCause.OFFER_DECLINED),
    ("filing incomplete: ", EndCause.FILING_INCOMPLETE),
    (PROBATION_SERVED, EndCause.PROBATION_SERVED),
    ("PNS: passed Latsar", EndCause.LATSAR_PASSED),
    ("dismissed: Latsar or health not passed", EndCause.DISMISSED),
    ("DIS: ", EndCause.DISQUALIFIED),
    ("APS: withdrew; barred from the next ", EndCause.WITHDREW_BARRED),
    ("APS: withdrew", EndCause.WITHDREW),
)


def ended(terminal: str, reason: str) -> Notice:
    """The journey ended with `terminal` for the recorded `reason`: its cause and free text."""
    for known, cause in _CAUSES:
        if reason == known or (known.endswith(" ") and reason.startswith(known)):
            detail = reason[len(known) :]
            if cause == EndCause.WITHDREW_BARRED:
                detail = detail.removesuffix(" rounds")
            elif cause == EndCause.SKB_INCOMPLETE:
                detail = detail.removesuffix(" not reported")
            return Notice(kind=NoticeKind.ENDED, outcome=terminal, cause=cause, detail=detail)
    return Notice(
        kind=NoticeKind.ENDED,
        outcome=terminal,
        cause=EndCause.OTHER,
        detail=_without_code(reason, terminal),
    )


def _without_code(reason: str, code: str) -> str:
    """A reason without its leading code ("DIS: x" -> "x"): the message names the code already."""
    for sep in (": ", "; ", " - "):
        if code and reason.startswith(code + sep):
            return reason[len(code) + len(sep) :]
    return reason


# --- how it reads -------------------------------------------------------------------------------

_ADMIN = {
    "id": {"MS": "Memenuhi Syarat (MS)", "TMS": "Tidak Memenuhi Syarat (TMS)"},
    "en": {"MS": "meets the requirements (MS)", "TMS": "does not meet the requirements (TMS)"},
}
_SKD = {
    "id": {
        "P/L": "lulus ke tahap SKB (P/L)",
        "P": "lulus nilai ambang batas, di luar peringkat peserta SKB (P)",
        "T/L": "tidak lulus nilai ambang batas (T/L)",
        "TH": "tidak hadir (TH)",
        "DIS": "diskualifikasi (DIS)",
    },
    "en": {
        "P/L": "passed, on to SKB (P/L)",
        "P": "passed the threshold, outside the SKB cut (P)",
        "T/L": "below the threshold (T/L)",
        "TH": "absent (TH)",
        "DIS": "disqualified (DIS)",
    },
}
_FINAL = {
    "id": {
        "P/L": "lulus (P/L) pada formasi {formasi}",
        "TL": "tidak lulus (TL): di luar kuota formasi; formasi yang kosong dapat ditawarkan "
        "melalui optimalisasi",
        "TMS-SKB": "tidak memenuhi syarat SKB (TMS-SKB)",
        "TH": "tidak hadir (TH)",
        "DIS": "diskualifikasi (DIS)",
        "APS": "mengundurkan diri (APS)",
    },
    "en": {
        "P/L": "passed (P/L) in formasi {formasi}",
        "TL": "not passed (TL): outside the formasi's seats; an empty seat may still be offered "
        "by optimalisasi",
        "TMS-SKB": "did not meet the SKB requirements (TMS-SKB)",
        "TH": "absent (TH)",
        "DIS": "disqualified (DIS)",
        "APS": "withdrew (APS)",
    },
}
_TERMINAL = {
    "id": {
        "TMS": "Tidak Memenuhi Syarat administrasi (TMS)",
        "P": "lulus nilai ambang batas SKD, di luar peringkat peserta SKB (P)",
        "T/L": "tidak lulus nilai ambang batas SKD (T/L)",
        "TH": "tidak hadir (TH)",
        "DIS": "diskualifikasi (DIS)",
        "TMS-SKB": "tidak memenuhi syarat SKB (TMS-SKB)",
        "TL": "tidak lulus (TL)",
        "APS": "mengundurkan diri (APS)",
        "TMS-DRH": "pemberkasan tidak lengkap (TMS-DRH)",
        "PNS": "diangkat menjadi PNS",
        "DIBERHENTIKAN": "diberhentikan",
    },
    "en": {
        "TMS": "did not meet the administrative requirements (TMS)",
        "P": "passed the SKD threshold, outside the SKB cut (P)",
        "T/L": "below the SKD threshold (T/L)",
        "TH": "absent (TH)",
        "DIS": "disqualified (DIS)",
        "TMS-SKB": "did not meet the SKB requirements (TMS-SKB)",
        "TL": "not passed (TL)",
        "APS": "withdrew (APS)",
        "TMS-DRH": "incomplete filing (TMS-DRH)",
        "PNS": "appointed PNS",
        "DIBERHENTIKAN": "dismissed",
    },
}
# One sentence per cause, naming the outcome once; {detail} is the cause's free text.
_ENDED = {
    "id": {
        EndCause.REGISTRATION_REFUSED: "Pendaftaran Anda ditolak (TMS): {detail}",
        EndCause.NO_APPEAL: (
            "Seleksi Anda berakhir: Tidak Memenuhi Syarat administrasi (TMS), dan tidak ada "
            "sanggah dalam masa sanggah."
        ),
        EndCause.APPEAL_UNANSWERED: (
            "Seleksi Anda berakhir: Tidak Memenuhi Syarat administrasi (TMS); sanggah Anda tidak "
            "dijawab dalam batas waktunya."
        ),
        EndCause.APPEAL_REJECTED: (
            "Sanggah Anda ditolak: hasil seleksi administrasi tetap Tidak Memenuhi Syarat (TMS) "
            "dan seleksi Anda berakhir. Catatan instansi: {detail}"
        ),
        EndCause.SKD_ABSENT: "Anda tidak hadir pada SKD (TH); seleksi Anda berakhir.",
        EndCause.SKD_BELOW_THRESHOLD: (
            "Nilai SKD Anda di bawah nilai ambang batas kategori Anda (T/L); seleksi Anda berakhir."
        ),
        EndCause.SKD_OUTSIDE_CUT: (
            "Anda lulus nilai ambang batas SKD, tetapi di luar peringkat peserta SKB (P); "
            "seleksi Anda berakhir."
        ),
        EndCause.SKB_ABSENT: "Anda tidak hadir pada SKB CAT (TH); seleksi Anda berakhir.",
        EndCause.SKB_INCOMPLETE: (
            "Nilai SKB Anda tidak lengkap (TMS-SKB), belum dilaporkan: {detail}. "
            "Seleksi Anda berakhir."
        ),
        EndCause.SKB_GATE_FAILED: (
            "Anda tidak memenuhi syarat pada komponen SKB (TMS-SKB): {detail}. "
            "Seleksi Anda berakhir."
        ),
        EndCause.NOT_PLACED: (
            "Anda tidak lulus (TL): di luar kuota formasi dan tidak mendapat formasi melalui "
            "optimalisasi. Seleksi Anda berakhir."
        ),
        EndCause.OFFER_DECLINED: (
            "Tawaran optimalisasi ditolak atau tidak dijawab tepat waktu; Anda tidak lulus (TL) "
            "dan seleksi Anda berakhir."
        ),
        EndCause.FILING_INCOMPLETE: (
            "Pemberkasan Anda tidak lengkap (TMS-DRH), kurang: {detail}. Seleksi Anda berakhir."
        ),
        EndCause.LATSAR_PASSED: "Selamat, Anda lulus Latsar dan diangkat menjadi PNS.",
        EndCause.PROBATION_SERVED: (
            "Selamat, masa percobaan Anda berakhir pada {detail}; Anda lulus Latsar dan diangkat "
            "menjadi PNS."
        ),
        EndCause.DISMISSED: (
            "Anda tidak lulus Latsar atau tidak memenuhi syarat kesehatan, dan diberhentikan "
            "sebagai CPNS."
        ),
        EndCause.DISQUALIFIED: "Anda didiskualifikasi (DIS) dari seleksi. Alasan: {detail}",
        EndCause.WITHDREW_BARRED: (
            "Pengunduran diri Anda tercatat (APS); Anda tidak dapat melamar pada {detail} "
            "seleksi CASN berikutnya."
        ),
        EndCause.WITHDREW: "Pengunduran diri Anda tercatat (APS); seleksi Anda berakhir.",
    },
    "en": {
        EndCause.REGISTRATION_REFUSED: "Your registration is refused (TMS): {detail}",
        EndCause.NO_APPEAL: (
            "Your selection has ended: you did not meet the administrative requirements (TMS) "
            "and no sanggah was filed within the appeal window."
        ),
        EndCause.APPEAL_UNANSWERED: (
            "Your selection has ended: you did not meet the administrative requirements (TMS); "
            "your sanggah was not answered in time."
        ),
        EndCause.APPEAL_REJECTED: (
            "Your sanggah was rejected: you still do not meet the administrative requirements "
            "(TMS) and your selection has ended. The instansi's note: {detail}"
        ),
        EndCause.SKD_ABSENT: "You did not sit the SKD (TH); your selection has ended.",
        EndCause.SKD_BELOW_THRESHOLD: (
            "Your SKD score is below the threshold of your category (T/L); your selection has "
            "ended."
        ),
        EndCause.SKD_OUTSIDE_CUT: (
            "You passed the SKD threshold but are outside the SKB cut (P); your selection has "
            "ended."
        ),
        EndCause.SKB_ABSENT: "You did not sit the SKB CAT (TH); your selection has ended.",
        EndCause.SKB_INCOMPLETE: (
            "Your SKB results are incomplete (TMS-SKB), not reported: {detail}. Your selection "
            "has ended."
        ),
        EndCause.SKB_GATE_FAILED: (
            "You did not meet an SKB requirement (TMS-SKB): {detail}. Your selection has ended."
        ),
        EndCause.NOT_PLACED: (
            "You did not pass (TL): outside the formasi's seats and no seat by optimalisasi. "
            "Your selection has ended."
        ),
        EndCause.OFFER_DECLINED: (
            "The optimalisasi offer was declined or not answered in time; you did not pass (TL) "
            "and your selection has ended."
        ),
        EndCause.FILING_INCOMPLETE: (
            "Your filing is incomplete (TMS-DRH), missing: {detail}. Your selection has ended."
        ),
        EndCause.LATSAR_PASSED: "Congratulations: you passed Latsar and are appointed PNS.",
        EndCause.PROBATION_SERVED: (
            "Congratulations: your probation ended on {detail}; you passed Latsar and are "
            "appointed PNS."
        ),
        EndCause.DISMISSED: (
            "You did not pass Latsar or the health requirement, and are dismissed as CPNS."
        ),
        EndCause.DISQUALIFIED: "You are disqualified (DIS) from the selection. Reason: {detail}",
        EndCause.WITHDREW_BARRED: (
            "Your withdrawal is recorded (APS); you may not apply in the next {detail} CASN rounds."
        ),
        EndCause.WITHDREW: "Your withdrawal is recorded (APS); your selection has ended.",
    },
}
_FINAL_APPEAL = {
    "id": {
        "corrected": (
            "Sanggah Anda atas hasil akhir diterima dan nilai Anda dikoreksi; peringkat formasi "
            "dihitung ulang sebelum pengumuman hasil akhir pasca sanggah."
        ),
        "accepted": "Sanggah Anda atas hasil akhir diterima; nilai Anda tidak berubah.",
        "rejected": "Sanggah Anda atas hasil akhir ditolak; hasil akhir Anda tetap.",
    },
    "en": {
        "corrected": (
            "Your sanggah against the final result is accepted and your score corrected; the "
            "formasi is ranked again before the final result after the sanggah is announced."
        ),
        "accepted": "Your sanggah against the final result is accepted; your score is unchanged.",
        "rejected": "Your sanggah against the final result is rejected; your result stands.",
    },
}
_GATE_FLOOR = re.compile(r"^(?P<c>.+): (?P<v>\S+) at or below the floor (?P<f>\S+)$")


def render(notice: Notice, language: Language | str = Language.ID) -> str:
    """The notice as the applicant reads it, in `language`."""
    lang = Language(language).value
    k = notice.kind
    if k == NoticeKind.REGISTERED:
        if lang == "id":
            return (
                f"Pendaftaran Anda diterima dengan nomor {notice.registration_no} "
                f"untuk formasi {notice.formasi}."
            )
        return (
            f"Your registration is accepted with number {notice.registration_no} "
            f"for formasi {notice.formasi}."
        )
    if k == NoticeKind.ADMIN_RESULT:
        return _admin(notice, lang)
    if k == NoticeKind.APPEAL_ACCEPTED:
        if lang == "id":
            return "Sanggah Anda diterima: hasil seleksi administrasi menjadi Memenuhi Syarat (MS)."
        return "Your sanggah is accepted: the administrative check is now MS."
    if k == NoticeKind.SKD_RESULT:
        label = _SKD[lang].get(notice.outcome, notice.outcome)
        if lang == "id":
            return f"Hasil SKD Anda: {label}, nilai total {notice.skd_total}."
        return f"Your SKD result: {label}, total score {notice.skd_total}."
    if k == NoticeKind.FINAL_RESULT:
        label = _FINAL[lang].get(notice.outcome, notice.outcome).format(formasi=notice.formasi)
        return f"Hasil akhir seleksi: {label}." if lang == "id" else f"Final result: {label}."
    if k == NoticeKind.OPTIMALISASI_SEAT:
        if lang == "id":
            text = f"Anda mendapat formasi {notice.formasi} melalui optimalisasi (P/L-2)."
        else:
            text = f"You are given a seat in formasi {notice.formasi} by optimalisasi (P/L-2)."
        if notice.file_until is None:
            return text
        until = _moment(notice.file_until, notice.timezone, lang, deadline=True)
        if lang == "id":
            return (
                f"{text} Pemberkasan (DRH dan dokumen) dapat diajukan sekurang-kurangnya sampai "
                f"{until}, atau sampai pemberkasan ditutup bila lebih akhir."
            )
        return (
            f"{text} You may file your DRH and documents until {until} at the least, or until "
            "filing closes if that is later."
        )
    if k == NoticeKind.FINAL_APPEAL_ANSWERED:
        return _FINAL_APPEAL[lang][notice.outcome]
    if k == NoticeKind.TMT_MOVED:
        tmt = _day(notice.tmt, lang)
        if lang == "id":
            keeps = f" NIP Anda tetap {notice.nip}." if notice.nip else ""
            return (
                f"TMT SK CPNS Anda berubah menjadi {tmt} berdasarkan keputusan pemerintah.{keeps}"
            )
        keeps = f" Your NIP stays {notice.nip}." if notice.nip else ""
        return f"The TMT of your SK CPNS moved to {tmt} by government decision.{keeps}"
    if k == NoticeKind.APPOINTED:
        tmt = _day(notice.tmt, lang)
        if lang == "id":
            return f"Anda diangkat sebagai CPNS dengan NIP {notice.nip}, TMT {tmt}."
        return f"You are appointed CPNS with NIP {notice.nip}, TMT {tmt}."
    if k == NoticeKind.LATSAR_PASSED:
        if lang == "id":
            return (
                "Anda lulus Latsar. Anda diangkat menjadi PNS setelah masa percobaan satu tahun "
                "sejak TMT berakhir."
            )
        return (
            "You passed Latsar. You will be appointed PNS when your year of probation from the "
            "TMT ends."
        )
    if k == NoticeKind.REVOKED:
        return _revoked(notice, lang)
    return _ended(notice, lang)


def _admin(notice: Notice, lang: str) -> str:
    label = _ADMIN[lang].get(notice.outcome, notice.outcome)
    parts = [
        f"Hasil seleksi administrasi: {label}."
        if lang == "id"
        else f"Administrative check: {label}."
    ]
    if notice.findings:
        listed = "; ".join(f"{f.document}: {_clause(f.reason)}" for f in notice.findings)
        parts.append(
            f"Dokumen yang tidak memenuhi syarat: {listed}."
            if lang == "id"
            else f"Documents that do not meet them: {listed}."
        )
    elif notice.not_decided:
        parts.append(
            "Hasil pemeriksaan dokumen tidak dilaporkan sebelum batas waktu."
            if lang == "id"
            else "No decision on your documents was reported before the deadline."
        )
    if notice.appeal_until is not None:
        until = _moment(notice.appeal_until, notice.timezone, lang, deadline=True)
        parts.append(
            f"Sanggah dapat diajukan paling lambat {until}."
            if lang == "id"
            else f"You may file a sanggah (appeal) until {until}."
        )
    return " ".join(parts)


def _revoked(notice: Notice, lang: str) -> str:
    """DIS or a dismissal after the selection ended, with its reason (and decree) as written."""
    reason = _clause(notice.detail) if notice.detail else "-"
    if notice.outcome == "DIBERHENTIKAN":
        if lang == "id":
            return _sentence(
                f"Anda diberhentikan berdasarkan keputusan nomor {notice.decree_no}. Alasan: {reason}"
            )
        return _sentence(f"You are dismissed by decree {notice.decree_no}. Reason: {reason}")
    if lang == "id":
        return _sentence(
            f"Anda didiskualifikasi (DIS) setelah seleksi berakhir; hasil seleksi Anda "
            f"dibatalkan. Alasan: {reason}"
        )
    return _sentence(
        f"You are disqualified (DIS) after the selection ended; your selection result is "
        f"annulled. Reason: {reason}"
    )


def _ended(notice: Notice, lang: str) -> str:
    cause = notice.cause or EndCause.OTHER
    detail = notice.detail
    if cause == EndCause.SKB_GATE_FAILED and lang == "id":
        detail = "; ".join(_gate_id(g) for g in detail.split("; "))
    elif cause == EndCause.PROBATION_SERVED:
        with contextlib.suppress(ValueError):  # the recorded ISO day, as the applicant reads days
            detail = _day(date.fromisoformat(detail), lang)
    template = _ENDED[lang].get(cause)
    if template is None:  # OTHER: the outcome in words, then the reason without its code
        label = _TERMINAL[lang].get(notice.outcome, notice.outcome)
        lead = f"Seleksi Anda berakhir: {label}." if lang == "id" else f"Selection ended: {label}."
        return f"{lead} {_sentence(detail[:1].upper() + detail[1:])}" if detail else lead
    if "{detail}" not in template:
        return template
    text = template.format(detail=_clause(detail) if detail else "-")
    return _sentence(text)


def _gate_id(failure: str) -> str:
    """A gate failure (domain/skb.py) in Indonesian: "health: TMS", "psikotes: 55 at or below ..."."""
    floor = _GATE_FLOOR.match(failure)
    if floor:
        return f"{floor['c']}: nilai {floor['v']} tidak melebihi batas minimal {floor['f']}"
    return failure


def _clause(text: str) -> str:
    return text.strip().rstrip(".")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _day(day: date | None, lang: str) -> str:
    if day is None:
        return "-"
    return f"{day.day} {_MONTHS[lang][day.month - 1]} {day.year}"


def _moment(moment: datetime, zone: str, lang: str, deadline: bool = False) -> str:
    """A moment in the round's zone, named (WIB, WITA, WIT). A deadline at exactly 00:00 is written
    as 24.00 of the day before, the day that is still in it: "paling lambat 23 Agu 2027 24.00
    WIT", not "24 Agu 2027 00.00"."""
    local = reading(moment, zone, deadline=deadline)
    sep = "." if lang == "id" else ":"
    return f"{_day(local.day, lang)} {local.hour}{sep}{local.minute} {local.zone}"
