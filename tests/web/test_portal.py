"""The applicant portal on the real stack: register, log in, read one's status with its reasons,
file a sanggah, withdraw; every form's token, the session cookie, the rate limits.

Each test runs its own compressed round (the worker's task queue is the test's own). Pages are
read as a phone's browser would get them: HTML, through httpx on the ASGI app.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
import structlog
import tomli_w
from argon2 import PasswordHasher
from pydantic import ValidationError
from temporalio.service import RPCError, RPCStatusCode

import client.api as client_api
import client.status as client_status
from client.api import RecruitmentApi, applicant_id_for
from client.sanctions import SanctionRegister, read_national_list
from domain.administration import DocumentFinding
from domain.codes import Stage
from domain.messages import AdminReport, CloseWindow
from domain.registration import Registration
from gateway.accounts import Accounts
from gateway.app import create_app
from gateway.portal import Portal, indonesian
from runtime.settings import Settings
from tests.flows.test_round_end_to_end import _state, _wait_phase, _wait_stage
from tests.roundkit import (
    OPEN_NOW,
    OPERATOR,
    TEST_KEYRING,
    BrokenQuery,
    SilentQuery,
    UnreadableQuery,
    compressed_round,
    formasi,
    registration,
)
from tests.web.conftest import auth, idle_gateway
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

VERIFIER = "bkpsdm-verifikator"
PASSWORD = "kata-sandi-rahasia-1"
# argon2id, cheaper than the library's defaults so that the tests stay fast; the portal's own
# (PasswordHasher()) is what test_a_login_rehashes_a_password_stored_under_other_parameters
# moves a password to.
FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
CLIENT = ("203.0.113.7", 50000)


def app_for(gw, **settings):
    """The gateway's app (with `settings` changed), its portal hashing with FAST."""
    if settings:
        gw = dataclasses.replace(gw, settings=gw.settings.model_copy(update=settings))
    app = create_app(gw)
    app.state.portal = dataclasses.replace(Portal.of(gw), accounts=Accounts(gw.pool, hasher=FAST))
    return app


def client_on(app, address=CLIENT) -> httpx.AsyncClient:
    """A browser at client address `address`."""
    transport = httpx.ASGITransport(app=app, client=address)
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


def client_for(gw, address=CLIENT, **settings) -> httpx.AsyncClient:
    """A browser on a portal of its own."""
    return client_on(app_for(gw, **settings), address)


@pytest_asyncio.fixture(loop_scope="session")
async def browser(gateway_state):
    async with client_for(gateway_state) as c:
        yield c


@pytest_asyncio.fixture(loop_scope="session")
async def operator_api(client, keys, running_worker):
    """The operator's and the services' client (every test identity's key)."""
    settings, _ = running_worker
    return RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)


async def open_round(
    api: RecruitmentApi, tmp_path, prefix: str, seconds: dict | None = None, **kwargs
) -> str:
    """A round whose registration is open for five minutes, with formasi F1 (S1 Teknik
    Informatika, quota 1) and F2 (the same, for putra/putri Papua); its windows `seconds` from
    now (roundkit's OPEN_NOW by default)."""
    round_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 1), formasi("F2", 1, category="putra_putri_papua")],
        seconds or OPEN_NOW,
        **kwargs,
    )
    path = tmp_path / f"{round_id}.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(path, OPERATOR)
    # The front page lists rounds from Temporal's visibility, which takes the start a moment later.
    query = f"CasnKind = 'round' AND WorkflowId = '{round_id}/round'"
    for _ in range(100):
        if [wf async for wf in api.client.list_workflows(query)]:
            return round_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"round {round_id} never became visible")


