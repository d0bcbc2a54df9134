"""Time and calendars as DOMAIN.md counts them, in each of Indonesia's three zones.

WIB is UTC+7 (Asia/Jakarta), WITA UTC+8 (Asia/Makassar), WIT UTC+9 (Asia/Jayapura); none keeps
daylight saving time. A sanggah window is "3 calendar days" from the announcement and ends when its
last day ends in the round's zone (docs/ARCHITECTURE.md, "Time and calendars").
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.codes import AdminDecision, Stage
from domain.config import calendar_days, days_after
from domain.messages import AppealFiling, ExtendWindow
from domain.registration import age_on, application_date_problem
from domain.sheet import admin_appeal_closes, appeal_answer_due, final_appeal_closes, refusal
from tests.domain.test_sheet import RULES, sheet

WIB, WITA, WIT = ZoneInfo("Asia/Jakarta"), ZoneInfo("Asia/Makassar"), ZoneInfo("Asia/Jayapura")
ZONES = {"WIB": WIB, "WITA": WITA, "WIT": WIT}
DAYS3, DAYS7 = timedelta(days=3), timedelta(days=7)


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


# (case, zone, announced (local), span, closes (local, exclusive))
DEADLINES = [
    ("afternoon announcement, WIB", "WIB", (2027, 8, 20, 16), DAYS3, (2027, 8, 24)),
    ("afternoon announcement, WITA", "WITA", (2027, 8, 20, 16), DAYS3, (2027, 8, 24)),
    ("afternoon announcement, WIT", "WIT", (2027, 8, 20, 16), DAYS3, (2027, 8, 24)),
    ("a minute after midnight", "WIT", (2027, 8, 20, 0, 1), DAYS3, (2027, 8, 24)),
    ("a minute before midnight", "WIB", (2027, 8, 20, 23, 59), DAYS3, (2027, 8, 24)),
    ("over the end of January", "WIB", (2028, 1, 30, 10), DAYS3, (2028, 2, 3)),
    ("over a leap February", "WITA", (2028, 2, 27, 10), DAYS3, (2028, 3, 2)),
    ("over a common February", "WITA", (2027, 2, 27, 10), DAYS3, (2027, 3, 3)),
    ("over the year's end", "WIT", (2027, 12, 30, 9), DAYS3, (2028, 1, 3)),
    ("the answer over the end of September", "WIB", (2027, 9, 28, 15), DAYS7, (2027, 10, 6)),
]


@pytest.mark.parametrize(
    ("zone", "announced", "span", "closes"),
    [case[1:] for case in DEADLINES],
    ids=[case[0] for case in DEADLINES],
)
def test_a_period_of_days_ends_when_its_last_local_day_ends(zone, announced, span, closes):
    tz = ZONES[zone]
    assert days_after(at(tz, *announced), span, zone_name(tz)) == at(tz, *closes)


def zone_name(tz: ZoneInfo) -> str:
    return str(tz.key)


@pytest.mark.parametrize(
    ("zone", "closes"),
    [
        ("Asia/Jakarta", datetime(2028, 2, 4, tzinfo=WIB)),
        ("Asia/Jayapura", datetime(2028, 2, 5, tzinfo=WIT)),
    ],
)
def test_the_round_zone_decides_which_day_an_announcement_falls_on(zone, closes):
    # 31 January 23:30 WIB is already 1 February 01:30 in Jayapura.
    announced = datetime(2028, 1, 31, 23, 30, tzinfo=WIB)
    assert days_after(announced, DAYS3, zone) == closes


def test_a_period_shorter_than_days_is_exact():
    announced = datetime(2027, 8, 20, 16, tzinfo=WIT)
    for span in (timedelta(seconds=10), timedelta(hours=36), timedelta(days=2, hours=1)):
        assert days_after(announced, span, "Asia/Jayapura") == announced + span


@given(
    announced=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    days=st.integers(min_value=1, max_value=30),
    zone=st.sampled_from(["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"]),
)
def test_counting_in_days_never_cuts_a_period_short(announced, days, zone):
    closes = days_after(announced, timedelta(days=days), zone)
    assert announced + timedelta(days=days) <= closes < announced + timedelta(days=days + 1)
    assert closes.astimezone(ZoneInfo(zone)).time() == datetime.min.time()


# --- the sanggah window as the journey's validator takes it --------------------------------------

ANNOUNCED = datetime(2027, 8, 20, 16, tzinfo=WIT)  # a Friday afternoon in Jayapura


def _tms(zone: str, by_day: bool = True):
    rules = RULES.model_copy(
        update={
            "timezone": zone,
            "appeal": RULES.appeal.model_copy(update={"window": DAYS3, "answer_within": DAYS7}),
        }
    )
    s = sheet(Stage.ADMIN_APPEAL, admin=AdminDecision.TMS, admin_announced_at=ANNOUNCED)
    return s.but(deadlines_by_day=by_day), rules


def _filing():
    return AppealFiling(report_id="s1", reported_by="sscasn", reason="ijazah terlampir")


# (case, round zone, filed at, taken)
LAST_MINUTES = [
    ("WIT: 23:59:59 on the third day", "Asia/Jayapura", at(WIT, 2027, 8, 23, 23, 59, 59), True),
    ("WIT: 24:00 on the third day", "Asia/Jayapura", at(WIT, 2027, 8, 24), False),
    ("WIT: 16:00 on the third day", "Asia/Jayapura", at(WIT, 2027, 8, 23, 16, 0, 1), True),
    ("WITA: 23:59 on the third day", "Asia/Makassar", at(WITA, 2027, 8, 23, 23, 59, 30), True),
    ("WITA: 24:00 on the third day", "Asia/Makassar", at(WITA, 2027, 8, 24), False),
    ("WIB: 23:59 on the third day", "Asia/Jakarta", at(WIB, 2027, 8, 23, 23, 59, 59, 999999), True),
    ("WIB: 24:00 on the third day", "Asia/Jakarta", at(WIB, 2027, 8, 24), False),
]


@pytest.mark.parametrize(
    ("zone", "filed", "taken"),
    [case[1:] for case in LAST_MINUTES],
    ids=[case[0] for case in LAST_MINUTES],
)
def test_a_sanggah_is_taken_until_the_third_day_ends_in_the_round_zone(zone, filed, taken):
    s, rules = _tms(zone)
    assert (refusal(s, _filing(), rules, filed) is None) is taken


def test_a_journey_recorded_before_counts_the_window_in_hours():
    s, rules = _tms("Asia/Jayapura", by_day=False)
    assert admin_appeal_closes(s, rules) == ANNOUNCED + DAYS3
    assert refusal(s, _filing(), rules, at(WIT, 2027, 8, 23, 16, 0, 1)) is not None


def test_the_final_sanggah_and_the_answers_count_days_alike():
    s, rules = _tms("Asia/Makassar")
    final = s.but(final_announced_at=ANNOUNCED)
    assert final_appeal_closes(final, rules) == at(WITA, 2027, 8, 24)
    filed = at(WITA, 2027, 8, 31, 22)  # the instansi answers by 7 September 24:00 WITA
    assert appeal_answer_due(s, rules, filed) == at(WITA, 2027, 9, 8)


# --- registration windows: 23:59:59 against 24:00 -------------------------------------------------

# (case, opens, closes, zone, calendar days)
WINDOWS = [
    (
        "to 23:59:59 of the 15th",
        at(WIB, 2027, 8, 1, 8),
        at(WIB, 2027, 8, 15, 23, 59, 59),
        "Asia/Jakarta",
        15,
    ),
    ("to 24:00 of the 15th", at(WIB, 2027, 8, 1, 8), at(WIB, 2027, 8, 16), "Asia/Jakarta", 15),
    (
        "a second past 24:00",
        at(WIB, 2027, 8, 1, 8),
        at(WIB, 2027, 8, 16, 0, 0, 1),
        "Asia/Jakarta",
        16,
    ),
    (
        "WIB times counted in WIT",
        at(WIB, 2027, 8, 1, 8),
        at(WIB, 2027, 8, 15, 23, 59, 59),
        "Asia/Jayapura",
        16,
    ),
    ("WIT times counted in WIT", at(WIT, 2027, 8, 1, 8), at(WIT, 2027, 8, 16), "Asia/Jayapura", 15),
    (
        "over the end of February",
        at(WITA, 2028, 2, 20, 8),
        at(WITA, 2028, 3, 6),
        "Asia/Makassar",
        15,
    ),
]


@pytest.mark.parametrize(
    ("opens", "closes", "zone", "days"),
    [case[1:] for case in WINDOWS],
    ids=[case[0] for case in WINDOWS],
)
def test_registration_days_are_the_local_dates_it_is_open_on(opens, closes, zone, days):
    assert calendar_days(opens, closes, zone) == days


# --- ages on the application date -------------------------------------------------------------

# (case, born, on, age): a 29 February birthday comes on 1 March in a common year.
AGES = [
    ("leap-day birth, 28 Feb of a common year", date(1992, 2, 29), date(2027, 2, 28), 34),
    ("leap-day birth, 1 Mar of a common year", date(1992, 2, 29), date(2027, 3, 1), 35),
    ("leap-day birth, on 29 Feb", date(1992, 2, 29), date(2028, 2, 29), 36),
    ("leap-day birth, the day before", date(1992, 2, 29), date(2028, 2, 28), 35),
    ("the day before the 36th birthday", date(1991, 8, 21), date(2027, 8, 20), 35),
    ("on the 36th birthday", date(1991, 8, 21), date(2027, 8, 21), 36),
    ("the day before the 18th birthday", date(2009, 8, 21), date(2027, 8, 20), 17),
]


@pytest.mark.parametrize(
    ("born", "on", "age"), [case[1:] for case in AGES], ids=[case[0] for case in AGES]
)
def test_age_in_whole_years_on_the_application_date(born, on, age):
    assert age_on(born, on) == age


# --- operators' moments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new_closes", "taken"),
    [
        ("2027-08-24T23:59:59", False),
        ("2027-08-24T23:59:59+09:00", True),
        ("2027-08-24T23:59:59Z", True),
    ],
)
def test_an_extension_names_its_time_zone(new_closes, taken):
    # Without an offset it would reach the round's validator, which cannot compare it with the
    # windows (TypeError: can't compare offset-naive and offset-aware datetimes).
    message = {
        "report_id": "ext-1",
        "reported_by": "operator",
        "window": "registration",
        "new_closes": new_closes,
        "reason": "gangguan portal",
    }
    if taken:
        assert ExtendWindow.model_validate(message).new_closes.utcoffset() is not None
    else:
        with pytest.raises(ValidationError, match=r"\+09:00 \(WIT\)"):
            ExtendWindow.model_validate(message)


# --- the application date a journey judges ages on -----------------------------------------------

STARTED = datetime(2027, 8, 20, 14, 30, tzinfo=UTC)  # 21:30 WIB, 22:30 WITA, 23:30 WIT on the 20th

# (case, applied_on, zone, taken)
APPLIED_ON = [
    ("the start's date in WIB", date(2027, 8, 20), "Asia/Jakarta", True),
    ("the start's date in WIT", date(2027, 8, 20), "Asia/Jayapura", True),
    ("WIT's next day, 30 minutes on", date(2027, 8, 21), "Asia/Jayapura", True),
    ("WIB's next day, 2.5 hours on", date(2027, 8, 21), "Asia/Jakarta", True),
    ("the day before, in WIB", date(2027, 8, 19), "Asia/Jakarta", False),
    ("three years back", date(2024, 8, 20), "Asia/Jakarta", False),
    ("none", None, "Asia/Jakarta", False),
]


@pytest.mark.parametrize(
    ("applied_on", "zone", "taken"),
    [case[1:] for case in APPLIED_ON],
    ids=[case[0] for case in APPLIED_ON],
)
def test_an_application_date_is_the_start_date_give_or_take_three_hours(applied_on, zone, taken):
    assert (application_date_problem(applied_on, STARTED, zone) is None) is taken
