"""What the round's operators read through the gateway, with no access to Temporal or the
database: the round's windows, TMT and funnel (`GET /api/v1/rounds/{round}`, `starter.py status
--gateway`) and one applicant's status (`POST /api/v1/rounds/{round}/lookups`, `starter.py lookup
--gateway`). Only the round's operators read them; a half of the status that cannot be read now is
said, and the other still shown; a NIK is never in a URL, a log line or an answer."""

from __future__ import annotations

import asyncio
import io
import json
import os
from datetime import UTC, date, datetime

import asyncpg
import pytest
from prometheus_client import REGISTRY
from rich.console import Console
from structlog.testing import capture_logs

from client.access_log import accesses
from client.api import RecruitmentApi, UnknownError
from client.gateway_client import GatewayReports
from client.national import funnel_document
from domain.messages import CloseWindow
from domain.signing import Keyring
from gateway import operator_api
from starter import Context, show_national_funnel
from tests.flows.test_national import _national, _national_with_rounds, _rows
from tests.forked import DRIVER
from tests.roundkit import OPERATOR, TEST_KEYRING, registration
from tests.web.conftest import api_key, auth, serving
from tests.web.test_report_via_gateway import ROOT, _private, _registered, _starter
from tests.web.test_service_api import VERIFIER

pytestmark = pytest.mark.asyncio(loop_scope="session")


SERIALS, BIRTH = [121, 122, 123], date(1996, 3, 1)


def _stack_env(settings) -> dict[str, str]:
    """The settings a command run against the test session's stack needs."""
    return {
        "CASN_DATA_DIR": str(settings.data_dir),
        "CASN_TEMPORAL_PORT": str(settings.temporal_port),
        "CASN_TEMPORAL_UI_PORT": str(settings.temporal_ui_port),
        "CASN_POSTGRES_PORT": str(settings.postgres_port),
    }


def _lookups(by: str, result: str) -> float:
    """casn_lookups_total{by, result} in this process's registry (the gateway's, in-process)."""
    value = REGISTRY.get_sample_value("casn_lookups_total", {"by": by, "result": result})
    return value or 0.0


def _path(round_id: str) -> str:
    return f"/api/v1/rounds/{round_id}"


async def _closed_round(client, keys, running_worker, gateway_state, http, folder, prefix):
    """A round with three applicants registered, whose registration its operator closed early
    through the gateway: its id."""
    round_id, ids = await _registered(client, keys, running_worker, folder, prefix, SERIALS, BIRTH)
    operator = Keyring([TEST_KEYRING.signers[OPERATOR]])
    async with GatewayReports(
        "http://gateway.test", api_key(OPERATOR), operator, transport=http._transport
    ) as gateway:
        close = CloseWindow(
            report_id=f"close-{prefix}", reported_by=OPERATOR, window="registration",
            reason="kuota pelamar terpenuhi",
        )  # fmt: skip
        await gateway.command(round_id, close)
    return round_id, ids


async def test_the_round_s_operator_reads_its_windows_and_funnel_and_no_one_else_does(
    client, keys, running_worker, gateway_state, http, tmp_path
):
    round_id, ids = await _closed_round(
        client, keys, running_worker, gateway_state, http, tmp_path, "status-api"
    )
    r = await http.get(_path(round_id), headers=auth(OPERATOR))
    assert r.status_code == 200, r.text
    body = r.json()
    assert "retry-after" not in r.headers
    assert (body["round_problem"], body["funnel_problem"]) == (None, None)
    registration = next(w for w in body["round"]["windows"] if w["name"] == "registration")
    assert registration["state"] == "ditutup"
    assert registration["closed_early"] is True
    assert registration["closed_early_reason"] == "kuota pelamar terpenuhi"
    # The three registered journeys, counted from the read model's rows: all in formasi F1.
    assert list(body["funnel"]) == ["F1"]
    assert sum(body["funnel"]["F1"].values()) == len(ids) == 3
    assert not any(applicant in r.text for applicant in ids)  # counts only, no applicant

    # Another reporter of the round (the verifier), no key, an unknown round.
    other = await http.get(_path(round_id), headers=auth(VERIFIER))
    assert other.status_code == 403, other.text
    assert "not an operator of round" in other.json()["detail"]
    assert (await http.get(_path(round_id))).status_code == 401
    missing = await http.get(_path("status-no-such-round"), headers=auth(OPERATOR))
    assert missing.status_code == 404, missing.text


