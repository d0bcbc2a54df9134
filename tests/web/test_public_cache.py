"""A public announcement is made once from its signed body and served again (gateway/public_cache.py,
gateway/public_answers.py): anyone may ask for it, as often as they like, on the day millions do,
and a body of 100,000 rows takes seconds to parse and render. What changes after publication (a
later DIS or APS, a revocation) is read on every request and still shows; a cache in front of the
gateway asks again with the ETag and gets a 304.
"""

from __future__ import annotations

import asyncio
import re
import uuid

import asyncpg
import httpx
import pytest

from client.announcements import AnnouncementStage
from client.api import RecruitmentApi
from client.publication import (
    PublishedRow,
    document_text,
    load_publication,
)
from gateway.app import create_app
from gateway.deps import ApiKeys, Gateway, RoundDirectory
from gateway.public_cache import AnswerCache
from tests.web.publications import listing, store

LISTED = ["AAAAAAAAAAAAAAA2", "AAAAAAAAAAAAAAA3", "AAAAAAAAAAAAAAA4"]
KINDS = ("", ".json", ".csv")


class _Counted:
    """The gateway's pool, counting the statements that read a publication's body."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.body_reads = 0

    def __getattr__(self, name):
        method = getattr(self._pool, name)
        if name not in ("fetch", "fetchrow", "fetchval"):
            return method

        async def counted(sql, *args, **kwargs):
            if re.search(r"SELECT body\b", sql):  # not body_sha256
                self.body_reads += 1
            return await method(sql, *args, **kwargs)

        return counted


def _row(no: int, applicant_id: str) -> PublishedRow:
    return PublishedRow(no=no, rank=no, applicant_id=applicant_id, name=f"PESERTA {no}",
                        code="P/L", twk=None, tiu=None, tkp=None, skd_total=400 + no,
                        skb_score="80.500", final_score="81.250", from_formasi=None)  # fmt: skip


@pytest.fixture
async def published(stack):
    """A round (unknown to the engine) with publication 1, a final announcement of LISTED."""
    round_id = f"cache-{uuid.uuid4().hex[:6]}"
    publication = listing(
        round_id,
        AnnouncementStage.FINAL,
        [_row(i, a) for i, a in enumerate(LISTED, 1)],
        signature="not.signed.here",
    )
    conn = await asyncpg.connect(stack.database_url)
    try:
        await store(conn, publication)
    finally:
        await conn.close()
    return round_id


@pytest.fixture
async def public(client, keys, stack, stack_settings):
    """The gateway's app with its answer cache on, over a pool that counts body reads: (http,
    the pool, the gateway)."""
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    counted = _Counted(pool)
    api = RecruitmentApi(client, "no-worker", keys.pseudonym_key)
    gw = Gateway(
        settings=stack_settings.model_copy(update={"publication_cache_mb": 8}),
        api=api,
        pool=counted,  # type: ignore[arg-type]
        api_keys=ApiKeys({}),
        portal=None,
        rounds=RoundDirectory(api, state_ttl=0.0),
    )
    transport = httpx.ASGITransport(app=create_app(gw), client=("203.0.113.11", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield http, counted, gw
    finally:
        await pool.close()


async def _late(stack, round_id: str, applicant_id: str, terminal: str) -> None:
    """`applicant_id` ended `terminal` (DIS or APS) after publication, as the read model says."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(
            "INSERT INTO applicants (round_id, applicant_id, formasi_code, name, stage, admin, "
            "terminal, version) VALUES ($1, $2, 'F1', '', 'final', 'MS', $3, 1)",
            round_id,
            applicant_id,
            terminal,
        )
    finally:
        await conn.close()


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_a_second_request_is_served_from_the_cache_with_the_same_bytes(
    published, public, stack
):
    http, counted, _ = public
    first = {k: await http.get(f"/pengumuman/{published}/1{k}") for k in KINDS}
    reads = counted.body_reads
    again = {k: await http.get(f"/pengumuman/{published}/1{k}") for k in KINDS}

    assert [r.status_code for r in (*first.values(), *again.values())] == [200] * 6
    assert reads == len(KINDS)  # each answer made once, from the body
    assert counted.body_reads == reads, "a repeated request read the body again"
    assert {k: r.content for k, r in again.items()} == {k: r.content for k, r in first.items()}
    # ... and they are what the route made before anything was kept: the signed document as
    # document_text writes it.
    conn = await asyncpg.connect(stack.database_url)
    try:
        stored = await load_publication(conn, published, 1)
    finally:
        await conn.close()
    assert stored is not None
    assert first[".json"].content == document_text(stored).encode()


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_a_dis_after_the_page_was_kept_still_shows_on_the_page_and_the_csv(
    published, public, stack
):
    http, _, _ = public
    before = {k: await http.get(f"/pengumuman/{published}/1{k}") for k in ("", ".csv")}
    await _late(stack, published, LISTED[1], "DIS")
    after = {k: await http.get(f"/pengumuman/{published}/1{k}") for k in ("", ".csv")}

    assert "DIS setelah pengumuman" not in before[""].text
    assert "DIS setelah pengumuman" in after[""].text
    [line] = [x for x in after[".csv"].text.splitlines() if LISTED[1] in x]
    assert line.endswith(",P/L,DIS setelah pengumuman"), line
    assert after[""].headers["etag"] != before[""].headers["etag"]


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_a_revocation_after_the_page_was_kept_still_shows_on_the_page(
    published, public, stack
):
    http, _, _ = public
    before = await http.get(f"/pengumuman/{published}/1")
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(
            "INSERT INTO revocations (round_id, applicant_id, seq, code, at, journey_terminal, "
            "reported_by, report_id) VALUES ($1, $2, 0, 'DIBERHENTIKAN', now(), 'PNS', "
            "'operator', 'r-1')",
            published,
            LISTED[0],
        )
    finally:
        await conn.close()
    after = await http.get(f"/pengumuman/{published}/1")

    assert "DIBERHENTIKAN setelah pengumuman" not in before.text
    assert "DIBERHENTIKAN setelah pengumuman" in after.text


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_a_conditional_get_with_the_etag_is_answered_304_without_the_body(
    published, public, stack
):
    http, counted, _ = public
    for kind in KINDS:
        path = f"/pengumuman/{published}/1{kind}"
        first = await http.get(path)
        reads = counted.body_reads
        tag = first.headers["etag"]
        unchanged = await http.get(path, headers={"If-None-Match": f'W/"other", {tag}'})

        assert first.headers["cache-control"].startswith("public, max-age="), kind
        assert unchanged.status_code == 304, kind
        assert unchanged.content == b""
        assert unchanged.headers["etag"] == tag
        assert unchanged.headers["cache-control"] == first.headers["cache-control"]
        assert counted.body_reads == reads, kind
    page = f"/pengumuman/{published}/1"
    tag = (await http.get(page)).headers["etag"]
    await _late(stack, published, LISTED[2], "APS")
    changed = await http.get(page, headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert "APS setelah pengumuman" in changed.text


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="session")
async def test_an_announcement_that_is_not_there_is_kept_by_no_cache(public):
    http, _, _ = public
    missing = await http.get(f"/pengumuman/none-{uuid.uuid4().hex[:6]}/7")

    assert missing.status_code == 404
    assert missing.headers["cache-control"] == "no-store"


@pytest.mark.asyncio
async def test_the_cache_keeps_no_more_than_its_bound_dropping_the_least_recently_served():
    cache = AnswerCache(limit_bytes=100)

    async def answer(size: int) -> bytes:
        return b"x" * size

    for key in ("a", "b"):
        await cache.get(key, lambda: answer(40))
    await cache.get("a", lambda: answer(40))  # a served again: b is now the oldest
    await cache.get("c", lambda: answer(40))
    await cache.get("huge", lambda: answer(101))  # larger than the whole bound: not kept

    assert cache.size <= 100
    assert set(cache._answers) == {"a", "c"}
    assert cache.size == sum(len(v) for v in cache._answers.values())


@pytest.mark.asyncio
async def test_requests_arriving_while_an_answer_is_made_wait_for_that_one():
    cache = AnswerCache(limit_bytes=1000)
    made = 0

    async def slow() -> bytes:
        nonlocal made
        made += 1
        await asyncio.sleep(0.05)
        return b"page"

    answers = await asyncio.gather(*(cache.get("k", slow) for _ in range(20)))

    assert answers == [b"page"] * 20
    assert made == 1
