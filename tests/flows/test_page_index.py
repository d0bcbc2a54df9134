"""Index pages (domain.pages.PageFold) in the page store on the session's real PostgreSQL: a list
of references folded, folded again and read back in the order its pages were kept."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio
from temporalio.testing import ActivityEnvironment

from activities.pages import PageStore
from domain.messages import CloseReply
from domain.pages import (
    INDEX,
    LINES,
    REPLIES,
    LeafRead,
    PageFold,
    PageRef,
    SkdPagesRequest,
    chunks,
    fold_refs,
    ids_of,
    leaf_pages,
    line_pages,
    lines_of,
)
from domain.ranking import SkdCutTracker
from runtime.db import open_pool
from runtime.sealed import ColumnCipher

# The store's methods heartbeat: they run as activities would, in the SDK's activity environment.
ENV = ActivityEnvironment()

pytestmark = pytest.mark.asyncio(loop_scope="session")

CIPHER = ColumnCipher(b"p" * 32)


def reply(serial: int) -> CloseReply:
    # Keys that are not in serial order: the cut depends on which replies the store hands back.
    total = 300 + (serial * 37) % 101
    return CloseReply(
        applicant_id=f"A{serial:04d}", phase="skd_closed", key=(total, 150, 90, total - 240)
    )


@pytest_asyncio.fixture(loop_scope="session")
async def kit(stack):
    """A pool, a page store on it, and an owner of this test's own, whose pages go at the end."""
    pool = await open_pool(stack.database_url, max_size=4)
    owner = f"formasi-{uuid.uuid4().hex[:8]}"
    try:
        yield pool, PageStore(pool, CIPHER), owner
    finally:
        await pool.execute("DELETE FROM pages WHERE owner = $1", owner)
        await pool.close()


async def leaves(store: PageStore, kind: str, pages: list[PageRef]) -> list[list]:
    async def read() -> list[list]:
        return [items async for items in store.leaves(kind, pages)]

    return await ENV.run(read)


async def keep_folded(
    store: PageStore, owner: str, pages: list[list[CloseReply]], fold_at: int
) -> list[PageRef]:
    """What FormasiSelection._keep carries: each page's reference appended, the list folded into
    one index page whenever it reaches `fold_at`."""
    carried: list[PageRef] = []
    for items in pages:
        carried.append(await store.put(REPLIES, owner, items))
        if len(carried) >= fold_at:
            carried = [await ENV.run(store.fold_pages, PageFold(owner=owner, pages=carried))]
    return carried


async def test_a_folded_list_reads_back_in_order_and_ranks_as_the_flat_one(kit):
    pool, store, owner = kit
    pages = [[reply(p * 3 + i) for i in range(3)] for p in range(23)]
    flat = [await store.put(REPLIES, owner, items) for items in pages]
    carried = await keep_folded(store, owner, pages, fold_at=4)
    # 23 pages folded at 4: an index of indexes, never more than 3 references carried.
    assert len(carried) < 4
    kinds = await pool.fetch(
        "SELECT kind, count(*) AS n FROM pages WHERE owner = $1 GROUP BY kind", owner
    )
    assert {r["kind"]: r["n"] for r in kinds} == {REPLIES: 23, INDEX: 7}

    read = [i["applicant_id"] for items in await leaves(store, REPLIES, carried) for i in items]
    assert read == [r.applicant_id for items in pages for r in items]

    tracker = SkdCutTracker(capacity=10)
    for items in pages:
        for r in items:
            tracker.add(r.applicant_id, tuple(r.key))
    folded_cut = await ENV.run(
        store.rank_skd_pages, SkdPagesRequest(owner=owner, capacity=10, pages=carried)
    )
    flat_cut = await ENV.run(
        store.rank_skd_pages, SkdPagesRequest(owner=owner, capacity=10, pages=flat)
    )
    assert folded_cut == flat_cut
    assert folded_cut.cut_key == tracker.cut_key() and folded_cut.replies == 69


