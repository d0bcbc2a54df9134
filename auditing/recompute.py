"""Recompute each formasi's SKD cut and final ranking, and the round's optimalisasi allocations,
from the histories alone.

The numbers come from the inputs the journeys recorded (the start input's registration and
rules, the accepted report updates); who reached SKB and completed it comes from the journeys'
decisions as the current code re-derives them by replay. The ranking itself is the same pure
`domain/` code the workflows use, so an auditor can read exactly which rule produced a result.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
from temporalio.converter import DataConverter

from auditing.history import (
    DecodedMessages,
    Message,
    RecordedHistory,
    decisions_of,
    offers_of,
    replay,
)
from domain.appointment import PROBATION_SERVED, probation_ends
from domain.codes import AdminDecision, Phase, Stage, Terminal
from domain.columnar import (
    CODES,
    ColumnarSkdRanking,
    SkdColumns,
    rank_skd_columns,
    skd_columns,
)
from domain.config import Category, RoundConfig, parse_round_config
from domain.events import FinalAppealDecided, ReportAfterClose, SkbCompleted
from domain.messages import (
    AppealAnswer,
    ConflictDeclaration,
    Decision,
    FormasiStart,
    GateReport,
    JourneyRules,
    JourneyStart,
    JourneyState,
    PanelReview,
    PanelScoreReport,
    RoundStart,
    SkbScoreReport,
    SkdReport,
    fraction_text,
)
from domain.optimalisasi import (
    OFFER_UNANSWERED,
    OFFERS_BY_LOCAL_ACTIVITY_COSTS,
    SEAT_VACATED,
    SIGNAL_COSTS,
    CandidateProfile,
    OptimalisasiCandidate,
    Vacancy,
    allocate,
    local_date,
    offer_room,
    over_quota,
    seats_by_formasi,
    seats_held,
)
from domain.pages import line_pages
from domain.protocol import ANNOUNCE, CLOSE_STAGE, DISQUALIFY, REPORT_SKD, WITHDRAW
from domain.ranking import FinalEntry, rank_final
from domain.sheet import ApplicantSheet, corrected, skb_result, with_report

ENDINGS = (DISQUALIFY.name, WITHDRAW.name)
NO_CODE = 255
CODE_INDEX = {c.value: i for i, c in enumerate(CODES)}
SHOWN = 20  # differing SKD codes named one by one; the rest are counted
# What a journey's SKB result is composed from: the scores and gates, and what changes a panel (a
# conflict refuses or strikes its panellist's score, a review not kept strikes one), in the order
# the journey took them.
SKB_INPUTS = (
    SkdReport,
    SkbScoreReport,
    PanelScoreReport,
    GateReport,
    ConflictDeclaration,
    PanelReview,
)


@dataclass
class FormasiFigures:
    """What a formasi's selection comes to: the SKD cut and the final ranking with scores."""

    formasi_code: str
    cut_key: tuple[int, int, int, int] | None = None
    passers: int | None = None
    winners: list[tuple[str, str]] = field(default_factory=list)  # (applicant id, final score text)
    others: list[tuple[str, str]] = field(default_factory=list)
    ranked: bool = False  # whether a final ranking exists (announced or computable)
    # announced by a formasi that keeps its ranking as pages (patch paged-ranking): the digests of
    # its line pages and their size, instead of the lists
    winner_pages: list[str] | None = None
    other_pages: list[str] | None = None
    page_items: int = 0
    fold_at: int | None = None  # the lists were folded into index pages at this many
    winners_count: int = 0
    other_entries: list[FinalEntry] = field(default_factory=list)  # recomputed: lost on rank
    # recomputed: the same lines with each score written as the engine wrote it until 12-08
    # (`legacy_score_text`), which a ranking recorded then announced
    legacy_winners: list[tuple[str, str]] = field(default_factory=list)
    legacy_others: list[tuple[str, str]] = field(default_factory=list)
    # recomputed: the whole SKD listing as columns (skd_listing.lines(skd_columns.ids) lists it)
    skd_columns: SkdColumns | None = None
    skd_listing: ColumnarSkdRanking | None = None
    # recomputed: the SKD code each journey recorded for itself (an index into CODES, NO_CODE
    # when it recorded none), row by row of skd_columns
    skd_recorded: npt.NDArray[np.uint8] | None = None


