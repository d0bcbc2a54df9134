#!/usr/bin/env python3
"""The benchmark harness (not part of the tests). Each command prints its figures and the machine.

    python3 run.py bench all                      # baseline + journeys (+ ratio), modest sizes
    python3 run.py bench baseline --size 200
    python3 run.py bench journeys --size 200
    python3 run.py bench ack-latency --rate 50 --duration 30
    python3 run.py bench ack-latency --rate 200 --duration 20 --worker-process   # workers as processes
    python3 run.py bench ack-latency --rate 200 --duration 20 --ours-first   # the bare engine second
    python3 run.py bench registrations --size 500
    python3 run.py bench registrations-e2e --size 20000   # end to end, against the bare engine
    python3 run.py bench gateway --size 5000 --clients 200   # through HTTP vs straight to the engine
    python3 run.py bench ranking --sizes 1000000,4000000
    python3 run.py bench columnar-ranking --sizes 1000000,4000000
    python3 run.py bench recompute-round ROUND   # audit recompute and check-read-model of a round on a --keep-stack stack
    python3 run.py bench page-check ROUND [--lose-all]  # audit check-pages (and --rebuild) on a --keep-stack stack
    python3 run.py bench big-formasi --size 5000
    python3 run.py bench big-formasi --size 100000 --quota 10000 --stop-after skd   # then --resume ROUND
    python3 run.py bench big-formasi --size 3000 --page-size 20 --fold-at 4   # folding played small
    python3 run.py bench page-payloads --quota 10000 --size 100000   # issue 17 item 1
    python3 run.py bench national --instansi 50 --size 2000   # issue 17: a national round, reduced
    python3 run.py bench optimalisasi --seats 300 --accept 0.8   # the round's cost per offer
    python3 run.py bench outage --size 30 --down 900   # a read-model outage: histories, queries
    python3 run.py bench profile --size 200          # journeys under py-spy
    python3 run.py bench fleet --size 100 --workers 1,2,4   # issue 17: worker processes, and recovery
    python3 run.py bench chaos --size 200 --kills temporal,postgres,worker   # SIGKILLs mid-round, nothing lost
    python3 run.py bench cache-memory --size 400     # memory per journey in a worker's sticky cache
    python3 run.py bench cache-walk                  # what each cached run costs the others' tasks
    python3 run.py bench status-views --size 500     # status reads: queries against the status cache
    python3 run.py bench public-pages --rows 10000,100000   # a public announcement per request, cache off/on

It runs its own embedded stack (data dir out/bench-data, Temporal 37233 / UI 38233, PostgreSQL
35432), starts the Temporal server on an empty SQLite file, and stops it at the end unless
--keep-stack. See BENCHMARKS.md for the figures and what they mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from bench.common import (
    ROOT,
    CpuMeter,
    bench_settings,
    console,
    fresh_temporal,
    largest_event,
    machine,
    pct,
    peak_rss_mib,
    print_table,
)
from runtime.db import open_pool
from runtime.gcwatch import GcWatch
from runtime.process import run_and_end

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
DATA_DIR = ROOT / "out" / "bench-data"
OUT = ROOT / "out" / "bench"

# What one full journey (MS, P/L, every SKB component, filing, NIP, PNS) does, read from
# workflows/applicant.py: 11 `project_journey` calls (local activities), 1 `issue_nip` activity,
# and 7 reports as updates (admin, skd, skb cat + praktik + health, filing, latsar).
JOURNEY_SIDE_EFFECTS = 12
JOURNEY_UPDATES = 7


@dataclass
class Ctx:
    app: object
    pool: object
    api: object
    settings: object
    gc_watch: GcWatch


@asynccontextmanager
async def stack(
    keep: bool, data_dir: Path = DATA_DIR, task_queue: str | None = None, fresh: bool = True
):
    """The embedded stack and a worker in this process. `fresh` starts the Temporal server on an
    empty SQLite file; a resumed run (`big-formasi --resume`) keeps its file and polls the task
    queue its workflows were started on."""
    from apps.fleet import build_worker
    from client.api import RecruitmentApi
    from runtime.app import open_app
    from runtime.embedded import stop_stack

    settings = bench_settings(
        data_dir, task_queue=task_queue or f"casn-bench-{uuid.uuid4().hex[:6]}"
    )
    if fresh:
        fresh_temporal(settings)
    t = time.monotonic()
    ctx = await open_app(settings)
    OUT.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(OUT / "worker-warnings.log")
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("temporalio").addHandler(handler)
    console.print(
        f"stack ready in {time.monotonic() - t:.1f} s: Temporal {ctx.stack.temporal_address}, "
        f"UI {ctx.stack.ui_url}"
    )
    pool = await open_pool(ctx.stack.database_url, max_size=10)
    worker = await build_worker(ctx.client, settings, pool)
    gc_watch = GcWatch().install()
    try:
        async with worker:
            yield Ctx(
                ctx,
                pool,
                RecruitmentApi(ctx.client, settings.task_queue, ctx.keys.pseudonym_key),
                settings,
                gc_watch,
            )
    finally:
        gc_watch.remove()
        await _settle_other_tasks()
        await pool.close()
        if not keep:
            for line in stop_stack(settings):
                console.print(f"[dim]{line}[/]")


async def _settle_other_tasks(wait: float = 15.0) -> None:
    """Cancel the driver's tasks still running (a bench stopped by Ctrl-C or SIGTERM) and wait
    for them while the servers are up: cancelled later, by asyncio.run after the stack stopped,
    their calls fail against the stopped servers and each is logged as an "unhandled exception
    during asyncio.run() shutdown"."""
    me = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for t in others:
        t.cancel()
    if others:
        await asyncio.wait(others, timeout=wait)
    for t in others:
        if t.done() and not t.cancelled():
            t.exception()  # retrieved: a failure while cancelled is not news when stopping


def show_machine() -> dict:
    m = machine()
    print_table("machine", m)
    return m


def save(name: str, figures: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (OUT / f"{name}-{stamp}.json").write_text(json.dumps(figures, indent=2, default=str))


# --- baseline -----------------------------------------------------------------------------------


async def run_baseline(
    ctx: Ctx,
    size: int,
    concurrency: int,
    runner: str = "stock",
    side_effects: int = JOURNEY_SIDE_EFFECTS,
) -> dict:
    """runner "stock": the SDK's default sandbox (the bare engine); "project": the worker's own
    CompiledSandboxRunner, to show how much of the ratio that runner accounts for.
    side_effects=0 is the floor: only the start, the updates and the completion, which no design
    of a journey that takes its reports as updates can go below."""
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from bench.baseline_wf import BaselineJourney, noop
    from bench.cache_walk import play_naive_journey
    from runtime.sandbox import worker_runner

    queue = f"{ctx.settings.task_queue}-baseline"
    client = ctx.app.client
    workflow_runner = (
        worker_runner() if runner == "project" else SandboxedWorkflowRunner()
    )  # "stock"
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[BaselineJourney],
        activities=[noop],
        workflow_runner=workflow_runner,
        max_cached_workflows=ctx.settings.worker_max_cached_workflows,
        max_concurrent_activities=ctx.settings.worker_max_concurrent_activities,
    )
    gate = asyncio.Semaphore(concurrency)
    run = uuid.uuid4().hex[:6]

    async def journey(i: int) -> None:
        async with gate:
            await play_naive_journey(
                client,
                f"bench-baseline-{run}-{side_effects}-{i}",
                queue,
                side_effects,
                JOURNEY_UPDATES,
            )

    async with worker:
        await asyncio.gather(*(journey(i) for i in range(min(10, size))))  # warm-up, not counted
        with CpuMeter(ctx.settings) as cpu:
            await asyncio.gather(*(journey(i) for i in range(10, 10 + size)))
        h = client.get_workflow_handle(f"bench-baseline-{run}-{side_effects}-10")
        events = len((await h.fetch_history()).events)
    rate = size / cpu.elapsed
    ids = [f"bench-baseline-{run}-{side_effects}-{i}" for i in range(10, 10 + size)]
    fig = {
        "workflows": size,
        "shape": f"{side_effects} no-op activities + {JOURNEY_UPDATES} updates each",
        "workflow runner": "SDK default sandbox"
        if runner == "stock"
        else "the worker's CompiledSandboxRunner",
        "concurrency (journeys in flight)": concurrency,
        "elapsed": f"{cpu.elapsed:.1f} s",
        "baseline journeys/s": f"{rate:.2f}",
        "events per history": events,
        **cpu.figures(),
    }
    print_table(
        "bare-engine baseline" if side_effects else "floor: updates only, no side effects", fig
    )
    return {"rate": rate, "ids": ids, "cpu": cpu.deltas(), **fig}


# --- engine actions -------------------------------------------------------------------------------

# "signal" sends a probe's signals back to back, so one workflow task takes several; "signal+task" waits
# 50 ms after each, so each signal costs a workflow task of its own (as an announcement does).
ACTION_KINDS = ("update", "signal", "signal+task", "query", "activity", "local_activity")


async def run_actions(ctx: Ctx, size: int, count: int, concurrency: int) -> dict:
    """CPU per engine action: probes that take `count` of one action, against probes that take none."""
    from temporalio.worker import Worker

    from bench.actions_wf import Probe, ProbeInput
    from bench.baseline_wf import noop
    from runtime.sandbox import worker_runner

    queue = f"{ctx.settings.task_queue}-actions"
    client = ctx.app.client
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[Probe],
        activities=[noop],
        workflow_runner=worker_runner(),
        max_cached_workflows=ctx.settings.worker_max_cached_workflows,
    )
    run = uuid.uuid4().hex[:6]

    async def probes(kind: str, n: int, first: int) -> CpuMeter:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                h = await client.start_workflow(
                    Probe.run,
                    ProbeInput(kind=kind.removesuffix("+task"), count=count),
                    id=f"bench-probe-{run}-{kind}-{i}",
                    task_queue=queue,
                )
                for k in range(count):
                    if kind == "update":
                        await h.execute_update(Probe.message, k)
                    elif kind.startswith("signal"):
                        await h.signal(Probe.poke, k)
                        if kind == "signal+task":
                            await asyncio.sleep(0.05)
                    elif kind == "query":
                        await h.query(Probe.seen)
                await h.execute_update(Probe.finish)
                await h.result()

        with CpuMeter(ctx.settings) as cpu:
            await asyncio.gather(*(one(i) for i in range(first, first + n)))
        return cpu

    rows = []
    async with worker:
        await probes("none", min(20, size), 0)  # warm-up, not counted
        none = await probes("none", size, 100_000)
        base = none.deltas()
        rows.append(
            {
                "action": "start + one update + completion (the probe itself)",
                "worker ms": 1000 * base["worker"] / size,
                "server ms": 1000 * base["temporal"] / size,
                "elapsed s": none.elapsed,
            }
        )
        for kind in ACTION_KINDS:
            probes_cpu = await probes(kind, size, 200_000)
            d = probes_cpu.deltas()
            actions = size * count
            rows.append(
                {
                    "action": kind,
                    "worker ms": 1000 * (d["worker"] - base["worker"]) / actions,
                    "server ms": 1000 * (d["temporal"] - base["temporal"]) / actions,
                    "elapsed s": probes_cpu.elapsed,
                }
            )
    from rich.table import Table

    table = Table(
        title=f"CPU per engine action ({size} probes x {count} actions, {concurrency} in flight; "
        "worker includes the client that sends)"
    )
    for col in ["action", "worker+client ms", "Temporal server ms", "run elapsed"]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["action"], f"{r['worker ms']:.2f}", f"{r['server ms']:.2f}", f"{r['elapsed s']:.1f} s"
        )
    console.print(table)
    return {"probes": size, "actions per probe": count, "rows": rows}


# --- journeys -------------------------------------------------------------------------------------


async def history_sample(client, ids: list[str], sample: int) -> tuple[list[int], Counter]:
    counts, types = [], Counter()
    for wid in ids[:sample]:
        hist = await client.get_workflow_handle(wid).fetch_history()
        counts.append(len(hist.events))
        if not types:
            from temporalio.api.enums.v1 import EventType

            types = Counter(
                EventType.Name(e.event_type)
                .removeprefix("EVENT_TYPE_")
                .replace("WORKFLOW_EXECUTION_", "WF_")
                .replace("WORKFLOW_TASK_", "WFT_")
                .replace("EXTERNAL_", "EXT_")
                for e in hist.events
            )
    return counts, types


