"""A national round: the schedule instansi rounds share, who joined it, and one NIK nationwide.

A national round (the 2024 one had 547 instansi) is not one big round: each instansi runs its own
`RecruitmentRound` with its formasi, its committee, its announcements and its optimalisasi, and
names the national round it joins (`RoundConfig.national_round`). The national round holds what
they share: the national windows (registration, the SKD on CAT, and optionally administration and
SKB), within which every instansi window of the same name must lie, and the register of the
instansi rounds that joined. One applicant (one NIK) registers for one formasi nationwide: the
registration claims the NIK's national pseudonym (`ClaimStart`) before the instansi journey starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, StrictInt, ValidationError, model_validator

from domain.config import (
    Code,
    ConfigError,
    Duration,
    InstansiKind,
    Schedule,
    Window,
    _as_written,
    read_config_file,
)
from domain.protocol import Activity, Query, Signal, Update, Workflow

# The windows a national schedule may set, in their order in a round's schedule.
NATIONAL_WINDOWS = ("registration", "administration", "skd", "skb")

# Instansi rounds one national round takes. Each join is one update of the national workflow (a run
# takes at most 2,000) and one entry of its register, which travels whole in its state: 600 entries
# at their largest stay under 256 KiB (tests/domain/test_national.py). The 2024 round had 547.
MAX_ROUNDS = 600

# How long a NIK's claim waits for its journey before it checks that one exists (NationalConfig
# `claim_grace`). A registrar starts the journey right after the claim, within seconds even when
# the server is busy (the SDK gives a start up after 10 s of retries); a claim past its grace with
# no journey is one whose registrar stopped between the two, and it lets the NIK go. A journey
# started after that is not admitted (its claim ended), so the grace is minutes, not seconds.
DEFAULT_CLAIM_GRACE = timedelta(minutes=15)
MIN_CLAIM_GRACE = timedelta(seconds=30)
MAX_CLAIM_GRACE = timedelta(hours=24)

# Claims end within this time after the national SKD closes, spread by their ids, so that millions
# of them do not fall due at the moment the SKD's closes run.
CLAIM_END_SPREAD = timedelta(hours=24)


class NationalSchedule(BaseModel, frozen=True):
    """The windows every instansi round of the national round keeps within."""

    registration: Window
    skd: Window = Field(description="the national SKD on CAT")
    administration: Window | None = None
    skb: Window | None = None

    def windows(self) -> dict[str, Window]:
        """The windows this schedule sets, in order."""
        return {n: w for n in NATIONAL_WINDOWS if (w := getattr(self, n)) is not None}

    @model_validator(mode="after")
    def _in_order(self) -> NationalSchedule:
        windows = list(self.windows().items())
        for (earlier, a), (later, b) in zip(windows, windows[1:], strict=False):
            if b.opens < a.closes:
                raise ValueError(
                    f"{later} opens {b.opens.isoformat()} before {earlier} closes "
                    f"{a.closes.isoformat()}"
                )
        return self


class NationalConfig(BaseModel, frozen=True):
    """A national round: its id, name and shared schedule, and who may read its funnel."""

    national_id: Code
    name: str = Field(min_length=1, max_length=200)
    rule_version: str = Field(min_length=1, max_length=40)
    schedule: NationalSchedule
    # Identities (their API keys in the gateways' file) who may read the national funnel through
    # the gateway: the national committee, an inspector. None: nobody reads it there, only
    # `starter.py national-funnel` with access to the cluster.
    readers: list[Code] = Field(default=[], max_length=200)
    # A NIK's claim with no journey of its registration this long after it was taken is released
    # by the claim itself (its registrar stopped between the claim and the journey's start).
    claim_grace: Duration = Field(
        default=DEFAULT_CLAIM_GRACE,
        ge=MIN_CLAIM_GRACE,
        le=MAX_CLAIM_GRACE,
        description='how long a claim waits for its journey, e.g. "PT15M" (ISO 8601); at least '
        "30 seconds and at most 24 hours",
    )


def schedule_disagreement(national: NationalSchedule, schedule: Schedule) -> list[str]:
    """Each window of an instansi's `schedule` outside the national window of the same name."""
    problems = []
    for name, outer in national.windows().items():
        inner: Window = getattr(schedule, name)
        if inner.opens < outer.opens or inner.closes > outer.closes:
            problems.append(
                f"{name} {inner.opens.isoformat()} to {inner.closes.isoformat()} is not within "
                f"the national {name} window {outer.opens.isoformat()} to "
                f"{outer.closes.isoformat()}"
            )
    return problems


