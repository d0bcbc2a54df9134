"""What an announcement (pengumuman) of a stage says, in the official order, and how it reads.

An announcement lists every applicant with a result of the stage, per formasi:

- administration (admin): by registration number;
- SKD: the P/L by the SKD rank key (total, TKP, TIU, TWK, each highest first:
  `domain.skd.skd_rank_key`), then P, then T/L (each by the same key), then TH;
- final: the formasi's final ranking (`domain.ranking.rank_final`, the whole tie chain: final
  score, SKD total, TKP, TIU, TWK, GPA, the older applicant) as the formasi reported it to the
  round, then each P/L-2 in the formasi it fills (by `final_rank_key`, as optimalisasi offers
  seats), then TL, TMS-SKB and TH.

An applicant disqualified (DIS) or withdrawn (APS) before publication is listed with that code,
after the others; so is one disqualified after the journey ended (a DIS recorded by the
applicant's aftermath, domain/aftermath.py). A dismissal after appointment does not change the
selection's result: it is shown next to it (client/publication.py `late_endings`). The order is pure (`order_section`); `collect_sections` reads the read model.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from client.api import RefusedError
from client.csvio import csv_cell
from domain.codes import AdminDecision, FinalCode, SkdCode, Terminal
from domain.config import RoundConfig
from domain.local_time import JAKARTA, reading
from domain.messages import FormasiResult
from domain.ranking import FinalEntry, final_rank_key
from domain.skd import SkdScores, skd_rank_key


class AnnouncementStage(StrEnum):
    """The announcements that can be published."""

    ADMIN = "admin"
    SKD = "skd"
    FINAL = "final"


class AnnouncementNotReady(RefusedError):
    """The stage has no result yet, or not for everyone: names what is missing."""


class AnnouncementError(RefusedError):
    """The read model contradicts itself (a code without its scores): names the applicant."""


# Endings that can come at any stage, even after an announcement (DOMAIN.md: DIS even after NIP).
LATE_ENDINGS = (Terminal.DISQUALIFIED.value, Terminal.WITHDRAWN.value)

STAGE_TITLES = {
    AnnouncementStage.ADMIN: "Pengumuman Hasil Seleksi Administrasi",
    AnnouncementStage.SKD: "Pengumuman Hasil Seleksi Kompetensi Dasar (SKD)",
    AnnouncementStage.FINAL: "Pengumuman Hasil Akhir Seleksi (Integrasi Nilai SKD dan SKB)",
}

# (key of a published row, Indonesian header) per stage, in the order printed.
COLUMNS: dict[AnnouncementStage, tuple[tuple[str, str], ...]] = {
    AnnouncementStage.ADMIN: (
        ("no", "No"),
        ("applicant_id", "Nomor Peserta"),
        ("name", "Nama"),
        ("code", "Hasil"),
    ),
    AnnouncementStage.SKD: (
        ("no", "No"),
        ("rank", "Peringkat"),
        ("applicant_id", "Nomor Peserta"),
        ("name", "Nama"),
        ("twk", "TWK"),
        ("tiu", "TIU"),
        ("tkp", "TKP"),
        ("skd_total", "Total SKD"),
        ("code", "Kode"),
    ),
    AnnouncementStage.FINAL: (
        ("no", "No"),
        ("rank", "Peringkat"),
        ("applicant_id", "Nomor Peserta"),
        ("name", "Nama"),
        ("from_formasi", "Formasi Asal"),
        ("skd_total", "Nilai SKD"),
        ("skb_score", "Nilai SKB"),
        ("final_score", "Nilai Akhir"),
        ("code", "Kode"),
    ),
}
NUMERIC_COLUMNS = frozenset(
    {"no", "rank", "twk", "tiu", "tkp", "skd_total", "skb_score", "final_score"}
)


def legend(stage: AnnouncementStage, cut_multiplier: int = 3) -> list[tuple[str, str]]:
    """The codes a stage's announcement uses, with their meaning in Indonesian."""
    late = [
        ("DIS", "Diskualifikasi"),
        ("APS", "Mengundurkan diri (atas permintaan sendiri)"),
    ]
    if stage == AnnouncementStage.ADMIN:
        return [
            ("MS", "Memenuhi Syarat administrasi: mengikuti SKD"),
            ("TMS", "Tidak Memenuhi Syarat administrasi"),
            *late,
        ]
    if stage == AnnouncementStage.SKD:
        return [
            (
                "P/L",
                "Lulus nilai ambang batas dan masuk peringkat "
                f"{cut_multiplier} × jumlah kebutuhan formasi: mengikuti SKB",
            ),
            ("P", "Lulus nilai ambang batas, di luar peringkat untuk SKB"),
            ("T/L", "Tidak Lulus nilai ambang batas kategori formasi"),
            ("TH", "Tidak Hadir"),
            *late,
            (
                "TWK, TIU, TKP",
                "Tes Wawasan Kebangsaan, Tes Intelegensia Umum, Tes Karakteristik Pribadi",
            ),
        ]
    return [
        ("P/L", "Lulus: mengisi kebutuhan formasi yang dilamar"),
        ("P/L-2", "Lulus optimalisasi: mengisi kebutuhan formasi lain (kolom Formasi Asal)"),
        ("TL", "Tidak Lulus: di luar jumlah kebutuhan formasi"),
        ("TMS-SKB", "Tidak Memenuhi Syarat pada komponen SKB yang menggugurkan"),
        ("TH", "Tidak Hadir pada SKB"),
        *late,
    ]