@dataclass
class JourneyInputs:
    """One applicant's recorded inputs and re-derived decisions."""

    start: JourneyStart
    messages: list[Message]
    decisions: list[Decision]

    def _before(self, phase: str) -> list[Message]:
        """Messages accepted before the formasi's announcement of `phase` reached this journey,
        without the reports the journey found had arrived after the round closed the stage."""
        late = {d.input.get("report_id") for d in self.decisions if ReportAfterClose.matches(d)}
        out = []
        for m in self.messages:
            if m.kind == "update" and getattr(m.content, "report_id", None) in late:
                continue
            # The close came as the `announce` signal, or (close-by-update) the `close_stage` update.
            if (m.kind, m.name) in (
                ("signal", ANNOUNCE.name),
                ("update", CLOSE_STAGE.name),
            ) and getattr(m.content, "phase", "") == phase:
                break
            out.append(m)
        return out

    def skd_row(self) -> tuple[str, Category, int, int, int] | None:
        """The SKD result the formasi heard of, as (applicant id, category, TWK, TIU, TKP):
        recorded and not ended before SKD closed. A plain tuple, as domain.columnar takes it:
        a national formasi lists a million of them."""
        before = self._before(Phase.SKD_CLOSED)
        if any(m.kind == "update" and m.name in ENDINGS for m in before):
            return None
        if not any(
            d.outcome == AdminDecision.MS
            for d in self.decisions
            if d.stage in (Stage.ADMIN_CHECK, Stage.ADMIN_APPEAL)
        ):
            return None
        reports = [m.content for m in before if m.kind == "update" and m.name == REPORT_SKD.name]
        if not reports:
            return None
        r = reports[0]
        return (self.start.applicant_id, self.start.registration.category, r.twk, r.tiu, r.tkp)

    def skd_code(self) -> int:
        """The SKD code the journey recorded against the announced cut (SkdRanked), as an index
        into domain.columnar.CODES; NO_CODE when it recorded none."""
        for d in self.decisions:
            if d.stage == Stage.SKD_RANKING and d.outcome in CODE_INDEX:
                return CODE_INDEX[d.outcome]
        return NO_CODE

    def final_entry(self) -> FinalEntry | None:
        """The final entry, recomputed from the SKB reports, for a journey that completed SKB.

        The reports accepted before the SKB close are folded into a sheet of the applicant and
        composed by the same `domain.sheet.skb_result` the journey uses.
        """
        if not any(SkbCompleted.matches(d) for d in self.decisions):
            return None
        sheet = ApplicantSheet(
            applicant_id=self.start.applicant_id,
            formasi_code=self.start.formasi.code,
            registration=self.start.registration,
            tmt=self.start.tmt,
        )
        for m in self._before(Phase.SKB_CLOSED):
            if m.kind == "update" and isinstance(m.content, SKB_INPUTS):
                sheet = with_report(sheet, m.content)
        for d in self.decisions:
            # An accepted final sanggah that corrected scores: the same correction again.
            if FinalAppealDecided.matches(d) and d.outcome == "accepted":
                answer = AppealAnswer.model_validate(
                    {k: v for k, v in d.input.items() if k in AppealAnswer.model_fields}
                )
                if answer.corrected_scores:
                    return corrected(sheet.but(final_appeal_answer=answer), self.start.rules)[
                        1
                    ].entry
        return skb_result(sheet, self.start.rules).entry


