"""The applicant's aftermath judges a signature by the round's keys as they stand, on the real
stack: a key changed by `change-keys` after the aftermath began is refused there from then on,
and the new key is taken, as the journeys and the auditor (auditing/provenance.py) judge it."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowExecutionStatus

from auditing.history import round_histories
from auditing.provenance import check_provenance
from client.api import RefusedError
from domain.messages import ChangeKeys, CloseWindow, Dismissal, Disqualification
from domain.protocol import AFTERMATH_STATE
from domain.signing import Keyring, Signer
from runtime.connection import data_converter
from tests.roundkit import (
    OPERATOR,
    REGISTRATION_OPEN,
    accepted_updates,
    compressed_round,
    create_round_file,
    formasi,
    plain_start_api,
    registration,
)
from workflows.aftermath import KEYS_FRESH, READ_ROUND_AGAIN
from workflows.ids import aftermath_workflow_id, journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _ended_journey(client, api, tmp_path, prefix: str) -> tuple[str, str]:
    """A round whose registration the committee closed, and a journey started after it, which
    refuses its registration and ends (TMS): the round and the registration number."""
    round_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], REGISTRATION_OPEN)
    await create_round_file(api, config, tmp_path)
    await api.command(
        round_id,
        CloseWindow(report_id="close", reported_by=OPERATOR, window="registration", reason="kuota"),
    )
    started = await api.register(config, registration(8, "F1"), "sscasn", now=datetime.now(UTC))
    handle = client.get_workflow_handle(journey_workflow_id(round_id, started.applicant_id))
    deadline = time.monotonic() + 120
    while (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
        assert time.monotonic() < deadline, "the refused journey did not end"
        await asyncio.sleep(0.2)
    return round_id, started.applicant_id


async def test_a_key_changed_after_the_aftermath_began_is_refused_there_and_the_new_one_taken(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    api = plain_start_api(client, settings.task_queue, keys)
    round_id, applicant = await _ended_journey(client, api, tmp_path, "afterkeys")

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
