"""Properties of the rankings that must hold for every formasi, whatever the scores and order."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.codes import SkdCode
from domain.config import Category, SkdRules
from domain.ranking import (
    FinalEntry,
    SkdCutTracker,
    SkdEntry,
    final_rank_key,
    rank_final,
    rank_skd,
    skd_cut_size,
)
from domain.skd import SkdScores, passes_threshold, skd_rank_key

RULES = SkdRules()
FAST = settings(max_examples=200, deadline=None)

# Narrow ranges around the thresholds so that passes, failures and ties are all common.
scores = st.builds(
    SkdScores,
    twk=st.integers(11, 16).map(lambda n: n * 5),  # 55..80 around the TWK minimum 65
    tiu=st.integers(11, 20).map(lambda n: n * 5),  # 55..100 around 60, 80 and 85
    tkp=st.integers(160, 175),  # around the TKP minimum 166
)
categories = st.sampled_from(list(Category))


@st.composite
def formasi_entries(draw) -> list[SkdEntry]:
    """A formasi's SKD results, one per applicant."""
    results = draw(st.lists(st.tuples(categories, scores), max_size=30))
    return [
        SkdEntry(applicant_id=f"A{i:03d}", category=category, scores=s)
        for i, (category, s) in enumerate(results)
    ]


quotas = st.integers(0, 6)
RANK = {SkdCode.PASSED_TO_SKB: 2, SkdCode.PASSED: 1, SkdCode.FAILED: 0}


def passers(entries: list[SkdEntry]) -> list[SkdEntry]:
    return [e for e in entries if passes_threshold(e.scores, e.category, RULES)]


def codes_and_keys(entries, quota):
    keys = {e.applicant_id: skd_rank_key(e.scores) for e in entries}
    return [(line.code, keys[line.applicant_id]) for line in rank_skd(entries, quota, RULES).lines]


@FAST
@given(formasi_entries(), quotas)
def test_every_pl_key_is_at_least_every_p_key(entries, quota):
    lines = codes_and_keys(entries, quota)
    pl = [k for c, k in lines if c == SkdCode.PASSED_TO_SKB]
    p = [k for c, k in lines if c == SkdCode.PASSED]
    assert not pl or not p or min(pl) > max(p)


@FAST
@given(formasi_entries(), quotas)
def test_a_higher_key_never_gets_a_worse_code_among_passers(entries, quota):
    lines = [(c, k) for c, k in codes_and_keys(entries, quota) if c != SkdCode.FAILED]
    for code_a, key_a in lines:
        for code_b, key_b in lines:
            if key_a > key_b:
                assert RANK[code_a] >= RANK[code_b]


@FAST
@given(formasi_entries(), quotas)
def test_only_those_below_their_threshold_get_t_l(entries, quota):
    passed = {e.applicant_id for e in passers(entries)}
    for line in rank_skd(entries, quota, RULES).lines:
        assert (line.code == SkdCode.FAILED) is (line.applicant_id not in passed)


@FAST
@given(formasi_entries(), quotas)
def test_pl_list_is_never_shorter_than_the_cut_or_the_passers(entries, quota):
    lines = codes_and_keys(entries, quota)
    pl = [k for c, k in lines if c == SkdCode.PASSED_TO_SKB]
    assert len(pl) >= min(skd_cut_size(quota, RULES), len(passers(entries)))


@FAST
@given(formasi_entries(), quotas)
def test_pl_beyond_the_cut_are_only_those_tied_at_it(entries, quota):
    ranking = rank_skd(entries, quota, RULES)
    keys = {e.applicant_id: skd_rank_key(e.scores) for e in entries}
    pl = [keys[x.applicant_id] for x in ranking.lines if x.code == SkdCode.PASSED_TO_SKB]
    above_cut = [k for k in pl if k != ranking.cut_key]
    assert len(above_cut) < max(skd_cut_size(quota, RULES), 1)


@FAST
@given(formasi_entries(), quotas, st.randoms(use_true_random=False))
def test_ranking_does_not_depend_on_input_order(entries, quota, random):
    shuffled = list(entries)
    random.shuffle(shuffled)
    assert rank_skd(shuffled, quota, RULES) == rank_skd(entries, quota, RULES)


@FAST
@given(formasi_entries(), quotas, st.data())
def test_cut_tracker_equals_rank_skd_cut_for_streams_with_repeats(entries, quota, data):
    passing = passers(entries)
    repeats = data.draw(st.lists(st.sampled_from(passing), max_size=10)) if passing else []
    stream = data.draw(st.permutations(passing + repeats))
    tracker = SkdCutTracker(capacity=skd_cut_size(quota, RULES))
    for e in stream:
        tracker.add(e.applicant_id, skd_rank_key(e.scores))
    assert tracker.cut_key() == rank_skd(entries, quota, RULES).cut_key


final_entries = st.lists(
    st.builds(
        lambda final, s, gpa, day: (final, s, gpa, day),
        st.integers(60, 64).map(Fraction),  # few values: many final ties
        scores,
        st.sampled_from([3.0, 3.25, 3.5]),
        st.integers(0, 3),
    ),
    max_size=20,
).map(
    lambda rows: [
        FinalEntry(
            applicant_id=f"A{i:03d}",
            formasi_code="F1",
            final_score=final,
            skd=s,
            gpa=gpa,
            birth_date=date(1995, 1, 1 + day),
        )
        for i, (final, s, gpa, day) in enumerate(rows)
    ]
)


@FAST
@given(final_entries, quotas)
def test_winners_are_never_outranked_by_others(entries, quota):
    ranking = rank_final(entries, quota)
    key = {e.applicant_id: final_rank_key(e) for e in entries}
    for winner in ranking.winners:
        for other in ranking.others:
            assert key[winner] < key[other]  # smaller key ranks first


@FAST
@given(final_entries, quotas)
def test_seats_never_exceed_the_quota_and_none_is_left_empty_needlessly(entries, quota):
    ranking = rank_final(entries, quota)
    assert len(ranking.winners) == min(quota, len(entries))
    assert sorted(ranking.winners + ranking.others) == sorted(e.applicant_id for e in entries)


@FAST
@given(final_entries, quotas, st.randoms(use_true_random=False))
def test_final_ranking_does_not_depend_on_input_order(entries, quota, random):
    shuffled = list(entries)
    random.shuffle(shuffled)
    assert rank_final(shuffled, quota) == rank_final(entries, quota)
