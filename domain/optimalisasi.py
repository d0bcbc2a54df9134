"""Optimalisasi: empty seats go to those who lost on rank and would qualify for the seat's formasi.

The pool of a seat (issue 14): the same jabatan, the same education level, a major the seat's
formasi accepts and an age within its limits, all as `domain.registration.check_registration`
judges them (its rules, not a copy of them). Age is judged on the candidate's own application
date, as at registration; a candidate whose application date was not recorded is judged on the
date the round's registration window closed. National practice (PermenPANRB on CASN
optimalisasi) moves only those who would have been accepted had they applied to that formasi;
the GPA minimum and the formasi's category are not part of the pool (the issue names jabatan,
education, major and age), and are written down here as that choice.

DOMAIN.md speaks of applicants who "lost on rank in another formasi". The pool here also holds
the seat's own formasi's TL applicants: a seat its winner left (a gate failed, a withdrawal) goes
to the next in that formasi's rank when they are the best final score of the pool (national
practice fills a withdrawn winner's seat from the next in the same formasi's rank; here they
compete with the other formasi's TL applicants on the final tie-break chain). Written down as
that choice; they are coded P/L-2 like the others.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from domain.codes import Terminal
from domain.config import Formasi
from domain.ranking import FinalEntry, final_rank_key
from domain.registration import Gender, Refusal, Registration, check_registration

# The refusals of check_registration that decide the pool (with the jabatan, compared here).
POOL_FIELDS = frozenset({"birth_date", "education_level", "major"})


class Vacancy(BaseModel, frozen=True):
    """Empty seats of one formasi after its final ranking.

    With `formasi` (the seat's formasi, as configured), a candidate must also have a major it
    accepts and an age within its limits; without it (rounds recorded before the patch
    optimalisasi-majors) only the jabatan and the education level are compared.
    """

    formasi_code: str
    jabatan: str
    education_level: str
    seats: int
    formasi: Formasi | None = None


class CandidateProfile(BaseModel, frozen=True):
    """What the pool needs of a candidate besides its final entry: from its registration."""

    major: str = Field(max_length=200)
    applied_on: date | None = None


class OptimalisasiCandidate(BaseModel, frozen=True):
    """Someone who completed SKB, passed every gate and lost on rank."""

    entry: FinalEntry
    jabatan: str
    education_level: str
    profile: CandidateProfile | None = None  # None: unknown, so no formasi's majors accept it


class Offer(BaseModel, frozen=True):
    """A seat offered to a candidate (result code P/L-2 once accepted)."""

    applicant_id: str
    from_formasi: str
    to_formasi: str


def impossible_entry(e: FinalEntry, formasi_code: str) -> bool:
    """An entry a formasi's result cannot hold: another formasi's, or with an impossible GPA or
    SKD score (ignored, with a warning, wherever a result's candidates are taken)."""
    return (
        e.formasi_code != formasi_code
        or not (math.isfinite(e.gpa) and 0 <= e.gpa <= 4)
        or min(e.skd.twk, e.skd.tiu, e.skd.tkp) < 0
    )


def local_date(at: datetime, timezone: str) -> date:
    """The date `at` falls on in `timezone` (the round's, where ages are judged)."""
    return at.astimezone(ZoneInfo(timezone)).date()


def pool_refusals(
    c: OptimalisasiCandidate, formasi: Formasi, judged_on: date | None = None
) -> list[Refusal]:
    """Why `c` is not in the pool of `formasi`'s seats: registration's refusals of it for that
    formasi (education level, major, age) plus a different jabatan; empty when it is."""
    problems = []
    if c.jabatan.strip().casefold() != formasi.jabatan.strip().casefold():
        problems.append(
            Refusal(
                field="jabatan",
                value=c.jabatan,
                reason=f"formasi {formasi.code} is for {formasi.jabatan}",
            )
        )
    profile = c.profile
    on = (profile.applied_on if profile else None) or judged_on
    if profile is None or on is None:
        problems.append(
            Refusal(
                field="major" if profile is None else "applied_on",
                value="",
                reason="not known for this candidate, so it cannot be shown to qualify",
            )
        )
        return problems
    # The candidate as if it had applied to `formasi`: only the fields the pool is judged by are
    # real; the identity checks' refusals are not the pool's and are dropped below.
    as_applicant = Registration.model_construct(
        nik="",
        name="",
        birth_date=c.entry.birth_date,
        gender=Gender.MALE,
        education_level=c.education_level,
        major=profile.major,
        gpa=c.entry.gpa,
        formasi_code=formasi.code,
        category=formasi.category,
        citizen=True,
    )
    problems += [r for r in check_registration(as_applicant, formasi, on) if r.field in POOL_FIELDS]
    return problems


# What one offer may cost the round's history at most: its signal (1), the signal's completion
# and the workflow task it wakes (4), its answer's signal and the task that takes it (4), and, for
# a decline, the allocation that passes the seat on (an activity and the task that takes its
# result, 6).
EVENTS_PER_OFFER = 15
# What the allocation itself costs before its offers: its activity and the task that takes its
# result.
ALLOCATION_EVENTS = 6
# Temporal refuses a run's 10,001st signal (../TEMPORAL.md); each offer brings one answer, and
# the rest of a round's signals (formasi results, seats given up) stay under the last thousand.
SIGNAL_BUDGET = 9_000


def seats_by_formasi(formasi_codes: Iterable[str]) -> dict[str, int]:
    """How many seats go to each formasi, by code: the seats an allocation cut leaves without an
    offer, as the round records them and recompute counts them again."""
    seats: dict[str, int] = {}
    for code in formasi_codes:
        seats[code] = seats.get(code, 0) + 1
    return dict(sorted(seats.items()))


# Offers sent by a local activity (patch offers-by-local-activity): an offer costs the round no
# event of its own; its answer's signal and task (4), the allocation a decline causes (6) and that
# allocation's local-activity marker (1) remain: 11, with no slack. So an allocation counts what
# the signals' 15 had room for: its activity and task (6), the marker of the local activity that
# sends its offers (1; one for up to 500 offers), the completion of the task that reads the
# history (1), and the markers and search-attribute upserts of patches first decided in that task
# (at most 12; the first allocation decides up to six). Not counted: a marker for each further 500
# offers of one allocation, and a workflow task's heartbeat (3) for each 8 s a send takes on a slow
# server; the budget's distance to Temporal's 51,200 holds them.
OFFERS_BY_LOCAL_ACTIVITY_COSTS = {"events_per_offer": 11, "allocation_events": 20}
SIGNAL_COSTS = {"events_per_offer": EVENTS_PER_OFFER, "allocation_events": ALLOCATION_EVENTS}


def offer_room(
    history_budget: int,
    history_length: int,
    signals_received: int,
    pending: int,
    events_per_offer: int = EVENTS_PER_OFFER,
    allocation_events: int = ALLOCATION_EVENTS,
) -> int:
    """How many offers an allocation may make, with its own events and each answer, those of the
    `pending` offers included, still taken within the history budget and Temporal's limit on
    signals. So the history is within the budget whenever an allocation begins. The costs are
    those of how the round sends its offers (SIGNAL_COSTS, OFFERS_BY_LOCAL_ACTIVITY_COSTS)."""
    by_history = (history_budget - history_length - allocation_events) // events_per_offer - pending
    by_signals = SIGNAL_BUDGET - signals_received - pending
    return max(0, min(by_history, by_signals))


# An offer the round counted as declined because no answer came by the latest pending offer's
# answer_by plus the round's offer_answer_grace (patch optimalisasi-answer-deadline).
OFFER_UNANSWERED = "offer unanswered"

# The decisions a round leaves in the run that made them when it continues-as-new in optimalisasi
# (patch optimalisasi-continues, domain.messages.RoundCarry): its allocations, its offers not
# delivered or unanswered, and the seats given up. They grow with the offers made and the seats
# given up; nothing the next run does reads them (it carries what they decided as state), and the
# auditor reads each from the replay of the run that made it.
LEFT_IN_THEIR_RUN = frozenset(
    {
        ("optimalisasi", "allocated"),
        ("optimalisasi", "offer not delivered"),
        ("optimalisasi", OFFER_UNANSWERED),
    }
)
SEAT_VACATED = "seat vacated"


class _Decided(Protocol):
    @property
    def stage(self) -> str: ...
    @property
    def outcome(self) -> str: ...


D = TypeVar("D", bound=_Decided)


def handed_on(decisions: Iterable[D]) -> list[D]:
    """The decisions a continued round hands to its next run, in order."""
    return [
        d
        for d in decisions
        if (d.stage, d.outcome) not in LEFT_IN_THEIR_RUN and d.outcome != SEAT_VACATED
    ]


class _Placed(Protocol):
    @property
    def placed_formasi(self) -> str | None: ...
    @property
    def terminal(self) -> Terminal | None: ...


def seats_held(journeys: Iterable[_Placed | None]) -> Counter[str]:
    """Seats held, by formasi: a journey placed in a formasi holds its seat while it runs and once
    appointed (PNS); one that ended otherwise (withdrew, gave the seat up) holds none."""
    held: Counter[str] = Counter()
    for j in journeys:
        if j is not None and j.placed_formasi and j.terminal in (None, Terminal.PNS):
            held[j.placed_formasi] += 1
    return held


def over_quota(formasi: Iterable[Formasi], held: Counter[str]) -> list[str]:
    """Each formasi holding more seats than its quota, said as such (a seat can be held once: an
    extra one is never netted against another formasi's empty seats)."""
    return [
        f"{f.code} holds {held[f.code]} for {f.quota} seats"
        for f in formasi
        if held[f.code] > f.quota
    ]


def _matches(c: OptimalisasiCandidate, v: Vacancy, judged_on: date | None) -> bool:
    if v.formasi is not None:
        return not pool_refusals(c, v.formasi, judged_on)
    return (
        c.jabatan.strip().casefold() == v.jabatan.strip().casefold()
        and c.education_level.strip().upper() == v.education_level.strip().upper()
    )


def allocate(
    vacancies: Sequence[Vacancy],
    candidates: Sequence[OptimalisasiCandidate],
    declined: Iterable[str] = (),
    judged_on: date | None = None,
    fill_most: bool = False,
) -> list[Offer]:
    """Offers, best final score first (the final tie-break chain), skipping those who declined.

    Each candidate takes at most one seat; among the formasi with seats left whose pool it is in,
    the one with the lowest code is offered first, so the result never depends on input order.
    Run again with the decliners added to get the seat passed on to the next in rank.
    `judged_on` is the date ages are judged on for candidates without an application date.

    With `fill_most` (patch optimalisasi-fills-most) a candidate whose pools have no seat left
    may still get one when a better-ranked candidate of this allocation can take a seat of
    another formasi of their own pools instead (`_fill_most`). Without it a seat could stay
    empty while a candidate of its pool went without: F1 taking Hukum or Ekonomi and F2 only
    Hukum, the Hukum candidate ranked first took F1, the lowest code, and the Ekonomi candidate
    got nothing, F2 staying empty.
    """
    if fill_most:
        return _fill_most(vacancies, candidates, set(declined), judged_on)
    out = set(declined)
    seats = {v.formasi_code: v.seats for v in vacancies}
    ordered_vacancies = sorted(vacancies, key=lambda v: v.formasi_code)
    offers: list[Offer] = []
    for c in sorted(candidates, key=lambda c: final_rank_key(c.entry)):
        if c.entry.applicant_id in out:
            continue
        for v in ordered_vacancies:
            if seats[v.formasi_code] > 0 and _matches(c, v, judged_on):
                seats[v.formasi_code] -= 1
                offers.append(
                    Offer(
                        applicant_id=c.entry.applicant_id,
                        from_formasi=c.entry.formasi_code,
                        to_formasi=v.formasi_code,
                    )
                )
                break
    return offers


def _fill_most(
    vacancies: Sequence[Vacancy],
    candidates: Sequence[OptimalisasiCandidate],
    out: set[str],
    judged_on: date | None,
) -> list[Offer]:
    """The allocation that fills the most seats without passing over anyone for someone ranked
    below them. Candidates are taken best first; each takes the lowest-coded formasi of its pools
    with a seat left, as `allocate` does; one that finds none may still be seated when a candidate
    already seated in this allocation can move to a seat left in another formasi of its own pools
    (a chain of such moves: an augmenting path). Who is seated is then the best-ranked set that
    can be seated at all (the greedy choice on a transversal matroid); only which formasi some of
    them are offered can differ from the lowest code. Once every seat is taken no later candidate
    can be seated, and the rest are not examined. Offers are listed best first."""
    ordered = sorted(vacancies, key=lambda v: v.formasi_code)
    free = {v.formasi_code: v.seats for v in ordered}
    left = sum(free.values())
    holders: dict[str, list[int]] = {v.formasi_code: [] for v in ordered}
    seated: dict[int, str] = {}
    pools: list[list[str]] = []
    ranked = [
        c
        for c in sorted(candidates, key=lambda c: final_rank_key(c.entry))
        if c.entry.applicant_id not in out
    ]

    def place(i: int, seen: set[str]) -> bool:
        # A seat left in the lowest-coded formasi of the candidate's pools...
        for code in pools[i]:
            if free[code] > 0:
                free[code] -= 1
                holders[code].append(i)
                seated[i] = code
                return True
        # ...or one whose holder can move to another formasi of their own pools.
        for code in pools[i]:
            if code in seen:
                continue
            seen.add(code)
            for k, holder in enumerate(holders[code]):
                if place(holder, seen):
                    holders[code][k] = i
                    seated[i] = code
                    return True
        return False

    for i, c in enumerate(ranked):
        if left == 0:
            break
        pools.append([v.formasi_code for v in ordered if _matches(c, v, judged_on)])
        if pools[i] and place(i, set()):
            left -= 1
    return [
        Offer(
            applicant_id=ranked[i].entry.applicant_id,
            from_formasi=ranked[i].entry.formasi_code,
            to_formasi=seated[i],
        )
        for i in sorted(seated)
    ]