async def run_journeys(ctx: Ctx, size: int, seed: int, concurrency: int) -> dict:
    import random

    from bench.rounds import RoundDriver, applicants, bench_config, new_round_id
    from workflows.ids import journey_workflow_id

    round_id = new_round_id("J")
    config, path = bench_config(round_id, datetime.now(UTC), quota=size, out_dir=OUT / "rounds")
    await ctx.api.create_round(path, config.reporters["operator"][0])
    driver = RoundDriver(ctx.api, ctx.pool, config, random.Random(seed), concurrency)
    regs = applicants(config, size, seed)
    ctx.gc_watch.reset()
    with CpuMeter(ctx.settings) as cpu:
        driver.cpu_sample = cpu.snapshot
        counts = await driver.play_full(regs)
    n = len(driver.ids)
    ids = [journey_workflow_id(round_id, a) for a in driver.ids]
    events, types = await history_sample(ctx.app.client, ids, 20)
    rate = n / cpu.elapsed
    fig = {
        "round": round_id,
        "journeys (registered, all ended)": f"{n} ({counts['ended']} ended)",
        "formasi": len(config.formasi),
        "report concurrency": concurrency,
        "elapsed": f"{cpu.elapsed:.1f} s",
        "journeys/s": f"{rate:.2f}",
        **phase_rows(driver),
        "events per journey history (sample of 20)": f"min {min(events)} / median {sorted(events)[len(events) // 2]} / max {max(events)}",
        "event types of one journey": ", ".join(f"{k} {v}" for k, v in types.most_common()),
        "reports refused": len(driver.refused),
        **cpu.figures(),
        "worker+driver peak RSS": f"{peak_rss_mib():.0f} MiB",
        **gc_rows(ctx),
    }
    print_table("full applicant journeys (embedded stack)", fig)
    if driver.refused:
        console.print(f"[yellow]first refusal: {driver.refused[0]}[/]")
    extra = {"ids": ids, "cpu": cpu.deltas(), "round_id": round_id}
    extra["formasi_codes"] = [f.code for f in config.formasi]
    return {"rate": rate, **extra, **fig}


def gc_rows(ctx: Ctx) -> dict[str, str]:
    """The worker process's longest garbage-collection pause (every activation waits for it)."""
    watch = ctx.gc_watch
    return {
        "longest GC pause (worker+driver)": f"{watch.longest:.2f} s ({watch.long_pauses} over "
        f"{watch.threshold:g} s)",
        "time in garbage collection (worker+driver)": (
            f"{watch.total:.2f} s in {watch.collections:,} collections"
        ),
    }


def phase_rows(driver) -> dict[str, str]:
    """Each phase's wall time and the CPU the worker+driver process and the Temporal server spent in it."""
    rows = {}
    for name, seconds in driver.phases.items():
        cpu = driver.phase_cpu.get(name)
        spent = (
            f" (worker {cpu['worker']:.1f} s, server {cpu['temporal']:.1f} s CPU)" if cpu else ""
        )
        rows[f"  phase {name}"] = f"{seconds:.1f} s{spent}"
    return rows


# --- ack latency, registrations -------------------------------------------------------------------


async def run_registrations(
    ctx: Ctx, size: int, seed: int, concurrency: int, title: str = "registration burst"
):
    import random

    from bench.rounds import RoundDriver, applicants, bench_config, new_round_id

    round_id = new_round_id("R")
    config, path = bench_config(round_id, datetime.now(UTC), out_dir=OUT / "rounds")
    await ctx.api.create_round(path, config.reporters["operator"][0])
    driver = RoundDriver(ctx.api, ctx.pool, config, random.Random(seed), concurrency)
    with CpuMeter(ctx.settings) as cpu:
        r = await driver.register(applicants(config, size, seed))
    lat = [x * 1000 for x in r["latencies"]]
    fig = {
        "round": round_id,
        "registrations sent": size,
        "accepted / refused by the rules": f"{r['accepted']} / {r['refused']}",
        "concurrency": concurrency,
        "elapsed": f"{r['elapsed']:.1f} s",
        "registrations accepted/s": f"{r['accepted'] / r['elapsed']:.1f}",
        "latency p50 / p95 / p99": f"{pct(lat, 50):.0f} / {pct(lat, 95):.0f} / {pct(lat, 99):.0f} ms",
        **cpu.figures(),
    }
    print_table(title, fig)
    return driver, fig


async def run_ack(
    ctx: Ctx,
    rate: float,
    duration: float,
    seed: int,
    baseline: bool = True,
    worker_process: bool = False,
    ours_first: bool = False,
) -> dict:
    """Our acknowledgements (an administration result to a journey at admin_check, through
    RecruitmentApi) at a fixed offered rate, open loop. With `baseline`, first the bare engine's at
    the same rate in the same run: an update answered at once by a workflow that stays open
    (bench/baseline_wf.py AckTarget), from the same client, on a worker of its own with the SDK's
    sandbox and the same cache size. Each phase has only its own workflows cached: the bare worker
    (and its cache) is stopped before the journeys register, so neither phase's garbage
    collections walk the other's workflows.

    With `worker_process` each phase's worker is a process of its own (ours: `worker.py run`, as
    production runs it; the bare engine's: `python -m bench.fleet ack-worker`) and this process
    only sends; otherwise both workers run in this process beside the sender. With `ours_first`
    the bare engine's phase comes after ours instead of before (whether the order favours either)."""
    from client.api import RecruitmentApi, RefusedError
    from domain.messages import AdminReport

    total = int(rate * duration)
    figures: dict = {
        "worker": "a process of its own" if worker_process else "in the sender's process",
        "order": "ours, then the bare engine" if ours_first else "the bare engine, then ours",
    }

    async def bare_phase() -> dict:
        async with _ack_targets(ctx, total, worker_process) as (handles, refs, fleet):
            measured = await _open_loop(
                ctx,
                list(range(len(handles))),
                rate,
                duration,
                lambda i: handles[i].execute_update("report", refs[i]),
                (Exception,),
                fleet,
            )
        print_table("bare engine: an update answered at once", _shown(measured))
        gc.collect()
        return measured

    bare_fig = await bare_phase() if baseline and not ours_first else None
    async with _our_worker(ctx, worker_process) as (ours_ctx, fleet):
        # one fresh journey per report, at the admin_check stage (registrations beyond the 3% the
        # rules refuse)
        driver, _ = await run_registrations(
            ours_ctx, int(total * 1.06) + 5, seed, 32, "registrations for the latency run"
        )
        n = len(driver.ids)
        await driver.wait(lambda c: c["admin_check"] == n, "registrations")
        targets = list(driver.ids)[:total]
        api: RecruitmentApi = ours_ctx.api  # type: ignore[assignment]

        async def ours(a: str) -> None:
            await api.report(
                driver.round_id,
                a,
                AdminReport(report_id=f"adm-{a}", reported_by=driver.reporters["admin"]),
            )

        fig = await _open_loop(ctx, targets, rate, duration, ours, (RefusedError, Exception), fleet)
    print_table("stage-result acknowledgement latency", _shown(fig))
    figures.update({"p95_ms": fig["p95"], **fig})
    if baseline and ours_first:
        gc.collect()
        bare_fig = await bare_phase()
    if bare_fig is not None:
        ratio = {
            "p95, ours ÷ bare": f"{fig['p95'] / bare_fig['p95']:.2f}",
            "worker+driver CPU per ack, ours / bare": (
                f"{fig['cpu_per_ack']['worker']:.2f} / {bare_fig['cpu_per_ack']['worker']:.2f} ms"
            ),
            "Temporal server CPU per ack, ours / bare": (
                f"{fig['cpu_per_ack']['temporal']:.2f} / "
                f"{bare_fig['cpu_per_ack']['temporal']:.2f} ms"
            ),
        }
        print_table("ours against the bare engine, same run", ratio)
        figures["bare"] = {"p95_ms": bare_fig["p95"], **bare_fig}
        figures["against bare"] = ratio
    return figures


QUIET_SERVER = 0.10  # of one core: the Temporal server is done with what came before a phase
QUIET_LONGEST = 120.0  # seconds a phase waits for it at most


async def _server_quiet(ctx: Ctx) -> str:
    """Wait until the Temporal server spends under QUIET_SERVER of a core over a second (the work
    the phase's setup left it: visibility and transfer tasks of thousands of starts), at most
    QUIET_LONGEST s; how long that took, as shown with the phase's figures."""
    import psutil

    from bench.common import _cpu, temporal_pid

    pid = temporal_pid(ctx.settings)
    if pid is None:
        return "not measured (no embedded server)"
    server = psutil.Process(pid)
    t0 = time.monotonic()
    while True:
        before = _cpu(server)
        await asyncio.sleep(1.0)
        used = _cpu(server) - before
        waited = time.monotonic() - t0
        if used < QUIET_SERVER:
            return f"{waited:.0f} s (server at {100 * used:.0f}% of a core)"
        if waited >= QUIET_LONGEST:
            return f"{waited:.0f} s, still at {100 * used:.0f}% of a core: measured anyway"


def _slow_seconds(by_second: dict[int, list[float]]) -> str:
    """Whether the slow acknowledgements were spread over the run or came in a few seconds."""
    p95s = {t: pct(v, 95) for t, v in by_second.items() if v}
    slow = sum(1 for v in p95s.values() if v > 50)
    worst = sorted(p95s.items(), key=lambda kv: -kv[1])[:3]
    shown = ", ".join(f"{t}: {v:.0f} ms" for t, v in worst)
    return f"{slow} of {len(p95s)}; {shown}"


def _shown(fig: dict) -> dict:
    """A phase's figures as printed: without the raw numbers kept for the ratios."""
    return {k: v for k, v in fig.items() if k not in ("p95", "cpu_per_ack")}


async def _open_loop(
    ctx: Ctx,
    items: list,
    rate: float,
    duration: float,
    send: Callable[[Any], Awaitable[Any]],
    counted: tuple[type[BaseException], ...],
    fleet: Any = None,
) -> dict:
    """Send one item every 1/rate s whatever the answers (open loop); the latency of each from
    the moment it was due, the errors counted, and the CPU of each process over the phase (with
    `fleet`, a bench.fleet.Fleet, its worker processes' too, counted with this one's)."""
    latencies: list[float] = []
    errors: list[str] = []
    lag: list[float] = []

    by_second: dict[int, list[float]] = {}  # the latencies of what was due in each second

    async def one(item: Any, when: float) -> None:
        lag.append(time.monotonic() - when)
        try:
            await send(item)
            latencies.append((time.monotonic() - when) * 1000)
            by_second.setdefault(int(when - t0), []).append(latencies[-1])
        except counted as exc:  # counted, shown below
            errors.append(str(exc))

    tasks = []
    settled = await _server_quiet(ctx)
    ctx.gc_watch.reset()  # the collections' pauses stop the worker and the sender alike
    fleet_before = fleet.cpu() if fleet is not None else 0.0
    with CpuMeter(ctx.settings) as cpu:
        t0 = time.monotonic() + 0.5
        for i, item in enumerate(items):
            when = t0 + i / rate
            delay = when - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(item, when)))  # never waits for an answer
        await asyncio.gather(*tasks)
    if errors:
        console.print(f"[yellow]first error: {errors[0]}[/]")
    deltas = cpu.deltas()
    shares = {}
    if fleet is not None:
        sent = deltas["worker"]
        worker = fleet.cpu() - fleet_before
        deltas["worker"] = sent + worker
        shares = {
            "of which the sender (this process) / the worker process": (
                f"{sent:.1f} / {worker:.1f} s ({100 * sent / cpu.elapsed:.0f}% / "
                f"{100 * worker / cpu.elapsed:.0f}% of one core)"
            )
        }
    per_ack = {k: 1000 * v / max(len(latencies), 1) for k, v in deltas.items()}
    figures = cpu.figures()
    if fleet is not None:
        e = cpu.elapsed
        figures["worker+driver process CPU"] = (
            f"{deltas['worker']:.1f} s ({100 * deltas['worker'] / e:.0f}% of one core)"
        )
    return {
        "offered rate": f"{rate:g}/s for {duration:g} s ({len(items)} sent, open loop)",
        "waited before, for the server to be quiet": settled,
        "acknowledged": len(latencies),
        "errors": len(errors),
        "p50 / p95 / p99": f"{pct(latencies, 50):.0f} / {pct(latencies, 95):.0f} / {pct(latencies, 99):.0f} ms",
        "max": f"{max(latencies):.0f} ms" if latencies else "-",
        "seconds whose p95 passed 50 ms; the slowest three (s from the start: p95)": _slow_seconds(
            by_second
        ),
        "sender lag p99 (client scheduling)": f"{pct([x * 1000 for x in lag], 99):.1f} ms",
        "achieved ack rate": f"{len(latencies) / cpu.elapsed:.1f}/s",
        **figures,
        **shares,
        "garbage collection in this process: longest pause / pauses ≥ 0.5 s": (
            f"{ctx.gc_watch.longest * 1000:.0f} ms / {ctx.gc_watch.long_pauses}"
        ),
        "CPU per ack, worker+driver / Temporal": (
            f"{per_ack['worker']:.2f} / {per_ack['temporal']:.2f} ms"
        ),
        "p95": pct(latencies, 95),
        "cpu_per_ack": per_ack,
    }


