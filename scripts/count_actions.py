"""Count what each recorded history costs: engine actions and Temporal Cloud billable actions.

    .venv/bin/python scripts/count_actions.py [SET_DIR ...] [--json]
    .venv/bin/python scripts/count_actions.py --replay-cost 20   # CPU of replaying each journey

SET_DIR is a recorded set (default tests/histories/v5-full: a whole round played to its close).
For every run it counts workflow tasks, updates, signals, timers, activities, local activities,
child workflows, continue-as-new, search-attribute upserts, queries a local activity made (the
journey's admission asks its round), events and bytes, and prices the run in Temporal Cloud
billable actions. Each journey is printed with its outcome, re-derived by replaying its history
with the set's payload key; then the mean per outcome and the totals per kind of workflow.
docs/OPERATIONS.md builds the capacity plan on these counts.

Billable actions follow Temporal's published definition (https://docs.temporal.io/cloud/actions,
read 2026-12-02):

| counted here | actions |
|---|---|
| a run started (client start, continue-as-new) | 1 |
| a child workflow started (StartChildWorkflowExecutionInitiated, in the parent) | 2; the child's own first run then counts 0 |
| UpsertWorkflowSearchAttributes | 1, except one that sets only TemporalChangeVersion |
| a signal received (WorkflowExecutionSignaled; the sender's event is not counted) | 1 |
| an update accepted (rejected ones count too, but leave no event: not seen here) | 1 |
| a timer started | 1 |
| an activity scheduled, and each retry (ActivityTaskStarted attempt - 1) | 1 |
| the markers of one workflow task together (local activities; the page says all RecordMarkers, so a patch marker too) | 1, plus each local-activity retry in the task's metering metadata |
| a query (none is in a history) | 1: here only the round queries the journeys' `read_round` local activities make; a `read_round` answered from the round's board (patch round-view-board: `from_board` in its result, read with the set's payload key) made none |

Queries from outside (the portal's status page asks the journey) are not in any history; the
capacity plan adds them by assumption. `--replay-cost N` replays each journey N times and prints the
CPU of one replay against its length, with a least-squares line: what a worker pays for a journey that
is not in its cache (an upper bound: the audit replayer also captures the decisions). Bytes are the history's protobuf size (what the server
stores, before its own framing) and the size of the JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.api.history.v1 import History  # noqa: E402

from auditing.bundle import load_histories  # noqa: E402
from auditing.history import RecordedHistory, replay  # noqa: E402
from runtime.codec import AesGcmCodec  # noqa: E402
from runtime.connection import data_converter  # noqa: E402
from runtime.keys import Keys  # noqa: E402
from runtime.process import run_and_end  # noqa: E402

DEFAULT_SET = Path(__file__).resolve().parent.parent / "tests" / "histories" / "v5-full"
VERSION_ATTRIBUTE = "TemporalChangeVersion"
ROUND_QUERYING_ACTIVITIES = {"read_round"}  # local activities that query the round workflow


@dataclass
class RunCount:
    """What one run's history holds, and what it costs in Temporal Cloud actions."""

    kind: str
    workflow_id: str
    run_id: str
    outcome: str = ""
    events: int = 0
    proto_bytes: int = 0
    json_bytes: int = 0
    workflow_tasks: int = 0
    workflow_tasks_failed: int = 0
    updates: int = 0
    signals: int = 0
    signals_sent: int = 0
    timers: int = 0
    activities: int = 0
    activity_retries: int = 0
    local_activities: int = 0
    local_activity_retries: int = 0
    marker_tasks: int = 0
    patch_markers: int = 0
    queries: int = 0
    query_retries: int = 0  # of `queries`: attempts after a first that failed (load, not design)
    board_reads: int = 0  # `read_round`s answered from the round's board: no query
    children: int = 0
    continued_as_new: int = 0
    upserts: int = 0
    upserts_billable: int = 0
    started_billable: int = 0
    local_activity_types: Counter = field(default_factory=Counter)

    @property
    def billable(self) -> int:
        """Temporal Cloud actions of this run (module docstring)."""
        return (
            self.started_billable
            + 2 * self.children
            + self.upserts_billable
            + self.signals
            + self.updates
            + self.timers
            + self.activities
            + self.activity_retries
            + self.marker_tasks
            + self.local_activity_retries
            + self.queries
        )


