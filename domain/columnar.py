"""The SKD ranking over columns (NumPy arrays): the same lines as `domain.ranking.rank_skd`
without a Python object per entry, so an auditor lists a national formasi of millions at once;
and the final ranking (`rank_final`) the same way.

The rule is rank_skd's: passers of their category's threshold ranked by total, TKP, TIU, TWK
(ties share a rank, and list in applicant-id order), the top cut_multiplier x quota and
everyone tied at the cut P/L, the other passers P, and those below their threshold T/L after
them, in the same order. The tests hold the two equal on random formasi.

Sorting is done with `np.sort` of one unsigned 64-bit integer per entry: the sort key in the
high bits and the entry's current position in the low bits. NumPy sorts plain integers with SIMD,
several times faster than `np.argsort`/`np.lexsort` of the same keys (0.02 s against 0.14 s and
more for 1 M here), and the position in the low bits makes every pass stable and hands back the
permutation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.codes import SkdCode
from domain.config import Category, SkdRules
from domain.ranking import (
    FinalEntry,
    FinalRanking,
    RankedSkd,
    SkdEntry,
    SkdRanking,
    skd_cut_size,
)
from domain.skd import SkdKey

CATEGORIES: tuple[Category, ...] = tuple(Category)  # a category's column value is its index here
CATEGORY_INDEX = {c: i for i, c in enumerate(CATEGORIES)}
CODES: tuple[SkdCode, ...] = (SkdCode.PASSED_TO_SKB, SkdCode.PASSED, SkdCode.FAILED)
PL, P, TL = 0, 1, 2  # a line's code column value: its index in CODES

KEY_AND_POSITION_BITS = 64  # a sort key and a row position share one uint64
IntArray = npt.NDArray[np.int64]
Index = npt.NDArray[np.intp]


@dataclass(frozen=True)
class SkdColumns:
    """A formasi's SKD results as columns, one row per applicant.

    `ids` is a NumPy bytes array (dtype 'S') of ASCII ids, or a unicode array (dtype 'U') when
    some id is not ASCII: registration numbers are 16 base32 characters, and 16 bytes a row
    instead of 64 make sorting and listing them several times faster. Ids never contain NUL.
    `category` holds indexes into CATEGORIES; twk, tiu and tkp the recorded scores.
    """

    ids: npt.NDArray[np.bytes_] | npt.NDArray[np.str_]
    category: npt.NDArray[np.uint8]
    twk: IntArray
    tiu: IntArray
    tkp: IntArray

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.ids.dtype.kind not in "SU":
            raise ValueError(f"ids: dtype {self.ids.dtype}, expected bytes ('S') or unicode ('U')")
        for name in ("category", "twk", "tiu", "tkp"):
            column = getattr(self, name)
            if column.shape != (n,):
                raise ValueError(f"{name}: shape {column.shape}, expected ({n},) like ids")
        if n and int(self.category.max()) >= len(CATEGORIES):
            raise ValueError(
                f"category: value {int(self.category.max())} is not an index into CATEGORIES "
                f"(0..{len(CATEGORIES) - 1})"
            )
        for name in ("twk", "tiu", "tkp"):
            column = getattr(self, name)
            if n and (int(column.min()) < 0 or int(column.max()) > 1023):
                bad = int(column.min()) if int(column.min()) < 0 else int(column.max())
                raise ValueError(f"{name}: score {bad} outside 0..1023")

    def __len__(self) -> int:
        return len(self.ids)


def skd_columns(rows: Iterable[tuple[str, Category, int, int, int]]) -> SkdColumns:
    """Columns from (applicant id, category, TWK, TIU, TKP) rows, e.g. read from histories."""
    ids: list[str] = []
    category: list[int] = []
    twk: list[int] = []
    tiu: list[int] = []
    tkp: list[int] = []
    index = CATEGORY_INDEX
    for applicant_id, c, w, i, k in rows:  # one loop: zip(*rows) is ten times slower at 1 M
        ids.append(applicant_id)
        category.append(index[c])
        twk.append(w)
        tiu.append(i)
        tkp.append(k)
    return columns_of(ids, category, twk, tiu, tkp)


def columns_of(
    ids: Sequence[str],
    category: Sequence[int] | npt.NDArray[Any],
    twk: Sequence[int] | npt.NDArray[Any],
    tiu: Sequence[int] | npt.NDArray[Any],
    tkp: Sequence[int] | npt.NDArray[Any],
) -> SkdColumns:
    """Columns from parallel sequences (category as indexes into CATEGORIES)."""
    if "\x00" in "".join(ids):
        raise ValueError("ids: an applicant id contains NUL")
    return SkdColumns(
        ids=_id_column(ids),
        category=np.asarray(category, dtype=np.uint8),
        twk=np.asarray(twk, dtype=np.int64),
        tiu=np.asarray(tiu, dtype=np.int64),
        tkp=np.asarray(tkp, dtype=np.int64),
    )


def _id_column(ids: Sequence[str]) -> npt.NDArray[np.bytes_] | npt.NDArray[np.str_]:
    if not len(ids):
        return np.array([], dtype="S1")
    try:
        return np.array(ids, dtype=np.bytes_)  # ASCII only: UTF-8 order is code point order
    except UnicodeEncodeError:
        return np.array(ids, dtype=np.str_)


def columns_of_entries(entries: Sequence[SkdEntry]) -> SkdColumns:
    """Columns of SkdEntry objects (tests and small formasi; large ones build columns directly)."""
    return skd_columns(
        (e.applicant_id, e.category, e.scores.twk, e.scores.tiu, e.scores.tkp) for e in entries
    )


@dataclass(frozen=True)
class ColumnarSkdRanking:
    """The SKD ranking as columns in listing order (rank_skd's `lines`, one array per field).

    `order[j]` is the row (of the SkdColumns) listed j-th; `rank[j]` its rank (0 below the
    threshold, where rank_skd says None); `code[j]` an index into CODES; `total[j]` its total.
    """

    order: Index
    rank: IntArray
    code: npt.NDArray[np.uint8]
    total: IntArray
    passers: int
    cut_key: SkdKey | None

    def listed_ids(self, ids: npt.NDArray[np.bytes_] | npt.NDArray[np.str_]) -> list[str]:
        """The applicant ids in listing order, as str."""
        listed = ids[self.order].tolist()
        return [i.decode("ascii") for i in listed] if ids.dtype.kind == "S" else listed

    def lines(self, ids: npt.NDArray[np.bytes_] | npt.NDArray[np.str_]) -> list[RankedSkd]:
        """rank_skd's lines (one tuple each: for comparison and short listings)."""
        listed = self.listed_ids(ids)
        ranks = self.rank.tolist()
        codes = [CODES[c] for c in self.code.tolist()]
        totals = self.total.tolist()
        return [
            RankedSkd(a, r if r else None, c, t)
            for a, r, c, t in zip(listed, ranks, codes, totals, strict=True)
        ]

    def ranking(self, ids: npt.NDArray[np.bytes_] | npt.NDArray[np.str_]) -> SkdRanking:
        """The same value rank_skd returns."""
        return SkdRanking(lines=self.lines(ids), cut_key=self.cut_key)


def _sorted_by(
    values: npt.NDArray[np.uint64], order: Index | None, bits: int
) -> tuple[Index, npt.NDArray[np.uint64]]:
    """`order` (None: the rows as they are) stably re-sorted by values[order] ascending, and
    the values in that order.

    values must be below 2**(64 - bits), where 2**bits exceeds the number of rows."""
    n = len(values)
    comp = values[order] if order is not None else values.copy()
    comp <<= np.uint64(bits)
    comp |= np.arange(n, dtype=np.uint64)
    comp.sort()
    positions = (comp & np.uint64((1 << bits) - 1)).view(np.int64).astype(np.intp, copy=False)
    comp >>= np.uint64(bits)
    return (positions if order is None else order[positions]), comp


def id_order(ids: npt.NDArray[np.bytes_] | npt.NDArray[np.str_]) -> Index:
    """The rows in ascending applicant-id order (Python's str order: by code point).

    Each id's leading code points are packed, most significant first, into an integer with as
    many whole characters as fit beside the row position (six ASCII characters at 1 M rows),
    and sorted. Only rows whose leading characters tie are sorted again by the rest.
    """
    n = len(ids)
    if n < 2:
        return np.arange(n, dtype=np.intp)
    bits = max(1, (n - 1).bit_length())
    unit = np.dtype(np.uint8 if ids.dtype.kind == "S" else np.uint32)
    width = ids.dtype.itemsize // unit.itemsize
    points = np.ascontiguousarray(ids).view(unit).reshape(n, width)
    per_char = max(1, int(points.max()).bit_length())  # padding (0) sorts first, as a shorter str
    per_chunk = max(1, (64 - bits) // per_char)

    def chunk(rows: Index | None, start: int) -> npt.NDArray[np.uint64]:
        value = np.zeros(n if rows is None else len(rows), dtype=np.uint64)
        for j in range(start, min(start + per_chunk, width)):
            value <<= np.uint64(per_char)
            value |= points[:, j] if rows is None else points[rows, j]
        return value

    head = chunk(None, 0)
    order, listed = _sorted_by(head, None, bits)
    if per_chunk >= width:
        return order
    same = listed[1:] == listed[:-1]
    tied = np.zeros(n, dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    if not tied.any():
        return order
    # The tied runs sit together in `order`: sort their rows by the rest, then by the head again.
    rows = order[tied]
    again: Index | None = None
    for start in reversed(range(per_chunk, width, per_chunk)):
        again = _sorted_by(chunk(rows, start), again, bits)[0]
    again = _sorted_by(head[rows], again, bits)[0]
    order[tied] = rows[again]
    return order


def passes_thresholds(
    columns: SkdColumns, total: IntArray, rules: SkdRules
) -> npt.NDArray[np.bool_]:
    """Whether each row meets every minimum of its category (domain.skd.passes_threshold)."""
    n = len(columns)
    passed = np.ones(n, dtype=bool)
    if not n:
        return passed
    present = [CATEGORIES[i] for i in np.flatnonzero(np.bincount(columns.category))]
    values = {"twk": columns.twk, "tiu": columns.tiu, "tkp": columns.tkp, "total": total}
    for part, value in values.items():
        minima = [getattr(rules.thresholds[c], part) for c in present]
        if all(m is None for m in minima):
            continue
        if len(present) == 1:  # a formasi of one category: one comparison with a number
            passed &= value >= minima[0]
            continue
        floor = np.iinfo(np.int64).min  # no minimum
        table = np.array(
            [floor if (m := getattr(rules.thresholds[c], part)) is None else m for c in CATEGORIES],
            dtype=np.int64,
        )
        passed &= value >= table[columns.category]
    return passed


def rank_skd_columns(columns: SkdColumns, quota: int, rules: SkdRules) -> ColumnarSkdRanking:
    """Rank a formasi's SKD results given as columns: exactly rank_skd's lines and cut."""
    n = len(columns)
    twk, tiu, tkp = columns.twk, columns.tiu, columns.tkp
    total = twk + tiu + tkp
    passed = passes_thresholds(columns, total, rules)
    # The key packed in mixed radix: higher (total, TKP, TIU, TWK) gives a higher number.
    radix = [int(c.max()) + 1 if n else 1 for c in (tkp, tiu, twk)]
    packed = ((total * radix[0] + tkp) * radix[1] + tiu) * radix[2] + twk
    span = (int(total.max()) + 1 if n else 1) * radix[0] * radix[1] * radix[2]
    # Ascending sort key: passers first, the highest key first; then those below the threshold.
    key = np.where(passed, span - 1 - packed, 2 * span - 1 - packed).astype(np.uint64)
    by_id = id_order(columns.ids)
    bits = max(1, (n - 1).bit_length())
    if (2 * span).bit_length() + bits <= KEY_AND_POSITION_BITS:
        order, listed_key = _sorted_by(key, by_id, bits)
    else:  # scores near the 1023 limit: too wide to share a word with the position
        order = by_id[np.argsort(key[by_id], kind="stable")]
        listed_key = key[order]
    passers = int(np.count_nonzero(passed))
    position = np.arange(1, n + 1, dtype=np.int64)
    rank = np.zeros(n, dtype=np.int64)
    if passers:
        k = listed_key[:passers]
        new = np.empty(passers, dtype=bool)
        new[0] = True
        np.not_equal(k[1:], k[:-1], out=new[1:])
        rank[:passers] = np.maximum.accumulate(np.where(new, position[:passers], 0))
    code = np.full(n, TL, dtype=np.uint8)
    cut = skd_cut_size(quota, rules)
    cut_key: SkdKey | None = None
    if passers:
        code[:passers] = P
        if cut > 0:
            at = order[min(cut, passers) - 1]
            code[:passers][listed_key[:passers] <= key[at]] = PL
            cut_key = (int(total[at]), int(tkp[at]), int(tiu[at]), int(twk[at]))
    return ColumnarSkdRanking(
        order=order,
        rank=rank,
        code=code,
        total=total[order],
        passers=passers,
        cut_key=cut_key,
    )


@dataclass(frozen=True)
class FinalColumns:
    """A formasi's final entries as columns (domain.ranking.FinalEntry's fields, one row each).

    `final` is each row's final score as the dense rank of its exact value among the rows (0 the
    lowest), so no float ever decides a seat: `final_columns` makes it from the Fractions. `gpa`
    is a float column (float order is the order of Fraction(str(gpa)) that rank_final uses) and
    `birth` the birth dates as days (datetime64[D] as int64).
    """

    ids: npt.NDArray[np.bytes_] | npt.NDArray[np.str_]
    final: IntArray
    total: IntArray
    tkp: IntArray
    tiu: IntArray
    twk: IntArray
    gpa: npt.NDArray[np.float64]
    birth: IntArray

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name in ("final", "total", "tkp", "tiu", "twk", "gpa", "birth"):
            column = getattr(self, name)
            if column.shape != (n,):
                raise ValueError(f"{name}: shape {column.shape}, expected ({n},) like ids")
        if n and bool(np.isnan(self.gpa).any()):
            raise ValueError("gpa: NaN is not a grade point average")

    def __len__(self) -> int:
        return len(self.ids)


def final_columns(entries: Sequence[FinalEntry]) -> FinalColumns:
    """Columns of final entries (the SKB completers of a formasi: at most a few times its quota)."""
    scores = sorted({e.final_score for e in entries})
    dense = {s: i for i, s in enumerate(scores)}
    if any("\x00" in e.applicant_id for e in entries):
        raise ValueError("ids: an applicant id contains NUL")
    return FinalColumns(
        ids=_id_column([e.applicant_id for e in entries]),
        final=np.array([dense[e.final_score] for e in entries], dtype=np.int64),
        total=np.array([e.skd.total for e in entries], dtype=np.int64),
        tkp=np.array([e.skd.tkp for e in entries], dtype=np.int64),
        tiu=np.array([e.skd.tiu for e in entries], dtype=np.int64),
        twk=np.array([e.skd.twk for e in entries], dtype=np.int64),
        gpa=np.array([e.gpa for e in entries], dtype=np.float64),
        birth=np.array([e.birth_date for e in entries], dtype="datetime64[D]").astype(np.int64),
    )


@dataclass(frozen=True)
class ColumnarFinalRanking:
    """The final ranking as row numbers in rank order; the first `seats` are the winners."""

    order: Index
    seats: int

    def result(self, ids: npt.NDArray[np.bytes_] | npt.NDArray[np.str_]) -> FinalRanking:
        """The same value rank_final returns."""
        listed = ids[self.order].tolist()
        if ids.dtype.kind == "S":
            listed = [i.decode("ascii") for i in listed]
        return FinalRanking(winners=listed[: self.seats], others=listed[self.seats :])


def _descending(values: IntArray) -> npt.NDArray[np.uint64]:
    """Non-negative integers whose ascending order is the descending order of `values`."""
    if not len(values):
        return np.zeros(0, dtype=np.uint64)
    return (int(values.max()) - values).astype(np.uint64)


def rank_final_columns(columns: FinalColumns, quota: int) -> ColumnarFinalRanking:
    """rank_final over columns: final score, SKD total, TKP, TIU, TWK, GPA (higher first), the
    older applicant first, then the applicant id; seats by rank within the quota."""
    n = len(columns)
    bits = max(1, (n - 1).bit_length())
    _, gpa_rank = np.unique(columns.gpa, return_inverse=True)
    radix = [int(c.max()) + 1 if n else 1 for c in (columns.tkp, columns.tiu, columns.twk)]
    skd = ((columns.total * radix[0] + columns.tkp) * radix[1] + columns.tiu) * radix[
        2
    ] + columns.twk
    # Least significant first; each pass is stable, so the earlier passes break its ties.
    keys = [
        (columns.birth - (int(columns.birth.min()) if n else 0)).astype(np.uint64),
        _descending(gpa_rank.astype(np.int64).reshape(-1)),
        _descending(skd),
        _descending(columns.final),
    ]
    order = id_order(columns.ids)
    for key in keys:
        if n and int(key.max()).bit_length() + bits <= KEY_AND_POSITION_BITS:
            order = _sorted_by(key, order, bits)[0]
        else:
            order = order[np.argsort(key[order], kind="stable")]
    return ColumnarFinalRanking(order=order, seats=len(range(n)[:quota]))  # as [:quota] cuts
