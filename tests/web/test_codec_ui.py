"""An auditor reads a journey's decoded history in the Temporal Web UI, in a real browser.

The session's embedded dev server runs its Web UI with `--ui-codec-endpoint` set to the codec
server's address (TEST_CODEC_PORT). The codec server runs as `audit.py serve-codec` builds it in
the embedded mode (the auditor's token generated under the stack's <data_dir>/keys, the UI's
origin allowed). The auditor logs in on the codec server with that token, tells the UI to send
cross-origin credentials (the UI's own Codec Server setting: the dev server cannot), opens the
journey's history and reads the verifier's report in plain JSON. Before logging in, the same
page shows ciphertext only.

Screenshots go to out/screenshots/ (CASN_SCREENSHOTS overrides); docs/screenshots/ holds the ones
the docs show, copied from there by hand when a page changes (a test run leaves tracked files alone).
"""

from __future__ import annotations

import asyncio
import socket
import tomllib
import uuid
from urllib.parse import quote

import httpx

from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import AdminReport, DocumentFinding
from gateway.codec_server import (
    AUDITOR_TOKENS_FILE,
    build_codec_server,
    create_codec_app,
    uvicorn_server,
)
from tests.conftest import TEST_TEMPORAL_UI_PORT
from tests.flows.test_round_end_to_end import _wait_stage
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    TEST_KEYRING,
    compressed_round,
    create_round_file,
    formasi,
    registration,
)
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS
from workflows.ids import journey_workflow_id

REASON = "legalisir ijazah tidak terbaca"  # what the verifier wrote: only the decoded report has it


async def test_an_auditor_reads_a_decoded_report_in_the_web_ui(
    client, keys, running_worker, stack, stack_settings, tmp_path
):
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: `python3 run.py test` installs Debian's chromium with apt-get"
    )
    from playwright.async_api import async_playwright

    # A journey whose history holds a verifier's report.
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"codec-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], CLOSED_BY_COMMITTEE)
    await create_round_file(api, config, tmp_path)
    result = await api.register(config, registration(1, "F1"), "sscasn")
    assert result.status == "registered", result.refusals
    applicant = result.applicant_id
    await _wait_stage(client, round_id, applicant, {Stage.ADMIN_CHECK})
    await api.report(
        round_id,
        applicant,
        AdminReport(
            report_id="adm-codec",
            reported_by="bkpsdm-verifikator",
            findings=[DocumentFinding(document="ijazah", reason=REASON)],
        ),
    )

    # The codec server as `audit.py serve-codec` runs it on the embedded stack.
    codec = build_codec_server(stack_settings, keys)
    endpoint = stack_settings.codec_endpoint
    ui = f"http://127.0.0.1:{TEST_TEMPORAL_UI_PORT}"
    assert ui in codec.origins
    async with httpx.AsyncClient() as http:  # the embedded dev server gave its UI the endpoint
        ui_settings = (await http.get(f"{ui}/api/v1/settings")).json()
    assert ui_settings["Codec"]["Endpoint"] == endpoint, ui_settings["Codec"]
    tokens = tomllib.loads((stack_settings.data_dir / "keys" / AUDITOR_TOKENS_FILE).read_text())
    [token] = tokens.values()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((stack_settings.codec_host, stack_settings.codec_port))
    server = uvicorn_server(create_codec_app(codec), stack_settings.codec_host, 0)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.05)

    journey = client.get_workflow_handle(journey_workflow_id(round_id, applicant))
    run_id = (await journey.describe()).run_id
    history = (
        f"{ui}/namespaces/{stack_settings.temporal_namespace}/workflows/"
        f"{quote(journey.id, safe='')}/{run_id}/history"
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "07-riwayat-terdekode.png"
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1600, "height": 1000})

                # Not logged in: the UI's codec call is refused, the report stays ciphertext.
                await page.goto(history)
                await page.wait_for_selector("[data-testid=data-encoder-status-error]")
                await page.locator("text=Workflow Execution Update Accepted").first.click()
                await page.wait_for_selector("text=Accepted Request")
                assert REASON not in await page.inner_text("main")

                # The auditor logs in on the codec server with the token.
                await page.goto(f"{endpoint}/login")
                await page.fill("input[name=token]", token)
                await page.click("form[action='/login'] button[type=submit]")
                assert "Logged in as auditor" in await page.inner_text("body")

                # In the UI's Codec Server setting: this endpoint, with cross-origin credentials.
                await page.goto(history)
                await page.click("[data-testid=data-encoder-status-error]")
                await page.click("[data-testid=use-local-endpoint-input]", force=True)
                await page.fill("#data-encoder-endpoint-input", endpoint)
                await page.click("[data-testid=data-encoder-include-credentials]")
                await page.click("#data-encoder-settings button:has-text('Apply')")

                # The history: the verifier's report, decoded.
                await page.goto(history)
                accepted = page.locator("text=Workflow Execution Update Accepted").first
                await accepted.click()
                report = page.locator(f"text={REASON}").first
                await report.wait_for(timeout=15_000)
                await report.scroll_into_view_if_needed()
                await page.screenshot(path=str(shot), full_page=True)
            finally:
                await browser.close()
    finally:
        server.should_exit = True
        await serving
