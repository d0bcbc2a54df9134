"""Optimalisasi: empty seats go to those who lost on rank and are in the seat's pool."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

import pytest

from domain.codes import Terminal
from domain.config import Formasi
from domain.optimalisasi import (
    POOL_FIELDS,
    CandidateProfile,
    Offer,
    OptimalisasiCandidate,
    Vacancy,
    allocate,
    offer_room,
    over_quota,
    pool_refusals,
    seats_held,
)
from domain.ranking import FinalEntry
from domain.registration import Gender, Registration, check_registration
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


# --- the pool: majors and ages of the seat's formasi, as registration judges them (issue 14) ----

APPLIED = date(2026, 9, 1)


def formasi(
    code: str, majors: list[str], jabatan: str = PRANATA, min_age: int = 18, max_age: int = 35
) -> Formasi:
    return Formasi(
        code=code,
        jabatan=jabatan,
        unit="Dinas",
        education_level="S1",
        majors=majors,
        min_age=min_age,
        max_age=max_age,
        quota=1,
    )


def profiled(
    applicant_id: str,
    final: Fraction,
    major: str | None,
    born: date = date(1997, 3, 3),
    applied_on: date | None = APPLIED,
) -> OptimalisasiCandidate:
    c = candidate(applicant_id, final)
    return c.model_copy(
        update={
            "entry": c.entry.model_copy(update={"birth_date": born}),
            "profile": None
            if major is None
            else CandidateProfile(major=major, applied_on=applied_on),
        }
    )


def seat_in(f: Formasi, seats: int = 1) -> Vacancy:
    return Vacancy(
        formasi_code=f.code,
        jabatan=f.jabatan,
        education_level=f.education_level,
        seats=seats,
        formasi=f,
    )


BAPPEDA = formasi("PK-AP-BAPPEDA", ["Teknik Informatika", "Sistem Informasi"])


def test_a_major_the_seats_formasi_does_not_accept_is_skipped_for_the_next_in_rank():
    field = [
        profiled("ilkom", Fraction(90), "Ilmu Komputer"),
        profiled("si", Fraction(80), "Sistem Informasi"),
    ]
    assert seated(allocate([seat_in(BAPPEDA)], field)) == {"si": "PK-AP-BAPPEDA"}


def test_the_issues_case_akuntansi_gets_no_seat_that_takes_only_ekonomi_pembangunan():
    ep = formasi("EP", ["Ekonomi Pembangunan"], jabatan="Analis Keuangan")
    akuntansi = profiled("akt", Fraction(95), "Akuntansi")
    akuntansi = akuntansi.model_copy(update={"jabatan": "Analis Keuangan"})
    assert allocate([seat_in(ep)], [akuntansi]) == []


def test_majors_compare_as_registration_compares_them():
    field = [profiled("a", Fraction(90), "  sistem INFORMASI ")]
    assert seated(allocate([seat_in(BAPPEDA)], field)) == {"a": "PK-AP-BAPPEDA"}


def test_an_unknown_major_is_never_shown_to_qualify():
    assert allocate([seat_in(BAPPEDA)], [profiled("a", Fraction(90), None)]) == []


def test_a_candidate_too_old_for_the_seats_formasi_is_skipped():
    young = formasi("YOUNG", ["Sistem Informasi"], max_age=30)
    field = [
        profiled("old", Fraction(90), "Sistem Informasi", born=date(1993, 1, 1)),  # 33
        profiled("thirty", Fraction(80), "Sistem Informasi", born=date(1995, 9, 1)),  # 31 on 1 Sep
        profiled("young", Fraction(70), "Sistem Informasi", born=date(1995, 9, 2)),  # 30
    ]
    assert seated(allocate([seat_in(young)], field)) == {"young": "YOUNG"}


def test_age_without_an_application_date_is_judged_on_the_date_given():
    young = formasi("YOUNG", ["Sistem Informasi"], max_age=30)
    c = profiled("c", Fraction(90), "Sistem Informasi", born=date(1995, 9, 2), applied_on=None)
    assert allocate([seat_in(young)], [c]) == []  # no date at all: cannot be judged
    assert seated(allocate([seat_in(young)], [c], judged_on=date(2026, 9, 1))) == {"c": "YOUNG"}
    assert allocate([seat_in(young)], [c], judged_on=date(2026, 9, 2)) == []  # 31 that day


def test_a_vacancy_without_its_formasi_keeps_the_recorded_rule():
    """Rounds recorded before the pool compared jabatan and education only, and replay so."""
    old = Vacancy(formasi_code="PK-AP-BAPPEDA", jabatan=PRANATA, education_level="S1", seats=1)
    assert seated(allocate([old], [profiled("ilkom", Fraction(90), "Ilmu Komputer")])) == {
        "ilkom": "PK-AP-BAPPEDA"
    }


def test_a_chain_of_declines_passes_the_seat_down_the_pool_only():
    field = [
        profiled("si1", Fraction(95), "Sistem Informasi"),
        profiled("ilkom", Fraction(90), "Ilmu Komputer"),
        profiled("ti", Fraction(85), "Teknik Informatika"),
        profiled("si2", Fraction(80), "Sistem Informasi"),
    ]
    seat = [seat_in(BAPPEDA)]
    assert seated(allocate(seat, field)) == {"si1": "PK-AP-BAPPEDA"}
    assert seated(allocate(seat, field, declined=["si1"])) == {"ti": "PK-AP-BAPPEDA"}
    assert seated(allocate(seat, field, declined=["si1", "ti"])) == {"si2": "PK-AP-BAPPEDA"}
    assert allocate(seat, field, declined=["si1", "ti", "si2"]) == []


def test_a_candidate_takes_the_lowest_coded_formasi_whose_pool_it_is_in():
    diskominfo = formasi("PK-AP-DISKOMINFO", ["Ilmu Komputer", "Sistem Informasi"])
    field = [profiled("ilkom", Fraction(90), "Ilmu Komputer")]
    assert seated(allocate([seat_in(BAPPEDA), seat_in(diskominfo)], field)) == {
        "ilkom": "PK-AP-DISKOMINFO"
    }


# (case, major, birth date, registration's verdict for BAPPEDA on APPLIED)
AS_REGISTRATION = [
    ("accepted", "Sistem Informasi", date(1997, 3, 3)),
    ("major refused", "Ilmu Komputer", date(1997, 3, 3)),
    ("too old", "Sistem Informasi", date(1990, 1, 1)),
    ("too young", "Sistem Informasi", date(2009, 1, 1)),
    ("both", "Akuntansi", date(1980, 1, 1)),
]


@pytest.mark.parametrize(
    ("major", "born"), [c[1:] for c in AS_REGISTRATION], ids=[c[0] for c in AS_REGISTRATION]
)
def test_the_pool_refuses_exactly_what_check_registration_refuses(major, born):
    reg = Registration(
        nik=f"327301{born:%d%m%y}0001",
        name="Peserta",
        birth_date=born,
        gender=Gender.MALE,
        education_level="S1",
        major=major,
        gpa=3.4,
        formasi_code=BAPPEDA.code,
    )
    registration_says = {
        r.field for r in check_registration(reg, BAPPEDA, APPLIED) if r.field in POOL_FIELDS
    }
    c = profiled("c", Fraction(80), major, born=born)
    assert {r.field for r in pool_refusals(c, BAPPEDA)} == registration_says
    assert bool(allocate([seat_in(BAPPEDA)], [c])) is (not registration_says)


# --- the history budget (patch optimalisasi-budget) -------------------------------------------


@pytest.mark.parametrize(
    ("budget", "length", "signals", "pending", "room"),
    [
        (40_000, 1_000, 10, 0, 2_599),  # (40,000 - 1,000 - 6) // 15
        (40_000, 1_000, 10, 250, 2_349),  # the pending offers' answers are kept room for
        (40_000, 39_980, 10, 0, 0),  # less than the allocation and one offer left
        (1, 500, 0, 0, 0),  # spent before it starts: never below 0
        (45_000, 100, 8_990, 0, 10),  # Temporal's signals run out first
        (45_000, 100, 8_000, 995, 5),  # each pending offer still brings its answer
    ],
)
def test_offer_room_keeps_each_answer_within_the_history_and_the_signals(
    budget, length, signals, pending, room
):
    assert offer_room(budget, length, signals, pending) == room


# --- seats held and a formasi over its quota (audit.py recompute, the evaluation report) ------


@dataclass
class Placed:
    placed_formasi: str | None
    terminal: Terminal | None = None


def test_a_seat_is_held_while_its_journey_runs_and_once_appointed_never_after_it_ends_otherwise():
    journeys = [
        Placed("F1"),  # running: holds it
        Placed("F1", Terminal.PNS),
        Placed("F1", Terminal.WITHDRAWN),  # gave it up
        Placed("F2", Terminal.TMS),
        Placed(None),  # not placed
        None,  # a journey whose replay gave no state
    ]
    assert seats_held(journeys) == {"F1": 2}


def test_a_formasi_over_its_quota_is_named_and_none_at_or_under_it():
    f1 = formasi("F1", ["Teknik Informatika"]).model_copy(update={"quota": 2})
    f2 = formasi("F2", ["Teknik Informatika"])  # quota 1
    held = seats_held([Placed("F1"), Placed("F1", Terminal.PNS), Placed("F2"), Placed("F2")])
    assert over_quota([f1, f2], held) == ["F2 holds 2 for 1 seats"]
    assert over_quota([f1, f2], seats_held([Placed("F1"), Placed("F2")])) == []


# --- the most seats filled, nobody passed over (patch optimalisasi-fills-most) -----------------

MAJORS = ["Hukum", "Ekonomi", "Sastra"]


def test_a_seat_left_empty_by_the_lowest_code_goes_to_the_next_in_rank_when_fill_most():
    """F1 takes Hukum or Ekonomi, F2 only Hukum. The Hukum candidate, ranked first, took F1 and
    the Ekonomi candidate got nothing: F2 stayed empty. Filling the most, both are seated."""
    f1, f2 = formasi("F1", ["Hukum", "Ekonomi"]), formasi("F2", ["Hukum"])
    field = [profiled("hukum", Fraction(85), "Hukum"), profiled("ekonomi", Fraction(80), "Ekonomi")]
    seats = [seat_in(f1), seat_in(f2)]
    assert seated(allocate(seats, field)) == {"hukum": "F1"}
    offers = allocate(seats, field, fill_most=True)
    assert seated(offers) == {"hukum": "F2", "ekonomi": "F1"}
    assert [o.applicant_id for o in offers] == ["hukum", "ekonomi"]  # best first


def test_filling_the_most_never_seats_someone_over_a_better_ranked_candidate_who_could_be():
    """Three seats, four candidates: the fourth would fill more only by unseating the third."""
    f1, f2 = formasi("F1", ["Hukum"]), formasi("F2", ["Ekonomi"])
    field = [
        profiled("h1", Fraction(90), "Hukum"),
        profiled("h2", Fraction(85), "Hukum"),
        profiled("e1", Fraction(80), "Ekonomi"),
    ]
    offers = allocate([seat_in(f1), seat_in(f2)], field, fill_most=True)
    assert seated(offers) == {"h1": "F1", "e1": "F2"}  # h2 has no seat of its pools left


def _matchable(pools: list[list[str]], seats: dict[str, int]) -> bool:
    """Whether every candidate with these pools can be seated at once (brute force)."""
    slots = [code for code, n in seats.items() for _ in range(n)]
    if len(pools) > len(slots):
        return False
    return any(
        all(slots[j] in pool for pool, j in zip(pools, chosen, strict=True))
        for chosen in itertools.permutations(range(len(slots)), len(pools))
    )


@pytest.mark.parametrize("seed", range(60))
def test_fill_most_seats_the_best_ranked_set_that_can_be_seated_and_never_fewer(seed):
    """Against brute force on small rounds: candidates taken best first, each kept when the kept
    set can still all be seated; filling the most seats exactly that set, each within its pools,
    and never fewer than the lowest-code allocation."""
    import random

    rng = random.Random(seed)
    codes = [f"F{i}" for i in range(1, rng.randint(2, 3) + 1)]
    accepted = {code: rng.sample(MAJORS, rng.randint(1, 2)) for code in codes}
    seats = {code: rng.randint(1, 2) for code in codes}
    field = [
        profiled(f"c{i}", Fraction(100 - i), rng.choice(MAJORS)) for i in range(rng.randint(2, 5))
    ]
    vacancies = [seat_in(formasi(code, accepted[code]), seats[code]) for code in codes]
    pool = {
        c.entry.applicant_id: [code for code in codes if c.profile.major in accepted[code]]
        for c in field
    }
    kept: list[str] = []
    for c in field:  # already best first
        if _matchable([pool[a] for a in [*kept, c.entry.applicant_id]], seats):
            kept.append(c.entry.applicant_id)
    offers = allocate(vacancies, field, fill_most=True)
    assert [o.applicant_id for o in offers] == kept
    assert all(o.to_formasi in pool[o.applicant_id] for o in offers)
    assert all(sum(o.to_formasi == code for o in offers) <= seats[code] for code in codes)
    assert len(offers) >= len(allocate(vacancies, field))


def test_fill_most_is_the_lowest_code_allocation_wherever_that_leaves_no_one_out():
    """The recorded rule's offers, unchanged, in every case of this file that seats everyone it can."""
    assert allocate(VACANCIES, CANDIDATES, fill_most=True) == allocate(VACANCIES, CANDIDATES)
    diskominfo = formasi("PK-AP-DISKOMINFO", ["Ilmu Komputer", "Sistem Informasi"])
    field = [profiled("ilkom", Fraction(90), "Ilmu Komputer")]
    both = [seat_in(BAPPEDA), seat_in(diskominfo)]
    assert allocate(both, field, fill_most=True) == allocate(both, field)
