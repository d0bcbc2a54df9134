"""How a moment reads on a round's own clock: in its IANA zone, with the Indonesian abbreviation.

Applicants and the public read every time of a round in the round's zone (`RoundConfig.timezone`):
Asia/Jakarta is WIB (UTC+7), Asia/Makassar WITA (UTC+8), Asia/Jayapura WIT (UTC+9). A deadline
that ends at 24:00 in the round's zone is the first moment of the next day; it is read as 24.00
of the day still in it ("23 Agu 2027 24.00 WIT"), not as 00.00 of the day after.

Each reader formats the day in its own words (short or long month names, Indonesian or English):
this module says only which day, hour and minute, and the zone's name.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

JAKARTA = "Asia/Jakarta"  # WIB: the zone of a round that names none, and of pages about no round

# The names Indonesians use (UU 1987 / Keppres 41/1987): Asia/Pontianak keeps WIB, and the
# Makassar zone is the one Asia/Makassar names for Bali, Nusa Tenggara, Kalimantan's east and south
# and Sulawesi.
ABBREVIATIONS: dict[str, str] = {
    "Asia/Jakarta": "WIB",
    "Asia/Pontianak": "WIB",
    "Asia/Makassar": "WITA",
    "Asia/Ujung_Pandang": "WITA",
    "Asia/Jayapura": "WIT",
}


_NO_MOMENT = datetime(2000, 1, 1, tzinfo=UTC)


class LocalReading(NamedTuple):
    """A moment as a reader of the zone sees it: the day, `HH` (`24` at a day's end), `MM`, and
    the zone's abbreviation."""

    day: date
    hour: str
    minute: str
    zone: str


def abbreviation(zone: str, at: datetime | None = None) -> str:
    """WIB, WITA or WIT; another zone (a round abroad) by its UTC offset at `at`, `UTC+10`."""
    return ABBREVIATIONS.get(zone) or _utc(zone, at)


def zone_note(zone: str, at: datetime | None = None) -> str:
    """How a page names the zone of its times: `WIT (UTC+9)`; another zone by its offset at `at`
    and its name, `UTC+10 (Australia/Sydney)`. Indonesia keeps no daylight saving time."""
    name = ABBREVIATIONS.get(zone)
    return f"{name} ({_utc(zone, at)})" if name else f"{_utc(zone, at)} ({zone})"


def _utc(zone: str, at: datetime | None) -> str:
    moment = at or _NO_MOMENT  # a pure function reads no clock: without `at`, a fixed day
    offset = moment.astimezone(ZoneInfo(zone)).utcoffset() or timedelta()
    minutes = int(offset.total_seconds() // 60)
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{'-' if minutes < 0 else '+'}{hours}" + (f":{rest:02d}" if rest else "")


def reading(moment: datetime, zone: str = JAKARTA, *, deadline: bool = False) -> LocalReading:
    """`moment` in `zone`. With `deadline` (the first moment that is too late), exactly 00:00 is
    24.00 of the day before: the day the applicant still has."""
    local = moment.astimezone(ZoneInfo(zone))
    day, hour = local.date(), f"{local:%H}"
    if deadline and local.time() == time():
        day, hour = day - timedelta(days=1), "24"
    return LocalReading(day, hour, f"{local:%M}", abbreviation(zone, moment))
