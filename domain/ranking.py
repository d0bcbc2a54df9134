"""Rankings within a formasi: the SKD ranking with its 3 x quota cut, and the final ranking."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import NamedTuple

from pydantic import BaseModel, Field, PrivateAttr

from domain.codes import SkdCode
from domain.config import Category, SkdRules
from domain.skd import SkdKey, SkdScores


class SkdEntry(BaseModel, frozen=True):
    """One applicant's SKD result as the formasi ranks it."""

    applicant_id: str
    category: Category
    scores: SkdScores


class RankedSkd(NamedTuple):
    """One line of the SKD announcement (a tuple: a national formasi ranks millions of lines)."""

    applicant_id: str
    rank: int | None  # among those who passed the threshold; None below it
    code: SkdCode
    total: int


@dataclass(frozen=True)
class SkdRanking:
    """The SKD ranking of a formasi: every entry's code and the key at the cut."""

    lines: list[RankedSkd]
    cut_key: SkdKey | None  # the lowest key that goes on to SKB; None if nobody passed


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
    """Rank a formasi's SKD results; order of `entries` does not matter.

    Passers are ranked by total, TKP, TIU, TWK (ties share a rank); those below their category's
    threshold follow, unranked, as T/L. Written over plain tuples: 1 M entries rank in seconds.
    """
    limits = {c: (t.twk, t.tiu, t.tkp, t.total) for c, t in rules.thresholds.items()}
    # The key (total, TKP, TIU, TWK) packed in one integer sorts like the tuple (each part < 1024)
    # and compares far faster: a national formasi ranks millions of lines.
    passers: list[tuple[int, str]] = []
    failed: list[tuple[int, str]] = []
    for e in entries:
        s = e.scores
        twk, tiu, tkp = s.twk, s.tiu, s.tkp
        total = twk + tiu + tkp
        m_twk, m_tiu, m_tkp, m_total = limits[e.category]
        passed = (
            (m_twk is None or twk >= m_twk)
            and (m_tiu is None or tiu >= m_tiu)
            and (m_tkp is None or tkp >= m_tkp)
            and (m_total is None or total >= m_total)
        )
        (passers if passed else failed).append(
            (-(((total << 10 | tkp) << 10 | tiu) << 10 | twk), e.applicant_id)
        )
    passers.sort()
    failed.sort()
    cut = skd_cut_size(quota, rules)
    cut_packed: int | None = None
    if passers and cut > 0:
        cut_packed = passers[min(cut, len(passers)) - 1][0]
    lines: list[RankedSkd] = []
    append = lines.append
    rank, previous = 0, None
    on, outside, below = SkdCode.PASSED_TO_SKB, SkdCode.PASSED, SkdCode.FAILED
    for position, (packed, applicant_id) in enumerate(passers, start=1):
        if packed != previous:
            rank, previous = position, packed
        code = on if cut_packed is not None and packed <= cut_packed else outside
        append(RankedSkd(applicant_id, rank, code, -packed >> 30))
    for packed, applicant_id in failed:
        append(RankedSkd(applicant_id, None, below, -packed >> 30))
    return SkdRanking(lines=lines, cut_key=None if cut_packed is None else _unpack(-cut_packed))


def _unpack(packed: int) -> SkdKey:
    return (packed >> 30, packed >> 20 & 1023, packed >> 10 & 1023, packed & 1023)


class SkdCutTracker(BaseModel):
    """The top `capacity` SKD keys of a formasi, kept as results arrive: state bounded by the seats.

    Its lowest key once full is the cut: applicants at or above it go on to SKB. Entries form a
    min-heap on (key, applicant id), so a repeated report of an applicant changes nothing and
    each arrival costs O(log capacity).
    """

    capacity: int = Field(ge=0)
    entries: list[tuple[int, int, int, int, str]] = Field(default_factory=list)  # a min-heap
    seen: int = 0
    _ids: set[str] | None = PrivateAttr(default=None)

    def add(self, applicant_id: str, key: SkdKey) -> None:
        """Record one passer's key."""
        if self.capacity == 0:
            return
        if self._ids is None:
            self._ids = {e[4] for e in self.entries}
        if applicant_id in self._ids:
            return
        self.seen += 1  # each journey replies once, so this counts the passers
        item = (*key, applicant_id)
        if len(self.entries) < self.capacity:
            heapq.heappush(self.entries, item)
        elif item > self.entries[0]:
            self._ids.discard(heapq.heapreplace(self.entries, item)[4])
        else:
            return
        self._ids.add(applicant_id)

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
