"""The official order of each announcement, against tables written from DOMAIN.md (pure)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from fractions import Fraction

import pytest

from client.announcements import (
    AnnouncementStage,
    ApplicantResult,
    csv_cell,
    readiness_problem,
    sections,
    waktu,
    wib,
)
from domain.messages import FormasiResult
from domain.ranking import FinalEntry, rank_final
from domain.skd import SkdScores
from tests.roundkit import compressed_round, formasi

WINDOWS = {
    n: (i * 10.0, i * 10.0 + 10)
    for i, n in enumerate(["registration", "administration", "skd", "skb", "filing", "latsar"])
}
CONFIG = compressed_round(
    "ORDER-1", [formasi("F1", 2), formasi("F2", 4, jabatan="Arsiparis")], WINDOWS
)


def _order(stage, results, standings=None) -> dict[str, list[tuple]]:
    shuffled = list(results)
    random.Random(7).shuffle(shuffled)  # the order never depends on the input's
    return {
        code: [(p.result.applicant_id, p.code, p.rank) for p in placed]
        for code, placed in sections(stage, CONFIG, shuffled, standings)
    }


def _skd(applicant_id, code, scores=None, terminal=None, formasi_code="F1"):
    return ApplicantResult(
        applicant_id=applicant_id,
        name=f"Peserta {applicant_id}",
        formasi_code=formasi_code,
        admin="MS",
        skd_code=code,
        scores=SkdScores(twk=scores[0], tiu=scores[1], tkp=scores[2]) if scores else None,
        terminal=terminal,
    )


# TWK never decides alone: with total, TKP and TIU equal, TWK is equal too (total = the sum).
SKD_TABLE = [  # id, code, (twk, tiu, tkp), terminal
    ("A01", "P/L", (100, 120, 180), None),  # 400, TKP 180, TIU 120
    ("A02", "P/L", (110, 110, 180), None),  # 400, TKP 180, TIU 110: after A01 on TIU
    ("A03", "P/L", (105, 100, 195), None),  # 400, TKP 195: first on TKP
    ("A04", "P/L", (100, 120, 180), None),  # exactly A01: shares its rank, then by number
    ("A05", "P", (90, 100, 170), None),  # 360: passed, outside the cut
    ("A06", "T/L", (60, 150, 200), None),  # 410 but TWK 60 < 65: below every P
    ("A07", "T/L", (100, 100, 100), None),
    ("A08", "TH", None, None),
    ("A00", "TH", None, None),
    ("A09", "P/L", (150, 175, 225), "DIS"),  # the best scores, but disqualified
    ("A10", None, None, "APS"),  # withdrew before the SKD result
]
SKD_EXPECTED = [
    ("A03", "P/L", 1),
    ("A01", "P/L", 2),
    ("A04", "P/L", 2),
    ("A02", "P/L", 4),
    ("A05", "P", 5),
    ("A06", "T/L", None),
    ("A07", "T/L", None),
    ("A00", "TH", None),
    ("A08", "TH", None),
    ("A09", "DIS", None),
    ("A10", "APS", None),
]


def test_skd_lists_pl_by_total_tkp_tiu_then_p_then_tl_then_th():
    results = [_skd(a, code, s, t) for a, code, s, t in SKD_TABLE]

    assert _order(AnnouncementStage.SKD, results) == {"F1": SKD_EXPECTED, "F2": []}


def _entry(applicant_id, formasi_code, final, skd, gpa=3.5, born=date(1998, 1, 1)):
    return FinalEntry(
        applicant_id=applicant_id,
        formasi_code=formasi_code,
        final_score=Fraction(final),
        skd=SkdScores(twk=skd[0], tiu=skd[1], tkp=skd[2]),
        gpa=gpa,
        birth_date=born,
    )


# F1 (2 seats): every link of the final tie chain decides one pair.
F1_ENTRIES = [
    _entry("B6", "F1", 80, (100, 120, 180)),  # 80, SKD 400
    _entry("B2", "F1", 80, (110, 120, 180)),  # 80, SKD 410: before B6 on SKD total
    _entry("B3", "F1", 80, (105, 115, 190)),  # 80, SKD 410, TKP 190: before B2 on TKP
    _entry("B4", "F1", 75, (100, 100, 180), gpa=3.5),
    _entry("B5", "F1", 75, (100, 100, 180), gpa=3.9),  # before B4 on GPA
    _entry("B1", "F1", 75, (100, 100, 180), gpa=3.9, born=date(1995, 6, 1)),  # older than B5
]
F2_ENTRIES = [
    _entry("C1", "F2", 70, (100, 100, 170)),
    _entry("C2", "F2", 72, (100, 100, 170)),
]


def _standing(code, quota, entries) -> FormasiResult:
    """The formasi's final result as FormasiSelection reports it to the round."""
    ranking = rank_final(entries, quota)
    by_id = {e.applicant_id: e for e in entries}
    candidates = [by_id[a] for a in ranking.others]
    random.Random(3).shuffle(candidates)  # ordered by the domain's key, not by the list
    return FormasiResult(
        formasi_code=code,
        vacancies=quota - len(ranking.winners),
        candidates=candidates,
        winners=ranking.winners,  # in rank order: the formasi's decision
    )


def _final(applicant_id, code, formasi_code="F1", placed=None, terminal=None):
    return ApplicantResult(
        applicant_id=applicant_id,
        name=f"Peserta {applicant_id}",
        formasi_code=formasi_code,
        admin="MS",
        skd_code="P/L",
        scores=SkdScores(twk=100, tiu=100, tkp=180),
        final_code=code,
        placed_formasi=placed,
        terminal=terminal,
    )


