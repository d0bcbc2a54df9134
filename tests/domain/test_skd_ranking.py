"""SKD ranking of a formasi: tie-breaks, the 3 x quota cut, ties at the cut, and the streaming cut."""

from __future__ import annotations

import itertools

import pytest

from domain.codes import SkdCode
from domain.config import Category, SkdRules
from domain.ranking import SkdCutTracker, SkdEntry, rank_skd, skd_cut_size
from domain.skd import SkdScores, skd_rank_key

RULES = SkdRules()
PL, P, TL = SkdCode.PASSED_TO_SKB, SkdCode.PASSED, SkdCode.FAILED


def entry(applicant_id: str, twk: int, tiu: int, tkp: int, category=Category.UMUM) -> SkdEntry:
    return SkdEntry(
        applicant_id=applicant_id,
        category=category,
        scores=SkdScores(twk=twk, tiu=tiu, tkp=tkp),
    )


def codes(entries, quota: int) -> dict[str, SkdCode]:
    return {line.applicant_id: line.code for line in rank_skd(entries, quota, RULES).lines}


def order(entries, quota: int = 10) -> list[str]:
    return [line.applicant_id for line in rank_skd(entries, quota, RULES).lines]


def test_cut_is_three_times_the_quota():
    assert [skd_cut_size(q, RULES) for q in (0, 1, 2, 7)] == [0, 3, 6, 21]


# (case, better applicant's scores, worse applicant's scores) -- same SKD total in each row.
# TWK never decides alone: with total, TKP and TIU equal, TWK is equal too.
TIE_BREAKS = [
    ("higher total first", (100, 100, 200), (100, 100, 199)),
    ("same total: higher TKP first", (90, 100, 200), (100, 100, 190)),
    ("same total and TKP: higher TIU first", (90, 110, 200), (100, 100, 200)),
]


@pytest.mark.parametrize(
    ("better", "worse"),
    [case[1:] for case in TIE_BREAKS],
    ids=[case[0] for case in TIE_BREAKS],
)
def test_tie_breaks_go_total_then_tkp_then_tiu(better, worse):
    # Two stronger applicants fill two of the three seats of quota 1; the third seat decides.
    field = [entry("top-1", 150, 175, 225), entry("top-2", 150, 175, 224)]
    result = codes([*field, entry("worse", *worse), entry("better", *better)], quota=1)
    assert (result["better"], result["worse"]) == (PL, P)


def test_top_three_times_quota_go_on_and_the_rest_get_p():
    entries = [entry(f"a{i}", 100, 100, 200 - i) for i in range(8)]
    result = codes(entries, quota=2)
    assert [result[f"a{i}"] for i in range(8)] == [PL] * 6 + [P] * 2


def test_tie_at_cutoff_takes_everyone_tied():
    entries = [
        entry("a1", 100, 100, 220),
        entry("a2", 100, 100, 210),
        entry("a3", 100, 100, 200),
        entry("a4", 100, 100, 200),  # tied with a3 on every part
        entry("a5", 100, 100, 199),
    ]
    result = codes(entries, quota=1)
    assert sorted(a for a, c in result.items() if c == PL) == ["a1", "a2", "a3", "a4"]
    assert result["a5"] == P


def test_tie_just_above_the_cut_does_not_widen_it():
    entries = [
        entry("a1", 100, 100, 220),
        entry("a2", 100, 100, 220),
        entry("a3", 100, 100, 200),
        entry("a4", 100, 100, 199),
    ]
    result = codes(entries, quota=1)
    assert [result[a] for a in ("a1", "a2", "a3", "a4")] == [PL, PL, PL, P]


def test_fewer_passers_than_the_cut_all_go_on():
    entries = [entry("a1", 100, 100, 200), entry("a2", 65, 80, 166), entry("low", 60, 80, 166)]
    assert codes(entries, quota=5) == {"a1": PL, "a2": PL, "low": TL}


def test_below_threshold_is_t_l_without_a_rank_even_with_a_high_total():
    ranking = rank_skd([entry("a1", 60, 175, 225), entry("a2", 65, 80, 166)], 1, RULES)
    line = {x.applicant_id: x for x in ranking.lines}["a1"]
    assert (line.code, line.rank, line.total) == (TL, None, 460)


