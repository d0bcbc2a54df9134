"""NIP format, the withdrawal sanction, and the probation (Latsar) outcome."""

from __future__ import annotations

import re
from datetime import date

from domain.codes import Terminal
from domain.errors import RuleViolation
from domain.registration import Gender

_NIP = re.compile(r"^(\d{8})(\d{6})([12])(\d{3})$")


def format_nip(birth_date: date, tmt: date, gender: Gender, serial: int) -> str:
    """An 18-digit NIP: birth date YYYYMMDD, TMT YYYYMM, gender (1 male, 2 female), serial 001-999."""
    if not 1 <= serial <= 999:
        raise RuleViolation("serial", serial, "outside 1..999")
    sex = "1" if gender == Gender.MALE else "2"
    return f"{birth_date:%Y%m%d}{tmt:%Y%m}{sex}{serial:03d}"


def nip_problems(nip: str, birth_date: date, tmt: date, gender: Gender) -> list[str]:
    """Why a NIP reported by BKN does not fit the person it is for; empty when it fits."""
    m = _NIP.match(nip)
    if not m:
        return [f"nip {nip!r} is not 18 digits of the form YYYYMMDD YYYYMM G NNN"]
    problems = []
    if m.group(1) != f"{birth_date:%Y%m%d}":
        problems.append(f"nip {nip}: birth-date part {m.group(1)} does not match the applicant")
    if m.group(2) != f"{tmt:%Y%m}":
        problems.append(f"nip {nip}: TMT part {m.group(2)} does not match the TMT {tmt:%Y-%m}")
    if m.group(3) != ("1" if gender == Gender.MALE else "2"):
        problems.append(f"nip {nip}: gender digit {m.group(3)} does not match the applicant")
    if m.group(4) == "000":
        problems.append(f"nip {nip}: serial 000 is not issued")
    return problems


def withdrawal_sanction(passed: bool, rounds: int) -> int:
    """Rounds an applicant is barred for after withdrawing: `rounds` once they have passed, else 0."""
    return rounds if passed else 0


def probation_outcome(latsar_passed: bool, healthy: bool) -> Terminal:
    """Passing Latsar and being healthy makes a CPNS a PNS; otherwise the CPNS is dismissed."""
    return Terminal.PNS if latsar_passed and healthy else Terminal.DISMISSED
