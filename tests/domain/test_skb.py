"""SKB: weighted components normalised by their maximum, knock-out gates, the interview panel."""

from __future__ import annotations

from fractions import Fraction

import pytest

from domain.codes import AdminDecision
from domain.config import ComponentKind, SkbComponent, SkbRules
from domain.errors import RuleViolation
from domain.skb import PanelScore, aggregate_panel, skb_outcome, validate_component_score

# The regency composition of examples/round-kabupaten.toml.
REGIONAL = SkbRules(
    components=[
        SkbComponent(name="cat", weight=60, max_score=500),
        SkbComponent(name="praktik", weight=40, max_score=100, floor=40),
        SkbComponent(name="health", kind=ComponentKind.GATE),
    ]
)
INTERVIEW = SkbComponent(name="wawancara", kind=ComponentKind.PANEL, weight=10, max_score=100)
MS, TMS = AdminDecision.MS, AdminDecision.TMS


def outcome(cat, praktik, health=MS):
    return skb_outcome({"cat": cat, "praktik": praktik}, {"health": health}, REGIONAL)


# (case, cat on 0..500, praktik on 0..100, SKB score on 0..100)
WEIGHTED = [
    ("both at maximum", 500, 100, Fraction(100)),
    ("cat 400/500 is 80, praktik 75", 400, 75, Fraction(80 * 60 + 75 * 40, 100)),
    ("cat 333/500 keeps its fraction", 333, 50, Fraction(333, 5) * Fraction(60, 100) + 20),
    ("praktik 77.5 as a float is exact", 250, 77.5, Fraction(30) + Fraction(31)),
    ("cat 0, praktik just above the floor", 0, 41, Fraction(41 * 40, 100)),
]


@pytest.mark.parametrize(
    ("cat", "praktik", "score"),
    [case[1:] for case in WEIGHTED],
    ids=[case[0] for case in WEIGHTED],
)
def test_skb_score_is_the_weighted_sum_of_components_normalised_by_max_score(cat, praktik, score):
    result = outcome(cat, praktik)
    assert result.score == score
    assert result.passed_gates


def test_a_composed_score_given_as_fraction_stays_exact():
    result = skb_outcome({"cat": Fraction(1001, 3), "praktik": 60}, {"health": MS}, REGIONAL)
    assert result.score == Fraction(1001, 3) / 500 * 60 + 24


# (case, praktik score, eliminated by the floor of 40)
FLOOR = [
    ("below the floor", 39, True),
    ("at the floor", 40, True),
    ("just above the floor", 40.5, False),
    ("well above the floor", 90, False),
]


@pytest.mark.parametrize(
    ("praktik", "eliminated"),
    [case[1:] for case in FLOOR],
    ids=[case[0] for case in FLOOR],
)
def test_score_at_or_below_the_floor_eliminates(praktik, eliminated):
    result = outcome(400, praktik)
    assert (not result.passed_gates) is eliminated
    if eliminated:
        assert result.gate_failures[0].startswith("praktik:")


def test_health_tms_eliminates_whatever_the_score():
    result = outcome(500, 100, health=TMS)
    assert result.gate_failures == ["health: TMS"]
    assert result.score == 100


def test_every_failed_gate_is_listed():
    result = outcome(500, 10, health=TMS)
    assert len(result.gate_failures) == 2


@pytest.mark.parametrize(
    ("scores", "gates", "field"),
    [
        ({"praktik": 80}, {"health": MS}, "cat"),
        ({"cat": 400}, {"health": MS}, "praktik"),
        ({"cat": 400, "praktik": 80}, {}, "health"),
    ],
    ids=["cat missing", "praktik missing", "health gate missing"],
)
def test_a_missing_component_is_refused_by_name(scores, gates, field):
    with pytest.raises(RuleViolation) as err:
        skb_outcome(scores, gates, REGIONAL)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("score", "valid"),
    [(0, True), (500, True), (250.5, True), (-1, False), (500.5, False), (501, False)],
)
def test_component_score_must_be_within_zero_and_max_score(score, valid):
    cat = REGIONAL.component("cat")
    if valid:
        validate_component_score(cat, score)
    else:
        with pytest.raises(RuleViolation) as err:
            validate_component_score(cat, score)
        assert err.value.field == "cat" and "0..500" in str(err.value)


def panel(*pairs) -> list[PanelScore]:
    return [PanelScore(panellist=p, score=s) for p, s in pairs]


@pytest.mark.parametrize(
    ("scores", "mean"),
    [
        (panel(("p1", 70), ("p2", 85)), Fraction(155, 2)),
        (panel(("p1", 70), ("p2", 80), ("p3", 80)), Fraction(230, 3)),
        (panel(("p1", 70.5), ("p2", 80.25)), Fraction(15075, 200)),
    ],
    ids=["two panellists", "three panellists, exact thirds", "decimal scores"],
)
def test_interview_score_is_the_exact_mean_of_the_panel(scores, mean):
    assert aggregate_panel(scores, INTERVIEW) == mean


def test_a_single_panellist_is_not_a_panel():
    with pytest.raises(RuleViolation) as err:
        aggregate_panel(panel(("p1", 80)), INTERVIEW)
    assert err.value.field == "wawancara" and "at least 2" in err.value.problem


def test_a_panellist_may_score_an_applicant_once():
    with pytest.raises(RuleViolation) as err:
        aggregate_panel(panel(("p1", 80), ("p1", 90)), INTERVIEW)
    assert err.value.field == "panellist"


def test_a_panel_may_require_more_than_two_panellists():
    three = INTERVIEW.model_copy(update={"min_panellists": 3})
    with pytest.raises(RuleViolation):
        aggregate_panel(panel(("p1", 80), ("p2", 90)), three)


def test_a_panellist_score_out_of_range_is_refused():
    with pytest.raises(RuleViolation) as err:
        aggregate_panel(panel(("p1", 80), ("p2", 101)), INTERVIEW)
    assert err.value.value == 101


def test_each_panellist_score_is_kept_as_given():
    scores = panel(("p1", 70), ("p2", 85))
    kept = [s.model_copy() for s in scores]
    aggregate_panel(scores, INTERVIEW)
    assert scores == kept
    with pytest.raises(ValueError):
        scores[0].score = 100  # frozen: the audit record cannot be edited


def test_interview_panel_mean_is_weighted_like_any_component():
    central = SkbRules(components=[SkbComponent(name="cat", weight=90, max_score=500), INTERVIEW])
    interview = aggregate_panel(panel(("p1", 70), ("p2", 85)), INTERVIEW)
    result = skb_outcome({"cat": 500, "wawancara": interview}, {}, central)
    assert result.score == 90 + Fraction(155, 2) / 10