@asynccontextmanager
async def _ack_targets(ctx: Ctx, count: int, worker_process: bool = False):
    """`count` bare AckTarget workflows, started and past their first workflow task, with a worker
    of their own (the SDK's sandbox, our worker's cache size) running until the block ends: in
    this process, or with `worker_process` a process of its own (yielded as a bench.fleet.Fleet,
    else None). The stack is the bench's own and discarded after the run: the targets are left
    open."""
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from activities.broadcast import task_queue_backlog
    from bench.baseline_wf import AckTarget
    from bench.fleet import Fleet

    queue = f"{ctx.settings.task_queue}-ack-bare"
    client = ctx.app.client
    run = uuid.uuid4().hex[:6]
    gate = asyncio.Semaphore(32)

    async def start(i: int):
        async with gate:
            return await client.start_workflow(
                AckTarget.run, id=f"bench-ack-bare-{run}-{i}", task_queue=queue
            )

    async with contextlib.AsyncExitStack() as stack:
        fleet = None
        if worker_process:
            fleet = Fleet(
                ctx.settings,
                queue,
                OUT / "ack-logs",
                command=[sys.executable, "-m", "bench.fleet", "ack-worker"],
            )
            stack.callback(fleet.stop)
            fleet.start(1)
            await fleet.polling(client, 1)
        else:
            await stack.enter_async_context(
                Worker(
                    client,
                    task_queue=queue,
                    workflows=[AckTarget],
                    workflow_runner=SandboxedWorkflowRunner(),
                    max_cached_workflows=ctx.settings.worker_max_cached_workflows,
                )
            )
        t = time.monotonic()
        handles = await asyncio.gather(*(start(i) for i in range(count)))
        backlog = task_queue_backlog(client)
        while await backlog(queue) > 0 and time.monotonic() - t < 600:
            await asyncio.sleep(1)
        await asyncio.sleep(2)  # the last first tasks handed out complete
        console.print(f"{count} bare targets started and at rest in {time.monotonic() - t:.1f} s")
        yield handles, [f"r-{run}-{i}" for i in range(count)], fleet


@asynccontextmanager
async def _our_worker(ctx: Ctx, worker_process: bool):
    """The context our acknowledgements run in, and the worker process (a bench.fleet.Fleet) or
    None: the stack's own worker in this process, or `worker.py run` in a process of its own on a
    task queue of its own, with a RecruitmentApi for that queue."""
    from bench.fleet import Fleet
    from client.api import RecruitmentApi

    if not worker_process:
        yield ctx, None
        return
    queue = f"{ctx.settings.task_queue}-ack-ours"
    fleet = Fleet(ctx.settings, queue, OUT / "ack-logs")
    try:
        fleet.start(1)
        await fleet.polling(ctx.app.client, 1)
        api = RecruitmentApi(ctx.app.client, queue, ctx.app.keys.pseudonym_key)
        yield dataclasses.replace(ctx, api=api), fleet
    finally:
        fleet.stop()


# --- big formasi -----------------------------------------------------------------------------------


BIG_FORMASI_RUNS = ROOT / "out" / "bench-rounds"  # one data dir per resumable big-formasi run


def big_formasi_state(round_id: str) -> Path:
    return BIG_FORMASI_RUNS / round_id / "run.json"


def new_big_formasi_run(
    size: int,
    quota: int,
    seed: int,
    to_end: bool,
    window_days: float,
    engine: dict[str, int] | None = None,
) -> dict:
    """What a big-formasi run keeps between its sittings (run.json in its own data dir)."""
    from bench.rounds import new_round_id

    round_id = new_round_id("F")
    return {
        "round_id": round_id,
        "data_dir": str(BIG_FORMASI_RUNS / round_id / "data"),
        "task_queue": f"casn-bench-{uuid.uuid4().hex[:6]}",
        "size": size,
        "quota": quota,
        "seed": seed,
        "to_end": to_end,
        "window_days": window_days,
        "engine": engine or {},  # the round file's engine tuning, where the command set it
        "config": None,  # the round's TOML, written when the round is created
        "done": [],  # steps played to their end (bench.rounds.STEPS)
        "phases": {},  # step -> wall seconds
        "phase_cpu": {},  # step -> process -> CPU seconds
        "cpu": {"worker": 0.0, "temporal": 0.0, "postgres": 0.0},
        "registration": None,
        "skd_counts": None,
        "gc": {"longest": 0.0, "long_pauses": 0, "threshold": 0.5},
        "peak_rss_mib": 0.0,
        "sittings": [],
    }


def load_big_formasi_run(round_id: str) -> dict:
    path = big_formasi_state(round_id)
    if not path.exists():
        known = sorted(p.parent.name for p in BIG_FORMASI_RUNS.glob("*/run.json"))
        raise typer.BadParameter(
            f"no big-formasi run {round_id!r} under {BIG_FORMASI_RUNS} "
            f"(resumable runs: {', '.join(known) or 'none'})",
            param_hint="--resume",
        )
    return json.loads(path.read_text())


def save_big_formasi_run(run: dict) -> None:
    path = big_formasi_state(run["round_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(run, indent=2, default=str))
    tmp.replace(path)  # a sitting killed mid-write leaves the last whole state


async def run_big_formasi(ctx: Ctx, run: dict, concurrency: int, stop_after: str | None) -> dict:
    """Play a big-formasi run's remaining steps, saving its state after each; the figures once
    the last step is played, or None when it stopped after `stop_after`."""
    import random

    from bench.rounds import STEPS, RoundDriver, applicants, bench_config
    from domain.config import load_round_config

    round_id, size, seed = run["round_id"], run["size"], run["seed"]
    steps = list(STEPS if run["to_end"] else STEPS[: STEPS.index("skd ranking") + 1])
    regs = None
    if run["config"] is None:
        config, path = bench_config(
            round_id,
            datetime.now(UTC),
            quota=run["quota"],
            single_formasi=True,
            out_dir=Path(run["data_dir"]).parent,
            window=timedelta(days=run["window_days"]),
            engine=run.get("engine"),
        )
        await ctx.api.create_round(path, config.reporters["operator"][0])
        run["config"] = str(path)
        save_big_formasi_run(run)
    else:
        config = load_round_config(Path(run["config"]))
    driver = RoundDriver(ctx.api, ctx.pool, config, random.Random(seed), concurrency)
    driver.step_seed = str(seed)  # a step played again sends the same reports
    driver.timeout = max(600.0, size * 0.1)
    if "registration" in run["done"]:
        rows = await ctx.pool.fetch(
            "SELECT applicant_id FROM applicants WHERE round_id = $1 ORDER BY applicant_id",
            round_id,
        )
        driver.ids = {r["applicant_id"]: None for r in rows}
    else:
        regs = applicants(config, size, seed)
        # The driver's 100,000 applicants live the whole run and hold no cycles: left in the
        # collector's generations, every full collection walks them too, and its pause stops the
        # worker in this process (each pause over 0.5 s is logged). Frozen, they are not walked.
        gc.freeze()
    ctx.gc_watch.reset()
    sitting = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "steps": [],
        "max_cached_workflows": ctx.settings.worker_max_cached_workflows,
    }
    run["sittings"].append(sitting)
    for step in [s for s in steps if s not in run["done"]]:
        with CpuMeter(ctx.settings) as cpu:
            driver.cpu_sample = cpu.snapshot
            counts = await driver.run_steps([step], regs if step == "registration" else None)
        for k, v in cpu.deltas().items():
            run["cpu"][k] += v
        run["phases"][step] = run["phases"].get(step, 0.0) + driver.phases.pop(step)
        spent = run["phase_cpu"].setdefault(step, {})
        for k, v in driver.phase_cpu.pop(step, {}).items():
            spent[k] = spent.get(k, 0.0) + v
        if step == "registration" and driver.registration:
            reg = driver.registration
            run["registration"] = {
                "accepted": reg["accepted"],
                "refused": reg["refused"],
                "elapsed": reg["elapsed"],
                "p95_s": pct(reg["latencies"], 95),
            }
            regs = None
        if step == "skd ranking":
            run["skd_counts"] = dict(counts)
        run["done"].append(step)
        sitting["steps"].append(step)
        sitting["ended"] = datetime.now(UTC).isoformat(timespec="seconds")
        run["gc"]["longest"] = max(run["gc"]["longest"], ctx.gc_watch.longest)
        run["gc"]["long_pauses"] += ctx.gc_watch.long_pauses
        run["gc"]["threshold"] = ctx.gc_watch.threshold
        ctx.gc_watch.reset()
        run["peak_rss_mib"] = max(run["peak_rss_mib"], peak_rss_mib())
        save_big_formasi_run(run)
        if step in driver.found_closed:
            console.print(f"{step}: its window was closed already; its reports were not sent again")
        console.print(
            f"[green]{step}[/] played in {run['phases'][step]:.1f} s "
            f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'window closed'})"
        )
        if step == stop_after and step != steps[-1]:
            console.print(
                f"stopped after {step}; the round waits. Resume with:\n"
                f"  python3 run.py bench big-formasi --resume {round_id}"
            )
            return None
    return await big_formasi_figures(ctx, run, driver)


async def round_history_sizes(client, pool, round_id: str, sample: int) -> dict[str, list]:
    """(start time, events, largest event in bytes, its kind) of every formasi and round run of a round, and
    of up to `sample` journeys for each terminal code and of those still running (the read model
    knows how each ended), so the longest journeys (PNS) are read, not only the many that end at
    SKD. Keys: the CasnKind ("formasi", "round", ...) or "journey <code>"."""
    from workflows.ids import journey_workflow_id, round_workflow_id

    sizes: dict[str, list] = {}

    async def read(key: str, handle, started) -> None:
        hist = await handle.fetch_history()
        sizes.setdefault(key, []).append((started, len(hist.events), *largest_event(hist)))

    query = (
        f"(RoundId = '{round_id}' AND CasnKind != 'journey') "
        f"OR WorkflowId = '{round_workflow_id(round_id)}'"
    )
    async for wf in client.list_workflows(query):
        kind = (wf.search_attributes.get("CasnKind") or ["round"])[0]
        await read(kind, client.get_workflow_handle(wf.id, run_id=wf.run_id), wf.start_time)
    rows = await pool.fetch(
        "SELECT applicant_id, coalesce(terminal, 'running') AS t FROM ("
        " SELECT applicant_id, terminal, row_number() OVER"
        " (PARTITION BY terminal ORDER BY md5(applicant_id)) AS n"
        " FROM applicants WHERE round_id = $1) s WHERE n <= $2",
        round_id,
        sample,
    )
    for row in rows:
        wid = journey_workflow_id(round_id, row["applicant_id"])
        await read(f"journey {row['t']}", client.get_workflow_handle(wid), None)
    for runs in sizes.values():
        runs.sort(key=lambda r: (r[0] is None, r[0]))
    return sizes


def largest_event_kib(sizes: dict[str, list]) -> str:
    kind, run = max(((k, r) for k, runs in sizes.items() for r in runs), key=lambda kr: kr[1][2])
    return f"{run[2] / 1024:.1f} KiB ({kind}: {run[3]})"


async def big_formasi_figures(ctx: Ctx, run: dict, driver) -> dict:
    """The finished run's figures: its phases summed over every sitting, and the sizes of the
    formasi's, the round's and a sample of the journeys' histories, read from the server."""
    round_id, size, quota = run["round_id"], run["size"], run["quota"]
    sizes = await round_history_sizes(ctx.app.client, ctx.pool, round_id, 10)
    runs, round_events = sizes["formasi"], sizes["round"][0][1]
    jevents = [r[1] for key, rows in sizes.items() if key.startswith("journey") for r in rows]
    largest = max([r[1] for r in runs] + [round_events] + jevents)
    reg = run["registration"] or {}
    elapsed = sum(run["phases"].values())
    cpu = run["cpu"]
    fig = {
        "round": round_id,
        "applicants (registered / refused by the rules)": (
            f"{len(driver.ids)} / {reg.get('refused', '?')}"
        ),
        "registration: per second, p95 answer": (
            f"{reg['accepted'] / reg['elapsed']:.1f}/s, {reg['p95_s']:.2f} s" if reg else "?"
        ),
        "quota / SKD cut (3 x quota)": f"{quota} / {3 * quota}",
        "outcome after SKD ranking": ", ".join(
            f"{k} {v}" for k, v in sorted((run["skd_counts"] or {}).items())
        ),
        **(
            {
                "journeys ended (of registered)": (
                    f"{(await driver.stage_counts())['ended']} of {len(driver.ids)}"
                ),
                "terminal codes": await terminal_counts(ctx.pool, round_id),
            }
            if run["to_end"]
            else {}
        ),
        "elapsed, the steps' sum": f"{elapsed:.1f} s",
        "sittings (the stack stopped and started again between them)": "; ".join(
            f"{s['started']} to {s.get('ended', '?')}: {', '.join(s['steps'])}"
            f" (cache {s.get('max_cached_workflows', '?')})"
            for s in run["sittings"]
        ),
        **{
            f"  phase {name}": (
                f"{seconds:.1f} s (worker {run['phase_cpu'][name].get('worker', 0):.1f} s, "
                f"server {run['phase_cpu'][name].get('temporal', 0):.1f} s CPU)"
            )
            for name, seconds in run["phases"].items()
        },
        "formasi runs (continue-as-new)": len(runs),
        "events per formasi run": ", ".join(str(r[1]) for r in runs),
        "round history events": round_events,
        "journey history events (10 of each ending, max)": max(jevents),
        "largest history of any run": largest,
        "largest event of every history read": largest_event_kib(sizes),
        "runs over 4,096 events": sum(1 for r in runs if r[1] > 4096)
        + (round_events > 4096)
        + sum(1 for e in jevents if e > 4096),
        "CPU worker+driver / server / PostgreSQL": (
            f"{cpu['worker']:.0f} / {cpu['temporal']:.0f} / {cpu['postgres']:.0f} s"
        ),
        "worker+driver peak RSS (largest of the sittings)": f"{run['peak_rss_mib']:.0f} MiB",
        "longest GC pause (worker+driver)": (
            f"{run['gc']['longest']:.2f} s ({run['gc']['long_pauses']} over "
            f"{run['gc']['threshold']:g} s)"
        ),
    }
    print_table(
        f"one formasi with {size} applicants, "
        f"{'end to end' if run['to_end'] else 'through SKD ranking'}",
        fig,
    )
    return {"largest": largest, **fig}


