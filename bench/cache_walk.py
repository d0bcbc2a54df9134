"""`bench cache-walk`: what the runs a worker keeps cached cost the tasks of the others.

The SDK core's workflow stream (temporalio 1.35.0, sdk-core `workflow_stream.rs`,
`reconcile_buffered`) counts the runs it is evicting after every input it handles (a new task, a
completion, a local activity's result) by walking its whole LRU list of cached runs, and all of a
worker's workflow tasks pass through that one thread. The 100,000-applicant registration
(BENCHMARKS.md) slowed once its cache of 10,000 was full, with that thread at 65% of a core.

This command measures the cache's part apart, in one worker and one invocation: the naive design's
journeys (bench/baseline_wf.py, 12 no-op activities and 7 updates each) played with nothing else
cached, then after `CacheFiller` runs (each answered one update and now waits) fill the cache to
each level. Then, at each size of `full`, a worker whose cache is full of idle runs, so that every
journey's first task waits for the core to evict one (a formasi larger than the cache is in that
state all through a broadcast). The last row is the other side of the trade: a cache that holds
fewer runs than are in flight, so most tasks replay their history from the start. Each row gives
journeys/s against the first row's, and the CPU per journey of the core's workflow thread, of this
process and of the Temporal server.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from bench.baseline_wf import BaselineJourney, CacheFiller, noop
from bench.common import CpuMeter, print_table
from runtime.sandbox import worker_runner

JOURNEY_ACTIVITIES = 12
JOURNEY_UPDATES = 7
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


async def play_naive_journey(
    client, workflow_id: str, queue: str, activities: int, updates: int
) -> None:
    """One naive journey (bench/baseline_wf.py), start to end: started, each update sent once the
    one before is answered, then its result."""
    handle = await client.start_workflow(
        BaselineJourney.run, args=[activities, updates], id=workflow_id, task_queue=queue
    )
    for u in range(updates):
        await handle.execute_update(BaselineJourney.report, f"r{u}")
    await handle.result()


def workflow_thread_cpu() -> float:
    """CPU seconds so far of this process's SDK-core workflow threads ("workflow-processing")."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("workflow-"):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


async def run_cache_walk(
    ctx, levels: list[int], journeys: int, concurrency: int, thrash_cache: int, full: list[int]
) -> dict:
    client = ctx.app.client
    tag = uuid.uuid4().hex[:6]

    def worker(queue: str, cache: int) -> Worker:
        return Worker(
            client,
            task_queue=queue,
            workflows=[BaselineJourney, CacheFiller],
            activities=[noop],
            workflow_runner=worker_runner(),
            max_cached_workflows=cache,
            max_concurrent_activities=ctx.settings.worker_max_concurrent_activities,
        )

    gate = asyncio.Semaphore(concurrency)
    filled = 0
    walk, thrash = f"walk-{tag}", f"thrash-{tag}"

    async def fill(i: int, queue: str) -> None:
        async with gate:
            start = WithStartWorkflowOperation(
                CacheFiller.run,
                id=f"bench-{queue}-filler-{i}",
                task_queue=queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
            await client.execute_update_with_start_workflow(
                CacheFiller.ready, start_workflow_operation=start
            )

    async def journey(level: int, i: int, queue: str) -> None:
        async with gate:
            await play_naive_journey(
                client, f"bench-{queue}-{level}-{i}", queue, JOURNEY_ACTIVITIES, JOURNEY_UPDATES
            )

    async def measure(label: str, level: int, queue: str, fill_s: float) -> dict:
        wf0 = workflow_thread_cpu()
        with CpuMeter(ctx.settings) as cpu:
            await asyncio.gather(*(journey(level, i, queue) for i in range(journeys)))
        wf = workflow_thread_cpu() - wf0
        d = cpu.deltas()
        return {
            "label": label,
            "filled in": fill_s,
            "journeys/s": journeys / cpu.elapsed,
            "core workflow thread ms/journey": 1000 * wf / journeys,
            "process ms/journey": 1000 * d["worker"] / journeys,
            "server ms/journey": 1000 * d["temporal"] / journeys,
        }

    rows = []
    async with worker(walk, max(levels) + 4 * concurrency + 100):
        await asyncio.gather(*(journey(-1, i, walk) for i in range(20)))  # warm-up
        for level in levels:
            t = time.monotonic()
            await asyncio.gather(*(fill(i, walk) for i in range(filled, level)))
            filled = max(filled, level)
            rows.append(await measure(f"{level:,} cached", level, walk, time.monotonic() - t))
    # A full cache: each journey's start takes a slot from an idle run, which is evicted first
    # (as in a formasi larger than the cache), at each size.
    for n, size in enumerate(full):
        queue = f"full-{n}-{size}-{tag}"
        async with worker(queue, size):
            t = time.monotonic()
            await asyncio.gather(*(fill(i, queue) for i in range(size)))
            rows.append(await measure(f"full cache of {size:,}", size, queue, time.monotonic() - t))
    # The fillers' worker is gone with its cache; this one holds fewer runs than are in flight.
    async with worker(thrash, thrash_cache):
        await asyncio.gather(*(journey(-1, i, thrash) for i in range(20)))  # warm-up
        rows.append(
            await measure(f"cache of {thrash_cache}, {concurrency} in flight", 0, thrash, 0.0)
        )
    base = rows[0]
    table = {}
    for r in rows:
        table[r["label"]] = (
            f"{r['journeys/s']:.2f} journeys/s ({r['journeys/s'] / base['journeys/s']:.2f} x); "
            f"core workflow thread {r['core workflow thread ms/journey']:.1f} ms, "
            f"process {r['process ms/journey']:.1f} ms, server {r['server ms/journey']:.1f} ms "
            f"a journey (cache filled in {r['filled in']:.0f} s)"
        )
    print_table(
        f"naive journeys ({JOURNEY_ACTIVITIES} activities, {JOURNEY_UPDATES} updates), "
        f"{journeys} a level, {concurrency} in flight, beside idle cached runs",
        table,
    )
    return {"levels": rows, "journeys": journeys, "concurrency": concurrency}
