"""The round's evaluation in figures (issue 16): what `starter.py evaluate` reports, computed
from the round's histories and the read model only.

`round_facts` reads every history of the round and replays it against the current code (the
auditor's way: decisions are re-derived, not copied from a read model), `read_model_facts` adds
what only the read model holds (the applicants' current codes, the anonymous SKM answers), and
`evaluation` turns both into the report's tables: plain rows, sorted, with the same figures
whenever the inputs are the same. No table holds a name or a NIK; the registration number
appears only where a flagged panel score needs finding again.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client

from auditing.history import (
    Message,
    RecordedHistory,
    ReplayOutcome,
    decisions_of,
    messages,
    offers_of,
    replay,
    round_histories,
)
from domain import protocol
from domain.codes import AdminDecision, FinalCode, Stage, Terminal
from domain.config import ComponentKind, RoundConfig
from domain.messages import Decision, JourneyState, PanelScoreReport, RoundStart, RoundState
from domain.objectivity import agreement, outlier_flags, panellist_bias
from domain.optimalisasi import over_quota, seats_held
from domain.skm import STAGE_LABELS as SKM_STAGE_LABELS
from domain.skm import STAGES as SKM_STAGES
from domain.skm import ikm_of_totals

# --- what is read --------------------------------------------------------------------------------


@dataclass
class JourneyFacts:
    """One applicant's journey as its histories tell it."""

    applicant_id: str
    formasi_code: str
    started_at: datetime
    decisions: list[Decision]
    state: JourneyState | None  # the state re-derived by replaying its last run
    updates: list[Message] = field(default_factory=list)  # accepted updates, repeats removed


@dataclass
class RoundFacts:
    """The round's configuration, its re-derived state and decisions, and every journey."""

    config: RoundConfig
    state: RoundState | None
    decisions: list[Decision]
    journeys: list[JourneyFacts]


@dataclass
class SkmTotals:
    """The sums of each element's answers of one stage and instansi, and how many answered."""

    stage: str
    instansi: str
    respondents: int
    totals: list[int]


@dataclass
class ReadModelFacts:
    """What the report takes from the read model: current codes and the survey's sums."""

    codes: dict[str, Counter] = field(default_factory=dict)  # formasi -> terminal or stage -> n
    skm: list[SkmTotals] = field(default_factory=list)
    skm_problem: str = ""  # why the survey could not be read ('' when it could)


def _unique_updates(found: Iterable[Message]) -> list[Message]:
    """Accepted updates without repeats: a repeated report (same id) is acknowledged again and
    recorded again, but decided once."""
    seen: set[tuple[str, str]] = set()
    out = []
    for m in found:
        if m.kind != "update":
            continue
        key = (m.name, m.report_id or m.update_id)
        if key in seen:
            continue
        seen.add(key)
        out.append(m)
    return out


async def round_facts(client: Client, round_id: str) -> RoundFacts:
    """Read and replay every history of the round (AuditError when there is none)."""
    histories = await round_histories(client, round_id)
    converter = client.data_converter
    outcomes = await replay([h.history for h in histories], converter)
    by_workflow: dict[str, list[tuple[RecordedHistory, ReplayOutcome]]] = defaultdict(list)
    for h, o in zip(histories, outcomes, strict=True):
        by_workflow[h.workflow_id].append((h, o))
    config: RoundConfig | None = None
    state: RoundState | None = None
    round_decisions: list[Decision] = []
    journeys: list[JourneyFacts] = []
    for workflow_id in sorted(by_workflow):
        runs = by_workflow[workflow_id]
        kind = runs[0][0].kind
        found = [m for h, _ in runs for m in await messages(h.history, converter)]
        last = runs[-1][1].state
        if kind == "round":
            start = next(m.content for m in found if m.kind == "start")
            config = RoundConfig.model_validate(
                start.config if isinstance(start, RoundStart) else start["config"]
            )
            state = last if isinstance(last, RoundState) else None
            if state is not None:  # the offers of every run (patch optimalisasi-continues)
                state = state.model_copy(update={"offers": offers_of(o for _, o in runs)})
            round_decisions = decisions_of(o for _, o in runs)
        elif kind == "journey":
            start = next(m for m in found if m.kind == "start")
            journeys.append(
                JourneyFacts(
                    applicant_id=start.content.applicant_id,
                    formasi_code=start.content.formasi.code,
                    started_at=start.at,
                    decisions=decisions_of(o for _, o in runs),
                    state=last if isinstance(last, JourneyState) else None,
                    updates=_unique_updates(found),
                )
            )
    if config is None:
        raise LookupError(f"round {round_id} has no round workflow among its histories")
    return RoundFacts(config, state, round_decisions, journeys)


