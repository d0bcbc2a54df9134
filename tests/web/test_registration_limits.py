"""Registrations through the service API are counted per API key (docs/GATEWAY.md, "The
registrations' allowance"): one key that floods is held back with 429 and Retry-After before the
engine is asked, and every other key, and the applicants' own form, keep their allowance."""

from __future__ import annotations

import pytest
import pytest_asyncio
import structlog
from temporalio.service import RPCError, RPCStatusCode

from client.api import RecruitmentApi, applicant_id_for
from tests.roundkit import OPERATOR, TEST_KEYRING, registration
from tests.web.conftest import PORTAL, auth
from tests.web.test_portal import client_for, open_round
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def operator_api(client, keys, running_worker):
    """The operator's client (every test identity's key), to create rounds."""
    settings, _ = running_worker
    return RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)


async def test_a_key_that_floods_registrations_is_held_back_and_another_key_is_not(
    operator_api, gateway_state, client, tmp_path
):
    round_id = await open_round(operator_api, tmp_path, "reg-limit")
    path = f"/api/v1/rounds/{round_id}/registrations"
    people = [registration(serial, "F1") for serial in (8171, 8172, 8173, 8174)]
    async with client_for(gateway_state, registration_rate_per_minute=2) as http:
        with structlog.testing.capture_logs() as logs:
            answers = [
                await http.post(path, json=p.model_dump(mode="json"), headers=auth(OPERATOR))
                for p in people[:3]
            ]
        other_key = await http.post(
            path, json=people[3].model_dump(mode="json"), headers=auth(PORTAL)
        )

    assert [a.status_code for a in answers] == [200, 200, 429], [a.text for a in answers]
    held = answers[2]
    assert int(held.headers["retry-after"]) >= 1
    assert held.headers["content-type"].startswith("application/problem+json")
    assert f"too many registrations for {OPERATOR}: at most 2 a minute" in held.json()["detail"]
    assert [(e["what"], e["by"]) for e in logs if e["event"] == "rate limited"] == [
        ("registrations", OPERATOR)
    ]
    # Held back before the engine was asked: no journey for the third.
    unstarted = applicant_id_for(operator_api.pseudonym_key, round_id, people[2].nik)
    with pytest.raises(RPCError) as none:
        await client.get_workflow_handle(journey_workflow_id(round_id, unstarted)).describe()
    assert none.value.status == RPCStatusCode.NOT_FOUND
    # The allowance is the key's: another key registers.
    assert other_key.status_code == 200, other_key.text
