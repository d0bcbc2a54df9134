"""An applicant's aftermath continues as new before its history can fill (patch
aftermath-continues-as-new), with its whole record, and takes no record from a client.

An aftermath stays open for years, and every reading of the round's keys adds to its history: one a
minute for as long as anyone sends reports for the ended journey, signed or not. Temporal takes
2,000 updates in a run; before the patch, some 33 hours of that left the aftermath unable to take a
DIS or dismissal ever again. The test server skips the minutes between the readings.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType

from auditing.bundle import load_histories
from auditing.history import decisions_of, fetched, replay
from client.api import RefusedError
from domain.aftermath import AftermathStart
from domain.messages import CloseWindow, Disqualification
from domain.protocol import AFTERMATH_STATE
from runtime.connection import data_converter
from runtime.keys import Keys
from scripts.record_histories import patch_markers
from tests.roundkit import (
    OPERATOR,
    SCHEDULE_IN_DAYS,
    compressed_round,
    formasi,
    keep_histories,
    registration,
)
from workflows.aftermath import CONTINUE_AT_EVENTS, KEYS_FRESH, READ_ROUND_AGAIN, ApplicantAftermath
from workflows.ids import aftermath_workflow_id, journey_workflow_id
from workflows.versions import AFTERMATH_CONTINUES_AS_NEW

pytestmark = pytest.mark.asyncio(loop_scope="session")
RECORDED = Path(__file__).resolve().parents[1] / "histories" / "aftermath-v3-continues"


async def ended_journeys(kit, count: int):
    """A round whose registration the committee closed, and `count` journeys started after it,
    each refusing its registration and ending TMS."""
    round_id = f"ts-after-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], SCHEDULE_IN_DAYS, t0=await kit.now())
    await kit.create_round(config)
    await kit.api.command(
        round_id,
        CloseWindow(report_id="close", reported_by=OPERATOR, window="registration", reason="kuota"),
    )
    applicants = []
    for i in range(count):
        started = await kit.api.register(config, registration(7 + i, "F1"), "sscasn")
        handle = kit.client.get_workflow_handle(journey_workflow_id(round_id, started.applicant_id))
        await handle.result()
        applicants.append(started.applicant_id)
    return round_id, applicants


async def _run_ids(handle) -> str:
    return (await handle.describe()).run_id


async def test_an_aftermath_read_again_and_again_continues_as_new_with_its_whole_record(kit, keys):
    round_id, [applicant, other] = await ended_journeys(kit, 2)
    dis = Disqualification(report_id="dis-1", reported_by=OPERATOR, reason="joki terbukti")
    first = await kit.api.report(round_id, applicant, dis)
    assert first.effect == "disqualified after the journey ended"
    after = kit.client.get_workflow_handle(aftermath_workflow_id(round_id, applicant))
    first_run = await _run_ids(after)

    # Anyone sending reports for the ended journey has the keys read again, once a minute.
    readings = 0
    while await _run_ids(after) == first_run:
        assert readings < CONTINUE_AT_EVENTS // 4, "the aftermath never continued as new"
        await kit.env.sleep(KEYS_FRESH + timedelta(seconds=1))
        await after.execute_update(READ_ROUND_AGAIN, result_type=str)
        readings += 1
    # (The test server lists no workflows: the runs are fetched by id.)
    runs = [await fetched(kit.client, after.id, r) for r in (first_run, await _run_ids(after))]
    ended = runs[0].history
    assert ended.events[-1].event_type == (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW)
    assert CONTINUE_AT_EVENTS <= len(ended.events) < CONTINUE_AT_EVENTS + 20
    assert AFTERMATH_CONTINUES_AS_NEW in patch_markers(ended)

    # The next run holds the record: the DIS and its decision, once.
    state = await AFTERMATH_STATE.ask(after)
    assert state.ready and state.problem == ""
    assert [(r.code, r.report_id) for r in state.revocations] == [("DIS", "dis-1")]
    assert [d.outcome for d in state.decisions] == ["DIS"]
    # The DIS sent again gets its first answer, as it did in the first run, and nothing more is
    # recorded (its update id is new to this run: the record answers it, not the server).
    await kit.env.sleep(KEYS_FRESH + timedelta(seconds=1))
    again = await kit.api.report(round_id, applicant, dis)
    assert again == first
    with pytest.raises(RefusedError, match="already used with different content"):
        await kit.api.report(round_id, applicant, dis.model_copy(update={"reason": "lain"}))
    assert len((await AFTERMATH_STATE.ask(after)).revocations) == 1
    # Nothing was written twice: the one revocation row, by the first run.
    assert [
        (w.first_seq, [r.report_id for r in w.revocations]) for w in kit.acts.revocation_rows
    ] == [(0, ["dis-1"])]

    # Both runs replay with the code of today, and the auditor counts one DIS across them.
    runs = [await fetched(kit.client, after.id, r.run_id) for r in runs]
    outcomes = await replay([r.history for r in runs], kit.client.data_converter)
    assert [(o.run_id, o.failure) for o in outcomes if not o.ok] == []
    assert [d.outcome for d in decisions_of(outcomes)] == ["DIS"]
    if os.environ.get("CASN_RECORD_AFTERMATH"):  # re-record aftermath-v3-continues
        keep_histories(RECORDED, runs, keys.payload_key)

    # A client's start that carries a record is refused: only the aftermath's own continue-as-new
    # hands one over. The other applicant's aftermath, started around the API with the record the
    # server handed to the second run (a DIS, the first applicant's journey), records nothing.
    [handed] = [
        e.workflow_execution_started_event_attributes.input.payloads
        for e in runs[1].history.events
        if e.HasField("workflow_execution_started_event_attributes")
    ]
    [carried] = await kit.client.data_converter.decode(handed, [AftermathStart])
    assert carried.carry is not None and carried.carry.revocations == state.revocations
    forging = await kit.client.start_workflow(
        ApplicantAftermath.run,
        AftermathStart(round_id=round_id, applicant_id=other, carry=carried.carry),
        id=aftermath_workflow_id(round_id, other),
        task_queue=kit.task_queue,
    )
    forged = await asyncio.wait_for(forging.result(), 30)  # refused: it ends at once
    assert "carries an earlier run's record" in forged.problem
    assert (forged.revocations, forged.decisions, forged.journey_terminal) == ([], [], None)
    assert len(kit.acts.revocation_rows) == 1


async def test_the_recorded_aftermath_that_continued_as_new_replays_with_the_current_code():
    """aftermath-v3-continues, recorded by the first test above: a run that continued as new by
    patch aftermath-continues-as-new once its keys were read again 82 times, and the run it handed
    its record to. Both replay with no non-determinism, and the DIS is derived once across them."""
    histories = load_histories(RECORDED)
    assert [h.kind for h in histories] == ["aftermath", "aftermath"]
    ended, continued = sorted(histories, key=lambda h: len(h.history.events), reverse=True)
    assert AFTERMATH_CONTINUES_AS_NEW in patch_markers(ended.history)
    assert ended.history.events[-1].event_type == (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    )
    key = base64.b64decode((RECORDED / "payload_key.b64").read_text().strip())
    converter = data_converter(Keys(payload_key=key, pseudonym_key=b"", signing_key=b""))
    outcomes = await replay([h.history for h in histories], converter)
    assert [(o.workflow_id, o.failure) for o in outcomes if not o.ok] == []
    assert [d.outcome for d in decisions_of(outcomes)] == ["DIS"]
    assert {len(o.state.revocations) for o in outcomes} == {1}
