"""What the service API refuses at its door, on the real stack: a message its sender may not
send in the round at all (another round's hospital, a reporter of another kind) is a 403 that
reaches nothing of the engine; and a caller that sends a NIK where a registration number goes
does not get it back whole (in `detail`, `instance`, an error's `value` or a batch item's
result), as docs/GATEWAY.md promises.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from client.api import RecruitmentApi
from domain.messages import AdminReport, Dismissal, Disqualification, Withdrawal
from domain.signing import Keyring
from gateway.app import create_app
from gateway.deps import ApiKeys, api_key_digest
from tests import roundkit
from tests.roundkit import OPERATOR, TEST_KEYRING, open_registration_round, registered_round
from tests.web.conftest import IDENTITIES, PORTAL, api_key, auth
from tests.web.test_service_api import HOSPITAL, VERIFIER, signed
from workflows.ids import aftermath_workflow_id, journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIRTH = date(1993, 5, 19)  # this file's applicants: NIKs no other test registers
OUTSIDER = "rsud-lain"  # another round's hospital: an API key of this gateway, in no list here


async def _ended_journey(client, keys, running_worker, folder) -> tuple[str, str]:
    """A round with one applicant whose journey has ended (withdrawn through the portal)."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config, [applicant] = await registered_round(api, folder, "door", (81,), BIRTH)
    withdrawal = Withdrawal(report_id="aps-door", reported_by=PORTAL, reason="moved away")
    await api.report(config.round_id, applicant, withdrawal)
    handle = client.get_workflow_handle(journey_workflow_id(config.round_id, applicant))
    for _ in range(200):
        if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
            return config.round_id, applicant
        await asyncio.sleep(0.1)
    raise AssertionError("the withdrawn journey did not end")


async def test_a_message_its_sender_may_not_send_in_the_round_is_403_and_reaches_nothing(
    client, keys, running_worker, gateway_state, tmp_path
):
    round_id, applicant = await _ended_journey(client, keys, running_worker, tmp_path)
    audience = journey_workflow_id(round_id, applicant)
    known = {api_key_digest(api_key(i)): i for i in [*IDENTITIES, OUTSIDER]}
    app = create_app(dataclasses.replace(gateway_state, api_keys=ApiKeys(known)))
    # Another round's hospital, signing with its own key, dismisses this round's applicant; this
    # round's hospital does; and the other round's hospital sends a batch here.
    dismissals = {
        who: Keyring([roundkit.test_signer(who)]).sign(
            Dismissal(report_id=f"pecat-{who}", reported_by=who, decree_no="1", reason="x"),
            audience,
        )
        for who in (OUTSIDER, HOSPITAL)
    }
    admin = Keyring([roundkit.test_signer(OUTSIDER)]).sign(
        AdminReport(report_id="adm-outsider", reported_by=OUTSIDER), audience
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as http:
        answers = {
            who: await http.post(
                f"/api/v1/rounds/{round_id}/applicants/{applicant}/dismiss",
                json=message.model_dump(mode="json"),
                headers=auth(who),
            )
            for who, message in dismissals.items()
        }
        batch = await http.post(
            f"/api/v1/rounds/{round_id}/reports",
            json={
                "items": [
                    {
                        "applicant_id": applicant,
                        "kind": "admin",
                        "message": admin.model_dump(mode="json"),
                    }
                ]
            },
            headers=auth(OUTSIDER),
        )
    for who, reason in (
        (OUTSIDER, f"{OUTSIDER} is none of the round's reporters"),
        (HOSPITAL, f"{HOSPITAL} is not allowed to report operator in this round"),
    ):
        r = answers[who]
        assert r.status_code == 403, r.text
        assert r.json()["errors"] == [{"field": "reported_by", "value": who, "reason": reason}]
    assert batch.status_code == 403, batch.text
    assert [e["field"] for e in batch.json()["errors"]] == ["items.0.message.reported_by"]
    # Nothing reached the engine: no aftermath was started for the ended journey.
    with pytest.raises(RPCError) as nothing:
        await client.get_workflow_handle(aftermath_workflow_id(round_id, applicant)).describe()
    assert nothing.value.status == RPCStatusCode.NOT_FOUND


NIK = "3273014107960011"  # a NIK's shape: 16 digits
MASKED = NIK[:4] + "*" * 8 + NIK[-4:]


async def _round(client, keys, running_worker, folder) -> str:
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    return (await open_registration_round(api, folder, "nik-echo")).round_id


async def test_a_nik_in_a_lookup_s_applicant_id_is_named_but_not_echoed(http):
    r = await http.post(
        "/api/v1/rounds/nik-echo-no-round/lookups",
        json={"applicant_id": NIK},
        headers=auth(OPERATOR),
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "applicant_id"
    assert r.json()["errors"][0]["value"] == MASKED
    assert NIK not in r.text


async def test_a_nik_in_a_report_s_path_is_not_echoed(client, keys, running_worker, http, tmp_path):
    round_id = await _round(client, keys, running_worker, tmp_path)
    message = signed(AdminReport(report_id="adm-nik", reported_by=VERIFIER), round_id, NIK)
    r = await http.post(
        f"/api/v1/rounds/{round_id}/applicants/{NIK}/admin",
        json=message.model_dump(mode="json"),
        headers=auth(VERIFIER),
    )
    assert r.status_code == 404, r.text
    assert "no such applicant" in r.json()["detail"]
    assert MASKED in r.json()["detail"] and MASKED in r.json()["instance"]
    assert NIK not in r.text

    batch = await http.post(
        f"/api/v1/rounds/{round_id}/reports",
        json={
            "items": [
                {"applicant_id": NIK, "kind": "admin", "message": message.model_dump(mode="json")}
            ]
        },
        headers=auth(VERIFIER),
    )
    assert batch.status_code == 200, batch.text
    [result] = batch.json()["results"]
    assert (result["status"], result["applicant_id"]) == (404, MASKED)
    assert NIK not in batch.text


async def test_a_report_to_an_ended_journey_tells_the_service_its_end_but_not_the_reason(
    client, keys, running_worker, gateway_state, tmp_path
):
    """A service that reports to an applicant whose journey has ended hears that it ended and its
    code, not the reason the journey recorded: a DIS's finding, a failed health gate's detail, a
    withdrawal's sanction are not for every reporter of the round (registration numbers are
    public: a panellist's key could read every applicant's end). Before, the whole reason came
    back in the 409's detail."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config, [applicant] = await registered_round(api, tmp_path, "ended", (82,), BIRTH)
    finding = "joki: akses jarak jauh saat SKD"
    await api.report(
        config.round_id,
        applicant,
        Disqualification(report_id="dis-ended", reported_by=OPERATOR, reason=finding),
    )
    handle = client.get_workflow_handle(journey_workflow_id(config.round_id, applicant))
    for _ in range(200):
        if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
            break
        await asyncio.sleep(0.1)
    late = signed(
        AdminReport(report_id="adm-ended", reported_by=VERIFIER), config.round_id, applicant
    )
    transport = httpx.ASGITransport(app=create_app(gateway_state))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        r = await http.post(
            f"/api/v1/rounds/{config.round_id}/applicants/{applicant}/admin",
            json=late.model_dump(mode="json"),
            headers=auth(VERIFIER),
        )
    assert r.status_code == 409, r.text
    assert "the journey has ended (DIS)" in r.json()["detail"], r.text
    assert "joki" not in r.text
