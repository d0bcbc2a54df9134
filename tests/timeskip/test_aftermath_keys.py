"""The applicant's aftermath judges a signature by the round's keys as they stand (patch
aftermath-reads-keys-again): a key changed by `change-keys` after the aftermath began is refused
there from then on, and the new key is taken, as the journeys and the auditor
(auditing/provenance.py) judge it. On the time-skipping server: the minute the aftermath's reading
of the keys stays fresh (KEYS_FRESH) is skipped, not waited."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError

from auditing.history import fetched
from auditing.provenance import check_provenance
from client.api import RefusedError
from domain.messages import ChangeKeys, Dismissal, Disqualification
from domain.protocol import AFTERMATH_STATE
from domain.signing import Keyring, Signer
from tests.roundkit import OPERATOR, accepted_updates, keep_histories
from tests.timeskip.test_aftermath_continues import ended_journeys
from workflows.aftermath import KEYS_FRESH, READ_ROUND_AGAIN
from workflows.ids import aftermath_workflow_id, journey_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")
RECORDED = Path(__file__).resolve().parents[1] / "histories" / "aftermath-v2-keys"


async def test_a_key_changed_after_the_aftermath_began_is_refused_there_and_the_new_one_taken(
    kit, keys
):
    api = kit.api
    round_id, [applicant] = await ended_journeys(kit, 1)

    # The aftermath begins with a dismissal it refuses (a TMS is no PNS), and stays open.
    with pytest.raises(RefusedError, match="only an appointed PNS can be dismissed"):
        await api.report(
            round_id,
            applicant,
            Dismissal(report_id="pb-1", reported_by=OPERATOR, decree_no="800/1", reason="x"),
        )
    after = kit.client.get_workflow_handle(aftermath_workflow_id(round_id, applicant))
    assert (await AFTERMATH_STATE.ask(after)).ready

    # The operator's key is stolen: the committee gives the identity a new key.
    new_key = Signer.generate(OPERATOR)
    await api.command(
        round_id,
        ChangeKeys(
            report_id="keys-1",
            reported_by=OPERATOR,
            identities={OPERATOR: new_key.public},
            reason="kunci lama dicuri",
        ),
    )

    # A minute on (KEYS_FRESH), whoever holds the old key cannot disqualify in the operator's
    # name: the aftermath reads the round's keys again before it judges the report.
    await kit.env.sleep(KEYS_FRESH + timedelta(seconds=5))
    # The reading takes no input: one sent with any is refused and leaves no trace.
    with pytest.raises(WorkflowUpdateFailedError) as garbage:
        await after.execute_update(READ_ROUND_AGAIN, args=[{"identities": {}}], result_type=str)
    assert "it takes no input" in str(garbage.value.cause)
    with pytest.raises(RefusedError, match="does not verify"):
        await api.report(
            round_id,
            applicant,
            Disqualification(report_id="dis-old", reported_by=OPERATOR, reason="forged"),
        )
    assert (await AFTERMATH_STATE.ask(after)).revocations == []
    assert await accepted_updates(after) == [READ_ROUND_AGAIN]  # the refusals left no trace

    # The operator, with the new key, can.
    renewed = api.__class__(
        kit.client, kit.task_queue, keys.pseudonym_key, keyring=Keyring([new_key])
    )
    ack = await renewed.report(
        round_id,
        applicant,
        Disqualification(report_id="dis-new", reported_by=OPERATOR, reason="joki"),
    )
    assert ack.effect == "disqualified after the journey ended"
    state = await AFTERMATH_STATE.ask(after)
    assert [(r.code, r.report_id) for r in state.revocations] == [("DIS", "dis-new")]

    # The auditor finds every recorded signature good under the keys in force when it was taken.
    # (The test server lists no workflows: the round's three are fetched by id.)
    histories = []
    for workflow_id in (
        round_workflow_id(round_id),
        journey_workflow_id(round_id, applicant),
        after.id,
    ):
        run_id = (await kit.client.get_workflow_handle(workflow_id).describe()).run_id
        histories.append(await fetched(kit.client, workflow_id, run_id))
    check = await check_provenance(histories, kit.client.data_converter)
    assert check.problems == []
    # The journey's start, the two commands (registration closed, keys changed) and the DIS with
    # the new key: the refused ones are in no history.
    assert check.verified == 4
    if os.environ.get("CASN_RECORD_AFTERMATH"):  # re-record tests/histories/aftermath-v2-keys
        keep_histories(RECORDED, histories[2:], keys.payload_key)