def announced_figures(start: FormasiStart, decisions: list[Decision]) -> FormasiFigures:
    """What the formasi recorded and announced, from its decisions."""
    figures = FormasiFigures(start.formasi.code)
    for d in decisions:
        if d.stage == "skd_ranking" and d.outcome == "cut":
            key = d.input.get("cut_key")
            figures.cut_key = tuple(key) if key else None
            figures.passers = d.input.get("passers_seen")
        elif d.stage == "final_ranking" and d.outcome in ("ranked", "confirmed"):
            # The ranking confirmed after the final sanggah, when there is one, is the result.
            figures.ranked = True
            if "winner_pages" in d.input:
                figures.winner_pages = list(d.input["winner_pages"])
                figures.other_pages = list(d.input.get("other_pages", []))
                figures.page_items = int(d.input.get("page_items", 0))
                fold_at = d.input.get("fold_at")
                figures.fold_at = None if fold_at is None else int(fold_at)
                figures.winners_count = int(d.input.get("winners_count", 0))
                figures.winners, figures.others = [], []
            else:
                figures.winner_pages = figures.other_pages = None
                figures.winners = [(a, s) for a, s in d.input.get("winners", [])]
                figures.others = [(a, s) for a, s in d.input.get("others", [])]
    return figures


def recomputed_figures(
    start: FormasiStart, journeys: list[JourneyInputs], final: bool
) -> FormasiFigures:
    """The cut and the final ranking recomputed from the journeys' inputs: the SKD listing with
    domain.columnar (the same lines as domain.ranking.rank_skd, over columns), the final ranking
    with domain.ranking."""
    quota = start.formasi.quota
    mine = [j for j in journeys if j.start.formasi.code == start.formasi.code]
    rows = [(r, j) for j in mine if (r := j.skd_row()) is not None]
    columns = skd_columns(r for r, _ in rows)
    ranking = rank_skd_columns(columns, quota, start.rules.skd)
    figures = FormasiFigures(
        start.formasi.code,
        cut_key=ranking.cut_key,
        passers=ranking.passers,
        skd_columns=columns,
        skd_listing=ranking,
        skd_recorded=np.array([j.skd_code() for _, j in rows], dtype=np.uint8),
    )
    if final:
        finals = [e for e in (j.final_entry() for j in mine) if e is not None]
        by_id = {e.applicant_id: e for e in finals}
        result = rank_final(finals, quota)
        figures.ranked = True
        figures.winners = [(a, fraction_text(by_id[a].final_score) or "") for a in result.winners]
        figures.others = [(a, fraction_text(by_id[a].final_score) or "") for a in result.others]
        figures.other_entries = [by_id[a] for a in result.others]
        figures.legacy_winners = [
            (a, legacy_score_text(by_id[a].final_score)) for a in result.winners
        ]
        figures.legacy_others = [
            (a, legacy_score_text(by_id[a].final_score)) for a in result.others
        ]
    return figures


def legacy_score_text(value: Fraction) -> str:
    """A score's text as the engine wrote it until 12-08: through a float, so a score exactly
    half a thousandth from its neighbours (73.2875) was written one way or the other as the float
    fell (73.287), where `fraction_text` now writes it half up (73.288). A ranking recorded
    then is compared with the recomputed one in the text it was written in: the score is the same
    recorded fraction either way."""
    return f"{float(value):.3f}"


def journey_profiles(journeys: list[JourneyInputs]) -> dict[str, CandidateProfile]:
    """Each applicant's major and application date, as its journey's start input recorded them."""
    return {
        j.start.applicant_id: CandidateProfile(
            major=j.start.registration.major, applied_on=j.start.applied_on
        )
        for j in journeys
    }


# The pool's patch name as the round records it in its allocation decisions (workflows/versions.py
# OPTIMALISASI_POOL; auditing may not import workflows' code).
POOL_RULE = "optimalisasi-pool"
# A seat given up by its optimalisasi taker counted once (OPTIMALISASI_SEAT_GIVEN_UP_ONCE), as the
# allocations that follow it record it in `seat_given_up`.
SEAT_GIVEN_UP_ONCE = "optimalisasi-seat-given-up-once"
# An allocation that filled the most seats (OPTIMALISASI_FILLS_MOST), as it records it in `fill`.
FILLS_MOST = "optimalisasi-fills-most"


