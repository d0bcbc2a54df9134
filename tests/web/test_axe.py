"""Every page of the portal and of the public announcements checked by axe-core (the rules of
WCAG 2.1 A/AA and axe's best practices) in Debian's chromium, failing on any violation axe rates
serious or critical; with the checks axe cannot make that the pages once failed: a sanggah sent
empty comes back as its field, invalid and described by its reason, which takes focus; a page
with an error says so in its title; a table has a caption, column headers with a scope, and,
wider than a phone, a frame that the keyboard can reach to scroll it.

axe-core comes bundled in axe-playwright-python (the dev extras); tests/web/test_accessibility.py
holds the hand checks of the forms (errors tied to their fields, focus, sizes at 360 px).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from starlette.templating import Jinja2Templates

from client.announcements import AnnouncementStage
from client.publication import PublishedRow
from client.status import PendingOffer
from domain.messages import DocumentFinding
from tests.roundkit import registration
from tests.web.conftest import serving
from tests.web.publications import listing, store
from tests.web.test_accessibility import _facts, chromium
from tests.web.test_browser import PASSWORD, SHOTS, fill_and_send
from tests.web.test_portal import open_round, operator_api, to_admin_appeal  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="session")

NARROW = {"width": 320, "height": 720}  # 1280 px at 400%, WCAG 1.4.10's reflow width
DESKTOP = {"width": 1280, "height": 900}


async def violations(page) -> list[tuple[str, str, list]]:
    """axe-core's serious and critical violations on the page: (rule, impact, elements)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def test_no_portal_page_has_a_serious_accessibility_violation(
    operator_api,  # noqa: F811 - the fixture imported above
    gateway_state,
    client,
    live_url,
    tmp_path,
):
    """Front page, registration refused (at 320 px and a desktop's width, screenshots) and
    accepted, login (and refused), status (with an offer, with a sanggah form), sanggah refused
    by keyboard, withdrawal (and refused), survey (and refused), an unknown address and a 429: no
    serious violation; every page with an error says so in its title."""
    round_id = await open_round(operator_api, tmp_path, "axe-portal", appeal_window=600)
    found: dict[str, list] = {}
    titles: dict[str, str] = {}

    async def check(page, name: str) -> None:
        found[name] = await violations(page)
        titles[name] = await page.title()

    async with chromium() as browser:
        page = await browser.new_page(viewport=NARROW)
        await page.goto(f"{live_url}/")
        await check(page, "front page")
        await page.goto(f"{live_url}/halaman-yang-tidak-ada")
        await check(page, "404")
        await page.goto(f"{live_url}/masuk?round={round_id}")
        await check(page, "login")
        await page.fill("input[name=number]", "AAAAAAAAAAAAAAAA")
        await page.fill("input[name=password]", "bukan-kata-sandinya")
        await page.click("form[action='/masuk'] button[type=submit]")
        await page.wait_for_selector("#galat-masuk")
        await check(page, "login refused")

        SHOTS.mkdir(parents=True, exist_ok=True)
        for width, viewport in (("320", NARROW), ("1280", DESKTOP)):
            await page.set_viewport_size(viewport)
            await page.goto(f"{live_url}/daftar?round={round_id}")
            await page.click("form[action='/daftar'] button[type=submit]")
            await page.wait_for_selector("#galat-ringkasan")
            await check(page, f"registration refused at {width} px")
            await page.screenshot(
                path=SHOTS / f"a11y-registration-errors-{width}.png", full_page=True
            )
        await page.set_viewport_size(NARROW)
        await page.goto(f"{live_url}/daftar?round={round_id}")
        await fill_and_send(page, registration(9301, "F1"), "3,40", "Teknik Informatika")
        number = (await page.inner_text("#nomor-pendaftaran")).strip()
        await check(page, "registered")
        await page.goto(f"{live_url}/mundur")
        await check(page, "withdrawal")
        await page.click("form[action='/mundur'] button[type=submit]")
        await page.wait_for_selector("#galat-konfirmasi")
        await check(page, "withdrawal refused")
        await page.goto(f"{live_url}/survei/registration")
        await check(page, "survey")
        async with page.expect_navigation():
            await page.evaluate("document.querySelector('form.skm').submit()")
        await check(page, "survey refused")

        # The offer's section as the status page shows it: the same journey, its view given a
        # pending offer (reaching a real one takes a round to its optimalisasi).
        offering = dataclasses.replace(gateway_state)
        status_of = gateway_state.applicant_status

        async def with_offer(*args, **kwargs):
            view = await status_of(*args, **kwargs)
            offer = PendingOffer(
                offer_id="o-1",
                to_formasi="F2",
                to_jabatan="Analis",
                answer_by=datetime.now(UTC) + timedelta(hours=1),
            )
            return view.model_copy(update={"pending_offer": offer})

        offering.applicant_status = with_offer  # type: ignore[method-assign]
        # One login a minute per address: the second refused login is the 429 page.
        limits = gateway_state.settings.model_copy(update={"portal_rate_per_minute": 1})
        async with (
            serving(offering) as offer_url,
            serving(dataclasses.replace(gateway_state, settings=limits)) as limited_url,
        ):
            other = await browser.new_page(viewport=NARROW)
            await other.goto(f"{offer_url}/masuk?round={round_id}")
            await other.fill("input[name=number]", number)
            await other.fill("input[name=password]", PASSWORD)
            await other.click("form[action='/masuk'] button[type=submit]")
            await other.wait_for_selector("#tawaran")
            await check(other, "status with an offer")
            stranger = await browser.new_page(viewport=NARROW)  # a browser of its own
            for _ in range(2):
                await stranger.goto(f"{limited_url}/masuk?round={round_id}")
                await stranger.fill("input[name=number]", number)
                await stranger.fill("input[name=password]", "bukan-kata-sandinya")
                await stranger.click("form[action='/masuk'] button[type=submit]")
            await stranger.wait_for_selector("text=Terlalu banyak permintaan")
            await check(stranger, "429")

        findings = [DocumentFinding(document="ijazah", reason="ijazah belum dilegalisasi")]
        await to_admin_appeal(client, operator_api, round_id, [number], findings)
        await page.goto(f"{live_url}/status")
        await page.wait_for_selector("#isian-reason")
        await check(page, "status with a sanggah form")
        # By keyboard: a reason of blanks, Tab to the button, Enter.
        await page.focus("#isian-reason")
        await page.keyboard.type("   ")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.innerText") == "Kirim sanggah"
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await check(page, "sanggah refused")
        sanggah = await _facts(page)

    assert {name: v for name, v in found.items() if v} == {}
    reason = "Tuliskan alasan sanggah Anda (paling banyak 2000 karakter), lalu kirim lagi."
    assert sanggah["invalid"] == [{"name": "reason", "described": [reason]}], sanggah
    assert sanggah["focused"] == "galat-sanggah", sanggah
    refused = [name for name in titles if "refused" in name]
    assert {n: titles[n] for n in refused if not titles[n].startswith("Kesalahan")} == {}
    assert titles["429"].startswith("Terlalu banyak permintaan"), titles


