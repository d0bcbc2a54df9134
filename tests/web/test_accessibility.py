"""The portal and the public pages as an applicant on a cheap phone and a screen-reader or
keyboard user meet them, in a real browser (Debian's chromium, headless, driven by Playwright):
a page in Indonesian for an address no page serves, errors tied to their fields with focus at
the first one, fields that can be seen and links that can be tapped at 360 px, a focus that
shows. Specific checks, since axe-core is not available offline.

Without /usr/bin/chromium these tests fail: `python3 run.py test` installs it with apt-get.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from datetime import timedelta

import pytest

from client.announcements import AnnouncementStage
from client.publication import publish_announcement
from domain.codes import Stage
from domain.messages import AdminReport, CloseWindow
from runtime.sealed import ColumnCipher
from tests import roundkit
from tests.flows.test_round_end_to_end import _wait_phase, _wait_stage
from tests.roundkit import OPERATOR, registration
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, fill_and_send
from tests.web.test_portal import open_round, operator_api  # noqa: F401 - a fixture

pytestmark = pytest.mark.asyncio(loop_scope="session")

PHONE = {"width": 360, "height": 740}

# What a check of one page reads in the browser: every field named invalid with the texts of
# the elements that describe it (None for an id no element has), ids used twice, the focused
# element, and whether the page is wider than the screen.
PAGE_FACTS = """() => {
  const ids = {};
  document.querySelectorAll('[id]').forEach(e => { ids[e.id] = (ids[e.id] || 0) + 1; });
  const invalid = [...document.querySelectorAll('[aria-invalid="true"]')].map(e => ({
    name: e.name || e.id,
    described: (e.getAttribute('aria-describedby') || '').split(' ').filter(Boolean).map(
      id => document.getElementById(id) ? document.getElementById(id).innerText.trim() : null),
  }));
  const a = document.activeElement;
  return {
    lang: document.documentElement.lang,
    title: document.title,
    invalid,
    duplicate_ids: Object.keys(ids).filter(id => ids[id] > 1),
    focused: a && a !== document.body ? (a.id || a.tagName) : null,
    focused_text: a && a !== document.body ? a.innerText.trim() : '',
    too_wide: document.documentElement.scrollWidth > window.innerWidth,
  };
}"""


@contextlib.asynccontextmanager
async def chromium():
    """Debian's chromium, headless, as every browser test of tests/web launches it."""
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: `python3 run.py test` installs Debian's chromium with apt-get"
    )
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


# `autofocus` is applied when the browser next renders the page, which can come after the load
# event a navigation waits for (a refused survey read its focus as None once in a loaded run):
# the facts are read after two animation frames, when any autofocus has been applied.
RENDERED = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


async def _facts(page) -> dict:
    await page.evaluate(RENDERED)
    return await page.evaluate(PAGE_FACTS)


def _contrast(a: list[float], b: list[float]) -> float:
    """WCAG's contrast ratio of two sRGB colours (0-255 each)."""

    def luminance(rgb: list[float]) -> float:
        c = [v / 255 for v in rgb[:3]]
        c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


async def test_an_address_no_page_serves_answers_a_page_in_indonesian_not_json(live_url):
    """A mistyped address, a bookmarked /keluar, a form's address opened directly: the visitor's
    browser shows the portal's page in Indonesian, not Starlette's English problem+json."""
    async with chromium() as browser:
        page = await browser.new_page(viewport=PHONE)
        for path, status, heading in (
            ("/halaman-yang-tidak-ada", 404, "Halaman tidak ditemukan"),
            ("/pengumuman/R-1/2/lain", 404, "Halaman tidak ditemukan"),
            ("/keluar", 405, "Halaman tidak dapat dibuka langsung"),
            ("/sanggah", 405, "Halaman tidak dapat dibuka langsung"),
        ):
            response = await page.goto(f"{live_url}{path}")
            assert response is not None and response.status == status, path
            assert response.headers["content-type"].startswith("text/html"), path
            assert await page.inner_text("h1") == heading, path
            facts = await _facts(page)
            assert facts["lang"] == "id" and heading in facts["title"], (path, facts)
            assert "Not Found" not in await page.inner_text("body"), path
            assert await page.locator("main a[href='/']").count() == 1, path
            if status == 405:
                assert response.headers["allow"] == "POST", path
        # The service API keeps its problem+json.
        api = await page.goto(f"{live_url}/api/v1/tidak-ada")
        assert api is not None and api.status == 404
        assert api.headers["content-type"] == "application/problem+json"


