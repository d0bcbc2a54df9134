"""The columnar SKD ranking lists exactly what rank_skd lists, whatever the formasi."""

from __future__ import annotations

import random
from datetime import date, timedelta
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import domain.columnar as columnar_module
from domain.columnar import (
    CODES,
    columns_of,
    columns_of_entries,
    final_columns,
    id_order,
    rank_final_columns,
    rank_skd_columns,
)
from domain.config import Category, SkdRules, SkdThreshold
from domain.ranking import FinalEntry, SkdEntry, rank_final, rank_skd
from domain.skd import SkdScores

RULES = SkdRules()
FAST = settings(max_examples=200, deadline=None)

# Around the thresholds, so passes, failures and ties are all common (as in
# test_ranking_properties.py); sometimes anywhere in range, and sometimes a wide range.
narrow = st.builds(
    SkdScores,
    twk=st.integers(11, 16).map(lambda n: n * 5),
    tiu=st.integers(11, 20).map(lambda n: n * 5),
    tkp=st.integers(160, 175),
)
anywhere = st.builds(
    SkdScores,
    twk=st.integers(0, 30).map(lambda n: n * 5),
    tiu=st.integers(0, 35).map(lambda n: n * 5),
    tkp=st.integers(0, 225),
)
wide = st.builds(
    SkdScores, twk=st.integers(0, 1000), tiu=st.integers(0, 1000), tkp=st.integers(0, 1000)
)
# Registration numbers are 16 base32 characters; other ids (any text without NUL, shared
# prefixes longer than what the first sort pass packs) must order as Python orders str too.
base32 = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16)
prefixed = st.tuples(
    st.sampled_from(["", "A", "CASN-2026-", "CASN-2026-XYZ-", "\u00e9\u00e9\u00e9\u00e9"]),
    st.text("AB9z\u00e9\U0001f600", max_size=6),
).map("".join)
anything = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)))
ids = st.one_of(base32, prefixed, anything)


@st.composite
def formasi(draw, scores=st.one_of(narrow, anywhere)) -> list[SkdEntry]:
    """A formasi's SKD results, one per applicant (unique ids), in any category."""
    applicants = draw(st.lists(ids, unique=True, max_size=40))
    one_category = draw(st.booleans())
    category = draw(st.sampled_from(list(Category)))
    return [
        SkdEntry(
            applicant_id=a,
            category=category if one_category else draw(st.sampled_from(list(Category))),
            scores=draw(scores),
        )
        for a in applicants
    ]


minimum = st.one_of(st.none(), st.integers(0, 150))
thresholds = st.builds(SkdThreshold, twk=minimum, tiu=minimum, tkp=minimum, total=minimum)
rules = st.one_of(
    st.just(RULES),
    st.builds(
        lambda t, m: SkdRules(thresholds=dict(zip(Category, t, strict=True)), cut_multiplier=m),
        st.lists(thresholds, min_size=len(Category), max_size=len(Category)),
        st.integers(1, 4),
    ),
)
quotas = st.integers(0, 8)


def columnar(entries: list[SkdEntry], quota: int, rules: SkdRules):
    columns = columns_of_entries(entries)
    return rank_skd_columns(columns, quota, rules).ranking(columns.ids)


@FAST
@given(formasi(), quotas, rules)
def test_columnar_ranking_equals_rank_skd(entries, quota, rules):
    assert columnar(entries, quota, rules) == rank_skd(entries, quota, rules)


@FAST
@given(formasi(scores=wide), quotas)
def test_columnar_ranking_equals_rank_skd_for_scores_up_to_the_packing_limit(entries, quota):
    assert columnar(entries, quota, RULES) == rank_skd(entries, quota, RULES)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([(60, 80, 170), (65, 85, 166), (70, 80, 170)]), max_size=60))
def test_columnar_ranking_equals_rank_skd_when_nearly_everyone_ties(rows):
    entries = [
        SkdEntry(
            applicant_id=f"CASN-2026-{i:05d}",
            category=Category.UMUM,
            scores=SkdScores(twk=w, tiu=i_, tkp=k),
        )
        for i, (w, i_, k) in enumerate(reversed(rows))
    ]
    for quota in (0, 1, 3, 20):
        assert columnar(entries, quota, RULES) == rank_skd(entries, quota, RULES)


@FAST
@given(st.lists(ids, max_size=60))
def test_id_order_is_pythons_str_order(values):
    column = columns_of(
        values, [0] * len(values), [0] * len(values), [0] * len(values), [0] * len(values)
    ).ids
    listed = column[id_order(column)].tolist()
    assert [i.decode() if isinstance(i, bytes) else i for i in listed] == sorted(values)


