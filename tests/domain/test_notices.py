"""What a notification says: the outcome once, every failing document's reason, in Indonesian
by default and in English on request. Rendered from the facts a journey records."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.administration import DocumentFinding
from domain.codes import Terminal
from domain.notices import (
    EndCause,
    Language,
    Notice,
    admin_result,
    appointed,
    ended,
    final_result,
    latsar_passed,
    optimalisasi_seat,
    render,
    skd_result,
)

FINDINGS = [
    DocumentFinding(document="ijazah", reason="belum dilegalisasi"),
    DocumentFinding(document="transkrip nilai", reason="IPK tidak terbaca"),
    DocumentFinding(document="surat lamaran", reason="tidak ditandatangani"),
]
APPEAL_UNTIL = datetime(2027, 8, 20, 16, 59, tzinfo=UTC)  # 23.59 WIB

# Every reason a journey records when it ends (workflows/applicant.py, domain/sheet.py), with
# its terminal outcome and the free text the message must keep.
RECORDED_ENDINGS = [
    (Terminal.TMS, "registration refused: age 36 is above 35", "age 36 is above 35"),
    (Terminal.TMS, "TMS; no appeal within the appeal window", ""),
    (Terminal.TMS, "TMS; the appeal was not answered within its time", ""),
    (Terminal.TMS, "TMS; appeal rejected: ijazah tetap tidak sah", "ijazah tetap tidak sah"),
    (Terminal.ABSENT, "TH: did not sit the SKD", ""),
    (Terminal.SKD_FAILED, "T/L: below the SKD threshold of the category", ""),
    (Terminal.SKD_PASSED_OUTSIDE_CUT, "P: passed the threshold, outside the SKB cut", ""),
    (Terminal.ABSENT, "TH: no SKB CAT score when the SKB window closed", ""),
    (Terminal.SKB_GATE_FAILED, "SKB incomplete: praktik not reported", "praktik"),
    (Terminal.SKB_GATE_FAILED, "SKB gate failed: health: TMS", "health: TMS"),
    (Terminal.NOT_PASSED, "TL: lost on rank; no optimalisasi seat", ""),
    (Terminal.NOT_PASSED, "TL: declined the optimalisasi offer", ""),
    (Terminal.FILING_INCOMPLETE, "filing incomplete: DRH, SKCK", "DRH, SKCK"),
    (Terminal.PNS, "PNS: passed Latsar", ""),
    (Terminal.PNS, "PNS: passed Latsar; probation served to 2029-03-01", "2029"),
    (Terminal.DISMISSED, "dismissed: Latsar or health not passed", ""),
    (Terminal.DISQUALIFIED, "DIS: joki pada SKD", "joki pada SKD"),
    (Terminal.WITHDRAWN, "APS: withdrew; barred from the next 2 rounds", "2"),
    (Terminal.WITHDRAWN, "APS: withdrew", ""),
]


@pytest.mark.parametrize("language", list(Language))
def test_a_tms_lists_every_failing_document_with_its_reason(language):
    text = render(admin_result("TMS", FINDINGS, APPEAL_UNTIL), language)
    for f in FINDINGS:
        assert f"{f.document}: {f.reason}" in text


@pytest.mark.parametrize(
    ("zone", "until", "id_text", "en_text"),
    [
        (
            "Asia/Jakarta",
            datetime(2027, 8, 23, 17, tzinfo=UTC),
            "23 Agu 2027 24.00 WIB",
            "23 Aug 2027 24:00 WIB",
        ),
        (
            "Asia/Jakarta",
            datetime(2027, 8, 31, 17, tzinfo=UTC),
            "31 Agu 2027 24.00 WIB",
            "31 Aug 2027 24:00 WIB",
        ),
        (
            "Asia/Jayapura",
            datetime(2027, 8, 23, 15, tzinfo=UTC),
            "23 Agu 2027 24.00 WIT",
            "23 Aug 2027 24:00 WIT",
        ),
        (
            "Asia/Makassar",
            datetime(2027, 12, 31, 16, tzinfo=UTC),
            "31 Des 2027 24.00 WITA",
            "31 Dec 2027 24:00 WITA",
        ),
        (
            "Asia/Jakarta",
            datetime(2027, 8, 23, 15, tzinfo=UTC),
            "23 Agu 2027 22.00 WIB",
            "23 Aug 2027 22:00 WIB",
        ),
    ],
    ids=[
        "24:00 WIB",
        "24:00 WIB at a month's end",
        "24:00 WIT in a round in Papua",
        "24:00 WITA at the year's end",
        "24:00 WIT read in a WIB round is 22.00 WIB",
    ],
)
def test_a_sanggah_deadline_at_midnight_names_the_day_still_in_it(zone, until, id_text, en_text):
    # A window ending at 00:00 on the 24th is open all of the 23rd: "24 Agu 00.00" would read as
    # a day more. The round's zone is the applicant's clock.
    notice = admin_result("TMS", FINDINGS, until, timezone=zone)
    assert f"paling lambat {id_text}." in render(notice)
    assert f"until {en_text}." in render(notice, Language.EN)


def test_a_notice_of_a_wib_round_keeps_the_facts_it_recorded_before_zones():
    # A WIB round's notice dumps as before (no `timezone`); one recorded before reads in WIB.
    notice = admin_result("TMS", FINDINGS, APPEAL_UNTIL)
    assert "timezone" not in notice.model_dump()
    recorded = Notice.model_validate_json(notice.model_dump_json())
    assert "paling lambat 20 Agu 2027 23.59 WIB" in render(recorded)
    wit = admin_result("TMS", FINDINGS, APPEAL_UNTIL, timezone="Asia/Jayapura")
    assert Notice.model_validate_json(wit.model_dump_json()).timezone == "Asia/Jayapura"


def test_a_tms_says_until_when_to_appeal_in_wib():
    assert "paling lambat 20 Agu 2027 23.59 WIB" in render(
        admin_result("TMS", FINDINGS, APPEAL_UNTIL)
    )
    assert "until 20 Aug 2027 23:59 WIB" in render(
        admin_result("TMS", FINDINGS, APPEAL_UNTIL), Language.EN
    )


def test_a_tms_without_a_decision_says_none_was_reported():
    text = render(admin_result("TMS", [], APPEAL_UNTIL, not_decided=True))
    assert "tidak dilaporkan sebelum batas waktu" in text


def test_indonesian_is_the_default():
    assert render(admin_result("MS", [], None)) == (
        "Hasil seleksi administrasi: Memenuhi Syarat (MS)."
    )
    assert render(appointed("199805172027031001", date(2027, 3, 1))) == (
        "Anda diangkat sebagai CPNS dengan NIP 199805172027031001, TMT 1 Mar 2027."
    )


def test_english_on_request():
    assert render(admin_result("MS", [], None), Language.EN) == (
        "Administrative check: meets the requirements (MS)."
    )
    assert render(skd_result("P/L", 450), "en") == (
        "Your SKD result: passed, on to SKB (P/L), total score 450."
    )


@pytest.mark.parametrize(("terminal", "reason", "kept"), RECORDED_ENDINGS)
@pytest.mark.parametrize("language", list(Language))
def test_an_ending_names_its_outcome_once_and_keeps_its_free_text(terminal, reason, kept, language):
    notice = ended(terminal.value, reason)
    text = render(notice, language)
    assert notice.cause != EndCause.OTHER  # every recorded reason is known
    assert reason not in text  # the recorded reason starts with its own code: never pasted
    if terminal != Terminal.DISMISSED:  # "DIBERHENTIKAN" is said in words
        assert text.count(f"({terminal.value})") + text.count(f" {terminal.value}.") == 1, text
    assert kept in text


def test_dis_and_pns_are_not_repeated():
    assert render(ended("DIS", "DIS: joki pada SKD")) == (
        "Anda didiskualifikasi (DIS) dari seleksi. Alasan: joki pada SKD."
    )
    assert render(ended("PNS", "PNS: passed Latsar")) == (
        "Selamat, Anda lulus Latsar dan diangkat menjadi PNS."
    )


def test_a_pns_after_the_probation_year_is_told_the_day_it_ended():
    reason = "PNS: passed Latsar; probation served to 2029-03-01"
    assert render(ended("PNS", reason)) == (
        "Selamat, masa percobaan Anda berakhir pada 1 Mar 2029; Anda lulus Latsar dan diangkat "
        "menjadi PNS."
    )
    assert render(ended("PNS", reason), Language.EN) == (
        "Congratulations: your probation ended on 1 Mar 2029; you passed Latsar and are "
        "appointed PNS."
    )
    # Judged at the report: told that the appointment comes with the year's end, named no date.
    assert "setelah masa percobaan satu tahun sejak TMT berakhir" in render(latsar_passed())
    assert latsar_passed().outcome == "CPNS"  # not yet PNS


def test_an_unknown_reason_is_kept_without_its_code():
    text = render(ended("TL", "TL: final sanggah rejected"), Language.EN)
    assert text == "Selection ended: not passed (TL). Final sanggah rejected."
    assert render(ended("TL", "TL: final sanggah rejected")).startswith(
        "Seleksi Anda berakhir: tidak lulus (TL). Final"
    )


def test_the_final_result_names_the_formasi():
    assert render(final_result("P/L", "F1")) == "Hasil akhir seleksi: lulus (P/L) pada formasi F1."


def test_a_notice_survives_its_json_round_trip():
    notice = admin_result("TMS", FINDINGS, APPEAL_UNTIL)
    assert Notice.model_validate_json(notice.model_dump_json()) == notice


def test_a_late_taker_is_told_until_when_it_may_file_in_the_rounds_zone():
    # 17:00 UTC is 24.00 WIB of the 20th and 02.00 WIT of the 21st (patch late-taker-filing-time).
    until = datetime(2027, 8, 20, 17, 0, tzinfo=UTC)
    wib = optimalisasi_seat("F2", until)
    assert render(wib) == (
        "Anda mendapat formasi F2 melalui optimalisasi (P/L-2). Pemberkasan (DRH dan dokumen) "
        "dapat diajukan sekurang-kurangnya sampai 20 Agu 2027 24.00 WIB, atau sampai "
        "pemberkasan ditutup bila lebih akhir."
    )
    wit = optimalisasi_seat("F2", until, timezone="Asia/Jayapura")
    assert "until 21 Aug 2027 02:00 WIT at the least" in render(wit, Language.EN)
    assert Notice.model_validate_json(wit.model_dump_json()) == wit


def test_a_seat_given_without_a_time_to_file_reads_as_before():
    notice = optimalisasi_seat("F2")
    assert "file_until" not in notice.model_dump() and "timezone" not in notice.model_dump()
    assert render(notice) == "Anda mendapat formasi F2 melalui optimalisasi (P/L-2)."