def recompute_optimalisasi(
    config: RoundConfig,
    round_decisions: list[Decision],
    recomputed: dict[str, FormasiFigures],
    profiles: dict[str, CandidateProfile],
) -> list[str]:
    """Every difference between the round's recorded optimalisasi allocations and the ones
    `domain.optimalisasi.allocate` gives from the recorded inputs.

    The inputs: the final rankings recomputed from the journeys (who lost on rank, with what
    entry; each formasi's empty seats), each candidate's major and application date (`profiles`,
    from the journeys' start inputs: `journey_profiles`), the seats given up as the round recorded them, and the declines each
    allocation names. Each allocation is recomputed with the rule it recorded (the pool, or the
    jabatan and education only of rounds before it); the offers it made carry on to the next.
    """
    by_code = {f.code: f for f in config.formasi}
    candidates = []
    for code, figures in recomputed.items():
        f = by_code.get(code)
        for e in figures.other_entries if f is not None else []:
            candidates.append(
                OptimalisasiCandidate(
                    entry=e,
                    jabatan=f.jabatan,
                    education_level=f.education_level,
                    profile=profiles.get(e.applicant_id),
                )
            )
    base = {
        code: by_code[code].quota - len(figures.winners)
        for code, figures in recomputed.items()
        if code in by_code and figures.ranked
    }
    vacated: dict[str, int] = defaultdict(int)
    given_up: set[str] = set()  # applicants whose seat the round recorded as vacated
    made: list[tuple[str, str]] = []  # (applicant id, formasi) of every offer made so far
    out: list[str] = []
    allocation = 0
    declined_so_far: set[str] = set()
    stopped = False  # offers stopped at the history budget (patch optimalisasi-budget)
    made_at: dict[str, datetime] = {}  # offer id -> when its allocation made it
    for d in round_decisions:
        if d.outcome == SEAT_VACATED:
            vacated[d.input.get("formasi_code", "")] += 1
            given_up.add(d.input.get("applicant_id", ""))
            continue
        if d.stage == "optimalisasi" and d.outcome == OFFER_UNANSWERED:
            out += _unanswered_differences(config, d, made_at)
            continue
        if d.stage == "optimalisasi" and d.outcome == OFFERS_STOPPED:
            stopped = True
            continue
        if not (d.stage == "optimalisasi" and d.outcome == "allocated"):
            continue
        allocation += 1
        if stopped:
            out.append(f"optimalisasi allocation {allocation}: made after offers stopped")
        # An allocation records every decline so far ("declined"), or, from patch
        # optimalisasi-by-change, those since the previous one ("declined_since").
        if "declined_since" in d.input:
            declined = declined_so_far | set(d.input["declined_since"])
        else:
            declined = set(d.input.get("declined", []))
        declined_so_far = declined
        # Rounds with optimalisasi until filing closes (the allocation records "given_up" or
        # "given_up_since"): an accepted seat given up no longer holds it, until the allocation
        # records `seat_given_up`: then it holds it, and the seat given up frees it once.
        refills = "given_up" in d.input or "given_up_since" in d.input
        once = d.input.get("seat_given_up") == SEAT_GIVEN_UP_ONCE
        released = given_up if refills and not once else set()
        held: dict[str, int] = defaultdict(int)
        for applicant_id, code in made:
            if applicant_id not in declined and applicant_id not in released:
                held[code] += 1
        placed = {a for a, _ in made if a not in declined}
        pool = d.input.get("pool") == POOL_RULE
        judged_on = date.fromisoformat(d.input["judged_on"]) if pool else None
        vacancies = [
            Vacancy(
                formasi_code=code,
                jabatan=f.jabatan,
                education_level=f.education_level,
                seats=seats,
                formasi=f if pool else None,
            )
            for code, f in by_code.items()
            if (seats := base.get(code, 0) + vacated[code] - held[code]) > 0
        ]
        offers = allocate(
            vacancies,
            [c for c in candidates if c.entry.applicant_id not in placed],
            declined,
            judged_on,
            # Patch optimalisasi-fills-most: the allocation says it filled the most seats.
            fill_most=d.input.get("fill") == FILLS_MOST,
        )
        seats = {v.formasi_code: v.seats for v in vacancies}
        again = [[o.applicant_id, o.to_formasi] for o in offers]
        where = f"optimalisasi allocation {allocation} ({d.at.isoformat()})"
        if "cut_at" in d.input:
            # Patch optimalisasi-budget: the allocation stopped after this many offers, best first,
            # where the figures it recorded put the room.
            out += _cut_differences(config, d, allocation)
            left = seats_by_formasi(code for _, code in again[d.input["cut_at"] :])
            if left != d.input.get("not_offered"):
                out.append(
                    f"{where}: seats not offered recorded {d.input.get('not_offered')}, "
                    f"recomputed {left}"
                )
            again = again[: d.input["cut_at"]]
        recorded = [list(o) for o in d.input.get("offers", [])]
        if seats != d.input.get("vacancies"):
            out.append(
                f"{where}: empty seats recorded {d.input.get('vacancies')}, recomputed {seats}"
            )
        if again != recorded:
            out.append(f"{where}: offers recorded {recorded}, recomputed {again}")
        made += [(a, code) for a, code in recorded]
        for a, code in recorded:
            made_at.setdefault(_offer_id(config.round_id, a, code), d.at)
    return out


