"""Probe workflows for `bench.py actions`: what one engine action costs the server and the worker.

Each probe starts, takes `count` of one kind of action, and completes. The cost of the action is
the CPU of a run of probes minus that of a run that takes none, divided by the actions taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.baseline_wf import noop


@dataclass
class ProbeInput:
    kind: str  # "none" | "update" | "signal" | "query" | "activity" | "local_activity"
    count: int


@workflow.defn
class Probe:
    """Waits for `count` messages (updates or signals), or runs `count` activities, then completes."""

    def __init__(self) -> None:
        self.received = 0
        self.done = False

    @workflow.run
    async def run(self, probe: ProbeInput) -> int:
        for step in range(probe.count if probe.kind in ("activity", "local_activity") else 0):
            if probe.kind == "activity":
                await workflow.execute_activity(
                    noop, step, start_to_close_timeout=timedelta(seconds=30)
                )
            else:
                await workflow.execute_local_activity(
                    noop, step, start_to_close_timeout=timedelta(seconds=30)
                )
        # Queries and the "none" probe end on one closing update, so every probe is closed alike.
        await workflow.wait_condition(lambda: self.done)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.received

    @workflow.update
    def message(self, n: int) -> int:
        self.received += 1
        return n

    @workflow.signal
    def poke(self, n: int) -> None:
        self.received += 1

    @workflow.query
    def seen(self) -> int:
        return self.received

    @workflow.update
    def finish(self) -> int:
        self.done = True
        return self.received
