"""A national claim's sweep against senders who reach Temporal: what stands at its journey's id
cannot keep the claim from releasing itself."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from domain.national import CLAIM_RELEASED, ClaimStart
from workflows.ids import claim_workflow_id, journey_workflow_id
from workflows.national import NationalClaim


async def _status(client: Client, workflow_id: str, within: float) -> str:
    """The claim's status once it has ended, or RUNNING when it still runs after `within` s."""
    deadline = time.monotonic() + within
    while True:
        description = await client.get_workflow_handle(workflow_id).describe()
        assert description.status is not None
        if description.status.name != "RUNNING" or time.monotonic() > deadline:
            return description.status.name
        await asyncio.sleep(0.5)


@pytest.mark.parametrize("squatter", ["unencrypted", "no input", "not a journey start"])
async def test_a_workflow_squatting_the_journey_id_does_not_keep_the_claim_held(
    client, keys, running_worker, stack, squatter
):
    """A claim no journey took looks, past its grace, at its journey's id. Whatever another
    sender started there (a plaintext input, none at all, or an encrypted value that is no
    journey start) is no journey of this claim: the claim releases itself, as for no journey,
    instead of failing its look for ever (held to the national SKD, retrying every 10 minutes)."""
    settings, _ = running_worker
    national_id = f"nat-{uuid.uuid4().hex[:6]}"
    claim_id = claim_workflow_id(national_id, f"SQUAT{uuid.uuid4().hex[:6]}")
    journey_id = journey_workflow_id("R-SQUAT", "SQUATTED0000000A")
    nowhere = f"nowhere-{uuid.uuid4().hex[:8]}"  # no worker polls it: the squatter just stays
    if squatter == "unencrypted":
        # A sender without the payload key.
        outsider = await Client.connect(
            client.service_client.config.target_host, data_converter=pydantic_data_converter
        )
        await outsider.start_workflow(
            "ApplicantJourney", {"national_claim": claim_id}, id=journey_id, task_queue=nowhere
        )
    elif squatter == "no input":
        await client.start_workflow("ApplicantJourney", id=journey_id, task_queue=nowhere)
    else:
        await client.start_workflow(
            "ApplicantJourney", "not a journey start", id=journey_id, task_queue=nowhere
        )
    claim = ClaimStart(
        national_id=national_id,
        round_id="R-SQUAT",
        applicant_id="SQUATTED0000000A",
        formasi_code="F1",
        registration_digest="d" * 64,
        holds_until=datetime.now(UTC) + timedelta(hours=1),
        sweep_after=timedelta(seconds=1),
    )
    try:
        await client.start_workflow(
            NationalClaim.run, claim, id=claim_id, task_queue=settings.task_queue
        )
        status = await _status(client, claim_id, within=40)
        cause = None
        if status == "FAILED":
            with pytest.raises(WorkflowFailureError) as failed:
                await client.get_workflow_handle(claim_id).result()
            cause = failed.value.cause
    finally:
        for workflow_id in (claim_id, journey_id):
            handle = client.get_workflow_handle(workflow_id)
            if (await handle.describe()).status.name == "RUNNING":
                await handle.terminate(reason="test over")

    assert status == "FAILED"  # released by itself, not looking for ever
    assert isinstance(cause, ApplicationError) and cause.type == CLAIM_RELEASED
    assert f"({journey_id}: its start " in cause.message
