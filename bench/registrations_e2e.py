"""Registration end to end (issue 17 item 3): from submission until the journey's read-model row
exists, against bare-engine workflows that start and run one local activity writing a row, in
the same run."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench.baseline_wf import BaselineRegistration
from bench.common import CpuMeter, console, pct, print_table
from bench.rounds import RoundDriver, applicants, bench_config, new_round_id
from runtime.embedded import owner_database_url

BASELINE_TABLE = "bench_e2e_rows"
POLL = 0.1  # seconds between counts of the rows written


class RowWriter:
    """The baseline's one local activity: a row in PostgreSQL, as a journey's projection is."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="bench_write_row")
    async def write_row(self, row_id: str) -> None:
        await self.pool.execute(
            f"INSERT INTO {BASELINE_TABLE} (id) VALUES ($1) ON CONFLICT DO NOTHING", row_id
        )


async def _wait_rows(
    count: Callable[[], Awaitable[int]], expected: int, timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while (n := await count()) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: {what}: {n} of {expected} rows after {timeout:.0f} s")
        await asyncio.sleep(POLL)


def _figures(
    title: str, submitted: dict[str, float], written: dict[str, datetime], cpu: CpuMeter
) -> dict:
    """Rate and latency from the submission times (wall clock) and the rows' write times (the
    database's clock, on the same machine)."""
    first = min(submitted.values())
    last_row = max(w.timestamp() for w in written.values())
    lat = [(written[k].timestamp() - t) * 1000 for k, t in submitted.items() if k in written]
    span = last_row - first
    fig = {
        "workflows": len(submitted),
        "rows written": len(written),
        "first submission to last row": f"{span:.1f} s",
        "end-to-end rate": f"{len(written) / span:.1f}/s",
        "submission to row p50 / p95 / p99 / max": (
            f"{pct(lat, 50):.0f} / {pct(lat, 95):.0f} / {pct(lat, 99):.0f} / {max(lat):.0f} ms"
        ),
        **cpu.figures(),
    }
    print_table(title, fig)
    return {"rate": len(written) / span, "p95_ms": pct(lat, 95), **fig}


async def run_baseline(
    client: Client, pool: asyncpg.Pool, task_queue: str, size: int, concurrency: int, settings
) -> dict:
    """`size` bare workflows started `concurrency` at a time, each writing one row."""
    # The processes' role makes no table (docs/OPERATIONS.md 1.1): the bench's own is made by the
    # embedded read model's owner, whose default privileges let the workers read and append to it.
    owner = await asyncpg.connect(owner_database_url(settings))
    try:
        await owner.execute(
            f"CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} (id text PRIMARY KEY, "
            "at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
    finally:
        await owner.close()
    queue = f"{task_queue}-e2e-baseline"
    run = uuid.uuid4().hex[:6]
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[BaselineRegistration],
        activities=[RowWriter(pool).write_row],
        workflow_runner=SandboxedWorkflowRunner(),  # the SDK's defaults: the bare engine
        max_cached_workflows=settings.worker_max_cached_workflows,
    )
    gate = asyncio.Semaphore(concurrency)
    submitted: dict[str, float] = {}

    async def one(i: int) -> None:
        row_id = f"{run}-{i}"
        async with gate:
            submitted[row_id] = time.time()
            await client.start_workflow(
                BaselineRegistration.run, row_id, id=f"bench-e2e-{row_id}", task_queue=queue
            )

    async def count() -> int:
        return await pool.fetchval(
            f"SELECT count(*) FROM {BASELINE_TABLE} WHERE id LIKE $1", f"{run}-%"
        )

    async with worker:
        with CpuMeter(settings) as cpu:
            await asyncio.gather(*(one(i) for i in range(size)))
            await _wait_rows(count, size, 600 + size / 5, "bare-engine rows")
        rows = await pool.fetch(f"SELECT id, at FROM {BASELINE_TABLE} WHERE id LIKE $1", f"{run}-%")
    written = {r["id"]: r["at"] for r in rows}
    return _figures(
        "bare engine: start + one local activity writing a row", submitted, written, cpu
    )


async def run_registrations_e2e(ctx, size: int, seed: int, concurrency: int, out_dir: Path) -> dict:
    """`size` registrations through RecruitmentApi.register, `concurrency` at a time, until every
    accepted journey's read-model row exists."""
    round_id = new_round_id("E")
    config, path = bench_config(round_id, datetime.now(UTC), out_dir=out_dir)
    await ctx.api.create_round(path, config.reporters["operator"][0])
    # A round is created before its registration opens: its first task is done (it answers a
    # query) before the burst. Started together, the journeys' first tasks, each waiting on the
    # round's query, held the slots the round's own first task needed (query timeouts, measured).
    await ctx.api.round_state(round_id)
    driver = RoundDriver(ctx.api, ctx.pool, config, random.Random(seed), concurrency)
    regs = applicants(config, size, seed)
    gate = asyncio.Semaphore(concurrency)
    submitted: dict[str, float] = {}
    accept_lat: list[float] = []
    refused = 0

    async def one(reg) -> None:
        nonlocal refused
        async with gate:
            t = time.time()
            result = await ctx.api.register(config, reg, "sscasn-portal")
            accept_lat.append((time.time() - t) * 1000)
        if result.status == "registered":
            submitted[result.applicant_id] = t
        else:
            refused += 1

    async def count() -> int:
        return await ctx.pool.fetchval(
            "SELECT count(*) FROM applicants WHERE round_id = $1", round_id
        )

    with CpuMeter(ctx.settings) as cpu:
        t0 = time.monotonic()
        await asyncio.gather(*(one(r) for r in regs))
        accepting = time.monotonic() - t0
        await _wait_rows(count, len(submitted), 600 + size / 5, "journeys' read-model rows")
    rows = await ctx.pool.fetch(
        "SELECT applicant_id, updated_at FROM applicants WHERE round_id = $1", round_id
    )
    written = {r["applicant_id"]: r["updated_at"] for r in rows}
    console.print(
        f"registrations: {len(submitted)} accepted, {refused} refused by the rules, "
        f"accepted at {len(submitted) / accepting:.1f}/s "
        f"(accept p95 {pct(accept_lat, 95):.0f} ms)"
    )
    fig = _figures(
        "registrations: submission to the journey's read-model row", submitted, written, cpu
    )
    fig["round"] = driver.round_id
    fig["refused by the rules"] = refused
    fig["accepted/s (start_workflow returned)"] = f"{len(submitted) / accepting:.1f}"
    fig["accept latency p95"] = f"{pct(accept_lat, 95):.0f} ms"
    return fig
