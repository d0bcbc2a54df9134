"""The public lookup by registration number has an allowance per client address
(CASN_PUBLIC_LOOKUP_RATE_PER_MINUTE): each lookup reads the read model, so a flood from one
address drove the gateway's CPU and the database with no limit before. The address is counted as
the portal counts it (a trusted balancer's X-Forwarded-For, an IPv6 address by its /64). The
announcements themselves, answered from what the gateway keeps, stay open to an address over its
allowance: behind a carrier-grade NAT it is many applicants' address.
"""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pydantic import ValidationError

from client.announcements import AnnouncementStage
from client.api import RecruitmentApi
from client.publication import PublishedRow
from gateway.app import create_app
from gateway.deps import ApiKeys, Gateway, RoundDirectory
from runtime.settings import describe_settings_error, load_settings
from tests.web.publications import listing, store

LISTED = "AAAAAAAAAAAAAAA2"
ALLOWANCE = 3  # lookups a minute: one every 20 s, three at once
BALANCER = "10.20.0.5"


class Clock:
    """A monotonic clock the test moves on by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture(loop_scope="session")
async def published(stack):
    """A round (unknown to the engine) with publication 1, listing LISTED."""
    round_id = f"limits-{uuid.uuid4().hex[:6]}"
    row = PublishedRow(no=1, rank=1, applicant_id=LISTED, name="PESERTA 1", code="P/L",
                       twk=None, tiu=None, tkp=None, skd_total=401, skb_score="80.500",
                       final_score="81.250", from_formasi=None)  # fmt: skip
    conn = await asyncpg.connect(stack.database_url)
    try:
        await store(conn, listing(round_id, AnnouncementStage.FINAL, [row], "not.signed.here"))
    finally:
        await conn.close()
    return round_id


@pytest_asyncio.fixture(loop_scope="session")
async def public(client, keys, stack_settings, gateway_pool):
    """The gateway's app with an allowance of ALLOWANCE lookups a minute, its balancer trusted,
    and its lookup limiter on a Clock: (app, clock)."""
    api = RecruitmentApi(client, "no-worker", keys.pseudonym_key)
    gw = Gateway(
        settings=stack_settings.model_copy(
            update={
                "public_lookup_rate_per_minute": ALLOWANCE,
                "gateway_trusted_proxies": "10.20.0.0/16",
                "publication_cache_mb": 8,
            }
        ),
        api=api,
        pool=gateway_pool,
        api_keys=ApiKeys({}),
        portal=None,
        rounds=RoundDirectory(api),
    )
    clock = Clock()
    gw.public_lookup_limit.clock = clock
    return create_app(gw), clock


def visitor(app, address: str = "198.51.100.1") -> httpx.AsyncClient:
    """A browser at `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


async def _lookups(browser: httpx.AsyncClient, round_id: str, n: int, **headers: str) -> list[int]:
    path = f"/pengumuman/{round_id}/cari"
    return [
        (await browser.get(path, params={"nomor": LISTED}, headers=headers)).status_code
        for _ in range(n)
    ]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_lookup_beyond_the_address_allowance_is_refused_until_its_window_frees_it(
    published, public
):
    app, clock = public
    async with visitor(app) as crowd, visitor(app, "198.51.100.2") as other:
        assert await _lookups(crowd, published, ALLOWANCE) == [200] * ALLOWANCE
        refused = await crowd.get(f"/pengumuman/{published}/cari", params={"nomor": LISTED})
        assert await _lookups(other, published, 1) == [200]  # another address: its own

        clock.now += 20  # one lookup's worth
        assert await _lookups(crowd, published, 2) == [200, 429]
        clock.now += 60  # the whole minute
        assert await _lookups(crowd, published, ALLOWANCE + 1) == [200] * ALLOWANCE + [429]

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["cache-control"] == "no-store"
    assert "Terlalu banyak pencarian nomor peserta dari alamat Anda" in refused.text
    assert "coba lagi dalam 20 detik" in refused.text


@pytest.mark.asyncio(loop_scope="session")
async def test_the_announcements_stay_open_to_an_address_over_its_lookup_allowance(
    published, public
):
    app, _ = public
    pages = [
        "/pengumuman",
        f"/pengumuman/{published}",
        f"/pengumuman/{published}/cari",  # the form, before a number is given
        f"/pengumuman/{published}/1",
        f"/pengumuman/{published}/1.json",
        f"/pengumuman/{published}/1.csv",
    ]
    async with visitor(app) as crowd:
        assert await _lookups(crowd, published, ALLOWANCE + 1) == [200] * ALLOWANCE + [429]
        answers = {path: (await crowd.get(path)).status_code for path in pages * 2}

    assert answers == dict.fromkeys(pages, 200)


@pytest.mark.asyncio(loop_scope="session")
async def test_behind_a_trusted_balancer_each_client_has_its_own_lookup_allowance(
    published, public
):
    app, _ = public
    one, two = "198.51.100.11", "198.51.100.12"
    async with visitor(app, BALANCER) as balancer, visitor(app, "203.0.113.50") as direct:
        # Through the balancer, counted by the client it names; what a client writes in front
        # of that is its own writing and changes nothing.
        firsts = await _lookups(balancer, published, ALLOWANCE, **{"X-Forwarded-For": one})
        forged = await _lookups(balancer, published, 1, **{"X-Forwarded-For": f"6.6.6.6, {one}"})
        others = await _lookups(balancer, published, 1, **{"X-Forwarded-For": two})
        # From a peer that is no balancer, X-Forwarded-For is ignored: each made-up client is
        # the peer.
        made_up = [
            (await _lookups(direct, published, 1, **{"X-Forwarded-For": f"192.0.2.{i}"}))[0]
            for i in range(ALLOWANCE + 1)
        ]

    assert (firsts, forged, others) == ([200] * ALLOWANCE, [429], [200])
    assert made_up == [200] * ALLOWANCE + [429]


@pytest.mark.asyncio(loop_scope="session")
async def test_anonymous_pages_do_not_make_the_gateway_ask_the_engine_at_their_rate(
    published, public
):
    """A round page of a round with nothing published is answered from the read model alone, and
    a round whose rules the engine cannot give (here: unknown to it) is asked for once a minute,
    not once a request: before, every GET of /pengumuman/<any well-formed id> asked the Temporal
    server for that round's history, at the rate of whoever sent them."""
    app, _ = public
    rounds = app.state.gateway.rounds
    asked: list[str] = []
    real = rounds.api.round_config

    async def counted(round_id: str):
        asked.append(round_id)
        return await real(round_id)

    rounds.api.round_config = counted
    async with visitor(app) as crowd:
        made_up = [f"nothing-{uuid.uuid4().hex[:8]}" for _ in range(5)]
        assert [(await crowd.get(f"/pengumuman/{r}")).status_code for r in made_up] == [404] * 5
        assert [(await crowd.get(f"/pengumuman/{published}")).status_code for _ in range(3)] == [
            200
        ] * 3
        assert asked == [published]  # the engine asked once, for the round with publications

        rounds.unknown_ttl = 0.0  # the minute over: asked again
        assert (await crowd.get(f"/pengumuman/{published}/1")).status_code == 200
    assert asked == [published, published]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("0", "Input should be greater than or equal to 1"),
        ("-5", "Input should be greater than or equal to 1"),
        ("100001", "Input should be less than or equal to 100000"),
        ("lots", "Input should be a valid integer"),
    ],
)
def test_a_bad_public_lookup_allowance_is_refused_naming_the_variable_and_value(
    monkeypatch, value, said
):
    monkeypatch.setenv("CASN_PUBLIC_LOOKUP_RATE_PER_MINUTE", value)
    with pytest.raises(ValidationError) as refused:
        load_settings()

    assert describe_settings_error(refused.value).startswith(
        f"CASN_PUBLIC_LOOKUP_RATE_PER_MINUTE={value!r}: {said}"
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_in_a_browser_the_refused_lookup_is_a_public_page_that_says_when_to_try_again(
    published, public
):
    from playwright.async_api import async_playwright

    from tests.web.conftest import serving
    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS

    app, _ = public
    gw = app.state.gateway
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with serving(gw) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            # Each number another (the browser keeps an answer a minute, as any cache may).
            numbers = [LISTED] + [f"BBBBBBBBBBBBBBB{d}" for d in "234567"[:ALLOWANCE]]
            statuses = [
                (await page.goto(f"{url}/pengumuman/{published}/cari?nomor={n}")).status
                for n in numbers
            ]
            title, text = await page.inner_text("h1"), await page.inner_text("main")
            await page.screenshot(path=str(SHOTS / "13-pencarian-dibatasi.png"), full_page=True)
            assert statuses == [200] + [404] * (ALLOWANCE - 1) + [429]
            assert title == "Terlalu banyak permintaan"
            assert "coba lagi dalam 20 detik" in text and "Pengumuman tetap dapat dibuka" in text
            await page.click("text=Kembali ke daftar pengumuman")
            assert await page.inner_text("h1") == "Pengumuman hasil seleksi"
        finally:
            await browser.close()
