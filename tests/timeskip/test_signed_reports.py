"""Signed reports and commands: in a round with identities, only what the reporter's key signed counts.

Each test is an attack that the engine took before reports were signed: a client that can reach
Temporal sends a report or a command in another identity's name. Each must be refused by the
workflow's validator, leave nothing in the journey's or round's state, and leave the real,
signed report free to arrive afterwards.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from client.api import RecruitmentApi, RefusedError
from domain.codes import Stage
from domain.messages import AdminReport, ExtendWindow, SkdReport
from domain.protocol import EXTEND_WINDOW, REPORT_ADMIN
from domain.signing import Keyring, Signer
from tests.roundkit import OPERATOR, TEST_KEYRING, compressed_round, formasi, registration
from tests.roundkit import SCHEDULE_IN_DAYS as SCHEDULE
from workflows.ids import journey_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

VERIFIER = "bkpsdm-verifikator"


async def _journey(kit):
    return await kit.one_at_admin_check("ts-sig")


def _unsigned_client(kit) -> RecruitmentApi:
    """A client that reaches Temporal but holds no key of the round."""
    return RecruitmentApi(kit.client, kit.api.task_queue, kit.api.pseudonym_key)


async def test_an_unsigned_report_is_refused_and_the_signed_one_then_counts(kit):
    _, round_id, applicant = await _journey(kit)
    forged = AdminReport(report_id="adm-1", reported_by=VERIFIER)

    with pytest.raises(RefusedError, match="unsigned"):
        await _unsigned_client(kit).report(round_id, applicant, forged)

    ack = await kit.api.report(round_id, applicant, forged)  # the same report, signed by its key
    assert ack.effect == "administrative result recorded"


async def test_a_report_signed_with_a_key_the_round_does_not_list_is_refused(kit):
    _, round_id, applicant = await _journey(kit)
    impostor = Keyring([Signer.generate(VERIFIER)])  # claims the verifier's name, own key
    journey = journey_workflow_id(round_id, applicant)
    forged = impostor.sign(AdminReport(report_id="adm-x", reported_by=VERIFIER), journey)

    with pytest.raises(RefusedError, match="does not verify under bkpsdm-verifikator's key"):
        await kit.api.report(round_id, applicant, forged)


async def test_another_identitys_valid_key_cannot_sign_in_the_verifiers_name(kit):
    _, round_id, applicant = await _journey(kit)
    cat = TEST_KEYRING.signers["cat-bkn"]
    report = AdminReport(report_id="adm-y", reported_by=VERIFIER)
    journey = journey_workflow_id(round_id, applicant)
    with pytest.raises(ValueError, match="cannot sign a message reported by"):
        cat.sign(report, journey)
    # Signed as cat-bkn, then relabelled: the signature no longer matches the content.
    relabelled = cat.sign(report.model_copy(update={"reported_by": "cat-bkn"}), journey)
    relabelled = relabelled.model_copy(update={"reported_by": VERIFIER})

    with pytest.raises(RefusedError, match="does not verify"):
        await kit.api.report(round_id, applicant, relabelled)


async def test_a_signed_report_with_changed_content_is_refused(kit):
    t0, round_id, applicant = await _journey(kit)
    await kit.api.report(round_id, applicant, AdminReport(report_id="adm-1", reported_by=VERIFIER))
    await kit.advance_to(t0 + timedelta(days=26))
    await kit.journey_at(round_id, applicant, Stage.SKD)
    genuine = TEST_KEYRING.sign(
        SkdReport(report_id="skd-1", reported_by="cat-bkn", twk=60, tiu=70, tkp=150),
        journey_workflow_id(round_id, applicant),
        await kit.now(),
    )
    raised = genuine.model_copy(update={"twk": 150, "tiu": 175, "tkp": 225})

    with pytest.raises(RefusedError, match="does not verify"):
        await kit.api.report(round_id, applicant, raised)

    await kit.api.report(round_id, applicant, genuine)
    state = await kit.journey(round_id, applicant)
    assert state.skd_total == 280  # the signed scores, never the raised ones
    handle = kit.client.get_workflow_handle(journey_workflow_id(round_id, applicant))
    with pytest.raises(WorkflowUpdateFailedError) as refused:  # straight to Temporal, unsigned
        await REPORT_ADMIN.execute(handle, AdminReport(report_id="adm-z", reported_by=VERIFIER))
    assert "unsigned" in str(refused.value.cause)


async def test_an_unsigned_operator_command_is_refused(kit):
    t0, round_id, _ = await _journey(kit)
    extend = ExtendWindow(
        report_id="ext-forged",
        reported_by=OPERATOR,
        window="registration",
        new_closes=t0 + timedelta(days=20),
        reason="forged extension",
    )
    handle = kit.client.get_workflow_handle(round_workflow_id(round_id))

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await EXTEND_WINDOW.execute(handle, extend)
    assert "unsigned" in str(refused.value.cause)
    state = await kit.round_state(round_id)
    assert state.schedule.registration.closes == t0 + timedelta(days=15)


async def test_a_signed_report_copied_to_another_applicant_is_refused(kit):
    t0 = await kit.now()
    round_id = f"ts-sig-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 2)], SCHEDULE, t0=t0)
    await kit.create_round(config)
    first, second = [await kit.register(config, registration(i, "F1")) for i in (1, 2)]
    for applicant in (first, second):
        await kit.journey_at(round_id, applicant, Stage.ADMIN_CHECK)
    signed_for_first = TEST_KEYRING.sign(
        AdminReport(report_id="adm-1", reported_by=VERIFIER),
        journey_workflow_id(round_id, first),
        await kit.now(),
    )

    with pytest.raises(RefusedError, match=f"for {round_id}/applicant/{second}"):
        await kit.api.report(round_id, second, signed_for_first)

    assert (await kit.api.report(round_id, first, signed_for_first)).report_id == "adm-1"
