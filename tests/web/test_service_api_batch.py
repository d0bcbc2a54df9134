"""Batches of reports (`POST /api/v1/rounds/{round}/reports`) on the real stack: each item judged
by its journey as the single route's message would be, in the order sent for one applicant; a
batch that does not parse, or that holds a message the caller may not send, sends nothing.

The round is compressed like test_service_api's, and its verifier sends the administrative
results of its applicants in batches, as a CAT centre would send a session's scores.
"""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from client.api import RecruitmentApi
from domain.administration import DocumentFinding
from domain.codes import Stage
from domain.messages import AdminReport, Report, SkdReport
from gateway.service_api import MAX_BATCH
from tests.flows.test_round_end_to_end import _wait_stage
from tests.roundkit import TEST_KEYRING, registered_round
from tests.roundkit import accepted_updates as updates_of
from tests.web.conftest import auth
from tests.web.test_service_api import CAT, VERIFIER, refusal, send, signed
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

NO_SUCH_ROUND = "batch-no-such-round"
BIRTH = date(1996, 2, 11)  # the batch tests' applicants: NIKs no other test registers
NOBODY = "NOSUCHAPPLICANT1"


def item(round_id: str, applicant_id: str, kind: str, message: Report, sign_for: str = ""):
    """One item of a batch: the message signed for `sign_for`'s journey (its own by default)."""
    body = signed(message, round_id, sign_for or applicant_id)
    return {"applicant_id": applicant_id, "kind": kind, "message": body.model_dump(mode="json")}


async def post(http: httpx.AsyncClient, round_id: str, items: list, identity: str = VERIFIER):
    return await http.post(
        f"/api/v1/rounds/{round_id}/reports", json={"items": items}, headers=auth(identity)
    )


async def accepted_updates(client, round_id: str, applicant_id: str) -> list[str]:
    """The updates the applicant's journey accepted (a refused one leaves no trace)."""
    handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
    return await updates_of(handle)


# --- the envelope: refused whole, before the engine ----------------------------------------------


async def test_a_batch_without_an_api_key_is_401(http):
    r = await http.post(f"/api/v1/rounds/{NO_SUCH_ROUND}/reports", json={"items": []})
    refusal(r, 401)


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "items"),
        ([{"applicant_id": "A", "kind": "admin", "message": {}}] * (MAX_BATCH + 1), "items"),
        ([{"applicant_id": "", "kind": "admin", "message": {}}], "items.0.applicant_id"),
        ([{"applicant_id": "A", "kind": "admin"}], "items.0.message"),
    ],
)
async def test_a_batch_of_the_wrong_shape_is_422_naming_the_field(http, items, field):
    r = await post(http, NO_SUCH_ROUND, items)
    refusal(r, 422)
    assert [e["field"] for e in r.json()["errors"]] == [field]


async def test_a_batch_to_a_round_that_does_not_exist_is_404(http):
    message = AdminReport(report_id="adm-x", reported_by=VERIFIER)
    r = await post(http, NO_SUCH_ROUND, [item(NO_SUCH_ROUND, "A", "admin", message)])
    assert "does not exist" in refusal(r, 404)


async def test_a_batch_over_its_limit_is_413_and_a_body_over_the_single_limit_is_not(
    http, gateway_state
):
    settings = gateway_state.settings
    assert settings.http_max_batch_bytes > settings.http_max_body_bytes
    pad = "x" * settings.http_max_batch_bytes
    r = await http.post(
        f"/api/v1/rounds/{NO_SUCH_ROUND}/reports",
        content=b'{"items": [], "pad": "' + pad.encode() + b'"}',
        headers={**auth(VERIFIER), "content-type": "application/json"},
    )
    refusal(r, 413)
    # Past the single route's limit, within the batch's: read, then judged (no such round).
    message = AdminReport(report_id="adm-y", reported_by=VERIFIER).model_dump(mode="json")
    message["signature"] = "s" * 900
    items = [{"applicant_id": f"A{i}", "kind": "admin", "message": message} for i in range(80)]
    body = httpx.Request("POST", "/", json={"items": items}).content
    assert len(body) > settings.http_max_body_bytes
    refusal(await post(http, NO_SUCH_ROUND, items), 404)


# --- a round: the verifier's batches ------------------------------------------------------------


