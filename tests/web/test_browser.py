"""End to end in a real browser: Debian's chromium, headless, driven by Playwright.

An applicant registers through the portal (a refused attempt first, showing every reason),
logs in with the NIK, reads a TMS with its document's reason, files a sanggah, answers an
optimalisasi offer, and opens the signed public announcement; the services and the committee
play their part through the same engine. The pages run on a real uvicorn port, the round on the
real embedded stack. Screenshots go to out/screenshots/ (CASN_SCREENSHOTS overrides), the README
shows them from docs/screenshots/.

Without /usr/bin/chromium this test fails: `python3 run.py test` installs it with apt-get.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tomli_w

from client.announcements import AnnouncementStage
from client.api import RecruitmentApi
from client.publication import publish_announcement
from domain.codes import Stage
from domain.messages import (
    AdminReport,
    AppealAnswer,
    CloseWindow,
    DocumentFinding,
    GateReport,
    SkbScoreReport,
    SkdReport,
)
from domain.registration import Registration
from runtime.sealed import ColumnCipher
from tests import roundkit
from tests.flows.test_round_end_to_end import _state, _wait_offer, _wait_phase, _wait_stage
from tests.roundkit import (
    OPERATOR,
    TEST_KEYRING,
    compressed_round,
    formasi,
    registration,
)
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
SHOTS = Path(
    os.environ.get("CASN_SCREENSHOTS", Path(__file__).resolve().parents[2] / "out" / "screenshots")
)
PASSWORD = "kata-sandi-yang-panjang-42"


async def fill_and_send(page, me: Registration, gpa: str, major: str) -> None:
    """Fill in the portal's registration form as `me` (formasi F1, umum) and send it."""
    await page.fill("input[name=nik]", me.nik)
    await page.fill("input[name=name]", me.name)
    await page.fill("input[name=birth_date]", me.birth_date.isoformat())
    await page.select_option("select[name=gender]", me.gender.value)
    await page.check("input[name=citizen]")
    await page.select_option("select[name=education_level]", "S1")
    await page.fill("input[name=major]", major)
    await page.fill("input[name=gpa]", gpa)
    await page.select_option("select[name=formasi_code]", "F1")
    await page.select_option("select[name=category]", "umum")
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=password_again]", PASSWORD)
    await page.click("form[action='/daftar'] button[type=submit]")


