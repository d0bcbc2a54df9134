"""Integration (final score) and the final ranking: the tie-break chain and seats by quota."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

from domain.config import IntegrationRules, SkdRules
from domain.integration import display_score, final_score
from domain.messages import fraction_text
from domain.ranking import FinalEntry, rank_final
from domain.skd import SkdScores

SKD = SkdRules()
INTEGRATION = IntegrationRules()


# (case, SKD total, SKB score, final) with final = 40% x (SKD / 550 x 100) + 60% x SKB
FINALS = [
    ("perfect", 550, Fraction(100), Fraction(100)),
    ("zero", 0, Fraction(0), Fraction(0)),
    ("SKD only", 550, Fraction(0), Fraction(40)),
    ("SKB only", 0, Fraction(100), Fraction(60)),
    (
        "general minimum SKD, SKB 78",
        311,
        Fraction(78),
        Fraction(2, 5) * Fraction(31100, 550) + Fraction(3, 5) * 78,
    ),
    ("SKD 400, SKB 77.5", 400, Fraction(155, 2), Fraction(1600, 55) + Fraction(93, 2)),
]


@pytest.mark.parametrize(
    ("skd_total", "skb", "final"),
    [case[1:] for case in FINALS],
    ids=[case[0] for case in FINALS],
)
def test_final_is_40_percent_skd_over_550_plus_60_percent_skb_exactly(skd_total, skb, final):
    result = final_score(skd_total, skb, INTEGRATION, SKD)
    assert isinstance(result, Fraction)
    assert result == final


def test_final_weights_come_from_the_round_rules():
    half = IntegrationRules(skd_weight=50, skb_weight=50)
    assert final_score(275, Fraction(80), half, SKD) == 25 + 40


def test_final_scores_that_differ_below_float_precision_still_differ():
    a = final_score(311, Fraction(1, 3), INTEGRATION, SKD)
    b = final_score(311, Fraction(1, 3) + Fraction(1, 10**20), INTEGRATION, SKD)
    assert a < b


@pytest.mark.parametrize(
    ("value", "shown"),
    [(Fraction(100), "100.000"), (Fraction(2, 3), "0.667"), (Fraction(155, 2), "77.500")],
)
def test_announced_score_has_three_decimals(value, shown):
    assert display_score(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # A float holds 88.0045 as 88.00449999...: it showed 88.004.
        (Fraction("88.0045"), "88.005"),
        # A float holds 0.0625 exactly, and its formatting rounds a tie to even: 0.062.
        (Fraction("0.0625"), "0.063"),
        (Fraction("77.1255"), "77.126"),
        (Fraction("77.1254"), "77.125"),
    ],
)
def test_a_score_is_shown_rounded_half_up_from_its_exact_value(value, shown):
    assert display_score(value) == shown
    assert fraction_text(value) == shown  # what the journeys and the rankings record


def test_a_final_score_on_a_tie_is_announced_rounded_up():
    """SKD 440 of 550 and an SKB of 68.8125 (sixteenths, as a mean of eight panellists' halves
    gives) make exactly 73.2875; it was announced 73.287 (the float is 73.28749999...)."""
    score = final_score(440, Fraction("68.8125"), INTEGRATION, SKD)
    assert score == Fraction("73.2875")
    assert fraction_text(score) == "73.288"


def final_entry(
    applicant_id: str,
    final=Fraction(80),
    skd=(100, 100, 200),
    gpa=3.5,
    birth=date(1998, 1, 1),
) -> FinalEntry:
    twk, tiu, tkp = skd
    return FinalEntry(
        applicant_id=applicant_id,
        formasi_code="PK-AP-DISKOMINFO",
        final_score=final,
        skd=SkdScores(twk=twk, tiu=tiu, tkp=tkp),
        gpa=gpa,
        birth_date=birth,
    )


# (link of the chain, better applicant's fields, worse applicant's fields): every earlier
# link is equal in each row. TWK has no row: with total, TKP and TIU equal, TWK is equal too.
CHAIN = [
    ("higher final score", {"final": Fraction(8001, 100)}, {"final": Fraction(80)}),
    ("same final: higher SKD total", {"skd": (100, 100, 201)}, {"skd": (100, 100, 200)}),
    ("same final and total: higher TKP", {"skd": (95, 100, 205)}, {"skd": (100, 100, 200)}),
    ("same final, total, TKP: higher TIU", {"skd": (95, 105, 200)}, {"skd": (100, 100, 200)}),
    ("same final and SKD: higher GPA", {"gpa": 3.51}, {"gpa": 3.50}),
    (
        "same final, SKD and GPA: older first",
        {"birth": date(1995, 6, 1)},
        {"birth": date(1995, 6, 2)},
    ),
]


@pytest.mark.parametrize(
    ("better", "worse"),
    [case[1:] for case in CHAIN],
    ids=[case[0] for case in CHAIN],
)
def test_final_tie_break_chain_decides_the_single_seat(better, worse):
    # The worse applicant comes first in the input and sorts first by id: only the rule decides.
    ranking = rank_final([final_entry("a-worse", **worse), final_entry("b-better", **better)], 1)
    assert ranking.winners == ["b-better"]
    assert ranking.others == ["a-worse"]


def test_an_earlier_link_outweighs_every_later_one():
    # Higher SKD total wins although the other is older, has a higher GPA and a higher TKP.
    strong = final_entry("a", skd=(150, 175, 100))
    rest = final_entry("b", skd=(100, 100, 224), gpa=4.0, birth=date(1990, 1, 1))
    assert rank_final([rest, strong], 1).winners == ["a"]


# (case, number of applicants, quota, number of winners)
SEATS = [
    ("more applicants than seats", 5, 2, 2),
    ("as many applicants as seats", 3, 3, 3),
    ("fewer applicants than seats", 2, 4, 2),
    ("no seats", 3, 0, 0),
    ("no applicants", 0, 2, 0),
]


@pytest.mark.parametrize(
    ("count", "quota", "winners"),
    [case[1:] for case in SEATS],
    ids=[case[0] for case in SEATS],
)
def test_seats_go_by_rank_within_the_quota(count, quota, winners):
    entries = [final_entry(f"a{i}", final=Fraction(90 - i)) for i in range(count)]
    ranking = rank_final(list(reversed(entries)), quota)
    assert ranking.winners == [f"a{i}" for i in range(winners)]
    assert ranking.others == [f"a{i}" for i in range(winners, count)]


def test_there_is_no_minimum_final_score():
    assert rank_final([final_entry("low", final=Fraction(1, 10))], 1).winners == ["low"]