def test_final_lists_the_whole_tie_chain_and_each_pl2_in_the_formasi_it_fills():
    standings = {"F1": _standing("F1", 2, F1_ENTRIES), "F2": _standing("F2", 4, F2_ENTRIES)}
    results = [
        _final("B1", "P/L-2", placed="F2"),  # lost on rank in F1, took a seat left in F2
        _final("B2", "P/L", placed="F1"),
        _final("B3", "P/L", placed="F1"),
        _final("B4", "TL"),
        _final("B5", "TL"),
        _final("B6", "P/L-2", placed="F2"),
        _final("B7", "TMS-SKB"),
        _final("B8", "TH"),
        _final("B9", "TL", terminal="DIS"),
        _final("C1", "P/L", formasi_code="F2", placed="F2"),
        _final("C2", "P/L", formasi_code="F2", placed="F2"),
    ]

    assert _order(AnnouncementStage.FINAL, results, standings) == {
        "F1": [
            ("B3", "P/L", 1),
            ("B2", "P/L", 2),
            ("B5", "TL", 5),  # ranks 3 and 4 (B6, B1) fill F2
            ("B4", "TL", 6),
            ("B7", "TMS-SKB", None),
            ("B8", "TH", None),
            ("B9", "DIS", None),
        ],
        "F2": [
            ("C2", "P/L", 1),
            ("C1", "P/L", 2),
            ("B6", "P/L-2", None),  # B6 before B1: final 80 against 75
            ("B1", "P/L-2", None),
        ],
    }


def test_admin_lists_by_registration_number_whatever_the_result():
    results = [
        ApplicantResult("Z9", "Z", "F1", admin="MS"),
        ApplicantResult("A2", "A", "F1", admin="TMS"),
        ApplicantResult("M5", "M", "F1", admin="MS", terminal="DIS"),
        ApplicantResult("B7", "B", "F2", admin="MS"),
        ApplicantResult("Q1", "Q", "F2", terminal="TMS"),  # registration refused: not listed
    ]

    assert _order(AnnouncementStage.ADMIN, results) == {
        "F1": [("A2", "TMS", None), ("M5", "DIS", None), ("Z9", "MS", None)],
        "F2": [("B7", "MS", None)],
    }


def test_a_stage_without_every_result_cannot_be_announced_and_says_who_waits():
    waiting = [
        _skd("A1", "P/L", (100, 100, 180)),
        _skd("A2", None),
        _skd("A3", None, formasi_code="F2"),
        _skd("A4", None, formasi_code="F2"),
    ]
    problem = readiness_problem(AnnouncementStage.SKD, "R1", waiting)
    assert problem is not None and "3 applicants still have no skd result" in problem
    assert "1 in formasi F1, 2 in formasi F2" in problem

    nothing = readiness_problem(AnnouncementStage.FINAL, "R1", waiting)
    assert nothing is not None and "round R1 has no final result yet" in nothing

    assert readiness_problem(AnnouncementStage.SKD, "R1", waiting[:1]) is None


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+62 811", "'+62 811"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Budi = Santoso", "Budi = Santoso"),
        (410, "410"),
        (None, ""),
    ],
)
def test_a_csv_cell_never_starts_a_formula(value, cell):
    assert csv_cell(value) == cell


def test_times_are_shown_in_wib():
    assert wib(datetime(2026, 12, 31, 17, 5, tzinfo=UTC)) == "1 Januari 2027, 00.05 WIB"


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Asia/Jakarta", "31 Desember 2026, 22.05 WIB"),
        ("Asia/Makassar", "31 Desember 2026, 23.05 WITA"),
        ("Asia/Jayapura", "1 Januari 2027, 00.05 WIT"),
    ],
)
def test_times_are_shown_in_the_rounds_zone(zone, shown):
    assert waktu(datetime(2026, 12, 31, 15, 5, tzinfo=UTC), zone) == shown


def test_the_files_escape_names_and_guard_csv_cells():
    from client.publication import (
        FORMAT,
        ZERO_SHA256,
        Publication,
        document_text,
        publication_csv,
        publication_html,
        published_formasi,
    )

    hostile = [
        _skd("A1", "P/L", (100, 120, 180)),
        ApplicantResult(
            "A2",
            '=HYPERLINK("http://x")',
            "F1",
            admin="MS",
            skd_code="P",
            scores=SkdScores(twk=90, tiu=100, tkp=170),
        ),
        ApplicantResult("A3", "<b>Budi</b> & co", "F1", admin="MS", skd_code="TH", terminal="TH"),
    ]
    stage = AnnouncementStage.SKD
    p = Publication(
        format=FORMAT,
        round_id="ORDER-1",
        seq=1,
        stage=stage,
        instansi=CONFIG.instansi,
        rules_digest=CONFIG.digest(),
        published_at=datetime(2026, 12, 2, 3, 0, tzinfo=UTC),
        reported_by="panitia-test",
        prev_sha256=ZERO_SHA256,
        corrects=None,
        formasi=published_formasi(stage, CONFIG, sections(stage, CONFIG, hostile)),
    )

    page = publication_html(p)
    assert "&lt;b&gt;Budi&lt;/b&gt; &amp; co" in page and "<b>Budi" not in page
    assert "2 Desember 2026, 10.00 WIB" in page
    # A round in Papua prints its time in WIT; the signed document keeps ISO 8601 with its offset.
    assert "2 Desember 2026, 12.00 WIT" in publication_html(p, 3, "Asia/Jayapura")
    assert '"published_at":"2026-12-02T03:00:00Z"' in document_text(p).replace(" ", "")
    text = publication_csv(p)
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
