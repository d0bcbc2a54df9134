"""NIP format, the withdrawal sanction, and the probation (Latsar) outcome."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from domain.appointment import (
    format_nip,
    probation_ends,
    probation_outcome,
    tmt_move_problem,
    withdrawal_sanction,
)
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


@pytest.mark.parametrize("serial", [0, 1000, -1])
def test_nip_serial_outside_1_to_999_is_refused(serial):
    with pytest.raises(RuleViolation) as err:
        format_nip(BIRTH, TMT, Gender.MALE, serial)
    assert err.value.field == "serial"


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


@pytest.mark.parametrize(
    ("new_tmt", "refused"),
    [
        (date(2027, 3, 1), False),  # after registration opened
        (date(2026, 12, 7), False),  # the day it opened
        (date(2026, 12, 6), True),
        (date(999, 1, 1), True),  # would make a NIP with a three-digit year
    ],
)
def test_a_tmt_is_not_moved_before_the_round_s_registration_opened(new_tmt, refused):
    problem = tmt_move_problem(new_tmt, registration_opened=date(2026, 12, 7))

    assert (problem is not None) == refused
    if refused:
        assert new_tmt.isoformat() in problem and "2026-12-07" in problem


WIB = timezone(timedelta(hours=7))
WIT = timezone(timedelta(hours=9))


@pytest.mark.parametrize(
    ("tmt", "zone", "ends"),
    [
        (date(2028, 3, 1), "Asia/Jakarta", datetime(2029, 3, 1, tzinfo=WIB)),
        (date(2027, 7, 1), "Asia/Jayapura", datetime(2028, 7, 1, tzinfo=WIT)),
        # No 29 February in 2029: the year ends as 1 March begins.
        (date(2028, 2, 29), "Asia/Jakarta", datetime(2029, 3, 1, tzinfo=WIB)),
    ],
)
def test_the_probation_ends_a_year_after_the_tmt_at_midnight_in_the_round_s_zone(tmt, zone, ends):
    got = probation_ends(tmt, zone)
    assert got == ends and got.utcoffset() == ends.utcoffset()


def test_a_compressed_round_s_own_end_of_probation_is_taken_as_given():
    own = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert probation_ends(date(2028, 3, 1), "Asia/Jakarta", own) == own
