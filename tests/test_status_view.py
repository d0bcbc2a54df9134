"""The status views (client/status.py) as pure functions: windows, TMT moves, reasons, what an
applicant may do now."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from client.status import (
    batas,
    build_applicant_view,
    build_round_view,
    catatan_waktu,
    decision_view,
    reason_text,
    waktu,
    wib,
)
from domain.codes import AdminDecision, FinalCode, RoundPhase, Stage, Terminal
from domain.messages import Decision, JourneyState, OptimalisasiOffer, RoundState
from tests.roundkit import compressed_round, formasi

T0 = datetime(2027, 8, 1, 1, 0, tzinfo=UTC)  # 08.00 WIB
SECONDS = {
    "registration": (0, 100),
    "administration": (150, 200),
    "skd": (200, 300),
    "skb": (300, 400),
    "filing": (400, 500),
    "latsar": (500, 600),
}
CONFIG = compressed_round(
    "r-view",
    [formasi("F1", 1), formasi("F2", 1, jabatan="Ahli Pertama - Statistisi")],
    SECONDS,
    appeal_window=30,
    answer_within=50,
    t0=T0,
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def decided(seconds: float, stage: str, outcome: str, actor: str, **inputs) -> Decision:
    return Decision(at=at(seconds), stage=stage, outcome=outcome, actor=actor, input=inputs)


def round_state(phase: str, closed: list[str], decisions: list[Decision], **changes) -> RoundState:
    return RoundState(
        round_id=CONFIG.round_id,
        phase=phase,
        schedule=CONFIG.schedule.model_copy(update=changes),
        closed=closed,
        formasi_results={},
        offers={},
        decisions=decisions,
    )


@pytest.mark.parametrize(
    ("deadline", "shown"),
    [
        (datetime(2027, 8, 23, 17, tzinfo=UTC), "23 Agu 2027 24.00 WIB"),
        (datetime(2027, 12, 31, 17, tzinfo=UTC), "31 Des 2027 24.00 WIB"),
        (datetime(2027, 8, 20, 16, 59, 59, tzinfo=UTC), "20 Agu 2027 23.59 WIB"),
        (datetime(2027, 8, 23, 15, tzinfo=UTC), "23 Agu 2027 22.00 WIB"),
    ],
)
def test_a_deadline_at_midnight_shows_the_day_still_in_it(deadline, shown):
    assert batas(deadline) == shown


@pytest.mark.parametrize(
    ("zone", "deadline", "shown"),
    [
        ("Asia/Jayapura", datetime(2027, 8, 23, 15, tzinfo=UTC), "23 Agu 2027 24.00 WIT"),
        ("Asia/Makassar", datetime(2027, 8, 23, 16, tzinfo=UTC), "23 Agu 2027 24.00 WITA"),
        ("Asia/Jayapura", datetime(2027, 12, 31, 15, tzinfo=UTC), "31 Des 2027 24.00 WIT"),
        ("Asia/Makassar", datetime(2027, 9, 30, 16, tzinfo=UTC), "30 Sep 2027 24.00 WITA"),
        ("Asia/Jayapura", datetime(2027, 8, 23, 17, tzinfo=UTC), "24 Agu 2027 02.00 WIT"),
    ],
    ids=["WIT", "WITA", "WIT at the year's end", "WITA at a month's end", "24:00 WIB in WIT"],
)
def test_a_deadline_reads_in_the_rounds_zone(zone, deadline, shown):
    assert batas(deadline, zone) == shown


def test_wib_shows_jakarta_time_with_indonesian_month():
    assert wib(datetime(2027, 8, 20, 16, 59, tzinfo=UTC)) == "20 Agu 2027 23.59 WIB"


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Asia/Jakarta", "20 Agu 2027 23.59 WIB"),
        ("Asia/Makassar", "21 Agu 2027 00.59 WITA"),
        ("Asia/Jayapura", "21 Agu 2027 01.59 WIT"),
    ],
)
def test_a_moment_reads_in_the_rounds_zone(zone, shown):
    assert waktu(datetime(2027, 8, 20, 16, 59, tzinfo=UTC), zone) == shown


def test_a_page_names_the_zone_of_its_times():
    assert catatan_waktu("Asia/Jayapura") == (
        "Waktu ditampilkan dalam WIT (UTC+9), zona waktu seleksi ini."
    )
    assert catatan_waktu(None) == "Waktu ditampilkan dalam WIB (UTC+7)."


def test_a_window_shows_its_extension_and_one_closed_early_says_so():
    registration = CONFIG.schedule.registration.model_copy(update={"closes": at(150)})
    state = round_state(
        RoundPhase.SKD,
        ["registration", "administration"],
        [
            decided(
                50,
                "registration",
                "registration extended",
                "panitia",
                new_closes=at(150).isoformat(),
                reason="gangguan",
            ),
            decided(150, "registration", "window closed", "schedule", early=None),
            decided(
                160,
                "administration",
                "administration closed early",
                "panitia",
                window="administration",
                reason="selesai",
            ),
            decided(160, "administration", "window closed", "schedule", early="selesai"),
        ],
        registration=registration,
    )
    view = build_round_view(CONFIG, state, at(170))
    reg, adm, skd, skb = (view.window(n) for n in ("registration", "administration", "skd", "skb"))
    assert (reg.state, reg.closes, reg.original_closes) == ("ditutup", at(150), at(100))
    assert [(e.new_closes, e.reason, e.by) for e in reg.extensions] == [
        (at(150), "gangguan", "panitia")
    ]
    assert (adm.state, adm.closed_early, adm.closed_early_reason) == ("ditutup", True, "selesai")
    assert adm.state_text().startswith("ditutup lebih awal")
    assert skd.state == "dibuka" and skb.state == "belum dibuka"


def test_a_round_that_stopped_offering_says_so_with_the_seats_it_left():
    stop = decided(
        410,
        "optimalisasi",
        "offers stopped",
        "round",
        reason="the round's history budget: no more offers are made in this round",
        history_length=39_990,
        history_budget=40_000,
        signals_received=4_100,
        offers_made=4_020,
        seats_not_offered={"F1": 7, "F2": 2},
    )
    state = round_state(RoundPhase.FILING, [], [stop])
    stopped = build_round_view(CONFIG, state, at(450)).offers_stopped
    assert stopped is not None
    assert (stopped.at, stopped.history_length, stopped.offers_made) == (at(410), 39_990, 4_020)
    assert stopped.seats_not_offered == {"F1": 7, "F2": 2}
    assert (
        build_round_view(CONFIG, round_state(RoundPhase.FILING, [], []), at(450)).offers_stopped
        is None
    )


def test_offers_the_round_counted_as_unanswered_are_listed_with_their_deadline():
    deadline = at(400)
    unanswered = [
        decided(
            401,
            "optimalisasi",
            "offer unanswered",
            "round",
            offer_id=f"{CONFIG.round_id}/offer/{a}/F2",
            deadline=deadline.isoformat(),
            reason="no answer from the journey by the latest offer's answer_by",
        )
        for a in ("A0001", "A0002")
    ]
    declined = decided(390, "optimalisasi", "allocated", "round", offers=[])
    state = round_state(RoundPhase.OPTIMALISASI, [], [declined, *unanswered])
    view = build_round_view(CONFIG, state, at(450))
    assert [(u.offer_id, u.deadline, u.at) for u in view.offers_unanswered] == [
        (f"{CONFIG.round_id}/offer/A0001/F2", deadline, at(401)),
        (f"{CONFIG.round_id}/offer/A0002/F2", deadline, at(401)),
    ]
    quiet = round_state(RoundPhase.OPTIMALISASI, [], [declined])
    assert build_round_view(CONFIG, quiet, at(450)).offers_unanswered == []


def test_tmt_moves_chain_from_the_original_tmt():
    state = round_state(
        RoundPhase.FILING,
        [],
        [
            decided(
                1, "filing", "TMT moved to 2027-04-01", "panitia", new_tmt="2027-04-01", reason="a"
            ),
            decided(
                2, "filing", "TMT moved to 2027-05-01", "panitia", new_tmt="2027-05-01", reason="b"
            ),
        ],
        tmt=date(2027, 5, 1),
    )
    view = build_round_view(CONFIG, state, at(450))
    assert [(m.from_tmt, m.to_tmt) for m in view.tmt_moves] == [
        (date(2027, 3, 1), date(2027, 4, 1)),
        (date(2027, 4, 1), date(2027, 5, 1)),
    ]


def journey(**facts) -> JourneyState:
    return JourneyState(round_id=CONFIG.round_id, applicant_id="A1", formasi_code="F1", **facts)


def view_at(seconds: float, j: JourneyState, phase: str = RoundPhase.SKD):
    now = at(seconds)
    return build_applicant_view(
        j, CONFIG, build_round_view(CONFIG, round_state(phase, [], []), now), now
    )


def test_a_tms_may_be_appealed_within_its_window_and_not_after():
    j = journey(stage=Stage.ADMIN_APPEAL, admin=AdminDecision.TMS, admin_announced_at=at(200))
    inside = view_at(229, j)
    assert inside.can_appeal
    assert [(d.label, d.at) for d in inside.deadlines][0] == ("Batas pengajuan sanggah", at(230))
    assert not view_at(230, j).can_appeal


def test_an_appeal_filed_is_not_offered_again_and_its_answer_is_awaited():
    j = journey(
        stage=Stage.ADMIN_APPEAL,
        admin=AdminDecision.TMS,
        admin_announced_at=at(200),
        appeal_filed_at=at(210),
    )
    view = view_at(211, j)
    assert not view.can_appeal
    assert ("Batas jawaban sanggah oleh instansi", at(260)) in [
        (d.label, d.at) for d in view.deadlines
    ]


def test_the_final_result_may_be_appealed_within_its_window_until_the_ranking_is_confirmed():
    j = journey(
        stage=Stage.FINAL_APPEAL, final_code=FinalCode.NOT_PASSED, final_announced_at=at(420)
    )
    inside = view_at(449, j, RoundPhase.FINAL_APPEAL)
    assert inside.can_appeal
    assert ("Batas pengajuan sanggah hasil akhir", at(450)) in [
        (d.label, d.at) for d in inside.deadlines
    ]
    assert not view_at(450, j, RoundPhase.FINAL_APPEAL).can_appeal
    filed = j.model_copy(update={"final_appeal_filed_at": at(430)})
    view = view_at(431, filed, RoundPhase.FINAL_APPEAL)
    assert not view.can_appeal
    assert ("Batas jawaban sanggah hasil akhir oleh instansi", at(480)) in [
        (d.label, d.at) for d in view.deadlines
    ]
    confirmed = j.model_copy(update={"final_confirmed": True})
    assert not view_at(431, confirmed, RoundPhase.FINAL_APPEAL).can_appeal


def test_an_offer_held_is_pending_until_answered_or_past_its_deadline():
    offer = OptimalisasiOffer(offer_id="r-view/offer/A1/F2", to_formasi="F2", answer_by=at(420))
    j = journey(stage=Stage.OPTIMALISASI, final_code=FinalCode.NOT_PASSED, offer=offer)
    pending = view_at(410, j, RoundPhase.OPTIMALISASI).pending_offer
    assert pending is not None and (pending.to_formasi, pending.to_jabatan) == (
        "F2",
        "Ahli Pertama - Statistisi",
    )
    assert view_at(420, j, RoundPhase.OPTIMALISASI).pending_offer is None
    answered = j.model_copy(update={"offer_answered": True})
    assert view_at(410, answered, RoundPhase.OPTIMALISASI).pending_offer is None


def test_an_ended_journey_can_do_nothing_and_a_winner_is_warned_of_the_sanction():
    ended = journey(
        stage=Stage.ENDED,
        terminal=Terminal.NOT_PASSED,
        terminal_reason="TL: declined the optimalisasi offer",
    )
    view = view_at(500, ended, RoundPhase.FILING)
    assert not (view.can_withdraw or view.can_appeal or view.pending_offer or view.deadlines)
    assert view.terminal_text.startswith("Tidak lulus (TL)")
    winner = journey(stage=Stage.FILING, final_code=FinalCode.PASSED)
    assert view_at(450, winner, RoundPhase.FILING).withdrawal_sanction_rounds == 2


def test_the_current_window_close_is_a_deadline_while_it_is_open():
    view = view_at(250, journey(stage=Stage.SKD))
    assert [(d.label, d.at) for d in view.deadlines] == [("Batas pelaksanaan SKD", at(300))]


def test_a_tms_names_each_failing_document_with_its_reason():
    d = decided(
        200,
        Stage.ADMIN_CHECK,
        "TMS",
        "bkpsdm-verifikator",
        report_id="x",
        reported_by="bkpsdm-verifikator",
        findings=[
            {"document": "ijazah", "reason": "tidak terbaca"},
            {"document": "KTP", "reason": "kedaluwarsa"},
        ],
    )
    view = decision_view(d)
    assert [(x.item, x.reason) for x in view.details] == [
        ("ijazah", "tidak terbaca"),
        ("KTP", "kedaluwarsa"),
    ]
    assert view.stage_label == "Seleksi administrasi" and "TMS" in view.reason


def test_every_ending_the_journey_writes_reads_in_indonesian():
    for reason in (
        "TMS; no appeal within the appeal window",
        "TMS; appeal rejected: dokumen tetap tidak sah",
        "TH: did not sit the SKD",
        "SKB gate failed: health TMS",
        "filing incomplete: DRH",
        "APS: withdrew; barred from the next 2 rounds",
        "PNS: passed Latsar; probation served to 2029-03-01",
    ):
        assert reason_text(reason) != reason
    assert reason_text("APS: withdrew; barred from the next 2 rounds").count("2 seleksi") == 1
    assert reason_text("PNS: passed Latsar; probation served to 2029-03-01") == (
        "Masa percobaan satu tahun sejak TMT selesai pada 2029-03-01; diangkat menjadi PNS."
    )


def test_a_passing_latsar_judgement_does_not_say_pns_already_and_the_year_s_end_does():
    """Under the year of probation the judgement comes first and the appointment at the year's
    end: the trail reads the judgement as meeting the conditions, then the appointment."""
    judged = decision_view(
        decided(900, Stage.LATSAR, "PNS", "lan", report_id="l", passed=True, healthy=True)
    )
    assert judged.reason == "Lulus Latsar dan memenuhi syarat kesehatan untuk diangkat menjadi PNS."
    served = decision_view(
        decided(
            1000,
            Stage.LATSAR,
            "PNS",
            "system",
            reason="PNS: passed Latsar; probation served to 2029-03-01",
        )
    )
    assert served.reason.startswith("Masa percobaan satu tahun sejak TMT selesai pada 2029-03-01")


def test_a_dis_after_pns_shows_as_the_standing_with_its_reason_and_in_the_trail():
    from domain.aftermath import AftermathState, Revocation

    pns = journey(
        stage=Stage.ENDED,
        terminal=Terminal.PNS,
        nip="199805172027031001",
        decisions=[decided(500, "latsar", "PNS", "lan", passed=True)],
    )
    after = AftermathState(
        round_id=CONFIG.round_id,
        applicant_id="A1",
        ready=True,
        journey_terminal=Terminal.PNS,
        revocations=[
            Revocation(
                code="DIS",
                at=at(900),
                journey_terminal=Terminal.PNS,
                reported_by="panitia-test",
                report_id="dis-1",
                reason="joki pada SKD",
            )
        ],
        decisions=[
            decided(
                900, "ended", "DIS", "panitia-test", reason="joki pada SKD", journey_terminal="PNS"
            )
        ],
    )
    now = at(1000)
    view = build_applicant_view(
        pns, CONFIG, build_round_view(CONFIG, round_state("closed", [], []), now), now, after
    )
    assert (view.terminal, view.standing) == (Terminal.PNS, "DIS")
    assert (view.revocations[0].label, view.revocations[0].reason) == (
        "Diskualifikasi (DIS)",
        "joki pada SKD",
    )
    assert view.decisions[-1].reason == (
        "Diskualifikasi (DIS) setelah seleksi berakhir (semula: Diangkat menjadi PNS); hasil "
        "seleksi dibatalkan: joki pada SKD"
    )
    without = build_applicant_view(
        pns, CONFIG, build_round_view(CONFIG, round_state("closed", [], []), now), now
    )
    assert (without.standing, without.revocations) == ("PNS", [])


def test_scores_are_written_with_a_decimal_comma_not_a_thousands_point():
    """In Indonesian a point separates thousands: "81.500" would read as 81 500."""
    skb = decided(350, Stage.SKB, "completed", "panel", skb_score="81.500", final_score="80.900")
    assert decision_view(skb).reason == "SKB selesai. Nilai SKB 81,500, nilai akhir 80,900."
    for outcome in (FinalCode.PASSED, "TL"):
        final = decided(410, Stage.FINAL_RANKING, outcome, "round", final_score="80.900")
        assert "nilai akhir 80,900" in decision_view(final).reason, outcome
