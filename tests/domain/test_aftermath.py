"""After the journey: which DIS or dismissal the aftermath takes, and what it records.

The rules of domain/aftermath.py, applied by workflows/aftermath.py's validator and handler,
tested without Temporal.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.aftermath import (
    AftermathState,
    JourneyEnd,
    decide,
    end_problem,
    revocation,
    revocation_refusal,
)
from domain.codes import Stage, Terminal
from domain.events import DismissedAfterEnd, DisqualifiedAfterEnd
from domain.messages import Decision, Dismissal, Disqualification, JourneyState
from domain.notices import Language, render, revoked
from tests.roundkit import OPERATOR, compressed_round, formasi
from workflows.ids import aftermath_of, aftermath_workflow_id
from workflows.round import journey_rules

T = datetime(2028, 5, 1, 9, tzinfo=UTC)
RULES = journey_rules(
    compressed_round(
        "AFTER",
        [formasi("F1", 1)],
        {
            n: (i * 60, i * 60 + 60)
            for i, n in enumerate(
                ("registration", "administration", "skd", "skb", "filing", "latsar")
            )
        },
        t0=T,
    )
)
NIP = "199805172027031001"


def ended(terminal: Terminal, nip: str | None = None) -> JourneyState:
    return JourneyState(
        round_id="AFTER",
        applicant_id="A1",
        formasi_code="F1",
        stage=Stage.ENDED,
        terminal=terminal,
        nip=nip,
        decisions=[
            Decision(
                at=T, stage="latsar", outcome="PNS", actor="lan", input={"report_id": "latsar-1"}
            )
        ],
    )


def dis(rid: str = "dis-1", by: str = OPERATOR) -> Disqualification:
    return Disqualification(report_id=rid, reported_by=by, reason="joki pada SKD")


def dismissal(rid: str = "pb-1") -> Dismissal:
    return Dismissal(report_id=rid, reported_by=OPERATOR, decree_no="800/3/2028", reason="desersi")


PNS = ended(Terminal.PNS, NIP)


def test_dis_after_pns_is_taken_and_records_what_the_journey_ended_as():
    assert revocation_refusal(dis(), PNS, [], RULES) is None
    event = decide(dis(), PNS)
    assert isinstance(event, DisqualifiedAfterEnd)
    record = event.record(T, RULES.rule_version, RULES.rules_digest)
    assert (record.stage, record.outcome, record.actor) == ("ended", "DIS", OPERATOR)
    assert (record.input["journey_terminal"], record.input["nip"]) == ("PNS", NIP)
    assert record.input["reason"] == "joki pada SKD"


@pytest.mark.parametrize(
    "terminal", [Terminal.NOT_PASSED, Terminal.TMS, Terminal.WITHDRAWN, Terminal.DISMISSED]
)
def test_dis_can_follow_any_other_ending(terminal):
    assert revocation_refusal(dis(), ended(terminal), [], RULES) is None


def test_dis_of_an_applicant_already_disqualified_is_refused():
    assert "already disqualified (DIS): the journey ended so" in revocation_refusal(
        dis(), ended(Terminal.DISQUALIFIED), [], RULES
    )
    first = revocation(dis(), PNS, T)
    assert "already disqualified (DIS) since 2028-05-01" in revocation_refusal(
        dis("dis-2"), PNS, [first], RULES
    )


@pytest.mark.parametrize(
    "terminal",
    [Terminal.NOT_PASSED, Terminal.FILING_INCOMPLETE, Terminal.WITHDRAWN, Terminal.DISMISSED],
)
def test_only_an_appointed_pns_can_be_dismissed(terminal):
    problem = revocation_refusal(dismissal(), ended(terminal), [], RULES)
    assert problem == (
        f"only an appointed PNS can be dismissed: the journey ended as {terminal.value}, not PNS"
    )


def test_a_pns_is_dismissed_once_and_not_after_a_dis():
    assert revocation_refusal(dismissal(), PNS, [], RULES) is None
    assert isinstance(decide(dismissal(), PNS), DismissedAfterEnd)
    done = revocation(dismissal(), PNS, T)
    assert (done.code, done.decree_no, done.journey_terminal) == (
        "DIBERHENTIKAN",
        "800/3/2028",
        "PNS",
    )
    assert "already dismissed by decree 800/3/2028" in revocation_refusal(
        dismissal("pb-2"), PNS, [done], RULES
    )
    assert "no PNS to dismiss" in revocation_refusal(
        dismissal("pb-2"), PNS, [revocation(dis(), PNS, T)], RULES
    )


def test_only_the_rounds_committee_reports_after_the_end():
    assert revocation_refusal(dis(by="cat-bkn"), PNS, [], RULES) == (
        "cat-bkn is not allowed to report operator in this round"
    )


def test_a_report_id_the_journey_used_is_refused():
    assert "used in the applicant's journey" in revocation_refusal(dis("latsar-1"), PNS, [], RULES)


@pytest.mark.parametrize(
    ("end", "problem"),
    [
        (JourneyEnd(found=False), "there is no journey R/applicant/A1"),
        (JourneyEnd(status="running"), "the journey has not ended: send the report to the journey"),
        (JourneyEnd(status="terminated"), "the journey is terminated, not ended with an outcome"),
        (JourneyEnd(status="completed", state=PNS), None),
    ],
)
def test_the_aftermath_takes_reports_only_once_the_journey_completed(end, problem):
    assert end_problem(end, "R/applicant/A1") == problem


def test_the_standing_is_the_last_revocation_or_the_journeys_ending():
    state = AftermathState(round_id="R", applicant_id="A1", journey_terminal=Terminal.PNS)
    assert state.standing == "PNS"
    assert state.model_copy(update={"revocations": [revocation(dis(), PNS, T)]}).standing == "DIS"


def test_the_aftermaths_id_is_the_journeys_and_after():
    assert aftermath_workflow_id("R-1", "ABCD") == "R-1/applicant/ABCD/after"
    assert aftermath_of("R-1/applicant/ABCD/after") == ("R-1", "ABCD")
    for other in ("R-1/applicant/ABCD", "R-1/formasi/F1/after", "R-1/applicant//after", "x/after"):
        assert aftermath_of(other) is None


@pytest.mark.parametrize(
    ("notice", "language", "text"),
    [
        (
            revoked("DIS", "joki pada SKD"),
            Language.ID,
            "Anda didiskualifikasi (DIS) setelah seleksi berakhir; hasil seleksi Anda dibatalkan. "
            "Alasan: joki pada SKD.",
        ),
        (
            revoked("DIS", "joki pada SKD"),
            Language.EN,
            "You are disqualified (DIS) after the selection ended; your selection result is "
            "annulled. Reason: joki pada SKD.",
        ),
        (
            revoked("DIBERHENTIKAN", "desersi", "800/3/2028"),
            Language.ID,
            "Anda diberhentikan berdasarkan keputusan nomor 800/3/2028. Alasan: desersi.",
        ),
        (
            revoked("DIBERHENTIKAN", "desersi", "800/3/2028"),
            Language.EN,
            "You are dismissed by decree 800/3/2028. Reason: desersi.",
        ),
    ],
)
def test_the_applicant_is_told_once_with_the_reason(notice, language, text):
    assert render(notice, language) == text