async def test_the_registration_form_ties_every_error_to_its_field_and_focuses_the_first(
    operator_api,  # noqa: F811 - the fixture imported above
    live_url,
    tmp_path,
):
    """Two reasons against the NIK (its birth-date part, its serial 0000): each has an id of its
    own, the NIK field names both; the page opens with focus on the error summary, and its
    first link moves focus to the NIK field."""
    round_id = await open_round(operator_api, tmp_path, "a11y-form")
    me = registration(0, "F1")  # serial 0000
    async with chromium() as browser:
        page = await browser.new_page(viewport=PHONE)
        await page.goto(f"{live_url}/daftar?round={round_id}")
        wrong_birth = me.model_copy(update={"birth_date": me.birth_date + timedelta(days=1)})
        await fill_and_send(page, wrong_birth, "3,40", "Teknik Informatika")
        await page.wait_for_selector(".errors")
        facts = await _facts(page)
        assert facts["duplicate_ids"] == [], facts
        [nik] = [f for f in facts["invalid"] if f["name"] == "nik"]
        assert len(nik["described"]) == 2 and None not in nik["described"], facts
        assert any("tanggal lahir" in text for text in nik["described"]), facts
        assert any("nomor urut" in text for text in nik["described"]), facts
        assert facts["focused"] == "galat-ringkasan", facts
        assert "Pendaftaran belum dapat diterima" in facts["focused_text"]
        assert not facts["too_wide"], facts

        await page.keyboard.press("Tab")  # the summary's first link
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "isian-nik"


async def test_a_refused_login_withdrawal_and_survey_name_their_fields_and_take_focus(
    operator_api,  # noqa: F811 - the fixture imported above
    live_url,
    tmp_path,
):
    round_id = await open_round(operator_api, tmp_path, "a11y-login")
    me = registration(9103, "F1", gpa=3.4)
    async with chromium() as browser:
        page = await browser.new_page(viewport=PHONE)
        await page.goto(f"{live_url}/daftar?round={round_id}")
        await fill_and_send(page, me, "3,40", "Teknik Informatika")
        number = (await page.inner_text("#nomor-pendaftaran")).strip()

        # The status page writes the TMT as it writes every date, not as ISO's 2027-03-01.
        await page.goto(f"{live_url}/status")
        assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4}", await page.inner_text("#tmt"))

        # The confirmation box left unticked: the box is invalid, named by the reason.
        await page.goto(f"{live_url}/mundur")
        await page.click("form[action='/mundur'] button[type=submit]")
        await page.wait_for_selector("#galat-konfirmasi")
        facts = await _facts(page)
        reason = "Centang pernyataan bahwa Anda memahami akibatnya, lalu kirim lagi."
        assert facts["invalid"] == [{"name": "confirm", "described": [reason]}], facts
        assert facts["focused"] == "galat-konfirmasi", facts

        # The survey sent with nothing chosen (by a browser that does not check `required`):
        # focus at the summary, each question named by its reason.
        await page.goto(f"{live_url}/survei/registration")
        async with page.expect_navigation():
            await page.evaluate("document.querySelector('form.skm').submit()")
        facts = await _facts(page)
        assert facts["focused"] == "galat-survei", facts
        assert len(facts["invalid"]) == 9, facts
        assert all("pilih salah satu jawaban" in f["described"][0] for f in facts["invalid"])

        # A wrong password, in another browser: both fields point at the one reason.
        stranger = await browser.new_page(viewport=PHONE)
        await stranger.goto(f"{live_url}/masuk?round={round_id}")
        await stranger.fill("input[name=number]", number)
        await stranger.fill("input[name=password]", PASSWORD + "-salah")
        await stranger.click("form[action='/masuk'] button[type=submit]")
        await stranger.wait_for_selector("#galat-masuk")
        facts = await _facts(stranger)
        refused = "Nomor pendaftaran/NIK atau kata sandi salah."
        assert facts["invalid"] == [
            {"name": "number", "described": [refused]},
            {"name": "password", "described": [refused]},
        ], facts
        assert facts["focused"] == "galat-masuk", facts


