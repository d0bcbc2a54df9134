"""NIP format, the withdrawal sanction, and the probation (Latsar) outcome."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from domain.codes import Terminal
from domain.errors import RuleViolation
from domain.registration import Gender


def format_nip(birth_date: date, tmt: date, gender: Gender, serial: int) -> str:
    """An 18-digit NIP: birth date YYYYMMDD, TMT YYYYMM, gender (1 male, 2 female), serial 001-999."""
    if not 1 <= serial <= 999:
        raise RuleViolation("serial", serial, "outside 1..999")
    sex = "1" if gender == Gender.MALE else "2"
    return f"{birth_date:%Y%m%d}{tmt:%Y%m}{sex}{serial:03d}"


def tmt_move_problem(new_tmt: date, registration_opened: date) -> str | None:
    """Why the TMT cannot be moved to `new_tmt`, or None. An SK CPNS takes effect after its
    selection began: never before the day the round's registration opened (in the round's zone).
    That also keeps the NIP's TMT a four-digit year and month (`format_nip`)."""
    if new_tmt < registration_opened:
        return (
            f"new_tmt {new_tmt.isoformat()} is before the day the round's registration opened "
            f"({registration_opened.isoformat()}): an SK CPNS takes effect after its selection began"
        )
    return None


def withdrawal_sanction(passed: bool, rounds: int) -> int:
    """Rounds an applicant is barred for after withdrawing: `rounds` once they have passed, else 0."""
    return rounds if passed else 0


def probation_outcome(latsar_passed: bool, healthy: bool) -> Terminal:
    """Passing Latsar and being healthy makes a CPNS a PNS; otherwise the CPNS is dismissed."""
    return Terminal.PNS if latsar_passed and healthy else Terminal.DISMISSED


# How a journey ended PNS under the year of probation (patch probation-year) begins its reason;
# the rest is the day the year ended, ISO (the notice and the auditor read it).
PROBATION_SERVED = "PNS: passed Latsar; probation served to "


def probation_ends(tmt: date, zone: str, compressed_end: datetime | None = None) -> datetime:
    """When the probation of a CPNS appointed with TMT `tmt` ends: one year on, at 00:00 of the
    TMT's anniversary in the round's zone (`zone`), or of 1 March for a TMT of 29 February
    (DOMAIN.md 12: one year of probation as CPNS). A compressed round's own end
    (`Schedule.probation_ends`, `compressed_end`) when it gives one."""
    if compressed_end is not None:
        return compressed_end
    try:
        anniversary = tmt.replace(year=tmt.year + 1)
    except ValueError:  # 29 February, and the next year has none
        anniversary = date(tmt.year + 1, 3, 1)
    return datetime.combine(anniversary, time(), ZoneInfo(zone))
