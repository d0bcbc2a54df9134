"""A round's configuration: formasi, schedule and every figure a regulation can change.

The shipped defaults are the national rules of the 2024 round (DOMAIN.md). A round file is
TOML; `load_round_config` names the file, the field and the problem when it is wrong.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


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


class Window(BaseModel, frozen=True):
    """A period during which something may happen; `closes` is exclusive."""

    opens: datetime
    closes: datetime

    @field_validator("opens", "closes")
    @classmethod
    def _aware(cls, moment: datetime) -> datetime:
        # Checked per field so the error names which end is naive and its value.
        if moment.tzinfo is None:
            raise ValueError("needs a time zone offset, e.g. 2026-12-01T08:00:00+07:00")
        return moment

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.closes <= self.opens:
            raise ValueError(
                f"closes {self.closes.isoformat()} is not after opens {self.opens.isoformat()}"
            )
        return self


class Schedule(BaseModel, frozen=True):
    """The round's windows, in order. Operators may extend a window while it is open."""

    registration: Window
    administration: Window
    skd: Window
    skb: Window
    filing: Window
    tmt: date = Field(description="effective start date (TMT) of the SK CPNS; movable by decision")
    latsar: Window

    @model_validator(mode="after")
    def _in_order(self) -> Schedule:
        order = ["registration", "administration", "skd", "skb", "filing", "latsar"]
        for earlier, later in zip(order, order[1:], strict=False):
            a, b = getattr(self, earlier), getattr(self, later)
            if b.opens < a.closes:
                raise ValueError(
                    f"{later} opens {b.opens.isoformat()} before {earlier} closes {a.closes.isoformat()}"
                )
        return self


class SkdThreshold(BaseModel, frozen=True):
    """Minimum scores of one needs category; None means no minimum on that part."""

    twk: int | None = None
    tiu: int | None = None
    tkp: int | None = None
    total: int | None = None


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
    twk_max: int = Field(default=150, ge=1, le=1000)
    tiu_max: int = Field(default=175, ge=1, le=1000)
    tkp_max: int = Field(default=225, ge=1, le=1000)
    step: int = Field(
        default=5, description="TWK and TIU are multiples of this (5 per correct answer)"
    )
    thresholds: dict[Category, SkdThreshold] = Field(default_factory=_default_thresholds)
    cut_multiplier: int = Field(default=3, ge=1)

    @property
    def total_max(self) -> int:
        """Highest possible SKD total (550 by default)."""
        return self.twk_max + self.tiu_max + self.tkp_max

    @model_validator(mode="after")
    def _every_category(self) -> SkdRules:
        missing = [c.value for c in Category if c not in self.thresholds]
        if missing:
            raise ValueError(f"thresholds missing for categories {missing}")
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
    weight: float = Field(default=0, ge=0, le=100, description="percent of the SKB score")
    max_score: float = Field(default=100, gt=0)
    floor: float | None = Field(default=None, description="a score at or below this eliminates")
    min_panellists: int = Field(default=2, ge=2)

    @model_validator(mode="after")
    def _consistent(self) -> SkbComponent:
        if self.kind == ComponentKind.GATE and self.weight != 0:
            raise ValueError(f"component {self.name}: a gate has weight 0, not {self.weight}")
        if self.kind != ComponentKind.GATE and self.weight == 0:
            raise ValueError(f"component {self.name}: a scored component needs a weight above 0")
        return self


def _default_components() -> list[SkbComponent]:
    return [SkbComponent(name="cat", weight=100, max_score=500)]


class SkbRules(BaseModel, frozen=True):
    """SKB composition. The CAT component named `cat` is mandatory."""

    components: list[SkbComponent] = Field(default_factory=_default_components)

    @model_validator(mode="after")
    def _composition(self) -> SkbRules:
        names = [c.name for c in self.components]
        if "cat" not in names:
            raise ValueError("the SKB CAT component named 'cat' is mandatory")
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


class IntegrationRules(BaseModel, frozen=True):
    """Final score = skd_weight% x (SKD total / SKD max x 100) + skb_weight% x SKB score."""

    skd_weight: float = Field(default=40, ge=0, le=100)
    skb_weight: float = Field(default=60, ge=0, le=100)

    @model_validator(mode="after")
    def _sum(self) -> IntegrationRules:
        if abs(self.skd_weight + self.skb_weight - 100) > 1e-9:
            raise ValueError(
                f"skd_weight + skb_weight = {self.skd_weight + self.skb_weight}, not 100"
            )
        return self


class AppealRules(BaseModel, frozen=True):
    """Sanggah: once, within `window` of the announcement; the instansi answers within `answer_within`."""

    window: timedelta = Field(default=timedelta(days=3), gt=timedelta(0))
    answer_within: timedelta = Field(default=timedelta(days=7), gt=timedelta(0))