def test_keys_too_wide_to_share_a_word_with_the_position_rank_the_same(monkeypatch):
    # 4 M rows with scores near 1023 take this path; here it is forced on small formasi.
    monkeypatch.setattr(columnar_module, "KEY_AND_POSITION_BITS", 0)
    rng = random.Random(17)
    for size in (0, 1, 2, 30, 200):
        entries = [
            SkdEntry(
                applicant_id=f"A{rng.randrange(10**6):06d}-{i}",
                category=rng.choice(list(Category)),
                scores=SkdScores(
                    twk=rng.randrange(11, 17) * 5,
                    tiu=rng.randrange(11, 21) * 5,
                    tkp=rng.randrange(160, 176),
                ),
            )
            for i in range(size)
        ]
        for quota in (0, 1, 5):
            assert columnar(entries, quota, RULES) == rank_skd(entries, quota, RULES)


def test_an_empty_formasi_has_no_lines_and_no_cut():
    ranking = rank_skd_columns(columns_of([], [], [], [], []), 3, RULES)
    assert (ranking.passers, ranking.cut_key, len(ranking.order)) == (0, None, 0)


def test_everyone_tied_at_the_cut_goes_on_to_skb():
    rows = [("C", 100), ("A", 90), ("B", 90), ("D", 90), ("E", 80)]
    columns = columns_of(
        [a for a, _ in rows], [0] * 5, [65] * 5, [tiu for _, tiu in rows], [170] * 5
    )
    lines = rank_skd_columns(columns, 1, SkdRules(cut_multiplier=2)).lines(columns.ids)
    assert [(x.applicant_id, x.rank, x.code) for x in lines] == [
        ("C", 1, CODES[0]),
        ("A", 2, CODES[0]),
        ("B", 2, CODES[0]),
        ("D", 2, CODES[0]),
        ("E", 5, CODES[1]),
    ]


@pytest.mark.parametrize(
    ("field", "values", "message"),
    [
        ("twk", [-5], "twk: score -5 outside 0..1023"),
        ("tkp", [1024], "tkp: score 1024 outside 0..1023"),
        ("category", [len(Category)], "category: value 6 is not an index"),
    ],
)
def test_a_bad_column_is_refused_naming_the_field_and_value(field, values, message):
    given_ = {"category": [0], "twk": [65], "tiu": [80], "tkp": [170]} | {field: values}
    with pytest.raises(ValueError, match=message):
        columns_of(["A"], given_["category"], given_["twk"], given_["tiu"], given_["tkp"])


def test_an_id_with_nul_is_refused():
    with pytest.raises(ValueError, match="ids: an applicant id contains NUL"):
        columns_of(["A\x00"], [0], [65], [80], [170])


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match=r"twk: shape \(2,\), expected \(1,\)"):
        columns_of(["A"], [0], np.array([65, 70]), [80], [170])


final_rows = st.lists(
    st.tuples(
        ids,
        st.integers(60, 62).map(Fraction) | st.fractions(60, 64, max_denominator=7),
        # a few SKD results, so ties reach the GPA and the birth date
        st.sampled_from([SkdScores(twk=65, tiu=80, tkp=170), SkdScores(twk=70, tiu=75, tkp=170)])
        | narrow,
        st.sampled_from([3.0, 3.25, 3.5, 3.1, 2.999999]),
        st.integers(-3, 3),
    ),
    max_size=30,
    unique_by=lambda row: row[0],
)


@FAST
@given(final_rows, st.integers(0, 8))
def test_columnar_final_ranking_equals_rank_final(rows, quota):
    entries = [
        FinalEntry(
            applicant_id=a,
            formasi_code="F1",
            final_score=final,
            skd=s,
            gpa=gpa,
            birth_date=date(1995, 1, 10) + timedelta(days=day),
        )
        for a, final, s, gpa, day in rows
    ]
    columns = final_columns(entries)
    assert rank_final_columns(columns, quota).result(columns.ids) == rank_final(entries, quota)


def test_final_ties_go_to_the_higher_gpa_then_the_older_applicant():
    def entry(a: str, gpa: float, born: date) -> FinalEntry:
        return FinalEntry(
            applicant_id=a,
            formasi_code="F1",
            final_score=Fraction(70),
            skd=SkdScores(twk=80, tiu=90, tkp=170),
            gpa=gpa,
            birth_date=born,
        )

    entries = [
        entry("A", 3.5, date(1999, 1, 1)),
        entry("B", 3.6, date(1999, 1, 1)),
        entry("C", 3.5, date(1990, 1, 1)),
    ]
    columns = final_columns(entries)
    result = rank_final_columns(columns, 2).result(columns.ids)
    assert (result.winners, result.others) == (["B", "C"], ["A"])