# --- what one applicant's read-model row says ----------------------------------------------------


@dataclass(frozen=True)
class ApplicantResult:
    """One applicant as the read model has them when an announcement is made."""

    applicant_id: str
    name: str
    formasi_code: str
    admin: str | None = None
    skd_code: str | None = None
    scores: SkdScores | None = None
    skb_score: str | None = None
    final_score: str | None = None
    final_code: str | None = None
    placed_formasi: str | None = None
    terminal: str | None = None

    @property
    def ended_late(self) -> bool:
        """Disqualified or withdrawn: endings that can come at any stage."""
        return self.terminal in LATE_ENDINGS


def stage_code(stage: AnnouncementStage, a: ApplicantResult) -> str | None:
    """The stage's own result of the applicant (None: no result of this stage)."""
    if stage == AnnouncementStage.ADMIN:
        return a.admin
    if stage == AnnouncementStage.SKD:
        return a.skd_code
    return a.final_code


def listed(stage: AnnouncementStage, a: ApplicantResult) -> bool:
    """Whether the applicant belongs on the stage's announcement."""
    if stage_code(stage, a) is not None:
        return True
    if not a.ended_late:
        return False
    if stage == AnnouncementStage.ADMIN:
        return True
    if stage == AnnouncementStage.SKD:
        return a.admin == AdminDecision.MS.value
    return a.skd_code == SkdCode.PASSED_TO_SKB.value


def pending(stage: AnnouncementStage, a: ApplicantResult) -> bool:
    """Whether the applicant is still waiting for a result of the stage."""
    if a.terminal is not None:
        return False
    if stage == AnnouncementStage.ADMIN:
        return a.admin is None
    if stage == AnnouncementStage.SKD:
        return a.admin == AdminDecision.MS.value and a.skd_code is None
    return a.skd_code == SkdCode.PASSED_TO_SKB.value and a.final_code is None


def published_code(stage: AnnouncementStage, a: ApplicantResult) -> str:
    """The code printed: DIS or APS when the applicant ended so, else the stage's result."""
    if a.ended_late:
        return str(a.terminal)
    code = stage_code(stage, a)
    assert code is not None
    return code


# --- the official order (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """One applicant in their place on an announcement: the code printed and the rank, if any."""

    result: ApplicantResult
    code: str
    rank: int | None = None


_SKD_GROUPS = {
    SkdCode.PASSED_TO_SKB.value: 0,
    SkdCode.PASSED.value: 1,
    SkdCode.FAILED.value: 2,
    SkdCode.ABSENT.value: 3,
}
_FINAL_GROUPS = {
    FinalCode.PASSED.value: 0,
    FinalCode.PASSED_OPTIMALISASI.value: 1,
    FinalCode.NOT_PASSED.value: 2,
    FinalCode.GATE_FAILED.value: 3,
    FinalCode.ABSENT.value: 4,
}
_LATE_GROUPS = {code: 10 + i for i, code in enumerate(LATE_ENDINGS)}


