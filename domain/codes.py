"""The official result codes, as printed on announcements."""

from __future__ import annotations

from enum import StrEnum


class AdminDecision(StrEnum):
    """Outcome of the administrative check (seleksi administrasi)."""

    MS = "MS"  # Memenuhi Syarat
    TMS = "TMS"  # Tidak Memenuhi Syarat


class SkdCode(StrEnum):
    """Result codes of the SKD announcement."""

    PASSED_TO_SKB = "P/L"  # passed the threshold and within the 3 x quota cut
    PASSED = "P"  # passed the threshold, outside the cut
    FAILED = "T/L"  # below the threshold of the applicant's category
    ABSENT = "TH"
    DISQUALIFIED = "DIS"


class FinalCode(StrEnum):
    """Result codes of the final announcement."""

    PASSED = "P/L"  # within the formasi's seats
    # Given a seat by optimalisasi: one left empty in another formasi of the same jabatan and
    # education, or in its own formasi when a winner there failed a gate or withdrew (the pool
    # is every formasi's TL applicants the seat's formasi would accept: domain/optimalisasi.py).
    PASSED_OPTIMALISASI = "P/L-2"
    NOT_PASSED = "TL"  # completed SKB, lost on rank (may still get an optimalisasi seat)
    GATE_FAILED = "TMS-SKB"  # failed a knock-out gate of SKB (health TMS, score floor)
    ABSENT = "TH"
    DISQUALIFIED = "DIS"
    WITHDRAWN = "APS"  # mengundurkan diri


class Stage(StrEnum):
    """Where an applicant's journey stands; also the RecruitmentStage search attribute."""

    REGISTERED = "registered"
    ADMIN_CHECK = "admin_check"
    ADMIN_APPEAL = "admin_appeal"
    SKD = "skd"
    SKD_RANKING = "skd_ranking"
    SKB = "skb"
    FINAL_RANKING = "final_ranking"
    FINAL_APPEAL = "final_appeal"
    OPTIMALISASI = "optimalisasi"
    FILING = "filing"
    NIP = "nip"
    APPOINTMENT = "appointment"
    LATSAR = "latsar"
    ENDED = "ended"


class Terminal(StrEnum):
    """How a journey ended. Each value is the code an operator or auditor sees."""

    TMS = "TMS"
    SKD_PASSED_OUTSIDE_CUT = "P"
    SKD_FAILED = "T/L"
    ABSENT = "TH"
    DISQUALIFIED = "DIS"
    SKB_GATE_FAILED = "TMS-SKB"
    NOT_PASSED = "TL"
    WITHDRAWN = "APS"
    FILING_INCOMPLETE = "TMS-DRH"
    PNS = "PNS"
    DISMISSED = "DIBERHENTIKAN"


class RoundPhase(StrEnum):
    """Where a round stands; the first six are its scheduled windows, in schedule order."""

    REGISTRATION = "registration"
    ADMINISTRATION = "administration"
    SKD = "skd"
    SKB = "skb"
    FILING = "filing"
    LATSAR = "latsar"
    FINAL_APPEAL = "final_appeal"  # the sanggah window after the final announcement
    OPTIMALISASI = "optimalisasi"
    CLOSED = "closed"


# The round's windows in the order they open (the fields of domain.config.Schedule).
WINDOWS: tuple[RoundPhase, ...] = (
    RoundPhase.REGISTRATION,
    RoundPhase.ADMINISTRATION,
    RoundPhase.SKD,
    RoundPhase.SKB,
    RoundPhase.FILING,
    RoundPhase.LATSAR,
)


class Phase(StrEnum):
    """What an announcement tells a formasi's applicants (`Announcement.phase`)."""

    ADMINISTRATION = "administration"  # the MS/TMS results are out
    SKD_CLOSED = "skd_closed"
    SKD_RESULT = "skd_result"  # the SKD cut is announced
    SKB_CLOSED = "skb_closed"
    FINAL_RESULT = "final_result"
    FINAL_APPEAL_CLOSED = "final_appeal_closed"  # the round: the final sanggah is over
    FINAL_CONFIRMED = "final_confirmed"  # the formasi: the ranking after the final sanggah
    OPTIMALISASI_CLOSED = "optimalisasi_closed"
    FILING_CLOSED = "filing_closed"
    TMT_MOVED = "tmt_moved"
    KEYS_CHANGED = "keys_changed"  # the note holds the changed identities' keys as JSON
    ROUND_CLOSED = "round_closed"