def _offer_id(round_id: str, applicant_id: str, formasi_code: str) -> str:
    """The id the round gives its offer of a seat in `formasi_code` to `applicant_id`
    (workflows/round.py, RecruitmentRound._offer_id)."""
    return f"{round_id}/offer/{applicant_id}/{formasi_code}"


def _unanswered_differences(
    config: RoundConfig, d: Decision, made_at: dict[str, datetime]
) -> list[str]:
    """Whether an offer the round counted as declined for no answer (patch
    optimalisasi-answer-deadline) was one it made, and no earlier than its answer_by (its
    allocation's time plus offer_answer_within) plus the round's offer_answer_grace."""
    offer = str(d.input.get("offer_id", ""))
    where = f"optimalisasi offer {offer} recorded unanswered at {d.at.isoformat()}"
    if offer not in made_at:
        return [f"{where}: no allocation made it"]
    earliest = made_at[offer] + config.offer_answer_within + config.offer_answer_grace
    if d.at < earliest:
        return [
            f"{where}: before its answer_by and the round's grace ran out ({earliest.isoformat()})"
        ]
    return []


OFFERS_STOPPED = "offers stopped"  # the round's decision (workflows/round.py, _stop_offers)


def _cut_differences(config: RoundConfig, d: Decision, allocation: int) -> list[str]:
    """Whether an allocation was cut where the budget puts it: the offers whose answers fit the
    rules' history budget and the signals left, from the figures the allocation recorded."""
    where = f"optimalisasi allocation {allocation} ({d.at.isoformat()})"
    figures = d.input.get("budget") or {}
    budget = figures.get("history_budget")
    if budget != config.optimalisasi_history_budget:
        return [
            f"{where}: history budget recorded {budget}, "
            f"the rules' {config.optimalisasi_history_budget}"
        ]
    # The costs the round counted: those of offers sent by a local activity when it recorded them
    # (patch offers-by-local-activity), those of offers sent as signals when it did not.
    costs = {k: figures[k] for k in OFFERS_BY_LOCAL_ACTIVITY_COSTS if k in figures} or SIGNAL_COSTS
    if costs not in (SIGNAL_COSTS, OFFERS_BY_LOCAL_ACTIVITY_COSTS):
        return [f"{where}: costs recorded {costs}, not those of any way the round sends offers"]
    try:
        room = offer_room(
            budget,
            int(figures["history_length"]),
            int(figures["signals_received"]),
            int(figures["pending"]),
            **costs,
        )
    except (KeyError, TypeError, ValueError) as exc:
        return [f"{where}: the figures of its cut cannot be read ({exc!r})"]
    share = d.input.get("share")
    if share is None:
        if d.input["cut_at"] != room:
            return [f"{where}: cut at {d.input['cut_at']} offers, the budget allows {room}"]
        return []
    # Patch optimalisasi-share-per-run: cut at the run's share left when it is smaller.
    try:
        per_run, in_run = int(share["offers_per_run"]), int(share["offers_in_run"])
    except (KeyError, TypeError, ValueError) as exc:
        return [f"{where}: the run's share recorded cannot be read ({exc!r})"]
    if per_run != config.optimalisasi_offers_per_run:
        return [
            f"{where}: offers per run recorded {per_run}, "
            f"the rules' {config.optimalisasi_offers_per_run}"
        ]
    if in_run < 0:
        return [f"{where}: offers made in the run recorded {in_run}"]
    left = max(0, per_run - in_run)
    if d.input["cut_at"] != min(room, left):
        return [
            f"{where}: cut at {d.input['cut_at']} offers, the budget allows {room} and the "
            f"run's share {left}"
        ]
    return []


