"""Registration: identity (NIK), age on the application date, education matching the formasi."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from domain.config import Category, Formasi


class Gender(StrEnum):
    """As on the KTP; also the 15th digit of the NIP (1 male, 2 female)."""

    MALE = "L"
    FEMALE = "P"


_NIK = re.compile(r"[0-9]{16}")
_ASCII_DIGIT = re.compile(r"[0-9]")


def mask_nik(nik: str) -> str:
    """A NIK shortened (first and last 4 characters) so that errors and logs never carry it whole."""
    return nik[:4] + "*" * (len(nik) - 8) + nik[-4:] if len(nik) > 8 else "*" * len(nik)


def normalise_nik(raw: str) -> str:
    """The one stored form of a NIK, 16 ASCII digits; ValueError when `raw` is not a NIK.

    The rule: surrounding whitespace is trimmed, then every character must be a decimal digit
    (Unicode category Nd) that NFKC turns into one of 0-9, and there must be 16 of them. So a
    fullwidth '３２７３…' (or a mathematical '𝟑') is read as '3273…': the same person's NIK, the
    same applicant id, the same "one NIK registers once" check.
    Everything else is refused rather than read as some other number: Arabic-Indic or other
    scripts' digits (NFKC leaves them as they are), superscript '³' or circled '③' (NFKC would
    make them digits, but they are not digits of a number), signs, inner spaces, letters.
    """
    text = raw.strip()
    for position, char in enumerate(text, start=1):
        folded = unicodedata.normalize("NFKC", char)
        if unicodedata.category(char) != "Nd" or not _ASCII_DIGIT.fullmatch(folded):
            name = unicodedata.name(char, "unnamed")
            raise ValueError(
                f"a NIK is 16 digits 0-9: character {position} is U+{ord(char):04X} {name} "
                f"(nik {mask_nik(text)})"
            )
    nik = unicodedata.normalize("NFKC", text)
    if not _NIK.fullmatch(nik):
        raise ValueError(f"a NIK is 16 digits 0-9, this one has {len(nik)} (nik {mask_nik(nik)})")
    return nik


# Unicode categories that are not text one reads: controls (NUL, newline, ESC), format
# characters (the bidi overrides U+202A-U+202E and isolates U+2066-U+2069 that make a name read
# backwards, zero-width ones), surrogates, private use, unassigned, line and paragraph
# separators. PostgreSQL refuses NUL in text; the others hide or rearrange what a console, an
# errors file or an announcement shows. Spaces, the no-break one too, are text.
_NOT_TEXT = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_UNNAMED = {
    "Cc": "a control character",
    "Cs": "a lone surrogate: bytes that were not UTF-8",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
}


# The validation context key under which a recorded message is read: runtime/connection.py reads
# every payload Temporal gives back with it. A rule on what comes from outside that is newer than a
# running workflow's start is not applied there, or the workflow could no longer decode its start
# (and would fail every task from then on): the rule is the entry points' (the portal, the API, a
# registration file), which validate without it.
RECORDED = "recorded"


def unprintable(text: str) -> str | None:
    """Why `text` is not printable text (naming the first offending character by its position
    and code point, never the text around it), or None when it is."""
    for position, char in enumerate(text, start=1):
        if unicodedata.category(char) in _NOT_TEXT:
            name = unicodedata.name(char, "") or _UNNAMED.get(unicodedata.category(char), "")
            return (
                f"character {position} is U+{ord(char):04X} ({name}), which is not printable "
                "text: remove it and export again"
            )
    return None


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Registration(BaseModel, frozen=True, hide_input_in_errors=True):
    """What an applicant submits when registering (an SSCASN export row).

    Errors never repeat the input: a registration is personal data (callers that show a bad
    value take it from `errors()` and mask it).
    """

    nik: str = Field(
        max_length=64, description="16 ASCII digits; other digit forms are normalised or refused"
    )
    name: str = Field(min_length=1, max_length=200)
    birth_date: date
    gender: Gender
    education_level: str = Field(min_length=1, max_length=10)
    major: str = Field(min_length=1, max_length=200)
    gpa: float = Field(ge=0, le=4)
    formasi_code: str = Field(min_length=1, max_length=40)
    category: Category = Category.UMUM
    citizen: bool = True

    @field_validator("birth_date", mode="before")
    @classmethod
    def _iso_date(cls, value: object, info: ValidationInfo) -> object:
        # pydantic's lax date took a Unix time (946684800 as 2000-01-01) and answered 20000101
        # with a message about datetimes; a registration's date is written one way.
        if info.context and info.context.get(RECORDED):
            return value  # a journey started before this rule still decodes its start
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
            return value.strip()
        raise ValueError("not a date written YYYY-MM-DD (for example 1996-04-02)")

    @field_validator("nik")
    @classmethod
    def _one_form(cls, nik: str) -> str:
        # One stored form, so two spellings of one NIK can never be two applicants.
        return normalise_nik(nik)

    @field_validator("name", "education_level", "major", "formasi_code")
    @classmethod
    def _printable(cls, text: str, info: ValidationInfo) -> str:
        if info.context and info.context.get(RECORDED):
            # A journey started before this rule still decodes its start (and replays).
            return text
        # The message names the character, not the text: a name stays out of errors and logs.
        problem = unprintable(text)
        if problem is not None:
            raise ValueError(problem)
        return text


class Refusal(BaseModel, frozen=True):
    """Why a registration is refused: the field, its value and the rule."""

    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}={self.value!r}: {self.reason}"


def nik_birth_date(nik: str) -> date | None:
    """The birth date encoded in a NIK (digits 7-12, DDMMYY; women add 40 to the day), or None.

    The century is not encoded; it is taken as 19xx or 20xx, whichever is not in the future
    relative to 2099 — callers compare the result with the declared birth date.
    """
    if not _NIK.fullmatch(nik):
        return None
    day, month, year2 = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    if day > 40:
        day -= 40
    for century in (1900, 2000):
        try:
            candidate = date(century + year2, month, day)
        except ValueError:
            continue  # 29 Feb of "00" exists in 2000 but not in 1900
        if century == 2000 or candidate.year >= 1930:
            return candidate
    return None


def nik_problems(nik: str, birth_date: date, gender: Gender) -> list[Refusal]:
    """Checks of the NIK's shape and its birth-date part against the declared data."""
    if not _NIK.fullmatch(nik):
        return [Refusal(field="nik", value=mask_nik(nik), reason="a NIK is exactly 16 digits 0-9")]
    if nik[:6] == "000000":
        return [
            Refusal(
                field="nik", value=mask_nik(nik), reason="the region code (digits 1-6) is 000000"
            )
        ]
    day = int(nik[6:8])
    encoded = nik_birth_date(nik)
    if encoded is None:
        return [
            Refusal(
                field="nik",
                value=mask_nik(nik),
                reason="digits 7-12 are not a valid DDMMYY birth date",
            )
        ]
    problems = []
    if (encoded.day, encoded.month, encoded.year % 100) != (
        birth_date.day,
        birth_date.month,
        birth_date.year % 100,
    ):
        problems.append(
            Refusal(
                field="nik",
                value=mask_nik(nik),
                reason="its birth-date part does not match birth_date",
            )
        )
    if (day > 40) != (gender == Gender.FEMALE):
        problems.append(
            Refusal(
                field="gender",
                value=gender.value,
                reason="does not match the NIK (women's day part is +40)",
            )
        )
    if nik[12:] == "0000":
        problems.append(
            Refusal(
                field="nik", value=mask_nik(nik), reason="the serial part (digits 13-16) is 0000"
            )
        )
    return problems