async def test_a_half_that_cannot_be_read_is_said_and_the_other_still_shown(
    client, keys, running_worker, gateway_state, http, tmp_path, monkeypatch
):
    round_id, _ = await _closed_round(
        client, keys, running_worker, gateway_state, http, tmp_path, "status-half"
    )
    # The round's worker too slow to answer (a real query, given no time): the funnel still comes.
    with monkeypatch.context() as m:
        m.setattr(operator_api, "ROUND_STATE_TIMEOUT", 1e-6)
        r = await http.get(_path(round_id), headers=auth(OPERATOR))
    assert r.status_code == 200, r.text
    assert r.headers["retry-after"] == "30"
    body = r.json()
    assert body["round"] is None
    assert "did not answer" in body["round_problem"]
    assert sum(body["funnel"]["F1"].values()) == 3

    # The read model unreachable (a real pool to a port nothing listens on): the round still comes,
    # and the answer does not name the database's address.
    dead = await asyncpg.create_pool("postgresql://casn@127.0.0.1:9/casn", min_size=0)
    try:
        with monkeypatch.context() as m:
            m.setattr(gateway_state, "pool", dead)
            r = await http.get(_path(round_id), headers=auth(OPERATOR))
    finally:
        await dead.close()
    assert r.status_code == 200, r.text
    assert r.headers["retry-after"] == "30"
    body = r.json()
    assert body["funnel"] is None
    assert body["funnel_problem"] == "the read model cannot be read now; ask again later"
    assert "127.0.0.1" not in r.text
    assert body["round"]["round_id"] == round_id


async def test_starter_status_through_the_gateway_needs_nothing_of_the_cluster(
    client, keys, running_worker, gateway_state, http, tmp_path
):
    round_id, _ = await _closed_round(
        client, keys, running_worker, gateway_state, http, tmp_path, "status-cli"
    )
    op_key = _private(tmp_path / "op-api-key", api_key(OPERATOR))
    verifier_key = _private(tmp_path / "verifier-api-key", api_key(VERIFIER))
    data_dir = tmp_path / "operator-data"
    async with serving(gateway_state) as url:
        through = ["--gateway", url, "--api-key-file", str(op_key)]
        code, out, err = await _starter("status", round_id, "--json", *through, data_dir=data_dir)
        assert code == 0, (out, err)
        printed = json.loads(out)
        answered = (await http.get(_path(round_id), headers=auth(OPERATOR))).json()
        for document in (printed, answered):  # the view's moment differs between the two reads
            document["round"].pop("as_of")
        assert printed == answered

        code, out, err = await _starter("status", round_id, *through, data_dir=data_dir)
        assert code == 0, (out, err)
        assert "ditutup lebih awal" in out and "kuota pelamar terpenuhi" in out
        assert f"Funnel of round {round_id}" in out

        # Not the round's operator: bad input (exit 2) with the gateway's reason.
        code, out, err = await _starter(
            "status", round_id, "--gateway", url, "--api-key-file", str(verifier_key),
            data_dir=data_dir,
        )  # fmt: skip
        assert code == 2, (out, err)
        assert "not an operator of round" in err
        # No such round: refused (exit 1).
        code, out, err = await _starter("status", "status-no-such", *through, data_dir=data_dir)
        assert code == 1, (out, err)
    assert not data_dir.exists()


