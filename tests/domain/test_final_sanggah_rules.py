"""The sanggah against the final result (issue 14): when it is taken, what an answer may correct,
and what the correction composes to. The same rules the journey's validator applies."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from domain.codes import Stage
from domain.messages import AppealAnswer, AppealFiling, GateReport, SkbScoreReport
from domain.notices import final_appeal_answered, render, tmt_moved
from domain.sheet import (
    corrected,
    final_answer_due,
    final_sanggah_over,
    refusal,
    skb_result,
    with_report,
)
from tests.domain.test_panels import RULES as PANEL_RULES
from tests.domain.test_sheet import CAT, RSUD, RULES, T0, VERIFIER, sheet, skd

WINDOW = RULES.appeal.window
ANSWER = RULES.appeal.answer_within


def _completed(**facts):
    """An applicant who completed SKB and waits in the final sanggah, announced at T0."""
    s = sheet(Stage.FINAL_APPEAL, skd=skd(120, 140, 190))
    for r in (
        SkbScoreReport(report_id="c", reported_by=CAT, component="cat", score=400),
        SkbScoreReport(report_id="p", reported_by="panel-praktik", component="praktik", score=80),
        GateReport(report_id="h", reported_by=RSUD, component="health", decision="MS"),
    ):
        s = with_report(s, r)
    entry = skb_result(s, RULES).entry
    return s.but(final_entry=entry, final_announced_at=T0, final_sanggah_open=True).but(**facts)


def _filing(rid="f"):
    return AppealFiling(report_id=rid, reported_by="sscasn", reason="nilai keliru")


def _filed():
    s = with_report(_completed(), _filing())
    return s.but(received_at={**s.received_at, "f": T0 + timedelta(seconds=1)})


def _answer(**fields):
    return AppealAnswer(report_id="j", reported_by=VERIFIER, **{"accepted": True, **fields})


def test_a_sanggah_in_the_window_is_taken_and_filed_as_the_final_one():
    s = _completed()
    assert refusal(s, _filing(), RULES, T0 + WINDOW / 2) is None
    filed = with_report(s, _filing())
    assert (filed.final_appeal, filed.appeal) == (_filing(), None)


@pytest.mark.parametrize(
    ("case", "before", "report", "at", "reason"),
    [
        (
            "after the window",
            _completed(),
            _filing(),
            WINDOW,
            "sanggah window of the final result closed",
        ),
        ("twice", _filed(), _filing("f2"), timedelta(0), "may be filed once"),
        (
            "in a round without the final sanggah",
            _completed(final_sanggah_open=False),
            _filing(),
            timedelta(0),
            "takes no sanggah against the final result now",
        ),
        (
            "after the ranking was confirmed",
            _completed(final_confirmed=True),
            _filing(),
            timedelta(0),
            "takes no sanggah against the final result now",
        ),
        (
            "an answer without a sanggah",
            _completed(),
            _answer(),
            timedelta(0),
            "no sanggah against",
        ),
        (
            "an answer after its time",
            _filed(),
            _answer(),
            ANSWER + timedelta(seconds=2),
            "time to answer",
        ),
        (
            "a rejection that corrects",
            _filed(),
            _answer(accepted=False, corrected_scores={"cat": 450}),
            timedelta(0),
            "a rejected sanggah corrects no score",
        ),
        (
            "a correction of a gate",
            _filed(),
            _answer(corrected_scores={"health": 90}),
            timedelta(0),
            "corrected_scores: 'health' is not a scored SKB component",
        ),
        (
            "a score above the component's maximum",
            _filed(),
            _answer(corrected_scores={"cat": 501}),
            timedelta(0),
            "corrected_scores.cat:",
        ),
        (
            "an answer from the CAT centre",
            _filed(),
            AppealAnswer(report_id="j", reported_by=CAT, accepted=True),
            timedelta(0),
            "cat-bkn is not allowed to report appeal_answer",
        ),
    ],
)
def test_a_final_sanggah_or_answer_is_refused_with_its_reason(case, before, report, at, reason):
    problem = refusal(before, report, RULES, T0 + at)
    assert problem is not None and reason in problem, (case, problem)


def test_an_answer_to_the_administrative_sanggah_corrects_nothing():
    s = sheet(Stage.ADMIN_APPEAL, appeal=_filing())
    problem = refusal(s, _answer(corrected_scores={"cat": 450}), RULES, T0)
    assert problem == "only an answer to a sanggah against the final result corrects scores"


def test_a_correction_composes_skb_and_the_final_score_again():
    s = with_report(_filed(), _answer(corrected_scores={"cat": 480}))
    before = s.final_entry
    fixed, result = corrected(s, RULES)
    assert fixed.skb_scores["cat"].score == 480 and fixed.skb_scores["praktik"].score == 80
    assert result.entry is not None and before is not None
    assert result.entry.final_score > before.final_score
    assert fixed.final_entry == result.entry
    # Composed by the same rule as at the SKB close, from the corrected scores.
    again = skb_result(s.but(skb_scores=fixed.skb_scores), RULES).entry
    assert again == result.entry


def test_the_sanggah_is_over_when_its_window_and_answer_time_have_passed():
    assert final_sanggah_over(_completed(), RULES) == T0 + WINDOW
    assert final_sanggah_over(_filed(), RULES) == max(
        T0 + WINDOW, T0 + timedelta(seconds=1) + ANSWER
    )


def test_the_notices_of_the_answer_and_of_a_tmt_move_read_as_written():
    assert "dikoreksi" in render(final_appeal_answered(True, True))
    assert render(final_appeal_answered(False, False), "en") == (
        "Your sanggah against the final result is rejected; your result stands."
    )
    moved = render(tmt_moved(date(2027, 10, 1), "199805172027071001"))
    assert moved == (
        "TMT SK CPNS Anda berubah menjadi 1 Okt 2027 berdasarkan keputusan pemerintah. "
        "NIP Anda tetap 199805172027071001."
    )


# --- a panel's score corrected by the answer (an interview scored wrongly) ----------------------


def _panel_filed(*panel_scores: float):
    """An applicant of the panel round (tests/domain/test_panels.py) who completed SKB with the
    panellists' `panel_scores`, filed a final sanggah at T0 + 1 s, and awaits the answer."""
    from tests.domain.test_outstanding import ORDER, _folded, _health, _skb_score
    from tests.domain.test_panels import _score

    s = _folded(
        _skb_score("cat", 400),
        _skb_score("praktik", 80),
        *(_score(p, v) for p, v in zip(ORDER, panel_scores, strict=False)),
        _health(),
    )
    entry = skb_result(s, PANEL_RULES).entry
    s = s.but(
        stage=Stage.FINAL_APPEAL,
        final_entry=entry,
        final_announced_at=T0,
        final_sanggah_open=True,
    )
    s = with_report(s, _filing())
    return s.but(received_at={**s.received_at, "f": T0 + timedelta(seconds=1)})