def tokens(page: str) -> dict[str, list[str]]:
    """The form tokens of a page, by the action of their form."""
    found: dict[str, list[str]] = {}
    for form in re.finditer(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', page, re.S):
        for token in re.findall(r'name="csrf_token" value="([^"]+)"', form[2]):
            found.setdefault(form[1], []).append(html.unescape(token))
    return found


def field_errors(page: str) -> dict[str, list[str]]:
    """The errors the page shows next to each field (by the field's name)."""
    found: dict[str, list[str]] = {}
    for field, text in re.findall(
        r'<p class="field-error" id="galat-[^"]+" data-field="([^"]+)">([^<]*)</p>', page
    ):
        found.setdefault(field, []).append(html.unescape(text))
    return found


def text_of(page: str) -> str:
    """The page's text without tags, whitespace folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def form_of(reg: Registration, password: str = PASSWORD, again: str | None = None) -> dict:
    """The registration form as an applicant fills it in."""
    return {
        "nik": reg.nik,
        "name": reg.name,
        "birth_date": reg.birth_date.isoformat(),
        "gender": reg.gender.value,
        "education_level": reg.education_level,
        "major": reg.major,
        "gpa": f"{reg.gpa:.2f}".replace(".", ","),
        "formasi_code": reg.formasi_code,
        "category": reg.category.value,
        **({"citizen": "ya"} if reg.citizen else {}),
        "password": password,
        "password_again": password if again is None else again,
    }


async def submit_registration(
    browser: httpx.AsyncClient, round_id: str, form: dict
) -> httpx.Response:
    """Open the registration page (its token), then send the form."""
    page = await browser.get("/daftar", params={"round": round_id})
    assert page.status_code == 200, page.text
    [token] = tokens(page.text)["/daftar"]
    return await browser.post("/daftar", data={**form, "round": round_id, "csrf_token": token})


async def log_in(browser: httpx.AsyncClient, round_id: str, number: str, password: str):
    page = await browser.get("/masuk", params={"round": round_id})
    [token] = tokens(page.text)["/masuk"]
    return await browser.post(
        "/masuk",
        data={"round": round_id, "number": number, "password": password, "csrf_token": token},
    )


def registration_number(page: str) -> str:
    found = re.search(r'id="nomor-pendaftaran">([A-Z2-7]{16})<', page)
    assert found, text_of(page)
    return found[1]


async def to_admin_appeal(
    client, operator_api: RecruitmentApi, round_id: str, numbers, findings
) -> None:
    """Close registration, report each of `numbers` TMS with `findings`, close the administration
    window, and wait until every journey is in its sanggah window."""
    await _close(operator_api, round_id, "registration")
    for number in numbers:
        await _wait_stage(client, round_id, number, {Stage.ADMIN_CHECK})
        await operator_api.report(
            round_id,
            number,
            AdminReport(report_id=f"adm-{number}", reported_by=VERIFIER, findings=findings),
        )
    await _wait_phase(operator_api, round_id, "administration")
    await _close(operator_api, round_id, "administration")
    for number in numbers:
        await _wait_stage(client, round_id, number, {Stage.ADMIN_APPEAL})


async def _close(operator_api: RecruitmentApi, round_id: str, window: str) -> None:
    command = CloseWindow(
        report_id=f"close-{window}", reported_by=OPERATOR, window=window, reason="uji"
    )
    await operator_api.command(round_id, command)


async def portal_rows(pool, round_id: str) -> list[dict]:
    """The round's accounts, then its sessions: the columns the gateway's role may read of them
    (migration 024), on the gateway's pool."""
    async with pool.acquire() as conn:
        accounts = await conn.fetch(
            "SELECT round_id, applicant_id, password_hash FROM portal_accounts WHERE round_id = $1",
            round_id,
        )
        sessions = await conn.fetch(
            "SELECT round_id, applicant_id, expires_at FROM portal_sessions WHERE round_id = $1",
            round_id,
        )
    return [dict(r) for r in [*accounts, *sessions]]


# --- registration -------------------------------------------------------------------------------


async def test_an_applicant_registers_online_and_gets_an_account_and_a_number(
    browser, operator_api, gateway_state, client, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-reg")
    front = await browser.get("/")
    assert front.status_code == 200
    assert f'href="/daftar?round={round_id}"' in front.text
    reg = registration(1, "F1", name="Siti Rahmawati")

    with structlog.testing.capture_logs() as logs:
        done = await submit_registration(browser, round_id, form_of(reg))

    assert done.status_code == 201, text_of(done.text)
    assert "sedang-diproses" not in done.text  # answered by its journey: nothing pending
    number = registration_number(done.text)
    assert number == applicant_id_for(operator_api.pseudonym_key, round_id, reg.nik)
    journey = await _state(client, round_id, number)
    assert journey.formasi_code == "F1"
    # The account holds the number and an argon2id hash: never the NIK, the name, the password.
    rows = await portal_rows(gateway_state.pool, round_id)
    assert [r["applicant_id"] for r in rows] == [number, number]  # the account, the session
    assert rows[0]["password_hash"].startswith("$argon2id$")
    stored = repr(rows)
    assert reg.nik not in stored and "Siti" not in stored and PASSWORD not in stored
    assert any(e["event"] == "registration" and e["applicant_id"] == number for e in logs)
    logged = repr(logs)
    assert reg.nik not in logged and "Siti" not in logged and PASSWORD not in logged
    # Registered is logged in: the status page is the applicant's.
    status = await browser.get("/status")
    assert status.status_code == 200
    assert number in status.text and "Pendaftaran" in text_of(status.text)


async def test_a_registration_its_journey_has_not_answered_yet_says_it_is_being_processed(
    operator_api, gateway_state, client, keys, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-pending")
    # The portal's engine client on a task queue no worker polls: the journey is started and
    # recorded, but it cannot answer the registration's confirmation within the second allowed.
    idle = idle_gateway(gateway_state, client, keys)
    reg = registration(2, "F1")
    async with client_for(idle) as b:
        done = await submit_registration(b, round_id, form_of(reg))
    number = applicant_id_for(operator_api.pseudonym_key, round_id, reg.nik)
    try:
        assert done.status_code == 202, text_of(done.text)
        assert registration_number(done.text) == number
        assert "sudah tercatat dan sedang diproses" in text_of(done.text)
        assert "tidak perlu mendaftar ulang" in text_of(done.text)
        # Recorded: the journey exists, waiting for a worker.
        handle = client.get_workflow_handle(journey_workflow_id(round_id, number))
        assert (await handle.describe()).status.name == "RUNNING"
    finally:
        await client.get_workflow_handle(journey_workflow_id(round_id, number)).terminate("test")


async def test_a_nik_registered_in_another_instansi_is_refused_at_its_field_not_sent_to_log_in(
    browser, operator_api, gateway_state, tmp_path
):
    from tests.flows.test_national import _national_with_rounds

    national_id, (a, b) = await _national_with_rounds(
        operator_api, tmp_path, "Kota", ("Alpha", "Beta")
    )
    assert (await operator_api.register(a, registration(41, "F1"), "sscasn")).status == "registered"

    with structlog.testing.capture_logs() as logs:
        page = await submit_registration(browser, b.round_id, form_of(registration(41, "F2")))

    # Not "already registered in this round, log in": the NIK holds a formasi of round a. Which
    # instansi and formasi is not said: anyone can fill in a form around someone's NIK.
    assert page.status_code == 422, text_of(page.text)
    assert field_errors(page.text)["nik"] == [
        "NIK: NIK ini sudah terdaftar pada formasi lain dalam seleksi nasional ini; satu NIK "
        "hanya dapat mendaftar pada satu formasi secara nasional. Jika itu bukan pendaftaran "
        "Anda, hubungi panitia seleksi."
    ]
    shown = text_of(page.text)
    assert a.round_id not in shown and "F1" not in field_errors(page.text)["nik"][0]
    assert "Silakan masuk" not in shown
    assert await portal_rows(gateway_state.pool, b.round_id) == []  # no account is left in b
    # Logged as a repeat in this round is, so that a sweep of NIKs shows.
    [warned] = [
        e for e in logs if e["event"] == "registration refused: NIK registered in another instansi"
    ]
    assert warned["log_level"] == "warning" and warned["source"] and warned["applicant_id"]
    assert registration(41, "F2").nik not in str(logs)


@pytest.mark.parametrize("checked_by", ["journey", "gateway"])
async def test_a_barred_nik_is_told_so_without_the_list_s_reason(
    gateway_state, operator_api, running_worker, tmp_path, checked_by
):
    # journey: the gateway's engine client asks no register; the journey does, and refuses the
    # start. gateway: the engine client asks the register before it starts anything, on the
    # gateway's pool, as the gateway's role (gateway/app.py open_gateway gives it so).
    # A NIK no other test uses, and its entry gone after the test: the register outlives a test,
    # and a later one registering the same synthetic person would be barred.
    person = registration(uuid.uuid4().int % 9000 + 1000, "F1", birth=date(1993, 2, 19))
    source = f"BKN-{uuid.uuid4().hex[:6]}"
    listed = tmp_path / "national.csv"
    listed.write_text(
        "nik,barred_until,rounds,reason,source\n"
        f"{person.nik},2099-12-31,,ijazah palsu (putusan PN Bandung 12/Pid.B/2025),{source}\n"
    )
    _, pool = running_worker  # the register is kept by the workers and commands
    register = SanctionRegister(pool)
    await register.import_list(read_national_list(listed), operator_api.pseudonym_key)
    round_id = await open_round(operator_api, tmp_path, "portal-barred")
    gw = gateway_state
    if checked_by == "gateway":
        gw = dataclasses.replace(
            gw, api=dataclasses.replace(gw.api, sanctions=SanctionRegister(gw.pool))
        )

    try:
        with structlog.testing.capture_logs() as logs:
            async with client_for(gw) as browser:
                page = await submit_registration(browser, round_id, form_of(person))
    finally:
        await pool.execute("DELETE FROM sanctions WHERE imposed_by = $1", source)

    assert page.status_code == 422, text_of(page.text)
    errors = [e for texts in field_errors(page.text).values() for e in texts]
    assert errors == [
        "NIK: NIK ini tercatat dalam daftar sanksi dan tidak dapat mendaftar pada seleksi ini. "
        "Hubungi panitia seleksi atau BKN untuk keterangannya."
    ], errors
    assert "putusan" not in page.text and source not in page.text
    warned = [
        e
        for e in logs
        if e["event"] == "registration refused: NIK barred by the sanctions register"
    ]
    assert warned and warned[0]["log_level"] == "warning" and person.nik not in str(logs)


async def test_the_journeys_refusal_of_a_start_after_registration_closed_reads_in_indonesian():
    reason = (
        "registration refused: started at 2026-12-03T07:15:37.243128+00:00, after registration "
        "closed at 2026-12-03T07:15:37.184549+00:00"
    )
    assert indonesian(reason) == "pendaftaran sudah ditutup pada 3 Des 2026 14.15 WIB"


async def test_a_refused_registration_shows_every_reason_next_to_its_field(
    browser, operator_api, gateway_state, client, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-refused")
    # What the form itself cannot read: a NIK of 15 digits, no name, a GPA in words, two
    # different passwords.
    unreadable = {
        **form_of(registration(2, "F1"), again="something-else"),
        "nik": "327301170598000",
        "name": " ",
        "gpa": "tiga",
    }
    r = await submit_registration(browser, round_id, unreadable)
    assert r.status_code == 422
    assert field_errors(r.text) == {
        "nik": ["NIK: NIK terdiri dari tepat 16 angka 0-9, seperti tertulis pada KTP"],
        "name": ["Nama lengkap: wajib diisi"],
        "gpa": ["IPK: tulis IPK sebagai angka antara 0 dan 4, misalnya 3,25"],
        "password_again": ["Ulangi kata sandi: tidak sama dengan kata sandi"],
    }
    # What the rules refuse: too old for F1 (18-35), not a citizen, D3 and Akuntansi where F1
    # wants S1 Teknik Informatika or Sistem Informasi, GPA under 2.75, Papua category for a
    # general formasi; and the gender that does not match the NIK. Every reason at its field.
    too_old = registration(3, "F1", birth=date(1980, 1, 2), gpa=2.5)
    ineligible = {
        **form_of(too_old.model_copy(update={"citizen": False})),
        "education_level": "D3",
        "major": "Akuntansi",
        "category": "putra_putri_papua",
        "gender": "P",
    }
    r = await submit_registration(browser, round_id, ineligible)
    assert r.status_code == 422
    errors = field_errors(r.text)
    assert set(errors) == {
        "gender",
        "citizen",
        "birth_date",
        "education_level",
        "major",
        "gpa",
        "category",
    }
    assert errors["birth_date"][0].startswith("Tanggal lahir: usia Anda 4")  # 46 or so
    assert "di luar batas usia 18-35 tahun" in errors["birth_date"][0]
    assert errors["citizen"] == [
        "Kewarganegaraan: hanya warga negara Indonesia yang dapat mendaftar"
    ]
    assert errors["education_level"] == [
        "Jenjang pendidikan: formasi F1 mensyaratkan jenjang pendidikan S1"
    ]
    assert errors["gpa"] == ["IPK: di bawah IPK minimum 2,75"]  # a decimal comma
    assert "Pendaftaran belum dapat diterima (7 alasan)" in text_of(r.text)
    # Nothing was made: no account, no journey.
    assert await portal_rows(gateway_state.pool, round_id) == []
    number = applicant_id_for(operator_api.pseudonym_key, round_id, too_old.nik)
    with pytest.raises(Exception, match="not found|NotFound"):
        await _state(client, round_id, number)


async def test_a_second_registration_of_a_nik_is_refused_and_the_first_is_untouched(
    browser, operator_api, gateway_state, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-twice")
    first = registration(4, "F1")
    done = await submit_registration(browser, round_id, form_of(first))
    number = registration_number(done.text)

    async with client_for(gateway_state, ("198.51.100.20", 40000)) as other:
        # The same NIK with other data, and the same data again with another password.
        for form in (
            form_of(first.model_copy(update={"name": "Orang Lain", "gpa": 3.9})),
            form_of(first, password="another-password-9"),
        ):
            r = await submit_registration(other, round_id, form)
            assert r.status_code == 409, text_of(r.text)
            assert "NIK ini sudah terdaftar pada seleksi ini" in text_of(r.text)
            assert "Silakan masuk" in text_of(r.text)
            assert field_errors(r.text) == {
                "nik": ["NIK: NIK ini sudah terdaftar pada seleksi ini"]
            }
            assert number not in r.text
        refused = await log_in(other, round_id, number, "another-password-9")
        assert refused.status_code == 401
    # The first applicant's account and password are as they were.
    async with client_for(gateway_state) as phone:
        again = await log_in(phone, round_id, first.nik, PASSWORD)
        assert (again.status_code, again.headers["location"]) == (303, "/status")
    # The same form sent twice by its own applicant is one registration, not a refusal.
    twice = await submit_registration(browser, round_id, form_of(first))
    assert twice.status_code == 200 and registration_number(twice.text) == number


async def test_whether_a_nik_registered_is_said_only_to_a_form_the_round_would_take(
    browser, operator_api, gateway_state, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-oracle")
    victim = registration(5, "F1")
    number = registration_number(
        (await submit_registration(browser, round_id, form_of(victim))).text
    )
    fresh = registration(6, "F1")

    async def probe(prober, reg: Registration, **changes) -> httpx.Response:
        made_up = reg.model_copy(update={"name": "Coba Coba", **changes})
        return await submit_registration(
            prober, round_id, form_of(made_up, password="probe-pass-1")
        )

    async with client_for(gateway_state, ("198.51.100.30", 1)) as prober:
        # A form the rules refuse (a birth date the NIK does not hold) is refused alike whether
        # the NIK registered or not, and nothing is made.
        answers = [await probe(prober, r, birth_date=date(2001, 1, 1)) for r in (victim, fresh)]
        for r in answers:
            assert r.status_code == 422, text_of(r.text)
            assert "sudah terdaftar" not in text_of(r.text)
        assert field_errors(answers[0].text) == field_errors(answers[1].text)
        assert [r["applicant_id"] for r in await portal_rows(gateway_state.pool, round_id)] == [
            number,
            number,
        ]
        # A form the round would take: told, and logged by registration number, never the NIK.
        with structlog.testing.capture_logs() as logs:
            told = await probe(prober, victim)
        assert told.status_code == 409 and "NIK ini sudah terdaftar" in text_of(told.text)
        [line] = [e for e in logs if e["event"] == "registration refused: NIK already registered"]
        assert (line["round_id"], line["applicant_id"], line["log_level"]) == (
            round_id,
            number,
            "warning",
        )
        assert len(line["source"]) == 12  # the client's pseudonym, not its address
        assert victim.nik not in repr(logs) and "198.51.100.30" not in repr(logs)

        # Once registration has closed, the same form is told that, and no more.
        page = await prober.get("/daftar", params={"round": round_id})
        [token] = tokens(page.text)["/daftar"]
        await operator_api.command(
            round_id,
            CloseWindow(
                report_id=f"close-{round_id}",
                reported_by=OPERATOR,
                window="registration",
                reason="kuota terpenuhi",
            ),
        )
        late = await prober.post(
            "/daftar",
            data={
                **form_of(victim, password="probe-pass-1"),
                "round": round_id,
                "csrf_token": token,
            },
        )
        assert late.status_code == 409, text_of(late.text)
        assert "Pendaftaran tidak dibuka" in text_of(late.text)
        assert "sudah terdaftar" not in text_of(late.text)


# --- login, sessions, cookies -----------------------------------------------------------------


async def _with_engine_failing(browser, operator_api, client, tmp_path, monkeypatch, query, n):
    """A registered applicant's status page and an API registration of another, while every
    journey and round query fails as `query` makes it fail. The refused registration started
    nothing, and the page reads again once the queries are answered. (page, api, logs, nik)"""
    round_id = await open_round(operator_api, tmp_path, f"portal-{n}")
    done = await submit_registration(browser, round_id, form_of(registration(n, "F1")))
    assert done.status_code == 201, text_of(done.text)
    refused = registration(n + 1, "F1")
    with monkeypatch.context() as patched, structlog.testing.capture_logs() as logs:
        patched.setattr(client_status, "JOURNEY_STATE", query)
        patched.setattr(client_api, "ROUND_STATE", query)
        page = await browser.get("/status")
        api = await browser.post(
            f"/api/v1/rounds/{round_id}/registrations",
            json=refused.model_dump(mode="json"),
            headers=auth(OPERATOR),
        )
    assert (page.status_code, page.headers.get("retry-after")) == (503, "30"), page.text
    assert "Layanan sedang tidak tersedia" in text_of(page.text)
    assert (api.status_code, api.headers.get("retry-after")) == (503, "30"), api.text
    assert api.headers["content-type"].startswith("application/problem+json")
    unstarted = applicant_id_for(operator_api.pseudonym_key, round_id, refused.nik)
    with pytest.raises(RPCError) as none:
        await client.get_workflow_handle(journey_workflow_id(round_id, unstarted)).describe()
    assert none.value.status == RPCStatusCode.NOT_FOUND
    assert (await browser.get("/status")).status_code == 200
    return round_id, api, logs, refused.nik


async def test_a_record_the_worker_cannot_answer_for_is_503_and_logged_not_a_bare_500(
    browser, operator_api, gateway_state, client, tmp_path, monkeypatch
):
    """A status page or an API call whose query the worker cannot answer (a journey it cannot
    replay): the portal's page that says the service is unavailable and the API's problem+json,
    each 503 with Retry-After, and an error in the log. Starlette's bare 500 before."""
    round_id, api, logs, nik = await _with_engine_failing(
        browser, operator_api, client, tmp_path, monkeypatch, UnreadableQuery(), 9
    )
    assert "cannot read this record now" in api.json()["detail"]
    failed = [e for e in logs if e["event"] == "a query the worker could not answer"]
    assert [(e["log_level"], e["path"]) for e in failed] == [
        ("error", "/status"),
        ("error", f"/api/v1/rounds/{round_id}/registrations"),
    ]
    assert nik not in repr(logs)


async def test_a_query_no_worker_answers_in_time_is_503_with_retry_after_and_nothing_is_started(
    browser, operator_api, gateway_state, client, tmp_path, monkeypatch
):
    """The journey's or the round's query ends at the gateway's deadline (CASN_QUERY_SECONDS: no
    worker polls, or none in time): the portal's unavailable page and the API's problem+json,
    each 503 with Retry-After (the API's had none), and a warning in the log."""
    _, api, logs, _ = await _with_engine_failing(
        browser, operator_api, client, tmp_path, monkeypatch, SilentQuery(), 12
    )
    assert "send the same message again later" in api.json()["detail"]
    assert [e["log_level"] for e in logs if e["event"] == "engine unreachable"] == ["warning"]


async def test_an_unexpected_error_is_a_500_with_its_request_id_and_logged_as_500(
    operator_api, gateway_state, tmp_path, monkeypatch
):
    """Whatever no handler answers: problem+json with the request id on the API, a page that
    needs neither database nor engine in the portal, and the access log's status 500 (it said 413:
    no response had started when the error left the app). Starlette's plain text before."""
    round_id = await open_round(operator_api, tmp_path, "portal-broken")
    app = app_for(gateway_state)
    # As uvicorn does: the app's error answer is sent, and the exception goes on to the server.
    transport = httpx.ASGITransport(app=app, client=CLIENT, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        with monkeypatch.context() as patched, structlog.testing.capture_logs() as logs:
            patched.setattr(client_api, "ROUND_STATE", BrokenQuery())
            api = await http.post(
                f"/api/v1/rounds/{round_id}/registrations",
                json=registration(11, "F1").model_dump(mode="json"),
                headers={**auth(OPERATOR), "X-Request-Id": "req-0123456789"},
            )
            page = await http.get(
                "/daftar", params={"round": round_id}, headers={"X-Request-Id": "req-9876543210"}
            )
    assert api.status_code == 500, api.text
    assert api.headers["content-type"].startswith("application/problem+json")
    assert api.json()["request_id"] == "req-0123456789"
    assert "req-0123456789" in api.json()["detail"]
    assert page.status_code == 500 and "Terjadi kesalahan" in page.text, page.text
    assert "req-9876543210" in text_of(page.text)
    assert [
        (e["event"], e["log_level"], e.get("error"))
        for e in logs
        if e["event"] == "unexpected error"
    ] == [
        ("unexpected error", "error", "RuntimeError"),
        ("unexpected error", "error", "RuntimeError"),
    ]
    assert sorted(e["status"] for e in logs if e["event"] == "request") == [500, 500]


async def test_login_by_number_or_nik_and_the_same_answer_for_unknown_and_wrong(
    browser, operator_api, gateway_state, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-login")
    reg = registration(5, "F1")
    number = registration_number((await submit_registration(browser, round_id, form_of(reg))).text)
    async with client_for(gateway_state) as phone:
        wrong = await log_in(phone, round_id, number, "not-the-password")
        unknown = await log_in(phone, round_id, "AAAAAAAAAAAAAAAA", PASSWORD)
        for r in (wrong, unknown):
            assert r.status_code == 401
            assert "Nomor pendaftaran/NIK atau kata sandi salah." in text_of(r.text)
            assert "casn_sesi" not in r.headers.get("set-cookie", "")
        assert (await phone.get("/status")).headers["location"] == "/masuk"

        by_nik = await log_in(phone, round_id, " ".join([reg.nik[:6], reg.nik[6:]]), PASSWORD)
        assert by_nik.status_code == 303
        assert number in (await phone.get("/status")).text
        # Logging out ends the session on the server: the old cookie opens nothing.
        cookie = phone.cookies["casn_sesi"]
        status = await phone.get("/status")
        [logout] = tokens(status.text)["/keluar"]
        out = await phone.post("/keluar", data={"csrf_token": logout})
        assert out.status_code == 303
        phone.cookies.set("casn_sesi", cookie)
        stale = await phone.get("/status")
        assert stale.headers["location"] == "/masuk"

    async with client_for(gateway_state) as laptop:
        by_number = await log_in(laptop, round_id, number.lower(), PASSWORD)
        assert by_number.status_code == 303


async def test_the_session_cookie_is_httponly_samesite_and_secure_outside_development(
    gateway_state, operator_api, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-cookie")
    async with client_for(gateway_state) as dev:
        r = await submit_registration(dev, round_id, form_of(registration(6, "F1")))
        cookie = r.headers["set-cookie"]
    assert cookie.startswith("casn_sesi=")
    attributes = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= set(attributes)
    assert attributes["samesite"].strip().lower() == "samesite=lax"
    assert attributes["path"].strip() == "Path=/"
    assert "secure" not in attributes  # the embedded development stack serves plain HTTP

    # A deployment (Temporal elsewhere): the cookies travel over HTTPS only.
    async with client_for(gateway_state, temporal_address="temporal.example:7233") as deployed:
        page = await deployed.get("/masuk", params={"round": round_id})
        pre = page.headers["set-cookie"]
        assert pre.startswith("__Host-casn_pra=")  # only this host sets it (test_portal_attacks)
        [token] = tokens(page.text)["/masuk"]
        number = applicant_id_for(operator_api.pseudonym_key, round_id, registration(6, "F1").nik)
        # httpx keeps Secure ones to HTTPS
        deployed.cookies.set("__Host-casn_pra", _cookie_value(pre))
        r = await deployed.post(
            "/masuk",
            data={"round": round_id, "number": number, "password": PASSWORD, "csrf_token": token},
        )
    assert r.status_code == 303, text_of(r.text)
    for cookie in (pre, r.headers["set-cookie"]):
        parts = [a.strip().lower() for a in cookie.split(";")]
        assert {"httponly", "secure", "samesite=lax", "path=/"} <= set(parts), cookie


def _cookie_value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


async def test_a_login_rehashes_a_password_stored_under_other_parameters(
    browser, operator_api, gateway_state, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-rehash")
    number = registration_number(
        (await submit_registration(browser, round_id, form_of(registration(7, "F1")))).text
    )
    async with gateway_state.pool.acquire() as conn:
        before = await conn.fetchval(
            "SELECT password_hash FROM portal_accounts WHERE round_id = $1", round_id
        )
    assert "m=8192,t=1,p=1" in before
    # The portal as shipped: argon2-cffi's defaults (argon2id, RFC 9106's low-memory profile).
    app = create_app(gateway_state)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.9", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as shipped:
        assert (await log_in(shipped, round_id, number, PASSWORD)).status_code == 303
    async with gateway_state.pool.acquire() as conn:
        after = await conn.fetchval(
            "SELECT password_hash FROM portal_accounts WHERE round_id = $1", round_id
        )
    default = PasswordHasher()
    assert after.startswith(
        f"$argon2id$v=19$m={default.memory_cost},t={default.time_cost},p={default.parallelism}$"
    )
    assert default.verify(after, PASSWORD)


# --- forms without a valid token ----------------------------------------------------------------


async def test_a_form_without_a_valid_token_is_403_and_changes_nothing(
    browser, operator_api, gateway_state, client, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-csrf")
    reg = registration(8, "F1")
    number = applicant_id_for(operator_api.pseudonym_key, round_id, reg.nik)
    page = await browser.get("/daftar", params={"round": round_id})
    [token] = tokens(page.text)["/daftar"]
    data = {**form_of(reg), "round": round_id}
    # No token; a made-up one; a real one for the login form; a real one of another visitor.
    async with client_for(gateway_state) as other:
        others = tokens((await other.get("/daftar", params={"round": round_id})).text)["/daftar"]
    login_token = tokens((await browser.get("/masuk")).text)["/masuk"][0]
    for bad in (
        {},
        {"csrf_token": "0.AAAA.BBBB"},
        {"csrf_token": "0.AAAA.\u00e9"},  # made hmac's compare of str raise: a 500, not a 403
        {"csrf_token": login_token},
        {"csrf_token": others[0]},
    ):
        r = await browser.post("/daftar", data={**data, **bad})
        assert r.status_code == 403, bad
        assert "Formulir tidak sah" in text_of(r.text)
    # A browser without the pre-session cookie (a page on another site posting here).
    async with client_for(gateway_state) as cross_site:
        r = await cross_site.post("/daftar", data={**data, "csrf_token": token})
        assert r.status_code == 403
    assert await portal_rows(gateway_state.pool, round_id) == []
    with pytest.raises(Exception, match="not found|NotFound"):
        await _state(client, round_id, number)

    # Logged in: a withdrawal and a logout without their tokens do nothing.
    done = await browser.post("/daftar", data={**data, "csrf_token": token})
    assert done.status_code == 201
    confirm = await browser.get("/mundur")
    [withdraw_token] = tokens(confirm.text)["/mundur"]
    for bad in ({}, {"csrf_token": token}):  # the registration form's token is not this one's
        r = await browser.post("/mundur", data={"confirm": "ya", "reason": "x", **bad})
        assert r.status_code == 403
        r = await browser.post("/keluar", data=bad)
        assert r.status_code == 403
    journey = await _state(client, round_id, number)
    assert journey.terminal is None and not journey.ending_pending
    assert (await browser.get("/status")).status_code == 200  # still logged in
    # A token is tied to its session: after logging in again, the old page's token is void.
    [logout] = tokens((await browser.get("/status")).text)["/keluar"]
    await browser.post("/keluar", data={"csrf_token": logout})
    await log_in(browser, round_id, number, PASSWORD)
    r = await browser.post("/mundur", data={"confirm": "ya", "csrf_token": withdraw_token})
    assert r.status_code == 403
    assert not (await _state(client, round_id, number)).ending_pending


# --- status, sanggah, withdrawal ------------------------------------------------------------------


async def test_status_shows_each_failing_document_and_a_sanggah_is_taken_within_its_window(
    operator_api, gateway_state, client, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-tms", appeal_window=4)
    people = {name: registration(10 + i, "F1") for i, name in enumerate(("A", "B"))}
    browsers = {
        name: client_for(gateway_state, (f"192.0.2.{i}", 1000)) for i, name in enumerate(people)
    }
    numbers = {}
    try:
        for name, reg in people.items():
            done = await submit_registration(browsers[name], round_id, form_of(reg))
            numbers[name] = registration_number(done.text)
        findings = [
            DocumentFinding(document="ijazah", reason="ijazah belum dilegalisasi"),
            DocumentFinding(document="transkrip", reason="IPK pada transkrip tidak terbaca"),
        ]
        await to_admin_appeal(client, operator_api, round_id, numbers.values(), findings)

        pages = {name: await browsers[name].get("/status") for name in people}
        status = text_of(pages["A"].text)
        assert (
            "Tidak memenuhi syarat administrasi (TMS): 2 dokumen tidak memenuhi syarat." in status
        )
        assert "ijazah: ijazah belum dilegalisasi" in status
        assert "transkrip: IPK pada transkrip tidak terbaca" in status
        deadline = re.search(r"Batas pengajuan sanggah: (\d+ \w+ \d{4} \d\d\.\d\d WIB)", status)
        assert deadline, status
        forms = {name: tokens(p.text) for name, p in pages.items()}
        assert "/sanggah" in forms["A"] and "/sanggah" in forms["B"]

        # A files at once; the same form sent twice is one sanggah.
        [token] = forms["A"]["/sanggah"]
        sent = [
            await browsers["A"].post(
                "/sanggah", data={"reason": "ijazah sudah dilegalisasi", "csrf_token": token}
            )
            for _ in range(2)
        ]
        assert [r.status_code for r in sent] == [200, 200]
        proofs = [
            re.search(r"nomor bukti (portal-sanggah-[0-9a-f]+)", text_of(r.text)) for r in sent
        ]
        assert proofs[0] and proofs[1] and proofs[0][1] == proofs[1][1]
        journey = await _state(client, round_id, numbers["A"])
        assert journey.appeal_filed_at is not None
        after = text_of((await browsers["A"].get("/status")).text)
        assert "Ajukan sanggah" not in after and "Batas jawaban sanggah oleh instansi" in after

        # B waits past the window: the journey refuses, and the page says why.
        window_closes = journey.admin_announced_at + timedelta(seconds=4)
        await asyncio.sleep(max(0.0, (window_closes - datetime.now(UTC)).total_seconds()) + 0.5)
        [token] = forms["B"]["/sanggah"]
        late = await browsers["B"].post(
            "/sanggah", data={"reason": "terlambat", "csrf_token": token}
        )
        assert late.status_code == 409
        # The journey ended when the window closed with no sanggah: its reason, in Indonesian.
        assert (
            "Proses seleksi Anda sudah berakhir: Tidak memenuhi syarat administrasi (TMS); tidak "
            "ada sanggah dalam masa sanggah." in text_of(late.text)
        )
        assert (await _state(client, round_id, numbers["B"])).appeal_filed_at is None
    finally:
        for b in browsers.values():
            await b.aclose()


async def test_a_withdrawal_is_sent_only_from_the_page_that_states_its_sanction(
    browser, operator_api, client, tmp_path
):
    round_id = await open_round(
        operator_api, tmp_path, "portal-aps", extra={"withdrawal_sanction_rounds": 3}
    )
    number = registration_number(
        (
            await submit_registration(
                browser, round_id, form_of(registration(20, "F1", birth=date(1994, 12, 5)))
            )
        ).text
    )
    status = await browser.get("/status")
    assert 'href="/mundur"' in status.text and "/mundur" not in tokens(status.text)
    confirm = await browser.get("/mundur")
    warning = text_of(confirm.text)
    assert "tidak dapat dibatalkan" in warning
    assert "tidak dapat melamar pada 3 periode seleksi CASN berikutnya" in warning
    [token] = tokens(confirm.text)["/mundur"]
    unconfirmed = await browser.post("/mundur", data={"reason": "pindah kota", "csrf_token": token})
    assert unconfirmed.status_code == 422
    assert not (await _state(client, round_id, number)).ending_pending
    done = await browser.post(
        "/mundur", data={"reason": "pindah kota", "confirm": "ya", "csrf_token": token}
    )
    assert done.status_code == 200 and "Pengunduran diri diterima" in text_of(done.text)
    deadline = time.monotonic() + 20
    while (journey := await _state(client, round_id, number)).terminal is None:
        assert journey.ending_pending or time.monotonic() < deadline
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert journey.ending_pending or journey.terminal == "APS"


# --- limits ---------------------------------------------------------------------------------------


async def _token(browser: httpx.AsyncClient, path: str, round_id: str) -> str:
    [token] = tokens((await browser.get(path, params={"round": round_id})).text)[path]
    return token


async def test_registration_and_login_posts_are_rate_limited_per_client_address(
    gateway_state, operator_api, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-limits")
    app = app_for(gateway_state, portal_rate_per_minute=3)
    async with client_on(app) as flood:
        for path, refused in (("/masuk", 401), ("/daftar", 422)):
            data = {"round": round_id, "number": "AAAAAAAAAAAAAAAA", "password": "x" * 9}
            data["csrf_token"] = await _token(flood, path, round_id)
            answers = [(await flood.post(path, data=data)).status_code for _ in range(4)]
            assert answers == [refused] * 3 + [429], path
            limited = await flood.post(path, data=data)
            assert limited.status_code == 429
            assert 1 <= int(limited.headers["retry-after"]) <= 20
            assert "Terlalu banyak permintaan" in text_of(limited.text)
        # Pages are not limited; another address has its own allowance.
        assert (await flood.get("/masuk")).status_code == 200
    async with client_on(app, ("198.51.100.77", 1)) as other:
        data = {"round": round_id, "number": "AAAAAAAAAAAAAAAA", "password": "x" * 9}
        data["csrf_token"] = await _token(other, "/masuk", round_id)
        assert (await other.post("/masuk", data=data)).status_code == 401


async def test_a_form_without_a_valid_token_spends_no_allowance(
    gateway_state, operator_api, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-free")
    app = app_for(gateway_state, portal_rate_per_minute=3)
    async with client_on(app) as anyone:
        for path in ("/masuk", "/daftar"):
            assert {(await anyone.post(path, data={})).status_code for _ in range(10)} == {403}
        data = {"round": round_id, "number": "AAAAAAAAAAAAAAAA", "password": "x" * 9}
        data["csrf_token"] = await _token(anyone, "/masuk", round_id)
        assert (await anyone.post("/masuk", data=data)).status_code == 401


async def _logins(app, round_id: str, peers_and_forwarded, password: str = "x" * 9) -> list[int]:
    """One failed login (a made-up number) from each (peer, X-Forwarded-For or None)."""
    answers = []
    for peer, forwarded in peers_and_forwarded:
        headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
        async with client_on(app, (peer, 1)) as b:
            token = await _token(b, "/masuk", round_id)
            data = {"round": round_id, "number": "AAAAAAAAAAAAAAAA", "password": password}
            r = await b.post("/masuk", data={**data, "csrf_token": token}, headers=headers)
            answers.append(r.status_code)
    return answers


async def test_behind_a_trusted_balancer_each_applicant_has_their_own_allowance(
    gateway_state, operator_api, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-proxy")
    balancer = "10.20.0.5"
    app = app_for(
        gateway_state, portal_rate_per_minute=2, gateway_trusted_proxies="10.20.0.0/16,fd00::/8"
    )
    one, two = "198.51.100.1", "198.51.100.2"
    # Two through the balancer: one's third login is limited, the other's first is not, and a
    # made-up address written in front of the balancer's entry changes nothing.
    assert await _logins(
        app,
        round_id,
        [(balancer, one), (balancer, f"6.6.6.6, {one}"), (balancer, f"7.7.7.7,{one}, 10.20.0.9")],
    ) == [401, 401, 429]
    assert await _logins(app, round_id, [(balancer, two)]) == [401]
    # From a peer that is no balancer, X-Forwarded-For is the client's own writing: ignored.
    assert await _logins(app, round_id, [("203.0.113.50", f"192.0.2.{i}") for i in range(3)]) == [
        401,
        401,
        429,
    ]


async def test_a_setting_of_trusted_proxies_that_is_no_address_is_refused_by_name():
    for bad in ("10.0.0.300", "10.0.0.1/8", "*", "balancer.internal"):
        with pytest.raises(
            ValidationError, match=re.escape(f"CASN_GATEWAY_TRUSTED_PROXIES={bad!r}")
        ):
            Settings(gateway_trusted_proxies=bad)
    settings = Settings(gateway_trusted_proxies=" 10.0.0.5, 10.1.0.0/16 ,fd00::/64")
    assert settings.gateway_trusted_proxies == "10.0.0.5/32,10.1.0.0/16,fd00::/64"


async def test_an_ipv6_client_is_counted_by_its_64_and_its_failed_logins_by_its_48(
    gateway_state, operator_api, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-v6")
    app = app_for(gateway_state, portal_rate_per_minute=2)
    rotating = [(f"2001:db8:1:2::{i:x}", None) for i in range(1, 4)]
    assert await _logins(app, round_id, rotating) == [401, 401, 429]
    # Another /64 of the same /48 has logins of its own, but the /48's two failures are spent.
    assert await _logins(app, round_id, [("2001:db8:1:3::1", None)]) == [429]
    assert await _logins(app, round_id, [("2001:db8:2:3::1", None)]) == [401]
    # Registrations stay counted by the /64.
    async with client_on(app, ("2001:db8:1:4::1", 1)) as b:
        data = {"round": round_id, "csrf_token": await _token(b, "/daftar", round_id)}
        assert (await b.post("/daftar", data=data)).status_code == 422


async def test_failed_logins_to_one_account_are_limited_from_any_address_and_logged_by_number(
    browser, gateway_state, operator_api, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-account")
    reg = registration(21, "F1")
    number = registration_number((await submit_registration(browser, round_id, form_of(reg))).text)
    app = app_for(gateway_state)
    answers = []

    async def attempt(i: int, number: str, password: str) -> httpx.Response:
        async with client_on(app, (f"192.0.2.{i}", 1)) as b:  # a new address every time
            return await log_in(b, round_id, number, password)

    # Logins that succeed spend nothing; five failures naming the account by NIK, from five
    # addresses, spend that way's half (the number's is its own: test_portal_attacks.py).
    for i in range(12):
        assert (await attempt(i, number, PASSWORD)).status_code == 303
    for i in range(5):
        answers.append((await attempt(100 + i, reg.nik, f"guess-{i:05d}")).status_code)
    with structlog.testing.capture_logs() as logs:
        held = await attempt(200, reg.nik, "guess-99999")
    assert answers == [401] * 5 and held.status_code == 429
    assert "akun ini" in text_of(held.text)
    [line] = [e for e in logs if e["event"] == "rate limited"]
    assert (line["what"], line["round_id"], line["applicant_id"], line["named_by"]) == (
        "masuk-akun",
        round_id,
        number,
        "nik",
    )
    assert reg.nik not in repr(logs)
    # Another account is not held back.
    assert (await attempt(201, "AAAAAAAAAAAAAAAA", "guess-0")).status_code == 401


# --- headers --------------------------------------------------------------------------------------

FRAMING = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


async def test_no_page_can_be_framed_and_no_page_with_a_session_or_a_form_is_cached(
    browser, operator_api, gateway_state, http, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "portal-headers")
    pages = {
        "login": await browser.get("/masuk", params={"round": round_id}),
        "form": await browser.get("/daftar", params={"round": round_id}),
        "registered": await submit_registration(browser, round_id, form_of(registration(22, "F1"))),
        "status": await browser.get("/status"),
        "withdrawal": await browser.get("/mundur"),
        "front": await browser.get("/"),
        "api": await http.get(f"/api/v1/rounds/{round_id}", headers=auth(OPERATOR)),
    }
    for name, r in pages.items():
        assert r.status_code < 300, (name, r.status_code)
        assert FRAMING.items() <= r.headers.items(), name
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], name
        assert r.headers["cache-control"] == "no-store", name
    # Announcements and the style sheet are the same for everyone: caches may keep them, the
    # announcements for a minute (said, not left to a cache's guess), the style sheet by its
    # validators.
    expected = {"/pengumuman": "public, max-age=60", "/static/site.css": None}
    for path, cache_control in expected.items():
        r = await browser.get(path)
        assert FRAMING.items() <= r.headers.items(), path
        assert r.headers.get("cache-control") == cache_control, path


async def test_the_pages_policy_allows_their_own_style_sheet_and_nothing_inline(browser):
    from gateway.deps import TEMPLATES

    policy = (await browser.get("/masuk")).headers["content-security-policy"]
    assert "default-src 'none'" in policy and "style-src 'self'" in policy
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=", text), template
    # The OpenAPI page runs Swagger UI's script, from the gateway alone (tests/web/test_api_docs).
    docs = (await browser.get("/api/docs")).headers["content-security-policy"]
    assert "default-src 'none'" in docs and "script-src 'self';" in docs
    assert "unsafe" not in docs and "http" not in docs and "frame-ancestors 'none'" in docs