async def test_an_operator_looks_up_an_applicant_by_number_or_nik_and_no_nik_is_kept(
    client, keys, running_worker, gateway_state, http, stack_settings, tmp_path, monkeypatch
):
    round_id, ids = await _closed_round(
        client, keys, running_worker, gateway_state, http, tmp_path, "lookup-api"
    )
    lookups = f"{_path(round_id)}/lookups"
    nik = registration(SERIALS[1], "F1", birth=BIRTH).nik
    with capture_logs() as logs:
        by_number = await http.post(lookups, json={"applicant_id": ids[1]}, headers=auth(OPERATOR))
        by_nik = await http.post(lookups, json={"nik": nik}, headers=auth(OPERATOR))
    assert by_number.status_code == 200, by_number.text
    assert by_number.headers["cache-control"] == "no-store"
    view = by_number.json()
    assert (view["round_id"], view["applicant_id"], view["formasi_code"]) == (
        round_id,
        ids[1],
        "F1",
    )
    assert view["terminal"] is None
    # The NIK finds the same journey: the gateway's pseudonym of it is the round's.
    assert by_nik.status_code == 200, by_nik.text
    assert {k: v for k, v in by_nik.json().items() if k != "as_of"} == {
        k: v for k, v in view.items() if k != "as_of"
    }
    assert nik not in by_nik.text
    looked = [e for e in logs if e.get("event") == "lookup"]
    assert [(e["applicant_id"], e["by"], e["by_nik"]) for e in looked] == [
        (ids[1], OPERATOR, False),
        (ids[1], OPERATOR, True),
    ]
    assert nik not in repr(logs)

    # What is refused: a NIK that is not one (its value never echoed whole), both or neither, a
    # number of the wrong form, no such applicant, another reporter of the round.
    bad_nik = "3273011203960I22"
    r = await http.post(lookups, json={"nik": bad_nik}, headers=auth(OPERATOR))
    assert r.status_code == 422 and bad_nik not in r.text, r.text
    assert f"character {bad_nik.index('I') + 1} " in r.json()["detail"]
    # Not even a NIK sent as a number comes back whole, here or in a registration.
    r = await http.post(lookups, json={"nik": int(nik)}, headers=auth(OPERATOR))
    assert r.status_code == 422 and nik not in r.text, r.text
    assert r.json()["errors"][0]["value"] == nik[:4] + "*" * 8 + nik[-4:]
    sent = registration(SERIALS[0], "F1", birth=BIRTH).model_dump(mode="json")
    r = await http.post(
        f"{_path(round_id)}/registrations", json={**sent, "nik": int(nik)}, headers=auth(OPERATOR)
    )
    assert r.status_code == 422 and nik not in r.text, r.text
    both = {"applicant_id": ids[0], "nik": nik}
    for body in (both, {}):
        r = await http.post(lookups, json=body, headers=auth(OPERATOR))
        assert r.status_code == 422 and "exactly one" in r.json()["detail"], r.text
    r = await http.post(lookups, json={"applicant_id": "not-a-number"}, headers=auth(OPERATOR))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "applicant_id", r.text
    r = await http.post(lookups, json={"applicant_id": "A" * 16}, headers=auth(OPERATOR))
    assert r.status_code == 404, r.text
    r = await http.post(lookups, json={"applicant_id": ids[0]}, headers=auth(VERIFIER))
    assert r.status_code == 403 and "not an operator" in r.text, r.text

    # The access log holds every lookup that reached the journeys, newest first, never a NIK;
    # what the door refused (malformed, both, neither, another reporter) read nothing.
    _, pool = running_worker
    logged = await accesses(pool, round_id)
    assert [(a.applicant_id, a.reader, a.by_nik, a.found) for a in logged] == [
        ("A" * 16, OPERATOR, False, False),
        (ids[1], OPERATOR, True, True),
        (ids[1], OPERATOR, False, True),
    ]
    assert all(a.request_id for a in logged)
    assert nik not in repr(logged)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await pool.execute("DELETE FROM access_log WHERE round_id = $1", round_id)
    # The inspector's command lists the same.
    listed = await asyncio.to_thread(
        DRIVER.run,
        "audit.py",
        ["access-log", round_id, "--applicant", ids[1], "--json"],
        {**os.environ, **_stack_env(stack_settings)},
        ROOT,
        120,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert [(e["reader"], e["by_nik"]) for e in json.loads(listed.stdout)] == [
        (OPERATOR, True),
        (OPERATOR, False),
    ]

    # A lookup that cannot be recorded is not answered.
    dead = await asyncpg.create_pool("postgresql://casn@127.0.0.1:9/casn", min_size=0)
    try:
        monkeypatch.setattr(gateway_state, "pool", dead)
        r = await http.post(lookups, json={"applicant_id": ids[0]}, headers=auth(OPERATOR))
    finally:
        monkeypatch.undo()
        await dead.close()
    assert r.status_code == 503 and "access log" in r.text, r.text
    assert "formasi_code" not in r.text


async def test_starter_lookup_through_the_gateway(
    client, keys, running_worker, gateway_state, http, tmp_path
):
    round_id, ids = await _closed_round(
        client, keys, running_worker, gateway_state, http, tmp_path, "lookup-cli"
    )
    nik = registration(SERIALS[2], "F1", birth=BIRTH).nik
    op_key = _private(tmp_path / "op-api-key", api_key(OPERATOR))
    data_dir = tmp_path / "operator-data"
    async with serving(gateway_state) as url:
        through = ["--gateway", url, "--api-key-file", str(op_key)]
        code, out, err = await _starter(
            "lookup", round_id, "--nik", nik, "--json", *through, data_dir=data_dir
        )
        assert code == 0, (out, err)
        printed = json.loads(out)
        assert printed["applicant_id"] == ids[2]

        code, out, err = await _starter(
            "lookup", round_id, "--nik", nik, *through, data_dir=data_dir
        )
        assert code == 0, (out, err)
        assert f"Applicant {ids[2]} (NIK {nik[:4]}" in out and nik not in out + err

        code, out, err = await _starter(
            "lookup", round_id, "--applicant", "A" * 16, *through, data_dir=data_dir
        )
        assert code == 1, (out, err)
    assert not data_dir.exists()


async def test_lookups_are_limited_per_operator_so_a_stolen_key_cannot_sweep_niks(
    client, keys, running_worker, gateway_state, http, tmp_path, monkeypatch
):
    from gateway.limits import RateLimiter

    round_id, ids = await _closed_round(
        client, keys, running_worker, gateway_state, http, tmp_path, "lookup-rate"
    )
    monkeypatch.setattr(gateway_state, "lookup_limit", RateLimiter(2))
    lookups = f"{_path(round_id)}/lookups"
    before = {r: _lookups("nik", r) for r in ("unknown", "limited")}
    guesses = [registration(s, "F1", birth=BIRTH).nik for s in (901, 902, 903)]
    answers = [
        await http.post(lookups, json={"nik": nik}, headers=auth(OPERATOR)) for nik in guesses
    ]
    assert [a.status_code for a in answers] == [404, 404, 429], [a.text for a in answers]
    assert int(answers[2].headers["retry-after"]) >= 1
    assert f"too many lookups for {OPERATOR}" in answers[2].json()["detail"]
    assert "at most 2 a minute" in answers[2].json()["detail"]
    # Counted for the operators' dashboards: two unknown NIKs, one held back.
    assert {r: _lookups("nik", r) - n for r, n in before.items()} == {"unknown": 2, "limited": 1}
    assert all(nik not in a.text for a, nik in zip(answers, guesses, strict=True))
    # The limit is the identity's, whatever it looks up by.
    r = await http.post(lookups, json={"applicant_id": ids[0]}, headers=auth(OPERATOR))
    assert r.status_code == 429


async def test_an_operator_reads_the_survey_through_the_gateway_as_the_committee_does(
    client, keys, running_worker, gateway_state, http, stack, tmp_path
):
    """The satisfaction survey's IKM through the gateway: the figures the domain's own formula
    gives for the answers stored; the CLI through the gateway prints what it prints with the
    database."""
    import io

    from rich.console import Console

    import starter
    from client.survey import record_answers
    from domain.skm import ikm

    _, pool = running_worker
    round_id, ids = await _closed_round(
        client, keys, running_worker, gateway_state, http, tmp_path, "survey-api"
    )
    instansi = (await gateway_state.rounds.config(round_id)).instansi
    answers = {ids[0]: [4, 4, 3, 4, 4, 3, 4, 4, 4], ids[1]: [3, 3, 3, 2, 4, 3, 3, 3, 1]}
    async with pool.acquire() as conn:
        for applicant, given in answers.items():
            assert await record_answers(
                conn,
                round_id=round_id,
                instansi=instansi,
                applicant_id=applicant,
                stage="registration",
                answers=given,
            )
    r = await http.get(f"{_path(round_id)}/survey", headers=auth(OPERATOR))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(x["stage"], x["result"]["respondents"]) for x in body["results"]] == [
        ("registration", 2),
        ("all", 2),
    ]
    expected = ikm(list(answers.values()))
    assert body["results"][-1]["result"]["value"] == expected.value
    assert body["results"][-1]["result"]["band"] == expected.band
    assert not any(a in r.text for a in ids)  # sums only
    other = await http.get(f"{_path(round_id)}/survey", headers=auth(VERIFIER))
    assert other.status_code == 403, other.text

    console = Console(file=io.StringIO(), record=True, width=200)
    ctx = starter.Context(api=None, database_url=stack.database_url, console=console)
    await starter.survey_results(ctx, round_id, as_json=True)
    direct = json.loads(console.export_text().strip().splitlines()[-1])
    op_key = _private(tmp_path / "op-api-key", api_key(OPERATOR))
    async with serving(gateway_state) as url:
        code, out, err = await _starter(
            "survey-results", round_id, "--json", "--gateway", url, "--api-key-file", str(op_key),
            data_dir=tmp_path / "operator-data",
        )  # fmt: skip
    assert code == 0, (out, err)
    assert json.loads(out) == direct
    # A round the engine does not know has no answers either: refused (exit 1), not "no survey
    # answers yet" with exit 0.
    ctx = starter.Context(
        api=RecruitmentApi(client, "unused", keys.pseudonym_key),
        database_url=stack.database_url,
        console=Console(file=io.StringIO(), width=200),
    )
    with pytest.raises(UnknownError, match="round NOWHERE-9 does not exist"):
        await starter.survey_results(ctx, "NOWHERE-9")


