"""A round in Papua reads its times in WIT: the portal, the applicant's notice and the public pages
show every time of the round on the round's own clock (its `timezone`), and each page names it.
Machine formats (the signed JSON) keep ISO 8601 with the offset."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from activities.notify import deliver_pending
from client.announcements import AnnouncementStage
from client.announcements import waktu as public_waktu
from client.status import batas
from domain.administration import DocumentFinding
from runtime.sealed import ColumnCipher
from tests.flows.test_round_end_to_end import _state
from tests.roundkit import registration
from tests.web.publications import listing, store
from tests.web.test_portal import (
    client_for,
    form_of,
    open_round,
    operator_api,  # noqa: F401 - a fixture
    registration_number,
    submit_registration,
    text_of,
    to_admin_appeal,
)
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

JAYAPURA = "Asia/Jayapura"
# The sanggah runs in calendar days of the round's zone (patch appeal-days-end-at-midnight): a
# window of 3 days ends at 24:00 WIT, 15:00 UTC.
IN_PAPUA = {"timezone": JAYAPURA, "appeal": {"window": "P3D", "answer_within": "P7D"}}
DAY = 86400
# A round file whose sanggah is counted in days has SKD close after the last day an administration
# sanggah may be answered (domain.config.sanggah_after_skd): 3 + 7 days and the days' ends.
WIT_SCHEDULE = {
    "registration": (-60, 300),
    "administration": (300, 900),
    "skd": (900, 12 * DAY),
    "skb": (12 * DAY, 13 * DAY),
    "filing": (13 * DAY, 14 * DAY),
    "latsar": (14 * DAY, 15 * DAY),
}
WIT_FOOTER = "Waktu ditampilkan dalam WIT (UTC+9), zona waktu seleksi ini."


class Recording:
    """A transport that keeps what it was handed."""

    def __init__(self) -> None:
        self.texts: dict[tuple[str, str], str] = {}

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        self.texts[(applicant_id, key)] = text


async def test_a_wit_rounds_sanggah_deadline_reads_24_00_wit_on_every_page(
    operator_api,  # noqa: F811 - the fixture imported above
    gateway_state,
    running_worker,
    client,
    keys,
    tmp_path,
):
    round_id = await open_round(
        operator_api, tmp_path, "zone-wit", seconds=WIT_SCHEDULE, extra=IN_PAPUA
    )
    config = await operator_api.round_config(round_id)
    browser = client_for(gateway_state, ("192.0.2.90", 1000))
    try:
        form = await browser.get("/daftar", params={"round": round_id})
        closes = config.schedule.registration.closes
        assert f"Pendaftaran dibuka sampai {batas(closes, JAYAPURA)}" in text_of(form.text)
        assert WIT_FOOTER in form.text and "WIB" not in form.text

        done = await submit_registration(browser, round_id, form_of(registration(40, "F1")))
        number = registration_number(done.text)
        finding = DocumentFinding(document="ijazah", reason="belum dilegalisasi")
        await to_admin_appeal(client, operator_api, round_id, [number], [finding])
        journey = await _state(client, round_id, number)
        announced = journey.admin_announced_at.astimezone(UTC)
        # Three calendar days in WIT after the announcement's day there: 24.00 WIT of the third.
        local_day = (announced + timedelta(hours=9)).date() + timedelta(days=3)
        shown = f"{local_day.day} {_MONTH[local_day.month - 1]} {local_day.year} 24.00 WIT"

        page = (await browser.get("/status")).text
        status = text_of(page)
        assert f"Batas pengajuan sanggah: {shown}" in status, status
        assert WIT_FOOTER in page and "WIB" not in page

        # The notice the journey recorded says the same, on the same clock (the outbox is the
        # notifier's, which connects as the workers do).
        texts = await _delivered(running_worker[1], round_id, keys)
        admin = texts[(number, "admin-TMS")]
        assert f"Sanggah dapat diajukan paling lambat {shown}." in admin, admin
        # Decided by the journey's history (patch notice-in-round-zone), asked only outside WIB.
        assert "notice-in-round-zone" in await _patches(client, round_id, number)
    finally:
        await browser.aclose()


async def test_a_wit_rounds_public_pages_show_its_times_in_wit_and_its_json_keeps_the_offset(
    operator_api,  # noqa: F811 - the fixture imported above
    gateway_state,
    http,
    tmp_path,
):
    round_id = await open_round(
        operator_api, tmp_path, "zone-pub", seconds=WIT_SCHEDULE, extra=IN_PAPUA
    )
    published = listing(round_id, AnnouncementStage.ADMIN, [])
    await store(gateway_state.pool, published)
    when = public_waktu(published.published_at, JAYAPURA)
    assert when.endswith(" WIT")

    for path in (f"/pengumuman/{round_id}", f"/pengumuman/{round_id}/1"):
        page = await http.get(path)
        assert page.status_code == 200, page.text
        assert when in page.text and WIT_FOOTER in page.text and "WIB" not in page.text, path

    # The signed document is for machines: ISO 8601 with its offset, whatever the round's zone.
    document = (await http.get(f"/pengumuman/{round_id}/1.json")).json()
    assert datetime.fromisoformat(document["published_at"]) == published.published_at
    assert re.search(r"(Z|[+-]\d\d:\d\d)$", document["published_at"])

    # The list of every round's announcements is about no one round: WIB, and it says so.
    index = (await http.get("/pengumuman")).text
    assert "Waktu ditampilkan dalam WIB (UTC+7)." in index
    assert public_waktu(published.published_at) in index


async def _patches(client, round_id: str, applicant_id: str) -> set[str]:
    """The patch markers of the applicant's journey."""
    history = await client.get_workflow_handle(
        journey_workflow_id(round_id, applicant_id)
    ).fetch_history()
    return {
        json.loads(event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)[
            "id"
        ]
        for event in history.events
        if event.marker_recorded_event_attributes.marker_name == "core_patch"
    }


