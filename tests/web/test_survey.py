"""The satisfaction survey (SKM, issue 16 item 3) on the real stack: anonymous storage, the
portal's survey form (over HTTP and in a real browser), and the results per stage.

Anonymous: the answers' table has no applicant column, the record that an applicant answered
holds nothing of the answers, and two applicants' equal answers cannot be told apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from datetime import UTC, date, datetime

import asyncpg
import pytest
import pytest_asyncio
from rich.console import Console

import starter
from client.api import RecruitmentApi
from client.status import ApplicantView
from client.survey import open_stages, record_answers, survey_results, survey_rows, taken_stages
from domain.codes import Terminal
from domain.errors import RuleViolation
from domain.skm import ELEMENTS, ikm
from tests.flows.test_round_end_to_end import _state
from tests.roundkit import TEST_KEYRING, registration
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS
from tests.web.test_portal import (
    PASSWORD,
    app_for,
    client_on,
    form_of,
    open_round,
    registration_number,
    submit_registration,
    text_of,
    tokens,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

INSTANSI = "Pemerintah Kabupaten Contoh"


@pytest_asyncio.fixture(loop_scope="session")
async def operator_api(client, keys, running_worker):
    """The operator's client (every test identity's key), to create rounds."""
    settings, _ = running_worker
    return RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)


@pytest_asyncio.fixture(loop_scope="session")
async def pool(running_worker):
    _, pool = running_worker
    return pool


# --- storage --------------------------------------------------------------------------------------


async def test_the_answers_table_has_no_applicant_column_and_a_day_not_a_time(pool):
    async with pool.acquire() as conn:
        columns = {
            r["table_name"]: r["columns"]
            for r in await conn.fetch(
                """SELECT table_name, array_agg(column_name::text ORDER BY column_name) AS columns
                   FROM information_schema.columns
                   WHERE table_name IN ('skm_responses', 'skm_taken') GROUP BY table_name"""
            )
        }
        kinds = dict(
            await conn.fetch(
                """SELECT column_name, data_type FROM information_schema.columns
                   WHERE table_name = 'skm_responses'"""
            )
        )
    assert columns["skm_responses"] == [
        "answers",
        "id",
        "instansi",
        "round_id",
        "stage",
        "submitted_on",
    ]
    assert columns["skm_taken"] == ["applicant_id", "round_id", "stage"]
    assert (kinds["submitted_on"], kinds["id"]) == ("date", "uuid")


async def test_an_applicant_answers_a_stage_once_and_equal_answers_cannot_be_told_apart(pool):
    round_id = f"skm-{uuid.uuid4().hex[:6]}"
    answers = [4, 3, 3, 4, 4, 3, 4, 2, 3]
    async with pool.acquire() as conn:
        for who in ("AAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBB"):
            stored = await record_answers(
                conn,
                round_id=round_id,
                instansi=INSTANSI,
                applicant_id=who,
                stage="registration",
                answers=answers,
                day=date(2026, 12, 2),
            )
            assert stored
        again = await record_answers(
            conn,
            round_id=round_id,
            instansi=INSTANSI,
            applicant_id="AAAAAAAAAAAAAAAA",
            stage="registration",
            answers=[1] * 9,
        )
        responses = await conn.fetch(
            "SELECT * FROM skm_responses WHERE round_id = $1 ORDER BY id", round_id
        )
        taken = await taken_stages(conn, round_id, "AAAAAAAAAAAAAAAA")
    assert again is False  # the second answer of the same stage is not stored
    assert taken == {"registration"}
    # Two rows, the same but for a random (version 4) id: nothing says whose is whose.
    assert len(responses) == 2
    without_id = [{k: v for k, v in dict(r).items() if k != "id"} for r in responses]
    assert without_id[0] == without_id[1]
    assert without_id[0]["answers"] == answers
    assert all(r["id"].version == 4 for r in responses)


async def test_invalid_answers_are_refused_before_and_by_the_database(pool):
    round_id = f"skm-{uuid.uuid4().hex[:6]}"
    async with pool.acquire() as conn:
        with pytest.raises(RuleViolation) as refused:
            await record_answers(
                conn,
                round_id=round_id,
                instansi=INSTANSI,
                applicant_id="CCCCCCCCCCCCCCCC",
                stage="registration",
                answers=[4, 4, 4, 4, 4, 4, 4, 4, 5],
            )
        assert refused.value.field == "U9 (Sarana dan prasarana)"
        with pytest.raises(RuleViolation, match="stage='interview'"):
            await record_answers(
                conn,
                round_id=round_id,
                instansi=INSTANSI,
                applicant_id="CCCCCCCCCCCCCCCC",
                stage="interview",
                answers=[4] * 9,
            )
        # Nothing of a refused response was recorded, not even that it was tried.
        assert await taken_stages(conn, round_id, "CCCCCCCCCCCCCCCC") == frozenset()
        for bad in ([4] * 8, [4, 4, 4, 4, 0, 4, 4, 4, 4]):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "INSERT INTO skm_responses (round_id, instansi, stage, answers, submitted_on) "
                    "VALUES ($1, $2, 'skd', $3, current_date)",
                    round_id,
                    INSTANSI,
                    bad,
                )


async def test_results_per_stage_and_per_instansi_match_the_ikm_by_hand(pool, stack):
    round_id = f"skm-{uuid.uuid4().hex[:6]}"
    answered = {
        "registration": [[4] * 9, [3] * 9],  # NRR 3.5 each: 3.5 x 25 = 87.50, B
        "skd": [[4] * 9, [4] * 9, [4, 4, 4, 4, 4, 4, 4, 4, 1]],  # 105/27 x 25 = 97.22, A
    }
    async with pool.acquire() as conn:
        serial = 0
        for stage, responses in answered.items():
            for answers in responses:
                serial += 1
                await record_answers(
                    conn,
                    round_id=round_id,
                    instansi=INSTANSI,
                    applicant_id=f"{serial:016d}",
                    stage=stage,
                    answers=answers,
                )
        results = await survey_results(conn, round_id)
        rows = await survey_rows(conn, round_id)
    assert list(results) == ["registration", "skd"]  # nobody answered the end yet
    assert (results["registration"].value, results["registration"].band) == (87.5, "B")
    assert (results["skd"].value, results["skd"].band) == (97.22, "A")
    assert results["skd"].per_element[8] == 3.0  # (4 + 4 + 1) / 3
    everyone = [a for responses in answered.values() for a in responses]
    assert [(r.instansi, r.stage, r.result.respondents) for r in rows] == [
        (INSTANSI, "registration", 2),
        (INSTANSI, "skd", 3),
        (INSTANSI, "all", 5),
    ]
    assert rows[-1].result == ikm(everyone)  # every stage together: 168 / 45 x 25 = 93.33, A
    assert (rows[-1].result.value, rows[-1].result.band) == (93.33, "A")

    # `starter.py survey-results ROUND`: the same figures, as a table and as JSON.
    console = Console(record=True, width=200)
    ctx = starter.Context(api=None, database_url=stack.database_url, console=console)
    await starter.survey_results(ctx, round_id)
    table = console.export_text()
    lines = {line.split("│")[1].strip(): line for line in table.splitlines() if "│" in line}
    ikm_cells = [cell.strip() for cell in lines["IKM (mean NRR x 25)"].split("│")[2:5]]
    assert ikm_cells == ["87.50", "97.22", "93.33"], table
    assert "B Baik" in lines["band"] and lines["band"].count("A Sangat Baik") == 2, table
    assert "all stages" in table and INSTANSI in table, table
    # 2 and 3 respondents are too few to publish (their figures come close to the answers).
    assert "registration *" in table and "skd *" in table and "all stages *" not in table
    assert "fewer than 5 respondents" in table and "do not publish" in table
    await starter.survey_results(ctx, round_id, as_json=True)
    document = json.loads(console.export_text().strip().splitlines()[-1])
    assert [
        (r["stage"], r["value"], r["band"], r["few_respondents"]) for r in document["results"]
    ] == [
        ("registration", 87.5, "B", True),
        ("skd", 97.22, "A", True),
        ("all", 93.33, "A", False),
    ]


# --- the portal -----------------------------------------------------------------------------------


def _answers(value: int = 3) -> dict[str, str]:
    return {e.code: str(value) for e in ELEMENTS}


async def test_the_portal_offers_refuses_stores_and_thanks(
    gateway_state, operator_api, pool, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "skm-http")
    app = app_for(gateway_state)
    async with client_on(app) as browser:
        done = await submit_registration(browser, round_id, form_of(registration(41, "F1")))
        assert done.status_code == 201, text_of(done.text)
        number = registration_number(done.text)

        status = await browser.get("/status")
        assert 'href="/survei/registration"' in status.text, text_of(status.text)
        assert "/survei/skd" not in status.text and "/survei/end" not in status.text

        # A stage not open to this applicant yet (no SKD result): no form, and a form sent
        # anyway (with a valid token for it) is refused, nothing stored.
        closed = await browser.get("/survei/skd")
        assert closed.status_code == 409 and "belum dibuka" in text_of(closed.text)
        binding = "session:" + hashlib.sha256(browser.cookies["casn_sesi"].encode()).hexdigest()
        forged_open = app.state.portal.tokens.issue(binding, "survei-skd")
        refused = await browser.post("/survei/skd", data={**_answers(), "csrf_token": forged_open})
        assert refused.status_code == 409 and "belum dibuka" in text_of(refused.text)
        assert (await browser.get("/survei/wawancara")).status_code == 404

        form = await browser.get("/survei/registration")
        assert form.status_code == 200
        [token] = tokens(form.text)["/survei/registration"]
        page = text_of(form.text)
        assert all(e.question in page for e in ELEMENTS), page
        assert "anonim" in page

        # No token, another form's token: 403, nothing done.
        assert (await browser.post("/survei/registration", data=_answers())).status_code == 403
        skd_token = app.state.portal.tokens.issue(binding, "survei-skd")
        wrong = await browser.post(
            "/survei/registration", data={**_answers(), "csrf_token": skd_token}
        )
        assert wrong.status_code == 403

        # A bad answer and a missing one: each named, in Indonesian; the others kept.
        bad = {**_answers(), "U3": "5", "csrf_token": token}
        del bad["U9"]
        invalid = await browser.post("/survei/registration", data=bad)
        assert invalid.status_code == 422
        shown = text_of(invalid.text)
        assert "Waktu penyelesaian: jawaban '5' tidak sah; pilih 1 sampai 4." in shown, shown
        assert "Sarana dan prasarana: pilih salah satu jawaban, 1 sampai 4." in shown
        assert 'id="jawab-U1-3" type="radio" name="U1" value="3" required checked' in invalid.text
        async with pool.acquire() as conn:
            assert await taken_stages(conn, round_id, number) == frozenset()

        thanked = await browser.post(
            "/survei/registration", data={**_answers(4), "U8": "2", "csrf_token": token}
        )
        assert thanked.status_code == 200, text_of(thanked.text)
        assert "Terima kasih" in thanked.text

        twice = await browser.post(
            "/survei/registration", data={**_answers(1), "csrf_token": token}
        )
        assert twice.status_code == 409 and "sudah mengisi" in text_of(twice.text)
        again = await browser.get("/survei/registration")
        assert again.status_code == 409
        status = await browser.get("/status")
        assert "/survei/" not in status.text

    async with pool.acquire() as conn:
        stored = await conn.fetch(
            "SELECT instansi, stage, answers FROM skm_responses WHERE round_id = $1", round_id
        )
        results = await survey_results(conn, round_id)
    assert [dict(r) for r in stored] == [
        {
            "instansi": "Pemerintah Kabupaten Uji",
            "stage": "registration",
            "answers": [4, 4, 4, 4, 4, 4, 4, 2, 4],
        }
    ]
    assert results["registration"].value == 94.44  # 34 / 9 x 25


async def test_the_survey_in_a_browser(gateway_state, operator_api, live_url, pool, tmp_path):
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing"
    from playwright.async_api import async_playwright

    round_id = await open_round(operator_api, tmp_path, "skm-web")
    reg = registration(42, "F1")
    async with client_on(app_for(gateway_state)) as http:
        done = await submit_registration(http, round_id, form_of(reg))
        assert done.status_code == 201, text_of(done.text)
        number = registration_number(done.text)

    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            await page.goto(f"{live_url}/masuk?round={round_id}")
            await page.fill("input[name=number]", number)
            await page.fill("input[name=password]", PASSWORD)
            await page.click("form[action='/masuk'] button[type=submit]")
            await page.wait_for_selector("h1:has-text('Status saya')")
            await page.click("#survei a[href='/survei/registration']")
            await page.wait_for_selector("h1:has-text('Survei Kepuasan Masyarakat')")
            assert await page.locator("fieldset").count() == 9
            for i, e in enumerate(ELEMENTS):
                await page.check(f"#jawab-{e.code}-{3 + i % 2}")  # 3, 4, 3, 4, ...
            shot = SHOTS / "08-survei-kepuasan.png"
            await page.screenshot(path=str(shot), full_page=True)
            await page.click("form.skm button[type=submit]")
            await page.wait_for_selector("h1:has-text('Terima kasih')")
            await page.click("a[href='/status']")
            await page.wait_for_selector("h1:has-text('Status saya')")
            assert await page.locator("#survei").count() == 0
            assert "Survei kepuasan" not in await page.inner_text("main")
        finally:
            await browser.close()
    async with pool.acquire() as conn:
        results = await survey_results(conn, round_id)
    # 3, 4, 3, 4, 3, 4, 3, 4, 3: 31 / 9 x 25 = 86.11, B
    assert (results["registration"].value, results["registration"].band) == (86.11, "B")


async def test_mixing_leaves_nothing_in_the_database_that_pairs_an_answer_with_its_applicant(
    pool, stack
):
    round_id = f"skm-{uuid.uuid4().hex[:6]}"
    async with pool.acquire() as conn:
        for serial in range(6):
            await record_answers(
                conn,
                round_id=round_id,
                instansi=INSTANSI,
                applicant_id=f"MIX{serial:013d}",
                stage="end",
                answers=[1 + serial % 4] * 9,
            )

        async def hidden() -> tuple[list, list, list]:
            answers = await conn.fetch(
                "SELECT xmin::text AS tx, id FROM skm_responses WHERE round_id = $1 ORDER BY ctid",
                round_id,
            )
            taken = await conn.fetch(
                "SELECT xmin::text AS tx FROM skm_taken WHERE round_id = $1 ORDER BY ctid",
                round_id,
            )
            return [r["tx"] for r in answers], [r["tx"] for r in taken], [r["id"] for r in answers]

        # Written together, an answer and its applicant's record share a transaction id, and
        # both tables hold them in the order they came in: the raw tables pair them.
        answer_tx, taken_tx, _ = await hidden()
        assert answer_tx == taken_tx and len(set(answer_tx)) == 6

        # `starter.py survey-mix` (on its own connection: the table is locked a moment).
        console = Console(record=True, width=200)
        mixed = await starter.survey_mix(starter.Context(None, stack.database_url, console))
        assert mixed >= 6 and f"{mixed} survey answers rewritten" in console.export_text()
        answer_tx, taken_tx, ids = await hidden()
        assert len(set(answer_tx)) == 1 and not set(answer_tx) & set(taken_tx)
        assert ids == sorted(ids)  # stored in the order of their random ids
        results = await survey_results(conn, round_id)
    # 1, 2, 3, 4, 1, 2 on every element: 13 / 6 x 25 = 54.17, D; the answers themselves unchanged
    assert (results["end"].value, results["end"].band) == (54.17, "D")


async def test_the_stages_open_follow_the_journey():
    def view(**facts) -> ApplicantView:
        return ApplicantView(
            round_id="r",
            applicant_id="AAAAAAAAAAAAAAAA",
            formasi_code="F1",
            stage="skd",
            stage_label="SKD",
            as_of=datetime(2026, 12, 2, tzinfo=UTC),
            **facts,
        )

    assert open_stages(view()) == ("registration",)
    assert open_stages(view(skd_code="P/L")) == ("registration", "skd")
    assert open_stages(view(skd_code="T/L", terminal=Terminal.SKD_FAILED)) == (
        "registration",
        "skd",
        "end",
    )
    assert open_stages(view(terminal=Terminal.TMS)) == ("registration", "end")  # no SKD sat


async def test_the_end_survey_opens_once_the_journey_has_ended(
    gateway_state, operator_api, client, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "skm-end")
    async with client_on(app_for(gateway_state)) as browser:
        done = await submit_registration(browser, round_id, form_of(registration(43, "F1")))
        number = registration_number(done.text)
        status = await browser.get("/status")
        assert "/survei/end" not in status.text
        # The applicant withdraws; the journey ends APS.
        [token] = tokens((await browser.get("/mundur")).text)["/mundur"]
        await browser.post("/mundur", data={"confirm": "ya", "csrf_token": token})
        deadline = time.monotonic() + 30
        while (await _state(client, round_id, number)).terminal is None:
            assert time.monotonic() < deadline, "the journey did not end"
            await asyncio.sleep(0.3)

        status = await browser.get("/status")
        offered = re.findall(r'href="/survei/(\w+)"', status.text)
        assert offered == ["registration", "end"], text_of(status.text)  # no SKD was sat
        form = await browser.get("/survei/end")
        [token] = tokens(form.text)["/survei/end"]
        thanked = await browser.post("/survei/end", data={**_answers(2), "csrf_token": token})
        assert thanked.status_code == 200 and "akhir seleksi" in text_of(thanked.text)
        status = await browser.get("/status")
        assert re.findall(r'href="/survei/(\w+)"', status.text) == ["registration"]
    async with gateway_state.pool.acquire() as conn:
        results = await survey_results(conn, round_id)
    assert list(results) == ["end"] and results["end"].value == 50.0  # 2 x 25, D
