"""Pages: how a list that grows with the formasi travels without a payload that grows with it.

A formasi hears from every applicant and ranks up to 3 x quota of them; at a quota of 10,000 the
final entries alone are megabytes, over Temporal's 2 MB payload limit. So nothing long travels
whole (issue 17): the answers to a close, the ranked lines and the optimalisasi candidates are
kept as pages in the page store (PostgreSQL, `pages`, sealed under the payload keys), and what
travels in signals, activity inputs and results, continue-as-new inputs and decisions is a
`PageRef`: the page's SHA-256 and how many items it holds.

A page's digest is over its canonical body (the items as compact JSON, `page_body`), so whoever
holds the items can check them against the digest a history recorded, and the auditor's recompute
can check a recorded ranking without the store: it builds the same pages from its own ranking and
compares digests. The store is a cache of what the histories already hold (every reply is the
result of a journey's `close_stage` update); it is never the only copy of a decision's input.

Pure: no I/O here (the store is activities/pages.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from domain.config import Formasi
from domain.optimalisasi import CandidateProfile, Offer, Vacancy
from domain.ranking import FinalEntry
from domain.skd import SkdKey

# What a page holds: the answers to a close; a ranking's lines ([applicant id, final score]); the
# optimalisasi candidates ({entry, profile}) of those who lost on rank; references to other pages
# (an index: a list of references folded into one, see `PageFold`); the applicant ids a round has
# offered a seat in optimalisasi, in the order offered, and the offers of one allocation past
# MAX_PAGE_ITEMS (patch optimalisasi-continues).
REPLIES = "close-replies"
LINES = "ranking-lines"
CANDIDATES = "candidates"
INDEX = "page-index"
OFFERED = "offered-applicants"
OFFERS = "allocated-offers"
KINDS = (REPLIES, LINES, CANDIDATES, INDEX, OFFERED, OFFERS)

# At most this many items per page: a page of candidates (about 235 bytes each, encoded) is then
# about 120 KB, half the 256 KB a payload should stay under; a smaller broadcast page size sets the size.
MAX_PAGE_ITEMS = 500


class PageRef(BaseModel, frozen=True):
    """A page in the store: the SHA-256 of its body (hex) and how many items it holds."""

    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    count: int = Field(ge=0)


class Candidate(BaseModel, frozen=True):
    """One optimalisasi candidate: the final entry and what the pool needs of the applicant."""

    entry: FinalEntry
    profile: CandidateProfile | None = None


def page_body(items: Sequence[Any]) -> bytes:
    """The canonical body of a page: its items (models dumped as JSON) as compact JSON."""
    plain = [i.model_dump(mode="json") if isinstance(i, BaseModel) else i for i in items]
    return json.dumps(plain, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def page_digest(kind: str, body: bytes) -> str:
    """The page's digest: its kind and body, so that two kinds never share one."""
    if kind not in KINDS:
        raise ValueError(f"page kind {kind!r} is not one of {', '.join(KINDS)}")
    return hashlib.sha256(b"casn-page\n" + kind.encode() + b"\n" + body).hexdigest()


def page_ref(kind: str, items: Sequence[Any]) -> tuple[PageRef, bytes]:
    """The reference and body of a page of `items`."""
    body = page_body(items)
    return PageRef(digest=page_digest(kind, body), count=len(items)), body


def page_items(kind: str, ref: PageRef, body: bytes) -> list[Any]:
    """The items of a page read back, checked against its reference; ValueError when they differ."""
    if page_digest(kind, body) != ref.digest:
        raise ValueError(f"page {ref.digest[:12]}…: its body does not match its digest")
    items = json.loads(body)
    if not isinstance(items, list) or len(items) != ref.count:
        raise ValueError(f"page {ref.digest[:12]}…: holds {len(items)} items, not {ref.count}")
    return items


def page_size(size: int) -> int:
    """Items a page holds when `size` are asked: at least 1, at most MAX_PAGE_ITEMS."""
    return max(1, min(size, MAX_PAGE_ITEMS))


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """`items` in pages of at most `size` (at least one page, empty when there is nothing)."""
    size = page_size(size)
    if not items:
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fold_refs(
    refs: Sequence[PageRef], fanout: int
) -> tuple[list[PageRef], list[tuple[PageRef, bytes]]]:
    """A list of references folded into a tree of index pages, `fanout` children each, level by
    level until at most `fanout` remain: the references that remain and the bodies of the index
    pages (kind INDEX) to keep. A list of `fanout` or fewer stays as it is. Pure, so the ranking
    activity and the auditor's recompute build the same tree from the same pages."""
    if fanout < 2:
        raise ValueError(f"fanout {fanout}: an index page needs at least 2 children")
    top = list(refs)
    indexes: list[tuple[PageRef, bytes]] = []
    while len(top) > fanout:
        level = [page_ref(INDEX, top[i : i + fanout]) for i in range(0, len(top), fanout)]
        indexes.extend(level)
        top = [ref for ref, _ in level]
    return top, indexes