async def terminal_counts(pool, round_id: str) -> str:
    rows = await pool.fetch(
        "SELECT terminal, count(*) AS n FROM applicants WHERE round_id = $1 GROUP BY terminal "
        "ORDER BY n DESC",
        round_id,
    )
    return ", ".join(f"{r['terminal'] or 'running'} {r['n']}" for r in rows)


# --- commands ---------------------------------------------------------------------------------------

KEEP = typer.Option(False, "--keep-stack", help="leave the bench stack running afterwards")


class Runner(StrEnum):
    stock = "stock"
    project = "project"


BASELINE_RUNNER = typer.Option(
    Runner.stock,
    "--baseline-runner",
    help="stock: the SDK's default sandbox (the bare engine); project: the worker's runner",
)


@app.command()
def baseline(
    size: int = typer.Option(100, help="workflows"),
    concurrency: int = 32,
    keep_stack: bool = KEEP,
    baseline_runner: Runner = BASELINE_RUNNER,
):
    """Bare engine: one no-op activity per side effect, one update per report of a full journey."""
    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            save(
                "baseline",
                {"machine": m, **await run_baseline(ctx, size, concurrency, baseline_runner)},
            )

    asyncio.run(main())


@app.command()
def journeys(
    size: int = typer.Option(100, help="applicants"),
    seed: int = 2027,
    concurrency: int = 32,
    keep_stack: bool = KEEP,
):
    """Full applicant journeys per second on the embedded stack."""
    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            save("journeys", {"machine": m, **await run_journeys(ctx, size, seed, concurrency)})

    asyncio.run(main())


@app.command("all")
def all_(
    size: int = typer.Option(100, help="journeys and baseline workflows"),
    seed: int = 2027,
    concurrency: int = 32,
    keep_stack: bool = KEEP,
    baseline_runner: Runner = BASELINE_RUNNER,
):
    """Baseline and journeys in the same invocation, and their ratio (target >= 1.5)."""
    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            b = await run_baseline(ctx, size, concurrency, baseline_runner)
            floor = await run_baseline(ctx, size, concurrency, baseline_runner, side_effects=0)
            j = await run_journeys(ctx, size, seed, concurrency)
        ratio = j["rate"] / b["rate"]
        ceiling = floor["rate"] / b["rate"]
        print_table(
            "journeys vs bare baseline",
            {
                "baseline journeys/s": f"{b['rate']:.2f}",
                "journeys/s": f"{j['rate']:.2f}",
                "ratio (target >= 1.5)": f"{ratio:.2f} ({'met' if ratio >= 1.5 else 'not met'})",
                "floor (updates only) journeys/s": f"{floor['rate']:.2f}",
                "ceiling: floor / baseline (no journey design with these updates does better)": f"{ceiling:.2f}",
            },
        )
        save(
            "all",
            {
                "machine": m,
                "baseline": b,
                "floor": floor,
                "journeys": j,
                "ratio": ratio,
                "ceiling": ceiling,
            },
        )

    asyncio.run(main())


@app.command()
def actions(
    size: int = typer.Option(200, min=1, help="probe workflows per kind"),
    count: int = typer.Option(5, min=1, help="actions per probe"),
    concurrency: int = typer.Option(32, min=1),
    keep_stack: bool = KEEP,
):
    """CPU of one engine action (update, signal, query, activity, local activity) on this machine."""
    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            save("actions", {"machine": m, **await run_actions(ctx, size, count, concurrency)})

    asyncio.run(main())


async def run_actions_per_journey(ctx: Ctx, size: int, seed: int, concurrency: int) -> dict:
    """The naive design and full journeys in one run: Cloud actions from their histories, and CPU."""
    from bench.cloud_actions import by_outcome, count_workflows, kinds, mean_parts
    from workflows.ids import formasi_workflow_id, journey_workflow_id, round_workflow_id

    naive = await run_baseline(ctx, size, concurrency)
    ours = await run_journeys(ctx, size, seed, concurrency)
    client = ctx.app.client
    naive_counts = await count_workflows(client, naive["ids"])
    journey_counts = await count_workflows(client, ours["ids"])
    round_id = ours["round_id"]
    engine_counts = await count_workflows(
        client,
        [round_workflow_id(round_id)]
        + [formasi_workflow_id(round_id, code) for code in ours["formasi_codes"]],
    )
    rows = await ctx.pool.fetch(
        "SELECT applicant_id, terminal FROM applicants WHERE round_id = $1", round_id
    )
    outcome_of = {journey_workflow_id(round_id, r["applicant_id"]): r["terminal"] for r in rows}
    n_naive, n_ours = len(naive["ids"]), len(ours["ids"])
    naive_parts = mean_parts(naive_counts, n_naive)
    journey_parts = mean_parts(journey_counts, n_ours)
    engine_parts = mean_parts(engine_counts, n_ours)
    whole = {k: journey_parts[k] + engine_parts[k] for k in journey_parts}
    from rich.table import Table

    table = Table(
        title=f"Temporal Cloud actions per journey, from the histories ({n_ours} journeys, {n_naive} naive)"
    )
    for col in ["per journey", "naive", "ours: journey", "ours: formasi + round", "ours: all"]:
        table.add_column(col, justify="right")
    for key in naive_parts:
        table.add_row(
            key,
            *(f"{parts[key]:.2f}" for parts in (naive_parts, journey_parts, engine_parts, whole)),
        )
    console.print(table)
    outcomes = by_outcome(journey_counts, outcome_of)
    print_table(
        "our journeys by outcome: actions / workflow tasks / events",
        {
            k: f"{v['actions']:.2f} / {v['workflow tasks']:.2f} / {v['events']:.1f}"
            for k, v in outcomes.items()
        },
    )

    def cpu_ms(result: dict, n: int) -> dict[str, float]:
        d = result["cpu"]
        return {
            "worker": 1000 * d["worker"] / n,
            "server": 1000 * d["temporal"] / n,
            "postgres": 1000 * d["postgres"] / n,
        }

    naive_cpu, ours_cpu = cpu_ms(naive, n_naive), cpu_ms(ours, n_ours)
    action_ratio = whole["actions"] / naive_parts["actions"]
    journey_action_ratio = journey_parts["actions"] / naive_parts["actions"]
    cpu_ratio = (ours_cpu["worker"] + ours_cpu["server"]) / (
        naive_cpu["worker"] + naive_cpu["server"]
    )
    summary = {
        "naive actions per journey": f"{naive_parts['actions']:.2f}",
        "our actions per journey (journey runs only)": f"{journey_parts['actions']:.2f}",
        "our actions per journey (with formasi and round runs)": f"{whole['actions']:.2f}",
        "actions: ours / naive, journey runs only": f"{journey_action_ratio:.3f}",
        "actions: ours / naive, with formasi and round (goal <= 0.6)": f"{action_ratio:.3f} ({'met' if action_ratio <= 0.6 else 'not met'})",
        "CPU per journey, naive: worker / server / PostgreSQL ms": " / ".join(
            f"{naive_cpu[k]:.1f}" for k in naive_cpu
        ),
        "CPU per journey, ours: worker / server / PostgreSQL ms": " / ".join(
            f"{ours_cpu[k]:.1f}" for k in ours_cpu
        ),
        "CPU (worker + server): ours / naive (goal <= 0.67)": f"{cpu_ratio:.3f} ({'met' if cpu_ratio <= 0.67 else 'not met'})",
        "journeys/s: naive / ours": f"{naive['rate']:.2f} / {ours['rate']:.2f}",
        "runs counted": ", ".join(
            f"{k} {v}"
            for k, v in sorted(
                (kinds(naive_counts) + kinds(journey_counts) + kinds(engine_counts)).items()
            )
        ),
    }
    print_table("engine actions and CPU per journey: ours vs the naive design, same run", summary)
    for result in (naive, ours):
        result.pop("ids")
    return {
        "naive": naive,
        "ours": ours,
        "actions": {
            "naive": naive_parts,
            "journey": journey_parts,
            "formasi+round": engine_parts,
            "all": whole,
        },
        "by outcome": outcomes,
        "cpu ms": {"naive": naive_cpu, "ours": ours_cpu},
        "action ratio": action_ratio,
        "journey action ratio": journey_action_ratio,
        "cpu ratio": cpu_ratio,
        **summary,
    }


@app.command("actions-per-journey")
def actions_per_journey(
    size: int = typer.Option(100, min=1, help="journeys, and naive journeys"),
    seed: int = 2027,
    concurrency: int = typer.Option(32, min=1),
    keep_stack: bool = KEEP,
):
    """Engine actions (Temporal Cloud's definition, from the histories) and CPU per journey: ours vs
    the naive design, in one run (issue 17 item 5)."""
    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            figures = await run_actions_per_journey(ctx, size, seed, concurrency)
        end = os.getloadavg()
        console.print(f"load average at end (1/5 min): {end[0]:.2f} / {end[1]:.2f}")
        save("actions-per-journey", {"machine": m, "load at end": end[:2], **figures})

    asyncio.run(main())


@app.command("ack-latency")
def ack_latency(
    rate: float = 50.0,
    duration: float = 30.0,
    seed: int = 7,
    baseline: bool = typer.Option(
        True, help="then the bare engine's updates at the same rate, in the same run"
    ),
    worker_process: bool = typer.Option(
        False,
        help="each phase's worker in a process of its own, as production runs it (ours: worker.py "
        "run), this process only sending; without it both run in the sending process",
    ),
    ours_first: bool = typer.Option(
        False,
        "--ours-first/--bare-first",
        help="measure ours before the bare engine (default: the bare engine first)",
    ),
    keep_stack: bool = KEEP,
):
    """Acknowledgement latency of stage results at a fixed offered rate (open loop), against the
    bare engine's at the same rate in the same run."""
    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            figures = await run_ack(ctx, rate, duration, seed, baseline, worker_process, ours_first)
            save("ack-latency", {"machine": m, **figures})

    asyncio.run(main())


@app.command()
def registrations(size: int = 500, concurrency: int = 32, seed: int = 11, keep_stack: bool = KEEP):
    """Registration burst: registrations accepted per second."""
    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            _, fig = await run_registrations(ctx, size, seed, concurrency)
            save("registrations", {"machine": m, **fig})

    asyncio.run(main())


@app.command("registrations-e2e")
def registrations_e2e(
    size: int = typer.Option(20000, min=1, help="registrations (and bare workflows)"),
    concurrency: int = typer.Option(64, min=1, help="submissions in flight"),
    seed: int = 11,
    keep_stack: bool = KEEP,
):
    """Registrations per second end to end (submission until the journey's read-model row)
    against bare-engine workflows that start and run one local activity writing a row, measured
    before and after the registrations in the same run (issue 17 item 3)."""
    from bench.registrations_e2e import run_baseline as run_bare
    from bench.registrations_e2e import run_registrations_e2e

    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            client, s = ctx.app.client, ctx.settings
            before = await run_bare(client, ctx.pool, s.task_queue, size, concurrency, s)
            ours = await run_registrations_e2e(ctx, size, seed, concurrency, OUT / "rounds")
            after = await run_bare(client, ctx.pool, s.task_queue, size, concurrency, s)
            base = (before["rate"] + after["rate"]) / 2
            load = os.getloadavg()
            fig = {
                "bare engine before / after": f"{before['rate']:.1f} / {after['rate']:.1f}/s",
                "registrations end to end": f"{ours['rate']:.1f}/s",
                "ratio to the bare engine (mean of before and after)": f"{ours['rate'] / base:.2f}",
                "registration p95, submission to row": f"{ours['p95_ms']:.0f} ms",
                "load average at the end (1/5 min)": f"{load[0]:.2f} / {load[1]:.2f}",
            }
            print_table("registrations end to end against the bare engine", fig)
            save(
                "registrations-e2e",
                {
                    "machine": m,
                    "summary": fig,
                    "bare_before": before,
                    "ours": ours,
                    "bare_after": after,
                },
            )

    asyncio.run(main())


