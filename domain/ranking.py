"""Rankings within a formasi: the SKD ranking with its 3 x quota cut, and the final ranking."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import date
from fractions import Fraction

from pydantic import BaseModel, Field

from domain.codes import SkdCode
from domain.config import Category, SkdRules
from domain.skd import SkdKey, SkdScores, passes_threshold, skd_rank_key


class SkdEntry(BaseModel, frozen=True):
    """One applicant's SKD result as the formasi ranks it."""

    applicant_id: str
    category: Category
    scores: SkdScores


class RankedSkd(BaseModel, frozen=True):
    """One line of the SKD announcement."""

    applicant_id: str
    rank: int | None  # among those who passed the threshold; None below it
    code: SkdCode
    total: int


class SkdRanking(BaseModel, frozen=True):
    """The SKD ranking of a formasi: every entry's code and the key at the cut."""

    lines: list[RankedSkd]
    cut_key: SkdKey | None = Field(
        description="the lowest key that goes on to SKB; None if nobody passed"
    )


def skd_cut_size(quota: int, rules: SkdRules) -> int:
    """How many go on to SKB before ties: cut_multiplier x quota."""
    return rules.cut_multiplier * quota


def skd_code(passed: bool, key: SkdKey, cut_key: SkdKey | None) -> SkdCode:
    """P/L when passed and at or above the cut (everyone tied at the cut goes on), P or T/L otherwise."""
    if not passed:
        return SkdCode.FAILED
    if cut_key is not None and key >= cut_key:
        return SkdCode.PASSED_TO_SKB
    return SkdCode.PASSED


def rank_skd(entries: Sequence[SkdEntry], quota: int, rules: SkdRules) -> SkdRanking:
    """Rank a formasi's SKD results; order of `entries` does not matter."""
    passers = [e for e in entries if passes_threshold(e.scores, e.category, rules)]
    passers.sort(key=lambda e: (tuple(-k for k in skd_rank_key(e.scores)), e.applicant_id))
    cut = skd_cut_size(quota, rules)
    cut_key: SkdKey | None = None
    if passers and cut > 0:
        cut_key = skd_rank_key(passers[min(cut, len(passers)) - 1].scores)
    lines: list[RankedSkd] = []
    rank = 0
    previous: SkdKey | None = None
    for position, e in enumerate(passers, start=1):
        key = skd_rank_key(e.scores)
        if key != previous:
            rank, previous = position, key
        lines.append(
            RankedSkd(
                applicant_id=e.applicant_id,
                rank=rank,
                code=skd_code(True, key, cut_key),
                total=e.scores.total,
            )
        )
    failed = sorted(
        (e for e in entries if not passes_threshold(e.scores, e.category, rules)),
        key=lambda e: (tuple(-k for k in skd_rank_key(e.scores)), e.applicant_id),
    )
    lines.extend(
        RankedSkd(applicant_id=e.applicant_id, rank=None, code=SkdCode.FAILED, total=e.scores.total)
        for e in failed
    )
    return SkdRanking(lines=lines, cut_key=cut_key)


class SkdCutTracker(BaseModel):
    """The top `capacity` SKD keys of a formasi, kept as results arrive: state bounded by the seats.

    Its lowest key once full is the cut: applicants at or above it go on to SKB. Entries are
    ordered by (key, applicant id), so a repeated report of an applicant changes nothing.
    """

    capacity: int = Field(ge=0)
    entries: list[tuple[int, int, int, int, str]] = Field(default_factory=list)  # ascending
    seen: int = 0

    def add(self, applicant_id: str, key: SkdKey) -> None:
        """Record one passer's key."""
        if self.capacity == 0:
            return
        item = (*key, applicant_id)
        if any(e[4] == applicant_id for e in self.entries):
            return
        self.seen += 1
        if len(self.entries) < self.capacity:
            bisect.insort(self.entries, item)
        elif item > self.entries[0]:
            self.entries.pop(0)
            bisect.insort(self.entries, item)

    def cut_key(self) -> SkdKey | None:
        """The lowest key that still goes on; None when nobody passed."""
        if not self.entries:
            return None
        low = self.entries[0]
        return (low[0], low[1], low[2], low[3])


class FinalEntry(BaseModel, frozen=True):
    """What the final ranking needs of one applicant who completed SKB and passed every gate."""

    applicant_id: str
    formasi_code: str
    final_score: Fraction
    skd: SkdScores
    gpa: float
    birth_date: date

    model_config = {"arbitrary_types_allowed": True}


def final_rank_key(e: FinalEntry) -> tuple:
    """Sort key, best first: final score, SKD total, TKP, TIU, TWK, GPA (all higher first), older first."""
    return (
        -e.final_score,
        -e.skd.total,
        -e.skd.tkp,
        -e.skd.tiu,
        -e.skd.twk,
        -Fraction(str(e.gpa)),
        e.birth_date,
        e.applicant_id,  # only identical applicants reach this; it keeps the order stable
    )


class FinalRanking(BaseModel, frozen=True):
    """Winners (within the quota) and the rest in rank order."""

    winners: list[str]
    others: list[str]


def rank_final(entries: Sequence[FinalEntry], quota: int) -> FinalRanking:
    """Seats by rank within the quota; there is no minimum final score."""
    ordered = sorted(entries, key=final_rank_key)
    return FinalRanking(
        winners=[e.applicant_id for e in ordered[:quota]],
        others=[e.applicant_id for e in ordered[quota:]],
    )