def _from_board(marker, codec: AesGcmCodec | None) -> bool:
    """Whether a `read_round` marker's answer came from the round's board. Without the payload
    key the answer cannot be read, and the read counts as a query (an upper bound)."""
    result = marker.details.get("result")
    if codec is None or result is None or not result.payloads:
        return False
    answer = json.loads(codec.decode_now(result.payloads[0]).data)
    return bool(answer.get("from_board"))


def count_run(
    recorded: RecordedHistory, json_bytes: int, codec: AesGcmCodec | None = None
) -> RunCount:
    """Count one run's events (protobuf, as loaded by auditing.bundle.load_histories); `codec`
    reads the local activities' answers (which `read_round` asked no query)."""
    history = recorded.history
    c = RunCount(recorded.kind, recorded.workflow_id, recorded.run_id, json_bytes=json_bytes)
    c.events = len(history.events)
    c.proto_bytes = History(events=history.events).ByteSize()
    tasks_with_markers: set[int] = set()
    for event in history.events:
        kind = event.WhichOneof("attributes") or ""
        if kind == "workflow_execution_started_event_attributes":
            attrs = event.workflow_execution_started_event_attributes
            child_first_run = attrs.HasField("parent_workflow_execution") and not (
                attrs.continued_execution_run_id
            )
            c.started_billable = 0 if child_first_run else 1
        elif kind == "workflow_task_completed_event_attributes":
            c.workflow_tasks += 1
            metering = event.workflow_task_completed_event_attributes.metering_metadata
            c.local_activity_retries += metering.nonfirst_local_activity_execution_attempts
        elif kind in (
            "workflow_task_failed_event_attributes",
            "workflow_task_timed_out_event_attributes",
        ):
            c.workflow_tasks_failed += 1
        elif kind == "workflow_execution_update_accepted_event_attributes":
            c.updates += 1
        elif kind == "workflow_execution_signaled_event_attributes":
            c.signals += 1
        elif kind == "signal_external_workflow_execution_initiated_event_attributes":
            c.signals_sent += 1
        elif kind == "timer_started_event_attributes":
            c.timers += 1
        elif kind == "activity_task_scheduled_event_attributes":
            c.activities += 1
        elif kind == "activity_task_started_event_attributes":
            c.activity_retries += max(0, event.activity_task_started_event_attributes.attempt - 1)
        elif kind == "start_child_workflow_execution_initiated_event_attributes":
            c.children += 1
        elif kind == "workflow_execution_continued_as_new_event_attributes":
            c.continued_as_new += 1
        elif kind == "upsert_workflow_search_attributes_event_attributes":
            c.upserts += 1
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            if set(fields.indexed_fields) - {VERSION_ATTRIBUTE}:
                c.upserts_billable += 1
        elif kind == "marker_recorded_event_attributes":
            marker = event.marker_recorded_event_attributes
            tasks_with_markers.add(marker.workflow_task_completed_event_id)
            if marker.marker_name == "core_patch":
                c.patch_markers += 1
            elif marker.marker_name == "core_local_activity":
                c.local_activities += 1
                meta = json.loads(marker.details["data"].payloads[0].data)
                c.local_activity_types[meta.get("activity_type", "?")] += 1
                if meta.get("activity_type") in ROUND_QUERYING_ACTIVITIES and _from_board(
                    marker, codec
                ):
                    c.board_reads += 1
                elif meta.get("activity_type") in ROUND_QUERYING_ACTIVITIES:
                    attempts = int(meta.get("attempt") or 1)
                    c.queries += attempts
                    c.query_retries += attempts - 1
    c.marker_tasks = len(tasks_with_markers)
    return c


