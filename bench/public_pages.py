"""`bench public-pages`: what one request for a public announcement costs the gateway, at a
publication's size (`--rows`), before and after the answer cache (gateway/public_cache.py).

For each size: a synthetic final announcement of ROWS rows (names, scores, codes; a few of its
applicants DIS or APS after publication) is stored in the bench stack's read model as a publisher
stores one. Then, in the same run:

- the work a request did before the cache, step by step, inline as the route ran it: the body read
  from PostgreSQL, the parse into a Publication, the render of the page, the .json and the .csv
  (medians of REPEAT);
- the longest the event loop was held while one such request ran inline (a probe sleeping 1 ms
  in a loop), and while the gateway makes the same answer now (parse and render in a thread);
- each of page, .json and .csv through the gateway's ASGI app (httpx, in process): with the cache
  off (CASN_PUBLICATION_CACHE_MB=0, every request makes its answer, in a thread), the first
  request with the cache on (the same), the requests after it (served from the cache), and a
  conditional GET with the ETag (304).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import string
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.common import console
from client.announcements import AnnouncementStage
from client.publication import (
    Publication,
    PublishedFormasi,
    PublishedRow,
    _insert,
    after_publication,
    late_endings,
    list_publications,
    parse_publication,
    revocations,
)
from domain.config import RoundConfig
from domain.messages import ZERO_SHA256
from gateway.app import create_app
from gateway.deps import ApiKeys, Gateway, RoundDirectory
from gateway.public_answers import MAKER, AnswerOrder, answer_of

ROWS_PER_FORMASI = 2_000
LATE = 20  # listed applicants who end DIS or APS after publication


def _publication(round_id: str, rows: int, rng: random.Random) -> Publication:
    """A final announcement of `rows` rows in formasi of ROWS_PER_FORMASI."""
    alphabet = string.ascii_uppercase + "234567"
    formasi = []
    for f in range(0, rows, ROWS_PER_FORMASI):
        listed = []
        for no in range(1, min(ROWS_PER_FORMASI, rows - f) + 1):
            skd = rng.randint(300, 500)
            listed.append(
                PublishedRow(
                    no=no,
                    rank=no,
                    applicant_id="".join(rng.choices(alphabet, k=16)),
                    name=" ".join(
                        rng.choice(("SITI", "BUDI", "DEWI", "AGUS", "RINA", "ANDI", "NUR"))
                        + rng.choice(("", "ANTI", "WATI", "YANTO"))
                        for _ in range(3)
                    ),
                    code="P/L" if no <= 50 else "TL",
                    twk=None,
                    tiu=None,
                    tkp=None,
                    skd_total=skd,
                    skb_score=f"{rng.uniform(40, 95):.3f}",
                    final_score=f"{rng.uniform(40, 95):.3f}",
                    from_formasi=None,
                )
            )
        formasi.append(
            PublishedFormasi(
                code=f"F{f // ROWS_PER_FORMASI + 1:03d}",
                jabatan="Analis Kebijakan Ahli Pertama",
                unit="Sekretariat Daerah",
                education_level="S-1",
                quota=50,
                rows=listed,
            )
        )
    return Publication(
        format="casn-pengumuman/1",
        round_id=round_id,
        seq=1,
        stage=AnnouncementStage.FINAL,
        instansi="Pemerintah Kabupaten Bench",
        rules_digest="0" * 64,
        published_at=datetime.now(UTC),
        reported_by="operator",
        prev_sha256=ZERO_SHA256,
        corrects=None,
        formasi=formasi,
        signature="bench.not-signed.nothing-checks-it-here",
    )


async def _store(pool: Any, p: Publication, rng: random.Random) -> None:
    """`p` stored, and LATE of its applicants in the read model as DIS or APS."""
    async with pool.acquire() as conn, conn.transaction():
        await _insert(conn, p)
        late = rng.sample([r.applicant_id for _, r in p.rows()], LATE)
        await conn.execute(
            """INSERT INTO applicants (round_id, applicant_id, formasi_code, name, stage, admin,
                   terminal, version)
               SELECT $1, x.id, 'F001', '', 'final', 'MS',
                   CASE WHEN x.n % 2 = 0 THEN 'DIS' ELSE 'APS' END, 1
               FROM unnest($2::text[]) WITH ORDINALITY AS x(id, n)""",
            p.round_id,
            late,
        )


async def _median(repeat: int, step: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """The median seconds of `repeat` runs of `step`, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = await step()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


async def _loop_held(work: Callable[[], Awaitable[Any]]) -> float:
    """The longest the event loop went without running a 1 ms sleeper while `work` ran (s)."""
    worst = 0.0
    running = True

    async def probe() -> None:
        nonlocal worst
        while running:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - t - 0.001)

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    try:
        await work()
    finally:
        running = False
        await task
    return worst


