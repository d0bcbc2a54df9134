"""What a journey still awaits before its stage closes (domain/outstanding.py): the reports whose
absence the close turns into TMS, TH or TMS-SKB, judged by the same rule as the close."""

from __future__ import annotations

import pytest

from domain.codes import AdminDecision, Stage, Terminal
from domain.messages import AdminReport, GateReport, LatsarReport, PanelReview, SkbScoreReport
from domain.outstanding import awaited_reports
from domain.panels import panel_order
from domain.sheet import admin_result, skb_result, with_report
from tests.domain.test_panels import OPERATOR, RULES, SEED, _at_skb, _conflict, _score
from tests.domain.test_sheet import sheet, skd

ORDER = panel_order(RULES.skb.component("wawancara").panellists, SEED)


def _skb_score(component: str, score: float) -> SkbScoreReport:
    return SkbScoreReport(
        report_id=f"{component}-1", reported_by="x", component=component, score=score
    )


def _health(decision: str = "MS") -> GateReport:
    return GateReport(report_id="h-1", reported_by="rsud", component="health", decision=decision)


def _folded(*reports):
    s = _at_skb(skd=skd())
    for r in reports:
        s = with_report(s, r)
    return s


COMPLETE = (
    _skb_score("cat", 400),
    _skb_score("praktik", 80),
    _score(ORDER[0], 70),
    _score(ORDER[1], 75),
    _health(),
)


def _awaited(s, stage=Stage.SKB) -> list[tuple[str, int, int]]:
    return [(a.component, a.scored, a.needed) for a in awaited_reports(s, RULES, stage)]


@pytest.mark.parametrize(
    ("case", "reports", "awaited"),
    [
        ("every report in", COMPLETE, []),
        ("no health result", [r for r in COMPLETE if r.component != "health"], [("health", 0, 0)]),
        ("a TMS is a result", [*COMPLETE[:4], _health("TMS")], []),
        ("one panellist scored", [*COMPLETE[:3], COMPLETE[4]], [("wawancara", 1, 2)]),
        (
            "nothing yet",
            [],
            [("cat", 0, 0), ("praktik", 0, 0), ("wawancara", 0, 2), ("health", 0, 0)],
        ),
    ],
)
def test_each_skb_component_is_awaited_until_reported(case, reports, awaited):
    assert _awaited(_folded(*reports)) == awaited, case


def test_a_struck_or_refused_panel_score_does_not_count():
    struck = _folded(
        *COMPLETE,
        PanelReview(
            report_id="r",
            reported_by=OPERATOR,
            component="wawancara",
            panellist=ORDER[1],
            keep=False,
        ),
    )
    assert _awaited(struck) == [("wawancara", 1, 2)]
    refused = _folded(_conflict(ORDER[2]), *COMPLETE[:3], _score(ORDER[2], 80), COMPLETE[4])
    assert _awaited(refused) == [("wawancara", 1, 2)]
    found = _folded(*COMPLETE, _conflict(ORDER[0], by=OPERATOR))
    assert _awaited(found) == [("wawancara", 1, 2)]


def test_the_close_ends_as_said_without_a_cat_score_th_and_without_another_tms_skb():
    ends = {a.component: a.ends_as for a in awaited_reports(_folded(), RULES, Stage.SKB)}
    assert ends == {
        "cat": Terminal.ABSENT,
        "praktik": Terminal.SKB_GATE_FAILED,
        "wawancara": Terminal.SKB_GATE_FAILED,
        "health": Terminal.SKB_GATE_FAILED,
    }


@pytest.mark.parametrize("missing", range(len(COMPLETE)))
def test_what_is_awaited_is_what_the_skb_close_would_find_missing(missing):
    """The view and the close agree: with one report left out, the close's reason names the
    component the view awaits (the CAT score, whose absence is TH, says so)."""
    s = _folded(*(r for i, r in enumerate(COMPLETE) if i != missing))
    [awaited] = awaited_reports(s, RULES, Stage.SKB)
    result = skb_result(s, RULES)
    assert result.entry is None
    if awaited.component == "cat":
        assert result.reason.startswith("TH")
    else:
        named = "wawancara (panel of 1)" if awaited.kind == "panel" else awaited.component
        assert result.reason == f"SKB incomplete: {named} not reported"
    assert skb_result(_folded(*COMPLETE), RULES).entry is not None


def test_skd_awaits_its_result_and_other_stages_await_nothing_here():
    at_skd = sheet(Stage.SKD)
    [awaited] = awaited_reports(at_skd, RULES, Stage.SKD)
    assert (awaited.component, awaited.ends_as) == ("skd", Terminal.ABSENT)
    assert awaited_reports(with_report(at_skd, skd()), RULES, Stage.SKD) == []
    assert awaited_reports(at_skd, RULES, Stage.FILING) == []


def test_the_administrative_check_awaits_its_result_which_the_close_makes_tms_without_it():
    """The close's own rule (domain.sheet.admin_result): no report, TMS naming no document."""
    waiting = sheet(Stage.ADMIN_CHECK)
    [awaited] = awaited_reports(waiting, RULES, Stage.ADMIN_CHECK)
    assert (awaited.component, awaited.kind, awaited.ends_as) == ("admin", "admin", Terminal.TMS)
    assert admin_result(waiting) == AdminDecision.TMS
    checked = with_report(waiting, AdminReport(report_id="a", reported_by="bkpsdm-verifikator"))
    assert awaited_reports(checked, RULES, Stage.ADMIN_CHECK) == []
    assert admin_result(checked) == AdminDecision.MS


def test_a_cpns_at_latsar_awaits_its_result_whose_absence_ends_nothing():
    """The Latsar window's close ends nobody: the committee is shown whom to chase, and a CPNS
    judged (passed, serving the year of probation) awaits nothing more."""
    cpns = sheet(Stage.LATSAR)
    [awaited] = awaited_reports(cpns, RULES, Stage.LATSAR)
    assert (awaited.component, awaited.kind, awaited.ends_as) == ("latsar", "latsar", None)
    judged = with_report(
        cpns, LatsarReport(report_id="l", reported_by="lan", passed=True, healthy=True)
    )
    assert awaited_reports(judged, RULES, Stage.LATSAR) == []