class Formasi(BaseModel, frozen=True):
    """One advertised position."""

    code: Code
    jabatan: str = Field(min_length=1, max_length=200)
    unit: str = Field(min_length=1, max_length=200)
    education_level: str = Field(min_length=1, max_length=10)
    majors: list[str] = Field(min_length=1)
    min_gpa: float = Field(default=2.75, ge=0, le=4)
    min_age: int = Field(default=18, ge=15, le=70)
    max_age: int = Field(default=35, ge=15, le=70)
    category: Category = Category.UMUM
    quota: int = Field(ge=0, le=100_000)

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


class RoundConfig(BaseModel, frozen=True):
    """Everything that defines one instansi's round."""

    _digest: str | None = PrivateAttr(default=None)

    round_id: Code
    instansi: str = Field(min_length=1, max_length=200)
    instansi_kind: InstansiKind = InstansiKind.DAERAH
    rule_version: str = Field(min_length=1, max_length=40)
    schedule: Schedule
    formasi: list[Formasi] = Field(min_length=1)
    skd: SkdRules = SkdRules()
    skb: SkbRules = SkbRules()
    integration: IntegrationRules = IntegrationRules()
    appeal: AppealRules = AppealRules()
    reporters: dict[str, list[str]] = Field(
        default_factory=dict,
        description="report kind (or SKB component name) -> identities allowed to report it",
    )
    withdrawal_sanction_rounds: int = Field(default=2, ge=0)
    broadcast_page_size: int = Field(
        default=500, ge=1, le=10_000,
        description="engine tuning: journeys told per step of an announcement (bounds formasi histories)",
    )
    timezone: str = Field(
        default="Asia/Jakarta", pattern=r"^[A-Za-z_]+(/[A-Za-z_+-]+)*$",
        description="IANA zone of the instansi: ages are judged on the local application date",
    )
    offer_answer_within: timedelta = Field(
        default=timedelta(days=2), gt=timedelta(0), description="how long an optimalisasi offer waits for an answer"
    )

    @field_validator("formasi")
    @classmethod
    def _unique_codes(cls, formasi: list[Formasi]) -> list[Formasi]:
        codes = [f.code for f in formasi]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"formasi codes repeated: {dupes}")
        return formasi

    @model_validator(mode="after")
    def _skb_limits(self) -> RoundConfig:
        extra = [c for c in self.skb.components if c.name != "cat" and c.kind != ComponentKind.GATE]
        extra_weight = sum(c.weight for c in extra)
        interview = [c for c in extra if c.kind == ComponentKind.PANEL]
        if self.instansi_kind == InstansiKind.DAERAH:
            if len(extra) > 1 or extra_weight > 40 or interview:
                raise ValueError(
                    "skb: a regional instansi may add 1 weighted component of at most 40% and no "
                    f"interview; got {[c.name for c in extra]} with {extra_weight}%"
                )
        else:
            if len(extra) > 3 or extra_weight > 50 or sum(c.weight for c in interview) > 10:
                raise ValueError(
                    "skb: a central instansi may add up to 3 weighted components, together at most "
                    f"50%, interview at most 10%; got {[c.name for c in extra]} with {extra_weight}%"
                )
        known = {k.value for k in ReportKind} | {c.name for c in self.skb.components}
        unknown = sorted(set(self.reporters) - known)
        if unknown:
            raise ValueError(
                f"reporters: unknown report kinds {unknown}; known are {sorted(known)}"
            )
        return self

    def formasi_by_code(self, code: str) -> Formasi | None:
        """The formasi with that code, or None."""
        return next((f for f in self.formasi if f.code == code), None)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the rules: recorded with every decision (computed once)."""
        if self._digest is None:
            self._digest = rules_digest(self)
        return self._digest


def rules_digest(model: BaseModel) -> str:
    """SHA-256 over a model's canonical JSON (sorted keys), as a hex string."""
    canonical = json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


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


def parse_round_config(data: dict, source: Path | str = "<memory>") -> RoundConfig:
    """Validate a parsed round document; raise ConfigError naming each bad field."""
    try:
        return RoundConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(document)"
            value = err.get("input", _MISSING) if err["type"] != "missing" else _MISSING
            if isinstance(value, dict | list):
                value = "<table>" if isinstance(value, dict) else "<list>"
            problems.append((field, value, err["msg"]))
        raise ConfigError(source, problems) from None


def load_round_config(path: Path | str) -> RoundConfig:
    """Read and validate a round configuration file (TOML)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            path, [("(file)", str(path), f"cannot be read: {exc.strerror}")]
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [("(syntax)", _MISSING, str(exc))]) from None
    return parse_round_config(data, path)

