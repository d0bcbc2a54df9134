"""The bare-engine baseline: the naive design of a journey, one no-op activity per side effect
and one update per reported result, nothing else (no read model, no ranking, no signals)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def noop(step: int) -> int:
    return step


def spread(activities: int, updates: int) -> list[int]:
    """How many activities run before the first update and after each update."""
    slots = updates + 1
    return [activities // slots + (1 if i < activities % slots else 0) for i in range(slots)]


@workflow.defn
class BaselineJourney:
    def __init__(self) -> None:
        self.reports = 0

    @workflow.run
    async def run(self, activities: int, updates: int) -> int:
        plan = spread(activities, updates)
        step = 0
        for slot, count in enumerate(plan):
            if slot > 0:
                await workflow.wait_condition(lambda s=slot: self.reports >= s)
            for _ in range(count):
                step += 1
                await workflow.execute_activity(
                    noop, step, start_to_close_timeout=timedelta(seconds=30)
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.reports

    @workflow.update
    def report(self, report_id: str) -> str:
        self.reports += 1
        return report_id


@workflow.defn
class BaselineRegistration:
    """The bare engine's registration (issue 17 item 3): started, one local activity writing a
    row (bench/registrations_e2e.py's RowWriter), done."""

    @workflow.run
    async def run(self, row_id: str) -> None:
        await workflow.execute_local_activity(
            "bench_write_row", row_id, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class AckTarget:
    """The bare engine's acknowledgement (bench ack-latency): a workflow that takes one update and
    answers it at once, and stays open as a journey does after a report."""

    def __init__(self) -> None:
        self.reports = 0

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.reports < 0)  # open until terminated

    @workflow.update
    def report(self, report_id: str) -> str:
        self.reports += 1
        return report_id


@workflow.defn
class CacheFiller:
    """Started with an update it answers at once, then waits for nothing: it stays in the worker's
    sticky cache and takes no task more (bench cache-walk)."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.update
    def ready(self) -> int:
        return 1

    @workflow.signal
    def finish(self) -> None:
        self.done = True
