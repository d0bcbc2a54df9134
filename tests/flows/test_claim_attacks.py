"""A national claim's sweep against senders who reach Temporal: what stands at its journey's id
cannot keep the claim from releasing itself."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.claims import ClaimReader
from client.api import RecruitmentApi, applicant_id_for, registration_digest
from client.national import national_applicant_id
from domain.national import (
    CLAIM_RELEASED,
    CLAIM_TAKEN,
    FIND_CLAIMED_JOURNEY,
    TAKE_CLAIM,
    ClaimCheck,
    ClaimedJourney,
    ClaimStart,
    ClaimTaken,
    ClaimVerdict,
    JourneyOfClaim,
)
from runtime.sandbox import worker_runner
from tests.flows.conftest import flood
from tests.flows.test_national import INSTANSI, _national_with_rounds
from tests.roundkit import (
    TEST_KEYRING,
    command_env,
    compressed_round,
    formasi,
    journey_start,
    registration,
)
from workflows.ids import claim_workflow_id, journey_workflow_id
from workflows.national import NationalClaim

ROOT = Path(__file__).resolve().parents[2]
FLOOD_GRACE = timedelta(seconds=20)  # a claim's grace in the flood tests


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


async def test_a_claim_whose_signals_another_sender_spent_is_still_taken_by_its_journey(
    small_server, keys, stack, tmp_path
):
    """Anyone who reaches Temporal can spend a claim run's signals during its grace (refused
    payloads count; the claims' ids are listed by their search attributes). The journey's check
    then cannot signal claim_taken: it tells the claim by an update instead, is admitted, and the
    claim, finding the journey past its grace, holds. (The journey is started here on a task queue
    no worker polls: its start is recorded, as a journey's is when it checks its claim.)"""
    address, client = small_server
    # A worker process as deployed (its logging, not the test session's, handles what the SDK
    # says of each refused signal), on the small server and the session's read model.
    queue = f"flood-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = command_env(
        address,
        stack.database_url,
        keys,
        tmp_path / "data",
        CASN_TASK_QUEUE=queue,
        CASN_METRICS_PORT="0",
        CASN_LOG_LEVEL="WARNING",
    )
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    national_id = f"nat-{uuid.uuid4().hex[:6]}"
    applicant_id = f"FLOOD{uuid.uuid4().hex[:11].upper()}"
    claim_id = claim_workflow_id(national_id, applicant_id)
    outsider = await Client.connect(address, data_converter=pydantic_data_converter)
    grace = FLOOD_GRACE
    claim = ClaimStart(
        national_id=national_id,
        round_id="R-FLOOD",
        applicant_id=applicant_id,
        formasi_code="F1",
        registration_digest="d" * 64,
        holds_until=datetime.now(UTC) + timedelta(hours=1),
        sweep_after=grace,
    )
    started = time.monotonic()
    await client.start_workflow(
        NationalClaim.run, claim, id=claim_id, task_queue=queue, start_delay=grace
    )
    journey_id = journey_workflow_id("R-FLOOD", applicant_id)
    config = compressed_round("R-FLOOD", [formasi("F1", 1)], INSTANSI)
    await client.start_workflow(
        "ApplicantJourney",
        journey_start(config, applicant_id, 1, national_claim=claim_id),
        id=journey_id,
        task_queue=f"nowhere-{uuid.uuid4().hex[:8]}",
    )
    spent = outsider.get_workflow_handle(claim_id)
    try:
        await flood(spent, CLAIM_TAKEN.name)
        assert time.monotonic() - started < grace.total_seconds() - 5, "flood too slow to test"

        verdict = await ClaimReader(client).check_claim(
            ClaimCheck(
                workflow_id=claim_id,
                national_id=national_id,
                round_id="R-FLOOD",
                applicant_id=applicant_id,
                registration_digest="d" * 64,
            )
        )
        # Past the grace: held, its journey found.
        await asyncio.sleep(max(0.0, grace.total_seconds() + 10 - (time.monotonic() - started)))
        status = await _status(client, claim_id, within=0)
    finally:
        for workflow_id in (claim_id, journey_id):
            handle = client.get_workflow_handle(workflow_id)
            if (await handle.describe()).status.name == "RUNNING":
                await handle.terminate(reason="test over")
        worker.terminate()
        worker.wait(30)

    assert "Potential deadlock" not in log.read_text(errors="replace")
    assert verdict == ClaimVerdict()  # admitted
    assert status == "RUNNING"


