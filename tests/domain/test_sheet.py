"""The applicant's sheet: which report is taken when, what the sheet becomes, and what a close gives.

These are the rules the journey's validator and handler apply (workflows/inbox.py), tested here
without Temporal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.codes import AdminDecision, Stage, Terminal
from domain.messages import (
    AdminReport,
    AppealFiling,
    Disqualification,
    FilingReport,
    GateReport,
    OfferAnswer,
    OptimalisasiOffer,
    SkbScoreReport,
    SkdReport,
    Withdrawal,
)
from domain.sheet import (
    REPORT_RULES,
    SENDERS,
    ApplicantSheet,
    close_skb,
    close_skd,
    refusal,
    sender_refusal,
    skb_result,
    with_report,
)
from tests.roundkit import OPERATOR, compressed_round, formasi, registration
from workflows.round import journey_rules

T0 = datetime(2027, 9, 1, 8, tzinfo=UTC)
CONFIG = compressed_round(
    "SHEET",
    [formasi("F1", 1)],
    {
        n: (i * 60, i * 60 + 60)
        for i, n in enumerate(("registration", "administration", "skd", "skb", "filing", "latsar"))
    },
    t0=T0,
)
RULES = journey_rules(CONFIG)
VERIFIER, CAT, RSUD = "bkpsdm-verifikator", "cat-bkn", "rsud"
PORTAL = "sscasn"


def sheet(stage: Stage = Stage.ADMIN_CHECK, **facts) -> ApplicantSheet:
    return ApplicantSheet(
        applicant_id="A1",
        formasi_code="F1",
        registration=registration(1, "F1"),
        tmt=CONFIG.schedule.tmt,
        stage=stage,
    ).but(**facts)


def skd(twk=100, tiu=100, tkp=170, rid="skd-1") -> SkdReport:
    return SkdReport(report_id=rid, reported_by=CAT, twk=twk, tiu=tiu, tkp=tkp)


REFUSALS = [
    (
        "an administrative result twice",
        sheet(admin_report=AdminReport(report_id="a0", reported_by=VERIFIER)),
        AdminReport(report_id="a1", reported_by=VERIFIER),
        "an administrative result is already recorded for this applicant",
    ),
    (
        "SKD scores from the hospital",
        sheet(Stage.SKD),
        SkdReport(report_id="s", reported_by=RSUD, twk=100, tiu=100, tkp=170),
        "rsud is not allowed to report skd in this round",
    ),
    (
        "SKD scores before the applicant reached SKD",
        sheet(Stage.ADMIN_CHECK),
        skd(),
        "the applicant is at stage admin_check, not skd",
    ),
    (
        "SKD scores after the SKD closed",
        sheet(Stage.SKD, skd_closed=True),
        skd(),
        "the SKD window is closed",
    ),
    ("a TIU above its maximum", sheet(Stage.SKD), skd(tiu=180), "tiu=180: outside 0..175"),
    ("a TWK not a multiple of 5", sheet(Stage.SKD), skd(twk=62), "twk=62: not a multiple of 5"),
    (
        "a report to an ended journey",
        sheet(Stage.ENDED, terminal=Terminal.TMS),
        skd(),
        "the journey has ended (TMS)",
    ),
    (
        "an SKB score for a component the round does not have",
        sheet(Stage.SKB),
        SkbScoreReport(report_id="k", reported_by=CAT, component="psikotes", score=50),
        "SKB component 'psikotes' is not part of this round",
    ),
    (
        "a gate reported as a score",
        sheet(Stage.SKB),
        SkbScoreReport(report_id="k", reported_by=RSUD, component="health", score=50),
        "SKB component health is a gate component, not score",
    ),
    (
        "an appeal against an MS",
        sheet(Stage.ADMIN_CHECK, admin=AdminDecision.MS),
        AppealFiling(report_id="ap", reported_by="sscasn", reason="x"),
        "only a TMS result can be appealed",
    ),
    (
        "a withdrawal in the CAT centre's name",
        sheet(Stage.SKD),
        Withdrawal(report_id="w", reported_by=CAT),
        "cat-bkn is not allowed to report portal in this round",
    ),
    (
        "a filing complete without the drug-free certificate",
        sheet(Stage.FILING),
        FilingReport(
            report_id="f",
            reported_by=VERIFIER,
            complete=True,
            missing=["surat keterangan bebas narkoba"],
        ),
        "a filing reported complete lists 1 missing document(s) (surat keterangan bebas "
        "narkoba): report complete = false, or leave missing empty",
    ),
    (
        "a filing incomplete naming nothing missing",
        sheet(Stage.FILING),
        FilingReport(report_id="f", reported_by=VERIFIER, complete=False),
        "a filing reported incomplete names no missing document (missing is empty)",
    ),
]


@pytest.mark.parametrize(
    ("case", "before", "report", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_a_report_is_refused_with_its_reason(case, before, report, reason):
    assert refusal(before, report, RULES, T0) == reason


def test_a_filing_that_says_one_thing_is_taken_either_way():
    complete = FilingReport(report_id="f", reported_by=VERIFIER, complete=True)
    wanting = FilingReport(report_id="f", reported_by=VERIFIER, complete=False, missing=["DRH"])
    assert refusal(sheet(Stage.FILING), complete, RULES, T0) is None
    assert refusal(sheet(Stage.FILING), wanting, RULES, T0) is None
    assert refusal(sheet(Stage.FILING, filing=complete), wanting, RULES, T0) == (
        "filing is already recorded"
    )


def test_a_disqualification_is_taken_at_any_stage_even_after_the_nip():
    after_nip = sheet(Stage.LATSAR, nip="199805172027031001")
    report = Disqualification(report_id="d", reported_by="panitia-test", reason="remote access")

    assert refusal(after_nip, report, RULES, T0) is None
    assert with_report(after_nip, report).ending == report


def test_an_accepted_report_is_folded_into_a_new_sheet_and_the_old_one_is_unchanged():
    before = sheet(Stage.SKB)
    report = SkbScoreReport(report_id="c", reported_by=CAT, component="cat", score=400)

    after = with_report(before, report)

    assert after.skb_scores == {"cat": report} and before.skb_scores == {}


def test_the_skd_close_gives_the_key_of_a_passing_applicant():
    closed, key, late = close_skd(sheet(Stage.SKD, skd=skd()), RULES, T0)

    assert closed.skd_closed and key == (370, 170, 100, 100) and late == []


def test_a_score_accepted_after_the_round_closed_skd_does_not_count():
    report = skd()
    received = {report.report_id: T0 + timedelta(seconds=2)}

    closed, key, late = close_skd(sheet(Stage.SKD, skd=report, received_at=received), RULES, T0)

    assert key is None and closed.skd is None and late == [report]


def test_an_skb_component_accepted_after_the_close_is_left_out_of_the_composition():
    cat = SkbScoreReport(report_id="c", reported_by=CAT, component="cat", score=400)
    praktik = SkbScoreReport(
        report_id="p", reported_by="panel-praktik", component="praktik", score=80
    )
    health = GateReport(
        report_id="h", reported_by=RSUD, component="health", decision=AdminDecision.MS
    )
    on_time = sheet(
        Stage.SKB, skd=skd(), skb_scores={"cat": cat, "praktik": praktik}, gates={"health": health}
    )
    late = on_time.but(received_at={"h": T0 + timedelta(seconds=1)})

    assert close_skb(on_time, RULES, T0)[1].entry is not None
    closed, result, dropped = close_skb(late, RULES, T0)

    assert dropped == [health] and result.entry is None
    assert (
        result.failure == Terminal.SKB_GATE_FAILED
        and result.reason == "SKB incomplete: health not reported"
    )


def test_skb_without_its_cat_score_is_absent():
    assert skb_result(sheet(Stage.SKB, skd=skd()), RULES).failure == Terminal.ABSENT


def test_every_report_the_journey_takes_has_its_senders():
    assert set(REPORT_RULES) <= set(SENDERS)


@pytest.mark.parametrize(
    "report",
    [
        AdminReport(report_id="a", reported_by=VERIFIER, findings=[]),
        skd(),
        SkbScoreReport(report_id="s", reported_by=CAT, component="cat", score=400),
        GateReport(report_id="g", reported_by=RSUD, component="health", decision=AdminDecision.MS),
        Disqualification(report_id="d", reported_by=OPERATOR, reason="fraud"),
        Withdrawal(report_id="w", reported_by=PORTAL),
    ],
    ids=lambda r: type(r).__name__,
)
def test_who_may_send_a_report_is_what_its_refusal_checks(report):
    """The sender rule the auditor applies is the refusal's: the allowed sender passes both (its
    refusal, if any, is about something else); another identity of the round is refused by both."""
    stranger = report.model_copy(update={"reported_by": "lan"})  # the training agency
    at = sheet(Stage.SKB if isinstance(report, (SkbScoreReport, GateReport)) else Stage.SKD)

    assert sender_refusal(report, RULES) is None
    assert sender_refusal(stranger, RULES) == refusal(at, stranger, RULES, T0)
    assert "lan is not allowed to report" in (sender_refusal(stranger, RULES) or "")


def test_an_offer_answered_after_its_time_is_refused_and_one_in_time_taken():
    due = T0 + timedelta(days=2)
    offer = OptimalisasiOffer(offer_id="R/offer/A1/F2", to_formasi="F2", answer_by=due)
    waiting = sheet(Stage.OPTIMALISASI, offer=offer)
    answer = OfferAnswer(report_id="ans-1", reported_by=PORTAL, accept=True)

    assert refusal(waiting, answer, RULES, due - timedelta(seconds=1)) is None
    late = refusal(waiting, answer, RULES, due)
    assert late is not None and "had to be answered by" in late and "declined" in late