def skd_code_differences(recomputed: FormasiFigures) -> list[str]:
    """Every applicant whose recorded SKD code (P/L, P, T/L) is not the one the recomputed
    listing gives; applicants who recorded none (absent, ended, still waiting) are left out."""
    listing, columns, recorded = (
        recomputed.skd_listing,
        recomputed.skd_columns,
        recomputed.skd_recorded,
    )
    if listing is None or columns is None or recorded is None:
        return []
    mine = recorded[listing.order]
    differing = np.flatnonzero((mine != NO_CODE) & (mine != listing.code))
    if not len(differing):
        return []
    ids = columns.ids[listing.order[differing[:SHOWN]]].tolist()
    out = [
        f"formasi {recomputed.formasi_code}: applicant "
        f"{i.decode() if isinstance(i, bytes) else i} recorded SKD code "
        f"{CODES[mine[j]].value}, recomputed {CODES[listing.code[j]].value}"
        for i, j in zip(ids, differing[:SHOWN].tolist(), strict=True)
    ]
    if len(differing) > SHOWN:
        out.append(
            f"formasi {recomputed.formasi_code}: {len(differing) - SHOWN} more applicants "
            "recorded another SKD code than recomputed"
        )
    return out


LISTING_HEADER = ("formasi", "line", "rank", "applicant_id", "code", "total", "recorded_code")


def write_skd_listing(recomputed: list[FormasiFigures], path: Path) -> int:
    """Every formasi's recomputed SKD listing as CSV, in listing order (rank empty below the
    threshold, recorded_code empty where the journey recorded none); returns the lines written."""
    lines = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(LISTING_HEADER)
        for figures in recomputed:
            listing, columns = figures.skd_listing, figures.skd_columns
            if listing is None or columns is None:
                continue
            n = len(listing.order)
            recorded = (
                figures.skd_recorded[listing.order].tolist()
                if figures.skd_recorded is not None
                else [NO_CODE] * n
            )
            codes = [c.value for c in CODES] + [""] * (NO_CODE + 1 - len(CODES))
            out.writerows(
                zip(
                    [figures.formasi_code] * n,
                    range(1, n + 1),
                    [r or "" for r in listing.rank.tolist()],
                    listing.listed_ids(columns.ids),
                    [codes[c] for c in listing.code.tolist()],
                    listing.total.tolist(),
                    [codes[c] for c in recorded],
                    strict=True,
                )
            )
            lines += n
    return lines


def _page_differences(announced: FormasiFigures, recomputed: FormasiFigures) -> list[str]:
    """A ranking recorded as pages against the recomputed one: the recompute builds the same
    pages (domain/pages.py) from its own lines, folds them as the formasi did when it did, and
    compares their digests, reference by reference."""
    code = announced.formasi_code
    out = []
    for name, pages, lines, legacy in (
        ("winners", announced.winner_pages or [], recomputed.winners, recomputed.legacy_winners),
        (
            "ranked others",
            announced.other_pages or [],
            recomputed.others,
            recomputed.legacy_others,
        ),
    ):

        def digests(lines: list[tuple[str, str]]) -> list[str]:
            refs = line_pages(
                [a for a, _ in lines], dict(lines), announced.page_items, announced.fold_at
            )
            return [ref.digest for ref in refs]

        mine = digests(lines)
        if mine != pages and legacy != lines and digests(legacy) == pages:
            continue  # written as scores were until 12-08 (legacy_score_text)
        if mine != pages:
            first = next(
                (i for i, (a, b) in enumerate(zip(mine, pages, strict=False)) if a != b),
                min(len(mine), len(pages)),
            )
            out.append(
                f"formasi {code}: {name} announced as {len(pages)} page references, recomputed "
                f"{len(lines)} lines in {len(mine)}; they differ from reference {first + 1}"
            )
    return out


