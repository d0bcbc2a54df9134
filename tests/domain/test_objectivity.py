"""Panel objectivity: agreement, bias and outliers against tables computed by hand."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from domain.errors import RuleViolation
from domain.objectivity import agreement, outlier, outlier_flags, panellist_bias

# Three panellists from a pool; R did not sit on a1, Q and R not on a4 (missing cells).
#          P    Q    R
#   a1    80   70    .
#   a2    60   50   40
#   a3     .   90   90
#   a4    70    .    .      <- one score: not pairable, left out of alpha and of the biases
TABLE = {
    "a1": {"P": 80, "Q": 70},
    "a2": {"P": 60, "Q": 50, "R": 40},
    "a3": {"Q": 90, "R": 90},
    "a4": {"P": 70},
}
# Krippendorff's alpha (interval) by hand:
#   pairable units a1 (m=2), a2 (m=3), a3 (m=2); n = 7 values.
#   D_o = 1/n * sum_u [ordered-pair squared differences / (m_u - 1)]
#       a1: 2 * 10^2 = 200, / 1 = 200
#       a2: 2 * (10^2 + 20^2 + 10^2) = 1200, / 2 = 600
#       a3: 0
#     = 800 / 7
#   D_e = 2 * sum (v - mean)^2 / (n - 1): values 80 70 60 50 40 90 90, sum 480, sum of squares
#       35200, so sum (v - mean)^2 = 35200 - 480^2/7 = 16000/7, and D_e = 2 * 16000/7 / 6 = 16000/21
#   alpha = 1 - (800/7) / (16000/21) = 1 - 0.15 = 0.85
TABLE_OBSERVED = Fraction(800, 7)
TABLE_EXPECTED = Fraction(16000, 21)
TABLE_ALPHA = 0.85

# Biases by hand: deviation = own score - mean of the others on the same applicant.
#   P: a1 80-70 = +10, a2 60-45 = +15           -> 25/2 over 2 applicants (a4 had no co-panellist)
#   Q: a1 70-80 = -10, a2 50-50 = 0, a3 0       -> -10/3 over 3
#   R: a2 40-55 = -15, a3 0                     -> -15/2 over 2
# Their mean: (25/2 - 10/3 - 15/2) / 3 = 5/9; deviations from it 215/18, -70/18, -145/18;
# sample variance (215^2 + 70^2 + 145^2) / 18^2 / 2 = 72150/648.
BIAS = {"P": Fraction(25, 2), "Q": Fraction(-10, 3), "R": Fraction(-15, 2)}
CO_SCORED = {"P": 2, "Q": 3, "R": 2}
BIAS_SD = math.sqrt(72150 / 648)
Z = {"P": 215 / 18 / BIAS_SD, "Q": -70 / 18 / BIAS_SD, "R": -145 / 18 / BIAS_SD}


def test_alpha_of_a_pool_table_with_missing_scores_matches_the_hand_computation():
    result = agreement(TABLE)

    assert (result.units, result.values) == (3, 7)
    assert result.observed == pytest.approx(float(TABLE_OBSERVED))
    assert result.expected == pytest.approx(float(TABLE_EXPECTED))
    assert result.alpha == pytest.approx(TABLE_ALPHA)


def test_alpha_matches_krippendorffs_published_interval_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 coders x 12 units
    # example with missing values: alpha interval = 0.849 as printed there.
    coders = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    table = {
        f"u{i:02d}": {c: v[i] for c, v in coders.items() if v[i] is not None} for i in range(12)
    }

    assert round(agreement(table).alpha, 3) == 0.849


def test_a_panel_of_two_on_two_applicants():
    # [80, 70] and [60, 50]: D_o = (200 + 200) / 4 = 100; mean 65, squared deviations
    # 225 + 25 + 25 + 225 = 500, D_e = 2 * 500 / 3; alpha = 1 - 100 / (1000/3) = 0.7.
    table = {"a1": {"P": 80, "Q": 70}, "a2": {"P": 60, "Q": 50}}

    assert agreement(table).alpha == pytest.approx(0.7)
    # P is always 10 above Q: biases +10 and -10. Their z-scores would be +-1/sqrt(2) whatever
    # the biases (10 or 50 apart alike), so none is given: the biases say it.
    assert [(b.panellist, b.bias, b.z) for b in panellist_bias(table)] == [
        ("P", pytest.approx(10), None),
        ("Q", pytest.approx(-10), None),
    ]


def test_two_panellists_have_no_z_score_however_far_apart_they_score():
    close = panellist_bias({"a1": {"P": 71, "Q": 70}})
    apart = panellist_bias({"a1": {"P": 95, "Q": 20}})

    assert [b.z for b in close] == [b.z for b in apart] == [None, None]


def test_one_applicant_gives_no_alpha_however_close_its_panel_scores():
    # One unit: D_e is computed from the same scores as D_o and equals it (here both 2/3), so the
    # formula gives 0, "no better than chance", for 80, 80 and 79 as for 90, 50 and 10.
    close = agreement({"a1": {"P": 80, "Q": 80, "R": 79}})
    apart = agreement({"a1": {"P": 90, "Q": 50, "R": 10}, "a2": {"P": 70}})

    assert close.observed == pytest.approx(close.expected) == pytest.approx(2 / 3)
    assert (close.alpha, close.units, apart.alpha, apart.units) == (None, 1, None, 1)


def test_all_equal_scores_leave_alpha_undefined_and_no_bias():
    table = {"a1": {"P": 75, "Q": 75, "R": 75}, "a2": {"P": 75, "Q": 75}}

    assert agreement(table).alpha is None  # no variation: nothing to agree or disagree about
    assert [(b.bias, b.z) for b in panellist_bias(table)] == [(0, None)] * 3
    assert outlier(table["a1"], margin=0) == []


def test_no_pairable_applicant_gives_no_alpha():
    result = agreement({"a1": {"P": 80}, "a2": {"Q": 20}})

    assert (result.alpha, result.units, result.values) == (None, 0, 0)


def test_bias_of_each_panellist_is_their_mean_deviation_from_co_panellists():
    biases = {b.panellist: b for b in panellist_bias(TABLE)}

    assert {p: b.bias for p, b in biases.items()} == {
        p: pytest.approx(float(v)) for p, v in BIAS.items()
    }
    assert {p: b.applicants for p, b in biases.items()} == CO_SCORED
    assert {p: b.z for p, b in biases.items()} == {p: pytest.approx(z) for p, z in Z.items()}


def test_a_panellist_who_never_sat_with_another_has_no_bias():
    biases = panellist_bias({"a1": {"P": 80}, "a2": {"Q": 70, "R": 60}})

    assert [(b.panellist, b.applicants, b.bias) for b in biases] == [
        ("P", 0, None),
        ("Q", 1, 10),
        ("R", 1, -10),
    ]


def test_the_order_the_table_arrives_in_changes_no_figure():
    reordered = {a: dict(reversed(list(TABLE[a].items()))) for a in reversed(list(TABLE))}

    assert agreement(reordered) == agreement(TABLE)
    assert panellist_bias(reordered) == panellist_bias(TABLE)


@pytest.mark.parametrize(
    ("scores", "margin", "flagged"),
    [
        # The issue's example: 20 is 57 from the others' mean 77; once it is set aside, 83 and 71
        # are 12 apart. (The 83 is 37.5 from 45.5, a mean the 20 drags down: not flagged.)
        ({"p1": 83, "p2": 71, "p3": 20}, 25, ["p3"]),
        ({"p1": 83, "p2": 71, "p3": 60}, 25, []),  # 60 is 17 from 77: within the margin
        ({"p1": 80, "p2": 55}, 25, []),  # exactly the margin apart: not more than it
        ({"p1": 80, "p2": 54}, 25, ["p1", "p2"]),  # a panel of 2: nothing tells them apart
        ({"p1": 90, "p2": 50, "p3": 10}, 25, ["p1", "p3"]),  # 60 each side of 50: both flagged
        ({"p1": 70}, 0, []),  # a panel of one has nobody to differ from
        # Exactly the margin apart in decimals (25.000000000000004 in binary floating point).
        ({"p1": 32.2, "p2": 7.2}, 25, []),
        ({"p1": 0.2, "p2": 20.6, "p3": 19.8}, 20, []),  # 0.2 is 20 from the others' mean 20.2
        ({"p1": 0.2, "p2": 20.6, "p3": 19.9}, 20, ["p1"]),  # 20.05 from 20.25
        ({"p1": 7.2, "p2": 32.2}, 24.9, ["p1", "p2"]),
        ({}, 10, []),
    ],
)
def test_outlier_flags_a_score_beyond_the_margin_from_the_rest_of_its_panel(
    scores, margin, flagged
):
    assert outlier(scores, margin) == flagged


@pytest.mark.parametrize("margin", [-1, math.nan, math.inf])
def test_outlier_refuses_a_margin_that_is_not_a_finite_non_negative_number(margin):
    with pytest.raises(RuleViolation, match="margin"):
        outlier({"p1": 1, "p2": 2}, margin)


def test_a_score_that_is_not_a_number_is_refused_naming_the_panellist():
    with pytest.raises(RuleViolation, match="by Q"):
        agreement({"a1": {"P": 70, "Q": math.nan}})


def test_a_flag_names_the_mean_it_was_judged_against():
    # 0 is flagged first: 78.33 from 78.33, the mean of 100, 95 and 40. With it set aside, 40 is
    # 57.5 from 97.5, the mean of 100 and 95. (From 65, the mean of all three others, 40 is
    # exactly the margin away: that mean is not the one that flagged it.)
    flags = outlier_flags({"p1": 100, "p2": 95, "p3": 40, "p4": 0}, 25)

    assert [(f.panellist, f.others_mean, f.distance) for f in flags] == [
        ("p3", 97.5, 57.5),
        ("p4", pytest.approx(235 / 3), pytest.approx(235 / 3)),
    ]


def test_the_floating_point_rule_of_older_journeys_is_kept_for_their_replay():
    assert outlier({"p1": 32.2, "p2": 7.2}, 25, exact=False) == ["p1", "p2"]
