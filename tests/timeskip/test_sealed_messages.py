"""Messages between the round's own workflows are sealed; a forged one changes nothing.

Before seals, anyone who reached Temporal could close SKD on one journey (it then ended TH before
its score arrived) or announce a result to it. The round draws a secret only its own workflows
learn (encrypted by the payload codec) and every internal message carries an HMAC under it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from client.api import RefusedError
from domain.codes import Phase, Stage
from domain.messages import AdminReport, Announcement, ChangeKeys, JourneyStart, SkdReport
from domain.protocol import ANNOUNCE, CLOSE_STAGE
from domain.seal import sealed
from domain.signing import Keyring, Signer
from tests.roundkit import (
    OPERATOR,
    TEST_KEYRING,
    compressed_round,
    formasi,
    journey_start,
    registration,
)
from tests.roundkit import SCHEDULE_IN_DAYS as SCHEDULE
from workflows.applicant import ApplicantJourney
from workflows.ids import journey_workflow_id

VERIFIER = "bkpsdm-verifikator"

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _journey_at_skd(kit):
    return await kit.one_at_admin_check("ts-seal")


async def test_a_forged_close_is_refused_and_the_score_still_counts(kit):
    t0, round_id, applicant = await _journey_at_skd(kit)
    handle = kit.client.get_workflow_handle(journey_workflow_id(round_id, applicant))
    forged = Announcement(announcement_id="x/skd_closed/1", phase=Phase.SKD_CLOSED, at=t0)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await CLOSE_STAGE.execute(handle, forged)
    assert "carries no seal" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await CLOSE_STAGE.execute(handle, sealed(forged, "ab" * 32))  # a secret of its own
    assert "seal does not verify" in str(refused.value.cause)

    state = await kit.journey(round_id, applicant)
    assert state.terminal is None and not any(d.stage == "skd" for d in state.decisions)


async def test_a_forged_announcement_changes_nothing(kit):
    t0, round_id, applicant = await _journey_at_skd(kit)
    await kit.api.report(
        round_id, applicant, AdminReport(report_id="adm-1", reported_by="bkpsdm-verifikator")
    )
    handle = kit.client.get_workflow_handle(journey_workflow_id(round_id, applicant))
    forged = Announcement(
        announcement_id=f"{round_id}/administration/9", phase=Phase.ADMINISTRATION, at=t0
    )

    await ANNOUNCE.send(handle, forged)
    await kit.advance_to(t0 + timedelta(days=1))

    state = await kit.journey(round_id, applicant)
    assert state.stage == Stage.ADMIN_CHECK and state.admin is None  # no MS before the round's


# --- before admission: the journey does not know its round's secret yet ----------------------


def _start_of(config, applicant_id: str, serial: int) -> JourneyStart:
    """A registrar's signed start, as RecruitmentApi makes it."""
    start = journey_start(config, applicant_id, serial)
    return TEST_KEYRING.sign(start, journey_workflow_id(config.round_id, applicant_id))


async def _queued_journey(kit, applicant_id: str):
    """A journey started on a queue no worker polls yet: what is sent to it now reaches its first
    workflow task, before the round has answered its admission."""
    t0 = await kit.now()
    round_id = f"ts-seal-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], SCHEDULE, t0=t0)
    await kit.create_round(config)
    queue = f"queued-{uuid.uuid4().hex[:8]}"
    handle = await kit.client.start_workflow(
        ApplicantJourney.run,
        _start_of(config, applicant_id, 1),
        task_queue=queue,
        id=journey_workflow_id(round_id, applicant_id),
    )
    return t0, round_id, queue, handle


async def test_an_unsealed_announcement_before_admission_changes_nothing(kit):
    t0, round_id, queue, handle = await _queued_journey(kit, "EARLY-1")
    # An administration result 30 days old: taken, it made the journey TMS with its appeal window
    # long past (it ended "TMS; no appeal within the appeal window" before the fix).
    forged = Announcement(
        announcement_id=f"{round_id}/administration/9",
        phase=Phase.ADMINISTRATION,
        at=t0 - timedelta(days=30),
    )
    await ANNOUNCE.send(handle, forged)

    async with kit.worker_on(queue):
        await kit.journey_at(round_id, "EARLY-1", Stage.ADMIN_CHECK, Stage.ENDED)
        await kit.advance_to(t0 + timedelta(days=1))
        state = await kit.journey(round_id, "EARLY-1")

    assert state.terminal is None and state.stage == Stage.ADMIN_CHECK, state
    assert state.admin is None
    assert [d.stage for d in state.decisions] == ["registered"]


async def test_a_close_before_admission_is_refused(kit):
    t0, round_id, queue, handle = await _queued_journey(kit, "EARLY-2")
    close = Announcement(announcement_id=f"{round_id}/skd_closed/9", phase=Phase.SKD_CLOSED, at=t0)
    sent = asyncio.create_task(CLOSE_STAGE.execute(handle, close))
    await asyncio.sleep(0.5)  # the update waits on the server for the journey's first task

    async with kit.worker_on(queue):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await sent
        state = await kit.journey_at(round_id, "EARLY-2", Stage.ADMIN_CHECK, Stage.ENDED)

    assert "not admitted by its round yet" in str(refused.value.cause)
    assert state.terminal is None and state.stage == Stage.ADMIN_CHECK, state