async def _until(what: str, probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := await probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        await asyncio.sleep(0.3)
    return value


async def test_the_public_lookup_ties_its_refusal_to_the_number_and_focuses_it(
    operator_api,  # noqa: F811 - the fixture imported above
    running_worker,
    keys,
    client,
    live_url,
    tmp_path,
):
    """A malformed number on the announcements' lookup: the field is invalid and described by
    the reason, which takes focus (it stands below the form, where a reader would not look)."""
    _, pool = running_worker
    api = operator_api
    round_id = await open_round(api, tmp_path, "a11y-cari")
    config = await api.round_config(round_id)
    result = await api.register(config, registration(9104, "F1"), "sscasn")
    assert result.status == "registered", result.refusals
    number = result.applicant_id
    for window in ("registration", "administration"):
        await _wait_phase(api, round_id, window)
        if window == "administration":
            await _wait_stage(client, round_id, number, {Stage.ADMIN_CHECK})
            await api.report(
                round_id,
                number,
                AdminReport(report_id="adm", reported_by="bkpsdm-verifikator", findings=[]),
            )
        await api.command(
            round_id,
            CloseWindow(
                report_id=f"close-{window}", reported_by=OPERATOR, window=window, reason="uji"
            ),
        )

    async def admin_written():
        return await pool.fetchval(
            "SELECT admin IS NOT NULL FROM applicants WHERE round_id = $1 AND applicant_id = $2",
            round_id,
            number,
        )

    await _until("the administrative result in the read model", admin_written)
    async with pool.acquire() as conn:
        await publish_announcement(
            api,
            conn,
            round_id,
            AnnouncementStage.ADMIN,
            roundkit.test_signer(OPERATOR),
            cipher=ColumnCipher.from_keys(keys),
        )
    async with chromium() as browser:
        page = await browser.new_page(viewport=PHONE)
        response = await page.goto(f"{live_url}/pengumuman/{round_id}/cari?nomor=12x")
        assert response is not None and response.status == 422
        facts = await _facts(page)
        [field] = facts["invalid"]
        assert field["name"] == "nomor" and "tidak valid" in field["described"][0], facts
        assert facts["focused"] == "galat-nomor", facts
        assert not facts["too_wide"], facts
        # A NIK in the field: the browser refuses to send it (the field's pattern), so it never
        # reaches a URL, a proxy's log or the history; a registration number goes.
        await page.fill("#isian-nomor", "3273014501950001")
        await page.click("form button[type=submit]")
        assert await page.eval_on_selector("#isian-nomor", "e => e.validity.patternMismatch")
        assert "3273014501950001" not in page.url
        await page.fill("#isian-nomor", "  abcdefgh234567ab ")
        assert not await page.eval_on_selector("#isian-nomor", "e => e.validity.patternMismatch")


async def test_fields_show_their_edges_links_are_thumb_sized_and_focus_is_drawn_on_a_phone(
    operator_api,  # noqa: F811 - the fixture imported above
    live_url,
    tmp_path,
):
    """At 360 px: every field's border stands out 3:1 from the page (WCAG 1.4.11), every link of
    the header is 44 px high, a checkbox is at least 20 px, a focused field is drawn with an
    outline of 3 px, and nothing is wider than the screen."""
    round_id = await open_round(operator_api, tmp_path, "a11y-css")
    async with chromium() as browser:
        page = await browser.new_page(viewport=PHONE)
        await page.goto(f"{live_url}/daftar?round={round_id}")
        borders = await page.evaluate(
            """() => [...document.querySelectorAll('form input:not([type=hidden]):not([type=checkbox]), form select, form textarea')]
                .map(e => [e.name, getComputedStyle(e).borderTopColor])"""
        )
        background = [255, 255, 255]
        for name, colour in borders:
            rgb = [float(v) for v in colour[colour.index("(") + 1 : -1].split(",")[:3]]
            assert _contrast(rgb, background) >= 3, (name, colour)
        targets = await page.evaluate(
            """() => [...document.querySelectorAll('header.top a, header.top button')]
                .map(e => [e.innerText.trim(), e.getBoundingClientRect().height])"""
        )
        assert targets and all(height >= 44 for _, height in targets), targets
        box = await page.locator("#isian-citizen").bounding_box()
        assert box and box["width"] >= 20 and box["height"] >= 20, box
        await page.focus("#isian-nik")
        await page.keyboard.press("Shift+Tab")
        await page.keyboard.press("Tab")  # focus by keyboard, as :focus-visible wants
        outline = await page.evaluate(
            """() => { const s = getComputedStyle(document.activeElement);
                       return [document.activeElement.id, s.outlineStyle, parseFloat(s.outlineWidth)]; }"""
        )
        assert outline[0] == "isian-nik" and outline[1] == "solid" and outline[2] >= 3, outline
        assert not (await _facts(page))["too_wide"]
