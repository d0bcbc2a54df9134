"""The SKD and SKB closes are answered with the journey's read-model row (patch
close-answered-with-row): the broadcast writes it, and the journey runs no local activity at the
close. Schedule (days after t0): registration 0-15, administration 15-18, SKD 21-35, SKB 36-50.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from domain.codes import Stage
from domain.messages import AdminReport, GateReport, SkbScoreReport, SkdReport
from tests.roundkit import compressed_round, formasi, registration
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400


def local_activities_in_task_of_close(history, nth: int) -> list[str]:
    """Local activities recorded by the workflow task that completed the `nth` `close_stage`
    update (0: SKD, 1: SKB; payloads are encrypted): its events run from the update's acceptance
    to the next task being scheduled."""
    events = list(history.events)
    closes = [
        i
        for i, e in enumerate(events)
        if e.HasField("workflow_execution_update_accepted_event_attributes")
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        == "close_stage"
    ]
    found = []
    for later in events[closes[nth] + 1 :]:
        if later.HasField("workflow_task_scheduled_event_attributes"):
            break
        if later.HasField("marker_recorded_event_attributes"):
            marker = later.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity":
                meta = json.loads(marker.details["data"].payloads[0].data)
                found.append(meta.get("activity_type", "?"))
    return found


async def test_closes_hand_the_row_to_the_broadcast_instead_of_a_local_activity(kit):
    t0 = await kit.now()
    round_id = f"ts-close-row-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 1)],
        {
            "registration": (0, 15 * DAY),
            "administration": (15 * DAY, 18 * DAY),
            "skd": (21 * DAY, 35 * DAY),
            "skb": (36 * DAY, 50 * DAY),
            "filing": (60 * DAY, 75 * DAY),
            "latsar": (75 * DAY, 440 * DAY),
        },
        t0=t0,
    )
    await kit.create_round(config)
    await kit.advance_to(t0 + timedelta(hours=1))
    applicant = await kit.register(config, registration(1, "F1"))

    async def report(message):
        return await kit.api.report(round_id, applicant, message)

    await kit.journey_at(round_id, applicant, Stage.ADMIN_CHECK)
    await report(AdminReport(report_id="adm", reported_by="bkpsdm-verifikator"))
    await kit.advance_to(t0 + timedelta(days=22))
    await kit.journey_at(round_id, applicant, Stage.SKD)
    await report(SkdReport(report_id="skd", reported_by="cat-bkn", twk=120, tiu=140, tkp=190))
    await kit.advance_to(t0 + timedelta(days=40))
    await kit.journey_at(round_id, applicant, Stage.SKB)
    for component, score in (("cat", 450), ("praktik", 90)):
        await report(
            SkbScoreReport(
                report_id=f"{component}-1",
                reported_by="cat-bkn" if component == "cat" else "panel-praktik",
                component=component,
                score=score,
            )
        )
    await report(GateReport(report_id="h", reported_by="rsud", component="health", decision="MS"))
    await kit.advance_to(t0 + timedelta(days=50, hours=1))
    await kit.journey_at(round_id, applicant, Stage.FILING)  # the final result is out

    # At the SKD close the journey had nothing to write (it waits for the result), so no row; at
    # the SKB close it had: SkbCompleted and the final ranking it waits in.
    rows = [r for r in kit.acts.close_rows if r.state.applicant_id == applicant]
    assert [r.state.stage for r in rows] == [Stage.FINAL_RANKING]
    handle = kit.client.get_workflow_handle(journey_workflow_id(round_id, applicant))
    history = await handle.fetch_history()
    assert local_activities_in_task_of_close(history, 1) == []
    # What the close's row left pending (SkbCompleted) is written again with the next row.
    newest = kit.acts.projections[(round_id, applicant)]
    assert newest.version > rows[-1].version