def age_on(birth_date: date, on: date) -> int:
    """Age in whole years on a given date."""
    years = on.year - birth_date.year
    if (on.month, on.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


# How far from a journey's start the registrar's moment of application may be: a registrar's clock
# and the server's, a resend after a timeout, and a round's board written before it named its zone
# (read as WIB while the registrar counted in WIT, 2 hours ahead). Only an application within this
# of a local midnight can carry the day before or after.
APPLIED_ON_TOLERANCE = timedelta(hours=3)


def application_date_problem(
    applied_on: date | None, started_at: datetime, zone: str
) -> str | None:
    """Why `applied_on`, the date a registrar says a registration was made (ages are judged on it),
    is not the date the journey started on in the round's zone `zone` (give or take
    APPLIED_ON_TOLERANCE), or None when it is: a backdated start cannot make a 36-year-old 35."""
    tz = ZoneInfo(zone)
    earliest = (started_at - APPLIED_ON_TOLERANCE).astimezone(tz).date()
    latest = (started_at + APPLIED_ON_TOLERANCE).astimezone(tz).date()
    if applied_on is not None and earliest <= applied_on <= latest:
        return None
    said = applied_on.isoformat() if applied_on is not None else "none"
    return (
        f"the application date {said} is not the date the registration was started on "
        f"({started_at.astimezone(tz).date().isoformat()}, {zone}): ages are judged on it"
    )


def check_registration(
    reg: Registration, formasi: Formasi | None, applied_on: date
) -> list[Refusal]:
    """Every reason the registration is refused; an empty list means it is accepted."""
    problems = nik_problems(reg.nik, reg.birth_date, reg.gender)
    if not reg.citizen:
        problems.append(
            Refusal(field="citizen", value="false", reason="only Indonesian citizens may apply")
        )
    if formasi is None:
        problems.append(
            Refusal(
                field="formasi_code", value=reg.formasi_code, reason="no such formasi in this round"
            )
        )
        return problems
    age = age_on(reg.birth_date, applied_on)
    if age < formasi.min_age or age > formasi.max_age:
        problems.append(
            Refusal(
                field="birth_date",
                value=reg.birth_date.isoformat(),
                reason=f"age {age} on {applied_on.isoformat()} is outside {formasi.min_age}-{formasi.max_age}",
            )
        )
    if reg.education_level.strip().upper() != formasi.education_level.strip().upper():
        problems.append(
            Refusal(
                field="education_level",
                value=reg.education_level,
                reason=f"formasi {formasi.code} requires {formasi.education_level}",
            )
        )
    majors = {m.strip().casefold() for m in formasi.majors}
    if reg.major.strip().casefold() not in majors:
        problems.append(
            Refusal(
                field="major",
                value=reg.major,
                reason=f"formasi {formasi.code} accepts {formasi.majors}",
            )
        )
    if reg.gpa < formasi.min_gpa:
        problems.append(
            Refusal(
                field="gpa",
                value=f"{reg.gpa:.2f}",
                reason=f"below the minimum {formasi.min_gpa:.2f}",
            )
        )
    if formasi.category != Category.UMUM and reg.category != formasi.category:
        problems.append(
            Refusal(
                field="category",
                value=reg.category.value,
                reason=f"formasi {formasi.code} is reserved for {formasi.category.value}",
            )
        )
    if formasi.category == Category.UMUM and reg.category != Category.UMUM:
        problems.append(
            Refusal(
                field="category",
                value=reg.category.value,
                reason=f"formasi {formasi.code} is a general (umum) formasi",
            )
        )
    return problems