def beyond_national_window(
    national: Mapping[str, Window], name: str, new_closes: datetime, national_id: str | None
) -> str:
    """Why an instansi round's window `name` may not close at `new_closes`: after the national
    window of the same name closes (`national`: the national windows the round joined with). ""
    when it may, or when the national schedule has no such window."""
    outer = national.get(name)
    if outer is None or new_closes <= outer.closes:
        return ""
    return (
        f"new_closes {new_closes.isoformat()} is after the national {name} window of national "
        f"round {national_id} closes {outer.closes.isoformat()}; a round that joined a national "
        f"round keeps its {name} within the national one"
    )


def parse_national_config(data: dict, source: Path | str = "<memory>") -> NationalConfig:
    """Validate a parsed national document; raise ConfigError naming each bad field."""
    try:
        return NationalConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(document)"
            value = err.get("input", "<missing>") if err["type"] != "missing" else "<missing>"
            problems.append((field, _as_written(value), err["msg"]))
        raise ConfigError(source, problems) from None


def load_national_config(path: Path | str) -> NationalConfig:
    """Read and validate a national round file (TOML): a key it does not know is refused."""
    return read_config_file(Path(path), NationalConfig, parse_national_config)


# --- messages ------------------------------------------------------------------------------------

RoundId = Annotated[str, Field(min_length=1, max_length=40)]


class NationalStart(BaseModel, frozen=True):
    """Input of a NationalRound: its configuration, re-validated inside the workflow."""

    config_toml: str  # the file as written, kept verbatim in the history
    config: dict
    created_by: str


class RoundJoin(BaseModel, frozen=True):
    """An instansi round asking to join the national round (sent by create-round before it starts).

    Only what the register keeps and the checks need: never the formasi list, which can be long.
    """

    national_id: str
    round_id: RoundId
    instansi: str = Field(min_length=1, max_length=200)
    instansi_kind: InstansiKind
    rules_digest: str = Field(min_length=1, max_length=64)
    schedule: Schedule
    formasi: StrictInt = Field(ge=1)
    seats: StrictInt = Field(ge=1)
    joined_by: str = Field(min_length=1, max_length=100)


class JoinedRound(BaseModel, frozen=True):
    """One entry of the national register: an instansi round that joined. Its rules' digest and
    who joined it stay in the join's update in the history, out of the register's payload."""

    round_id: str
    instansi: str
    instansi_kind: InstansiKind
    formasi: int
    seats: int
    joined_at: datetime


class JoinAck(BaseModel, frozen=True):
    """The national round's answer to a join; a repeat gets the first answer."""

    national_id: str
    round_id: str
    joined_at: datetime
    rounds: int  # instansi rounds joined so far, this one included


class NationalState(BaseModel, frozen=True):
    """What the national round's query returns: its schedule and register."""

    national_id: str
    name: str
    phase: str  # registration | closed (the register takes no more rounds)
    schedule: NationalSchedule
    rounds: list[JoinedRound]  # in the order they joined


class ClaimStart(BaseModel, frozen=True):
    """One NIK's claim on one formasi of the national round: the input of a NationalClaim.

    Its workflow id is the national id and the NIK's national pseudonym, so the engine starts one
    claim per NIK per national round; a second registration elsewhere finds this one recorded.
    """

    national_id: str
    round_id: str
    applicant_id: str  # the registration number in the instansi round (its own pseudonym)
    formasi_code: str
    registration_digest: str
    holds_until: datetime  # the national SKD's close: no instansi registers after it
    # The national round's `claim_grace` (claims taken since the sweep): after it, the claim checks
    # that its journey exists, and releases itself if none does. None: held to its end (older
    # claims; their start was delayed to the end of the hold).
    sweep_after: timedelta | None = None


def claim_ends_at(holds_until: datetime, workflow_id: str) -> datetime:
    """When the claim of `workflow_id` ends: after its hold, spread over CLAIM_END_SPREAD by the id."""
    spread = int.from_bytes(hashlib.sha256(workflow_id.encode()).digest()[:4], "big")
    return holds_until + CLAIM_END_SPREAD * (spread / 2**32)


def held_elsewhere(claim: ClaimStart) -> str:
    """Why a registration is refused when the NIK's claim is another registration's."""
    return (
        f"already registered in national round {claim.national_id} through round "
        f"{claim.round_id} (formasi {claim.formasi_code}); one NIK may register for one formasi "
        "nationwide"
    )