async def test_a_batch_is_judged_item_by_item_and_sends_nothing_when_it_is_refused_whole(
    client, keys, running_worker, http, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config, registered = await registered_round(api, tmp_path, "batch", (71, 72, 73), BIRTH)
    round_id = config.round_id
    ids = dict(zip(("A1", "A2", "A3"), registered, strict=True))
    for applicant_id in ids.values():
        await _wait_stage(client, round_id, applicant_id, {Stage.ADMIN_CHECK})

    admin = {
        name: AdminReport(report_id=f"adm-{name}", reported_by=VERIFIER) for name in ("A1", "A3")
    }
    admin["A2"] = AdminReport(
        report_id="adm-A2",
        reported_by=VERIFIER,
        findings=[DocumentFinding(document="ijazah", reason="not legalised")],
    )
    skd = SkdReport(report_id="skd-A2", reported_by=CAT, twk=120, tiu=140, tkp=190)

    # A message that does not parse, and a kind that does not exist: 422, each named, none sent.
    bad = await post(
        http,
        round_id,
        [
            item(round_id, ids["A1"], "admin", admin["A1"]),
            {"applicant_id": ids["A2"], "kind": "skd", "message": {"report_id": "s", "twk": "x"}},
            item(round_id, ids["A3"], "nope", admin["A3"]),
        ],
    )
    refusal(bad, 422)
    fields = [e["field"] for e in bad.json()["errors"]]
    assert {"items.1.message.twk", "items.1.message.reported_by", "items.2.kind"} <= set(fields)
    assert all(f.startswith(("items.1.", "items.2.")) for f in fields)
    # A message reported by another identity than the caller's: 403, none sent.
    foreign = await post(
        http,
        round_id,
        [item(round_id, ids["A1"], "admin", admin["A1"]), item(round_id, ids["A2"], "skd", skd)],
    )
    assert "1 of 2 items refused before anything was sent" in refusal(foreign, 403)
    assert foreign.json()["errors"] == [
        {"field": "items.1.message.reported_by", "value": CAT, "reason": "not the caller"}
    ]
    # An unsigned message in a round with keys: 409, none sent.
    unsigned = {
        "applicant_id": ids["A2"],
        "kind": "admin",
        "message": admin["A2"].model_dump(mode="json"),
    }
    refused = await post(
        http, round_id, [item(round_id, ids["A1"], "admin", admin["A1"]), unsigned]
    )
    assert "unsigned" in refusal(refused, 409)
    assert [e["field"] for e in refused.json()["errors"]] == ["items.1.message.signature"]
    for applicant_id in ids.values():
        assert "report_admin" not in await accepted_updates(client, round_id, applicant_id)

    # Each item judged as its single route's message would be, in the order sent per applicant.
    changed = admin["A1"].model_copy(
        update={"findings": [DocumentFinding(document="KTP", reason="blurred")]}
    )
    items = [
        item(round_id, ids["A1"], "admin", admin["A1"]),
        item(round_id, ids["A2"], "admin", admin["A2"]),
        item(round_id, ids["A1"], "admin", changed),  # another content under A1's report_id
        item(round_id, NOBODY, "admin", admin["A3"]),
        item(round_id, ids["A1"], "admin", admin["A1"]),  # the same again
        item(
            round_id, ids["A3"], "admin", admin["A3"], sign_for=ids["A1"]
        ),  # A1's signature, A3's journey
    ]
    first = await post(http, round_id, items)
    assert first.status_code == 200, first.text
    body = first.json()
    results = body["results"]
    assert [r["status"] for r in results] == [200, 200, 409, 404, 200, 409]
    assert (body["acknowledged"], body["refused"], body["unavailable"]) == (3, 3, 0)
    assert [r["index"] for r in results] == list(range(6))
    assert [r["report_id"] for r in results] == [m["message"]["report_id"] for m in items]
    assert results[0]["ack"]["effect"] == "administrative result recorded"
    assert results[4]["ack"] == results[0]["ack"]  # a repeat: the first acknowledgement
    assert "already used with different content" in results[2]["problem"]["detail"]
    assert "no such applicant" in results[3]["problem"]["detail"]
    assert "does not verify" in results[5]["problem"]["detail"]
    assert results[5]["problem"]["title"] == "Refused"
    assert "retry-after" not in first.headers
    assert "report_admin" not in await accepted_updates(client, round_id, ids["A3"])

    # The same batch again: every item answered as before, the acknowledgements the first ones.
    again = (await post(http, round_id, items)).json()
    assert [r["status"] for r in again["results"]] == [200, 200, 409, 404, 200, 409]
    assert [r["ack"] for r in again["results"]] == [r["ack"] for r in results]
    # The single route agrees with the batch about what was recorded.
    single = await send(http, round_id, "admin", admin["A2"], ids["A2"])
    assert single.json() == results[1]["ack"]
    assert "report_admin" not in await accepted_updates(client, round_id, ids["A3"])
    # A3's own report, signed for its own journey, is taken.
    last = (await post(http, round_id, [item(round_id, ids["A3"], "admin", admin["A3"])])).json()
    assert last["results"][0]["status"] == 200
    assert "report_admin" in await accepted_updates(client, round_id, ids["A3"])


async def test_items_the_engine_did_not_take_are_503_or_500_and_the_batch_can_be_sent_again(
    client, keys, running_worker, http, gateway_state, tmp_path, monkeypatch
):
    """One item late at the engine (a deadline peak), one failing in a way nothing expected: each
    is its own result, the others are taken, and the answer says to send again (Retry-After).
    Sent again, every item is taken once."""
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

    settings, _ = running_worker
    operator = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config, ids = await registered_round(
        operator, tmp_path, "batch-late", (81, 82, 83), date(1996, 2, 12)
    )
    round_id = config.round_id
    items = [
        item(round_id, aid, "admin", AdminReport(report_id=f"adm-{aid}", reported_by=VERIFIER))
        for aid in ids
    ]
    real = gateway_state.api.report

    async def flaky(round_, applicant_id, message, **options):
        if applicant_id == ids[1]:
            raise WorkflowUpdateRPCTimeoutOrCancelledError()
        if applicant_id == ids[2]:
            raise RuntimeError("boom")
        return await real(round_, applicant_id, message, **options)

    with monkeypatch.context() as patched:
        patched.setattr(gateway_state.api, "report", flaky)
        r = await post(http, round_id, items)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [200, 503, 500]
    assert (body["acknowledged"], body["refused"], body["unavailable"]) == (1, 0, 2)
    assert r.headers["retry-after"] == "30"
    assert "send the same message again" in body["results"][1]["problem"]["detail"]
    assert "boom" not in r.text  # what failed inside stays in the gateway's log
    for aid in ids[1:]:
        assert "report_admin" not in await accepted_updates(client, round_id, aid)

    again = (await post(http, round_id, items)).json()
    assert [x["status"] for x in again["results"]] == [200, 200, 200]
    assert again["results"][0]["ack"] == body["results"][0]["ack"]
    for aid in ids:
        assert (await accepted_updates(client, round_id, aid)).count("report_admin") == 1


async def test_an_applicant_s_items_after_one_not_taken_are_not_sent(
    client, keys, running_worker, http, gateway_state, tmp_path, monkeypatch
):
    """Items about one applicant go in the order sent: once one is not taken (503), the later
    ones are held back, not sent ahead of it. Sent again, the batch takes them in order."""
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

    settings, _ = running_worker
    operator = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config, ids = await registered_round(
        operator, tmp_path, "batch-order", (84, 85), date(1996, 2, 13)
    )
    round_id, (first, other) = config.round_id, ids
    items = [
        item(round_id, first, "admin", AdminReport(report_id="adm-a", reported_by=VERIFIER)),
        item(round_id, first, "admin", AdminReport(report_id="adm-b", reported_by=VERIFIER)),
        item(round_id, other, "admin", AdminReport(report_id="adm-c", reported_by=VERIFIER)),
    ]
    real = gateway_state.api.report

    async def late_once(round_, applicant_id, message, **options):
        if message.report_id == "adm-a":
            raise WorkflowUpdateRPCTimeoutOrCancelledError()
        return await real(round_, applicant_id, message, **options)

    with monkeypatch.context() as patched:
        patched.setattr(gateway_state.api, "report", late_once)
        body = (await post(http, round_id, items)).json()

    assert [x["status"] for x in body["results"]] == [503, 503, 200]
    assert "not sent: item 0 of the same applicant" in body["results"][1]["problem"]["detail"]
    assert "report_admin" not in await accepted_updates(client, round_id, first)
    # Sent again: the first taken, the second refused after it as the journey judges it.
    again = (await post(http, round_id, items)).json()
    assert [x["status"] for x in again["results"]] == [200, 409, 200]
