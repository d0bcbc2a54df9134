"""A journey whose local activity ran out of its retry budget, evicted from the cache before its
one-minute pause ended, replays (found in the cold-cache benchmark of docs/OPERATIONS.md).

Live, the exhausted local activity raises ActivityError; on replay the SDK hands back the recorded
timeout as temporalio.exceptions.TimeoutError. workflows/calls.py must treat both alike, or every
later task of such a journey fails as non-deterministic and the journey is stuck.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from auditing.bundle import load_histories
from auditing.history import replay
from scripts.record_histories import patch_markers, timers_started
from tests.flows.test_audit import recorded_converter
from workflows.calls import local_pause_bounds
from workflows.versions import LOCAL_ACTIVITY_ATTEMPTS, LOCAL_ACTIVITY_GROWING_PAUSE

HERE = Path(__file__).resolve().parent.parent / "histories" / "local-activity-timeout"

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_journey_paused_after_its_local_activity_timed_out_replays():
    history = WorkflowHistory.from_json("journey", (HERE / "journey.json").read_text())
    [outcome] = await replay([history], recorded_converter(HERE))
    assert outcome.ok, (outcome.failure, outcome.drift)


GROWING = HERE.parent / "local-activity-growing-pause"


async def test_journeys_paused_through_a_read_model_outage_replay():
    """The histories of a round whose read model was down for 7 minutes, recorded by
    `python3 run.py bench outage --size 3 --down 420 --record tests/histories/local-activity-growing-pause`
    (BENCHMARKS.md, "A read-model outage"): each journey decided MS with the database down, failed
    to write its row through growing pauses (patch local-activity-growing-pause) and wrote it once
    the database was back. A change to run_local_activity_until_done that would replay them
    differently fails here, as it would fail every journey waiting out an outage when the
    workers are upgraded."""
    histories = load_histories(GROWING)
    outcomes = await replay([h.history for h in histories], recorded_converter(GROWING))
    assert outcomes and all(o.ok for o in outcomes), [
        (o.workflow_id, o.failure or o.drift) for o in outcomes if not o.ok
    ]
    journeys = [h.history for h in histories if "/applicant/" in h.workflow_id]
    assert journeys
    for history in journeys:
        assert {LOCAL_ACTIVITY_ATTEMPTS, LOCAL_ACTIVITY_GROWING_PAUSE} <= set(
            patch_markers(history)
        ), history.workflow_id
        pauses = timers_started(history)
        # What the set was recorded for: at least three pauses, of 1, 2 and 4 minutes less their
        # jitter (a journey sets no timer of its own while it waits for its SKD).
        assert len(pauses) >= 3, (history.workflow_id, pauses)
        for n, pause in enumerate(pauses[:3]):
            shortest, longest = local_pause_bounds(n)
            assert shortest <= pause <= longest, (history.workflow_id, pauses)
