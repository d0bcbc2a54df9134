"""The satisfaction survey (SKM): nine elements on a 1..4 scale, the IKM (mean x 25) and its bands."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import RuleViolation
from domain.skm import ELEMENTS, ikm, ikm_of_totals, quality, validate_answers


def responses_totalling(n: int, total: int) -> list[list[int]]:
    """n responses whose 9n answers add up to `total` (the IKM depends only on that sum:
    IKM = 25 x total / (9 n)), spread as evenly as the 1..4 scale allows."""
    assert 9 * n <= total <= 36 * n
    answers = [1] * (9 * n)
    extra = total - 9 * n
    for i in range(len(answers)):
        step = min(3, extra)
        answers[i] += step
        extra -= step
    assert sum(answers) == total
    return [answers[9 * k : 9 * k + 9] for k in range(n)]


def test_the_nine_elements_of_permenpanrb_14_2017_in_order():
    assert [e.code for e in ELEMENTS] == [f"U{i}" for i in range(1, 10)]
    assert [e.name for e in ELEMENTS] == [
        "Persyaratan",
        "Sistem, mekanisme dan prosedur",
        "Waktu penyelesaian",
        "Biaya/tarif",
        "Produk spesifikasi jenis pelayanan",
        "Kompetensi pelaksana",
        "Perilaku pelaksana",
        "Penanganan pengaduan, saran dan masukan",
        "Sarana dan prasarana",
    ]
    assert all(e.question.endswith("?") and len(e.choices) == 4 for e in ELEMENTS)


def test_the_ikm_is_the_mean_of_the_element_means_times_25_computed_by_hand():
    # NRR per element: (4+3)/2=3.5, (4+3)/2=3.5, (3+3)/2=3, (3+4)/2=3.5, (4+4)/2=4,
    # (3+3)/2=3, (3+4)/2=3.5, (2+3)/2=2.5, (4+3)/2=3.5; sum 30; x 1/9 = 3.3333; x 25 = 83.33.
    result = ikm([[4, 4, 3, 3, 4, 3, 3, 2, 4], [3, 3, 3, 4, 4, 3, 4, 3, 3]])
    assert result.per_element == (3.5, 3.5, 3.0, 3.5, 4.0, 3.0, 3.5, 2.5, 3.5)
    assert result.value == 83.33
    assert (result.band, result.label) == ("B", "Baik")
    assert result.respondents == 2


def test_one_respondent_of_mixed_answers():
    # (1+2+3+4+4+3+2+1+4) = 24; 24/9 x 25 = 66.666... -> 66.67, band C.
    result = ikm([[1, 2, 3, 4, 4, 3, 2, 1, 4]])
    assert result.value == 66.67
    assert (result.band, result.label) == ("C", "Kurang Baik")


def test_all_best_answers_give_100_and_all_worst_give_25():
    assert (ikm([[4] * 9] * 3).value, ikm([[4] * 9] * 3).band) == (100.0, "A")
    worst = ikm([[1] * 9])
    assert (worst.value, worst.band, worst.label) == (25.0, "D", "Tidak Baik")


@pytest.mark.parametrize(
    ("printed", "band", "label"),
    [
        ("100", "A", "Sangat Baik"),
        ("88.31", "A", "Sangat Baik"),
        ("88.30", "B", "Baik"),
        ("76.61", "B", "Baik"),
        ("76.60", "C", "Kurang Baik"),
        ("65.00", "C", "Kurang Baik"),
        ("64.99", "D", "Tidak Baik"),
        ("25", "D", "Tidak Baik"),
    ],
)
def test_every_printed_band_boundary(printed, band, label):
    assert quality(Decimal(printed)) == (band, label)
    assert quality(float(printed)) == (band, label)


@pytest.mark.parametrize(
    ("value", "band"),
    [
        (88.305, "A"),  # rounds to 88.31
        (88.3049, "B"),  # rounds to 88.30
        (76.605, "B"),  # rounds to 76.61
        (76.6049, "C"),
        (64.995, "C"),  # rounds to 65.00
        (64.9949, "D"),
    ],
)
def test_a_value_between_printed_bounds_is_rounded_to_2_decimals_half_up_first(value, band):
    assert quality(value)[0] == band
    assert quality(Decimal(repr(value)))[0] == band


@pytest.mark.parametrize(
    ("n", "total", "value", "band"),
    [
        (24, 763, 88.31, "A"),  # 25 x 763 / 216 = 88.3101...
        (19, 604, 88.30, "B"),  # 25 x 604 / 171 = 88.3040...
        (19, 524, 76.61, "B"),  # 25 x 524 / 171 = 76.6081...
        (26, 717, 76.60, "C"),  # 25 x 717 / 234 = 76.6025...
        (5, 117, 65.00, "C"),  # 25 x 117 / 45 = 65 exactly
        (38, 889, 64.99, "D"),  # 25 x 889 / 342 = 64.9853...
        (5000, 158949, 88.31, "A"),  # 25 x 158949 / 45000 = 88.305 exactly, half up
        (5000, 137889, 76.61, "B"),  # = 76.605 exactly, half up
    ],
)
def test_surveys_whose_ikm_falls_on_a_boundary(n, total, value, band):
    result = ikm(responses_totalling(n, total))
    assert (result.value, result.band, result.respondents) == (value, band, n)


@pytest.mark.parametrize(
    ("answers", "field", "value"),
    [
        ([4, 4, 4, 4, 4, 4, 4, 4], "answers", 8),
        ([4] * 10, "answers", 10),
        ([4, 0, 4, 4, 4, 4, 4, 4, 4], "U2 (Sistem, mekanisme dan prosedur)", 0),
        ([4, 4, 4, 5, 4, 4, 4, 4, 4], "U4 (Biaya/tarif)", 5),
        ([4, 4, 4, 4, 4, 4, 4, 4, "3"], "U9 (Sarana dan prasarana)", "3"),
        ([4, 4, 4, 4, 4, 4, 3.0, 4, 4], "U7 (Perilaku pelaksana)", 3.0),
        ([True, 4, 4, 4, 4, 4, 4, 4, 4], "U1 (Persyaratan)", True),
    ],
)
def test_a_response_is_refused_naming_the_element_and_the_value(answers, field, value):
    with pytest.raises(RuleViolation) as refused:
        validate_answers(answers)
    assert (refused.value.field, refused.value.value) == (field, value)
    assert field in str(refused.value) and repr(value) in str(refused.value)


def test_the_ikm_names_the_response_that_is_refused():
    with pytest.raises(RuleViolation) as refused:
        ikm([[4] * 9, [4, 4, 4, 4, 4, 4, 4, 9, 4]])
    assert refused.value.field == "responses[1].U8 (Penanganan pengaduan, saran dan masukan)"
    assert refused.value.value == 9


def test_no_responses_no_index_and_no_index_outside_25_to_100():
    with pytest.raises(RuleViolation, match="at least one"):
        ikm([])
    for outside in (24.99, 100.01):
        with pytest.raises(RuleViolation, match="25..100"):
            quality(outside)


def test_the_ikm_of_each_elements_sum_is_the_ikm_of_the_responses():
    responses = [
        [4, 4, 3, 3, 4, 3, 3, 2, 4],
        [3, 3, 3, 4, 4, 3, 4, 3, 3],
        [1, 2, 3, 4, 4, 3, 2, 1, 4],
    ]
    totals = [sum(r[i] for r in responses) for i in range(9)]
    assert ikm_of_totals(totals, 3) == ikm(responses)
    with pytest.raises(RuleViolation) as refused:
        ikm_of_totals([8, 8, 8, 8, 8, 8, 8, 8, 13], 3)  # 3 answers add up to 12 at most
    assert (refused.value.field, refused.value.value) == ("U9 (Sarana dan prasarana)", 13)
