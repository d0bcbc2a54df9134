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

from auditing.history import replay
from tests.flows.test_audit import recorded_converter

HERE = Path(__file__).resolve().parent.parent / "histories" / "local-activity-timeout"

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_journey_paused_after_its_local_activity_timed_out_replays():
    history = WorkflowHistory.from_json("journey", (HERE / "journey.json").read_text())
    [outcome] = await replay([history], recorded_converter(HERE))
    assert outcome.ok, (outcome.failure, outcome.drift)