def leaf_pages(items: int, page_items: int) -> int:
    """How many pages `chunks` makes of `items` items at `page_items` a page."""
    return -(-items // page_size(page_items))


def lines_of(order: Sequence[str], scores: dict[str, str | None]) -> list[list[str | None]]:
    """A ranking's lines, best first: [applicant id, final score as the decisions write it]."""
    return [[a, scores.get(a)] for a in order]


def line_pages(
    order: Sequence[str], scores: dict[str, str | None], size: int, fanout: int | None = None
) -> list[PageRef]:
    """The references of a ranking's line pages: what a decision records of a long list, and what
    the recompute builds again from its own ranking to compare (folded at `fanout` when the
    ranking was, `fold_refs`)."""
    refs = [page_ref(LINES, chunk)[0] for chunk in chunks(lines_of(order, scores), size)]
    return refs if fanout is None else fold_refs(refs, fanout)[0]


# --- what the activities that work on pages take and give ---------------------------------------


class SkdPagesRequest(BaseModel, frozen=True):
    """Find the SKD cut from the pages of answers to the SKD close."""

    owner: str  # the formasi's workflow id: whose pages, for the store's log
    capacity: int = Field(ge=0)
    pages: list[PageRef]


class SkdCut(BaseModel, frozen=True):
    """The cut of the SKD ranking: its key (None when fewer passed than the cut holds)."""

    cut_key: SkdKey | None
    passers: int  # distinct applicants who passed their threshold
    replies: int  # distinct applicants in the pages


class FinalPagesRequest(BaseModel, frozen=True):
    """Rank the final entries in the pages, with the corrections of the final sanggah."""

    owner: str
    quota: int = Field(ge=1)
    pages: list[PageRef]
    page_items: int = Field(ge=1, le=MAX_PAGE_ITEMS)
    # applicant id -> its corrected entry (None: the correction failed a gate and it no longer ranks)
    corrections: dict[str, FinalEntry | None] = {}
    previous_winners: list[PageRef] = []  # the ranking before: `changed` compares with it
    # Patch folded-page-references: each list of pages the ranking makes is folded into index
    # pages of this many children until at most this many references remain (`fold_refs`).
    fold_at: int | None = Field(default=None, ge=2, le=MAX_PAGE_ITEMS)


class FinalPages(BaseModel, frozen=True):
    """A final ranking kept as pages: lines of the winners and of the others, best first, and
    the others' candidates for optimalisasi (in the same order)."""

    entries: int
    winners: list[PageRef]
    others: list[PageRef]
    candidates: list[PageRef]
    n_winners: int
    n_others: int
    changed: bool = False  # the winners differ from `previous_winners`
    fold_at: int | None = None  # the lists are folded at this many (FinalPagesRequest.fold_at)
    # each corrected applicant's final score before its correction (None: not in the pages)
    scores_before: dict[str, str | None] = {}


class ResultPages(BaseModel, frozen=True):
    """A formasi's result as pages, as the round holds it: its winners' and candidates' pages."""

    formasi_code: str
    winner_pages: list[PageRef]
    candidate_pages: list[PageRef]


class AllocationRequest(BaseModel, frozen=True):
    """One optimalisasi allocation over results kept as pages (patch allocation-over-pages): the
    round's state in, offers out; the candidates never enter the round's history."""

    round_id: str
    formasi: list[Formasi]
    results: list[ResultPages]  # in the order the round took them
    vacancies: list[Vacancy]
    placed: list[str]  # holding or given an offer: not offered again
    declined: list[str]
    judged_on: date | None = None
    pool: bool = True  # patch optimalisasi-pool: majors and ages judged, profiles used
    # Patch optimalisasi-continues: everyone offered a seat so far, none offered again, whatever
    # the answer: the first in pages of MAX_PAGE_ITEMS (kind OFFERED), the rest listed here; then
    # `placed` and `declined` are empty. So the request stays bounded however many were offered.
    offered_pages: list[PageRef] = []
    offered: list[str] = Field(default=[], max_length=MAX_PAGE_ITEMS)
    # The caller reads offers from pages: more than MAX_PAGE_ITEMS come back as pages (kind OFFERS),
    # so the result stays bounded however many seats one allocation fills.
    offers_in_pages: bool = False
    # At most this many offers back, best first; the seats of the rest are counted by formasi in
    # the result's `not_offered` (the round's room within its history budget).
    limit: int | None = Field(default=None, ge=0)
    # Patch optimalisasi-fills-most: allocate(fill_most=True). Left out when false, as before it.
    fill_most: bool = Field(default=False, exclude_if=lambda fill: not fill)


class PageKeep(BaseModel, frozen=True):
    """Keep applicant ids the round has offered as one page of kind OFFERED (patch
    optimalisasi-continues); answers its reference."""

    owner: str = Field(min_length=1, max_length=300)
    items: list[str] = Field(min_length=1, max_length=MAX_PAGE_ITEMS)


class AllocationResult(BaseModel, frozen=True):
    offers: list[Offer]  # empty when they are in `offer_pages`
    offer_pages: list[PageRef] = []  # with `offers_in_pages`, past MAX_PAGE_ITEMS offers, in order
    not_offered: dict[str, int] = {}  # past the request's `limit`: their seats, by formasi
    candidates: int  # taken from the pages
    ignored: int  # another formasi's, impossible, or also a winner (each one warned of)


class PageFold(BaseModel, frozen=True):
    """Keep `pages` as one index page (kind INDEX) and answer its reference.

    The index may list other indexes (a list folded before, then grown again), so a list of any
    length is carried as at most `FOLD_PAGES_AT` references. The index's digest is over its
    children's digests, which are over their bodies: one digest commits to every page under it,
    in order, as a Merkle tree does. Whoever reads a list of references expands the indexes in
    it depth-first (activities/pages.py, `PageStore.leaves`) and gets the pages in the order they
    were kept."""

    owner: str
    pages: list[PageRef] = Field(min_length=1, max_length=MAX_PAGE_ITEMS)


class PageRead(BaseModel, frozen=True):
    """Read one page back (checked against its digest)."""

    kind: str
    page: PageRef


class LeafRead(BaseModel, frozen=True):
    """Read the `offset`th page of `kind` under references that may hold index pages."""

    kind: str
    pages: list[PageRef] = Field(max_length=MAX_PAGE_ITEMS)
    offset: int = Field(ge=0)


def ids_of(items: list[Any]) -> list[str]:
    """The applicant ids of a page of ranking lines."""
    return [str(line[0]) for line in items]