async def outcomes_by_replay(directory: Path, histories: list[RecordedHistory]) -> dict[str, str]:
    """Each journey run's terminal outcome, re-derived by replay with the set's payload key."""
    key_file = directory / "payload_key.b64"
    if not key_file.is_file():
        return {}
    key = base64.b64decode(key_file.read_text().strip())
    converter = data_converter(Keys(payload_key=key, pseudonym_key=b"", signing_key=b""))
    journeys = [h.history for h in histories if h.kind == "journey"]
    found = {}
    for o in await replay(journeys, converter):
        state = o.state
        if state is None or not o.ok:
            found[o.run_id] = "(does not replay)"
        else:
            found[o.run_id] = state.terminal.value if state.terminal else "(running)"
    return found


def set_codec(directory: Path) -> AesGcmCodec | None:
    """The codec of a recorded set's payload key, if the set has one."""
    key_file = directory / "payload_key.b64"
    if not key_file.is_file():
        return None
    return AesGcmCodec(base64.b64decode(key_file.read_text().strip()))


def count_set(directory: Path) -> list[RunCount]:
    """Every run of a recorded set, journeys with their outcome."""
    histories = load_histories(directory)
    sizes = {}
    for path in directory.glob("*.json"):
        stem = path.stem.rsplit("__", 1)
        if len(stem) == 2:
            sizes[stem[1]] = path.stat().st_size
    outcomes = asyncio.run(outcomes_by_replay(directory, histories))
    codec = set_codec(directory)
    counts = []
    for h in histories:
        c = count_run(h, sizes.get(h.run_id, 0), codec)
        c.outcome = outcomes.get(h.run_id, "")
        counts.append(c)
    return counts


COLUMNS = [
    ("events", "events"),
    ("proto_bytes", "bytes"),
    ("workflow_tasks", "WFT"),
    ("updates", "upd"),
    ("signals", "sig"),
    ("timers", "tmr"),
    ("activities", "act"),
    ("local_activities", "LA"),
    ("marker_tasks", "mkT"),
    ("patch_markers", "patch"),
    ("queries", "qry"),
    ("children", "child"),
    ("continued_as_new", "CAN"),
    ("upserts", "ups"),
    ("billable", "actions"),
]


def _row(label: str, values: list[str]) -> str:
    return f"| {label} | " + " | ".join(values) + " |"


def _header(first: str) -> str:
    names = [name for _, name in COLUMNS]
    return _row(first, names) + "\n|---|" + "---:|" * len(names)


def _mean(m: float) -> str:
    return f"{m:,.0f}" if m >= 1000 else f"{m:.2f}".rstrip("0").rstrip(".")


def _value(c: RunCount, attr: str) -> float:
    return float(getattr(c, attr))


