"""A round's configuration: formasi, schedule and every figure a regulation can change.

The shipped defaults are the national rules of the 2024 round (DOMAIN.md). A round file is
TOML; `load_round_config` names the file, the field and the problem when it is wrong.

Every number, moment and duration is bounded, and read strictly: `true` is not 1, the text
"120 " is not 120, and a bare number is not a moment or a duration (`window = 3` would be
3 seconds, not 3 days). The limits are written on each field; the duration limits are here.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import stat
import tomllib
import types
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from domain.digest import canonical_digest
from domain.signing import SigningKeyError, public_key

Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
# What a Code can be, for one given outside a file (a command line's round id, national id or
# formasi code), and the rule in words for the message that refuses one.
CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
CODE_RULE = "a letter or digit, then letters, digits, '.', '_' or '-'; at most 40"

# One window may last up to two years: Latsar runs within the one-year probation, and an
# extended registration or SKB window is weeks. Anything longer is a typo in a year.
MAX_WINDOW = timedelta(days=731)
# From registration opening to Latsar closing: a round runs about two years; five is a typo.
MAX_SCHEDULE = timedelta(days=5 * 365 + 1)
# The sanggah window is 3 calendar days and the instansi answers within 7 (DOMAIN.md); an
# optimalisasi offer waits 2 days by default. A month is the most any of them may be set to:
# a longer wait holds seats and answers past the next stage.
MAX_APPEAL_WINDOW = timedelta(days=30)
MAX_APPEAL_ANSWER = timedelta(days=30)
MAX_OFFER_ANSWER = timedelta(days=30)
# After the latest pending offer's answer_by, the round waits this long for its journeys' answers
# before it counts every offer still unanswered as declined (patch optimalisasi-answer-deadline):
# a journey answers by its own timer at answer_by, so only one that cannot run (its workflow
# task failing, terminated, its offer lost) is still silent a day later.
OFFER_ANSWER_GRACE = timedelta(days=1)
MAX_OFFER_ANSWER_GRACE = timedelta(days=30)

# A formasi folds a list of page references it carries into one index page (domain/pages.py,
# PageFold) when the list reaches this many: what it carries and records then stays under this
# many references (about 6 KB), however many applicants answered.
FOLD_PAGES_AT = 64

# Temporal terminates a workflow run at 51,200 history events (../TEMPORAL.md). A round's
# optimalisasi makes offers while its history stays under this budget, keeping room for each
# offer's answer (domain/optimalisasi.py, offer_room) and, above the budget, for the windows that
# follow: telling every formasi three more phases costs about 6 events per formasi.
OPTIMALISASI_HISTORY_BUDGET = 40_000
# Offers one run of a round makes before it continues-as-new (patch optimalisasi-continues): a
# run's state query lists its own offers and decisions, so it stays near 200 KiB.
OPTIMALISASI_OFFERS_PER_RUN = 1_000
MAX_OPTIMALISASI_HISTORY_BUDGET = 45_000
# Registration is open at least 15 calendar days (DOMAIN.md, stage 2).
MIN_REGISTRATION_DAYS = 15


def _no_number(example: str) -> Callable[[object], object]:
    """A before-validator refusing a bare number or true/false where text like `example` is due."""

    def refuse(value: object) -> object:
        if isinstance(value, bool | int | float):
            raise ValueError(
                f"{value!r} is a number, not a date or duration: write it like {example}"
            )
        return value

    return refuse


# Pydantic would read 3 as 3 seconds or 1970-01-01T00:00:03Z, and true as 1 second.
Duration = Annotated[timedelta, BeforeValidator(_no_number('"P3D" or "PT12H" (ISO 8601)'))]
Moment = Annotated[datetime, BeforeValidator(_no_number("2027-08-01T08:00:00+07:00"))]
Day = Annotated[date, BeforeValidator(_no_number("2028-03-01"))]
Identity = Annotated[str, Field(min_length=1, max_length=100)]


def _days(span: timedelta) -> str:
    """A span in days, for messages ("731 days", "1095.40 days")."""
    if span.seconds == span.microseconds == 0:
        return f"{span.days} days"
    return f"{span / timedelta(days=1):.2f} days"


class Category(StrEnum):
    """Needs category of a formasi (kebutuhan umum / khusus)."""

    UMUM = "umum"
    CUMLAUDE = "cumlaude"
    DIASPORA = "diaspora"
    DISABILITAS = "disabilitas"
    PAPUA = "putra_putri_papua"
    DAERAH_TERTINGGAL = "daerah_tertinggal"


class InstansiKind(StrEnum):
    """Central agencies and regional governments have different SKB limits."""

    PUSAT = "pusat"
    DAERAH = "daerah"


def with_offset(moment: datetime) -> datetime:
    """`moment`, which a round file or a message must give with its offset (a naive one is
    refused): 23:59 WIB and 23:59 WIT are two hours apart, and a moment without an offset cannot
    even be compared with the round's."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            "needs a time zone offset: +07:00 (WIB), +08:00 (WITA) or +09:00 (WIT), "
            "e.g. 2027-08-24T23:59:59+07:00"
        )
    return moment


class Window(BaseModel, frozen=True):
    """A period during which something may happen; `closes` is exclusive, at most MAX_WINDOW on."""

    opens: Moment
    closes: Moment

    @field_validator("opens", "closes")
    @classmethod
    def _aware(cls, moment: datetime) -> datetime:
        # Checked per field so the error names which end is naive and its value.
        return with_offset(moment)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.closes <= self.opens:
            raise ValueError(
                f"closes {self.closes.isoformat()} is not after opens {self.opens.isoformat()}"
            )
        if self.closes - self.opens > MAX_WINDOW:
            raise ValueError(
                f"opens {self.opens.isoformat()} and closes {self.closes.isoformat()}, "
                f"{_days(self.closes - self.opens)}; a window lasts at most {_days(MAX_WINDOW)}"
            )
        return self