async def read_model_facts(conn: Any, round_id: str) -> ReadModelFacts:
    """The applicants' current codes per formasi and the SKM's sums per stage and instansi (an
    asyncpg connection). The survey's table missing (an older database) is said, not guessed."""
    import asyncpg

    facts = ReadModelFacts()
    for r in await conn.fetch(
        """SELECT formasi_code, coalesce(terminal, stage) AS code, count(*) AS n FROM applicants
           WHERE round_id = $1 GROUP BY 1, 2 ORDER BY 1, 2""",
        round_id,
    ):
        facts.codes.setdefault(r["formasi_code"], Counter())[r["code"]] = r["n"]
    sums = ", ".join(f"sum(answers[{i}])::int AS u{i}" for i in range(1, 10))
    try:
        rows = await conn.fetch(
            f"""SELECT stage, instansi, count(*)::int AS n, {sums} FROM skm_responses
                WHERE round_id = $1 GROUP BY 1, 2 ORDER BY 1, 2""",
            round_id,
        )
    except asyncpg.UndefinedTableError:
        facts.skm_problem = "the read model has no survey table yet (migration 009)"
        return facts
    facts.skm = [
        SkmTotals(r["stage"], r["instansi"], r["n"], [r[f"u{i}"] for i in range(1, 10)])
        for r in rows
    ]
    return facts


# --- the tables ----------------------------------------------------------------------------------

Cell = str | int | float | None