async def test_the_national_funnel_is_read_through_the_gateway_by_the_readers_its_file_names(
    client, keys, running_worker, stack, gateway_state, http, tmp_path
):
    """A national round's file names who reads its funnel through the gateway (`readers`): they
    get what `national-funnel --json` prints, by route and by the CLI with nothing of the cluster;
    anyone else, a round's operator included, gets 403; a national round that names no readers
    is read by nobody there."""
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b) = await _national_with_rounds(
        api, tmp_path, "Kota", ("Alpha", "Beta"), readers=[VERIFIER]
    )
    for config, serial in ((a, 131), (b, 132)):
        registered = await api.register(config, registration(serial, "F1"), "sscasn")
        assert registered.status == "registered", registered
    await _rows(pool, [a.round_id, b.round_id], 2)
    path = f"/api/v1/national/{national_id}"

    r = await http.get(path, headers=auth(VERIFIER))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    ctx = Context(api, stack.database_url, Console(file=io.StringIO(), width=250))
    assert r.json() == funnel_document(national_id, *await show_national_funnel(ctx, national_id))
    assert [(x["round_id"], sum(x["funnel"].values())) for x in r.json()["instansi"]] == [
        (a.round_id, 1),
        (b.round_id, 1),
    ]
    # The rounds' own operator is not a reader of the national round.
    r = await http.get(path, headers=auth(OPERATOR))
    assert r.status_code == 403 and "not a reader of national round" in r.text, r.text
    # A national round whose file names no readers: nobody reads it here.
    unread = await _national(api, tmp_path, datetime.now(UTC))
    r = await http.get(f"/api/v1/national/{unread}", headers=auth(VERIFIER))
    assert r.status_code == 403, r.text
    r = await http.get("/api/v1/national/nat-no-such", headers=auth(VERIFIER))
    assert r.status_code == 404, r.text
    r = await http.get("/api/v1/national/bad%20id", headers=auth(VERIFIER))
    assert r.status_code == 422, r.text

    reader_key = _private(tmp_path / "reader-api-key", api_key(VERIFIER))
    data_dir = tmp_path / "reader-data"
    async with serving(gateway_state) as url:
        through = ["--gateway", url, "--api-key-file", str(reader_key)]
        code, out, err = await _starter(
            "national-funnel", national_id, "--json", *through, data_dir=data_dir
        )
        assert code == 0, (out, err)
        assert json.loads(out) == funnel_document(
            national_id, *await show_national_funnel(ctx, national_id)
        )
        code, out, err = await _starter("national-funnel", national_id, *through, data_dir=data_dir)
        assert code == 0, (out, err)
        assert "Pemerintah Kota Alpha" in out and "2 instansi rounds joined" in out
        code, out, err = await _starter("national-funnel", unread, *through, data_dir=data_dir)
        assert code == 2 and "not a reader of national round" in err, (out, err)
    assert not data_dir.exists()