def _gateway(ctx: Any, config: RoundConfig, cache_mb: int) -> Gateway:
    """A gateway on the bench stack's read model, its round's rules known (no engine query)."""
    rounds = RoundDirectory(ctx.api)
    rounds._configs[config.round_id] = config
    return Gateway(
        settings=ctx.settings.model_copy(update={"publication_cache_mb": cache_mb}),
        api=ctx.api,
        pool=ctx.pool,
        api_keys=ApiKeys({}),
        portal=None,
        rounds=rounds,
    )


async def run_public_pages(
    ctx: Any, config: RoundConfig, sizes: list[int], repeat: int, seed: int
) -> list[dict]:
    """The figures of each size (see the module's docstring), in seconds and bytes."""
    return [await _one_size(ctx, config, rows, repeat, seed) for rows in sizes]


async def _one_size(ctx: Any, config: RoundConfig, rows: int, repeat: int, seed: int) -> dict:
    """The figures of a publication of `rows` rows."""
    rng = random.Random(seed + rows)
    round_id = f"BENCH-PUB-{uuid.uuid4().hex[:6]}"
    config_here = config.model_copy(update={"round_id": round_id})
    console.print(f"{rows:,} rows: storing the publication ...")
    await _store(ctx.pool, _publication(round_id, rows, rng), rng)
    fig: dict[str, Any] = {"rows": rows}
    each = max(1, repeat if rows <= 20_000 else repeat // 2)

    # Before: what the route did inline on every request.
    async def read_body() -> tuple[str, str]:
        row = await ctx.pool.fetchrow(
            "SELECT body, signature FROM publications WHERE round_id = $1 AND seq = 1",
            round_id,
        )
        return row["body"], row["signature"]

    fig["db_read"], (body, signature) = await _median(each, read_body)
    fig["body_bytes"] = len(body.encode())

    async def parse() -> Publication:
        return parse_publication(body, signature)

    fig["parse"], p = await _median(each, parse)
    gw = _gateway(ctx, config_here, 0)

    async def facts() -> tuple[dict, dict, list]:
        endings = await late_endings(ctx.pool, round_id)
        revoked = await revocations(ctx.pool, round_id)
        listed = await list_publications(ctx.pool, round_id)
        return endings, revoked, [s.seq for s in listed if s.corrects == 1]

    fig["per_request_reads"], (endings, revoked, corrected_by) = await _median(each, facts)
    later = after_publication(p, endings)
    assert len(later) == LATE, f"{len(later)} later endings shown, not {LATE}"

    def order(kind: str) -> AnswerOrder:
        return AnswerOrder(
            kind,
            f"{round_id}-1",
            body,
            signature,
            endings,
            revoked,
            corrected_by,
            config_here.instansi,
            config_here.skd.cut_multiplier,
        )

    renders: dict[str, Callable[[Publication], bytes]] = {
        label: lambda q, kind=kind: answer_of(q, order(kind))
        for label, kind in (("page", ""), ("json", ".json"), ("csv", ".csv"))
    }
    for kind, render in renders.items():

        async def rendered(render: Callable[[Publication], bytes] = render) -> bytes:
            return render(p)

        fig[f"render_{kind}"], text = await _median(each, rendered)
        fig[f"{kind}_bytes"] = len(text)

    async def inline_page() -> None:
        b, s = await read_body()
        answer_of(parse_publication(b, s), order(""))

    fig["loop_held_inline_page"] = await _loop_held(inline_page)
    console.print(f"{rows:,} rows: through the gateway ...")

    # Through the gateway's app: cache off, then on; its worker process started first.
    t = time.perf_counter()
    await MAKER.started()
    fig["worker_start"] = time.perf_counter() - t
    paths = {
        "page": f"/pengumuman/{round_id}/1",
        "json": f"/pengumuman/{round_id}/1.json",
        "csv": f"/pengumuman/{round_id}/1.csv",
    }
    for cache_mb, label in ((0, "off"), (1024, "on")):
        gw = _gateway(ctx, config_here, cache_mb)
        transport = httpx.ASGITransport(app=create_app(gw), client=("203.0.113.5", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.test", timeout=600
        ) as http:
            for kind, path in paths.items():

                async def get(path: str = path, headers: dict | None = None) -> Any:
                    r = await http.get(path, headers=headers or {})
                    assert r.status_code in (200, 304), (path, r.status_code, r.text[:200])
                    return r

                if label == "off":
                    # The worker process is started by the first request: held after it.
                    fig[f"{kind}_cache_off"], _ = await _median(each, get)
                    fig[f"loop_held_gateway_{kind}"] = await _loop_held(get)
                    continue
                t = time.perf_counter()
                first = await get()
                fig[f"{kind}_cache_first"] = time.perf_counter() - t
                fig[f"{kind}_cache_hit"], again = await _median(max(5, repeat), get)
                assert again.content == first.content, f"{kind}: cached answer differs"
                etag = first.headers["etag"]
                fig[f"{kind}_304"], r = await _median(
                    max(5, repeat), lambda get=get, etag=etag: get(headers={"If-None-Match": etag})
                )
                assert r.status_code == 304, (kind, r.status_code)
            if label == "on":
                fig["cache_bytes"] = gw.publications.size
    return fig