@app.command()
def national(
    instansi: int = typer.Option(
        50, min=2, max=600, help="instansi rounds joining the national round"
    ),
    size: int = typer.Option(2000, min=2, help="applicants across every instansi"),
    again: float = typer.Option(
        0.05, min=0.0, max=1.0, help="share of applicants who try a second instansi too"
    ),
    control: int = typer.Option(
        500, min=0, help="registrations into a round of no national round first (same run)"
    ),
    concurrency: int = 32,
    seed: int = 17,
    registration_only: bool = typer.Option(
        False, help="stop once every registered journey has its read-model row"
    ),
    keep_stack: bool = KEEP,
):
    """A national round at reduced scale (issue 17 item 2): instansi rounds join one national
    schedule, a registration burst with NIKs tried in a second instansi, every round to its end."""
    from bench.national import run_national

    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            control_rate = None
            if control:
                _, fig = await run_registrations(
                    ctx, control, seed, concurrency, "control: registrations, no national round"
                )
                control_rate = float(fig["registrations accepted/s"])
            ctx.gc_watch.reset()
            with CpuMeter(ctx.settings) as cpu:
                fig = await run_national(
                    ctx.api,
                    ctx.pool,
                    OUT / "rounds",
                    instansi,
                    size,
                    again,
                    concurrency,
                    seed,
                    cpu.snapshot,
                    registration_only,
                )
            rate = fig.pop("_registered") / fig.pop("_registration_s")
            if control_rate:
                fig["registration rate ÷ control (same run)"] = f"{rate / control_rate:.2f}"
            fig.update(
                {
                    "elapsed in all": f"{cpu.elapsed:.1f} s",
                    **cpu.figures(),
                    "worker+driver peak RSS": f"{peak_rss_mib():.0f} MiB",
                    **gc_rows(ctx),
                }
            )
            fig["load average at end (1/5 min)"] = "{:.2f} / {:.2f}".format(*os.getloadavg()[:2])
            print_table("national round (reduced scale)", fig)
            save("national", {"machine": m, **fig})

    asyncio.run(main())


@app.command()
def gateway(
    size: int = typer.Option(5000, min=1, help="registrations per path"),
    clients: int = typer.Option(200, min=1, help="concurrent clients (and tasks, direct)"),
    seed: int = 13,
    status_clients: int = typer.Option(4, min=1, help="applicants reading their status page"),
    status_interval: float = typer.Option(
        0.5, min=0.0, help="seconds a viewer waits after each status page before the next"
    ),
    http_first: bool = typer.Option(False, "--http-first", help="run the HTTP burst first"),
    gateway_log_level: str = typer.Option("INFO", help="the gateway process's log level"),
    repeat: int = typer.Option(
        1, min=1, help="bursts per path, in ABBA order (2 = direct, HTTP, HTTP, direct)"
    ),
    keep_stack: bool = KEEP,
):
    """A registration burst through the HTTP gateway and straight to the engine, in one run;
    the status page's p95 under the HTTP burst."""
    from bench.gateway import run_gateway

    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            figures = await run_gateway(
                ctx,
                size,
                clients,
                seed,
                status_clients,
                http_first,
                gateway_log_level,
                repeat,
                status_interval,
            )
            save("gateway", {"machine": m, **figures})

    asyncio.run(main())


@app.command("gateway-batch")
def gateway_batch(
    size: int = typer.Option(2000, min=1, help="reports per leg"),
    clients: int = typer.Option(32, min=1, help="clients sending one report per request"),
    batch: int = typer.Option(100, min=1, help="reports per batch (at most 500)"),
    repeat: int = typer.Option(2, min=1, help="pairs of legs, ABBA (2: one, batch, batch, one)"),
    cli: bool = typer.Option(
        False, "--cli", help="a third way each time: the file by starter.py report --gateway"
    ),
    seed: int = 17,
    gateway_log_level: str = typer.Option("INFO", help="the gateway process's log level"),
    keep_stack: bool = KEEP,
):
    """Signed reports through the HTTP gateway one per request and in batches
    (POST /api/v1/rounds/{round}/reports), in one run: reports/s and CPU per report."""
    from bench.gateway_batch import run_gateway_batch

    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            figures = await run_gateway_batch(
                ctx,
                size,
                clients,
                batch,
                repeat,
                seed,
                lambda: _server_quiet(ctx),
                gateway_log_level,
                cli,
            )
            save("gateway-batch", {"machine": m, **figures})

    asyncio.run(main())


@app.command("announce-gateway")
def announce_gateway(
    size: int = typer.Option(2000, min=1, help="applicants registered (a few are refused)"),
    builds: int = typer.Option(3, min=1, help="in-process builds timed before and after"),
    seed: int = 17,
    keep_stack: bool = KEEP,
):
    """An announcement drafted by the gateway, signed here and stored through it
    (docs/ANNOUNCEMENTS.md), against the same announcement built in-process, in one run."""
    from bench.announce_gateway import run_announce_gateway

    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            figures = await run_announce_gateway(ctx, size, seed, builds)
            save("announce-gateway", {"machine": m, **figures})

    asyncio.run(main())


@app.command("import-gateway")
def import_gateway(
    size: int = typer.Option(1000, min=10, help="rows of each file"),
    repeat: int = typer.Option(
        2, min=1, help="pairs of legs, ABBA (2: direct, gateway, gateway, direct)"
    ),
    seed: int = 17,
    gateway_log_level: str = typer.Option("WARNING", help="the gateway process's log level"),
    keep_stack: bool = KEEP,
):
    """An SSCASN export registered by starter.py import-registrations straight to the engine and
    through the HTTP gateway (--gateway), in one run: registered/s and CPU per registration."""
    from bench.import_gateway import run_import_gateway

    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            figures = await run_import_gateway(ctx, size, repeat, seed, gateway_log_level)
            save("import-gateway", {"machine": m, **figures})

    asyncio.run(main())


@app.command("panel-sheets")
def panel_sheets(
    size: int = typer.Option(1000, min=10, help="applicants registered (all go on to SKB)"),
    reads: int = typer.Option(5, min=1, help="reads of each sheet from the read model"),
    seed: int = 17,
    keep_stack: bool = KEEP,
):
    """A panellist's blind sheet read from the read model's panel_seats against the read before
    it (a query to every running journey of the round), in one run, sheet by sheet compared."""
    from bench.panel_sheets import run_panel_sheets

    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            figures = await run_panel_sheets(ctx, size, seed, reads)
            save("panel-sheets", {"machine": m, **figures})

    asyncio.run(main())


@app.command()
def ranking(
    sizes: str = typer.Option("1000000,4000000", help="comma-separated entry counts"),
    quota: int = typer.Option(100, help="formasi quota (cut = 3 x quota)"),
    methods: str = "rank_skd,tracker",
    timeout: float = 600,
):
    """SKD ranking with the domain code: rank_skd (all entries) and SkdCutTracker (streaming)."""
    m = show_machine()
    rows = []
    for size in [int(s) for s in sizes.split(",")]:
        for method in methods.split(","):
            console.print(f"ranking {size:,} entries with {method} ...")
            try:
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.ranking",
                        "--size",
                        str(size),
                        "--method",
                        method,
                        "--quota",
                        str(quota),
                    ],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=True,
                )
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            except subprocess.TimeoutExpired:
                rows.append({"size": size, "method": method, "error": f"over {timeout:g} s"})
            except subprocess.CalledProcessError as exc:
                rows.append(
                    {"size": size, "method": method, "error": exc.stderr.strip().splitlines()[-1]}
                )
    from rich.table import Table

    targets = {1_000_000: 3.0, 4_000_000: 15.0}
    table = Table(title=f"SKD ranking (quota {quota}, cut {3 * quota})")
    for col in [
        "entries",
        "method",
        "input build",
        "input RSS",
        "ranking time",
        "peak RSS",
        "target",
    ]:
        table.add_column(col, justify="right")
    for r in rows:
        target = targets.get(r["size"])
        verdict = (
            "-"
            if target is None or "rank_s" not in r
            else (f"< {target:g} s: {'met' if r['rank_s'] < target else 'not met'}")
        )
        table.add_row(
            f"{r['size']:,}",
            r["method"],
            f"{r.get('build_s', 0):.1f} s",
            f"{r.get('rss_input_mib', 0):.0f} MiB",
            r.get("error") or f"{r['rank_s']:.2f} s",
            f"{r.get('peak_rss_mib', 0):.0f} MiB",
            verdict,
        )
    console.print(table)
    save("ranking", {"machine": m, "rows": rows})


@app.command("columnar-ranking")
def columnar_ranking(
    sizes: str = typer.Option("1000000,4000000", help="comma-separated entry counts"),
    quota: int = typer.Option(100, help="formasi quota (cut = 3 x quota)"),
    rank_skd_sizes: str = typer.Option("1000000", help="sizes also ranked with rank_skd"),
    repeat: int = typer.Option(5, help="timed runs of the listing and the baseline, alternated"),
    timeout: float = 600,
):
    """The auditor's full SKD listing with domain/columnar.py against a bare NumPy filter +
    lexsort and against rank_skd, each size in one process so its ratios share one load."""
    m = show_machine()
    with_rank_skd = {int(s) for s in rank_skd_sizes.split(",") if s}
    rows = []
    for size in [int(s) for s in sizes.split(",")]:
        console.print(f"columnar ranking of {size:,} entries ...")
        cmd = [sys.executable, "-m", "bench.columnar", "--size", str(size), "--quota", str(quota)]
        cmd += ["--repeat", str(repeat)] + (["--rank-skd"] if size in with_rank_skd else [])
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=True
            )
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        except subprocess.TimeoutExpired:
            rows.append({"size": size, "error": f"over {timeout:g} s"})
        except subprocess.CalledProcessError as exc:
            rows.append({"size": size, "error": exc.stderr.strip().splitlines()[-1]})
    from rich.table import Table

    table = Table(
        title=f"Columnar SKD ranking (quota {quota}, cut {3 * quota}; medians of {repeat})"
    )
    for col in [
        "entries",
        "build columns",
        "full listing",
        "<= 0.4 s at 1 M",
        "bare filter+lexsort",
        "listing / bare",
        "rank_skd (+ build)",
        "rank_skd / listing",
        "same lines",
        "load start/end",
    ]:
        table.add_column(col, justify="right")
    for r in rows:
        if "error" in r:
            table.add_row(f"{r['size']:,}", r["error"], *["-"] * 8)
            continue
        listing, bare = r["listing_median_s"], r["baseline_median_s"]
        skd = r.get("rank_skd_s")
        table.add_row(
            f"{r['size']:,}",
            f"{r['build_columns_s']:.2f} s",
            f"{listing:.3f} s",
            "-" if r["size"] != 1_000_000 else "met" if listing <= 0.4 else "not met",
            f"{bare:.3f} s",
            f"{listing / bare:.2f}",
            "-" if skd is None else f"{skd:.2f} s (+ {r['build_entries_s']:.1f} s)",
            "-" if skd is None else f"{skd / listing:.1f}",
            str(r.get("equal_to_rank_skd", "-")),
            f"{r['load_start']:.2f} / {r['load_end']:.2f}",
        )
    console.print(table)
    save("columnar-ranking", {"machine": m, "rows": rows})


def inspect_settings(round_id: str):
    """The settings of the stack a bench played `round_id` on, to read it: a big-formasi run's own
    data dir (out/bench-rounds/ROUND), or the bench's shared one."""
    if big_formasi_state(round_id).exists():
        run = load_big_formasi_run(round_id)
        return bench_settings(Path(run["data_dir"]), task_queue="casn-bench-inspect")
    return bench_settings(DATA_DIR, task_queue="casn-bench-inspect")