class Schedule(BaseModel, frozen=True):
    """The round's windows, in order. Operators may extend a window while it is open."""

    registration: Window
    administration: Window
    skd: Window
    skb: Window
    filing: Window
    tmt: Day = Field(description="effective start date (TMT) of the SK CPNS; movable by decision")
    latsar: Window
    # A compressed round's own end of the probation (a demo or test round of seconds cannot wait
    # a year); load_round_config refuses it in any other round, whose CPNS serve one year from
    # the TMT (domain.appointment.probation_ends). Left out of the dump when not given, so the
    # digests of rounds recorded before it stay theirs.
    probation_ends: Moment | None = Field(
        default=None,
        exclude_if=lambda ends: ends is None,
        description="a compressed round only: when its CPNS's probation ends (else TMT + 1 year)",
    )

    @field_validator("probation_ends")
    @classmethod
    def _aware_end(cls, moment: datetime | None) -> datetime | None:
        return None if moment is None else with_offset(moment)

    @model_validator(mode="after")
    def _in_order(self) -> Schedule:
        order = ["registration", "administration", "skd", "skb", "filing", "latsar"]
        for earlier, later in zip(order, order[1:], strict=False):
            a, b = getattr(self, earlier), getattr(self, later)
            if b.opens < a.closes:
                raise ValueError(
                    f"{later} opens {b.opens.isoformat()} before {earlier} closes {a.closes.isoformat()}"
                )
        span = self.latsar.closes - self.registration.opens
        if span > MAX_SCHEDULE:
            raise ValueError(
                f"registration opens {self.registration.opens.isoformat()} and latsar closes "
                f"{self.latsar.closes.isoformat()}, {_days(span)} apart; a round spans at most "
                f"{_days(MAX_SCHEDULE)}"
            )
        return self


WINDOW_ORDER = ("registration", "administration", "skd", "skb", "filing", "latsar")


def extended(schedule: Schedule, window: str, new_closes: datetime, shift_later: bool) -> Schedule:
    """The schedule with `window` closing at `new_closes` and, with `shift_later`, every later
    window's opening and close moved by as much (the TMT stays: it moves by its own decision).
    ValueError when the schedule that gives is not one a round may have (a window past the
    round's span, a later window opening before this one closes)."""
    delta = new_closes - getattr(schedule, window).closes
    data = schedule.model_dump()
    data[window]["closes"] = new_closes
    if shift_later:
        for later in WINDOW_ORDER[WINDOW_ORDER.index(window) + 1 :]:
            data[later] = {
                "opens": data[later]["opens"] + delta,
                "closes": data[later]["closes"] + delta,
            }
    try:
        return Schedule.model_validate(data)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        ) from None


class SkdThreshold(BaseModel, frozen=True):
    """Minimum scores of one needs category; None means no minimum on that part."""

    twk: StrictInt | None = Field(default=None, ge=0)
    tiu: StrictInt | None = Field(default=None, ge=0)
    tkp: StrictInt | None = Field(default=None, ge=0)
    total: StrictInt | None = Field(default=None, ge=0)


def _default_thresholds() -> dict[Category, SkdThreshold]:
    general = SkdThreshold(twk=65, tiu=80, tkp=166)
    high = SkdThreshold(total=311, tiu=85)
    affirmative = SkdThreshold(total=286, tiu=60)
    return {
        Category.UMUM: general,
        Category.CUMLAUDE: high,
        Category.DIASPORA: high,
        Category.DISABILITAS: affirmative,
        Category.PAPUA: affirmative,
        Category.DAERAH_TERTINGGAL: affirmative,
    }


class SkdRules(BaseModel, frozen=True):
    """SKD scoring limits, thresholds per category and the SKB cut (multiple of the quota)."""

    # Below 1024 each: rank_skd packs the key into one integer per 10-bit part.
    twk_max: StrictInt = Field(default=150, ge=1, le=1000)
    tiu_max: StrictInt = Field(default=175, ge=1, le=1000)
    tkp_max: StrictInt = Field(default=225, ge=1, le=1000)
    step: StrictInt = Field(
        default=5,
        ge=1,
        le=100,
        description="TWK and TIU are multiples of this (5 per correct answer), 1..100",
    )
    thresholds: dict[Category, SkdThreshold] = Field(default_factory=_default_thresholds)
    cut_multiplier: StrictInt = Field(
        default=3, ge=1, le=10, description="the top cut_multiplier x quota go on to SKB (3), 1..10"
    )

    @property
    def total_max(self) -> int:
        """Highest possible SKD total (550 by default)."""
        return self.twk_max + self.tiu_max + self.tkp_max

    @model_validator(mode="after")
    def _every_category(self) -> SkdRules:
        missing = [c.value for c in Category if c not in self.thresholds]
        if missing:
            raise ValueError(f"thresholds missing for categories {missing}")
        maxima = {
            "twk": self.twk_max,
            "tiu": self.tiu_max,
            "tkp": self.tkp_max,
            "total": self.total_max,
        }
        unreachable = [
            f"thresholds.{category.value}.{part} = {minimum} is above {part} max {maxima[part]}"
            for category, threshold in self.thresholds.items()
            for part, minimum in threshold.model_dump().items()
            if minimum is not None and minimum > maxima[part]
        ]
        if unreachable:
            raise ValueError("; ".join(unreachable) + ": nobody could pass")
        return self