# --- a sealed message copied from another workflow of the same round ---------------------------


async def _handled_last_signal(handle) -> bool:
    """The workflow has completed a task since the last signal it was sent."""
    events = list((await handle.fetch_history()).events)
    signals = [
        i
        for i, e in enumerate(events)
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    return bool(signals) and any(
        e.HasField("workflow_task_completed_event_attributes") for e in events[signals[-1] :]
    )


async def test_another_formasi_s_result_is_not_taken_for_this_journey_s(kit):
    t0 = await kit.now()
    round_id = f"ts-seal-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1), formasi("F2", 1)], SCHEDULE, t0=t0)
    await kit.create_round(config)
    strong = [await kit.register(config, registration(i, "F1")) for i in (1, 2, 3, 4)]
    alone = await kit.register(config, registration(5, "F2"))  # the only one of F2: its cut
    for applicant in (*strong, alone):
        await kit.journey_at(round_id, applicant, Stage.ADMIN_CHECK)
        await kit.api.report(
            round_id, applicant, AdminReport(report_id="adm", reported_by="bkpsdm-verifikator")
        )
    await kit.advance_to(t0 + timedelta(days=26))
    for i, applicant in enumerate(strong):
        await kit.journey_at(round_id, applicant, Stage.SKD)
        scores = {"twk": 140, "tiu": 160, "tkp": 200 - i}
        await kit.api.report(
            round_id, applicant, SkdReport(report_id="skd", reported_by="cat-bkn", **scores)
        )
    await kit.journey_at(round_id, alone, Stage.SKD)
    await kit.api.report(
        round_id, alone, SkdReport(report_id="skd", reported_by="cat-bkn", twk=80, tiu=90, tkp=170)
    )
    release = asyncio.Event()  # F2 is slow to tell its applicant its SKD result
    kit.acts.hold_announcement[("F2", Phase.SKD_RESULT)] = release
    # To the SKD close and a second past it: while F2's result is held, the test server's clock
    # cannot skip (an activity is running), so nothing later is asked of it.
    await kit.advance_to(t0 + timedelta(days=55, seconds=1))

    async def f1_result():
        told = [
            b.announcement
            for b in kit.acts.broadcasts
            if b.formasi_code == "F1" and b.announcement.phase == Phase.SKD_RESULT
        ]
        return told[0] if told else None

    f1 = await kit.until(f1_result, "F1's SKD result")
    assert f1.formasi_code == "F1" and f1.seal  # named, under the seal
    # Copied to F2's applicant, who would be outside F1's cut (P) but is within F2's (P/L).
    handle = kit.client.get_workflow_handle(journey_workflow_id(round_id, alone))
    await ANNOUNCE.send(handle, f1)
    await kit.until(lambda: _handled_last_signal(handle), "the copy to be handled")
    waiting = await kit.journey(round_id, alone)
    assert waiting.skd_code is None and waiting.terminal is None, waiting

    release.set()
    state = await kit.journey_at(round_id, alone, Stage.SKB, Stage.ENDED)
    assert state.skd_code == "P/L", state


async def test_an_old_key_change_copied_to_a_journey_admitted_later_changes_nothing(kit):
    t0 = await kit.now()
    round_id = f"ts-seal-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 2)], SCHEDULE, t0=t0)
    await kit.create_round(config)
    lost, replaced = Signer.generate(VERIFIER), Signer.generate(VERIFIER)
    for n, signer in ((1, lost), (2, replaced)):
        change = ChangeKeys(
            report_id=f"keys-{n}",
            reported_by=OPERATOR,
            identities={VERIFIER: signer.public},
            reason=f"change {n}",
        )
        await kit.api.command(round_id, change)
        await kit.advance_to(t0 + timedelta(hours=n))

    async def first_change():
        told = [
            b.announcement for b in kit.acts.broadcasts if b.announcement.phase == "keys_changed"
        ]
        return told[0] if len(told) == 2 else None

    old = await kit.until(first_change, "both key changes told")
    later = await kit.register(config, registration(1, "F1"))  # admitted with the second key
    await kit.journey_at(round_id, later, Stage.ADMIN_CHECK)
    handle = kit.client.get_workflow_handle(journey_workflow_id(round_id, later))
    await ANNOUNCE.send(handle, old)  # the first change, sealed by the round, copied
    await kit.advance_to(t0 + timedelta(hours=4))

    by_lost_key = Keyring([lost]).sign(
        AdminReport(report_id="adm-1", reported_by=VERIFIER),
        journey_workflow_id(round_id, later),
        await kit.now(),
    )
    with pytest.raises(RefusedError, match="does not verify"):
        await kit.api.report(round_id, later, by_lost_key)
    by_new_key = Keyring([replaced]).sign(
        AdminReport(report_id="adm-2", reported_by=VERIFIER),
        journey_workflow_id(round_id, later),
        await kit.now(),
    )
    assert (await kit.api.report(round_id, later, by_new_key)).report_id == "adm-2"