@app.command("recompute-round")
def recompute_round(
    round_id: str = typer.Argument(..., help="a round played on the kept bench stack"),
):
    """`audit.py recompute` of a round a bench played, timed: fetching every history, then the
    recompute (replay of every run, reading the journeys' inputs, the rankings).

    A big-formasi run is found in its own data dir (out/bench-rounds/ROUND); other rounds on the
    bench stack left by `--keep-stack`. A stack that is running is left running; one this command
    had to start is stopped again."""
    from auditing.history import DecodedMessages, round_histories
    from auditing.provenance import check_provenance
    from auditing.recompute import recompute
    from domain.columnar import rank_skd_columns
    from domain.config import SkdRules
    from runtime.app import open_app
    from runtime.connection import data_converter
    from runtime.embedded import stop_stack

    m = show_machine()
    settings = inspect_settings(round_id)

    async def main() -> dict:
        ctx = await open_app(settings)
        try:
            return await measure(ctx)
        finally:
            for line in stop_stack(settings, only=ctx.stack):
                console.print(f"[dim]{line}[/]")

    async def measure(ctx) -> dict:
        t = time.perf_counter()
        histories = await round_histories(ctx.client, round_id)
        fetched = time.perf_counter() - t
        kinds = Counter(h.kind for h in histories)
        t = time.perf_counter()
        # audit.py recompute checks every signature and sender first (since 12-07): timed apart.
        # As audit.py does, each history's messages are decoded once, here, for both checks.
        decoded = DecodedMessages(data_converter(ctx.keys))
        provenance = await check_provenance(histories, data_converter(ctx.keys), decoded)
        signatures = time.perf_counter() - t
        t = time.perf_counter()
        result = await recompute(histories, data_converter(ctx.keys), decoded)
        recomputed = time.perf_counter() - t
        listing = 0.0
        for _, r in result.pairs:
            if r.skd_columns is not None:
                t = time.perf_counter()
                rank_skd_columns(r.skd_columns, 1, SkdRules())  # the time, not the result
                listing += time.perf_counter() - t
        journeys = kinds.get("journey", 0)
        return {
            "round": round_id,
            "histories (runs) by kind": ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
            "events": sum(len(h.history.events) for h in histories),
            "fetch every history": f"{fetched:.1f} s",
            "signatures and senders (provenance)": f"{signatures:.1f} s, "
            f"{provenance.verified:,} verified, {len(provenance.problems)} problems",
            "recompute (replay + inputs + rankings)": f"{recomputed:.1f} s",
            "of which the SKD listings (columnar)": f"{listing * 1000:.1f} ms",
            "per journey run": f"{(fetched + signatures + recomputed) / max(journeys, 1) * 1000:.1f} ms",
            "differences found": len(result.differences()),
            "final rankings recorded as pages": "; ".join(
                f"{a.formasi_code}: {a.winners_count} winners under {len(a.winner_pages)} "
                f"references{'' if a.fold_at is None else f' (folded at {a.fold_at})'}"
                for a, _ in result.pairs
                if a.winner_pages is not None
            )
            or "none",
            **await read_model_check(ctx, histories, journeys),
            "load average at end (1 min)": f"{os.getloadavg()[0]:.2f}",
        }

    async def read_model_check(ctx, histories, journeys: int) -> dict:
        """`audit.py check-read-model` of the same round, on the histories fetched above."""
        from auditing.readmodel import check, projected
        from runtime.db import open_pool

        t = time.perf_counter()
        derived = await projected(round_id, histories, data_converter(ctx.keys))
        replayed = time.perf_counter() - t
        pool = await open_pool(ctx.stack.database_url, max_size=2)
        try:
            t = time.perf_counter()
            result = await check(pool, derived)
            compared = time.perf_counter() - t
        finally:
            await pool.close()
        runs = sum(h.kind in ("journey", "aftermath") for h in histories)
        # The same replay in the SDK's stock sandbox, as every audit replay ran before it took the
        # worker's runner: the baseline, in the same run, on the same histories.
        from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

        from auditing.history import replay

        journeys_only = [h.history for h in histories if h.kind in ("journey", "aftermath")]
        t = time.perf_counter()
        await replay(
            journeys_only, data_converter(ctx.keys), workflow_runner=SandboxedWorkflowRunner()
        )
        stock = time.perf_counter() - t
        return {
            "replay of the same runs in the SDK's stock sandbox (before)": f"{stock:.1f} s "
            f"({stock / max(runs, 1) * 1000:.1f} ms a run; the worker's runner "
            f"{stock / max(replayed, 1e-9):.2f} x as fast)",
            "check-read-model: replay of the journeys' and aftermaths' runs": f"{replayed:.1f} s "
            f"({runs} runs, {replayed / max(runs, 1) * 1000:.1f} ms a run)",
            "check-read-model: compare with the read model": f"{compared:.2f} s "
            f"({result.applicants} applicants, {compared / max(result.applicants, 1) * 1000:.2f} "
            "ms each)",
            "check-read-model: differences, replay failures": f"{len(result.differences)}, "
            f"{len(result.replay_failures)}",
        }

    fig = asyncio.run(main())
    print_table(f"audit recompute and check-read-model of round {round_id}", fig)
    save("recompute-round", {"machine": m, **fig})


@app.command("page-check")
def page_check(
    round_id: str = typer.Argument(..., help="a round played on the kept bench stack"),
    lose_all: bool = typer.Option(
        False,
        "--lose-all",
        help="then delete every page of the round and time `check-pages --rebuild` making them "
        "again (the bench stack's pages are lost for good if it cannot)",
    ),
    concurrency: str = typer.Option(
        "8",
        help="with --lose-all: journeys' histories fetched at once, comma-separated to lose and "
        "rebuild once for each, in this order (e.g. 1,8)",
    ),
):
    """`audit.py check-pages` of a round a bench played, timed: fetching the formasi's and the
    round's histories, finding every page reference in them, reading every page back and checking
    it against its digest; with --lose-all, the rebuild of the whole page store. Found and
    started like `recompute-round`."""
    from activities.pages import PageStore
    from auditing.history import round_histories
    from auditing.pagestore import check_pages, rebuild
    from domain.pages import PageRef
    from runtime.app import open_app
    from runtime.connection import data_converter
    from runtime.db import open_pool
    from runtime.embedded import stop_stack
    from runtime.sealed import ColumnCipher

    try:
        fetches = [int(n) for n in concurrency.split(",")]
        if any(not 1 <= n <= 64 for n in fetches):
            raise ValueError
    except ValueError:
        raise typer.BadParameter(
            f"{concurrency!r}: whole numbers from 1 to 64, comma-separated",
            param_hint="--concurrency",
        ) from None
    m = show_machine()
    settings = inspect_settings(round_id)

    async def main() -> dict:
        ctx = await open_app(settings)
        try:
            t = time.perf_counter()
            histories = await round_histories(ctx.client, round_id, "formasi")
            histories += await round_histories(ctx.client, round_id, "round")
            fetched = time.perf_counter() - t
            pool = await open_pool(ctx.stack.database_url, max_size=2)
            try:
                t = time.perf_counter()
                result = await check_pages(
                    pool,
                    ColumnCipher.from_keys(ctx.keys),
                    round_id,
                    histories,
                    data_converter(ctx.keys),
                )
                checked = time.perf_counter() - t
                owners = sorted({h.workflow_id for h in histories})
                items = await pool.fetchval(
                    "SELECT coalesce(sum(items), 0) FROM pages WHERE owner = ANY($1::text[])",
                    owners,
                )
                lost: dict = {}
                for i, n in enumerate(fetches if lose_all else [], start=1):
                    lost.update(await lose_and_rebuild(ctx, pool, histories, owners, n, i))
            finally:
                await pool.close()
        finally:
            for line in stop_stack(settings, only=ctx.stack):
                console.print(f"[dim]{line}[/]")
        return {
            "round": round_id,
            "formasi and round runs, events": f"{len(histories)}, "
            f"{sum(len(h.history.events) for h in histories):,}",
            "fetch those histories": f"{fetched:.2f} s",
            "pages referenced, under index pages, read whole": f"{result.referenced}, "
            f"{result.under_indexes}, {result.read}",
            "pages by kind": ", ".join(f"{k} {n}" for k, n in sorted(result.kinds.items())),
            "items in the round's pages": f"{items:,}",
            "check (find references, read, open, digest)": f"{checked:.2f} s "
            f"({checked / max(result.read, 1) * 1000:.1f} ms a page)",
            "problems, undecodable, unreferenced": f"{len(result.problems)}, "
            f"{len(result.undecodable)}, {result.unreferenced}",
            **lost,
            "peak RSS of this process": f"{peak_rss_mib():.0f} MiB",
            "load average at end (1 min)": f"{os.getloadavg()[0]:.2f}",
        }

    async def lose_and_rebuild(
        ctx, pool, histories, owners: list[str], fetches: int, nth: int
    ) -> dict:
        """Every page of the round deleted, then made again; each compared with what was kept."""
        cipher, converter = ColumnCipher.from_keys(ctx.keys), data_converter(ctx.keys)
        store = PageStore(pool, cipher)
        digests = [
            r["digest"]
            for r in await pool.fetch("SELECT digest FROM pages WHERE owner = ANY($1)", owners)
        ]
        bodies = {d: await store.fetch(PageRef(digest=d, count=0)) for d in digests}
        await pool.execute("DELETE FROM pages WHERE owner = ANY($1::text[])", owners)
        found = await check_pages(pool, cipher, round_id, histories, converter)
        t = time.perf_counter()
        done = await rebuild(
            ctx.client, pool, cipher, round_id, histories, converter, found, concurrency=fetches
        )
        took = time.perf_counter() - t
        same = [d for d in done.made if await store.fetch(PageRef(digest=d, count=0)) == bodies[d]]
        at = f"rebuild {nth}, {fetches} fetches at once"
        return {
            "pages deleted (the round's), of them the histories reach": f"{len(bodies)}, "
            f"{len(found.problems)} named at first",
            f"{at}: made again, byte for byte as kept": f"{len(done.made)}, {len(same)}",
            f"{at}: journey runs read for the answers": f"{done.journey_runs:,}",
            f"{at}: took (read journeys, replay, run again, check)": f"{took:.1f} s "
            f"({took / max(done.journey_runs, 1) * 1000:.1f} ms a journey run)",
            f"{at}: problems, replay failures after it": f"{len(done.check.problems)}, "
            f"{len(done.replay_failures)}",
        }

    fig = asyncio.run(main())
    print_table(f"audit.py check-pages of round {round_id}", fig)
    save("page-check", {"machine": m, **fig})