async def test_the_race_at_the_sweep_holds_when_the_journey_s_word_is_an_update(small_server):
    """The race at the sweep (tests/flows/test_national.py), with the claim's signals spent: the
    journey's word goes as the update take_claim while the claim's look comes back empty. Either
    the claim takes it, looks again, finds the journey (started before it spoke) and holds while
    the journey is admitted, or it ended first, the update is refused and the journey is not
    admitted (what the server does here: it ends the run and refuses the update admitted
    meanwhile); never a journey admitted by a claim that released itself."""
    address, client = small_server
    national_id = f"nat-{uuid.uuid4().hex[:6]}"
    queue = f"race-{uuid.uuid4().hex[:8]}"
    reader = ClaimReader(client)
    checks: list[asyncio.Task] = []
    check = ClaimCheck(
        workflow_id=claim_workflow_id(national_id, "RACED"),
        national_id=national_id,
        round_id="R-RACE",
        applicant_id="RACED",
        registration_digest="d" * 64,
    )

    @activity.defn(name=FIND_CLAIMED_JOURNEY.name)
    async def journey_started_meanwhile(lookup: ClaimedJourney) -> JourneyOfClaim:
        if checks:
            return JourneyOfClaim(found=True)  # the journey that spoke has started
        # The journey, started after this look, checks its claim while the claim decides.
        checks.append(asyncio.create_task(reader.check_claim(check)))
        await asyncio.sleep(3)  # its update admitted meanwhile
        return JourneyOfClaim(found=False, detail="no such journey")

    outsider = await Client.connect(address, data_converter=pydantic_data_converter)
    grace = FLOOD_GRACE
    claim = ClaimStart(
        national_id=national_id,
        round_id="R-RACE",
        applicant_id="RACED",
        formasi_code="F1",
        registration_digest="d" * 64,
        holds_until=datetime.now(UTC) + timedelta(hours=1),
        sweep_after=grace,
    )
    # What the SDK logs of each refused signal, formatted by the test session's capture, would
    # take the flood's workflow task past the SDK's 2 s (a deployed worker's logging does not).
    sdk = logging.getLogger("temporalio.worker._workflow_instance")
    sdk.disabled = True
    try:
        async with Worker(
            client,
            task_queue=queue,
            workflows=[NationalClaim],
            activities=[journey_started_meanwhile],
            workflow_runner=worker_runner(),
        ):
            started = time.monotonic()
            await client.start_workflow(
                NationalClaim.run, claim, id=check.workflow_id, task_queue=queue, start_delay=grace
            )
            spent = outsider.get_workflow_handle(check.workflow_id)
            await flood(spent, CLAIM_TAKEN.name)
            assert time.monotonic() - started < grace.total_seconds() - 5, "flood too slow"
            status = await _status(client, check.workflow_id, within=grace.total_seconds() + 15)
            assert checks, "the claim did not look for its journey"
            verdict = await checks[0]
            status = await _status(client, check.workflow_id, within=0)
            events = [
                e.event_type
                async for e in client.get_workflow_handle(check.workflow_id).fetch_history_events()
            ]
    finally:
        sdk.disabled = False
        handle = client.get_workflow_handle(check.workflow_id)
        if (await handle.describe()).status.name == "RUNNING":
            await handle.terminate(reason="test over")

    if verdict == ClaimVerdict():  # admitted: the claim took the update before it decided
        assert status == "RUNNING"
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED in events
    else:  # the claim released itself first: the update refused, the journey not admitted
        assert verdict.problem.startswith(f"the national claim {check.workflow_id} ended")
        assert status == "FAILED"


async def test_a_forged_claim_taken_does_not_keep_an_abandoned_claim_held(
    client, keys, running_worker, stack, tmp_path
):
    """Registrars claim two NIKs in one instansi and stop before the journeys' starts. Someone who
    holds the payload key and reaches Temporal tells each claim, in the journey's words (the
    claim's own round and registration), that its journey took it: one by the signal claim_taken,
    one by the update take_claim. No journey did: once its grace has passed each claim finds none
    and releases itself, and both NIKs register in another instansi, instead of being held
    nationwide until the national SKD."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    national_id, (a, b) = await _national_with_rounds(api, tmp_path, "Kota", ("Ditinggal", "Lain"))
    # A national file's claim_grace is 30 s at least (tests/domain); a few seconds here, given to
    # the registrar's cached copy of the national round, keep the test short.
    grace = timedelta(seconds=3)
    national = await api.national.config(national_id)
    api.national._configs[national_id] = national.model_copy(update={"claim_grace": grace})
    words = {71: "signal claim_taken", 72: "update take_claim"}
    claims = {}
    for serial, word in words.items():
        reg = registration(serial, "F1")
        applicant_id = applicant_id_for(keys.pseudonym_key, a.round_id, reg.nik)
        national_applicant = national_applicant_id(keys.pseudonym_key, national_id, reg.nik)
        held = await api.national.claim(
            a, applicant_id, "F1", national_applicant, registration_digest(reg)
        )
        assert held is None, held  # claimed; the journey is never started
        claims[word] = claim_workflow_id(national_id, national_applicant)
        forged = ClaimTaken(round_id=a.round_id, applicant_id=applicant_id)
        claim = client.get_workflow_handle(claims[word])
        if word == "signal claim_taken":
            await CLAIM_TAKEN.send(claim, forged)
        else:
            assert await TAKE_CLAIM.execute(claim, forged) is True
    statuses = {
        word: await _status(client, claim_id, within=grace.total_seconds() + 20)
        for word, claim_id in claims.items()
    }
    elsewhere = {}
    for serial, word in words.items():
        result = await api.register(b, registration(serial, "F2"), "sscasn")
        elsewhere[word] = (result.status, result.refusals)

    assert elsewhere == {word: ("registered", []) for word in claims}
    assert statuses == {word: "FAILED" for word in claims}  # released by themselves