async def test_a_read_model_out_of_reach_is_a_503_to_ask_again_never_a_500(
    client, keys, running_worker, gateway_state, http, tmp_path, monkeypatch
):
    """A route or page that reads the read model with no answer of its own for its loss (the
    survey's sums, the public announcements) answers 503 with Retry-After, and its page asks the
    database for nothing; the database's words stay in the log."""
    round_id, _ = await _closed_round(
        client, keys, running_worker, gateway_state, http, tmp_path, "rm-down"
    )
    dead = await asyncpg.create_pool("postgresql://casn@127.0.0.1:9/casn", min_size=0)
    try:
        monkeypatch.setattr(gateway_state, "pool", dead)
        with capture_logs() as logs:
            survey = await http.get(f"{_path(round_id)}/survey", headers=auth(OPERATOR))
            page = await http.get("/pengumuman")
            # A NIK where a round goes: the handler's line masks it as the request line does.
            await http.get("/pengumuman/3273014501950001")
    finally:
        monkeypatch.undo()
        await dead.close()
    assert survey.status_code == 503 and survey.headers["retry-after"] == "30", survey.text
    assert survey.headers["content-type"].startswith("application/problem+json")
    assert "read model cannot be reached" in survey.json()["detail"]
    assert page.status_code == 503 and page.headers["retry-after"] == "30", page.text
    assert "Layanan sedang tidak tersedia" in page.text
    for r in (survey, page):
        assert "127.0.0.1" not in r.text and "Connect call failed" not in r.text
    assert [e["path"] for e in logs if e["event"] == "read model unreachable"] == [
        f"{_path(round_id)}/survey",
        "/pengumuman",
        "/pengumuman/<16 digits>",
    ]
    assert "3273014501950001" not in str(logs)
    assert (await http.get("/pengumuman")).status_code == 200


async def test_an_os_error_outside_the_database_is_not_taken_for_the_read_model(http, monkeypatch):
    """A file or a socket of the gateway's own failing is an unexpected error (500, its request
    id, logged with the traceback), not "the read model cannot be reached": an operator reading
    the log must not go looking at the database."""
    from gateway import public

    async def no_file(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "/srv/templates/missing.html")

    monkeypatch.setattr(public, "list_publications", no_file)
    with capture_logs() as logs:
        page = await http.get("/pengumuman")
    assert page.status_code == 500, page.text
    events = [e["event"] for e in logs]
    assert "unexpected error" in events and "read model unreachable" not in events
