"""Attacks on the portal by a visitor who knows someone else's NIK, each reproduced against the
real stack and held off (docs/GATEWAY.md, "The portal's limits and headers")."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import date

import httpx
import pytest
import pytest_asyncio
import structlog
from temporalio.service import RPCError, RPCStatusCode

import client.api as client_api
from client.api import RecruitmentApi, applicant_id_for
from tests.roundkit import OPERATOR, TEST_KEYRING, SilentQuery, registration
from tests.web.conftest import auth
from tests.web.test_portal import (
    PASSWORD,
    app_for,
    client_for,
    client_on,
    field_errors,
    form_of,
    log_in,
    open_round,
    portal_rows,
    registration_number,
    submit_registration,
    text_of,
    tokens,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

ATTACKER_PASSWORD = "bukan-milik-korban-9"


@pytest_asyncio.fixture(loop_scope="session")
async def operator_api(client, keys, running_worker):
    """The operator's client (every test identity's key), to create rounds."""
    settings, _ = running_worker
    return RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)


async def test_a_journey_registered_without_the_portal_gets_no_account_from_a_stranger_s_form(
    operator_api, gateway_state, tmp_path, monkeypatch
):
    """An applicant the committee registered through the API (an import) has a journey and no
    portal account. A stranger who knows their NIK sends the portal's form with a password of
    their own while the engine is slow to answer whether the journey is a repeat (a query past
    its deadline, as on a deadline day): the account must not be made, or the stranger logs in
    as the applicant, reads their status and can withdraw them."""
    round_id = await open_round(operator_api, tmp_path, "attack-import")
    victim = registration(31, "F1")
    async with client_for(gateway_state) as committee:
        imported = await committee.post(
            f"/api/v1/rounds/{round_id}/registrations",
            json=victim.model_dump(mode="json"),
            headers=auth(OPERATOR),
        )
    assert imported.status_code in (200, 201), imported.text
    number = applicant_id_for(operator_api.pseudonym_key, round_id, victim.nik)
    assert await portal_rows(gateway_state.pool, round_id) == []

    async with client_for(gateway_state, address=("198.51.100.66", 4444)) as stranger:
        with monkeypatch.context() as slow, structlog.testing.capture_logs():
            slow.setattr(client_api, "REGISTRATION_DIGEST", SilentQuery())
            sent = await submit_registration(
                stranger, round_id, form_of(victim, password=ATTACKER_PASSWORD)
            )
        assert sent.status_code in (409, 503), text_of(sent.text)
        login = await log_in(stranger, round_id, victim.nik, ATTACKER_PASSWORD)
        assert login.status_code == 401, (login.status_code, number)
        assert number not in (await stranger.get("/status")).text
    assert await portal_rows(gateway_state.pool, round_id) == []


async def test_a_form_the_engine_failed_to_register_leaves_no_account_for_a_later_import(
    operator_api, gateway_state, tmp_path, monkeypatch
):
    """A stranger sends the form of someone's NIK while the engine cannot take it (it fails
    before any journey starts). The account made for the form must go with it: left behind, it
    would be the account of the journey the committee registers for that NIK later, and its
    password the stranger's."""
    round_id = await open_round(operator_api, tmp_path, "attack-dangling")
    victim = registration(32, "F1")

    async def engine_down(*args, **kwargs):
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    async with client_for(gateway_state, address=("198.51.100.67", 4444)) as stranger:
        with monkeypatch.context() as down, structlog.testing.capture_logs():
            down.setattr(client_api.RecruitmentApi, "register", engine_down)
            sent = await submit_registration(
                stranger, round_id, form_of(victim, password=ATTACKER_PASSWORD)
            )
        assert sent.status_code == 503, text_of(sent.text)
        assert await portal_rows(gateway_state.pool, round_id) == []

        async with client_for(gateway_state) as committee:
            imported = await committee.post(
                f"/api/v1/rounds/{round_id}/registrations",
                json=victim.model_dump(mode="json"),
                headers=auth(OPERATOR),
            )
        assert imported.status_code in (200, 201), imported.text
        login = await log_in(stranger, round_id, victim.nik, ATTACKER_PASSWORD)
        assert login.status_code == 401, login.status_code