def _skd_order(results: Iterable[ApplicantResult]) -> list[Placed]:
    def key(p: Placed) -> tuple:
        group = _SKD_GROUPS.get(p.code, _LATE_GROUPS.get(p.code, 99))
        scores = p.result.scores
        ranked = group <= 2 and scores is not None
        by_key = tuple(-part for part in skd_rank_key(scores)) if ranked and scores else ()
        return (group, by_key, p.result.applicant_id)

    placed = sorted((Placed(a, published_code(AnnouncementStage.SKD, a)) for a in results), key=key)
    for p in placed:
        if (
            p.code in (SkdCode.PASSED_TO_SKB, SkdCode.PASSED, SkdCode.FAILED)
            and p.result.scores is None
        ):
            raise AnnouncementError(
                f"applicant {p.result.applicant_id} has SKD code {p.code} but no recorded SKD "
                "scores in the read model"
            )
    # Rank among those who passed the threshold (P/L and P); equal keys share a rank.
    out: list[Placed] = []
    rank, previous, position = 0, None, 0
    for p in placed:
        if p.code in (SkdCode.PASSED_TO_SKB, SkdCode.PASSED):
            position += 1
            assert p.result.scores is not None
            k = skd_rank_key(p.result.scores)
            if k != previous:
                rank, previous = position, k
            out.append(Placed(p.result, p.code, rank))
        else:
            out.append(p)
    return out


def _final_order(
    formasi_code: str,
    results: Iterable[ApplicantResult],
    standings: Mapping[str, FormasiResult],
) -> list[Placed]:
    entries: dict[str, FinalEntry] = {
        e.applicant_id: e for r in standings.values() for e in r.candidates
    }
    standing = standings.get(formasi_code)
    winners = {a: i for i, a in enumerate(standing.winners)} if standing else {}
    seats = len(winners)
    candidates = sorted(standing.candidates, key=final_rank_key) if standing else []
    lost = {e.applicant_id: seats + i for i, e in enumerate(candidates)}

    def place(a: ApplicantResult) -> Placed:
        code = published_code(AnnouncementStage.FINAL, a)
        if code == FinalCode.PASSED and a.applicant_id not in winners:
            raise AnnouncementError(
                f"applicant {a.applicant_id} is P/L but not among the winners formasi "
                f"{formasi_code} reported to the round"
            )
        if code == FinalCode.NOT_PASSED and a.applicant_id not in lost:
            raise AnnouncementError(
                f"applicant {a.applicant_id} is TL but not among the ranked candidates formasi "
                f"{formasi_code} reported to the round"
            )
        if code == FinalCode.PASSED_OPTIMALISASI and a.applicant_id not in entries:
            raise AnnouncementError(
                f"applicant {a.applicant_id} is P/L-2 in formasi {formasi_code} but no formasi "
                "reported them among its ranked candidates"
            )
        rank = winners.get(a.applicant_id) if code == FinalCode.PASSED else None
        rank = lost.get(a.applicant_id) if code == FinalCode.NOT_PASSED else rank
        return Placed(a, code, None if rank is None else rank + 1)

    def key(p: Placed) -> tuple:
        group = _FINAL_GROUPS.get(p.code, _LATE_GROUPS.get(p.code, 99))
        if p.code == FinalCode.PASSED_OPTIMALISASI:
            return (group, final_rank_key(entries[p.result.applicant_id]))
        if p.rank is not None:
            return (group, (p.rank,))
        return (group, (p.result.applicant_id,))

    return sorted((place(a) for a in results), key=key)


def section_of(stage: AnnouncementStage, a: ApplicantResult) -> str:
    """The formasi under which the applicant is listed: a P/L-2 under the formasi it fills."""
    if (
        stage == AnnouncementStage.FINAL
        and published_code(stage, a) == FinalCode.PASSED_OPTIMALISASI
        and a.placed_formasi
    ):
        return a.placed_formasi
    return a.formasi_code


def order_section(
    stage: AnnouncementStage,
    formasi_code: str,
    results: Sequence[ApplicantResult],
    standings: Mapping[str, FormasiResult] | None = None,
) -> list[Placed]:
    """The applicants listed under one formasi, in the official order of the stage.

    `results` are the applicants listed under `formasi_code` (`section_of`); `standings` (final
    only) are the formasi's final rankings as they reported them to the round (RoundState's
    `formasi_results`): the winners in rank order and the candidates who lost on rank."""
    if stage == AnnouncementStage.ADMIN:
        return [
            Placed(a, published_code(stage, a))
            for a in sorted(results, key=lambda a: a.applicant_id)
        ]
    if stage == AnnouncementStage.SKD:
        return _skd_order(results)
    return _final_order(formasi_code, results, standings or {})


# --- reading the read model ----------------------------------------------------------------------