@dataclass
class Table:
    """One table of the report; also written as `<name>.csv`."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


@dataclass
class Section:
    """One section of the report: its tables, a sentence that sums it up, and what is missing."""

    key: str
    heading: str
    summary: str
    tables: list[Table]
    note: str = ""  # e.g. "no answers yet": said instead of inventing figures
    explains: str = ""  # what each figure is: how it is computed and how to read it


@dataclass
class Evaluation:
    """The whole report, in figures."""

    round_id: str
    instansi: str
    timezone: str
    sections: list[Section]

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)


ALL = "(all)"

FUNNEL_STEPS = (
    ("registered", "registered"),
    ("admin_ms", "MS in the administrative check (after sanggah)"),
    ("skd_sat", "sat the SKD"),
    ("skd_pl", "P/L in the SKD ranking (to SKB)"),
    ("skb_completed", "completed the SKB"),
    ("final_seat", "a seat: P/L or P/L-2"),
    ("nip", "NIP issued"),
    ("pns", "PNS after Latsar"),
)

FINAL_STAGES = {Stage.FINAL_RANKING.value, Stage.FINAL_APPEAL.value}

# What each section's figures are, printed under its heading (Section.explains).
EXPLAINS = {
    "funnel": (
        "Each step counts the applicants whose replayed history reached it, per formasi and for "
        "the whole round ((all)); an applicant counts once per step, and MS is the result after "
        "the sanggah. The second table is each applicant's current stage or result code in the "
        "read model."
    ),
    "durations": (
        "Seconds from an applicant's previous decision (or the start of its journey) to its first"
        " decision at the stage. p50 and p95 are nearest-rank percentiles: the shortest time with"
        " at least 50% (95%) of the applicants at or under it, always one of the times measured, "
        "never interpolated; with one applicant both are its time, with two the p50 is the "
        "shorter and the p95 the longer."
    ),
    "appeals": (
        "could file: applicants found TMS in the administrative check (admin sanggah) or given a "
        "final result (final sanggah); rate: filed / could file, empty when nobody could. "
        "Outcomes: accepted, rejected, not answered in its time, pending (the journey still "
        "waits)."
    ),
    "extensions": (
        "Every window extended or closed early and every TMT moved, from the round's history: "
        "when (UTC), by whom, the new close or TMT, and the reason recorded with the command."
    ),
    "registration": (
        "Registrations decided per hour, each hour shown in the round's time zone; refused: "
        "registrations the journey refused (not admitted, ineligible, barred). Hours with none "
        "are shown with 0. The peak is the busiest hour, the earliest of equally busy ones."
    ),
    "panels": (
        "alpha: Krippendorff's alpha with the interval metric over the panel's scores (1 - "
        "observed disagreement / disagreement expected by chance); every applicant with at least "
        "2 scores counts, whoever scored and however many. 1 is perfect agreement, 0 no better "
        "than chance, below 0 systematic disagreement; empty when fewer than 2 applicants have 2 "
        "scores (with one applicant the formula gives 0 whatever the scores) or every score is "
        "the same. bias: a panellist's mean of (own score - the mean of the co-panellists' scores"
        " for the same applicant), in score points, over the applicants counted. z: (bias - the "
        "mean of the panellists' biases) / their sample standard deviation; empty with fewer than"
        " 3 panellists. With k panellists |z| is at most (k - 1)/sqrt(k), so a |z| of 2 (drawn "
        "red) needs at least 6; z ranks panellists, it is not a test of significance. Flags: a "
        "score more than the margin (exactly the margin is not) from the mean of the rest of its "
        "panel, the farthest set aside first; others' mean is the mean it was judged against. A "
        "score refused for a conflict is left out; a struck score is counted (it is what was "
        "given)."
    ),
    "ikm": (
        "IKM (PermenPANRB 14/2017): each element's NRR is the mean of its answers (1..4); the IKM"
        " is 25 x the mean of the nine NRRs (each weighted 1/9), 25..100, rounded to 2 decimals "
        "half up and then banded: A 88.31-100 Sangat Baik, B 76.61-88.30 Baik, C 65.00-76.60 "
        "Kurang Baik, D 25.00-64.99 Tidak Baik. U1..U9: the nine NRRs. (all): every instansi's "
        "answers together, not the mean of their IKMs. Under 5 respondents the figures come close"
        " to the answers themselves: not for publication."
    ),
    "optimalisasi": (
        "seats filled: people holding a seat of the formasi now (P/L or P/L-2, not given up); "
        "seats left empty: seats - seats filled, negative when a formasi holds more than its "
        "seats (named OVER QUOTA, never netted against another formasi's empty seats). Offers are"
        " counted in the formasi they offer a seat in."
    ),
}


def _reached(j: JourneyFacts) -> set[str]:
    """The funnel steps one journey reached."""
    steps: set[str] = set()
    admin = None
    for d in j.decisions:
        if d.stage == Stage.REGISTERED and d.outcome == "registered":
            steps.add("registered")
        elif d.stage in (Stage.ADMIN_CHECK, Stage.ADMIN_APPEAL) and d.outcome in ("MS", "TMS"):
            admin = d.outcome
        elif d.stage == Stage.SKD_RANKING:
            steps.add("skd_sat")
            if d.outcome == "P/L":
                steps.add("skd_pl")
        elif d.stage == Stage.SKB and d.outcome == "completed":
            steps.add("skb_completed")
    if admin == AdminDecision.MS:
        steps.add("admin_ms")
    s = j.state
    if s is not None:
        if s.final_code in (FinalCode.PASSED, FinalCode.PASSED_OPTIMALISASI) or s.placed_formasi:
            steps.add("final_seat")
        if s.nip:
            steps.add("nip")
        if s.terminal == Terminal.PNS:
            steps.add("pns")
    return steps


def funnel_section(facts: RoundFacts, read: ReadModelFacts) -> Section:
    """How many applicants of each formasi reached each step, and where they stand now."""
    reached: dict[str, Counter] = defaultdict(Counter)
    for j in facts.journeys:
        for step in _reached(j):
            reached[j.formasi_code][step] += 1
            reached[ALL][step] += 1
    codes = sorted(f.code for f in facts.config.formasi)
    rows = [
        (code, step, label, reached[code][step])
        for code in [*codes, ALL]
        for step, label in FUNNEL_STEPS
    ]
    now_rows = [
        (code, status, n)
        for code in sorted(read.codes)
        for status, n in sorted(read.codes[code].items())
    ]
    total = reached[ALL]["registered"]
    seats = sum(f.quota for f in facts.config.formasi)
    return Section(
        "funnel",
        "Funnel per formasi and stage",
        f"Registered: {total} for {seats} seats in {len(codes)} formasi; won a seat: "
        f"{reached[ALL]['final_seat']}; given a NIP: {reached[ALL]['nip']}.",
        [
            Table("funnel", ("formasi", "step", "meaning", "applicants"), rows),
            Table("funnel_now", ("formasi", "stage or result", "applicants"), now_rows),
        ],
    )


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile: the smallest value with at least p% of values at or below it.
    The rank, ceil(p/100 x n), is computed exactly (in floating point 7/100 x 100 is
    7.000000000000001, and the 7th percentile of 1..100 came out 8). ValueError for no values or
    a p outside 0..100."""
    if not values:
        raise ValueError("percentile of no values: there is nothing to rank")
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 100:
        raise ValueError(f"percentile p={p!r}: a percentile lies in 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(Fraction(repr(float(p))) * len(ordered) / 100))
    return ordered[rank - 1]


def durations_section(facts: RoundFacts) -> Section:
    """How long each stage took to decide: from an applicant's previous decision (or the start of
    its journey) to its first decision at the stage."""
    spans: dict[str, list[float]] = defaultdict(list)
    for j in facts.journeys:
        previous = j.started_at
        seen: set[str] = set()
        for d in sorted(j.decisions, key=lambda d: d.at):
            if d.stage not in seen:
                seen.add(d.stage)
                spans[d.stage].append(max((d.at - previous).total_seconds(), 0.0))
            previous = d.at
    order = [s.value for s in Stage]
    rows = [
        (
            stage,
            len(spans[stage]),
            round(percentile(spans[stage], 50), 3),
            round(percentile(spans[stage], 95), 3),
        )
        for stage in sorted(spans, key=lambda s: (order.index(s) if s in order else 99, s))
    ]
    slowest = max(rows, key=lambda r: (r[3], r[0]), default=None)
    return Section(
        "durations",
        "Stage durations",
        (
            f"The slowest stage to decide was {slowest[0]}: p95 {human(slowest[3])}."
            if slowest
            else "No decisions recorded yet."
        ),
        [Table("durations", ("stage", "applicants", "p50_seconds", "p95_seconds"), rows)],
    )


def human(seconds: float | int | None) -> str:
    """A duration as people read it: 45 s, 12 min, 5.5 h, 3.2 days."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def _sanggah(j: JourneyFacts) -> dict[str, str]:
    """kind (admin | final) -> outcome (accepted | rejected | not answered | pending) of the
    sanggah this applicant filed."""
    filings = [m for m in j.updates if m.name == protocol.FILE_APPEAL.name]
    final_from = min((d.at for d in j.decisions if d.stage in FINAL_STAGES), default=None)
    kinds = {"final" if final_from is not None and m.at >= final_from else "admin" for m in filings}
    out: dict[str, str] = {}
    if "admin" in kinds:
        # The instansi's answer is the one decision at the sanggah stage not made by the system
        # (a sanggah left unanswered ends the journey by a system decision there).
        answers = [d for d in j.decisions if d.stage == Stage.ADMIN_APPEAL and d.actor != "system"]
        if answers:
            out["admin"] = "accepted" if answers[-1].outcome == AdminDecision.MS else "rejected"
        elif j.state is not None and j.state.stage == Stage.ADMIN_APPEAL and not j.state.terminal:
            out["admin"] = "pending"
        else:
            out["admin"] = "not answered"
    if "final" in kinds:
        answers = [
            d
            for d in j.decisions
            if d.stage == Stage.FINAL_APPEAL and d.outcome in ("accepted", "rejected")
        ]
        if answers:
            out["final"] = answers[-1].outcome
        elif any(
            d.stage == Stage.FINAL_APPEAL and d.outcome == "not answered" for d in j.decisions
        ):
            out["final"] = "not answered"
        else:
            out["final"] = "pending"
    return out


APPEAL_OUTCOMES = ("accepted", "rejected", "not answered", "pending")


def appeals_section(facts: RoundFacts) -> Section:
    """Sanggah filed against the administrative result (by those found TMS) and against the
    final result (by those given one), and how each was answered."""
    eligible: dict[tuple[str, str], int] = Counter()
    outcomes: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for j in facts.journeys:
        tms = any(
            d.stage == Stage.ADMIN_CHECK and d.outcome == AdminDecision.TMS for d in j.decisions
        )
        final = any(d.stage == Stage.FINAL_RANKING for d in j.decisions)
        for kind, counted in (("admin", tms), ("final", final)):
            if counted:
                eligible[(kind, j.formasi_code)] += 1
                eligible[(kind, ALL)] += 1
        for kind, outcome in _sanggah(j).items():
            outcomes[(kind, j.formasi_code)][outcome] += 1
            outcomes[(kind, ALL)][outcome] += 1
    codes = [*sorted(f.code for f in facts.config.formasi), ALL]
    rows = []
    for kind, label in (("admin", "admin sanggah"), ("final", "final sanggah")):
        for code in codes:
            filed = sum(outcomes[(kind, code)].values())
            could = eligible[(kind, code)]
            rows.append(
                (
                    label,
                    code,
                    could,
                    filed,
                    round(filed / could, 4) if could else None,
                    *(outcomes[(kind, code)][o] for o in APPEAL_OUTCOMES),
                )
            )
    admin = outcomes[("admin", ALL)]
    final = outcomes[("final", ALL)]
    return Section(
        "appeals",
        "Appeals (sanggah): rates and outcomes",
        f"Admin sanggah: {sum(admin.values())} filed by {eligible[('admin', ALL)]} found TMS, "
        f"{admin['accepted']} accepted. Final sanggah: {sum(final.values())} filed by "
        f"{eligible[('final', ALL)]} with a final result, {final['accepted']} accepted.",
        [
            Table(
                "appeals",
                ("sanggah", "formasi", "could file", "filed", "rate", *APPEAL_OUTCOMES),
                rows,
            )
        ],
    )


def extensions_section(facts: RoundFacts) -> Section:
    """Every window extended or closed early, and every TMT moved, with who and why."""
    rows = []
    for d in sorted(facts.decisions, key=lambda d: (d.at, d.outcome)):
        i = d.input
        if d.outcome.endswith(" extended"):
            change = "extended"
        elif d.outcome.endswith(" closed early"):
            change = "closed early"
        elif d.outcome.startswith("TMT moved"):
            change = "TMT moved"
        else:
            continue
        rows.append(
            (
                d.at.isoformat(timespec="seconds"),
                str(i.get("window") or "tmt"),
                change,
                d.actor,
                str(i.get("new_closes") or i.get("new_tmt") or ""),
                str(i.get("reason", "")),
            )
        )
    counts = Counter(r[2] for r in rows)
    return Section(
        "extensions",
        "Window extensions and early closes (the incidents)",
        (
            f"Extensions: {counts['extended']}; early closes: {counts['closed early']}; TMT "
            f"moves: {counts['TMT moved']}; each with its recorded reason."
            if rows
            else "No window was extended or closed early, and the TMT did not move."
        ),
        [Table("extensions", ("at", "window", "change", "by", "new close", "reason"), rows)],
    )


def registration_section(facts: RoundFacts) -> Section:
    """Registrations per hour (in the instansi's time zone), and the peak hour."""
    zone = ZoneInfo(facts.config.timezone)
    registered: Counter = Counter()
    refused: Counter = Counter()
    for j in facts.journeys:
        for d in j.decisions:
            if d.stage != Stage.REGISTERED:
                continue
            # The local hour's start, kept as an instant: a zone with summer time has an hour
            # twice in autumn (02:00 +02:00 and 02:00 +01:00), and local arithmetic ran them
            # together and stepped over the second.
            local = d.at.astimezone(zone).replace(minute=0, second=0, microsecond=0)
            hour = local.astimezone(UTC)
            (registered if d.outcome == "registered" else refused)[hour] += 1
    hours = sorted({*registered, *refused})
    rows = []
    if hours:
        hour = hours[0]
        while hour <= hours[-1]:
            rows.append((hour.astimezone(zone).isoformat(), registered[hour], refused[hour]))
            hour += timedelta(hours=1)
    # The busiest hour; the earliest of equally busy ones.
    peak = max(rows, key=lambda r: (r[1], -rows.index(r)), default=None)
    return Section(
        "registration",
        "Registration load per hour",
        (
            f"Peak: {peak[1]} registrations in the hour from {peak[0]}; "
            f"{sum(registered.values())} registered, {sum(refused.values())} refused in all."
            if peak
            else "No registration recorded."
        ),
        [Table("registration_per_hour", ("hour", "registered", "refused"), rows)],
    )


def panel_margins(config: RoundConfig, default: float | None) -> dict[str, float]:
    """The outlier margin of each panel component: the round's own when its configuration sets
    one, else `default`, else a quarter of the component's scale."""
    out = {}
    for c in config.skb.components:
        if c.kind != ComponentKind.PANEL:
            continue
        configured = getattr(c, "outlier_margin", None)
        out[c.name] = float(
            configured
            if configured is not None
            else default
            if default is not None
            else c.max_score / 4
        )
    return out


@dataclass
class PanelRecord:
    """One applicant's interview panel as its history recorded it."""

    scores: dict[str, float]  # panellist -> score as given (refused scores left out)
    given_at: dict[str, datetime]
    struck: set[str]  # panellists whose score a conflict or a review struck out
    changes: list[datetime]  # when a conflict or a review changed the panel
    flags: list[tuple[datetime, str]]  # (when, panellist) flagged by the journey itself
    reviews: dict[str, bool]  # panellist -> kept as it is (True) or struck (False)
    unreviewed: set[str]  # flags SKB closed on without a review
    conflicts: int


def panel_records(j: JourneyFacts) -> dict[str, PanelRecord]:
    """component -> the applicant's panel record, from the journey's accepted updates and the
    decisions it made on them (refusals, strikes, flags)."""
    refused = {
        str(d.input.get("report_id"))
        for d in j.decisions
        if d.stage == Stage.SKB and d.outcome == "score refused"
    }
    records: dict[str, PanelRecord] = {}

    def record(component: str) -> PanelRecord:
        return records.setdefault(component, PanelRecord({}, {}, set(), [], [], {}, set(), 0))

    for m in j.updates:
        c = m.content
        if m.name == protocol.REPORT_PANEL_SCORE.name and isinstance(c, PanelScoreReport):
            if c.report_id not in refused:
                record(c.component).scores.setdefault(c.panellist, c.score)
                record(c.component).given_at.setdefault(c.panellist, m.at)
        elif m.name == "declare_conflict" and m.report_id not in refused:
            record(str(getattr(c, "component", ""))).conflicts += 1
        elif m.name == "review_panel_score" and m.report_id not in refused:
            r = record(str(getattr(c, "component", "")))
            r.reviews[str(getattr(c, "panellist", ""))] = bool(getattr(c, "keep", True))
    for d in j.decisions:
        component = str(d.input.get("component", ""))
        if d.outcome == "panel changed":
            record(component).changes.append(d.at)
            if d.input.get("struck_score") is not None:
                record(component).struck.add(str(d.input.get("panellist", "")))
        elif d.outcome == "score flagged":
            record(component).flags.append((d.at, str(d.input.get("panellist", ""))))
        elif d.outcome == "flag not reviewed":
            record(component).unreviewed.add(str(d.input.get("panellist", "")))
    return records


def _panel_until(r: PanelRecord, change: datetime | None) -> dict[str, float]:
    return {q: s for q, s in r.scores.items() if change is None or r.given_at[q] < change}


def _rounded(value: float | None, digits: int) -> float | None:
    """`value` rounded, never -0.0 (a bias of -0.0004 is 0.0 at 3 decimals, not "-0.0")."""
    return None if value is None else round(value, digits) + 0.0


def _judged_against(panellist: str, panel: dict[str, float], margin: float) -> float | None:
    """The mean of the rest of `panel` that `panellist`'s score was flagged against: by the rule
    (`outlier_flags`: the scores set aside before it left out), else the mean of every other."""
    for f in outlier_flags(panel, margin):
        if f.panellist == panellist:
            return f.others_mean
    others = [s for q, s in panel.items() if q != panellist]
    return math.fsum(others) / len(others) if others else None


def _review_text(r: PanelRecord, panellist: str) -> str:
    if panellist in r.reviews:
        return "kept as it is" if r.reviews[panellist] else "struck, scored again"
    if panellist in r.unreviewed:
        return "not reviewed: counted as it is"
    return "no review recorded"


def panels_section(facts: RoundFacts, default_margin: float | None) -> Section:
    """Per panel (a formasi's interview component): Krippendorff's alpha and each panellist's
    bias over the scores as given (a score refused for a conflict left out, a struck one kept:
    it is what the panellist gave), and every score beyond the margin from the rest of its panel.

    The flags are those the journeys recorded (rounds that flag, issue 16), with the committee's
    review; a journey that recorded none is checked here by the same rule (`outlier`) and its
    flags are marked as computed by the report."""
    margins = panel_margins(facts.config, default_margin)
    tables: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(dict)
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    flag_rows: list[tuple[Cell, ...]] = []
    for j in sorted(facts.journeys, key=lambda j: j.applicant_id):
        for component, r in sorted(panel_records(j).items()):
            key = (j.formasi_code, component)
            margin = margins.get(component, default_margin if default_margin is not None else 25.0)
            if r.scores:
                tables[key][j.applicant_id] = dict(r.scores)
            counts[key]["conflicts"] += r.conflicts
            counts[key]["struck"] += len(r.struck)
            counts[key]["reviews"] += len(r.reviews)
            if r.flags:
                # The panel a flag was raised on: the scores given before the panel next
                # changed (a replacement scores only after a review or a conflict changed it).
                flagged = [
                    (
                        p,
                        _judged_against(
                            p,
                            _panel_until(r, min((c for c in r.changes if c >= at), default=None)),
                            margin,
                        ),
                        "recorded",
                    )
                    for at, p in sorted(r.flags)
                ]
            else:
                flagged = [
                    (f.panellist, f.others_mean, "computed")
                    for f in outlier_flags(r.scores, margin)
                ]
            for p, others_mean, source in flagged:
                counts[key]["flagged"] += 1
                flag_rows.append(
                    (
                        j.formasi_code,
                        component,
                        j.applicant_id,
                        p,
                        r.scores.get(p),
                        _rounded(others_mean, 3),
                        margin,
                        source,
                        _review_text(r, p),
                    )
                )
    agreement_rows, bias_rows = [], []
    for formasi_code, component in sorted({*tables, *counts}):
        table = tables.get((formasi_code, component), {})
        a = agreement(table)
        n = counts[(formasi_code, component)]
        agreement_rows.append(
            (
                formasi_code,
                component,
                len(table),
                sum(len(s) for s in table.values()),
                _rounded(a.alpha, 4),
                margins.get(component, default_margin if default_margin is not None else 25.0),
                n["flagged"],
                n["reviews"],
                n["conflicts"],
                n["struck"],
            )
        )
        bias_rows += [
            (
                formasi_code,
                component,
                b.panellist,
                b.applicants,
                _rounded(b.bias, 3),
                _rounded(b.z, 3),
            )
            for b in panellist_bias(table)
        ]
    return Section(
        "panels",
        "Interview panels: agreement and flags",
        (
            f"Panels: {len(agreement_rows)}; scores flagged beyond the margin for the committee's "
            f"review: {len(flag_rows)}. Agreement is Krippendorff's alpha (interval): 1 is "
            "perfect agreement, 0 no better than chance."
            if agreement_rows
            else "No interview panel scored in this round."
        ),
        [
            Table(
                "panel_agreement",
                (
                    "formasi",
                    "component",
                    "applicants",
                    "scores",
                    "alpha",
                    "margin",
                    "flagged",
                    "reviews",
                    "conflicts declared",
                    "scores struck",
                ),
                agreement_rows,
            ),
            Table(
                "panellist_bias",
                ("formasi", "component", "panellist", "applicants", "bias", "z"),
                bias_rows,
            ),
            Table(
                "panel_flags",
                (
                    "formasi",
                    "component",
                    "registration no",
                    "panellist",
                    "score",
                    "others' mean",
                    "margin",
                    "flagged by",
                    "committee review",
                ),
                flag_rows,
            ),
        ],
    )


# Below this many respondents a group's figures come close to the answers themselves: marked, not
# for publication (the same bound as client/survey.py's FEW_RESPONDENTS).
FEW_RESPONDENTS = 5

IKM_COLUMNS = (
    "stage",
    "instansi",
    "respondents",
    "ikm",
    "band",
    "label",
    "few respondents",
) + tuple(f"U{i}" for i in range(1, 10))


def ikm_section(read: ReadModelFacts) -> Section:
    """The IKM of the SKM answers per stage (all instansi together) and per stage and instansi."""
    rows = []
    by_stage: dict[str, list[SkmTotals]] = defaultdict(list)
    for t in read.skm:
        by_stage[t.stage].append(t)
    for stage in [s for s in SKM_STAGES if s in by_stage]:
        parts = sorted(by_stage[stage], key=lambda t: t.instansi)
        merged = SkmTotals(
            stage,
            ALL,
            sum(t.respondents for t in parts),
            [sum(t.totals[i] for t in parts) for i in range(9)],
        )
        for t in [merged, *parts]:
            r = ikm_of_totals(t.totals, t.respondents)
            rows.append(
                (
                    stage,
                    t.instansi,
                    r.respondents,
                    r.value,
                    r.band,
                    r.label,
                    "yes: not for publication" if r.respondents < FEW_RESPONDENTS else "",
                    *(round(x, 3) for x in r.per_element),
                )
            )
    silent = [f"{s} ({SKM_STAGE_LABELS[s]})" for s in SKM_STAGES if s not in by_stage]
    if not rows:
        note = f"No answers yet{f' ({read.skm_problem})' if read.skm_problem else ''}."
    elif silent:
        them = "it" if len(silent) == 1 else "them"
        note = f"No answers yet at {', '.join(silent)}: no IKM for {them}."
    else:
        note = ""
    return Section(
        "ikm",
        "Satisfaction survey (IKM) per stage",
        (
            "; ".join(
                f"{r[0]}: IKM {r[3]:.2f} ({r[4]}, {r[5]}, {r[2]} answers)"
                for r in rows
                if r[1] == ALL
            )
            if rows
            else "No answers yet."
        ),
        [Table("ikm", IKM_COLUMNS, rows)],
        note=note,
    )


def optimalisasi_section(facts: RoundFacts) -> Section:
    """Per formasi: seats, winners, what optimalisasi offered into it and how it was answered,
    seats given up, and the seats left empty at the end."""
    state = facts.state
    results = state.formasi_results if state else {}
    offered: Counter = Counter()
    answered: dict[str, Counter] = defaultdict(Counter)
    for offer_id, status in sorted((state.offers if state else {}).items()):
        to_formasi = offer_id.rsplit("/", 1)[-1]
        offered[to_formasi] += 1
        answered[to_formasi][status] += 1
    given_up: Counter = Counter()
    for d in facts.decisions:
        if d.outcome.startswith("seat vacated"):
            given_up[str(d.input.get("formasi_code", ""))] += 1
    p_l2: Counter = Counter()
    for j in facts.journeys:
        s = j.state
        if s is not None and s.final_code == FinalCode.PASSED_OPTIMALISASI and s.placed_formasi:
            p_l2[s.placed_formasi] += 1
    filled = seats_held(j.state for j in facts.journeys)
    rows = []
    for f in sorted(facts.config.formasi, key=lambda f: f.code):
        result = results.get(f.code)
        rows.append(
            (
                f.code,
                f.quota,
                result.n_winners if result else None,
                result.vacancies if result else None,
                offered[f.code],
                answered[f.code]["accepted"],
                answered[f.code]["declined"],
                answered[f.code]["pending"],
                p_l2[f.code],
                given_up[f.code],
                filled[f.code],
                f.quota - filled[f.code],
            )
        )
    # A formasi holding more than its seats is said by name: it is never netted against another's
    # empty seats (a seat given up was once offered twice: patch optimalisasi-seat-given-up-once).
    empty = sum(max(0, r[-1]) for r in rows)
    over = over_quota(sorted(facts.config.formasi, key=lambda f: f.code), filled)
    return Section(
        "optimalisasi",
        "Optimalisasi and seats left empty",
        f"Optimalisasi offers: {sum(offered.values())}; accepted: "
        f"{sum(a['accepted'] for a in answered.values())} (P/L-2: {sum(p_l2.values())}); "
        f"declined: {sum(a['declined'] for a in answered.values())}. Seats left empty: {empty} "
        f"of {sum(f.quota for f in facts.config.formasi)}."
        + (f" OVER QUOTA: {'; '.join(over)}." if over else ""),
        [
            Table(
                "optimalisasi",
                (
                    "formasi",
                    "seats",
                    "winners (P/L)",
                    "vacancies after ranking",
                    "offers",
                    "accepted",
                    "declined",
                    "pending",
                    "P/L-2",
                    "seats given up",
                    "seats filled",
                    "seats left empty",
                ),
                rows,
            )
        ],
    )


def evaluation(
    facts: RoundFacts, read: ReadModelFacts, outlier_margin: float | None = None
) -> Evaluation:
    """Every section of the report, in the report's order, each with what its figures are."""
    e = Evaluation(
        round_id=facts.config.round_id,
        instansi=facts.config.instansi,
        timezone=facts.config.timezone,
        sections=[
            funnel_section(facts, read),
            durations_section(facts),
            appeals_section(facts),
            extensions_section(facts),
            registration_section(facts),
            panels_section(facts, outlier_margin),
            ikm_section(read),
            optimalisasi_section(facts),
        ],
    )
    for section in e.sections:
        section.explains = EXPLAINS[section.key]
    return e
