"""SKD scores: valid ranges, and each category's threshold at its edge and just below."""

from __future__ import annotations

import pytest

from domain.config import Category, SkdRules
from domain.errors import RuleViolation
from domain.skd import SkdScores, passes_threshold, skd_rank_key, validate_skd_scores

RULES = SkdRules()

# (case, category, twk, tiu, tkp, passes). TWK/TIU move in steps of 5, so "just below" a
# TWK edge of 65 is 60 and a TIU edge of 80 is 75; TKP moves in steps of 1.
THRESHOLDS = [
    ("general: every minimum exactly", Category.UMUM, 65, 80, 166, True),
    ("general: TWK just below 65", Category.UMUM, 60, 80, 166, False),
    ("general: TIU just below 80", Category.UMUM, 65, 75, 166, False),
    ("general: TKP just below 166", Category.UMUM, 65, 80, 165, False),
    ("general: high total cannot make up a low TWK", Category.UMUM, 60, 175, 225, False),
    ("cumlaude: total 311 and TIU 85", Category.CUMLAUDE, 60, 85, 166, True),
    ("cumlaude: total 310", Category.CUMLAUDE, 60, 85, 165, False),
    ("cumlaude: TIU 80 with total 311", Category.CUMLAUDE, 65, 80, 166, False),
    ("cumlaude: low TWK is no bar", Category.CUMLAUDE, 0, 175, 136, True),
    ("diaspora: total 311 and TIU 85", Category.DIASPORA, 60, 85, 166, True),
    ("diaspora: total 310", Category.DIASPORA, 60, 85, 165, False),
    ("diaspora: TIU 80 with total 311", Category.DIASPORA, 65, 80, 166, False),
    ("disabilitas: total 286 and TIU 60", Category.DISABILITAS, 50, 60, 176, True),
    ("disabilitas: total 285", Category.DISABILITAS, 50, 60, 175, False),
    ("disabilitas: TIU 55 with total 286", Category.DISABILITAS, 55, 55, 176, False),
    ("papua: total 286 and TIU 60", Category.PAPUA, 50, 60, 176, True),
    ("papua: total 285", Category.PAPUA, 50, 60, 175, False),
    ("papua: TIU 55 with total 286", Category.PAPUA, 55, 55, 176, False),
    ("daerah tertinggal: total 286 and TIU 60", Category.DAERAH_TERTINGGAL, 50, 60, 176, True),
    ("daerah tertinggal: total 285", Category.DAERAH_TERTINGGAL, 50, 60, 175, False),
    ("daerah tertinggal: TIU 55 with total 286", Category.DAERAH_TERTINGGAL, 55, 55, 176, False),
]


@pytest.mark.parametrize(
    ("category", "twk", "tiu", "tkp", "passes"),
    [case[1:] for case in THRESHOLDS],
    ids=[case[0] for case in THRESHOLDS],
)
def test_threshold_passes_at_its_edge_and_fails_just_below(category, twk, tiu, tkp, passes):
    scores = SkdScores(twk=twk, tiu=tiu, tkp=tkp)
    validate_skd_scores(scores, RULES)  # every row is a score the CAT can produce
    assert passes_threshold(scores, category, RULES) is passes


@pytest.mark.parametrize(
    ("twk", "tiu", "tkp"),
    [(0, 0, 0), (150, 175, 225), (5, 5, 1), (65, 80, 167)],
    ids=["all zero", "all maximum", "smallest steps", "TKP need not be a multiple of 5"],
)
def test_scores_within_range_and_step_are_valid(twk, tiu, tkp):
    validate_skd_scores(SkdScores(twk=twk, tiu=tiu, tkp=tkp), RULES)


# (case, twk, tiu, tkp, field named)
INVALID = [
    ("TWK above 150", 155, 80, 166, "twk"),
    ("TWK negative", -5, 80, 166, "twk"),
    ("TWK not a multiple of 5", 63, 80, 166, "twk"),
    ("TIU above 175", 65, 180, 166, "tiu"),
    ("TIU negative", 65, -5, 166, "tiu"),
    ("TIU not a multiple of 5", 65, 82, 166, "tiu"),
    ("TKP above 225", 65, 80, 226, "tkp"),
    ("TKP negative", 65, 80, -1, "tkp"),
]


@pytest.mark.parametrize(
    ("twk", "tiu", "tkp", "field"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_score_raises_rule_violation_naming_the_field(twk, tiu, tkp, field):
    with pytest.raises(RuleViolation) as err:
        validate_skd_scores(SkdScores(twk=twk, tiu=tiu, tkp=tkp), RULES)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}=")


def test_total_is_the_sum_of_the_three_subtests_up_to_550():
    assert SkdScores(twk=150, tiu=175, tkp=225).total == 550 == RULES.total_max


def test_rank_key_orders_total_then_tkp_then_tiu_then_twk():
    assert skd_rank_key(SkdScores(twk=100, tiu=90, tkp=180)) == (370, 180, 90, 100)