_ROWS_SQL = """
SELECT a.applicant_id, a.name, a.formasi_code, a.admin, a.skd_code, a.skd_total,
       a.skb_score, a.final_score, a.final_code, a.placed_formasi,
       -- a DIS recorded after the journey ended is the applicant's code from then on
       coalesce((SELECT v.code FROM revocations v WHERE v.round_id = a.round_id
                   AND v.applicant_id = a.applicant_id AND v.code = 'DIS' LIMIT 1),
                a.terminal) AS terminal,
       coalesce((SELECT jsonb_agg(r.content ORDER BY r.report_id) FROM stage_reports r
                 WHERE r.round_id = a.round_id AND r.applicant_id = a.applicant_id
                   AND r.kind = 'skd'), '[]'::jsonb) AS skd_reports
FROM applicants a
WHERE a.round_id = $1
"""


def _scores(applicant_id: str, total: int | None, reports: list[dict]) -> SkdScores | None:
    """The SKD scores the applicant's result counts: the accepted report whose total is the
    recorded total (a report that arrived after the close is accepted but not counted)."""
    if total is None:
        return None
    for content in reports:
        scores = SkdScores(twk=content["twk"], tiu=content["tiu"], tkp=content["tkp"])
        if scores.total == total:
            return scores
    raise AnnouncementError(
        f"applicant {applicant_id} has SKD total {total} but no recorded SKD report adds up to it"
    )


def _text(value) -> str | None:
    return None if value is None else str(value)


async def read_results(conn: asyncpg.Connection, round_id: str) -> list[ApplicantResult]:
    """Every applicant of the round as the read model has them, with their SKD subtest scores."""
    out = []
    for r in await conn.fetch(_ROWS_SQL, round_id):
        reports = r["skd_reports"]
        reports = json.loads(reports) if isinstance(reports, str) else reports
        out.append(
            ApplicantResult(
                applicant_id=r["applicant_id"],
                name=r["name"],
                formasi_code=r["formasi_code"],
                admin=r["admin"],
                skd_code=r["skd_code"],
                scores=_scores(r["applicant_id"], r["skd_total"], reports),
                skb_score=_text(r["skb_score"]),
                final_score=_text(r["final_score"]),
                final_code=r["final_code"],
                placed_formasi=r["placed_formasi"],
                terminal=r["terminal"],
            )
        )
    return out


_MISSING = {
    AnnouncementStage.ADMIN: "an administrative result (MS/TMS)",
    AnnouncementStage.SKD: "an SKD result",
    AnnouncementStage.FINAL: "a final result",
}


def readiness_problem(
    stage: AnnouncementStage, round_id: str, results: Sequence[ApplicantResult]
) -> str | None:
    """Why the stage cannot be announced yet, naming what is missing; None when it can."""
    waiting = Counter(a.formasi_code for a in results if pending(stage, a))
    if not any(listed(stage, a) for a in results):
        return (
            f"round {round_id} has no {stage.value} result yet: no applicant has "
            f"{_MISSING[stage]} (is the {stage.value} window still open?)"
        )
    if waiting:
        per = ", ".join(f"{n} in formasi {code}" for code, n in sorted(waiting.items()))
        return (
            f"round {round_id}: {sum(waiting.values())} applicants still have no "
            f"{stage.value} result ({per}); wait until every result is announced and written"
        )
    return None


def sections(
    stage: AnnouncementStage,
    config: RoundConfig,
    results: Sequence[ApplicantResult],
    standings: Mapping[str, FormasiResult] | None = None,
) -> list[tuple[str, list[Placed]]]:
    """Every formasi of the round (in the round file's order) with its listed applicants in order."""
    by_formasi: dict[str, list[ApplicantResult]] = {f.code: [] for f in config.formasi}
    for a in results:
        if listed(stage, a):
            by_formasi.setdefault(section_of(stage, a), []).append(a)
    return [
        (code, order_section(stage, code, rows, standings)) for code, rows in by_formasi.items()
    ]


# --- how it reads: times in the round's zone and spreadsheet-safe CSV ---------------------------

_MONTHS = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)


def waktu(moment: datetime, zone: str = JAKARTA) -> str:
    """A moment as the public reads it, in the round's zone `zone`: `2 Desember 2026, 14.05 WIT`."""
    local = reading(moment, zone)
    day = local.day
    return (
        f"{day.day} {_MONTHS[day.month - 1]} {day.year}, {local.hour}.{local.minute} {local.zone}"
    )


def wib(moment: datetime) -> str:
    """A moment in WIB (what is about no one round, the auditor's tables): `2 Desember 2026,
    14.05 WIB`."""
    return waktu(moment, JAKARTA)


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """CSV text (UTF-8 with CRLF line ends, as spreadsheets expect), every cell guarded."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()