def print_tables(directory: Path, counts: list[RunCount]) -> None:
    """Markdown tables: every journey, the mean per outcome, totals per kind."""
    journeys = sorted(
        (c for c in counts if c.kind == "journey"), key=lambda c: (c.outcome, c.workflow_id)
    )
    print(f"\n## {directory} ({len(counts)} runs, {len(journeys)} journeys)\n")
    print(
        "WFT workflow tasks completed, upd updates accepted, sig signals received, tmr timers, "
        "act activities, LA local activities, mkT workflow tasks with markers, patch patch "
        "markers, qry queries made by local activities, CAN continue-as-new, ups search-attribute "
        "upserts, actions Temporal Cloud billable actions, bytes protobuf size of the history\n"
    )
    print(_header("journey (outcome)"))
    for c in journeys:
        label = f"{c.workflow_id.rsplit('/', 1)[-1][:8]} ({c.outcome or '?'})"
        print(_row(label, [f"{_value(c, a):g}" for a, _ in COLUMNS]))

    print("\nMean per journey, by outcome:\n")
    print(_header("outcome (journeys)"))
    by_outcome: dict[str, list[RunCount]] = defaultdict(list)
    for c in journeys:
        by_outcome[c.outcome].append(c)
    for outcome, group in sorted(by_outcome.items()):
        means = [statistics.fmean(_value(c, a) for c in group) for a, _ in COLUMNS]
        print(_row(f"{outcome} ({len(group)})", [_mean(m) for m in means]))
    if journeys:
        means = [statistics.fmean(_value(c, a) for c in journeys) for a, _ in COLUMNS]
        print(_row(f"all journeys ({len(journeys)})", [_mean(m) for m in means]))

    print("\nTotals per kind of workflow (every run of the set):\n")
    print(_header("kind (runs)"))
    by_kind: dict[str, list[RunCount]] = defaultdict(list)
    for c in counts:
        by_kind[c.kind].append(c)
    for kind, group in sorted(by_kind.items()):
        sums = [sum(_value(c, a) for c in group) for a, _ in COLUMNS]
        print(_row(f"{kind} ({len(group)})", [f"{s:g}" for s in sums]))
    sums = [sum(_value(c, a) for c in counts) for a, _ in COLUMNS]
    print(_row(f"all ({len(counts)})", [f"{s:g}" for s in sums]))
    types: Counter = Counter()
    for c in counts:
        types.update(c.local_activity_types)
    print("\nLocal activities by type: " + ", ".join(f"{k} {v}" for k, v in sorted(types.items())))


async def replay_cost(directory: Path, repeat: int) -> list[tuple[int, float]]:
    """(events, CPU ms of one replay) for each journey of the set, replayed `repeat` times."""
    key = base64.b64decode((directory / "payload_key.b64").read_text().strip())
    converter = data_converter(Keys(payload_key=key, pseudonym_key=b"", signing_key=b""))
    journeys = [h.history for h in load_histories(directory) if h.kind == "journey"]
    await replay(journeys, converter)  # warm up: imports, the sandbox
    points = []
    for history in sorted(journeys, key=lambda h: len(h.events)):
        started = time.process_time()
        await replay([history] * repeat, converter)
        points.append((len(history.events), (time.process_time() - started) * 1000 / repeat))
    return points


def print_replay_cost(directory: Path, repeat: int) -> None:
    points = asyncio.run(replay_cost(directory, repeat))
    print(f"\n## replay CPU per journey, {directory} ({repeat} replays each)\n")
    print("| events | CPU ms per replay |\n|---:|---:|")
    for events, ms in points:
        print(f"| {events} | {ms:.1f} |")
    fit = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
    print(f"\nleast squares: {fit.intercept:.1f} ms + {fit.slope:.3f} ms per event")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", type=Path, default=[DEFAULT_SET])
    parser.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    parser.add_argument(
        "--replay-cost",
        type=int,
        metavar="N",
        help="instead: replay each journey N times and print the CPU of one replay",
    )
    args = parser.parse_args(argv)
    if args.replay_cost is not None:
        if args.replay_cost < 1:
            print(f"bad input: --replay-cost {args.replay_cost}: give 1 or more", file=sys.stderr)
            return 2
        for directory in args.sets:
            print_replay_cost(directory, args.replay_cost)
        return 0
    document = {}
    for directory in args.sets:
        if not directory.is_dir():
            print(
                f"bad input: {directory} is not a directory of recorded histories", file=sys.stderr
            )
            return 2
        counts = count_set(directory)
        if not counts:
            print(f"bad input: {directory} holds no history (*.json)", file=sys.stderr)
            return 2
        if args.json:
            document[str(directory)] = [
                {
                    **asdict(c),
                    "billable": c.billable,
                    "local_activity_types": dict(c.local_activity_types),
                }
                for c in counts
            ]
        else:
            print_tables(directory, counts)
    if args.json:
        print(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    run_and_end(main)
