"""The page store (domain/pages.py): write and read sealed pages, and rank from them.

The rankings of a large formasi run here, as activities whose small results the formasi records:
the pages of answers are read back (each checked against the digest the formasi's history holds),
ranked with the same domain code the formasi used to run itself, and the ranking is kept as pages
again. The workflow holds references only, so neither its payloads nor its memory grow with the
quota.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
from temporalio import activity

from domain.messages import CloseReply, fraction_text
from domain.optimalisasi import (
    OptimalisasiCandidate,
    allocate,
    impossible_entry,
    seats_by_formasi,
)
from domain.pages import (
    CANDIDATES,
    INDEX,
    LINES,
    MAX_PAGE_ITEMS,
    OFFERED,
    OFFERS,
    REPLIES,
    AllocationRequest,
    AllocationResult,
    Candidate,
    FinalPages,
    FinalPagesRequest,
    LeafRead,
    PageFold,
    PageKeep,
    PageRead,
    PageRef,
    SkdCut,
    SkdPagesRequest,
    chunks,
    fold_refs,
    ids_of,
    lines_of,
    page_items,
    page_ref,
)
from domain.protocol import (
    ALLOCATE_PAGES,
    FOLD_PAGES,
    KEEP_PAGE,
    RANK_FINAL_PAGES,
    RANK_SKD_PAGES,
    READ_LEAF,
    READ_PAGE,
)
from domain.ranking import FinalEntry, SkdCutTracker, rank_final
from runtime.logs import get_logger
from runtime.sealed import ColumnCipher

log = get_logger("pages")


def _row(digest: str) -> str:
    return f"pages/{digest}"


class PageStore:
    """Pages in PostgreSQL, sealed with the payload keys; written once, read by digest."""

    def __init__(self, pool: asyncpg.Pool, cipher: ColumnCipher) -> None:
        self.pool = pool
        self.cipher = cipher

    async def put(self, kind: str, owner: str, items: Sequence[Any]) -> PageRef:
        """Keep a page of `items`; the same page twice is kept once."""
        ref, body = page_ref(kind, items)
        await self.keep(kind, owner, ref, body)
        return ref

    async def keep(self, kind: str, owner: str, ref: PageRef, body: bytes) -> None:
        """Keep a page made by `page_ref` (its digest is the row's key)."""
        await self.pool.execute(
            "INSERT INTO pages (digest, kind, owner, items, body) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (digest) DO NOTHING",
            ref.digest,
            kind,
            owner[:300],
            ref.count,
            self.cipher.seal(body, _row(ref.digest)),
        )

    async def replace(self, kind: str, owner: str, ref: PageRef, body: bytes) -> None:
        """Keep a page made again from the histories (auditing/pagestore.py), over a row of that
        digest whose body was lost or altered: the caller has checked `body` against `ref`."""
        await self.pool.execute(
            "INSERT INTO pages (digest, kind, owner, items, body) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (digest) DO UPDATE SET kind = EXCLUDED.kind, owner = EXCLUDED.owner, "
            "items = EXCLUDED.items, body = EXCLUDED.body",
            ref.digest,
            kind,
            owner[:300],
            ref.count,
            self.cipher.seal(body, _row(ref.digest)),
        )

    async def put_all(
        self, kind: str, owner: str, items: Sequence[Any], size: int
    ) -> list[PageRef]:
        return [await self.put(kind, owner, chunk) for chunk in chunks(items, size)]

    async def fetch(self, ref: PageRef) -> tuple[str, bytes]:
        """A page's kind and body as kept (not yet checked); LookupError when the store lacks it."""
        row = await self.pool.fetchrow("SELECT kind, body FROM pages WHERE digest = $1", ref.digest)
        if row is None:
            raise LookupError(f"page {ref.digest} is not in the page store")
        return row["kind"], self.cipher.open(bytes(row["body"]), _row(ref.digest))

    async def kinds(self, digests: Sequence[str]) -> dict[str, str]:
        """The kind of each of `digests` the store holds (not checked: a kind read here only
        decides how a page is then read, and that read checks it against the digest)."""
        rows = await self.pool.fetch(
            "SELECT digest, kind FROM pages WHERE digest = ANY($1::text[])", list(digests)
        )
        return {r["digest"]: r["kind"] for r in rows}

    async def leaf_refs(self, kind: str, pages: Sequence[PageRef]) -> list[PageRef]:
        """The references of the `kind` pages under `pages`, in order: each index page is read
        (and checked) and replaced by its children; the `kind` pages themselves are not read."""
        refs = list(pages)
        while True:
            kinds = await self.kinds([r.digest for r in refs])
            absent = [r.digest for r in refs if r.digest not in kinds]
            if absent:
                raise LookupError(f"page {absent[0]} is not in the page store")
            if all(kinds[r.digest] != INDEX for r in refs):
                break
            expanded: list[PageRef] = []
            for ref in refs:
                if kinds[ref.digest] == INDEX:
                    expanded.extend(PageRef.model_validate(i) for i in await self.get(INDEX, ref))
                else:
                    expanded.append(ref)
            refs = expanded
        wrong = next((r for r in refs if kinds[r.digest] != kind), None)
        if wrong is not None:
            raise ValueError(f"page {wrong.digest} is a {kinds[wrong.digest]} page, not {kind}")
        return refs

    async def fold(
        self, kind: str, owner: str, refs: list[PageRef], fanout: int | None
    ) -> list[PageRef]:
        """`refs` (pages of `kind` just kept) folded at `fanout` (domain.pages.fold_refs), the
        index pages kept; as they are when `fanout` is None."""
        if fanout is None:
            return refs
        top, indexes = fold_refs(refs, fanout)
        for ref, body in indexes:
            await self.keep(INDEX, owner, ref, body)
        return top

    async def get(self, kind: str, ref: PageRef) -> list[Any]:
        """The items of a page, checked against its digest; LookupError when the store lacks it."""
        stored, body = await self.fetch(ref)
        if stored != kind:
            raise ValueError(f"page {ref.digest} is a {stored} page, not {kind}")
        return page_items(kind, ref, body)

    async def leaves(self, kind: str, pages: Sequence[PageRef]) -> AsyncIterator[list[Any]]:
        """The items of every `kind` page under `pages` (`leaf_refs`), in order, each checked
        against its digest. An index's kind is proved by its digest (the digest is over the
        kind), so a page cannot pass for one."""
        for ref in await self.leaf_refs(kind, pages):
            yield await self.get(kind, ref)
            if activity.in_activity():  # also run outside a worker: audit.py check-pages --rebuild
                activity.heartbeat(ref.digest)

    async def replies(self, pages: Sequence[PageRef]) -> list[CloseReply]:
        """The answers in `pages`, each applicant once (a retried broadcast page answers again
        with the same reply), in the order they were kept."""
        seen: set[str] = set()
        out: list[CloseReply] = []
        async for items in self.leaves(REPLIES, pages):
            for item in items:
                reply = CloseReply.model_validate(item)
                if reply.applicant_id not in seen:
                    seen.add(reply.applicant_id)
                    out.append(reply)
        return out

    # --- activities ---------------------------------------------------------------------------

    @activity.defn(name=READ_PAGE.name)
    async def read_page(self, req: PageRead) -> list[Any]:
        """One page's items, checked against its digest."""
        return await self.get(req.kind, req.page)

    @activity.defn(name=READ_LEAF.name)
    async def read_leaf(self, req: LeafRead) -> list[Any]:
        """The items of the `offset`th `kind` page under a list of references that may hold index
        pages (a folded ranking), every page on the way checked against its digest."""
        leaves = await self.leaf_refs(req.kind, req.pages)
        if req.offset >= len(leaves):
            raise ValueError(
                f"page {req.offset} asked of {len(leaves)} {req.kind} pages under "
                f"{len(req.pages)} references"
            )
        return await self.get(req.kind, leaves[req.offset])

    @activity.defn(name=FOLD_PAGES.name)
    async def fold_pages(self, req: PageFold) -> PageRef:
        """Keep a list of references as one index page (domain.pages.PageFold); every page it
        names must be in the store already, so an index never points at nothing."""
        held = await self.kinds([ref.digest for ref in req.pages])
        absent = [ref.digest for ref in req.pages if ref.digest not in held]
        if absent:
            raise LookupError(
                f"{req.owner}: cannot fold {len(req.pages)} pages, {len(absent)} are not in the "
                f"page store (first {absent[0]})"
            )
        return await self.put(INDEX, req.owner, req.pages)

    @activity.defn(name=KEEP_PAGE.name)
    async def keep_page(self, req: PageKeep) -> PageRef:
        """Keep the applicant ids a round has offered as one page (kind OFFERED): the only page a
        workflow writes itself, so the only kind this takes."""
        return await self.put(OFFERED, req.owner, req.items)

    @activity.defn(name=RANK_SKD_PAGES.name)
    async def rank_skd_pages(self, req: SkdPagesRequest) -> SkdCut:
        """The SKD cut from the pages of answers to the SKD close (domain.ranking.SkdCutTracker)."""
        replies = await self.replies(req.pages)
        tracker = SkdCutTracker(capacity=req.capacity)
        for reply in replies:
            if reply.key is not None:
                tracker.add(reply.applicant_id, tuple(reply.key))
        return SkdCut(cut_key=tracker.cut_key(), passers=tracker.seen, replies=len(replies))

    @activity.defn(name=RANK_FINAL_PAGES.name)
    async def rank_final_pages(self, req: FinalPagesRequest) -> FinalPages:
        """The final ranking of the entries in the pages, corrected by the final sanggah, kept as
        pages of lines (winners, others) and of the others' candidates for optimalisasi."""
        replies = [r for r in await self.replies(req.pages) if r.entry is not None]
        profiles = {r.applicant_id: r.profile for r in replies}
        entries: list[FinalEntry] = []
        before: dict[str, str | None] = dict.fromkeys(req.corrections)
        for r in replies:
            assert r.entry is not None
            if r.applicant_id in req.corrections:
                before[r.applicant_id] = fraction_text(r.entry.final_score)
                fixed = req.corrections[r.applicant_id]
                if fixed is not None:
                    entries.append(fixed)
            else:
                entries.append(r.entry)
        ranking = rank_final(entries, req.quota)
        by_id = {e.applicant_id: e for e in entries}
        scores = {a: fraction_text(e.final_score) for a, e in by_id.items()}
        size, owner, fanout = req.page_items, req.owner, req.fold_at
        winners = await self.put_all(LINES, owner, lines_of(ranking.winners, scores), size)
        others = await self.put_all(LINES, owner, lines_of(ranking.others, scores), size)
        candidates = await self.put_all(
            CANDIDATES,
            owner,
            [Candidate(entry=by_id[a], profile=profiles.get(a)) for a in ranking.others],
            size,
        )
        changed = False
        if req.previous_winners:
            winners_before: list[str] = []
            async for items in self.leaves(LINES, req.previous_winners):
                winners_before.extend(ids_of(items))
            changed = winners_before != ranking.winners
        return FinalPages(
            entries=len(entries),
            winners=await self.fold(LINES, owner, winners, fanout),
            others=await self.fold(LINES, owner, others, fanout),
            candidates=await self.fold(CANDIDATES, owner, candidates, fanout),
            fold_at=fanout,
            n_winners=len(ranking.winners),
            n_others=len(ranking.others),
            changed=changed,
            scores_before=before,
        )

    @activity.defn(name=ALLOCATE_PAGES.name)
    async def allocate_pages(self, req: AllocationRequest) -> AllocationResult:
        """An optimalisasi allocation (domain.optimalisasi.allocate) over the candidates' pages of
        every result, each page checked against its digest; a candidate who is another formasi's,
        impossible, or also a winner is left out, as the round left them out when it read the
        pages itself."""
        by_code = {f.code: f for f in req.formasi}
        candidates: list[OptimalisasiCandidate] = []
        ignored = 0
        for result in req.results:
            formasi = by_code.get(result.formasi_code)
            if formasi is None:
                raise ValueError(
                    f"round {req.round_id}: formasi {result.formasi_code} is not the round's"
                )
            winners: set[str] = set()
            async for items in self.leaves(LINES, result.winner_pages):
                winners.update(ids_of(items))
            async for items in self.leaves(CANDIDATES, result.candidate_pages):
                for item in items:
                    candidate = Candidate.model_validate(item)
                    entry = candidate.entry
                    if impossible_entry(entry, formasi.code) or entry.applicant_id in winners:
                        ignored += 1
                        continue
                    candidates.append(
                        OptimalisasiCandidate(
                            entry=entry,
                            jabatan=formasi.jabatan,
                            education_level=formasi.education_level,
                            profile=candidate.profile if req.pool else None,
                        )
                    )
        if ignored:
            log.warning(
                "optimalisasi candidates ignored: another formasi's, impossible, or also a winner",
                round_id=req.round_id,
                ignored=ignored,
            )
        # Everyone holding or given an offer, and (patch optimalisasi-continues) everyone offered.
        placed = set(req.placed) | set(req.offered)
        async for items in self.leaves(OFFERED, req.offered_pages):
            placed.update(items)
        offers = allocate(
            req.vacancies,
            [c for c in candidates if c.entry.applicant_id not in placed],
            req.declined,
            req.judged_on,
            fill_most=req.fill_most,
        )
        beyond: dict[str, int] = {}
        if req.limit is not None and len(offers) > req.limit:
            beyond = seats_by_formasi(o.to_formasi for o in offers[req.limit :])
            offers = offers[: req.limit]
        if req.offers_in_pages and len(offers) > MAX_PAGE_ITEMS:
            pages = await self.put_all(OFFERS, req.round_id, offers, MAX_PAGE_ITEMS)
            return AllocationResult(
                offers=[],
                offer_pages=pages,
                not_offered=beyond,
                candidates=len(candidates),
                ignored=ignored,
            )
        return AllocationResult(
            offers=offers, not_offered=beyond, candidates=len(candidates), ignored=ignored
        )
