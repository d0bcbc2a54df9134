"""Messages between the round's own workflows are sealed; a forged one changes nothing.

Before seals, anyone who reached Temporal could close SKD on one journey (it then ended TH before
its score arrived) or announce a result to it. The round draws a secret only its own workflows
learn (encrypted by the payload codec) and every internal message carries an HMAC under it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from domain.codes import Phase, Stage
from domain.messages import AdminReport, Announcement
from domain.protocol import ANNOUNCE, CLOSE_STAGE
from domain.seal import sealed
from tests.roundkit import SCHEDULE_IN_DAYS as SCHEDULE
from tests.roundkit import compressed_round, formasi, registration
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _journey_at_skd(kit):
    t0 = await kit.now()
    round_id = f"ts-seal-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], SCHEDULE, t0=t0)
    await kit.create_round(config)
    applicant = await kit.register(config, registration(1, "F1"))
    await kit.journey_at(round_id, applicant, Stage.ADMIN_CHECK)
    return t0, round_id, applicant


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
