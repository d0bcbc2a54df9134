"""Optimalisasi: empty seats go to those who lost on rank in a formasi with the same job and education."""

from __future__ import annotations

import itertools
from datetime import date
from fractions import Fraction

import pytest

from domain.optimalisasi import Offer, OptimalisasiCandidate, Vacancy, allocate
from domain.ranking import FinalEntry
from domain.skd import SkdScores

PRANATA = "Pranata Komputer Ahli Pertama"


def vacancy(code: str, seats: int = 1, jabatan: str = PRANATA, education: str = "S1") -> Vacancy:
    return Vacancy(formasi_code=code, jabatan=jabatan, education_level=education, seats=seats)


def candidate(
    applicant_id: str,
    final: Fraction,
    from_formasi: str = "PK-AP-DISKOMINFO",
    jabatan: str = PRANATA,
    education: str = "S1",
    skd=(100, 100, 200),
) -> OptimalisasiCandidate:
    twk, tiu, tkp = skd
    return OptimalisasiCandidate(
        entry=FinalEntry(
            applicant_id=applicant_id,
            formasi_code=from_formasi,
            final_score=final,
            skd=SkdScores(twk=twk, tiu=tiu, tkp=tkp),
            gpa=3.4,
            birth_date=date(1997, 3, 3),
        ),
        jabatan=jabatan,
        education_level=education,
    )


def seated(offers: list[Offer]) -> dict[str, str]:
    return {o.applicant_id: o.to_formasi for o in offers}


def test_empty_seat_goes_to_the_best_who_lost_in_a_matching_formasi():
    offers = allocate(
        [vacancy("PK-AP-BAPPEDA")],
        [candidate("second", Fraction(80)), candidate("first", Fraction(85))],
    )
    assert offers == [
        Offer(applicant_id="first", from_formasi="PK-AP-DISKOMINFO", to_formasi="PK-AP-BAPPEDA")
    ]


def test_a_declined_seat_passes_to_the_next_in_rank():
    field = [candidate("first", Fraction(85)), candidate("second", Fraction(80))]
    offers = allocate([vacancy("PK-AP-BAPPEDA")], field, declined=["first"])
    assert seated(offers) == {"second": "PK-AP-BAPPEDA"}


def test_seats_run_out_after_everyone_declines():
    field = [candidate("first", Fraction(85)), candidate("second", Fraction(80))]
    assert allocate([vacancy("PK-AP-BAPPEDA")], field, declined=["first", "second"]) == []


def test_equal_final_scores_go_by_the_final_tie_break_chain():
    field = [
        candidate("lower-skd", Fraction(80), skd=(100, 100, 200)),
        candidate("higher-skd", Fraction(80), skd=(100, 100, 201)),
    ]
    assert seated(allocate([vacancy("PK-AP-BAPPEDA")], field)) == {"higher-skd": "PK-AP-BAPPEDA"}


# (case, vacancy's jabatan, vacancy's education level, offered)
MATCHES = [
    ("same jabatan and education", PRANATA, "S1", True),
    ("same, differently written", "  pranata komputer ahli pertama ", "s1", True),
    ("different jabatan", "Analis Kebijakan Ahli Pertama", "S1", False),
    ("different education level", PRANATA, "D3", False),
]


@pytest.mark.parametrize(
    ("jabatan", "education", "offered"),
    [case[1:] for case in MATCHES],
    ids=[case[0] for case in MATCHES],
)
def test_only_same_jabatan_and_education_level_match(jabatan, education, offered):
    offers = allocate(
        [vacancy("OTHER", jabatan=jabatan, education=education)],
        [candidate("a", Fraction(80))],
    )
    assert bool(offers) is offered


def test_a_candidate_takes_at_most_one_seat():
    offers = allocate(
        [vacancy("PK-AP-BAPPEDA"), vacancy("PK-AP-SETDA")],
        [candidate("only", Fraction(85))],
    )
    assert len(offers) == 1


def test_several_seats_go_to_as_many_candidates_in_rank_order():
    field = [candidate(f"c{i}", Fraction(90 - i)) for i in range(4)]
    offers = allocate([vacancy("PK-AP-BAPPEDA", seats=2), vacancy("PK-AP-SETDA")], field)
    assert [o.applicant_id for o in offers] == ["c0", "c1", "c2"]


def test_a_vacancy_with_no_seats_is_not_offered():
    assert allocate([vacancy("PK-AP-BAPPEDA", seats=0)], [candidate("a", Fraction(85))]) == []


VACANCIES = [
    vacancy("PK-AP-BAPPEDA"),
    vacancy("PK-AP-SETDA", seats=2),
    vacancy("ARSIP", jabatan="Arsiparis Terampil", education="D3"),
]
CANDIDATES = [
    candidate("p1", Fraction(88)),
    candidate("p2", Fraction(84), from_formasi="PK-AP-INSPEKTORAT"),
    candidate("p3", Fraction(84), skd=(100, 100, 190)),
    candidate("p4", Fraction(70)),
    candidate(
        "ar1", Fraction(75), from_formasi="ARSIP-B", jabatan="Arsiparis Terampil", education="D3"
    ),
    candidate(
        "ar2", Fraction(79), from_formasi="ARSIP-B", jabatan="Arsiparis Terampil", education="D3"
    ),
]


@pytest.mark.parametrize("shift", range(6))
def test_offers_do_not_depend_on_input_order(shift):
    expected = allocate(VACANCIES, CANDIDATES)
    candidates = CANDIDATES[shift:] + CANDIDATES[:shift]
    for vacancies in itertools.permutations(VACANCIES):
        assert allocate(list(vacancies), list(reversed(candidates))) == expected
        assert allocate(list(vacancies), candidates) == expected


def test_offers_in_a_mixed_round_go_to_the_best_match_for_each_seat():
    assert seated(allocate(VACANCIES, CANDIDATES)) == {
        "p1": "PK-AP-BAPPEDA",
        "p2": "PK-AP-SETDA",
        "p3": "PK-AP-SETDA",
        "ar2": "ARSIP",
    }