def test_a_panel_s_mean_corrected_by_the_answer_replaces_it_and_keeps_each_panellist_s_score():
    s = _panel_filed(70, 75)  # the panel's mean: 72.5
    answer = _answer(corrected_scores={"wawancara": 90})
    assert refusal(s, answer, PANEL_RULES, T0 + timedelta(seconds=2)) is None
    fixed, result = corrected(with_report(s, answer), PANEL_RULES)
    assert result.entry is not None and s.final_entry is not None
    assert result.entry.final_score > s.final_entry.final_score
    # Each panellist's score stays as recorded; only the mean the composition takes is the answer's.
    assert {p: r.score for p, r in fixed.panel["wawancara"].items()} == {
        p: r.score for p, r in s.panel["wawancara"].items()
    }
    # The same composition as a panel whose mean was 90 from the start.
    assert result.skb_score == skb_result(_panel_filed(90, 90), PANEL_RULES).skb_score


@pytest.mark.parametrize(
    ("panel_scores", "correction", "reason"),
    [
        ((70,), {"wawancara": 90}, "corrected_scores: no wawancara score was recorded to correct"),
        ((70, 75), {"wawancara": 101}, "corrected_scores.wawancara:"),
    ],
    ids=["a panel of one (no mean)", "above the panel's maximum"],
)
def test_a_panel_correction_needs_a_mean_to_correct_and_a_score_on_its_scale(
    panel_scores, correction, reason
):
    s = _panel_filed(*panel_scores)
    problem = refusal(s, _answer(corrected_scores=correction), PANEL_RULES, T0)
    assert problem is not None and reason in problem, problem


def test_an_answer_at_the_end_of_its_seventh_day_is_late_as_a_filing_at_its_window_s_end_is():
    """The answer time ends at 24:00 of its seventh day, exclusive, as a window's close: an answer
    at that instant was taken while a filing at 24:00 of the window's last day was refused."""
    due = final_answer_due(_filed(), RULES)
    assert due is not None
    answer = _answer()
    assert refusal(_filed(), answer, RULES, due - timedelta(microseconds=1)) is None
    late = refusal(_filed(), answer, RULES, due)
    assert late == "the time to answer the sanggah against the final result has passed"
