"""What the service API's refusals give back, seen by a caller that sends a NIK where a
registration number goes: the field at fault is named, the NIK never comes back whole (in
`detail`, `instance`, an error's `value` or a batch item's result), as docs/GATEWAY.md promises.
"""

from __future__ import annotations

import pytest

from client.api import RecruitmentApi
from domain.messages import AdminReport
from tests.roundkit import OPERATOR, TEST_KEYRING, open_registration_round
from tests.web.conftest import auth
from tests.web.test_service_api import VERIFIER, signed

pytestmark = pytest.mark.asyncio(loop_scope="session")

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