async def test_a_journey_registered_elsewhere_still_has_its_form_judged_without_an_account(
    operator_api, gateway_state, tmp_path
):
    """The applicant the committee registered sends the portal's form of the same NIK: told the
    NIK is registered (as a repeat always was), with no account made for it."""
    round_id = await open_round(operator_api, tmp_path, "attack-repeat")
    applicant = registration(33, "F1")
    async with client_for(gateway_state) as committee:
        imported = await committee.post(
            f"/api/v1/rounds/{round_id}/registrations",
            json=applicant.model_dump(mode="json"),
            headers=auth(OPERATOR),
        )
        assert imported.status_code in (200, 201), imported.text
        again = await submit_registration(committee, round_id, form_of(applicant))
    assert again.status_code == 409, text_of(again.text)
    assert "NIK ini sudah terdaftar pada seleksi ini" in text_of(again.text)
    assert await portal_rows(gateway_state.pool, round_id) == []


async def test_a_deployment_tells_browsers_to_come_back_over_https_only(gateway_state):
    """Behind TLS (outside the embedded mode, where the cookies are Secure) every answer says
    Strict-Transport-Security, so that a browser that has been here once never sends the login
    form over plain HTTP to whoever sits on its network (an SSL-stripping proxy). The embedded
    mode serves plain HTTP on the machine itself and says nothing."""
    paths = ["/", "/masuk", "/pengumuman", "/static/site.css", "/halaman-tidak-ada", "/api/v1/x"]
    async with client_for(gateway_state, temporal_address="temporal.example:7233") as deployed:
        for path in paths:
            r = await deployed.get(path)
            assert r.headers.get("strict-transport-security") == "max-age=31536000", path
        too_large = await deployed.post("/masuk", content=b"x" * 70_000)
        assert too_large.status_code == 413
        assert "strict-transport-security" in too_large.headers
    async with client_for(gateway_state) as embedded:
        for path in paths:
            assert "strict-transport-security" not in (await embedded.get(path)).headers, path


async def test_failed_logins_by_number_tell_nothing_of_which_nik_it_is(
    gateway_state, operator_api, tmp_path
):
    """A stranger holds a NIK and the announcements' registration numbers (each with a name and
    results). Ten failed logins to a number, then one by the NIK: a 429 for the NIK said it was
    that number's (the two shared one allowance), linking the NIK to the name and results. The
    number and the NIK now have allowances of their own, half each: the same ten failures in
    all, and the applicant whose published number a stranger holds back still logs in by NIK."""
    round_id = await open_round(operator_api, tmp_path, "attack-link")
    applicant, other = registration(34, "F1"), registration(35, "F1")
    async with client_for(gateway_state) as committee:
        pages = [
            await submit_registration(committee, round_id, form_of(r)) for r in (applicant, other)
        ]
    number = registration_number(pages[0].text)
    app = app_for(gateway_state)

    async def attempt(i: int, name: str, password: str) -> int:
        async with client_on(app, (f"198.51.100.{i}", 1)) as b:
            return (await log_in(b, round_id, name, password)).status_code

    by_number = [await attempt(10 + i, number, f"tebakan-{i}") for i in range(11)]
    assert by_number[-1] == 429
    with structlog.testing.capture_logs():
        same = await attempt(40, applicant.nik, "tebakan-nik")
        another = await attempt(41, other.nik, "tebakan-nik")
    assert (same, another) == (401, 401)
    assert await attempt(42, applicant.nik, PASSWORD) == 303
    # Guesses by NIK have their own half: five, then held back, and the number stays held.
    by_nik = [await attempt(50 + i, applicant.nik, f"tebakan-{i}") for i in range(5)]
    assert by_nik == [401] * 4 + [429]
    assert await attempt(60, number, PASSWORD) == 429


async def test_the_metrics_are_for_the_scraper_in_the_deployment_s_network_not_for_visitors(
    gateway_state,
):
    """/metrics counted the journeys at each stage (how many went on to SKB before any
    announcement said so), the reports taken and refused by kind, and the operators who looked
    applicants up by identity, to any visitor. Now only a peer on loopback or a private network
    that relays nobody (Prometheus) is answered; a visitor, directly or through the balancer, gets
    the 404 of an address no page serves."""
    async with client_for(gateway_state, address=("203.0.113.50", 1)) as visitor:
        direct = await visitor.get("/metrics")
    async with client_for(gateway_state, address=("10.0.0.5", 1)) as balancer:
        relayed = await balancer.get("/metrics", headers={"X-Forwarded-For": "203.0.113.50"})
    for r in (direct, relayed):
        assert r.status_code == 404, r.text[:300]
        assert "casn_" not in r.text
    for inside in (("10.0.0.9", 1), ("127.0.0.1", 1), ("fd00::9", 1)):
        async with client_for(gateway_state, address=inside) as prometheus:
            r = await prometheus.get("/metrics")
        assert r.status_code == 200 and "casn_journeys" in r.text, inside


