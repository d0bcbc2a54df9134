"""The applicant's aftermath judges a signature by the round's keys as they stand, on the real
stack: a key changed by `change-keys` after the aftermath began is refused there from then on,
and the new key is taken, as the journeys and the auditor (auditing/provenance.py) judge it."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError

from auditing.bundle import load_histories
from auditing.history import decisions_of, messages, replay, round_histories
from auditing.provenance import check_provenance
from client.api import RefusedError
from domain.messages import ChangeKeys, Dismissal, Disqualification
from domain.protocol import AFTERMATH_STATE
from domain.signing import Keyring, Signer
from runtime.connection import data_converter
from runtime.keys import Keys
from scripts.record_histories import patch_markers
from tests.flows.test_ended_journey import ended_journey
from tests.roundkit import (
    OPERATOR,
    accepted_updates,
    keep_histories,
    plain_start_api,
)
from workflows.aftermath import KEYS_FRESH, READ_ROUND_AGAIN
from workflows.ids import aftermath_workflow_id
from workflows.versions import AFTERMATH_READS_KEYS_AGAIN

pytestmark = pytest.mark.asyncio(loop_scope="session")
RECORDED = Path(__file__).resolve().parents[1] / "histories" / "aftermath-v2-keys"


async def test_a_key_changed_after_the_aftermath_began_is_refused_there_and_the_new_one_taken(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    api = plain_start_api(client, settings.task_queue, keys)
    round_id, applicant = await ended_journey(client, api, tmp_path, "afterkeys")

    # The aftermath begins with a dismissal it refuses (a TMS is no PNS), and stays open.
    with pytest.raises(RefusedError, match="only an appointed PNS can be dismissed"):
        await api.report(
            round_id,
            applicant,
            Dismissal(report_id="pb-1", reported_by=OPERATOR, decree_no="800/1", reason="x"),
        )
    after = client.get_workflow_handle(aftermath_workflow_id(round_id, applicant))
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
    await asyncio.sleep(KEYS_FRESH.total_seconds() + 5)
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
    renewed = plain_start_api(client, settings.task_queue, keys)
    renewed.keyring = Keyring([new_key])
    ack = await renewed.report(
        round_id,
        applicant,
        Disqualification(report_id="dis-new", reported_by=OPERATOR, reason="joki"),
    )
    assert ack.effect == "disqualified after the journey ended"
    state = await AFTERMATH_STATE.ask(after)
    assert [(r.code, r.report_id) for r in state.revocations] == [("DIS", "dis-new")]

    # The auditor finds every recorded signature good under the keys in force when it was taken.
    check = await check_provenance(await round_histories(client, round_id), data_converter(keys))
    assert check.problems == []
    if os.environ.get("CASN_RECORD_AFTERMATH"):  # re-record tests/histories/aftermath-v2-keys
        histories = await round_histories(client, round_id)
        keep_histories(RECORDED, [h for h in histories if h.kind == "aftermath"], keys.payload_key)


async def test_the_recorded_aftermath_that_read_the_keys_again_replays_with_the_current_code():
    """aftermath-v2-keys, recorded by the test above: the aftermath decided patch
    aftermath-reads-keys-again by its marker, read the round's keys again once (its one accepted
    update before the DIS), and replays with no non-determinism, re-deriving the DIS."""
    histories = load_histories(RECORDED)
    assert [h.kind for h in histories] == ["aftermath"]
    [recorded] = histories
    assert AFTERMATH_READS_KEYS_AGAIN in patch_markers(recorded.history)
    key = base64.b64decode((RECORDED / "payload_key.b64").read_text().strip())
    converter = data_converter(Keys(payload_key=key, pseudonym_key=b"", signing_key=b""))
    updates = [m.name for m in await messages(recorded.history, converter) if m.kind == "update"]
    assert updates == [READ_ROUND_AGAIN, "disqualify"]
    outcomes = await replay([recorded.history], converter)
    assert [(o.workflow_id, o.failure) for o in outcomes if not o.ok] == []
    assert [d.outcome for d in decisions_of(outcomes)] == ["DIS"]
