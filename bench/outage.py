"""A long read-model outage: what it adds to the journeys' histories, how they answer queries
meanwhile, and how soon the read model catches up once PostgreSQL is back.

`python3 run.py bench outage --size 30 --down 1800`. One regency round on the real stack, played
through RecruitmentApi: `--size` applicants register (their rows written), registration is closed
(the round's board written), then PostgreSQL is stopped, every journey is given its
administration result and the administration window is closed. Each journey decides MS, and its
projection, a local activity, fails for as long as the database is down (workflows/calls.py,
run_local_activity_until_done). Meanwhile one journey a second is asked for its state (a query)
and timed. After `--down` seconds PostgreSQL is started again and the bench waits until every row
shows MS, then reads every journey's history. `--record DIR` also writes the round's histories
and their payload key (tests/histories/local-activity-growing-pause was recorded so).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from temporalio.service import RPCError

from bench.common import console
from bench.rounds import RoundDriver, applicants, bench_config, new_round_id
from domain.messages import JourneyState
from runtime.embedded import _stop_postgres, ensure_stack
from scripts.record_histories import timers_started
from workflows.ids import journey_workflow_id

QUERY_EVERY = 1.0  # s between two queries to a journey during the outage
QUERY_TIMEOUT = 10.0  # s a query may take before it counts as unanswered
FIRST_SERIES = 120.0  # s: the first series of attempts (about 55 s) and the first pause (<= 60 s)


async def _lengths(client, round_id: str, ids: list[str]) -> dict[str, int]:
    """Each journey's history length, from the server's description (no history read)."""
    out = {}
    for a in ids:
        described = await client.get_workflow_handle(journey_workflow_id(round_id, a)).describe()
        out[a] = described.raw_description.workflow_execution_info.history_length
    return out


async def _ask_meanwhile(
    client, round_id: str, ids: list[str], stop: asyncio.Event, since: float
) -> list[tuple[float, float | None]]:
    """Query one journey a second until `stop`: when each was asked (s after `since`) and how long
    its answer took (None: unanswered within QUERY_TIMEOUT)."""
    rng = random.Random(7)
    asked: list[tuple[float, float | None]] = []
    while not stop.is_set():
        handle = client.get_workflow_handle(journey_workflow_id(round_id, rng.choice(ids)))
        t = time.monotonic()
        took: float | None = None
        try:
            await asyncio.wait_for(
                handle.query("state", result_type=JourneyState), timeout=QUERY_TIMEOUT
            )
            took = time.monotonic() - t
        except (RPCError, TimeoutError):
            pass
        asked.append((t - since, took))
        try:
            await asyncio.wait_for(stop.wait(), timeout=QUERY_EVERY)
        except TimeoutError:
            pass
    return asked


def _times(asked: list[tuple[float, float | None]]) -> str:
    """Answered / unanswered, and the answers' p50 / p95 / max."""
    took = sorted(t for _, t in asked if t is not None)
    unanswered = sum(t is None for _, t in asked)
    if not took:
        return f"none answered, {unanswered} unanswered"
    p95 = took[int(0.95 * (len(took) - 1))]
    return (
        f"{len(took)} / {unanswered}; {statistics.median(took) * 1000:.0f} / "
        f"{p95 * 1000:.0f} / {took[-1] * 1000:.0f} ms"
    )


async def run_outage(ctx, out_dir: Path, size: int, down: float, seed: int) -> dict:
    round_id = new_round_id("D")
    config, path = bench_config(round_id, datetime.now(UTC), out_dir=out_dir)
    await ctx.api.create_round(path, config.reporters["operator"][0])
    driver = RoundDriver(ctx.api, ctx.pool, config, random.Random(seed), concurrency=8)
    await driver.run_steps(["registration"], applicants(config, size, seed))
    ids = sorted(driver.ids)
    client = ctx.api.client
    await driver.wait_phase("administration")  # the board written before the outage
    before = await _lengths(client, round_id, ids)

    if _stop_postgres(ctx.settings.data_dir.resolve()) is None:
        raise RuntimeError("bench: the stack's PostgreSQL was not running")
    stopped = time.monotonic()
    console.print(f"PostgreSQL stopped; {len(ids)} journeys get their result, down {down:.0f} s")
    stop_asking = asyncio.Event()
    asking = asyncio.create_task(_ask_meanwhile(client, round_id, ids, stop_asking, stopped))
    # Taken and decided with the database down; each journey writes its MS row at the close.
    await driver.send_all(driver.admin_jobs())
    await driver.close("administration")
    after_first: dict[str, int] | None = None
    while (left := down - (time.monotonic() - stopped)) > 0:
        console.print(f"  down {time.monotonic() - stopped:.0f} s, {left:.0f} s to go")
        if after_first is None and time.monotonic() - stopped >= FIRST_SERIES:
            after_first = await _lengths(client, round_id, ids)
        until_first = FIRST_SERIES - (time.monotonic() - stopped)
        await asyncio.sleep(min(60.0, left, until_first if until_first > 0 else 60.0))
    stop_asking.set()
    asked = await asking
    at_restart = await _lengths(client, round_id, ids)

    await ensure_stack(ctx.settings)
    back = time.monotonic()
    console.print("PostgreSQL back; waiting for every row to show MS")
    deadline = back + 900
    while True:
        try:
            rows = await ctx.pool.fetch(
                "SELECT admin FROM applicants WHERE round_id = $1", round_id
            )
            if sum(r["admin"] == "MS" for r in rows) == len(ids):
                break
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            console.print(f"[dim]read model not answering yet: {exc}[/]")
        if time.monotonic() > deadline:
            raise TimeoutError("bench: the read model did not catch up within 15 minutes")
        await asyncio.sleep(1.0)
    caught_up = time.monotonic() - back
    after = await _lengths(client, round_id, ids)

    # The timers each journey set during the outage (back-offs and pauses), from its history.
    pauses: list[list[float]] = []
    for a in ids:
        history = await client.get_workflow_handle(journey_workflow_id(round_id, a)).fetch_history()
        pauses.append([t.total_seconds() for t in timers_started(history, after_event=before[a])])
    during = [at_restart[a] - before[a] for a in ids]
    figures = {
        "_round_id": round_id,
        "journeys": len(ids),
        "read model down": f"{down:.0f} s",
        "events added during the outage, per journey (median / max)": (
            f"{statistics.median(during):.0f} / {max(during)}"
        ),
    }
    if after_first is not None:
        later = [at_restart[a] - after_first[a] for a in ids]
        figures["of which after the first 120 s (median / max)"] = (
            f"{statistics.median(later):.0f} / {max(later)}"
        )
        figures["the same, per hour after the first 120 s (median)"] = (
            f"{statistics.median(later) / ((down - FIRST_SERIES) / 3600):.0f}"
        )
    figures.update(
        {
            "events added by the catch-up (median)": (
                f"{statistics.median(after[a] - at_restart[a] for a in ids):.0f}"
            ),
            "timers per journey, back-offs and pauses (median)": (
                f"{statistics.median(len(p) for p in pauses):.0f}"
            ),
            "one journey's timers (s)": ", ".join(f"{s:.0f}" for s in pauses[0]),
            "queries in the first 120 s: answered / unanswered; p50 / p95 / max": _times(
                [q for q in asked if q[0] < FIRST_SERIES]
            ),
            "queries after it: answered / unanswered; p50 / p95 / max": _times(
                [q for q in asked if q[0] >= FIRST_SERIES]
            ),
            "every row written after PostgreSQL was back": f"{caught_up:.1f} s",
        }
    )
    return figures
