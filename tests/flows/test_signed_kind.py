"""A signature holds for the kind of message it was made for, on the real stack: an operator's
signed withdrawal that its ended journey refused cannot be sent again, by someone without the
operator's key, as a DIS of the same fields, which the applicant's aftermath would record in the
operator's name (a Withdrawal, a Disqualification and a sanggah carry the same fields)."""

from __future__ import annotations

import pytest

from client.api import RecruitmentApi, RefusedError
from domain.messages import Disqualification, Withdrawal
from domain.protocol import AFTERMATH_STATE
from tests.flows.test_ended_journey import ended_journey
from tests.roundkit import OPERATOR, TEST_KEYRING, plain_start_api
from workflows.ids import aftermath_workflow_id, journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_refused_withdrawal_sent_again_as_a_dis_is_refused_by_the_aftermath(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    api = plain_start_api(client, settings.task_queue, keys)
    round_id, applicant = await ended_journey(client, api, tmp_path, "kind")
    withdrawal = TEST_KEYRING.sign(
        Withdrawal(report_id="w-1", reported_by=OPERATOR, reason="atas permintaan sendiri"),
        journey_workflow_id(round_id, applicant),
    )
    with pytest.raises(RefusedError, match="the journey has ended"):
        await api.report(round_id, applicant, withdrawal)

    # Whoever saw it pass (a gateway holds no operator's key) sends it again as a DIS.
    keyless = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key)
    as_dis = Disqualification.model_validate(withdrawal.model_dump())
    with pytest.raises(RefusedError, match="made for kind Withdrawal, not Disqualification"):
        await keyless.report(round_id, applicant, as_dis)
    after = await AFTERMATH_STATE.ask(
        client.get_workflow_handle(aftermath_workflow_id(round_id, applicant))
    )
    assert after.revocations == [] and after.decisions == []

    # A DIS the operator signed as one is taken.
    dis = TEST_KEYRING.sign(
        Disqualification(report_id="dis-1", reported_by=OPERATOR, reason="joki"),
        journey_workflow_id(round_id, applicant),
    )
    ack = await keyless.report(round_id, applicant, dis)
    assert ack.effect == "disqualified after the journey ended"
