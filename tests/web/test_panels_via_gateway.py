"""An interview panellist through the gateway, blind (issues 16 and 17): they read their sheet of
candidate codes and send each score signed for its code, never learning a registration number
(announcements print it beside the name). The gateway finds the journey with its pseudonym key;
the journey takes the score only if it is signed for its own code, which its start carries; the
auditor's provenance check verifies it the same way."""

from __future__ import annotations

import csv
import dataclasses
import json

import asyncpg
import httpx
import pytest

from auditing.history import round_histories
from client.api import RecruitmentApi, RefusedError, UnknownError
from client.gateway_client import GatewayReports
from client.panels import CandidateDirectory
from domain.messages import AdminReport, ConflictDeclaration, PanelScoreReport
from domain.panels import candidate_audience, candidate_code
from domain.signing import Keyring
from gateway.app import create_app
from gateway.deps import ApiKeys, api_key_digest
from gateway.limits import RateLimiter
from runtime.connection import data_converter
from tests.flows.test_panels import KEYRING, POOL, _last_panel, create_panel_round
from tests.flows.test_round_end_to_end import _state
from tests.roundkit import accepted_updates, play_to_skb, registration
from tests.web.conftest import IDENTITIES, api_key, auth, serving
from tests.web.test_report_via_gateway import _private, _starter
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _at_skb(client, keys, running_worker, folder):
    """A round with a drawn interview panel, its two applicants at the SKB: the round's id, the
    applicants' numbers, and an API on it holding every identity's key."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=KEYRING)
    config, t0 = await create_panel_round(api, folder, "blind")
    ids = [
        (await api.register(config, registration(n, "F1"), "sscasn", now=t0)).applicant_id
        for n in (61, 62)
    ]
    await play_to_skb(api, client, config.round_id, ids)
    return config.round_id, ids, api


def _with_panellists(gateway_state):
    """The test gateway, knowing the panellists' API keys too."""
    known = {api_key_digest(api_key(i)): i for i in [*IDENTITIES, *POOL]}
    return dataclasses.replace(gateway_state, api_keys=ApiKeys(known))


def _score(who: str, score: float, tag: str) -> PanelScoreReport:
    return PanelScoreReport(
        report_id=f"w-{who}-{tag}",
        reported_by=who,
        component="wawancara",
        panellist=who,
        score=score,
    )