def compare(announced: FormasiFigures, recomputed: FormasiFigures) -> list[str]:
    """Every difference between what a formasi announced and what the histories give."""
    code = announced.formasi_code
    out = []
    if announced.cut_key != recomputed.cut_key:
        out.append(
            f"formasi {code}: SKD cut announced {announced.cut_key}, recomputed {recomputed.cut_key}"
        )
    if announced.passers is not None and announced.passers != recomputed.passers:
        out.append(
            f"formasi {code}: {announced.passers} SKD passers counted, recomputed {recomputed.passers}"
        )
    if announced.ranked and announced.winner_pages is not None:
        out += _page_differences(announced, recomputed)
    elif announced.ranked:
        # A ranking recorded until 12-08 wrote its scores as `legacy_score_text` does.
        if announced.winners not in (recomputed.winners, recomputed.legacy_winners or None):
            out.append(
                f"formasi {code}: winners announced {announced.winners}, recomputed {recomputed.winners}"
            )
        if announced.others not in (recomputed.others, recomputed.legacy_others or None):
            out.append(
                f"formasi {code}: ranked others announced {announced.others}, "
                f"recomputed {recomputed.others}"
            )
    return out + skd_code_differences(recomputed)


@dataclass
class Recomputation:
    """Announced and recomputed figures per formasi, and the problems found on the way."""

    pairs: list[tuple[FormasiFigures, FormasiFigures]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    optimalisasi: list[str] = field(default_factory=list)  # allocation differences
    # Seats no rule explains: a formasi whose journeys hold more than its quota, a journey placed
    # by an optimalisasi offer its round never made.
    seats: list[str] = field(default_factory=list)
    # Journeys ended PNS under the year of probation (patch probation-year) before the year from
    # their TMT ended, or saying another day than it ended on (`probation_differences`).
    probation: list[str] = field(default_factory=list)
    allocations: int = 0  # optimalisasi allocations recomputed
    profiles: dict[str, CandidateProfile] = field(default_factory=dict)  # their recorded inputs

    def differences(self) -> list[str]:
        """Problems plus every announced/recomputed difference, the optimalisasi's included."""
        return (
            self.problems
            + [d for a, r in self.pairs for d in compare(a, r)]
            + self.optimalisasi
            + self.seats
            + self.probation
        )


def probation_differences(applicant_id: str, rules: JourneyRules, state: JourneyState) -> list[str]:
    """What is wrong with a journey's PNS under the year of probation (its reason begins with
    PROBATION_SERVED): made before the year from its TMT ended (its ending decision's time against
    domain.appointment.probation_ends, in the round's zone, or the compressed round's own end),
    or naming another day than the year ended on. Nothing for any other journey: one ended PNS
    before the patch was judged by the rule of its day, which replay re-derives."""
    if state.terminal != Terminal.PNS or not state.terminal_reason.startswith(PROBATION_SERVED):
        return []
    if state.tmt is None:
        return [f"applicant {applicant_id}: PNS after a probation, with no TMT"]
    ends = probation_ends(state.tmt, rules.timezone, rules.probation_ends)
    endings = [d for d in state.decisions if d.outcome == Terminal.PNS.value]
    problems = []
    if not endings:
        problems.append(f"applicant {applicant_id}: PNS with no decision that made it")
    elif endings[-1].at < ends:
        problems.append(
            f"applicant {applicant_id}: PNS at {endings[-1].at.isoformat()}, before the year of "
            f"probation from TMT {state.tmt.isoformat()} ended ({ends.isoformat()})"
        )
    said = state.terminal_reason.removeprefix(PROBATION_SERVED)
    served = local_date(ends, rules.timezone).isoformat()
    if said != served:
        problems.append(
            f"applicant {applicant_id}: PNS says its probation was served to {said}; the year "
            f"from TMT {state.tmt.isoformat()} ended on {served}"
        )
    return problems


async def recompute(
    histories: list[RecordedHistory],
    converter: DataConverter,
    decoded_once: DecodedMessages | None = None,
) -> Recomputation:
    """Recompute every formasi of the histories; the formasi's own decisions are re-derived by
    replay. With `decoded_once`, the messages a check before decoded are read from there."""
    out = Recomputation()
    decoder = decoded_once or DecodedMessages(converter)
    outcomes = await replay([h.history for h in histories], converter)
    for o in outcomes:
        if not o.ok:
            out.problems.append(
                f"{o.workflow_id} (run {o.run_id}): replay diverges, its decisions cannot be "
                f"trusted: {o.failure or o.drift}"
            )
    by_run = {o.run_id: o for o in outcomes}
    by_workflow: dict[str, list[RecordedHistory]] = defaultdict(list)
    for h in histories:
        by_workflow[h.workflow_id].append(h)
    journeys: list[JourneyInputs] = []
    formasi: list[tuple[FormasiStart, list[Decision]]] = []
    rounds: list[tuple[RoundStart, list[Decision], dict[str, str]]] = []
    placed: dict[str, list] = defaultdict(list)  # round -> its journeys' states, replayed
    for runs in by_workflow.values():
        runs.sort(key=lambda h: h.start_time)
        kind = runs[0].kind
        if kind not in ("journey", "formasi", "round"):
            continue
        msgs = [m for h in runs for m in await decoder.of(h.history)]
        decisions = decisions_of(by_run[h.run_id] for h in runs if h.run_id in by_run)
        start = msgs[0].content
        if kind == "journey":
            journeys.append(JourneyInputs(start, [m for m in msgs if m.kind != "start"], decisions))
            last = by_run.get(runs[-1].run_id)
            placed[start.round_id].append(last.state if last is not None else None)
            if last is not None and isinstance(last.state, JourneyState):
                out.probation += probation_differences(start.applicant_id, start.rules, last.state)
        elif kind == "round":
            made = offers_of(by_run[h.run_id] for h in runs if h.run_id in by_run)
            rounds.append((start, decisions, made))
        else:
            formasi.append((start, decisions))
    if not formasi:
        out.problems.append(
            "no FormasiSelection history among the histories: nothing announced to compare"
        )
    for start, decisions in sorted(formasi, key=lambda f: f[0].formasi.code):
        announced = announced_figures(start, decisions)
        out.pairs.append((announced, recomputed_figures(start, journeys, final=announced.ranked)))
    recomputed = {r.formasi_code: r for _, r in out.pairs}
    out.profiles = journey_profiles(journeys)
    for round_start, decisions, made in rounds:
        config = parse_round_config(round_start.config, "round configuration")
        out.allocations += sum(
            1 for d in decisions if d.stage == "optimalisasi" and d.outcome == "allocated"
        )
        out.optimalisasi += recompute_optimalisasi(config, decisions, recomputed, out.profiles)
        # No formasi may hold more seats than its quota, whatever placed them (selection
        # integrity: a seat once offered twice, before patch optimalisasi-seat-given-up-once).
        held = seats_held(placed[config.round_id])
        out.seats += [
            f"round {config.round_id}: formasi {line} (journeys placed there, running or PNS)"
            for line in over_quota(config.formasi, held)
        ]
        # Every optimalisasi seat a journey accepted was offered by its round (a journey takes an
        # offer sealed with the round's secret: one the round never made means that secret left
        # the engine, or a bug).
        for j in journeys:
            if j.start.round_id != config.round_id:
                continue
            for d in j.decisions:
                if (d.stage, d.outcome) != ("optimalisasi", "accepted"):
                    continue
                offer_id = str(d.input.get("offer_id", ""))
                if offer_id not in made:
                    out.seats.append(
                        f"round {config.round_id}: applicant {j.start.applicant_id} accepted "
                        f"optimalisasi offer {offer_id} ({d.input.get('to_formasi')}), which the "
                        "round never made"
                    )
    return out