DEPLOYED = {"temporal_address": "temporal.example:7233"}  # not the embedded mode: HTTPS


async def test_a_cookie_another_host_of_the_domain_set_opens_no_session_and_binds_no_form(
    gateway_state, operator_api, tmp_path
):
    """A host beside the portal under the same domain (another service of the instansi, taken
    over or with a script injected) can set cookies for the whole domain. With the plain names
    it could set the pre-session cookie to a value of its own, fetch a login token tied to it,
    and have a visitor's browser log in to the stranger's account (everything the visitor then
    sends goes there), or set the session cookie to the stranger's session. Outside the
    embedded mode the cookies are `__Host-` ones, which a browser takes only from the portal's
    own host over HTTPS with Path=/ and no Domain, and the plain names open nothing."""
    round_id = await open_round(operator_api, tmp_path, "attack-toss")
    stranger_reg = registration(36, "F1")
    async with client_for(gateway_state) as s:
        number = registration_number(
            (await submit_registration(s, round_id, form_of(stranger_reg))).text
        )
    planted = "ditanam-oleh-host-tetangga-0123"
    async with client_for(gateway_state, **DEPLOYED) as stranger:
        stranger.cookies.set("casn_pra", planted)
        stranger.cookies.set("__Host-casn_pra", planted)
        page = await stranger.get("/masuk", params={"round": round_id})
        [token] = tokens(page.text)["/masuk"]
        logged_in = await stranger.post(
            "/masuk",
            data={"round": round_id, "number": number, "password": PASSWORD, "csrf_token": token},
        )
        assert logged_in.status_code == 303
        set_cookie = logged_in.headers["set-cookie"]
        session = set_cookie.split(";", 1)[0].split("=", 1)[1]

    async with client_for(gateway_state, **DEPLOYED) as visitor:
        visitor.cookies.set("casn_pra", planted)  # what the other host can set
        forged = await visitor.post(
            "/masuk",
            data={"round": round_id, "number": number, "password": PASSWORD, "csrf_token": token},
        )
        assert forged.status_code == 403, forged.status_code
        visitor.cookies.clear()
        visitor.cookies.set("casn_sesi", session)
        assert (await visitor.get("/status")).status_code == 303
    parts = [a.strip().lower() for a in set_cookie.split(";")]
    assert set_cookie.startswith("__Host-casn_sesi=") and "secure" in parts and "path=/" in parts
    assert not any(a.startswith("domain=") for a in parts)


async def test_an_applicant_s_forms_reach_the_engine_at_a_bounded_rate(
    gateway_state, operator_api, tmp_path, monkeypatch
):
    """Every sanggah, offer answer or withdrawal a logged-in applicant sends is an update the
    engine's workers judge (a replay of the journey when it is not in a worker's cache), and a
    form's token may be sent again for hours. Anyone can register, so one account could keep the
    workers every applicant shares busy. An account's forms to the engine are now limited as an
    address's registrations and logins are: CASN_PORTAL_RATE_PER_MINUTE (20) a minute."""
    round_id = await open_round(operator_api, tmp_path, "attack-flood")
    app = app_for(gateway_state)
    sent: list[str] = []
    report = client_api.RecruitmentApi.report

    async def counted(self, round_id, applicant_id, message):
        sent.append(message.report_id)
        return await report(self, round_id, applicant_id, message)

    async with client_on(app, ("198.51.100.70", 1)) as applicant:
        done = await submit_registration(applicant, round_id, form_of(registration(37, "F1")))
        assert done.status_code == 201, text_of(done.text)
        cookie = next(v for k, v in applicant.cookies.items() if k.endswith("casn_sesi"))
        binding = "session:" + hashlib.sha256(cookie.encode()).hexdigest()
        token = app.state.portal.tokens.issue(binding, "sanggah")
        answers = []
        with monkeypatch.context() as patched, structlog.testing.capture_logs() as logs:
            patched.setattr(client_api.RecruitmentApi, "report", counted)
            for _ in range(25):
                r = await applicant.post("/sanggah", data={"csrf_token": token, "reason": "x"})
                answers.append(r.status_code)
    assert answers == [409] * 20 + [429] * 5, answers
    assert len(sent) == 20
    held = [e for e in logs if e["event"] == "rate limited"]
    assert held and held[0]["what"] == "kirim" and held[0]["applicant_id"]