async def test_applicant_journey_in_a_browser(client, keys, running_worker, live_url, tmp_path):
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: `python3 run.py test` installs Debian's chromium with apt-get"
    )
    from playwright.async_api import async_playwright

    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"web-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 1), formasi("F2", 1)],
        {
            "registration": (-30, 900),
            "administration": (900, 1800),
            "skd": (1800, 2700),
            "skb": (2700, 3600),
            "filing": (3600, 4500),
            "latsar": (4500, 5400),
        },
        appeal_window=20,
        # The sanggah is answered a moment after it is filed; the final one's answer time is only
        # waited out (its window, this and 2 s before optimalisasi).
        answer_within=10,
        offer_within=300,
        t0=datetime.now(UTC),
    )
    path = tmp_path / "round.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(path, OPERATOR)
    SHOTS.mkdir(parents=True, exist_ok=True)

    async def close(window: str) -> None:
        await _wait_phase(api, round_id, window)
        await api.command(
            round_id,
            CloseWindow(
                report_id=f"close-{window}",
                reported_by=OPERATOR,
                window=window,
                reason="semua hasil sudah masuk",
            ),
        )

    me = registration(7, "F1", gpa=3.4, name="Sari Wulandari", female=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # A phone-sized window: the portal must work there.
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            await page.goto(f"{live_url}/")
            await page.click(f"a[href*='{round_id}']")
            await page.wait_for_selector("form[action='/daftar']")

            async def fill_registration(gpa: str, major: str) -> None:
                await fill_and_send(page, me, gpa, major)

            # A refused attempt: every reason is shown, each by its field.
            await fill_registration("2,10", "Sastra Jawa")
            errors = await page.inner_text(".errors")
            assert "IPK" in errors and "Program studi" in errors, errors
            await page.screenshot(path=str(SHOTS / "01-pendaftaran-ditolak.png"), full_page=True)

            await fill_registration("3,40", "Teknik Informatika")
            number = (await page.inner_text("#nomor-pendaftaran")).strip()
            assert len(number) == 16, number
            await page.screenshot(path=str(SHOTS / "02-pendaftaran-diterima.png"), full_page=True)

            # The committee registers two more and closes registration; the verifier finds a
            # document missing for our applicant.
            others = {}
            for serial, code, gpa in ((1, "F1", 3.8), (2, "F2", 3.0)):
                result = await api.register(config, registration(serial, code, gpa=gpa), "sscasn")
                assert result.status == "registered", result.refusals
                others[code] = result.applicant_id
            await close("registration")
            for who in (number, *others.values()):
                await _wait_stage(client, round_id, who, {Stage.ADMIN_CHECK})
                findings = (
                    [DocumentFinding(document="ijazah", reason="belum dilegalisir")]
                    if who == number
                    else []
                )
                await api.report(
                    round_id,
                    who,
                    AdminReport(
                        report_id=f"adm-{who}", reported_by="bkpsdm-verifikator", findings=findings
                    ),
                )
            await close("administration")
            await _wait_stage(client, round_id, number, {Stage.ADMIN_APPEAL})

            # Log in with the NIK; the status shows the TMS and its reason, and the sanggah form.
            context = await browser.new_context(viewport={"width": 390, "height": 844})
            page = await context.new_page()
            await page.goto(f"{live_url}/masuk?round={round_id}")
            await page.fill("input[name=number]", me.nik)
            await page.fill("input[name=password]", PASSWORD)
            await page.click("form[action='/masuk'] button[type=submit]")
            await page.wait_for_selector("h1:has-text('Status saya')")
            status = await page.inner_text("main")
            assert "TMS" in status and "ijazah" in status and "belum dilegalisir" in status, status
            assert "WIB" in status, status
            await page.screenshot(path=str(SHOTS / "03-status-tms.png"), full_page=True)

            await page.fill("form[action='/sanggah'] [name=reason]", "Ijazah sudah dilegalisir.")
            await page.click("form[action='/sanggah'] button[type=submit]")
            await page.wait_for_load_state()
            state = await _state(client, round_id, number)
            assert state.appeal_filed_at is not None, state
            await page.screenshot(path=str(SHOTS / "04-sanggah-terkirim.png"), full_page=True)

            # The sanggah is accepted; SKD: F1's other applicant ranks first, ours second, F2's
            # only applicant falls below the threshold, so F2's seat goes to optimalisasi.
            await api.report(
                round_id,
                number,
                AppealAnswer(report_id="ans", reported_by="bkpsdm-verifikator", accepted=True),
            )
            skd = {
                others["F1"]: (130, 160, 200),
                number: (110, 140, 190),
                others["F2"]: (40, 50, 100),
            }
            for who, (twk, tiu, tkp) in skd.items():
                await _wait_stage(client, round_id, who, {Stage.SKD})
                await api.report(
                    round_id,
                    who,
                    SkdReport(
                        report_id=f"skd-{who}", reported_by="cat-bkn", twk=twk, tiu=tiu, tkp=tkp
                    ),
                )
            await close("skd")
            for who, cat in ((others["F1"], 450), (number, 400)):
                await _wait_stage(client, round_id, who, {Stage.SKB})
                for comp, by, score in (("cat", "cat-bkn", cat), ("praktik", "panel-praktik", 85)):
                    await api.report(
                        round_id,
                        who,
                        SkbScoreReport(
                            report_id=f"{comp}-{who}", reported_by=by, component=comp, score=score
                        ),
                    )
                await api.report(
                    round_id,
                    who,
                    GateReport(
                        report_id=f"h-{who}", reported_by="rsud", component="health", decision="MS"
                    ),
                )
            await close("skb")
            # The final result's sanggah (its window and the time to answer, as long as the
            # administrative one's) passes before optimalisasi offers the seat.
            await _wait_offer(client, round_id, number, timeout=120)

            await page.goto(f"{live_url}/status")
            await page.wait_for_selector("h2:has-text('Tawaran optimalisasi')")
            assert "F2" in await page.inner_text("main")
            # Scores with a decimal comma: "81.500" would read as eighty-one thousand.
            assert re.fullmatch(r"\d+,\d{3}", await page.inner_text("#nilai-skb"))
            assert re.match(r"\d+,\d{3} ", await page.inner_text("#nilai-akhir"))
            await page.screenshot(path=str(SHOTS / "05-tawaran.png"), full_page=True)
            await page.click("form[action='/tawaran'] button:has-text('Terima tawaran')")
            await page.wait_for_load_state()
            placed = await _wait_stage(client, round_id, number, {Stage.FILING}, timeout=60)
            assert (placed.final_code.value, placed.placed_formasi) == ("P/L-2", "F2")

            # The committee publishes the final announcement; the public reads it.
            async with pool.acquire() as conn:
                published = await publish_announcement(
                    api,
                    conn,
                    round_id,
                    AnnouncementStage.FINAL,
                    roundkit.test_signer(OPERATOR),
                    cipher=ColumnCipher.from_keys(keys),
                )
            public = await browser.new_page(viewport={"width": 390, "height": 844})
            await public.goto(f"{live_url}/pengumuman")
            await public.click(f"a[href='/pengumuman/{round_id}']")
            await public.click(f"a[href='/pengumuman/{round_id}/{published.publication.seq}']")
            text = await public.inner_text("main")
            assert number in text and "P/L-2" in text and "audit.py verify-announcements" in text
            row = await public.inner_text(f"#peserta-{number}")
            assert re.search(r"\b\d+,\d{3}\b", row) and not re.search(r"\d\.\d", row), row
            await public.screenshot(path=str(SHOTS / "06-pengumuman-akhir.png"), full_page=True)
        finally:
            await browser.close()


async def test_a_registration_not_yet_answered_says_in_the_browser_that_it_is_being_processed(
    client, keys, running_worker, gateway_state, tmp_path
):
    from playwright.async_api import async_playwright

    from tests.web.conftest import idle_gateway, serving
    from tests.web.test_portal import open_round

    settings, _ = running_worker
    operator = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = await open_round(operator, tmp_path, "web-pending")
    # The portal's engine client on a queue no worker polls: the journey is started and recorded,
    # and cannot answer within the second allowed (a backlog on a deadline day).
    idle = idle_gateway(gateway_state, client, keys)
    me = registration(8, "F1", gpa=3.3, name="Dewi Lestari", female=True)
    number = ""
    try:
        async with serving(idle) as url, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                await page.goto(f"{url}/daftar?round={round_id}")
                await fill_and_send(page, me, "3,30", "Teknik Informatika")
                notice = await page.inner_text("#sedang-diproses")
                number = (await page.inner_text("#nomor-pendaftaran")).strip()
                assert "sudah tercatat dan sedang diproses" in notice
                assert "tidak perlu mendaftar ulang" in notice
                assert len(number) == 16, number
                await page.screenshot(
                    path=str(SHOTS / "10-pendaftaran-diproses.png"), full_page=True
                )
            finally:
                await browser.close()
    finally:
        if number:
            await client.get_workflow_handle(journey_workflow_id(round_id, number)).terminate(
                "test"
            )


async def test_an_unexpected_error_shows_its_request_id_in_the_browser(
    client, keys, running_worker, gateway_state, tmp_path, monkeypatch
):
    """An error nothing expected, on a real uvicorn port: the portal's own page, in Indonesian,
    with the request id the applicant gives the committee (and the gateway's log holds)."""
    import re

    from playwright.async_api import async_playwright

    import client.api as client_api
    from tests.roundkit import BrokenQuery
    from tests.web.conftest import serving
    from tests.web.test_portal import open_round

    settings, _ = running_worker
    operator = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = await open_round(operator, tmp_path, "web-broken")
    monkeypatch.setattr(client_api, "ROUND_STATE", BrokenQuery())
    async with serving(gateway_state) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            response = await page.goto(f"{url}/daftar?round={round_id}")
            assert response is not None and response.status == 500
            assert await page.inner_text("h1") == "Terjadi kesalahan"
            text = await page.inner_text("main")
            found = re.search(r"kepada panitia: ([0-9a-f]{32})\.", text)
            assert found, text
            assert response.headers.get("content-type", "").startswith("text/html")
            await page.screenshot(path=str(SHOTS / "11-kesalahan.png"), full_page=True)
        finally:
            await browser.close()


async def test_the_read_model_out_of_reach_shows_the_unavailable_page_in_the_browser(
    gateway_state, monkeypatch
):
    """The public announcements with the read model out of reach, on a real uvicorn port: the
    portal's page saying the service is unavailable (503, Retry-After), in Indonesian, nothing of
    the database's own words."""
    import asyncpg
    from playwright.async_api import async_playwright

    from tests.web.conftest import serving

    dead = await asyncpg.create_pool("postgresql://casn@127.0.0.1:9/casn", min_size=0)
    monkeypatch.setattr(gateway_state, "pool", dead)
    try:
        async with serving(gateway_state) as url, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                response = await page.goto(f"{url}/pengumuman")
                assert response is not None and response.status == 503
                assert response.headers.get("retry-after") == "30"
                assert await page.inner_text("h1") == "Layanan sedang tidak tersedia"
                text = await page.inner_text("main")
                assert "coba lagi" in text and "127.0.0.1" not in text
                await page.screenshot(
                    path=str(SHOTS / "12-data-tidak-tersedia.png"), full_page=True
                )
            finally:
                await browser.close()
    finally:
        monkeypatch.undo()
        await dead.close()
