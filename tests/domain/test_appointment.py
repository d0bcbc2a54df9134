"""NIP format and validation, the withdrawal sanction, and the probation (Latsar) outcome."""

from __future__ import annotations

from datetime import date

import pytest

from domain.appointment import format_nip, nip_problems, probation_outcome, withdrawal_sanction
from domain.codes import Terminal
from domain.errors import RuleViolation
from domain.registration import Gender

BIRTH = date(1998, 5, 17)
TMT = date(2028, 3, 1)


@pytest.mark.parametrize(
    ("gender", "serial", "nip"),
    [
        (Gender.MALE, 1, "199805172028031001"),
        (Gender.FEMALE, 42, "199805172028032042"),
        (Gender.MALE, 999, "199805172028031999"),
    ],
)
def test_nip_is_birth_date_tmt_month_gender_and_serial(gender, serial, nip):
    assert format_nip(BIRTH, TMT, gender, serial) == nip
    assert nip_problems(nip, BIRTH, TMT, gender) == []


@pytest.mark.parametrize("serial", [0, 1000, -1])
def test_nip_serial_outside_1_to_999_is_refused(serial):
    with pytest.raises(RuleViolation) as err:
        format_nip(BIRTH, TMT, Gender.MALE, serial)
    assert err.value.field == "serial"


# (case, NIP reported by BKN for a man born 1998-05-17 with TMT 2028-03, words of the problem)
BAD_NIPS = [
    ("17 digits", "19980517202803100", "18 digits"),
    ("a letter", "19980517202803100A", "18 digits"),
    ("gender digit 3", "199805172028033001", "18 digits"),
    ("another birth date", "199805182028031001", "birth-date part 19980518"),
    ("another TMT", "199805172028041001", "TMT part 202804"),
    ("a woman's gender digit", "199805172028032001", "gender digit 2"),
    ("serial 000", "199805172028031000", "serial 000"),
]


@pytest.mark.parametrize(
    ("nip", "words"),
    [case[1:] for case in BAD_NIPS],
    ids=[case[0] for case in BAD_NIPS],
)
def test_a_nip_that_does_not_fit_the_person_is_refused(nip, words):
    problems = nip_problems(nip, BIRTH, TMT, Gender.MALE)
    assert len(problems) == 1
    assert words in problems[0]


def test_a_moved_tmt_makes_the_old_nip_unfit():
    nip = format_nip(BIRTH, TMT, Gender.MALE, 5)
    assert nip_problems(nip, BIRTH, date(2028, 6, 1), Gender.MALE) != []


@pytest.mark.parametrize(
    ("passed", "rounds", "barred"),
    [(True, 2, 2), (False, 2, 0), (True, 0, 0), (True, 3, 3)],
    ids=["withdrew after passing", "withdrew before passing", "sanction off", "longer sanction"],
)
def test_withdrawal_is_sanctioned_only_after_passing(passed, rounds, barred):
    assert withdrawal_sanction(passed, rounds) == barred


@pytest.mark.parametrize(
    ("latsar_passed", "healthy", "outcome"),
    [
        (True, True, Terminal.PNS),
        (True, False, Terminal.DISMISSED),
        (False, True, Terminal.DISMISSED),
        (False, False, Terminal.DISMISSED),
    ],
)
def test_probation_ends_in_pns_only_with_latsar_passed_and_healthy(latsar_passed, healthy, outcome):
    assert probation_outcome(latsar_passed, healthy) == outcome