async def test_an_index_never_passes_for_another_kind_nor_points_at_nothing(kit):
    pool, store, owner = kit
    a = await store.put(REPLIES, owner, [reply(1)])
    index = await ENV.run(store.fold_pages, PageFold(owner=owner, pages=[a]))
    # A reader that wants lines is not handed replies through an index.
    with pytest.raises(ValueError, match="close-replies page, not ranking-lines"):
        await leaves(store, LINES, [index])
    # read_page (what a workflow reads) takes one page of the kind it asks, never an index.
    with pytest.raises(ValueError, match="page-index page, not close-replies"):
        await store.get(REPLIES, index)

    absent = PageRef(digest="0" * 64, count=1)
    before = await pool.fetchval("SELECT count(*) FROM pages WHERE owner = $1", owner)
    with pytest.raises(LookupError, match=f"1 are not in the page store \\(first {'0' * 64}"):
        await ENV.run(store.fold_pages, PageFold(owner=owner, pages=[a, absent]))
    assert await pool.fetchval("SELECT count(*) FROM pages WHERE owner = $1", owner) == before

    # An index whose count lies about its children is refused when read.
    lying = PageRef(digest=index.digest, count=index.count + 1)
    with pytest.raises(ValueError, match="holds 1 items, not 2"):
        await leaves(store, REPLIES, [lying])


async def test_a_ranking_folded_level_by_level_is_read_page_by_page_in_its_order(kit):
    pool, store, owner = kit
    order = [f"A{i:03d}" for i in range(11)]
    scores = {a: f"{90 - i}" for i, a in enumerate(order)}
    lines = lines_of(order, scores)
    flat = await store.put_all(LINES, owner, lines, 2)  # 6 pages of lines
    top = await store.fold(LINES, owner, flat, 2)
    # 6 -> 3 -> 2 references; the recompute's pure fold names the same two.
    assert top == line_pages(order, scores, 2, fanout=2)
    assert len(top) == 2 and len(fold_refs(flat, 2)[1]) == 5
    assert await ENV.run(store.leaf_refs, LINES, top) == flat
    for offset, ref in enumerate(flat):
        leaf = await ENV.run(store.read_leaf, LeafRead(kind=LINES, pages=top, offset=offset))
        assert leaf == lines[2 * offset : 2 * offset + 2], offset
        assert ids_of(leaf) == ids_of(await store.get(LINES, ref))
    with pytest.raises(ValueError, match="page 6 asked of 6 ranking-lines pages"):
        await ENV.run(store.read_leaf, LeafRead(kind=LINES, pages=top, offset=6))
    # A list of 2 or fewer stays as it is.
    assert await store.fold(LINES, owner, flat[:2], 2) == flat[:2]
    assert await store.fold(LINES, owner, flat, None) == flat


async def test_fold_refs_needs_two_children_and_counts_leaf_pages_as_chunks_does():
    refs = [PageRef(digest=f"{i:064x}", count=1) for i in range(3)]
    with pytest.raises(ValueError, match="fanout 1"):
        fold_refs(refs, 1)
    assert [leaf_pages(n, 500) for n in (0, 1, 500, 501, 10_000)] == [0, 1, 1, 2, 20]
    assert leaf_pages(7, 10_000) == 1  # at most MAX_PAGE_ITEMS a page, as chunks makes them
    assert leaf_pages(1001, 10_000) == len(list(chunks(list(range(1001)), 10_000)))


