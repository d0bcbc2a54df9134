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
