"""Administrative check (MS/TMS) and its appeal (sanggah): TMS only, once, within 3 days."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.administration import (
    DocumentFinding,
    admin_decision,
    appeal_outcome,
    appeal_refusal,
)
from domain.codes import AdminDecision

WIB = timezone(timedelta(hours=7))
ANNOUNCED = datetime(2027, 9, 6, 10, 0, tzinfo=WIB)
WINDOW = timedelta(days=3)


@pytest.mark.parametrize(
    ("findings", "decision"),
    [
        ([], AdminDecision.MS),
        ([DocumentFinding(document="ijazah", reason="not legalised")], AdminDecision.TMS),
        (
            [
                DocumentFinding(document="ijazah", reason="not legalised"),
                DocumentFinding(document="transkrip", reason="GPA unreadable"),
            ],
            AdminDecision.TMS,
        ),
    ],
    ids=["no failing document", "one failing document", "two failing documents"],
)
def test_any_failing_document_makes_the_result_tms(findings, decision):
    assert admin_decision(findings) == decision


# (case, decision, announced_at, now, already appealed, words of the refusal or None)
APPEALS = [
    ("TMS right after the announcement", AdminDecision.TMS, ANNOUNCED, ANNOUNCED, False, None),
    (
        "TMS one second before 3 days",
        AdminDecision.TMS,
        ANNOUNCED,
        ANNOUNCED + WINDOW - timedelta(seconds=1),
        False,
        None,
    ),
    ("TMS at exactly 3 days", AdminDecision.TMS, ANNOUNCED, ANNOUNCED + WINDOW, False, "closed"),
    (
        "TMS after 4 days",
        AdminDecision.TMS,
        ANNOUNCED,
        ANNOUNCED + timedelta(days=4),
        False,
        "closed",
    ),
    ("MS cannot appeal", AdminDecision.MS, ANNOUNCED, ANNOUNCED, False, "TMS"),
    ("no decision yet", None, None, ANNOUNCED, False, "TMS"),
    ("TMS not announced yet", AdminDecision.TMS, None, ANNOUNCED, False, "not been announced"),
    ("TMS second appeal", AdminDecision.TMS, ANNOUNCED, ANNOUNCED, True, "once"),
]


@pytest.mark.parametrize(
    ("decision", "announced_at", "now", "already", "refusal"),
    [case[1:] for case in APPEALS],
    ids=[case[0] for case in APPEALS],
)
def test_appeal_is_taken_only_for_tms_once_within_3_days(
    decision, announced_at, now, already, refusal
):
    reason = appeal_refusal(decision, announced_at, now, WINDOW, already)
    if refusal is None:
        assert reason is None
    else:
        assert reason is not None and refusal in reason


def test_closed_window_refusal_says_when_it_closed():
    reason = appeal_refusal(AdminDecision.TMS, ANNOUNCED, ANNOUNCED + WINDOW, WINDOW, False)
    assert reason is not None and (ANNOUNCED + WINDOW).isoformat() in reason


@pytest.mark.parametrize(
    ("accepted", "decision"), [(True, AdminDecision.MS), (False, AdminDecision.TMS)]
)
def test_accepted_appeal_turns_tms_into_ms(accepted, decision):
    assert appeal_outcome(accepted) == decision
