"""scripts/count_actions.py prices recorded runs in Temporal Cloud actions by the published rules.

Each expectation is counted here from the history's JSON event types, independently of the
script's protobuf walk, and combined by the rules of https://docs.temporal.io/cloud/actions.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import pytest

from auditing.bundle import load_histories
from scripts.count_actions import count_run, set_codec

SET = Path(__file__).parent / "histories" / "v5-full"


def _runs() -> dict[str, tuple]:
    """run id -> (the loaded run, its JSON events)."""
    files = {p.stem.rsplit("__", 1)[1]: p for p in SET.glob("*.json")}
    return {
        h.run_id: (h, json.loads(files[h.run_id].read_text())["events"])
        for h in load_histories(SET)
    }


def _types(events: list[dict]) -> Counter:
    return Counter(e["eventType"].removeprefix("EVENT_TYPE_") for e in events)


@pytest.fixture(scope="module")
def runs():
    return _runs()


def test_a_journey_pays_its_start_messages_timers_marker_tasks_and_admission_query(runs):
    for recorded, events in runs.values():
        if recorded.kind != "journey":
            continue
        types = _types(events)
        marker_tasks = {
            e["markerRecordedEventAttributes"]["workflowTaskCompletedEventId"]
            for e in events
            if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
        }
        round_queries = sum(
            1
            for e in events
            if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
            and _local_activity_type(e) == "read_round"
        )
        expected = (
            1  # started by a client
            + types["WORKFLOW_EXECUTION_UPDATE_ACCEPTED"]
            + types["WORKFLOW_EXECUTION_SIGNALED"]
            + types["TIMER_STARTED"]
            + len(marker_tasks)
            + round_queries
        )
        counted = count_run(recorded, 0)
        assert counted.billable == expected, recorded.workflow_id
        assert counted.workflow_tasks == types["WORKFLOW_TASK_COMPLETED"]
        assert counted.upserts_billable == 0  # TemporalChangeVersion only: exempt


def test_the_round_pays_two_per_child_and_no_version_only_upsert(runs):
    [(recorded, events)] = [r for r in runs.values() if r[0].kind == "round"]
    types = _types(events)
    version_only = sum(
        1
        for e in events
        if e["eventType"] == "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"
        and set(
            e["upsertWorkflowSearchAttributesEventAttributes"]["searchAttributes"]["indexedFields"]
        )
        == {"TemporalChangeVersion"}
    )
    marker_tasks = {
        e["markerRecordedEventAttributes"]["workflowTaskCompletedEventId"]
        for e in events
        if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
    }
    expected = (
        1
        + 2 * types["START_CHILD_WORKFLOW_EXECUTION_INITIATED"]
        + types["UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"]
        - version_only
        + types["WORKFLOW_EXECUTION_SIGNALED"]
        + types["WORKFLOW_EXECUTION_UPDATE_ACCEPTED"]
        + types["TIMER_STARTED"]
        + len(marker_tasks)
    )
    assert version_only > 0 and types["START_CHILD_WORKFLOW_EXECUTION_INITIATED"] == 2
    assert count_run(recorded, 0).billable == expected


def test_a_formasi_first_run_is_paid_by_its_parent_and_each_continuation_by_itself(runs):
    formasi = [(r, e) for r, e in runs.values() if r.kind == "formasi"]
    first = {
        r.run_id
        for r, events in formasi
        if "continuedExecutionRunId" not in events[0]["workflowExecutionStartedEventAttributes"]
    }
    assert len(first) == 2  # F1 and F2, started as children of the round
    for recorded, events in formasi:
        expected = 0 if recorded.run_id in first else 1
        assert count_run(recorded, 0).started_billable == expected, recorded.run_id
        assert count_run(recorded, 0).activities == _types(events)["ACTIVITY_TASK_SCHEDULED"]


def _local_activity_type(event: dict) -> str | None:
    """The activity type a local-activity marker records (None for a patch marker)."""
    attributes = event["markerRecordedEventAttributes"]
    if attributes["markerName"] != "core_local_activity":
        return None
    payload = attributes["details"]["data"]["payloads"][0]["data"]
    return json.loads(base64.b64decode(payload)).get("activity_type")


def test_an_admission_read_from_the_round_board_asks_no_query():
    """v10-full's journeys read their round's board (patch round-view-board): with the set's key
    each `read_round` answer is seen to come from the board and counts no query; without the key
    the answer cannot be read, and each counts as a query (the upper bound)."""
    board_set = SET.parent / "v10-full"
    codec = set_codec(board_set)
    assert codec is not None
    journeys = [h for h in load_histories(board_set) if h.kind == "journey"]
    assert journeys
    board_reads = queries = 0
    for recorded in journeys:
        with_key = count_run(recorded, 0, codec)
        without = count_run(recorded, 0)
        reads = with_key.local_activity_types["read_round"]
        assert reads >= 1, recorded.workflow_id
        assert with_key.board_reads + with_key.queries == reads, recorded.workflow_id
        assert without.queries == reads and without.board_reads == 0
        assert without.billable - with_key.billable == with_key.board_reads
        board_reads += with_key.board_reads
        queries += with_key.queries
    # Every admission and TMT read of the recording came from the board (the fallback to the
    # query is exercised in tests/flows/test_round_board.py).
    assert (board_reads, queries) == (16, 0)
    # a set recorded before the board: its answers say they were asked by query
    older = SET.parent / "v9-full"
    for recorded in load_histories(older):
        if recorded.kind == "journey":
            counted = count_run(recorded, 0, set_codec(older))
            assert counted.board_reads == 0
            assert counted.queries == counted.local_activity_types["read_round"] >= 1
