"""A ranking recorded before scores were rounded exactly (12-08) still recomputes clean.

Until then a score's text went through a float: 73.2875 (SKD 440 of 550, SKB 68.8125) was
written 73.287, where it is now 73.288 (domain/integration.py display_score). `audit.py
recompute` writes the recomputed ranking in today's text; a ranking recorded then, as a list or
as pages, is compared in the text it was written in, and any other text is still a difference.
"""

from __future__ import annotations

from fractions import Fraction

from auditing.recompute import FormasiFigures, compare, legacy_score_text
from domain.messages import fraction_text
from domain.pages import line_pages

TIE = Fraction(732875, 10000)  # 40% of 440/550*100 + 60% of 68.8125
PLAIN = Fraction(70)


def _recomputed() -> FormasiFigures:
    scores = {"A": TIE, "B": PLAIN}
    return FormasiFigures(
        "F1",
        ranked=True,
        winners=[("A", fraction_text(TIE) or "")],
        others=[("B", fraction_text(PLAIN) or "")],
        legacy_winners=[("A", legacy_score_text(scores["A"]))],
        legacy_others=[("B", legacy_score_text(scores["B"]))],
    )


def test_the_two_texts_of_a_score_on_a_half_thousandth():
    assert (fraction_text(TIE), legacy_score_text(TIE)) == ("73.288", "73.287")
    assert fraction_text(PLAIN) == legacy_score_text(PLAIN) == "70.000"


def test_a_list_recorded_in_either_text_matches_and_another_text_does_not():
    recomputed = _recomputed()
    for text in ("73.288", "73.287"):
        announced = FormasiFigures(
            "F1", ranked=True, winners=[("A", text)], others=[("B", "70.000")]
        )
        assert compare(announced, recomputed) == [], text
    wrong = FormasiFigures("F1", ranked=True, winners=[("A", "73.289")], others=[("B", "70.000")])
    assert [d.split(":")[1].strip() for d in compare(wrong, recomputed)] == [
        "winners announced [('A', '73.289')], recomputed [('A', '73.288')]"
    ]


def _paged(text: str) -> FormasiFigures:
    def digests(lines):
        return [r.digest for r in line_pages([a for a, _ in lines], dict(lines), 10)]

    return FormasiFigures(
        "F1",
        ranked=True,
        winner_pages=digests([("A", text)]),
        other_pages=digests([("B", "70.000")]),
        page_items=10,
    )


def test_pages_recorded_in_either_text_match_and_another_text_does_not():
    recomputed = _recomputed()
    assert compare(_paged("73.288"), recomputed) == []
    assert compare(_paged("73.287"), recomputed) == []
    [difference] = compare(_paged("73.289"), recomputed)
    assert difference.startswith("formasi F1: winners announced as 1 page references"), difference