class ComponentKind(StrEnum):
    """How an SKB component is scored."""

    SCORE = "score"  # one score 0..max_score, weighted
    PANEL = "panel"  # several panellists score 0..max_score; the mean is weighted
    GATE = "gate"  # MS/TMS only, weight 0: TMS eliminates


class SkbComponent(BaseModel, frozen=True):
    """One SKB component: CAT, interview, psychology, health, fitness, practical, language."""

    name: Code
    kind: ComponentKind = ComponentKind.SCORE
    weight: StrictFloat = Field(default=0, ge=0, le=100, description="percent of the SKB score")
    max_score: StrictFloat = Field(
        default=100, gt=0, le=10_000, description="0 < max_score <= 10,000"
    )
    floor: StrictFloat | None = Field(
        default=None, ge=0, description="a score at or below this eliminates; below max_score"
    )
    min_panellists: StrictInt = Field(default=2, ge=2, le=20, description="2..20 panellists")
    # A panel with a pool (issue 16): the identities who may sit on it, each scoring with their
    # own key; `assign` of them (without a conflict) are drawn for each applicant from a seed the
    # journey records. Left out of the dump while unset, so older rounds keep their digests.
    panellists: list[Code] = Field(
        default_factory=list,
        max_length=200,
        exclude_if=lambda pool: not pool,
        description="the pool of panellists of a panel component (identities)",
    )
    assign: StrictInt = Field(
        default=0,
        ge=0,
        le=20,
        exclude_if=lambda n: n == 0,
        description="panellists drawn for each applicant from the pool (0: no assignment)",
    )
    outlier_margin: StrictFloat | None = Field(
        default=None,
        gt=0,
        exclude_if=lambda m: m is None,
        description="a panellist's score more than this far from the mean of the rest of the "
        "panel is flagged for the committee's review (exactly this far is not)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SkbComponent:
        if self.kind == ComponentKind.GATE and self.weight != 0:
            raise ValueError(f"component {self.name}: a gate has weight 0, not {self.weight}")
        if self.kind != ComponentKind.GATE and self.weight == 0:
            raise ValueError(f"component {self.name}: a scored component needs a weight above 0")
        if self.kind != ComponentKind.PANEL and (self.panellists or self.assign):
            raise ValueError(f"component {self.name}: only a panel component has panellists")
        if self.assign and self.assign < self.min_panellists:
            raise ValueError(
                f"component {self.name}: assign {self.assign} is below min_panellists "
                f"{self.min_panellists}"
            )
        if self.assign and len(set(self.panellists)) < self.assign + 1:
            raise ValueError(
                f"component {self.name}: a pool of {len(set(self.panellists))} panellists cannot "
                f"give {self.assign} to each applicant with one to spare for a conflict"
            )
        if len(set(self.panellists)) != len(self.panellists):
            raise ValueError(f"component {self.name}: a panellist is listed twice in the pool")
        if self.floor is not None and self.floor >= self.max_score:
            raise ValueError(
                f"component {self.name}: floor {self.floor} is not below max_score "
                f"{self.max_score}: every score would eliminate"
            )
        return self


def _default_components() -> list[SkbComponent]:
    return [SkbComponent(name="cat", weight=100, max_score=500)]


class SkbRules(BaseModel, frozen=True):
    """SKB composition. The CAT component named `cat` is mandatory."""

    components: list[SkbComponent] = Field(default_factory=_default_components, max_length=20)

    @model_validator(mode="after")
    def _composition(self) -> SkbRules:
        names = [c.name for c in self.components]
        if "cat" not in names:
            raise ValueError("the SKB CAT component named 'cat' is mandatory")
        cat = next(c for c in self.components if c.name == "cat")
        if cat.kind != ComponentKind.SCORE:
            # As a panel it would be an interview of any weight, past the limits on interviews,
            # and the CAT system's score reports for it would be refused.
            raise ValueError(
                f"component cat: the SKB CAT test is a score component (the CAT system reports "
                f"it), not {cat.kind.value}"
            )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"component names repeated: {dupes}")
        total = sum(c.weight for c in self.components)
        if abs(total - 100) > 1e-9:
            raise ValueError(f"component weights add up to {total}, not 100")
        return self

    def component(self, name: str) -> SkbComponent | None:
        """The component of that name, or None."""
        return next((c for c in self.components if c.name == name), None)