@app.command("big-formasi")
def big_formasi(
    size: int = typer.Option(5000, min=1, help="applicants (the issue asks 100,000)"),
    quota: int = typer.Option(0, min=0, help="quota; 0 = size // 40"),
    seed: int = 5,
    concurrency: int = typer.Option(32, min=1),
    to_end: bool = typer.Option(
        True,
        "--to-end/--to-skd",
        help="play every stage to the last journey's end, or stop at SKD ranking",
    ),
    stop_after: str = typer.Option(
        "",
        help="stop once this step is played (registration, administration, skd, skd ranking, "
        "skb, final ranking, filing, nip + appointment); --resume ROUND plays on",
    ),
    resume: str = typer.Option("", help="play on a run that stopped (its round id)"),
    window_days: float = typer.Option(
        14.0, min=0.05, max=60.0, help="each window's length on the round's calendar"
    ),
    page_size: int = typer.Option(
        0, min=0, max=10_000, help="journeys per broadcast page (round file); 0: its default, 500"
    ),
    fold_at: int = typer.Option(
        0,
        min=0,
        max=500,
        help="page references a formasi carries before it folds them (round file); 0: its "
        "default, 64; small values play the folding at small sizes",
    ),
    keep_stack: bool = KEEP,
):
    """One formasi with many applicants, end to end; the largest history of any run.

    A run too long for one sitting stops after a step (--stop-after) and plays on later
    (--resume): each run keeps its own data dir under out/bench-rounds/ROUND, and its windows
    stay open for --window-days each, so the stack can be stopped in between.
    """
    from bench.rounds import STEPS

    if stop_after and stop_after not in STEPS[:-1]:
        raise typer.BadParameter(
            f"{stop_after!r} is not a step to stop after (one of {', '.join(STEPS[:-1])})",
            param_hint="--stop-after",
        )
    if resume:
        run = load_big_formasi_run(resume)
        console.print(
            f"resuming {resume}: {run['size']} applicants, quota {run['quota']}, seed {run['seed']}, "
            f"{'to the end' if run['to_end'] else 'to SKD ranking'}; played: "
            f"{', '.join(run['done']) or 'nothing yet'} (its options, not this command's)"
        )
    else:
        if fold_at == 1:
            raise typer.BadParameter(
                "an index page needs at least 2 references", param_hint="--fold-at"
            )
        engine = {
            name: value
            for name, value in (("broadcast_page_size", page_size), ("fold_pages_at", fold_at))
            if value
        }
        run = new_big_formasi_run(
            size, quota or max(1, size // 40), seed, to_end, window_days, engine
        )
        save_big_formasi_run(run)
    m = show_machine()

    async def main():
        async with stack(
            keep_stack,
            data_dir=Path(run["data_dir"]),
            task_queue=run["task_queue"],
            fresh=not run["done"] and run["config"] is None,
        ) as ctx:
            fig = await run_big_formasi(ctx, run, concurrency, stop_after or None)
        if fig is not None:
            save("big-formasi", {"machine": m, **fig})

    asyncio.run(main())


@app.command("cache-walk")
def cache_walk(
    levels: str = typer.Option(
        "0,2000,5000,10000",
        help="idle runs in the worker's cache, in rising order, comma-separated",
    ),
    size: int = typer.Option(300, min=10, help="naive journeys played at each level"),
    concurrency: int = typer.Option(32, min=1),
    thrash_cache: int = typer.Option(
        8, min=1, help="the last row's cache: fewer runs than are in flight, so tasks replay"
    ),
    full: str = typer.Option(
        "2000,10000", help="caches played full of idle runs (comma-separated; empty for none)"
    ),
    keep_stack: bool = KEEP,
):
    """What each cached run costs the others' workflow tasks (the SDK core walks its cache), and
    what a cache too small for the runs in flight costs."""
    from bench.cache_walk import run_cache_walk

    try:
        counts = [int(x) for x in levels.split(",")]
    except ValueError:
        raise typer.BadParameter(
            f"{levels!r} is not a comma-separated list of whole numbers", param_hint="--levels"
        ) from None
    if not counts or any(c < 0 for c in counts) or counts != sorted(counts):
        raise typer.BadParameter(
            f"{levels!r}: the levels must be whole numbers >= 0 in rising order",
            param_hint="--levels",
        )
    try:
        fulls = [int(x) for x in full.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{full!r} is not a comma-separated list of whole numbers", param_hint="--full"
        ) from None
    if any(c < 1 for c in fulls):
        raise typer.BadParameter(f"{full!r}: each cache holds at least 1 run", param_hint="--full")
    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            save(
                "cache-walk",
                {
                    "machine": m,
                    **await run_cache_walk(ctx, counts, size, concurrency, thrash_cache, fulls),
                },
            )

    asyncio.run(main())


@app.command("page-payloads")
def page_payloads(
    quota: int = typer.Option(10_000, min=1, help="formasi quota (the SKD cut is 3 x quota)"),
    size: int = typer.Option(100_000, min=1, help="applicants answering the SKD close"),
    page: int = typer.Option(500, min=1, max=10_000, help="broadcast page size"),
    seed: int = 17,
    keep_stack: bool = KEEP,
):
    """Issue 17 item 1: each payload of a formasi's selection kept as pages, against the same
    payload carried whole (the design before paging); the largest must stay under 256 KiB."""
    from bench.pages import run_page_payloads

    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            fig = await run_page_payloads(ctx, quota, size, page, seed)
        rows = fig.pop("rows")
        print_table("page-payloads", fig)
        from rich.table import Table

        table = Table(title=f"encoded payloads (quota {quota:,}, {size:,} applicants)")
        for col in ("payload", "carried whole", "kept as pages"):
            table.add_column(col, justify="left" if col == "payload" else "right")
        for what, before, after in rows:
            table.add_row(
                what,
                "-" if before is None else f"{before / 1024:,.1f} KiB",
                f"{after / 1024:,.1f} KiB",
            )
        console.print(table)
        save("page-payloads", {"machine": m, **fig, "rows": rows})

    asyncio.run(main())


@app.command()
def optimalisasi(
    seats: int = typer.Option(300, min=2, max=20_000, help="empty seats offered in optimalisasi"),
    accept: float = typer.Option(
        0.8, min=0.0, max=1.0, help="share of offers accepted; the rest are declined"
    ),
    answer_rate: float = typer.Option(20.0, min=0.1, help="answers per second"),
    history_budget: int = typer.Option(
        None,
        min=1,
        max=45_000,
        help="the round's optimalisasi_history_budget (default: the round file's default, 40,000)",
    ),
    offers_per_run: int = typer.Option(
        None,
        min=1,
        max=100_000,
        help="the round's optimalisasi_offers_per_run (default: the round file's default, 1,000)",
    ),
    fold_pages_at: int = typer.Option(
        None,
        min=2,
        max=500,
        help="the round's fold_pages_at (default: the round file's default, 64)",
    ),
    concurrency: int = 32,
    seed: int = 23,
    keep_stack: bool = KEEP,
):
    """Optimalisasi with many empty seats: the round's events, allocations, decisions and state
    per offer (what grows with the seats a round offers)."""
    from bench.optimalisasi import run_optimalisasi

    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            with CpuMeter(ctx.settings) as cpu:
                fig = await run_optimalisasi(
                    ctx,
                    OUT / "rounds",
                    seats,
                    accept,
                    answer_rate,
                    seed,
                    concurrency,
                    history_budget,
                    offers_per_run,
                    fold_pages_at,
                )
            fig.pop("_offers")
            fig.update({"elapsed in all": f"{cpu.elapsed:.1f} s", **cpu.figures()})
            fig["load average at end (1/5 min)"] = "{:.2f} / {:.2f}".format(*os.getloadavg()[:2])
            print_table("optimalisasi", fig)
            save("optimalisasi", {"machine": m, **fig})

    asyncio.run(main())


@app.command()
def outage(
    size: int = typer.Option(30, min=1, max=2_000, help="applicants registered"),
    down: float = typer.Option(
        900.0, min=10.0, max=6 * 3600.0, help="seconds PostgreSQL stays down"
    ),
    seed: int = 23,
    record: Path = typer.Option(
        None,
        help="write the round's histories, and the payload key that decodes them, into this "
        "directory (for tests/histories: the run gets a data directory and keys of its own)",
    ),
    keep_stack: bool = KEEP,
):
    """A read-model outage: the events it adds to each journey's history, the time queries take
    meanwhile, and how soon every row is written once PostgreSQL is back."""
    import shutil
    import tempfile

    from bench.outage import run_outage

    m = show_machine()
    data_dir = Path(tempfile.mkdtemp(prefix="casn-outage-")) if record else DATA_DIR

    async def main():
        async with stack(keep_stack, data_dir=data_dir) as ctx:
            fig = await run_outage(ctx, OUT / "rounds", size, down, seed)
            round_id = fig.pop("_round_id")
            if record:
                from auditing.history import round_histories
                from scripts.record_histories import write_histories

                record.mkdir(parents=True, exist_ok=True)
                paths = write_histories(await round_histories(ctx.api.client, round_id), record)
                shutil.copy(data_dir / "keys" / "payload_key.b64", record / "payload_key.b64")
                console.print(f"wrote {len(paths)} histories and payload_key.b64 to {record}")
            fig["load average at end (1/5 min)"] = "{:.2f} / {:.2f}".format(*os.getloadavg()[:2])
            print_table("outage", fig)
            save("outage", {"machine": m, **fig})

    try:
        asyncio.run(main())
    finally:
        if record and not keep_stack:
            shutil.rmtree(data_dir, ignore_errors=True)


@app.command("history-sizes")
def history_sizes(
    round_id: str = typer.Argument(..., help="a round the bench played, e.g. BENCH-F-..."),
    sample: int = typer.Option(
        30, min=1, help="journey histories to read for each way a journey ended (and running)"
    ),
):
    """Events and largest event per history of a round: every formasi and round run, and a sample
    of journeys for each terminal code (and of those still running).

    A big-formasi run is found in its own data dir (out/bench-rounds/ROUND); other rounds in the
    bench's shared one. A stack that is running (a bench still playing the round, with the same
    CASN_BENCH_PORT_OFFSET) is read as it is and left running; one this command had to start is
    stopped again."""
    from runtime.app import open_app
    from runtime.embedded import stop_stack

    m = show_machine()
    settings = inspect_settings(round_id)

    async def main():
        app_ = await open_app(settings)
        pool = await open_pool(app_.stack.database_url, max_size=2)
        try:
            sizes = await round_history_sizes(app_.client, pool, round_id, sample)
            if not sizes:
                raise typer.BadParameter(
                    f"no workflow of round {round_id!r} on the bench stack", param_hint="ROUND_ID"
                )
            fig = {}
            for kind, runs in sorted(sizes.items()):
                fig[f"{kind}: runs read"] = len(runs)
                fig[f"{kind}: most events in a run"] = max(r[1] for r in runs)
                biggest = max(runs, key=lambda r: r[2])
                fig[f"{kind}: largest event"] = f"{biggest[2] / 1024:.1f} KiB ({biggest[3]})"
            fig["largest event of every history read"] = (
                f"{largest_event_kib(sizes)} (the aim: under 256 KiB)"
            )
            print_table(f"histories of {round_id}", fig)
            save("history-sizes", {"machine": m, "round": round_id, **fig})
        finally:
            await pool.close()
            for line in stop_stack(settings, only=app_.stack):
                console.print(f"[dim]{line}[/]")

    asyncio.run(main())


@app.command()
def profile(
    size: int = typer.Option(200, help="applicants of the profiled journeys run"), rate: int = 50
):
    """Run `journeys` under py-spy and show where the worker process spends its time."""
    from bench.profile_summary import summarise

    OUT.mkdir(parents=True, exist_ok=True)
    raw = OUT / "profile-journeys.txt"
    spy = Path(sys.executable).parent / "py-spy"
    subprocess.run(
        [
            str(spy),
            "record",
            "--rate",
            str(rate),
            "--format",
            "raw",
            "-o",
            str(raw),
            "--",
            sys.executable,
            str(ROOT / "bench.py"),
            "journeys",
            "--size",
            str(size),
        ],
        cwd=ROOT,
        check=True,
    )
    total, active, buckets = summarise(raw)
    print_table(
        f"where the worker process spends its time ({active} active of {total} samples; {raw})",
        [(name, f"{n / active:.0%}") for name, n in buckets],
    )


# --- the worker fleet (issue 17 item 4) ---------------------------------------------------------------


@asynccontextmanager
async def bare_stack(keep: bool):
    """The bench's embedded stack with no worker in this process: the workers are processes."""
    from runtime.app import open_app
    from runtime.embedded import stop_stack

    settings = bench_settings(DATA_DIR, task_queue=f"casn-bench-{uuid.uuid4().hex[:6]}")
    fresh_temporal(settings)
    ctx = await open_app(settings)
    pool = await open_pool(ctx.stack.database_url, max_size=10)
    try:
        yield ctx, pool
    finally:
        await pool.close()
        if not keep:
            for line in stop_stack(settings):
                console.print(f"[dim]{line}[/]")


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or any(c < 1 or c > 16 for c in counts):
        raise typer.BadParameter(
            f"{text!r}: comma-separated worker counts, each 1..16", param_hint="--workers"
        )
    return counts


@app.command()
def fleet(
    size: int = typer.Option(100, min=10, help="applicants per round (one round per fleet size)"),
    workers: str = typer.Option("1,2,4", help="worker processes of each run, comma-separated"),
    recovery_size: int = typer.Option(
        300, min=10, help="applicants in SKB when the worker running the SKB close is killed"
    ),
    recovery: bool = typer.Option(True, "--recovery/--no-recovery"),
    fleet_runs: bool = typer.Option(True, "--fleet/--no-fleet", help="the 1, 2, 4 worker runs"),
    seed: int = 2027,
    concurrency: int = 32,
    keep_stack: bool = KEEP,
):
    """Journeys/s and CPU per journey with 1, 2 and 4 `worker.py run` processes against one server,
    then recovery: SIGKILL of the worker running the SKB close, against the same close unharmed."""
    from bench.fleet import close_skb, run_fleet

    counts = _worker_counts(workers)
    m = show_machine()

    async def main():
        async with bare_stack(keep_stack) as (ctx, pool):
            key = ctx.keys.pseudonym_key
            rows = (
                await run_fleet(
                    ctx.client, pool, key, ctx.settings, OUT, counts, size, seed, concurrency
                )
                if fleet_runs
                else []
            )
            if rows:
                from rich.table import Table

                table = Table(
                    title=f"full journeys by worker processes ({size} applicants a round)"
                )
                for col in [
                    "workers",
                    "journeys",
                    "elapsed",
                    "journeys/s",
                    "vs 1 worker",
                    "server CPU/journey",
                    "worker CPU/journey",
                    "server cores",
                    "load at start",
                ]:
                    table.add_column(col, justify="right")
                base = rows[0]["journeys_per_s"]
                for r in rows:
                    table.add_row(
                        str(r["workers"]),
                        f"{r['journeys']} ({r['ended']} ended)",
                        f"{r['elapsed_s']:.1f} s",
                        f"{r['journeys_per_s']:.2f}",
                        f"{r['journeys_per_s'] / base:.2f}",
                        f"{r['server_cpu_ms_per_journey']:.0f} ms",
                        f"{r['worker_cpu_ms_per_journey']:.0f} ms",
                        f"{r['server_cores']:.2f}",
                        f"{r['load_1min_at_start']:.2f}",
                    )
                console.print(table)
            figures = {"machine": m, "fleet": rows}
            if recovery:
                args = (ctx.client, pool, key, ctx.settings, OUT, recovery_size, seed, concurrency)
                unharmed = await close_skb(*args, kill=False)
                killed = await close_skb(*args, kill=True)
                print_table(
                    f"SIGKILL of the worker running the SKB close ({recovery_size} applicants, "
                    "2 workers)",
                    {
                        "journeys in SKB": killed["journeys in SKB"],
                        "close -> kill": f"{killed['close -> kill']:.2f} s",
                        "kill -> page started on the other worker (target < 15 s)": (
                            f"{killed['kill -> page started on the other worker']:.1f} s"
                        ),
                        "kill -> page done": f"{killed['kill -> page done']:.1f} s",
                        "close -> every journey out of SKB, killed": (
                            f"{killed['close -> every journey out of SKB']:.1f} s"
                        ),
                        "the same, no kill (same run)": (
                            f"{unharmed['close -> every journey out of SKB']:.1f} s"
                        ),
                        "stall (killed - no kill)": f"{killed['close -> every journey out of SKB'] - unharmed['close -> every journey out of SKB']:.1f} s",
                    },
                )
                figures |= {"recovery": killed, "recovery_baseline": unharmed}
            figures["load average at end"] = os.getloadavg()[:2]
            console.print(
                f"load average at end (1/5 min): {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f}"
            )
            save("fleet", figures)

    asyncio.run(main())


@app.command()
def chaos(
    size: int = typer.Option(200, min=5, max=5_000, help="applicants registered"),
    kills: str = typer.Option(
        "temporal,postgres,worker", help="what to SIGKILL at each point: temporal, postgres, worker"
    ),
    points: str = typer.Option(
        "registration,skd-close,final,nip",
        help="where: registration (burst), skd-close, final (SKB close: final ranking, "
        "optimalisasi), nip (filing burst: NIP issuance)",
    ),
    down: float = typer.Option(2.0, min=0.0, max=600.0, help="seconds a killed server stays dead"),
    durability: int = typer.Option(
        10,
        min=0,
        help="trials of the durability probe (0: none): SIGKILL of the dev server "
        "amid acknowledged updates and signals, each looked for after the restart",
    ),
    plays: bool = typer.Option(True, "--plays/--no-plays", help="the two plays of the round"),
    quota: int = typer.Option(
        None, min=1, help="every formasi's quota (default: the example's): more NIPs to issue"
    ),
    seed: int = 31,
    keep_stack: bool = KEEP,
):
    """The same round twice, the second time with the Temporal server, PostgreSQL and a worker
    SIGKILLed at chosen points and restarted on the same data: outcomes per applicant compared,
    the audit run, duplicates and losses counted."""
    from bench.chaos import durability_probe, environment_facts, figures, parse_plan, run_chaos

    try:
        plan = parse_plan(kills, points)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    m = show_machine()

    async def main():
        async with bare_stack(keep_stack) as (ctx, pool):
            print_table("chaos: the stack", environment_facts(ctx.settings))
            fig: dict = {}
            if durability:
                fig |= await durability_probe(ctx.client, ctx.settings, durability)
                print_table("chaos: durability of acknowledged writes", fig)
            if plays:
                unharmed, killed, supervised = await run_chaos(
                    ctx.client, pool, ctx.keys.pseudonym_key, ctx.settings, OUT, size, plan, down,
                    seed, quota=quota,
                )  # fmt: skip
                fig |= figures(unharmed, killed, supervised)
            fig["load average at end (1/5 min)"] = "{:.2f} / {:.2f}".format(*os.getloadavg()[:2])
            print_table(f"chaos ({size} applicants; kills {kills} at {points})", fig)
            save("chaos", {"machine": m, **fig})

    asyncio.run(main())


# The same-run controls of `cache-memory`: (label, no-op activities before the first update, runner
# of bench.fleet.BARE_RUNNERS). The naive journey is `all`'s bare baseline; the two that only wait
# are what the SDK holds for a cached run, with its sandbox as the worker runs it and with none.
# The naive journey waits for its first report with the first of its activities done (2 of 12:
# bench/baseline_wf.py `spread`); the same workflow with 16 and 64 activities has 2 and 8 done.
# Together they part what a cached run costs by sandbox and by the commands its history holds.
CACHE_CONTROLS = (
    ("naive journey, SDK sandbox", JOURNEY_SIDE_EFFECTS, "stock"),
    ("a run with 2 activities done, the worker's sandbox", 2 * (JOURNEY_UPDATES + 1), "project"),
    ("a run with 8 activities done, the worker's sandbox", 8 * (JOURNEY_UPDATES + 1), "project"),
    ("a run that only waits, the worker's sandbox", 0, "project"),
    ("a run that only waits, no sandbox", 0, "none"),
)


@app.command("status-views")
def status_views(
    size: int = typer.Option(500, min=10, help="applicants whose status is read"),
    reads: int = typer.Option(3, min=1, help="reads of each applicant's status per phase"),
    concurrency: int = typer.Option(32, min=1, help="reads in flight"),
    seed: int = 2027,
    keep_stack: bool = KEEP,
):
    """Status reads per second and CPU per read: queries against the status cache, for running
    journeys and for ended ones, in the same run."""
    from bench.status_views import run_status_views

    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            return await run_status_views(ctx, OUT / "rounds", size, reads, concurrency, seed)

    r = asyncio.run(main())
    rows: dict[str, str] = {"applicants / reads per phase": f"{r['applicants']} / {r['reads']}"}
    base: dict[str, float] = {}
    for name, ph in r["phases"].items():
        cpu, n = ph["cpu"], r["reads"]
        per = {k: 1000 * v / n for k, v in cpu.items()}
        total = per["worker"] + per["temporal"] + per["postgres"]
        kind = name.split(",")[0]
        base.setdefault(kind, total)  # the query phase of the same journeys comes first
        cache = ph["cache"]
        rows[name] = (
            f"{n / ph['elapsed']:.0f} reads/s; CPU per read worker+driver {per['worker']:.2f} / "
            f"server {per['temporal']:.2f} / PostgreSQL {per['postgres']:.2f} ms"
            + (
                f" ({total / base[kind]:.2f} x the queries'); cache hits {cache.hits}, "
                f"queries {cache.asked}"
                if cache is not None
                else ""
            )
        )
    rows["load average at end (1/5 min)"] = "{:.2f} / {:.2f}".format(*os.getloadavg()[:2])
    print_table("applicants' status reads, with and without the status cache", rows)
    save(
        "status-views",
        {
            "machine": m,
            "round": r["round"],
            "phases": {
                k: {"elapsed": v["elapsed"], "cpu": v["cpu"]} for k, v in r["phases"].items()
            },
        },
    )


@app.command("public-pages")
def public_pages(
    rows: str = typer.Option(
        "10000,100000", help="rows of each publication measured, comma-separated"
    ),
    repeat: int = typer.Option(6, min=1, help="requests per median (half above 20,000 rows)"),
    seed: int = 2027,
    keep_stack: bool = KEEP,
):
    """One request for a public announcement (page, .json, .csv): the body read, parse and render
    as the route did them inline, and through the gateway with the answer cache off and on."""
    from bench.public_pages import run_public_pages
    from bench.rounds import bench_config

    sizes = [int(x) for x in rows.split(",") if x.strip()]
    m = show_machine()

    async def main():
        async with stack(keep_stack) as ctx:
            config, _ = bench_config("BENCH-PUB", datetime.now(UTC), out_dir=OUT / "rounds")
            return await run_public_pages(ctx, config, sizes, repeat, seed)

    figures = asyncio.run(main())
    ms = lambda s: f"{1000 * s:,.1f} ms"  # noqa: E731
    for f in figures:
        print_table(
            f"a public announcement of {f['rows']:,} rows (body {f['body_bytes'] / 2**20:.1f} MiB)",
            {
                "before: body read from PostgreSQL": ms(f["db_read"]),
                "before: parse into a Publication": ms(f["parse"]),
                "before: reads per request (late endings, revocations, list)": ms(
                    f["per_request_reads"]
                ),
                **{
                    f"before: render {k} ({f[k + '_bytes'] / 2**20:.1f} MiB)": ms(f[f"render_{k}"])
                    for k in ("page", "json", "csv")
                },
                "before: event loop held by one page request (inline)": ms(
                    f["loop_held_inline_page"]
                ),
                **{
                    f"cache off: {k} per request / event loop held at most": (
                        f"{ms(f[k + '_cache_off'])} / {ms(f['loop_held_gateway_' + k])}"
                    )
                    for k in ("page", "json", "csv")
                },
                **{
                    f"cache on: {k} first / again / 304": (
                        f"{ms(f[k + '_cache_first'])} / {ms(f[k + '_cache_hit'])} / "
                        f"{ms(f[k + '_304'])}"
                    )
                    for k in ("page", "json", "csv")
                },
                "the gateway's answer process started in (once)": ms(f["worker_start"]),
                "cache on: bytes kept (page + json + csv)": f"{f['cache_bytes'] / 2**20:.1f} MiB",
            },
        )
    save("public-pages", {"machine": m, "sizes": figures})


def _per_run(points: list[dict], parts: list[int], third: int, *key: str) -> float:
    """A memory figure's growth over one third of a cache-memory run (1: the second, the
    untraced one; 2: the last), per run it added; `key` is the path to the figure in a snapshot."""

    def figure(point: dict) -> float:
        for k in key:
            point = point[k]
        return point  # type: ignore[return-value]

    before, after = points[third], points[third + 1]
    return (figure(after) - figure(before)) / (parts[third] - parts[third - 1])


def _malloc_rows(points: list[dict], parts: list[int]) -> str:
    """The C allocator's growth over the second third, per run: in use / freed but kept."""
    grew = [_per_run(points, parts, 1, "malloc", k) / 1024 for k in ("in_use", "free")]
    return f"{grew[0]:.1f} / {grew[1]:.1f} KB"


@app.command("cache-memory")
def cache_memory(
    size: int = typer.Option(900, min=30, help="journeys held in the worker's cache"),
    trace: bool = typer.Option(
        True, "--trace/--no-trace", help="tracemalloc over the last third: where the bytes are"
    ),
    seed: int = 2027,
    concurrency: int = typer.Option(8, min=1, help="registrations and reports in flight"),
    control: bool = typer.Option(
        True, "--control/--no-control", help="the naive design's journeys, measured the same way"
    ),
    keep_stack: bool = KEEP,
):
    """Memory of one worker process per journey in its sticky cache (RSS, and tracemalloc), and
    the same for the naive design's journey in the same run."""
    from bench.fleet import run_bare_cache_memory, run_cache_memory

    m = show_machine()

    async def main():
        async with bare_stack(keep_stack) as (ctx, pool):
            ours = await run_cache_memory(
                ctx.client,
                pool,
                ctx.keys.pseudonym_key,
                ctx.settings,
                OUT,
                size,
                seed,
                concurrency,
                trace,
            )
            controls = {}
            for label, activities, runner in CACHE_CONTROLS if control else ():
                controls[label] = await run_bare_cache_memory(
                    ctx.client,
                    ctx.settings,
                    OUT,
                    ours["journeys"],
                    concurrency,
                    activities,
                    JOURNEY_UPDATES,
                    runner,
                )
            return ours | {"controls": controls}

    r = asyncio.run(main())
    p, parts, n = r["points"], r["parts"], r["journeys"]
    rows: dict[str, str] = {}
    for point in p:
        rows[point["label"]] = (
            f"RSS {point['rss'] / 2**20:.1f} MiB, cached {point['cached_workflows']}"
            + (f", traced heap {point['traced'] / 2**20:.2f} MiB" if "traced" in point else "")
        )
    ours_kb = _per_run(p, parts, 1, "rss") / 1024
    rows["RSS per cached journey at admin_check (second third, untraced)"] = f"{ours_kb:.1f} KB"
    rows["objects the garbage collector tracks, per cached journey (second third)"] = (
        f"{_per_run(p, parts, 1, 'gc_objects'):.0f}"
    )
    if p[1].get("malloc") and p[2].get("malloc"):
        rows["C allocator per cached journey at admin_check (second third): in use / free"] = (
            _malloc_rows(p, parts)
        )
    if r["traced"]:
        heap = _per_run(p, parts, 2, "traced")
        large = _per_run(p, parts, 2, "traced_large")
        rows["Python heap per cached journey at admin_check (last third)"] = f"{heap / 1024:.1f} KB"
        rows["of which objects of 512 B or less (CPython's arenas) / larger (the C allocator)"] = (
            f"{(heap - large) / 1024:.1f} / {large / 1024:.1f} KB"
        )
        if p[2].get("malloc") and p[3].get("malloc"):
            # What the C allocator holds beyond CPython's larger objects and tracemalloc's own
            # tables: the SDK core's (Rust) state for the run, and any other native library's.
            native = (
                _per_run(p, parts, 2, "malloc", "in_use")
                - _per_run(p, parts, 2, "tracemalloc_own")
                - large
            )
            rows["C allocator in use outside CPython per journey (the SDK core; last third)"] = (
                f"{native / 1024:.1f} KB"
            )
        rows["Python heap added per journey by its SKD report (all journeys)"] = (
            f"{(p[4]['traced'] - p[3]['traced']) / n / 1024:.1f} KB"
        )
    for label, c in r["controls"].items():
        cp, cparts = c["points"], c["parts"]
        kb = _per_run(cp, cparts, 1, "rss") / 1024
        rows[f"{label}: RSS per cached run (second third of {c['workflows']})"] = (
            f"{kb:.1f} KB; ours {ours_kb / kb:.2f} x, {ours_kb - kb:+.1f} KB"
        )
        rows[f"{label}: objects the collector tracks, per cached run"] = (
            f"{_per_run(cp, cparts, 1, 'gc_objects'):.0f}"
        )
        if cp[1].get("malloc") and cp[2].get("malloc"):
            rows[f"{label}: C allocator per cached run, in use / free"] = _malloc_rows(cp, cparts)
    rows["load average at end (1/5 min)"] = "{:.2f} / {:.2f}".format(*os.getloadavg()[:2])
    print_table(f"memory of one worker per cached journey ({n} journeys)", rows)
    if "gc_types" in p[1] and "gc_types" in p[2]:
        grew = {
            k: (p[2]["gc_types"][k] - p[1]["gc_types"].get(k, 0)) / (parts[1] - parts[0])
            for k in p[2]["gc_types"]
        }
        console.print("objects the collector tracks, added per cached journey (second third):")
        for name, per in sorted(grew.items(), key=lambda kv: -kv[1])[:20]:
            console.print(f"  {per:6.1f}  {name}")
    if r["traced"]:
        added = parts[2] - parts[1]
        console.print("largest heap growth over the last third (tracemalloc, by traceback):")
        for g in p[3].get("growth_tracebacks", [])[:10]:
            where = " <- ".join(reversed(g["where"][-4:]))
            console.print(f"  {g['size_diff'] / added:7.0f} B/journey  {where}")
    save("cache-memory", {"machine": m, **r})


def _stop_once(signum: int, frame: object) -> None:
    """The first SIGTERM stops the bench the way Ctrl-C does: as a SIGINT, which asyncio turns
    into cancelling the main task, so every `finally` runs on a working event loop (a
    KeyboardInterrupt raised here instead lands anywhere, and the bench hung while asyncio
    cancelled its tasks, its servers still running). Later SIGTERMs are ignored: `timeout`
    passes its own on to a bench that was just sent one, and a second SIGINT would interrupt
    the stop itself."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.kill(os.getpid(), signal.SIGINT)


if __name__ == "__main__":
    # SIGTERM (timeout, a supervisor) stops a bench the way Ctrl-C does, so that the stack's
    # `finally` stops the servers it started; by default it would end the process at once.
    signal.signal(signal.SIGTERM, _stop_once)
    run_and_end(app)