def _row(no: int, applicant_id: str, code: str) -> PublishedRow:
    return PublishedRow(no=no, rank=no, applicant_id=applicant_id, name=f"Peserta {no}", code=code,
                        twk=None, tiu=None, tkp=None, skd_total=None, skb_score=None,
                        final_score=None, from_formasi=None)  # fmt: skip


# Every table of the page: its caption, and the headers that lack a scope; every frame that
# scrolls sideways: whether Tab reaches it and what names it.
TABLES = """() => ({
  tables: [...document.querySelectorAll('table')].map(t => ({
    caption: t.caption ? t.caption.innerText.trim() : null,
    unscoped: [...t.querySelectorAll('th:not([scope])')].map(th => th.innerText.trim()),
  })),
  scrolling: [...document.querySelectorAll('*')]
    .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'auto')
    .map(e => ({tabindex: e.tabIndex, name: e.getAttribute('aria-labelledby')
      && document.getElementById(e.getAttribute('aria-labelledby')).innerText.trim()})),
  wider: document.documentElement.scrollWidth > window.innerWidth,
})"""


async def test_no_public_page_has_a_serious_accessibility_violation(running_worker, live_url):
    """The announcements, a round's, an announcement with its MS and TMS, the lookup (found,
    malformed) and an announcement that is not there, at 320 px and at a desktop's width: no
    serious violation, every table captioned with scoped headers, a table wider than the
    screen in a frame Tab reaches, and no page wider than the screen."""
    _, pool = running_worker
    round_id = f"axe-public-{uuid.uuid4().hex[:6]}"
    rows = [_row(1, "A" * 16, "MS"), _row(2, "B" * 16, "TMS")]
    await store(pool, listing(round_id, AnnouncementStage.ADMIN, rows))
    found: dict[str, list] = {}
    tables: dict[str, dict] = {}
    titles: dict[str, str] = {}
    pages = {
        "announcements": "/pengumuman",
        "round": f"/pengumuman/{round_id}",
        "announcement": f"/pengumuman/{round_id}/1",
        "lookup": f"/pengumuman/{round_id}/cari?nomor={'B' * 16}",
        "lookup refused": f"/pengumuman/{round_id}/cari?nomor=12x",
        "no such announcement": f"/pengumuman/{round_id}/9",
    }
    async with chromium() as browser:
        # At a desktop's width only the pages with tables: the rest is the same markup.
        for width, viewport, names in (
            ("320", NARROW, list(pages)),
            ("1280", DESKTOP, ["round", "announcement", "lookup"]),
        ):
            page = await browser.new_page(viewport=viewport)
            for name in names:
                await page.goto(f"{live_url}{pages[name]}")
                key = f"{name} at {width} px"
                found[key] = await violations(page)
                tables[key] = await page.evaluate(TABLES)
                titles[key] = await page.title()
                if name == "announcement":
                    await page.focus(".table-wrap")  # its frame, as Tab reaches it
                    shot = SHOTS / f"a11y-announcement-{width}.png"
                    await page.screenshot(path=shot, full_page=True)
            await page.close()

    assert {name: v for name, v in found.items() if v} == {}
    assert all(t["tables"] for k, t in tables.items() if k.split(" at ")[0] in ("round", "lookup"))
    for key, facts in tables.items():
        assert all(t["caption"] and not t["unscoped"] for t in facts["tables"]), (key, facts)
        assert all(s["tabindex"] == 0 and s["name"] for s in facts["scrolling"]), (key, facts)
        assert not facts["wider"], (key, facts)
    assert tables["announcement at 320 px"]["scrolling"], "the table fits 320 px: check nothing"
    assert titles["lookup refused at 320 px"].startswith("Kesalahan"), titles


async def test_the_engines_english_words_in_a_refusal_are_marked_as_english():
    """A refusal the portal has no Indonesian for is shown as the engine wrote it, after
    "ditolak oleh sistem:" (gateway/portal.py `indonesian`): those words are lang="en", so that
    a screen reader does not read them with Indonesian sounds (WCAG 3.1.2); a page with none has
    no English part."""
    from gateway.deps import TEMPLATES
    from gateway.portal import _sentence, indonesian

    page = Jinja2Templates(directory=str(TEMPLATES)).get_template("portal/message.html")
    unknown = _sentence(indonesian("offer o-1 is <superseded>"))
    refused = page.render(title="Jawaban tawaran tidak dapat diterima", text=unknown, kind="errors")
    assert (
        'Ditolak oleh sistem: <span lang="en">offer o-1 is &lt;superseded&gt;.</span></p>'
        in refused
    ), refused
    plain = page.render(title="Sanggah diterima", text="Sanggah Anda diterima.", kind="notice")
    assert 'lang="en"' not in plain
