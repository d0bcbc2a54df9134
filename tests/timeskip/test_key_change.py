"""Keys change by a signed command recorded in the round; signatures made before stay valid.

A service that loses its key (or retires it) gets a new one listed by an operator's signed
`change_keys`: the round records it and tells every running journey (a sealed announcement), a
report signed with the old key is refused from then on, and the auditor still verifies every
report signed before the change under the key held then.
"""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowUpdateFailedError

from auditing.history import recorded
from auditing.provenance import check_provenance
from client.api import RefusedError
from domain.codes import Stage
from domain.messages import AdminReport, ChangeKeys
from domain.protocol import CHANGE_KEYS
from domain.signing import Keyring, Signer
from runtime.connection import data_converter
from tests.roundkit import OPERATOR, compressed_round, formasi, registration
from tests.roundkit import SCHEDULE_IN_DAYS as SCHEDULE
from workflows.ids import formasi_workflow_id, journey_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

VERIFIER = "bkpsdm-verifikator"


async def test_a_changed_key_signs_from_then_on_and_older_signatures_stay_valid(kit, keys):
    t0 = await kit.now()
    round_id = f"ts-keys-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 2)], SCHEDULE, t0=t0)
    await kit.create_round(config)
    before, after = [await kit.register(config, registration(i, "F1")) for i in (1, 2)]
    for applicant in (before, after):
        await kit.journey_at(round_id, applicant, Stage.ADMIN_CHECK)
    await kit.api.report(round_id, before, AdminReport(report_id="adm-1", reported_by=VERIFIER))

    new = Signer.generate(VERIFIER)
    change = ChangeKeys(
        report_id="keys-1",
        reported_by=OPERATOR,
        identities={VERIFIER: new.public},
        reason="the verifier's laptop was lost",
    )
    ack = await kit.api.command(round_id, change)
    assert ack.effect == f"keys changed for {VERIFIER}"

    async def heard():  # the round's keys_changed announcement is in the journey's history
        history = await kit.client.get_workflow_handle(
            journey_workflow_id(round_id, after)
        ).fetch_history()
        return any(
            e.HasField("workflow_execution_signaled_event_attributes") for e in history.events
        )

    await kit.until(heard, "the journey to hear of the new key")
    with pytest.raises(RefusedError, match="does not verify"):
        await kit.api.report(round_id, after, AdminReport(report_id="adm-2", reported_by=VERIFIER))
    newly_signed = Keyring([new]).sign(
        AdminReport(report_id="adm-3", reported_by=VERIFIER), journey_workflow_id(round_id, after)
    )
    assert (await kit.api.report(round_id, after, newly_signed)).report_id == "adm-3"

    histories = [
        recorded(await kit.client.get_workflow_handle(w).fetch_history())
        for w in (
            round_workflow_id(round_id),
            formasi_workflow_id(round_id, "F1"),
            journey_workflow_id(round_id, before),
            journey_workflow_id(round_id, after),
        )
    ]
    check = await check_provenance(histories, data_converter(keys))
    assert check.problems == []
    assert check.verified >= 5  # the change, two reports, and the two signed registrations


async def test_a_key_change_not_signed_by_an_operator_is_refused(kit):
    t0 = await kit.now()
    round_id = f"ts-keys-{uuid.uuid4().hex[:6]}"
    await kit.create_round(compressed_round(round_id, [formasi("F1", 1)], SCHEDULE, t0=t0))
    attacker = Signer.generate(VERIFIER)
    forged = ChangeKeys(
        report_id="keys-x",
        reported_by=OPERATOR,
        identities={VERIFIER: attacker.public},
        reason="forged",
    )
    handle = kit.client.get_workflow_handle(round_workflow_id(round_id))

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await CHANGE_KEYS.execute(handle, forged)

    assert "unsigned" in str(refused.value.cause)