async def test_a_panellist_scores_by_code_and_never_meets_a_registration_number(
    client, keys, running_worker, gateway_state, tmp_path
):
    round_id, (a, b), _ = await _at_skb(client, keys, running_worker, tmp_path)
    gw = _with_panellists(gateway_state)
    transport = httpx.ASGITransport(app=create_app(gw))
    code_a, code_b = (candidate_code(keys.pseudonym_key, round_id, x) for x in (a, b))
    panel_a = _last_panel(await _state(client, round_id, a))
    who = panel_a[0]
    me = Keyring([KEYRING.signers[who]])
    async with GatewayReports(
        "http://gateway.test", api_key(who), me, transport=transport
    ) as gateway:
        # The sheet: codes only, a's among them (the panellist sits on a's panel).
        sheet = await gateway.panel_sheet(round_id, who)
        assert code_a in {r.candidate for r in sheet}
        assert all(r.component == "wawancara" for r in sheet)
        assert await gateway.panel_sheet(round_id, who, sheet[0].formasi_code) == sheet
        assert await gateway.panel_sheet(round_id, who, "F9") == []
        # A score by code: taken by a's journey, answered with the code.
        ack = await gateway.report(round_id, code_a, _score(who, 81, "1"))
        assert (ack.applicant_id, ack.effect) == (
            code_a,
            f"wawancara score of panellist {who} recorded",
        )
        # The same again is a repeat; no such code is unknown.
        again = await gateway.report(round_id, code_a, _score(who, 81, "1"))
        assert again.recorded_at == ack.recorded_at
        with pytest.raises(UnknownError, match="no candidate K-0000000000"):
            await gateway.report(round_id, "K-0000000000", _score(who, 70, "2"))
        # A code for a report that is not a panellist's: refused at once, never sent again.
        wrong = AdminReport(report_id=f"adm-by-{who}", reported_by=who)
        with pytest.raises(RefusedError, match="is a candidate code"):
            await gateway.report(round_id, code_a, wrong)
        journey = client.get_workflow_handle(journey_workflow_id(round_id, a))
        assert (await accepted_updates(journey)).count("report_panel_score") == 1

    # Another of a's panel declares a conflict by code, the other blind report: taken, and the
    # next of the order takes the seat.
    second = panel_a[1]
    async with GatewayReports(
        "http://gateway.test", api_key(second), Keyring([KEYRING.signers[second]]),
        transport=transport,
    ) as gateway:  # fmt: skip
        conflict = ConflictDeclaration(
            report_id=f"coi-{second}", reported_by=second, component="wawancara",
            panellist=second, kind="family", note="sepupu",
        )  # fmt: skip
        ack = await gateway.report(round_id, code_a, conflict)
        assert ack.applicant_id == code_a
        # Their sheet no longer holds a: the change was written with the conflict.
        assert code_a not in {r.candidate for r in await gateway.panel_sheet(round_id, second)}
    assert second not in _last_panel(await _state(client, round_id, a))

    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        single = f"/api/v1/rounds/{round_id}/applicants/{{}}/panel_score"
        # Signed for a's code, sent as b's: b's journey refuses it, and its reason does not
        # give b's number away.
        for_a = KEYRING.signers[who].sign(
            _score(who, 90, "3"), candidate_audience(round_id, code_a)
        )
        r = await http.post(
            single.format(code_b), json=for_a.model_dump(mode="json"), headers=auth(who)
        )
        assert r.status_code in (404, 409), r.text
        assert b not in r.text and a not in r.text
        # The score taken by a's code, sent again by each registration number with
        # ?tell_repeats, and a new one by number: the answers told which number the code is
        # (only a's "repeat", only a's "already scored"; review of 12-07). Every one is refused
        # alike now, before the engine: a panellist names a candidate by code alone.
        taken = KEYRING.signers[who].sign(
            _score(who, 81, "1"), candidate_audience(round_id, code_a)
        )
        fresh = KEYRING.signers[who].sign(
            _score(who, 77, "5"), candidate_audience(round_id, code_a)
        )
        answers = []
        for number in (a, b):
            for body, query in ((taken, "?tell_repeats=true"), (fresh, "")):
                r = await http.post(
                    single.format(number) + query,
                    json=body.model_dump(mode="json"),
                    headers=auth(who),
                )
                answers.append((r.status_code, r.json()["detail"].replace(number, "N")))
        assert {status for status, _ in answers} == {422}, answers
        assert len({detail for _, detail in answers}) == 2, (
            answers
        )  # one per message, not per number
        assert all("names the candidate by code" in detail for _, detail in answers), answers
        # A code in place of the number, for a report that is not a panellist's: refused.
        admin = f"/api/v1/rounds/{round_id}/applicants/{code_a}/admin"
        verifier = KEYRING.signers["bkpsdm-verifikator"]
        late = verifier.sign(
            AdminReport(report_id="adm-code", reported_by="bkpsdm-verifikator"),
            candidate_audience(round_id, code_a),
        )
        r = await http.post(
            admin, json=late.model_dump(mode="json"), headers=auth("bkpsdm-verifikator")
        )
        assert r.status_code == 422 and "candidate code" in r.text, r.text
        # The same in a batch: that item refused, and counted so.
        batch = {
            "items": [
                {"applicant_id": code_a, "kind": "admin", "message": late.model_dump(mode="json")}
            ]
        }
        r = await http.post(
            f"/api/v1/rounds/{round_id}/reports", json=batch, headers=auth("bkpsdm-verifikator")
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert [x["status"] for x in answer["results"]] == [422]
        assert (answer["acknowledged"], answer["refused"], answer["unavailable"]) == (0, 1, 0)
        # A sheet for somebody who sits on no panel.
        r = await http.get(
            f"/api/v1/rounds/{round_id}/panel-sheet", headers=auth("bkpsdm-verifikator")
        )
        assert r.status_code == 403, r.text
        # A sheet is a read of the read model, but not a page to poll: a few a minute.
        gw.sheet_limit = RateLimiter(2)
        sheets = [
            await http.get(f"/api/v1/rounds/{round_id}/panel-sheet", headers=auth(who))
            for _ in range(3)
        ]
        assert [r.status_code for r in sheets] == [200, 200, 429], [r.text for r in sheets]
        assert "too many panel sheets" in sheets[2].json()["detail"]

        # The read model out of reach (a real pool to a port nothing listens on): the sheet, and a
        # code the gateway has not met yet, are 503s to ask again, never naming the database.
        gw.sheet_limit = RateLimiter(10)
        live = gw.pool
        dead = await asyncpg.create_pool("postgresql://casn@127.0.0.1:9/casn", min_size=0)
        gw.pool, gw.candidates = dead, CandidateDirectory(dead, gw.api)
        try:
            sheet = await http.get(f"/api/v1/rounds/{round_id}/panel-sheet", headers=auth(who))
            by_code = await http.post(
                single.format(code_b),
                json=KEYRING.signers[who]
                .sign(_score(who, 90, "4"), candidate_audience(round_id, code_b))
                .model_dump(mode="json"),
                headers=auth(who),
            )
        finally:
            gw.pool = live
            await dead.close()
        for r in (sheet, by_code):
            assert r.status_code == 503 and r.headers["retry-after"] == "30", r.text
            assert "read model" in r.json()["detail"] and "127.0.0.1" not in r.text

    # The auditor verifies the blind score's signature as the journey did: for a's code.
    from auditing.provenance import check_provenance

    check = await check_provenance(await round_histories(client, round_id), data_converter(keys))
    assert check.problems == [], check.problems
    assert check.verified > 0


async def test_a_blind_score_file_through_the_gateway_with_the_cli(
    client, keys, running_worker, gateway_state, tmp_path
):
    """`panel-sheet --gateway --out` writes the panellist's score file by code; filled in, `report
    panel --gateway` sends it as it is; every score lands in its journey."""
    round_id, (a, b), _ = await _at_skb(client, keys, running_worker, tmp_path)
    gw = _with_panellists(gateway_state)
    panels = {x: _last_panel(await _state(client, round_id, x)) for x in (a, b)}
    who = next(p for p in POOL if p in panels[a] or p in panels[b])
    key = _private(tmp_path / "pw.key.json", json.dumps(KEYRING.signers[who].jwk()))
    api_key_file = _private(tmp_path / "pw.api-key", api_key(who))
    sheet_file, data_dir = tmp_path / "sheet.csv", tmp_path / "panel-data"
    async with serving(gw) as url:
        through = ["--gateway", url, "--api-key-file", str(api_key_file)]
        code, out, err = await _starter(
            "panel-sheet", round_id, "--panellist", who, "--out", str(sheet_file), *through,
            data_dir=data_dir,
        )  # fmt: skip
        assert code == 0, (out, err)
        assert a not in out + sheet_file.read_text() and b not in out + sheet_file.read_text()
        # A sheet with nobody on it (a formasi mistyped here; a panellist's name or a round
        # elsewhere) is refused, not written as a header alone to "fill in".
        empty = tmp_path / "empty.csv"
        code, out, err = await _starter(
            "panel-sheet", round_id, "--panellist", who, "--formasi", "F9", "--out", str(empty),
            *through, data_dir=data_dir,
        )  # fmt: skip
        assert code == 1 and f"no candidate on {who}'s sheet" in err, (out, err)
        assert "no score file written" in err and not empty.exists()
        rows = list(csv.DictReader(sheet_file.open(encoding="utf-8")))
        expected = {
            candidate_code(keys.pseudonym_key, round_id, x) for x in (a, b) if who in panels[x]
        }
        assert {r["applicant_id"] for r in rows} == expected
        with sheet_file.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({**r, "score": "77"} for r in rows)
        errors = tmp_path / "refused.csv"
        code, out, err = await _starter(
            "report", "panel", round_id, str(sheet_file), "--as", who, "--key", str(key),
            "--errors", str(errors), *through, data_dir=data_dir,
        )  # fmt: skip
        assert code == 0, (out, err)
        assert a not in out + err and b not in out + err
        # Another panellist's API key with this one's name: refused before any sheet is read.
        other = _private(tmp_path / "other.api-key", api_key(next(p for p in POOL if p != who)))
        code, out, err = await _starter(
            "panel-sheet", round_id, "--panellist", who, "--gateway", url,
            "--api-key-file", str(other), data_dir=data_dir,
        )  # fmt: skip
        assert code == 2 and "not panellist" in err, (out, err)
    for x in (a, b):
        journey = client.get_workflow_handle(journey_workflow_id(round_id, x))
        taken = (await accepted_updates(journey)).count("report_panel_score")
        assert taken == (1 if who in panels[x] else 0), (x, taken)
    assert not data_dir.exists()
