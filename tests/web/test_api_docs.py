"""The OpenAPI page (/api/docs) in a real browser: Swagger UI served by the gateway itself, under a
policy that lets the page run the gateway's own script and style only.

It loaded Swagger UI from a CDN before, with no integrity hash: a blank page on a machine with no
way out (this one), and in production whatever the CDN served ran on the portal's origin. The
browser reaches the gateway by a host name, as an integrator does, not by loopback, which Swagger
UI treats apart (Chromium's host resolver maps the name to 127.0.0.1). A script, style sheet or
image the page's policy refuses is a console error, which fails the test. Screenshots go to
out/screenshots/ (CASN_SCREENSHOTS overrides).
"""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio

from client.api import RecruitmentApi
from gateway.deps import ApiKeys, Gateway, RoundDirectory
from tests.web.conftest import serving
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOST = "gateway.example.test"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest_asyncio.fixture(loop_scope="session")
async def docs_gateway(client, keys, stack_settings, gateway_pool):
    """A gateway on the session's stack with no worker: the docs page asks nothing of either."""
    api = RecruitmentApi(client, "no-worker", keys.pseudonym_key)
    return Gateway(
        settings=stack_settings,
        api=api,
        pool=gateway_pool,
        api_keys=ApiKeys({}),
        portal=None,
        rounds=RoundDirectory(api),
    )


async def test_the_api_docs_page_lists_every_operation_from_the_gateway_alone(docs_gateway):
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing"
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with serving(docs_gateway) as url, async_playwright() as pw:
        origin = f"http://{HOST}:{urlsplit(url).port}"
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            requested: list[str] = []
            errors: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            response = await page.goto(f"{origin}/api/docs")
            assert response is not None and response.status == 200
            async with httpx.AsyncClient() as http:
                spec = (await http.get(f"{url}/openapi.json")).json()
            operations = sum(len(METHODS & set(ops)) for ops in spec["paths"].values())
            with contextlib.suppress(PlaywrightTimeout):  # a blank page: said below
                await page.wait_for_selector(".opblock", timeout=20_000)
                await page.wait_for_load_state("networkidle")
            shown = await page.locator(".opblock").count()
            await page.screenshot(path=str(SHOTS / "api-docs.png"))
            elsewhere = [u for u in requested if not u.startswith(origin + "/")]
            assert elsewhere == [], elsewhere
            assert operations > 20 and shown == operations, (shown, operations)
            # One operation opened, as an integrator reads it: its body's schema and example.
            await page.locator(".opblock-summary").first.click()
            await page.wait_for_selector(".opblock-body .model-example", timeout=10_000)
            await page.wait_for_load_state("networkidle")
            await page.screenshot(path=str(SHOTS / "api-docs-operation.png"))
        finally:
            await browser.close()

    assert [u for u in requested if not u.startswith(origin + "/")] == []
    assert errors == [], errors  # a script or style the policy refused says so here


async def test_swagger_ui_s_files_are_served_by_the_gateway_and_kept_by_caches(docs_gateway):
    from gateway.app import create_app

    transport = httpx.ASGITransport(app=create_app(docs_gateway), client=("203.0.113.5", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        page = await http.get("/api/docs")
        script = await http.get("/api/docs/assets/swagger-ui-bundle.js")
        again = await http.get(
            "/api/docs/assets/swagger-ui-bundle.js",
            headers={"If-None-Match": script.headers["etag"]},
        )

    assert page.headers["cache-control"] == "no-store"
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content
    assert "cache-control" not in script.headers  # kept by its ETag, the same for everyone
    assert again.status_code == 304
