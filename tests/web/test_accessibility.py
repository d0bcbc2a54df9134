"""The portal and the public pages as an applicant on a cheap phone and a screen-reader or
keyboard user meet them, in a real browser (Debian's chromium, headless, driven by Playwright):
a page in Indonesian for an address no page serves, errors tied to their fields with focus at
the first one, fields that can be seen and links that can be tapped at 360 px, a focus that
shows. Specific checks, since axe-core is not available offline.

Without /usr/bin/chromium these tests fail: `python3 run.py test` installs it with apt-get.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS
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


async def _facts(page) -> dict:
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
