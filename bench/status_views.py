"""Applicants' status reads, with and without the gateway's status cache (client/status.StateCache).

A status page reads the journey's state. Without the cache every read is a query: the server hands
it to a worker, which answers from the journey if it is cached and otherwise replays its whole
history first (always, for a journey that has ended: closed workflows leave the worker's cache).
With the cache a read is a describe, which the server answers from the execution's record, and a
query only when the history has grown since the last read. Announcement days are when applicants
read their status most, and most journeys have ended by the later ones.

`run_status_views` registers `size` applicants, reads each one's status `reads` times in four
phases (running journeys: queries, then the warm cache; the same journeys once they have ended:
queries, then the warm cache) and reports reads/s and the CPU per read of the worker+driver
process, the Temporal server and PostgreSQL, each phase against the queries in the same run.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import CpuMeter
from bench.rounds import RoundDriver, applicants, bench_config, new_round_id
from client.status import StateCache, journey_state
from domain.messages import Withdrawal


async def _read_all(api: Any, round_id: str, ids: list[str], reads: int, concurrency: int, cache):
    gate = asyncio.Semaphore(concurrency)

    async def one(applicant_id: str) -> None:
        async with gate:
            await journey_state(api, round_id, applicant_id, cache)

    for _ in range(reads):
        await asyncio.gather(*(one(a) for a in ids))


async def run_status_views(
    ctx: Any, out_dir: Any, size: int, reads: int, concurrency: int, seed: int
) -> dict:
    round_id = new_round_id("S")
    config, path = bench_config(round_id, datetime.now(UTC), quota=size, out_dir=out_dir)
    await ctx.api.create_round(path, config.reporters["operator"][0])
    driver = RoundDriver(ctx.api, ctx.pool, config, random.Random(seed), concurrency)
    await driver.register(applicants(config, size, seed))
    ids = sorted(driver.ids)
    n = len(ids) * reads
    phases: dict[str, dict] = {}

    async def phase(name: str, cache: StateCache | None) -> None:
        if cache is not None:  # warm: every journey read once before the timed reads
            await _read_all(ctx.api, round_id, ids, 1, concurrency, cache)
        with CpuMeter(ctx.settings) as cpu:
            await _read_all(ctx.api, round_id, ids, reads, concurrency, cache)
        phases[name] = {"elapsed": cpu.elapsed, "cpu": cpu.deltas(), "cache": cache}

    await phase("running journeys, query", None)
    await phase("running journeys, cache", StateCache(len(ids)))
    portal = config.reporters["portal"][0]
    await driver.send_all(
        [(a, Withdrawal(report_id=f"w-{a}", reported_by=portal, reason="bench")) for a in ids]
    )
    deadline = time.monotonic() + 600
    while (await driver.stage_counts())["ended"] < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError("bench status-views: the withdrawals did not end every journey")
        await asyncio.sleep(0.2)
    await phase("ended journeys, query", None)
    await phase("ended journeys, cache", StateCache(len(ids)))
    return {"round": round_id, "applicants": len(ids), "reads": n, "phases": phases}