class SkbLimits(BaseModel, frozen=True):
    """What an instansi may add to the SKB CAT test, by kind of instansi (DOMAIN.md stage 7, the
    2024 rules): weighted components besides `cat` (gates, weight 0, are not counted), their
    total weight and the weight of interviews (panel components) among them, in percent of the
    SKB score. A regulation changes them from year to year; these are the 2024 figures."""

    central_components: StrictInt = Field(default=3, ge=0, le=19)
    central_weight: StrictFloat = Field(default=50, ge=0, le=100)
    central_interview_weight: StrictFloat = Field(default=10, ge=0, le=100)
    regional_components: StrictInt = Field(default=1, ge=0, le=19)
    regional_weight: StrictFloat = Field(default=40, ge=0, le=100)
    regional_interview_weight: StrictFloat = Field(
        default=0, ge=0, le=100, description="0: a regional instansi adds no interview"
    )

    def problem(self, kind: InstansiKind, skb: SkbRules) -> str | None:
        """Why `skb` is past these limits for an instansi of `kind`, or None."""
        extra = [c for c in skb.components if c.name != "cat" and c.kind != ComponentKind.GATE]
        weight = sum(c.weight for c in extra)
        interview = sum(c.weight for c in extra if c.kind == ComponentKind.PANEL)
        if kind == InstansiKind.DAERAH:
            most, most_weight, most_interview = (
                self.regional_components,
                self.regional_weight,
                self.regional_interview_weight,
            )
            who = "a regional instansi"
        else:
            most, most_weight, most_interview = (
                self.central_components,
                self.central_weight,
                self.central_interview_weight,
            )
            who = "a central instansi"
        # Within the SKB rules' own tolerance: 16.6 + 24.8 + 8.6 adds up to 50.00000000000001
        # in floats, and a round at exactly 50% was refused "at most 50% ... with 50%".
        slack = 1e-9
        if (
            len(extra) <= most
            and weight <= most_weight + slack
            and interview <= most_interview + slack
        ):
            return None
        interviews = (
            f"interview at most {most_interview:g}%" if most_interview > 0 else "no interview"
        )
        return (
            f"{who} may add up to {most} weighted component{'s' if most != 1 else ''}, together "
            f"at most {most_weight:g}%, {interviews} (skb_limits); got {[c.name for c in extra]} "
            f"with {weight:g}%"
        )


class IntegrationRules(BaseModel, frozen=True):
    """Final score = skd_weight% x (SKD total / SKD max x 100) + skb_weight% x SKB score."""

    skd_weight: StrictFloat = Field(default=40, ge=0, le=100)
    skb_weight: StrictFloat = Field(default=60, ge=0, le=100)

    @model_validator(mode="after")
    def _sum(self) -> IntegrationRules:
        if abs(self.skd_weight + self.skb_weight - 100) > 1e-9:
            raise ValueError(
                f"skd_weight + skb_weight = {self.skd_weight + self.skb_weight}, not 100"
            )
        return self


class AppealRules(BaseModel, frozen=True):
    """Sanggah: once, within `window` of the announcement; the instansi answers within `answer_within`."""

    window: Duration = Field(
        default=timedelta(days=3),
        gt=timedelta(0),
        le=MAX_APPEAL_WINDOW,
        description="3 calendar days (DOMAIN.md); above 0 and at most 30 days",
    )
    answer_within: Duration = Field(
        default=timedelta(days=7),
        gt=timedelta(0),
        le=MAX_APPEAL_ANSWER,
        description="7 days (DOMAIN.md); above 0 and at most 30 days",
    )


class Formasi(BaseModel, frozen=True):
    """One advertised position."""

    code: Code
    jabatan: str = Field(min_length=1, max_length=200)
    unit: str = Field(min_length=1, max_length=200)
    education_level: str = Field(min_length=1, max_length=10)
    majors: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=100
    )
    min_gpa: StrictFloat = Field(default=2.75, ge=0, le=4)
    min_age: StrictInt = Field(default=18, ge=15, le=70)
    max_age: StrictInt = Field(default=35, ge=15, le=70)
    category: Category = Category.UMUM
    quota: StrictInt = Field(ge=1, le=100_000, description="seats, 1..100,000")

    @model_validator(mode="after")
    def _ages(self) -> Formasi:
        if self.max_age < self.min_age:
            raise ValueError(f"max_age {self.max_age} is below min_age {self.min_age}")
        return self


class ReportKind(StrEnum):
    """What a service reports; each kind has its allowed reporters in the round's configuration."""

    ADMIN = "admin"
    APPEAL_ANSWER = "appeal_answer"
    SKD = "skd"
    FILING = "filing"
    # The engine issues the NIP itself, so no report is checked against this kind; it stays
    # because round files (examples/, tests/roundkit.py) and recorded histories list reporters
    # under it, and an unknown kind is refused.
    NIP = "nip"
    LATSAR = "latsar"
    OPERATOR = "operator"  # disqualification, withdrawal, schedule commands
    PORTAL = "portal"  # the applicant portal: sanggah, offer answers, withdrawal


# Kinds whose reports a round cannot do without; every SKB component is one too. The portal
# (sanggah, offer answers) is not required: rounds recorded before it existed list none.
REPORTED_KINDS = (
    ReportKind.ADMIN,
    ReportKind.APPEAL_ANSWER,
    ReportKind.SKD,
    ReportKind.FILING,
    ReportKind.LATSAR,
    ReportKind.OPERATOR,
)

_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*")
# Zone files that name the host's own setting, not a place: a round must not depend on the host.
_HOST_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_NOT_A_ZONE = (
    "no such IANA time zone; Indonesia's are Asia/Jakarta (WIB), Asia/Makassar (WITA) and "
    "Asia/Jayapura (WIT)"
)


