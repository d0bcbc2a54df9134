"""A signed order holds until its `valid_until`, and no longer.

Before, a signature held forever: an operator's command refused once (or never sent) could be
sent by anyone who had seen it, at any later moment it would be taken. Each test plays that attack
on the time-skipping server: the order must be refused by the workflow's validator and change
nothing, and the same order signed again must still count.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from client.api import RefusedError
from domain.codes import Stage
from domain.messages import AdminReport, ExtendWindow, Withdrawal
from domain.protocol import EXTEND_WINDOW
from domain.signing import CLIENT_VALIDITY, LONGEST_VALIDITY
from tests import roundkit
from tests.roundkit import OPERATOR, TEST_KEYRING
from workflows.ids import journey_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

VERIFIER = "bkpsdm-verifikator"


async def _journey(kit):
    return await kit.one_at_admin_check("ts-valid")


def _extension(t0) -> ExtendWindow:
    return ExtendWindow(
        report_id="ext-1",
        reported_by=OPERATOR,
        window="registration",
        new_closes=t0 + timedelta(days=16),
        reason="surat perpanjangan",
        shift_later=True,
    )


async def test_a_command_kept_past_its_valid_until_is_refused_and_signed_again_counts(kit):
    t0, round_id, _ = await _journey(kit)
    kept = TEST_KEYRING.sign(_extension(t0), round_workflow_id(round_id), t0)
    assert kept.valid_until == t0 + CLIENT_VALIDITY
    await kit.advance_to(t0 + CLIENT_VALIDITY + timedelta(minutes=1))
    before = await kit.round_state(round_id)

    with pytest.raises(RefusedError, match="command ext-1: valid_until .* has passed"):
        await kit.api.command(round_id, kept)

    after = await kit.round_state(round_id)
    assert after.schedule == before.schedule and after.decisions == before.decisions
    # The same command signed now is the same content: taken, not refused as a conflict.
    ack = await kit.api.command(round_id, _extension(t0))
    assert not ack.refused
    state = await kit.round_state(round_id)
    assert state.schedule.registration.closes == t0 + timedelta(days=16)


async def test_a_command_without_valid_until_is_refused_in_a_round_with_keys(kit):
    t0, round_id, _ = await _journey(kit)
    unbounded = roundkit.test_signer(OPERATOR).sign(_extension(t0), round_workflow_id(round_id))
    before = await kit.round_state(round_id)

    with pytest.raises(RefusedError, match="valid_until is missing: a signed ExtendWindow"):
        await kit.api.command(round_id, unbounded)

    after = await kit.round_state(round_id)
    assert after.schedule == before.schedule and after.decisions == before.decisions


async def test_a_command_valid_for_longer_than_a_day_is_refused(kit):
    t0, round_id, _ = await _journey(kit)
    far = _extension(t0).model_copy(
        update={"valid_until": t0 + LONGEST_VALIDITY + timedelta(hours=1)}
    )
    signed = roundkit.test_signer(OPERATOR).sign(far, round_workflow_id(round_id))

    with pytest.raises(
        RefusedError, match="is more than 24 h after now .*check the sender's clock"
    ):
        await kit.api.command(round_id, signed)
    state = await kit.round_state(round_id)
    assert state.schedule.registration.closes == t0 + timedelta(days=15)


async def test_a_repeat_is_answered_after_its_valid_until_has_passed(kit):
    """Answering a repeat changes nothing, so its validity does not matter: the client that sent
    it and timed out hears the first outcome, as before, whatever update id it travels under."""
    t0, round_id, _ = await _journey(kit)
    sent = TEST_KEYRING.sign(_extension(t0), round_workflow_id(round_id), t0)
    first = await kit.api.command(round_id, sent)
    await kit.advance_to(t0 + CLIENT_VALIDITY + timedelta(minutes=1))

    again = await kit.api.command(round_id, sent)
    # Under an update id of its own (a client before `valid_until`, which made ids otherwise):
    # the server does not know it, so the round's validator judges it, and answers the repeat.
    handle = kit.client.get_workflow_handle(round_workflow_id(round_id))
    other_id = await EXTEND_WINDOW.execute(handle, sent, id=f"another-{uuid.uuid4().hex}")

    assert again.recorded_at == first.recorded_at and again.effect == first.effect
    assert other_id.recorded_at == first.recorded_at


async def test_an_applicants_withdrawal_kept_past_its_valid_until_is_refused(kit):
    """The portal's signed withdrawal, refused or never sent, is no withdrawal a day later."""
    t0, round_id, applicant = await _journey(kit)
    journey = journey_workflow_id(round_id, applicant)
    kept = TEST_KEYRING.sign(
        Withdrawal(report_id="wd-1", reported_by="sscasn", reason="pindah kerja"), journey, t0
    )
    await kit.advance_to(t0 + CLIENT_VALIDITY + timedelta(minutes=1))

    with pytest.raises(RefusedError, match="report wd-1 for applicant .*valid_until .* has passed"):
        await kit.api.report(round_id, applicant, kept)

    state = await kit.journey(round_id, applicant)
    assert state.stage == Stage.ADMIN_CHECK and state.terminal is None


async def test_a_service_report_is_held_to_a_valid_until_it_carries_and_needs_none(kit):
    """A result report may say until when it holds (and is then held to it); one that does not
    counts, as services' reports always have."""
    t0, round_id, applicant = await _journey(kit)
    journey = journey_workflow_id(round_id, applicant)
    verifier = roundkit.test_signer(VERIFIER)
    stale = verifier.sign(
        AdminReport(report_id="adm-1", reported_by=VERIFIER, valid_until=t0 - timedelta(seconds=1)),
        journey,
    )

    with pytest.raises(RefusedError, match="valid_until .* has passed"):
        await kit.api.report(round_id, applicant, stale)
    assert (await kit.journey(round_id, applicant)).stage == Stage.ADMIN_CHECK

    unbounded = verifier.sign(AdminReport(report_id="adm-2", reported_by=VERIFIER), journey)
    ack = await kit.api.report(round_id, applicant, unbounded)
    assert not ack.refused