async def test_the_registration_form_is_no_way_around_the_limit_on_password_guesses(
    gateway_state, operator_api, tmp_path
):
    """Sending the registration form again with its NIK checks the password of the account the
    NIK has (the same form sent twice logs its sender in). That check spent no failed-login
    allowance: from a fresh address each time, a stranger who knows the applicant's data (the
    NIK holds the birth date and gender; the announcements print the name and formasi) could
    guess the password without end, and a right guess logged them in. The form's checks now
    spend the account's allowance for logins by NIK, as a login by NIK does."""
    round_id = await open_round(operator_api, tmp_path, "attack-guess")
    victim = registration(38, "F1")
    async with client_for(gateway_state) as owner:
        assert (await submit_registration(owner, round_id, form_of(victim))).status_code == 201
    app = app_for(gateway_state)

    async def guess(i: int, password: str) -> httpx.Response:
        async with client_on(app, (f"198.51.100.{100 + i}", 1)) as stranger:
            return await submit_registration(stranger, round_id, form_of(victim, password))

    with structlog.testing.capture_logs():
        wrong = [(await guess(i, f"tebakan-{i:04d}")).status_code for i in range(8)]
        right = await guess(20, PASSWORD)
    assert wrong == [409] * 5 + [429] * 3, wrong
    assert right.status_code == 429, right.status_code
    assert not any(k.endswith("casn_sesi") for k in right.cookies)


BIRTH_DATE = "tidak boleh memuat tanggal lahir"


def _birth_date_of(nik: str) -> date:
    """What anyone reads off a NIK: digits 7-12 are the birth date DDMMYY, a woman's day + 40."""
    day, month, year = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    return date(1900 + year if year > 30 else 2000 + year, month, day - 40 if day > 40 else day)


async def test_a_password_made_of_the_birth_date_the_nik_holds_is_refused(
    gateway_state, operator_api, tmp_path
):
    """The birth date is what many choose as a password, and the NIK spells it out: a stranger
    who knows the NIK logged in on the first guess. The form refuses a password that holds the
    birth date as it is commonly written (or the NIK's own date digits), as it refuses one
    that holds the NIK."""
    round_id = await open_round(operator_api, tmp_path, "attack-birth")
    applicant = registration(39, "F1", birth=date(1998, 5, 17), female=True)
    born = _birth_date_of(applicant.nik)
    guess = born.strftime("%d%m%Y")
    async with client_for(gateway_state) as owner:
        r = await submit_registration(owner, round_id, form_of(applicant, password=guess))
        assert r.status_code == 422, r.status_code
        assert BIRTH_DATE in " ".join(field_errors(r.text)["password"])
        for other in ("17-05-1998!", "pw19980517", "1998-05-17x", "xx170598yy", "x570598xxxx"):
            r = await submit_registration(owner, round_id, form_of(applicant, password=other))
            assert BIRTH_DATE in " ".join(field_errors(r.text)["password"]), other
    async with client_for(gateway_state, address=("198.51.100.80", 1)) as stranger:
        assert (await log_in(stranger, round_id, applicant.nik, guess)).status_code == 401


async def test_made_up_round_ids_make_the_portal_ask_the_engine_about_none_of_them(
    gateway_state, operator_api, tmp_path, monkeypatch
):
    """GET /daftar?round=<id> is open to anyone, with no token and no allowance. Before, each id
    made the gateway ask the Temporal server for that round's rules, at the sender's rate. Now an
    id is looked for on the rounds' listing, read again at most once a second whatever is asked,
    and the engine is asked only about a round it lists; a round created meanwhile is found."""
    rounds = gateway_state.rounds
    asked: list[str] = []
    listings: list[str] = []
    round_config = rounds.api.round_config
    list_workflows = rounds.api.client.list_workflows

    async def config_counted(round_id: str):
        asked.append(round_id)
        return await round_config(round_id)

    def list_counted(query: str, *args, **kwargs):
        listings.append(query)
        return list_workflows(query, *args, **kwargs)

    monkeypatch.setattr(rounds.api, "round_config", config_counted)
    monkeypatch.setattr(rounds.api.client, "list_workflows", list_counted)
    made_up = [f"karangan-{n:03d}" for n in range(40)]
    async with client_for(gateway_state, address=("198.51.100.80", 1)) as visitor:
        answers = await asyncio.gather(
            *(visitor.get("/daftar", params={"round": r}) for r in made_up)
        )
        assert [a.status_code for a in answers] == [404] * len(made_up)
        assert asked == []
        assert 1 <= len(listings) <= 4, listings  # a reading, then one a second at most

        # A round created after those readings is found by the next one.
        round_id = await open_round(operator_api, tmp_path, "relist")
        page = await visitor.get("/daftar", params={"round": round_id})
        assert page.status_code == 200, text_of(page.text)
    assert asked == [round_id]