class ClaimCheck(BaseModel, frozen=True):
    """A journey of an instansi round asks whether the NIK's claim it was started with is its own
    (activities/claims.py, patch national-claim-in-journey)."""

    workflow_id: str  # the claim's (from the signed start; its prefix checked by the journey)
    national_id: str  # the national round the journey's round joined (from the round's view)
    round_id: str
    applicant_id: str
    registration_digest: str


class ClaimVerdict(BaseModel, frozen=True):
    """What the claim says: nothing when it is this registration's; `refusal` when the NIK is
    another registration's nationwide (the registration is refused, as RecruitmentApi would);
    `problem` when there is no such claim of this registration (the start is not admitted)."""

    refusal: str = ""
    problem: str = ""


class ClaimTaken(BaseModel, frozen=True):
    """A journey tells its NIK's claim that it admitted the registration the claim holds (the
    journey's `check_claim`): a claim that heard it before it decided looks for the journey again
    (patch claim-looks-again; before it, the claim held on the word alone), and finds it, since the
    journey speaks only once started. Sent to the claim's run before that run ends or not at all,
    so a journey admitted by a claim that was then swept cannot be."""

    round_id: str
    applicant_id: str


class JourneyNotStarted(BaseModel, frozen=True):
    """A registrar whose start of the claim's journey failed on its side (a deadline, a lost
    connection) and which then read no journey asks the claim to look for it now rather than at
    the end of its grace (patch claim-looks-when-asked). It does not end the claim: the start may
    still be on its way to the server, and a journey that lands admits its registration. The
    claim looks, and releases itself only when it finds no journey, as its sweep does."""

    round_id: str
    applicant_id: str


class ClaimedJourney(BaseModel, frozen=True):
    """A claim past its grace asks whether its journey exists and was started with this claim."""

    claim_workflow_id: str
    journey_workflow_id: str


class JourneyOfClaim(BaseModel, frozen=True):
    """The answer: `found`, or what was found instead (`detail`, for the claim's release)."""

    found: bool
    detail: str = ""


# The type of the failure a swept claim ends with (in clear in its history, its message encrypted):
# an auditor tells it from a claim a journey or a registrar released (terminated, "released: ...").
CLAIM_RELEASED = "ClaimReleased"


def swept(claim: ClaimStart, journey_id: str, detail: str) -> str:
    """Why a claim past its grace released itself: the round, registration and journey, no NIK."""
    assert claim.sweep_after is not None
    minutes = claim.sweep_after.total_seconds() / 60
    return (
        f"released: no journey took registration {claim.applicant_id} of round {claim.round_id} "
        f"within {minutes:g} min of its claim ({journey_id}: {detail}); the NIK may register again"
    )


class ClaimRelease(BaseModel, frozen=True):
    """A journey that refused its registration lets its NIK's claim go (activities/claims.py)."""

    workflow_id: str
    round_id: str
    applicant_id: str


NATIONAL_ROUND = Workflow("NationalRound", NationalStart, NationalState)
NATIONAL_CLAIM = Workflow("NationalClaim", ClaimStart, ClaimStart)
JOIN_ROUND = Update("join_round", RoundJoin, JoinAck)
NATIONAL_STATE: Query[None, NationalState] = Query("state", None, NationalState)
CHECK_CLAIM = Activity("check_claim", ClaimCheck, ClaimVerdict)
RELEASE_CLAIM = Activity("release_claim", ClaimRelease, bool)
CLAIM_TAKEN = Signal("claim_taken", ClaimTaken)
# The same word as an update, when the claim's run takes no more signals: anyone who reaches
# Temporal can spend a run's 10,000 signals (refused payloads count), but an update whose payload
# or validator refuses it leaves nothing in the history and counts toward no limit of the run.
TAKE_CLAIM = Update("take_claim", ClaimTaken, bool)
FIND_CLAIMED_JOURNEY = Activity("find_claimed_journey", ClaimedJourney, JourneyOfClaim)
# An update, not a signal: a claim's first workflow task is delayed by its grace, and the server
# hands it over at once for an update, not for a signal (on the dev server 1.32 a signal waits in
# the history until the delay is over, whatever the API's comment says). Its only effect is a look
# the sweep makes anyway.
LOOK_FOR_JOURNEY = Update("look_for_journey", JourneyNotStarted, bool)