def test_each_applicant_is_judged_by_their_own_category_threshold():
    entries = [
        entry("umum", 60, 90, 200),  # TWK 60 < 65: fails the general threshold
        entry("disabilitas", 60, 60, 170, Category.DISABILITAS),  # 290 >= 286
    ]
    assert codes(entries, quota=1) == {"umum": TL, "disabilitas": PL}


def test_quota_zero_sends_nobody_to_skb():
    ranking = rank_skd([entry("a1", 100, 100, 200), entry("a2", 60, 80, 166)], 0, RULES)
    assert ranking.cut_key is None
    assert {x.applicant_id: x.code for x in ranking.lines} == {"a1": P, "a2": TL}


def test_nobody_passing_leaves_no_cut():
    ranking = rank_skd([entry("a1", 60, 80, 166)], 2, RULES)
    assert ranking.cut_key is None and ranking.lines[0].code == TL


def test_no_entries_gives_an_empty_ranking():
    ranking = rank_skd([], 2, RULES)
    assert (ranking.lines, ranking.cut_key) == ([], None)


def test_equal_keys_share_a_rank_and_the_next_rank_skips():
    entries = [
        entry("a", 100, 100, 210),
        entry("b", 100, 100, 200),
        entry("c", 100, 100, 200),
        entry("d", 100, 100, 190),
    ]
    ranks = {x.applicant_id: x.rank for x in rank_skd(entries, 5, RULES).lines}
    assert ranks == {"a": 1, "b": 2, "c": 2, "d": 4}


def test_announcement_lists_passers_best_first_then_those_below_threshold():
    entries = [
        entry("fail", 60, 80, 166),
        entry("mid", 100, 100, 190),
        entry("best", 100, 100, 210),
    ]
    assert order(entries) == ["best", "mid", "fail"]


def test_cut_key_is_the_key_of_the_last_seat_before_ties():
    entries = [entry(f"a{i}", 100, 100, 220 - i) for i in range(5)]
    assert rank_skd(entries, 1, RULES).cut_key == (418, 218, 100, 100)


STREAM = [
    entry("a1", 100, 100, 200),
    entry("a2", 100, 100, 210),
    entry("a3", 100, 100, 200),
    entry("a4", 90, 100, 190),
    entry("a5", 100, 110, 220),
    entry("a6", 100, 100, 180),
]


@pytest.mark.parametrize("arrival", list(itertools.permutations(range(len(STREAM))))[::37])
def test_cut_tracker_gives_rank_skd_cut_for_any_arrival_order(arrival):
    quota = 1
    tracker = SkdCutTracker(capacity=skd_cut_size(quota, RULES))
    for i in arrival:
        tracker.add(STREAM[i].applicant_id, skd_rank_key(STREAM[i].scores))
    assert tracker.cut_key() == rank_skd(STREAM, quota, RULES).cut_key


def test_cut_tracker_ignores_a_repeated_report_of_an_applicant_it_holds():
    tracker = SkdCutTracker(capacity=3)
    for e in STREAM[:3]:
        tracker.add(e.applicant_id, skd_rank_key(e.scores))
    before = tracker.model_copy(deep=True)
    tracker.add("a2", skd_rank_key(STREAM[1].scores))
    assert tracker == before


def test_cut_tracker_ignores_a_repeated_report_of_an_applicant_below_the_cut():
    tracker = SkdCutTracker(capacity=2)
    for e in STREAM:
        tracker.add(e.applicant_id, skd_rank_key(e.scores))
    entries_before, cut_before = list(tracker.entries), tracker.cut_key()
    tracker.add("a6", skd_rank_key(STREAM[5].scores))
    assert (tracker.entries, tracker.cut_key()) == (entries_before, cut_before)


def test_cut_tracker_with_no_capacity_or_no_passers_has_no_cut():
    empty = SkdCutTracker(capacity=3)
    closed = SkdCutTracker(capacity=0)
    closed.add("a1", (400, 200, 100, 100))
    assert (empty.cut_key(), closed.cut_key()) == (None, None)
