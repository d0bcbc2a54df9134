"""How a moment reads on a round's own clock (domain/local_time.py): the day, the hour and the
zone's Indonesian name, with a deadline at 24:00 read as the end of the day still in it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.local_time import abbreviation, reading, zone_note

JAKARTA, MAKASSAR, JAYAPURA = "Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"


@pytest.mark.parametrize(
    ("zone", "name"),
    [(JAKARTA, "WIB"), ("Asia/Pontianak", "WIB"), (MAKASSAR, "WITA"), (JAYAPURA, "WIT")],
)
def test_each_indonesian_zone_reads_by_its_own_name(zone, name):
    assert abbreviation(zone) == name


def test_a_zone_abroad_reads_by_its_offset_at_the_moment():
    assert abbreviation("Australia/Sydney", datetime(2027, 1, 1, tzinfo=UTC)) == "UTC+11"
    assert abbreviation("Australia/Sydney", datetime(2027, 7, 1, tzinfo=UTC)) == "UTC+10"
    assert abbreviation("Asia/Kolkata") == "UTC+5:30"


@pytest.mark.parametrize(
    ("zone", "note"),
    [
        (JAKARTA, "WIB (UTC+7)"),
        (MAKASSAR, "WITA (UTC+8)"),
        (JAYAPURA, "WIT (UTC+9)"),
        ("Asia/Tokyo", "UTC+9 (Asia/Tokyo)"),
    ],
)
def test_a_page_names_its_zone_with_the_offset(zone, note):
    assert zone_note(zone) == note


# One instant, 15:00 UTC on 23 Aug 2027, on each clock of Indonesia.
@pytest.mark.parametrize(
    ("zone", "day", "hour"),
    [(JAKARTA, 23, "22"), (MAKASSAR, 23, "23"), (JAYAPURA, 24, "00")],
)
def test_one_moment_reads_on_each_clock(zone, day, hour):
    local = reading(datetime(2027, 8, 23, 15, tzinfo=UTC), zone)
    assert (local.day, local.hour, local.minute) == (date(2027, 8, day), hour, "00")


# Midnight of each zone, as a deadline: the last day still open, at 24.00; at a month's and a
# year's end too. Midnight WIT is 15:00 UTC, WITA 16:00, WIB 17:00.
@pytest.mark.parametrize(
    ("zone", "until", "day", "name"),
    [
        (JAKARTA, datetime(2027, 8, 23, 17, tzinfo=UTC), date(2027, 8, 23), "WIB"),
        (MAKASSAR, datetime(2027, 8, 23, 16, tzinfo=UTC), date(2027, 8, 23), "WITA"),
        (JAYAPURA, datetime(2027, 8, 23, 15, tzinfo=UTC), date(2027, 8, 23), "WIT"),
        (MAKASSAR, datetime(2027, 8, 31, 16, tzinfo=UTC), date(2027, 8, 31), "WITA"),
        (JAYAPURA, datetime(2027, 2, 28, 15, tzinfo=UTC), date(2027, 2, 28), "WIT"),
        (JAYAPURA, datetime(2027, 12, 31, 15, tzinfo=UTC), date(2027, 12, 31), "WIT"),
        (MAKASSAR, datetime(2027, 12, 31, 16, tzinfo=UTC), date(2027, 12, 31), "WITA"),
    ],
    ids=[
        "24:00 WIB",
        "24:00 WITA",
        "24:00 WIT",
        "WITA at a month's end",
        "WIT at February's end",
        "WIT at the year's end",
        "WITA at the year's end",
    ],
)
def test_a_deadline_at_the_zones_midnight_reads_24_00_of_the_day_still_in_it(
    zone, until, day, name
):
    assert reading(until, zone, deadline=True) == (day, "24", "00", name)


def test_the_same_moment_is_no_midnight_in_another_zone():
    # 24:00 WIT is 22.00 WIB: a WIB reader sees no end of day in it.
    until = datetime(2027, 8, 23, 15, tzinfo=UTC)
    assert reading(until, JAKARTA, deadline=True) == (date(2027, 8, 23), "22", "00", "WIB")


def test_midnight_that_is_not_a_deadline_reads_00_00_of_its_own_day():
    assert reading(datetime(2027, 12, 31, 15, tzinfo=UTC), JAYAPURA) == (
        date(2028, 1, 1),
        "00",
        "00",
        "WIT",
    )