class RoundConfig(BaseModel, frozen=True):
    """Everything that defines one instansi's round."""

    _digest: str | None = PrivateAttr(default=None)

    round_id: Code
    instansi: str = Field(min_length=1, max_length=200)
    instansi_kind: InstansiKind = InstansiKind.DAERAH
    # Left out of the dump at its defaults, so rounds from before it keep their rules' digests.
    # Declared before skb, which is checked against it.
    skb_limits: SkbLimits = Field(
        default_factory=SkbLimits,
        exclude_if=lambda limits: limits == SkbLimits(),
        description="what an instansi may add to the SKB CAT test (the 2024 figures)",
    )
    rule_version: str = Field(min_length=1, max_length=40)
    schedule: Schedule
    formasi: list[Formasi] = Field(min_length=1)
    skd: SkdRules = SkdRules()
    skb: SkbRules = SkbRules()
    integration: IntegrationRules = IntegrationRules()
    appeal: AppealRules = AppealRules()
    reporters: dict[str, list[Identity]] = Field(
        default_factory=dict,
        validate_default=True,
        description="report kind (or SKB component name) -> identities allowed to report it; every "
        "kind in REPORTED_KINDS and every SKB component needs at least one",
    )
    identities: dict[Identity, str] = Field(
        default_factory=dict,
        description="identity -> its Ed25519 public key (JWK x, base64url); when set, every report "
        "and command must be signed by its reporter's key (domain/signing.py), and every identity "
        "in reporters needs one",
    )
    withdrawal_sanction_rounds: StrictInt = Field(
        default=2, ge=0, le=10, description="rounds barred after withdrawing (2), 0..10"
    )
    broadcast_page_size: StrictInt = Field(
        default=500,
        ge=1,
        le=10_000,
        description="engine tuning: journeys told per step of an announcement (bounds formasi histories)",
    )
    # Left out of the dump at its default, so rounds from before it keep their rules' digests.
    fold_pages_at: StrictInt = Field(
        default=FOLD_PAGES_AT,
        ge=2,
        le=500,  # an index page holds at most domain.pages.MAX_PAGE_ITEMS references
        exclude_if=lambda n: n == FOLD_PAGES_AT,
        description="engine tuning: page references a formasi carries (and a round, of the "
        "applicants it offered a seat) before it folds them into one index page (bounds its "
        "continue-as-new input however many applicants answer or are offered)",
    )
    # Left out of the dump at its default, so rounds from before it keep their rules' digests.
    optimalisasi_history_budget: StrictInt = Field(
        default=OPTIMALISASI_HISTORY_BUDGET,
        ge=1,
        le=MAX_OPTIMALISASI_HISTORY_BUDGET,
        exclude_if=lambda n: n == OPTIMALISASI_HISTORY_BUDGET,
        description="engine tuning: the round's history length (events) within which "
        "optimalisasi makes offers, each offer's answer counted in; past it the round stops "
        "offering and records why (Temporal terminates a run at 51,200 events)",
    )
    optimalisasi_offers_per_run: StrictInt = Field(
        default=OPTIMALISASI_OFFERS_PER_RUN,
        ge=1,
        le=100_000,
        exclude_if=lambda n: n == OPTIMALISASI_OFFERS_PER_RUN,
        description="engine tuning: offers one run of the round makes in optimalisasi before "
        "the round continues as a new run (bounds the run's state query and result)",
    )
    timezone: str = Field(
        default="Asia/Jakarta",
        max_length=64,
        description="IANA zone of the instansi (Asia/Jakarta, Asia/Makassar, Asia/Jayapura): ages "
        "are judged on the local application date",
    )
    offer_answer_within: Duration = Field(
        default=timedelta(days=2),
        gt=timedelta(0),
        le=MAX_OFFER_ANSWER,
        description="how long an optimalisasi offer waits for an answer; above 0, at most 30 days",
    )
    # Left out of the dump at its default, so rounds from before it keep their rules' digests.
    offer_answer_grace: Duration = Field(
        default=OFFER_ANSWER_GRACE,
        gt=timedelta(0),
        le=MAX_OFFER_ANSWER_GRACE,
        exclude_if=lambda d: d == OFFER_ANSWER_GRACE,
        description="how long after the latest pending optimalisasi offer's answer_by the round "
        "waits for its journeys' answers before it counts each offer still unanswered as "
        "declined and passes the seat on (1 day); above 0, at most 30 days",
    )
    # Left out of the dump at its default, so rounds from before it keep their rules' digests.
    min_registration_days: StrictInt = Field(
        default=MIN_REGISTRATION_DAYS,
        ge=1,
        le=366,
        exclude_if=lambda n: n == MIN_REGISTRATION_DAYS,
        description="calendar days, in the round's time zone, that registration stays open at "
        "the least (15): the round file's registration window and an early close are held to "
        "it; a schedule compressed to minutes (the demo, the tests) sets 1",
    )
    # The national round this instansi round joins (domain/national.py; issue 17): its windows
    # must lie within the national ones, and one NIK registers once nationwide. Left out of the
    # dump while unset, so rounds without one keep their digests.
    national_round: Code | None = Field(
        default=None,
        exclude_if=lambda n: n is None,
        description="the national round this round joins (its national_id), or none",
    )

    @field_validator("formasi")
    @classmethod
    def _unique_codes(cls, formasi: list[Formasi]) -> list[Formasi]:
        codes = [f.code for f in formasi]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"formasi codes repeated: {dupes}")
        return formasi

    @field_validator("skb")
    @classmethod
    def _skb_limits(cls, skb: SkbRules, info: ValidationInfo) -> SkbRules:
        # A field check (instansi_kind is declared before skb), so that a reporters problem
        # is reported with it rather than in its place.
        kind = info.data.get("instansi_kind")
        limits = info.data.get("skb_limits")
        if kind is None or limits is None:
            return skb  # their own errors are reported
        problem = limits.problem(kind, skb)
        if problem:
            raise ValueError(problem)
        return skb

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        if name in _HOST_ZONES or not _ZONE_NAME.fullmatch(name):
            raise ValueError(_NOT_A_ZONE)
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(_NOT_A_ZONE) from None
        return name

    @field_validator("reporters")
    @classmethod
    def _every_stage_has_a_reporter(
        cls, reporters: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        # Declared after skb, so a valid skb is in info.data. Without one (its own error is
        # reported) the component names are unknown, and only the fixed kinds are checked.
        skb: SkbRules | None = info.data.get("skb")
        components = [c.name for c in skb.components] if skb else []
        problems = []
        clashes = sorted(set(components) & {k.value for k in ReportKind})
        if clashes:
            problems.append(f"SKB components named like a report kind: {clashes}; rename them")
        known = {k.value for k in ReportKind} | set(components)
        unknown = sorted(set(reporters) - known)
        if unknown and skb is not None:
            problems.append(f"unknown report kinds {unknown}; known are {sorted(known)}")
        missing = [k for k in [*REPORTED_KINDS, *components] if not reporters.get(k)]
        for c in skb.components if skb else []:
            outside = sorted(set(c.panellists) - set(reporters.get(c.name, [])))
            if outside:
                problems.append(
                    f"the {c.name} panel's pool has {outside}, who are not reporters of {c.name}: "
                    "each panellist scores with their own key"
                )
        if missing:
            problems.append(
                f"no reporter for {', '.join(missing)}: every stage that takes reports needs at "
                "least one identity"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return reporters

    @field_validator("identities")
    @classmethod
    def _keys_are_ed25519(cls, identities: dict[str, str]) -> dict[str, str]:
        problems = []
        for identity, key in identities.items():
            try:
                public_key(key, identity)
            except SigningKeyError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return identities

    @model_validator(mode="after")
    def _every_reporter_has_a_key(self) -> RoundConfig:
        if self.identities:
            keyless = sorted(
                {i for ids in self.reporters.values() for i in ids} - set(self.identities)
            )
            if keyless:
                raise ValueError(
                    f"identities: no public key for {', '.join(keyless)}; a round with identities "
                    "takes only signed reports, so every reporter needs a key"
                )
        return self

    @property
    def signed(self) -> bool:
        """Whether this round takes only signed reports and commands."""
        return bool(self.identities)

    def formasi_by_code(self, code: str) -> Formasi | None:
        """The formasi with that code, or None."""
        return next((f for f in self.formasi if f.code == code), None)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the rules: recorded with every decision (computed once)."""
        if self._digest is None:
            # A round without keys digests as it did before identities existed, so the digests
            # recorded by older rounds stay the digests of their rules.
            self._digest = canonical_digest(
                self.model_dump(mode="json", exclude=set() if self.identities else {"identities"})
            )
        return self._digest


class ConfigError(ValueError):
    """A round file that cannot be used: names the file, each field and its problem."""

    def __init__(self, path: Path | str, problems: list[tuple[str, object, str]]) -> None:
        self.path = str(path)
        self.problems = problems
        lines = [
            f"{self.path}: {field} = {value!r}: {problem}" for field, value, problem in problems
        ]
        super().__init__("\n".join(lines))


_MISSING = "<missing>"


def _iso_duration(span: timedelta) -> str:
    """ISO 8601 in days and time only, as round files write it: "P3D", "PT12H", "-P1DT0.5S"."""
    sign, span = ("-", -span) if span < timedelta(0) else ("", span)
    hours, rest = divmod(span.seconds, 3600)
    minutes, whole = divmod(rest, 60)
    seconds = f"{whole}.{span.microseconds:06d}".rstrip("0").rstrip(".")
    time = "".join(
        f"{n}{unit}"
        for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S"))
        if n not in (0, "0")
    )
    days = f"{span.days}D" if span.days else ""
    return f"{sign}P{days}{'T' + time if time else ''}" if days or time else "PT0S"


def _as_written(value: object) -> object:
    """A bad value as a round file writes it (pydantic reports a parsed duration or moment)."""
    if isinstance(value, dict | list):
        return "<table>" if isinstance(value, dict) else "<list>"
    if isinstance(value, timedelta):
        return _iso_duration(value)
    if isinstance(value, date):  # a datetime is a date too
        return value.isoformat()
    return value


def calendar_days(opens: datetime, closes: datetime, zone: str) -> int:
    """The local dates in `zone` that a window from `opens` to `closes` (exclusive) touches: an
    hour within one day is 1, from the 1st at 08:00 to the 15th at 23:59:59 is 15."""
    tz = ZoneInfo(zone)
    last = (closes - timedelta(microseconds=1)).astimezone(tz).date()
    return (last - opens.astimezone(tz).date()).days + 1


def days_after(at: datetime, span: timedelta, zone: str) -> datetime:
    """The end (exclusive) of a period of `span` from `at`, as DOMAIN.md counts days.

    A whole number of days is counted in calendar days in `zone` (the round's): the period ends
    when the last of them ends, at 24:00 local time. A sanggah window of 3 days from an
    announcement made on 20 August at 16:00 WIT is open until 23 August 24:00 WIT, not 16:00,
    whatever the hour of the announcement; an answer due 7 days after a sanggah filed on
    28 February is due by 7 March 24:00. A span that is not whole days (a demo's seconds) is
    exact: `at + span`."""
    if span.seconds or span.microseconds or span.days <= 0:
        return at + span
    tz = ZoneInfo(zone)
    last = at.astimezone(tz).date() + span
    return datetime.combine(last + timedelta(days=1), time(), tz)


def sanggah_answered_by(announced: datetime, appeal: AppealRules, zone: str) -> datetime:
    """When the time to answer a sanggah against a result announced at `announced` ends (an
    exclusive end, as a window's close: an answer at it is late): its
    window (`appeal.window`) from the announcement, then the answer time (`appeal.answer_within`)
    from a filing on the window's last day, each ending at 24:00 in `zone` (`days_after`)."""
    closes = days_after(announced, appeal.window, zone)
    return days_after(closes - timedelta(microseconds=1), appeal.answer_within, zone)


def registration_too_short(config: RoundConfig) -> tuple[str, object, str] | None:
    """The round file's registration window, if it is open fewer calendar days than the round's
    `min_registration_days`: as a ConfigError problem. Checked when a round file is read, not
    by `RoundConfig` itself, so that rounds recorded before the minimum still decode."""
    window = config.schedule.registration
    days = calendar_days(window.opens, window.closes, config.timezone)
    if days >= config.min_registration_days:
        return None
    return (
        "schedule.registration",
        f"opens {window.opens.isoformat()}, closes {window.closes.isoformat()}",
        f"open on {days} calendar day{'s' if days != 1 else ''} ({config.timezone}); registration "
        f"is open at least {config.min_registration_days} (min_registration_days)",
    )


# What a component's name says when it is an interview (DOMAIN.md stage 7): its words in Indonesian
# and English, found anywhere in the name ("wawancara", "wawancara-teknis", "Interview").
INTERVIEW_WORDS = ("wawancara", "interview")


def interviews_not_panels(config: RoundConfig) -> list[tuple[str, object, str]]:
    """The round file's SKB components named as an interview but not of kind `panel`, as
    ConfigError problems. The limits on interviews (skb_limits: at most 10% for a central instansi,
    none for a regional one) and the panel's mean of at least two panellists hold for panel
    components; an interview written as a plain score passed them all. Checked when a round file
    is read, not by `RoundConfig` itself, so that recorded rounds still decode."""
    return [
        (
            f"skb.components.{i}",
            c.name,
            f"named as an interview but of kind {c.kind.value}: an interview is scored by a panel "
            'of at least two panellists (kind = "panel"), within the limits on interviews',
        )
        for i, c in enumerate(config.skb.components)
        if c.kind != ComponentKind.PANEL and any(w in c.name.casefold() for w in INTERVIEW_WORDS)
    ]


def early_close_refusal(config: RoundConfig, opens: datetime, now: datetime) -> str | None:
    """Why registration, open since `opens`, may not close early at `now`: it would have been open
    fewer calendar days than the round's minimum. None when it may."""
    days = calendar_days(opens, now, config.timezone)
    if days >= config.min_registration_days:
        return None
    first = opens.astimezone(ZoneInfo(config.timezone)).date()
    return (
        f"registration opened {opens.isoformat()} and is open at least "
        f"{config.min_registration_days} calendar days (min_registration_days); this is day "
        f"{days}: it may close early from "
        f"{(first + timedelta(days=config.min_registration_days - 1)).isoformat()} on"
    )


def _unknown_in(annotation: Any, value: object, where: str) -> list[tuple[str, object, str]]:
    """The unknown keys of `value` read as `annotation`: a model, a list or dict of them, an
    optional one. Anything else holds no keys of a model."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unknown_in(get_args(annotation)[0], value, where)
    if origin in (Union, types.UnionType):
        models = [
            a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        # Only `Model | None` occurs in the files; a union of models would need its tag.
        return _unknown_in(models[0], value, where) if len(models) == 1 else []
    if origin is list and isinstance(value, list):
        (item,) = get_args(annotation)
        return [p for i, v in enumerate(value) for p in _unknown_in(item, v, f"{where}.{i}")]
    if origin is dict and isinstance(value, dict):
        _, item = get_args(annotation)
        return [p for k, v in value.items() for p in _unknown_in(item, v, f"{where}.{k}")]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return unknown_keys(annotation, value, where)
    return []


def unknown_keys(
    model: type[BaseModel], data: object, where: str = ""
) -> list[tuple[str, object, str]]:
    """Every key of a file's table `data` that `model` (and the models within it) has no field
    for, as ConfigError problems naming its dotted path: `maks_age = 40` would leave max_age at its
    default unnoticed. Checked when a file is read, not by the models, so that recorded inputs
    keep decoding whatever they carry."""
    if not isinstance(data, dict):
        return []  # not a table: the model's own validation says so
    problems: list[tuple[str, object, str]] = []
    fields = model.model_fields
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key in fields:
            problems.extend(_unknown_in(fields[key].annotation, value, path))
            continue
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(fields)}"
        problems.append((path, _as_written(value), "unknown key" + hint))
    return problems


def parse_round_config(data: dict, source: Path | str = "<memory>") -> RoundConfig:
    """Validate a parsed round document; raise ConfigError naming each bad field."""
    try:
        return RoundConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(document)"
            value = err.get("input", _MISSING) if err["type"] != "missing" else _MISSING
            problems.append((field, _as_written(value), err["msg"]))
        raise ConfigError(source, problems) from None


def parse_toml(raw: bytes, path: Path | str) -> dict:
    """A round or national file's TOML, or ConfigError saying why not. A byte-order mark is
    refused rather than skipped: the file is recorded as written, and read again from there."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ConfigError(
            path,
            [
                (
                    "(file)",
                    str(path),
                    "starts with a byte-order mark (saved as 'UTF-8 with BOM'), which TOML does "
                    "not allow: save it as UTF-8 without one",
                )
            ],
        )
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [("(syntax)", _MISSING, str(exc))]) from None


Model = TypeVar("Model", bound=BaseModel)


CONFIG_FILE_LIMIT = 64 * 1024 * 1024  # bytes: thousands of formasi take a few MB


def _read_config_bytes(path: Path) -> bytes:
    """A round or national file's bytes; OSError unless it is a regular file of at most
    CONFIG_FILE_LIMIT bytes (a FIFO would block for ever, /dev/zero fill the memory), as
    runtime.files.read_input, which this level cannot import."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a directory, a FIFO or a device)")
        data = f.read(CONFIG_FILE_LIMIT + 1)
    if len(data) > CONFIG_FILE_LIMIT:
        raise OSError(errno.EFBIG, f"it is larger than {CONFIG_FILE_LIMIT:,} bytes")
    return data


def read_config_file(path: Path, model: type[Model], parse: Callable[[dict, Path], Model]) -> Model:
    """A round or national file read with `parse`, or one ConfigError naming every key of it
    that `model` does not know (unknown_keys) and every bad field."""
    try:
        raw = _read_config_bytes(path)
    except OSError as exc:
        raise ConfigError(
            path, [("(file)", str(path), f"cannot be read: {exc.strerror}")]
        ) from None
    data = parse_toml(raw, path)
    unknown = unknown_keys(model, data)
    try:
        config = parse(data, path)
    except ConfigError as exc:
        raise ConfigError(path, unknown + exc.problems) from None
    if unknown:
        raise ConfigError(path, unknown)
    return config


# The ages DOMAIN.md allows (stage 2): 18-35 on the application date, up to 40 for the professions
# it names, set per formasi.
YOUNGEST_AGE = 18
OLDEST_AGE = 40


def ages_outside_rules(config: RoundConfig) -> list[tuple[str, object, str]]:
    """The round file's formasi age limits outside what DOMAIN.md allows (at least 18, at most
    40), as ConfigError problems. `Formasi` itself takes 15-70, so that recorded rounds still
    decode; a round file is held to the rules."""
    problems: list[tuple[str, object, str]] = []
    for i, f in enumerate(config.formasi):
        if f.min_age < YOUNGEST_AGE:
            problems.append(
                (
                    f"formasi.{i}.min_age",
                    f.min_age,
                    f"an applicant is at least {YOUNGEST_AGE} on the application date",
                )
            )
        if f.max_age > OLDEST_AGE:
            problems.append(
                (
                    f"formasi.{i}.max_age",
                    f.max_age,
                    f"at most {OLDEST_AGE} (35 in general; up to 40 for specialist doctors, "
                    "doctorate lecturers, researchers and engineers)",
                )
            )
    return problems


def thresholds_in_part(config: RoundConfig) -> list[tuple[str, object, str]]:
    """The round file's SKD minimums that leave out a part the category's national minimums set,
    as ConfigError problems. A part left out means no minimum on it, so `umum = {twk = 70}`, meant
    to raise TWK, took away the TIU and TKP minimums; no minimum on a part is written `= 0`.
    Checked when a round file is read, so that recorded rounds still decode."""
    shipped = _default_thresholds()
    problems: list[tuple[str, object, str]] = []
    for category, threshold in config.skd.thresholds.items():
        national = shipped[category]
        for part in ("twk", "tiu", "tkp", "total"):
            if getattr(national, part) is not None and getattr(threshold, part) is None:
                problems.append(
                    (
                        f"skd.thresholds.{category.value}.{part}",
                        "(not given)",
                        f"the national minimum is {getattr(national, part)}; give every part the "
                        "category's national minimums set (write 0 for no minimum)",
                    )
                )
    return problems


def compressed(appeal: AppealRules) -> bool:
    """Whether a round is a compressed one (a demo or test round of seconds, whose windows the
    operator closes by command): its sanggah's window or answer time is not whole days."""
    return any(span.seconds or span.microseconds for span in (appeal.window, appeal.answer_within))


def sanggah_after_skd(config: RoundConfig) -> tuple[str, object, str] | None:
    """The round file's SKD window, if it closes before an administration sanggah may still be
    answered, as a ConfigError problem: an applicant made MS by the answer would find SKD over
    and end TH. The result is announced when the administration closes; the sanggah's window and
    answer time count from it as the journeys count them (calendar days in the round's zone). A
    compressed round (`compressed`) is not held to it."""
    if compressed(config.appeal):
        return None
    announced = config.schedule.administration.closes
    answered_by = sanggah_answered_by(announced, config.appeal, config.timezone)
    skd = config.schedule.skd
    if answered_by < skd.closes:
        return None
    return (
        "schedule.skd",
        f"closes {skd.closes.isoformat()}",
        f"closes before an administration sanggah may still be answered ({answered_by.isoformat()}:"
        " the window of appeal.window and the answer time of appeal.answer_within from the "
        "administration's close); an applicant the answer makes MS would miss SKD",
    )


def probation_cut_short(config: RoundConfig) -> tuple[str, object, str] | None:
    """The round file's `schedule.probation_ends`, given in a round that is not compressed, as a
    ConfigError problem: a CPNS serves one year of probation from the TMT (DOMAIN.md 12), which
    no round file shortens."""
    ends = config.schedule.probation_ends
    if ends is None or compressed(config.appeal):
        return None
    return (
        "schedule.probation_ends",
        ends.isoformat(),
        "a CPNS's probation lasts one year from the TMT: only a compressed round (a sanggah not in "
        "whole days) may end it sooner; leave it out",
    )


def load_round_config(path: Path | str) -> RoundConfig:
    """Read and validate a round configuration file (TOML): a key it does not know is refused."""
    path = Path(path)
    config = read_config_file(path, RoundConfig, parse_round_config)
    problems = [
        p
        for p in [
            registration_too_short(config),
            sanggah_after_skd(config),
            probation_cut_short(config),
        ]
        if p
    ]
    problems += interviews_not_panels(config)
    problems += ages_outside_rules(config)
    problems += thresholds_in_part(config)
    if problems:
        raise ConfigError(path, problems)
    return config