async def test_applicants_offered_are_kept_as_pages_and_never_offered_again(kit):
    """The round keeps everyone it has offered a seat as pages of kind OFFERED (patch
    optimalisasi-continues) and lists the rest; the allocation over pages offers none of them
    again, in pages or listed, and a page of offered ids cannot pass for a page of another kind."""
    from datetime import date
    from fractions import Fraction

    from domain.config import Formasi
    from domain.optimalisasi import Vacancy
    from domain.pages import (
        CANDIDATES,
        MAX_PAGE_ITEMS,
        OFFERED,
        OFFERS,
        AllocationRequest,
        Candidate,
        PageKeep,
        ResultPages,
    )
    from domain.ranking import FinalEntry
    from domain.skd import SkdScores

    pool, store, owner = kit
    formasi = Formasi(
        code="TARGET",
        jabatan="Pranata Komputer Ahli Pertama",
        unit="Dinas",
        education_level="S1",
        majors=["S-1 Teknik Informatika"],
        quota=1_200,
    )
    # 1,100 who lost on rank in SOURCE, best first (A0000 is the best).
    entries = [
        FinalEntry(
            applicant_id=f"A{n:04d}",
            formasi_code="SOURCE",
            final_score=Fraction(10_000 - n, 100),
            skd=SkdScores(twk=100, tiu=100, tkp=150),
            gpa=3.5,
            birth_date=date(1998, 1, 1),
        )
        for n in range(1_100)
    ]
    candidate_pages = [
        await store.put(CANDIDATES, owner, [Candidate(entry=e) for e in chunk])
        for chunk in chunks(entries, MAX_PAGE_ITEMS)
    ]
    # The first 1,050 were offered: two pages of 500 and 50 listed.
    offered = [e.applicant_id for e in entries[:1_050]]
    pages = [
        await ENV.run(store.keep_page, PageKeep(owner=owner, items=offered[i : i + MAX_PAGE_ITEMS]))
        for i in (0, MAX_PAGE_ITEMS)
    ]
    assert [p.count for p in pages] == [MAX_PAGE_ITEMS, MAX_PAGE_ITEMS]
    assert await store.get(OFFERED, pages[1]) == offered[MAX_PAGE_ITEMS : 2 * MAX_PAGE_ITEMS]
    with pytest.raises(ValueError, match="is a offered-applicants page, not ranking-lines"):
        await store.get(LINES, pages[0])

    request = AllocationRequest(
        round_id="offered-pages",
        formasi=[formasi.model_copy(update={"code": "SOURCE"}), formasi],
        results=[
            ResultPages(formasi_code="SOURCE", winner_pages=[], candidate_pages=candidate_pages)
        ],
        vacancies=[
            Vacancy(
                formasi_code="TARGET",
                jabatan=formasi.jabatan,
                education_level=formasi.education_level,
                seats=100,
            )
        ],
        placed=[],
        declined=[],
        pool=False,
        offered_pages=pages,
        offered=offered[2 * MAX_PAGE_ITEMS :],
    )
    allocated = await ENV.run(store.allocate_pages, request)
    assert allocated.candidates == 1_100
    assert [o.applicant_id for o in allocated.offers] == [e.applicant_id for e in entries[1_050:]]
    # Without the pages, those in them would be offered again.
    again = await ENV.run(store.allocate_pages, request.model_copy(update={"offered_pages": []}))
    assert again.offers[0].applicant_id == "A0000"
    # Folded into one index page (patch offered-pages-folded), and that index folded again with
    # a page kept after it: the allocation reads the pages under them, in order.
    index = await ENV.run(store.fold_pages, PageFold(owner=owner, pages=pages[:1]))
    outer = await ENV.run(store.fold_pages, PageFold(owner=owner, pages=[index, pages[1]]))
    folded = await ENV.run(
        store.allocate_pages, request.model_copy(update={"offered_pages": [outer]})
    )
    assert folded.offers == allocated.offers
    assert [r.digest for r in await store.leaf_refs(OFFERED, [outer])] == [p.digest for p in pages]

    # More than MAX_PAGE_ITEMS offers come back as pages of offers when the round reads them so.
    many = request.model_copy(
        update={
            "offered_pages": [],
            "offered": [],
            "vacancies": [request.vacancies[0].model_copy(update={"seats": 700})],
        }
    )
    inline = await ENV.run(store.allocate_pages, many)
    paged = await ENV.run(store.allocate_pages, many.model_copy(update={"offers_in_pages": True}))
    assert len(inline.offers) == 700 and not inline.offer_pages
    assert paged.offers == [] and [p.count for p in paged.offer_pages] == [MAX_PAGE_ITEMS, 200]
    read = [o for ref in paged.offer_pages for o in await store.get(OFFERS, ref)]
    assert read == [o.model_dump(mode="json") for o in inline.offers]
    # With the round's room as the limit: the best 650 back, the other 50 seats counted.
    limited = await ENV.run(
        store.allocate_pages, many.model_copy(update={"offers_in_pages": True, "limit": 650})
    )
    assert [p.count for p in limited.offer_pages] == [MAX_PAGE_ITEMS, 150]
    assert limited.not_offered == {"TARGET": 50} and inline.not_offered == {}
    read = [o for ref in limited.offer_pages for o in await store.get(OFFERS, ref)]
    assert read == [o.model_dump(mode="json") for o in inline.offers[:650]]
