"""Engine actions per journey, counted from the histories of one benchmark run (issue 17 item 5).

Temporal Cloud's definition of an action (https://docs.temporal.io/cloud/actions), as
scripts/count_actions.py applies it to recorded sets: that script's `count_run` prices each run
here too, so the recorded-set figures and the benchmark's are one count. The count is exact: it
reads what the server stored, not the clock, so a noisy machine does not move it.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable

from temporalio.client import Client

from auditing.history import RecordedHistory
from scripts.count_actions import RunCount, count_run

FETCH_CONCURRENCY = 16
KINDS_OF_TYPE = {
    "ApplicantJourney": "journey",
    "FormasiSelection": "formasi",
    "RecruitmentRound": "round",
    "BaselineJourney": "naive journey",
}


async def count_workflows(client: Client, workflow_ids: Iterable[str]) -> list[RunCount]:
    """Every run (continue-as-new runs too) of the given workflow ids, counted."""
    gate = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def runs_of(workflow_id: str) -> list[RunCount]:
        async with gate:
            found = []
            async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
                handle = client.get_workflow_handle(workflow_id, run_id=wf.run_id)
                history = await handle.fetch_history()
                recorded = RecordedHistory(history=history, workflow_type=wf.workflow_type)
                c = count_run(recorded, 0, client.data_converter.payload_codec)
                c.kind = KINDS_OF_TYPE.get(wf.workflow_type, wf.workflow_type)
                found.append(c)
            if not found:
                raise RuntimeError(f"bench: no run of workflow {workflow_id} is listed")
            return found

    nested = await asyncio.gather(*(runs_of(w) for w in workflow_ids))
    return [c for runs in nested for c in runs]


# The kinds of action in a run, as count_actions.py's RunCount.billable adds them up.
ACTION_PARTS = (
    ("start", lambda c: c.started_billable + 2 * c.children),
    ("updates", lambda c: c.updates),
    ("signals", lambda c: c.signals),
    ("timers", lambda c: c.timers),
    ("activities", lambda c: c.activities + c.activity_retries),
    ("local-activity tasks", lambda c: c.marker_tasks + c.local_activity_retries),
    ("queries", lambda c: c.queries),
    ("search-attribute upserts", lambda c: c.upserts_billable),
)


def mean_parts(counts: list[RunCount], per: int) -> dict[str, float]:
    """Actions of `counts` by kind, divided by `per` (journeys), and workflow tasks and events."""
    out = {name: sum(part(c) for c in counts) / per for name, part in ACTION_PARTS}
    out["actions"] = sum(c.billable for c in counts) / per
    retries = sum(c.activity_retries + c.local_activity_retries + c.query_retries for c in counts)
    out["of which retries (load, not design)"] = retries / per
    out["workflow tasks"] = sum(c.workflow_tasks for c in counts) / per
    out["events"] = sum(c.events for c in counts) / per
    out["local activities"] = sum(c.local_activities for c in counts) / per
    return out


def retried(c: RunCount) -> bool:
    """Whether the run retried anything (a query the busy round did not answer, a failed task):
    what load adds to a history, apart from what the design costs."""
    return bool(
        c.activity_retries or c.local_activity_retries or c.query_retries or c.workflow_tasks_failed
    )


def by_outcome(counts: list[RunCount], outcome_of: dict[str, str]) -> dict[str, dict[str, float]]:
    """Mean actions, tasks and events of the journey runs, by the journey's outcome."""
    groups: dict[str, list[RunCount]] = defaultdict(list)
    for c in counts:
        groups[outcome_of.get(c.workflow_id, "?")].append(c)
        if not retried(c):
            groups[f"{outcome_of.get(c.workflow_id, '?')}, no retry"].append(c)
    return {
        f"{outcome} ({len(group)})": {
            "actions": statistics.fmean(c.billable for c in group),
            "workflow tasks": statistics.fmean(c.workflow_tasks for c in group),
            "events": statistics.fmean(c.events for c in group),
        }
        for outcome, group in sorted(groups.items())
    }


def kinds(counts: list[RunCount]) -> Counter:
    return Counter(c.kind for c in counts)