_MONTH = ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des")


async def _delivered(pool, round_id: str, keys) -> dict[tuple[str, str], str]:
    """The round's notifications as the deliverer hands them over (in Indonesian), once the
    journey has written them."""
    transport = Recording()
    for _ in range(100):
        await pool.execute(
            "UPDATE notifications SET delivered_at = NULL, next_attempt_at = now() "
            "WHERE round_id = $1",
            round_id,
        )
        # A pass hands over each applicant's oldest undelivered notice: pass until none is.
        while await deliver_pending(
            pool, transport, round_id=round_id, cipher=ColumnCipher.from_keys(keys)
        ):
            pass
        if any(key == "admin-TMS" for _, key in transport.texts):
            return transport.texts
        await asyncio.sleep(0.1)
    raise AssertionError(f"no admin-TMS notification in round {round_id}: {transport.texts}")


async def test_a_wit_round_in_a_browser_shows_its_deadline_and_names_its_zone(
    operator_api,  # noqa: F811 - the fixture imported above
    gateway_state,
    client,
    live_url,
    tmp_path,
):
    from playwright.async_api import async_playwright

    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, SHOTS, fill_and_send

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `python3 run.py test` installs it"
    round_id = await open_round(
        operator_api, tmp_path, "zone-web", seconds=WIT_SCHEDULE, extra=IN_PAPUA
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    me = registration(41, "F1", gpa=3.4, name="Yohana Wenda", female=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            await page.goto(f"{live_url}/daftar?round={round_id}")
            await fill_and_send(page, me, "3,40", "Teknik Informatika")
            number = (await page.inner_text("#nomor-pendaftaran")).strip()
            finding = DocumentFinding(document="ijazah", reason="belum dilegalisir")
            await to_admin_appeal(client, operator_api, round_id, [number], [finding])

            context = await browser.new_context(viewport={"width": 390, "height": 844})
            page = await context.new_page()
            await page.goto(f"{live_url}/masuk?round={round_id}")
            await page.fill("input[name=number]", me.nik)
            await page.fill("input[name=password]", PASSWORD)
            await page.click("form[action='/masuk'] button[type=submit]")
            await page.wait_for_selector("h1:has-text('Status saya')")
            status = await page.inner_text("main")
            assert re.search(r"Batas pengajuan sanggah: \d+ \w+ \d{4} 24\.00 WIT", status), status
            assert await page.inner_text("footer") == WIT_FOOTER
            await page.screenshot(path=str(SHOTS / "13-status-wit.png"), full_page=True)

            # The round's announcement, on the public page: its time in WIT.
            published = listing(round_id, AnnouncementStage.ADMIN, [])
            await store(gateway_state.pool, published)
            public = await browser.new_page(viewport={"width": 390, "height": 844})
            await public.goto(f"{live_url}/pengumuman/{round_id}/1")
            shown = await public.inner_text("main")
            assert f"Diumumkan {public_waktu(published.published_at, JAYAPURA)}" in shown, shown
            assert await public.inner_text("footer") == WIT_FOOTER
            await public.screenshot(path=str(SHOTS / "14-pengumuman-wit.png"), full_page=True)
        finally:
            await browser.close()


async def test_the_front_page_reads_each_round_in_its_own_zone_and_says_so():
    from functools import partial

    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from client.status import catatan_waktu, waktu
    from gateway.deps import TEMPLATES

    midnight_wit = datetime(2027, 8, 23, 15, tzinfo=UTC)  # 24:00 WIT, 23.00 WITA, 22.00 WIB
    rounds = [
        {"round_id": z, "instansi": z, "formasi": 1, "opens": midnight_wit, "closes": midnight_wit}
        for z in ("Asia/Jayapura", "Asia/Makassar", "Asia/Jakarta")
    ]
    pages = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape())
    html = pages.get_template("portal/index.html").render(
        open=[{**r, "zone": r["round_id"]} for r in rounds],
        others=[],
        now=midnight_wit,
        waktu=partial(waktu, zone="Asia/Jakarta"),
        batas=partial(batas, zone="Asia/Jakarta"),
        times_note=catatan_waktu(None, several=True),
        account=None,
    )
    for shown in ("23 Agu 2027 24.00 WIT", "23 Agu 2027 23.00 WITA", "23 Agu 2027 22.00 WIB"):
        assert f"Pendaftaran dibuka sampai <strong>{shown}</strong>" in html
    assert "zona waktu seleksi itu (WIB, WITA atau WIT)" in html
