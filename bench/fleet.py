"""Issue 17 item 4: a fleet of worker processes against one embedded Temporal server.

- `run_fleet`: full journeys with 1, 2 and 4 `worker.py run` processes, each on a task queue of
  its own, one after the other on the same stack: journeys/s, and the CPU per journey of the
  Temporal server and of the workers.
- `run_recovery`: two workers; the one running the SKB close's broadcast page is frozen the
  moment it starts the page and SIGKILLed while the page is unfinished. The stall: from the kill
  until the other worker has started the page again, and until the page is done; against the same
  close without a kill, in the same run.
- `run_cache_memory` (with `python -m bench.fleet memory-worker`): resident memory and Python
  allocations of one worker process per journey held in its sticky cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import gc
import json
import os
import random
import signal
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from temporalio.client import Client, WorkflowHandle

from bench.common import ROOT, _cpu, temporal_pid
from bench.rounds import RoundDriver, applicants, bench_config, new_round_id
from client.api import RecruitmentApi
from domain.protocol import BROADCAST
from runtime.process import run_and_end
from runtime.settings import Settings
from workflows.ids import formasi_workflow_id

STARTUP_TIMEOUT = 60.0
TRACE_FRAMES = 8  # frames kept per allocation by tracemalloc in the memory worker


def worker_env(settings: Settings, task_queue: str, **extra: str) -> dict[str, str]:
    """The environment of a worker process on the bench stack and `task_queue`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASN_")}
    env.update(
        CASN_DATA_DIR=str(settings.data_dir.resolve()),
        CASN_TEMPORAL_PORT=str(settings.temporal_port),
        CASN_TEMPORAL_UI_PORT=str(settings.temporal_ui_port),
        CASN_POSTGRES_PORT=str(settings.postgres_port),
        CASN_TASK_QUEUE=task_queue,
        CASN_METRICS_PORT="0",
        CASN_LOG_LEVEL="WARNING",
        CASN_LOG_FORMAT="json",
        **extra,
    )
    return env


@dataclass
class Fleet:
    """Worker processes on one task queue; their logs under `log_dir`."""

    settings: Settings
    task_queue: str
    log_dir: Path
    command: list[str] = field(
        default_factory=lambda: [sys.executable, str(ROOT / "worker.py"), "run"]
    )
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, count: int) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            n = len(self.procs)
            log = (self.log_dir / f"{self.task_queue}-{n}.log").open("wb")
            self.procs.append(
                subprocess.Popen(
                    self.command,
                    cwd=ROOT,
                    env=worker_env(self.settings, self.task_queue, **self.extra_env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    async def polling(self, client: Client, count: int) -> None:
        """Wait until `count` workers poll the task queue for workflow tasks."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        deadline = time.monotonic() + STARTUP_TIMEOUT
        pids = {str(p.pid) for p in self.procs if p.poll() is None}
        while True:
            resp = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=self.task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            seen = {p.identity.split("@")[0] for p in resp.pollers} & pids
            if len(seen) >= count:
                return
            dead = [p.pid for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(
                    f"bench fleet: {len(seen)} of {count} workers polling {self.task_queue} "
                    f"(exited: {dead}); see {self.log_dir}"
                )
            await asyncio.sleep(0.2)

    def cpu(self) -> float:
        """CPU seconds of the fleet's live processes so far."""
        total = 0.0
        for p in self.procs:
            try:
                total += _cpu(psutil.Process(p.pid))
            except psutil.Error:
                pass
        return total

    def stop(self) -> None:
        """SIGTERM each live worker (they drain), then wait for it."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def server_cpu(settings: Settings) -> float:
    pid = temporal_pid(settings)
    try:
        return _cpu(psutil.Process(pid)) if pid else 0.0
    except psutil.Error:
        return 0.0


# --- journeys/s with 1, 2, 4 workers ---------------------------------------------------------------


async def run_fleet(
    client: Client,
    pool: Any,
    pseudonym_key: bytes,
    settings: Settings,
    out: Path,
    workers: list[int],
    size: int,
    seed: int,
    concurrency: int,
) -> list[dict]:
    """One full round of `size` journeys per fleet size, each on a task queue of its own."""
    rows = []
    for count in workers:
        queue = f"{settings.task_queue}-fleet{count}-{uuid.uuid4().hex[:4]}"
        fleet = Fleet(settings, queue, out / "fleet-logs")
        fleet.start(count)
        try:
            await fleet.polling(client, count)
            api = RecruitmentApi(client, queue, pseudonym_key)
            round_id = new_round_id(f"W{count}")
            config, path = bench_config(
                round_id, datetime.now(UTC), quota=size, out_dir=out / "rounds"
            )
            await api.create_round(path, config.reporters["operator"][0])
            driver = RoundDriver(api, pool, config, random.Random(seed), concurrency)
            regs = applicants(config, size, seed)
            load = os.getloadavg()[0]
            t0, s0, w0 = time.monotonic(), server_cpu(settings), fleet.cpu()
            counts = await driver.play_full(regs)
            elapsed = time.monotonic() - t0
            server, worker = server_cpu(settings) - s0, fleet.cpu() - w0
        finally:
            fleet.stop()
        n = len(driver.ids)
        rows.append(
            {
                "workers": count,
                "journeys": n,
                "ended": counts["ended"],
                "elapsed_s": elapsed,
                "journeys_per_s": n / elapsed,
                "server_cpu_ms_per_journey": 1000 * server / n,
                "worker_cpu_ms_per_journey": 1000 * worker / n,
                "server_cores": server / elapsed,
                "worker_cores": worker / elapsed,
                "load_1min_at_start": load,
                "refused": len(driver.refused),
            }
        )
    return rows


# --- recovery from a SIGKILL mid-broadcast ----------------------------------------------------------


async def freeze_and_kill(
    formasi: WorkflowHandle, fleet: Fleet, timeout: float
) -> tuple[float, str, int]:
    """SIGKILL the worker holding an unfinished broadcast page: (time of the kill, the page's
    activity id, the killed pid). It is frozen (SIGSTOP) the moment a page shows as started on it,
    and killed only if the page is still pending then, so the kill lands mid-page."""
    pids = {p.pid: p for p in fleet.procs if p.poll() is None}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for a in (await formasi.describe()).raw_description.pending_activities:
            pid = int(a.last_worker_identity.split("@")[0] or 0)
            if a.activity_type.name != BROADCAST.name or pid not in pids:
                continue
            if not a.last_started_time.seconds:
                continue
            os.kill(pid, signal.SIGSTOP)
            still = {
                p.activity_id for p in (await formasi.describe()).raw_description.pending_activities
            }
            if a.activity_id in still:
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
                pids[pid].wait()
                return killed_at, a.activity_id, pid
            os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(0.01)
    raise RuntimeError(f"bench recovery: no broadcast page started on a worker in {timeout:g} s")


async def watch_page(
    formasi: WorkflowHandle, activity_id: str, killed_pid: int
) -> tuple[float, float]:
    """(when the page started again on another worker, when it was done), monotonic."""
    resumed = 0.0
    while True:
        pending = {
            a.activity_id: a for a in (await formasi.describe()).raw_description.pending_activities
        }
        page = pending.get(activity_id)
        now = time.monotonic()
        if page is None:
            return resumed or now, now
        if (
            not resumed
            and page.attempt > 1
            and page.last_started_time.seconds
            and not page.last_worker_identity.startswith(f"{killed_pid}@")
        ):
            resumed = now
        await asyncio.sleep(0.05)


async def close_skb(
    client: Client,
    pool: Any,
    pseudonym_key: bytes,
    settings: Settings,
    out: Path,
    size: int,
    seed: int,
    concurrency: int,
    kill: bool,
) -> dict:
    """A one-formasi round of `size` to SKB results on two workers, then the SKB close, timed from
    the close until every journey has left SKB; with `kill`, one worker dies mid-page."""
    queue = f"{settings.task_queue}-recovery-{uuid.uuid4().hex[:4]}"
    fleet = Fleet(settings, queue, out / "fleet-logs")
    fleet.start(2)
    try:
        await fleet.polling(client, 2)
        api = RecruitmentApi(client, queue, pseudonym_key)
        round_id = new_round_id("K" if kill else "N")
        config, path = bench_config(
            round_id, datetime.now(UTC), quota=size, single_formasi=True, out_dir=out / "rounds"
        )
        await api.create_round(path, config.reporters["operator"][0])
        driver = RoundDriver(api, pool, config, random.Random(seed), concurrency)
        counts = await driver.play_to_skd_ranking(applicants(config, size, seed), strong=True)
        skb = sorted(a for a, s in (await driver.stages()).items() if s == "skb")
        await driver.send_all(driver.skb_jobs(skb))
        formasi = client.get_workflow_handle(formasi_workflow_id(round_id, config.formasi[0].code))
        killer = asyncio.create_task(freeze_and_kill(formasi, fleet, 120)) if kill else None
        closed = time.monotonic()
        await driver.close("skb")
        fig: dict = {"journeys in SKB": len(skb), "after SKD ranking": dict(counts)}
        if killer is not None:
            killed_at, page, pid = await killer
            resumed, done = await watch_page(formasi, page, pid)
            fig |= {
                "close -> kill": killed_at - closed,
                "kill -> page started on the other worker": resumed - killed_at,
                "kill -> page done": done - killed_at,
            }
        await driver.wait(lambda c: c["skb"] == 0, "every journey out of SKB")
        fig["close -> every journey out of SKB"] = time.monotonic() - closed
        await terminate(client, round_id)
        return fig
    finally:
        fleet.stop()


async def terminate(client: Client, round_id: str) -> None:
    """End what is left of a bench round (the recovery run stops after the final ranking)."""
    async for wf in client.list_workflows(
        f"RoundId = '{round_id}' AND ExecutionStatus = 'Running'"
    ):
        await client.get_workflow_handle(wf.id).terminate("bench: measured")


# --- memory per cached journey -----------------------------------------------------------------------


async def run_cache_memory(
    client: Client,
    pool: Any,
    pseudonym_key: bytes,
    settings: Settings,
    out: Path,
    size: int,
    seed: int,
    concurrency: int,
    trace: bool,
) -> dict:
    """Registers `size` applicants in three parts against one instrumented worker process and takes
    its memory after each, then moves every journey on to SKD with its scores and takes it again.

    The RSS growth over the second part, divided by the journeys it added, is the cost of one more
    cached journey at the admin_check stage (imports, warm-up and the round's own workflows fall in
    the first part). tracemalloc starts after the second part (it slows the worker several times
    over, and its own bookkeeping would inflate the RSS): the Python heap that the third part left
    behind, per journey, and where it was allocated."""
    queue = f"{settings.task_queue}-memory-{uuid.uuid4().hex[:4]}"
    report = out / f"memory-{queue}.json"
    fleet = Fleet(
        settings,
        queue,
        out / "fleet-logs",
        command=[sys.executable, "-m", "bench.fleet", "memory-worker", str(report)],
        extra_env={"CASN_WORKER_MAX_CACHED_WORKFLOWS": str(size + 100)},
    )
    fleet.start(1)
    proc = fleet.procs[0]

    def snapshot(label: str):
        return memory_snapshot(proc, report, label)

    try:
        await fleet.polling(client, 1)
        api = RecruitmentApi(client, queue, pseudonym_key)
        round_id = new_round_id("M")
        config, path = bench_config(round_id, datetime.now(UTC), quota=size, out_dir=out / "rounds")
        await api.create_round(path, config.reporters["operator"][0])
        driver = RoundDriver(api, pool, config, random.Random(seed), concurrency)
        driver.timeout = 1200.0
        regs = applicants(config, size, seed)
        third = len(regs) // 3
        points = [await snapshot("round started, no journey")]
        sizes = []
        for part, (lo, hi) in enumerate([(0, third), (third, 2 * third), (2 * third, len(regs))]):
            if part == 2 and trace:
                os.kill(proc.pid, signal.SIGUSR2)  # tracemalloc from here on
                points[-1] = await snapshot(points[-1]["label"])
            await driver.register(regs[lo:hi])
            n = len(driver.ids)
            await driver.wait(lambda c, n=n: c["admin_check"] == n, "registrations")
            sizes.append(n)
            points.append(await snapshot(f"{n} journeys at admin_check"))
        await driver.close("registration")
        await driver.send_all(driver.admin_jobs())
        await driver.close("administration")
        await driver.wait(lambda c: c["skd"] == n, "administration announcement")
        await driver.send_all(driver.skd_jobs(list(driver.ids), strong=True))  # each acknowledged
        points.append(await snapshot(f"{n} journeys in SKD with their scores"))
        await terminate(client, round_id)
    finally:
        fleet.stop()
    return {"journeys": n, "parts": sizes, "traced": trace, "points": points}


async def memory_snapshot(proc: subprocess.Popen, report: Path, label: str) -> dict:
    """Ask the memory worker `proc` for its memory (SIGUSR1) and read what it wrote to `report`."""
    report.unlink(missing_ok=True)
    os.kill(proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not report.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"bench memory: no report from the worker ({label})")
        await asyncio.sleep(0.2)
    return json.loads(report.read_text()) | {"label": label}


async def run_bare_cache_memory(
    client: Client,
    settings: Settings,
    out: Path,
    size: int,
    concurrency: int,
    activities: int,
    updates: int,
    runner: str = "stock",
) -> dict:
    """The same-run control of `run_cache_memory`: the naive design's journey (bench/baseline_wf.py,
    the bare engine of `all`) held in the cache of a worker process of its own, measured the same
    way (RSS over the second third of `size` workflows). `runner` is one of BARE_RUNNERS: "stock"
    (the SDK's default sandbox, as `all`'s bare baseline), "project" (the worker's runner) or
    "none" (no sandbox); with `activities` 0 the workflow only waits: what the SDK itself holds
    for a cached run.

    Each workflow is started and left at rest where the naive journey waits for its first report:
    its first activities done, nothing pending. What a cached run costs the SDK (its Python workflow
    instance, the core's state for the run) with next to no state of its own."""
    queue = f"{settings.task_queue}-bare-memory-{uuid.uuid4().hex[:4]}"
    report = out / f"memory-{queue}.json"
    fleet = Fleet(
        settings,
        queue,
        out / "fleet-logs",
        command=[sys.executable, "-m", "bench.fleet", "memory-worker", str(report), runner],
        extra_env={"CASN_WORKER_MAX_CACHED_WORKFLOWS": str(size + 100)},
    )
    fleet.start(1)
    proc = fleet.procs[0]
    run = uuid.uuid4().hex[:6]
    handles: list[WorkflowHandle] = []
    gate = asyncio.Semaphore(concurrency)

    async def start(i: int) -> WorkflowHandle:
        async with gate:
            return await client.start_workflow(
                "BaselineJourney",
                args=[activities, updates],
                id=f"bench-bare-memory-{run}-{i}",
                task_queue=queue,
            )

    try:
        await fleet.polling(client, 1)
        third = size // 3
        points = [await memory_snapshot(proc, report, "worker started, no workflow")]
        sizes = []
        for lo, hi in [(0, third), (third, 2 * third), (2 * third, size)]:
            part = await asyncio.gather(*(start(i) for i in range(lo, hi)))
            handles.extend(part)
            await at_rest(part)
            sizes.append(len(handles))
            points.append(
                await memory_snapshot(proc, report, f"{len(handles)} naive journeys at rest")
            )
    finally:
        for h in handles:
            with contextlib.suppress(Exception):
                await h.terminate("bench: measured")
        fleet.stop()
    return {"workflows": len(handles), "parts": sizes, "points": points}


async def at_rest(handles: list[WorkflowHandle], timeout: float = 300.0) -> None:
    """Wait until each workflow has no workflow task and no activity pending (it waits)."""
    deadline = time.monotonic() + timeout
    waiting = list(handles)
    while waiting:
        still = []
        for h in waiting:
            raw = (await h.describe()).raw_description
            if raw.pending_activities or raw.HasField("pending_workflow_task"):
                still.append(h)
        waiting = still
        if waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench memory: {len(waiting)} workflows never came to rest")
            await asyncio.sleep(0.5)


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc 2.33 and later): sizes in bytes, summed over all arenas."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


@functools.cache
def _mallinfo2() -> Any:
    """glibc's `mallinfo2`, looked up once; None where the C library is not glibc or too old."""
    try:
        call = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    call.restype = _MallInfo2
    return call


def malloc_figures() -> dict[str, int] | None:
    """What the C allocator holds, from glibc's `mallinfo2()`: `in_use` (allocated chunks of every
    arena, the Rust core's and CPython's objects over 512 B alike), `free` (chunks freed but kept
    by the arenas: fragmentation that RSS counts and nothing uses), `mmapped` (large blocks mapped
    on their own). CPython's own allocator (objects of 512 B or less, in arenas it maps itself) is
    not in these. None where the C library is not glibc or too old to have mallinfo2."""
    call = _mallinfo2()
    if call is None:
        return None
    info = call()
    return {"in_use": info.uordblks, "free": info.fordblks, "mmapped": info.hblkhd}


def traced_split(snap: tracemalloc.Snapshot) -> int:
    """Bytes of the traced Python allocations over 512 B: those CPython takes from the C allocator
    (smaller ones come from its own arenas), so that malloc's `in_use` can be parted into CPython's
    and the rest of the process's (the SDK core's)."""
    return sum(t.size for t in snap.traces if t.size > 512)


def type_census(objects: list) -> dict[str, int]:
    """The objects the garbage collector tracks, counted by type (module and name): two snapshots'
    difference says what each cached run adds to a full collection's walk."""
    return Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)


def protobuf_census(objects: list) -> dict[str, int]:
    """Live protobuf messages the collector tracks, by type (most first): with upb a message that is
    part of a larger one keeps that whole message's memory, outside the Python heap, alive."""
    from google.protobuf.message import Message

    seen: dict[str, int] = {}
    for o in objects:
        if isinstance(o, Message):
            name = type(o).DESCRIPTOR.full_name
            seen[name] = seen.get(name, 0) + 1
    return dict(sorted(seen.items(), key=lambda kv: -kv[1])[:15])


def memory_report(path: Path, worker: Any, baseline: list) -> None:
    """Write the worker's memory, after a full collection, to `path` (then renamed into place)."""
    gc.collect()
    rss = psutil.Process().memory_info().rss
    cached = len(getattr(getattr(worker, "_workflow_worker", None), "_running_workflows", {}) or {})
    objects = gc.get_objects()
    doc: dict[str, Any] = {
        "rss": rss,
        "malloc": malloc_figures(),
        "cached_workflows": cached,
        "gc_objects": len(objects),
        "gc_types": type_census(objects),
        "protobuf_messages": protobuf_census(objects),
    }
    del objects
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        doc["traced"] = sum(s.size for s in snap.statistics("filename"))
        doc["traced_large"] = traced_split(snap)
        doc["tracemalloc_own"] = tracemalloc.get_tracemalloc_memory()
        doc["by_file"] = [
            (
                s.traceback[0].filename.replace(str(ROOT), "").split("site-packages/")[-1],
                s.size,
                s.count,
            )
            for s in snap.statistics("filename")[:40]
        ]
        if baseline:
            diff = snap.compare_to(baseline[-1], "traceback")[:12]
            doc["growth_tracebacks"] = [
                {
                    "size_diff": d.size_diff,
                    "count_diff": d.count_diff,
                    "where": [
                        f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in d.traceback
                    ][-8:],
                }
                for d in diff
            ]
        baseline.append(snap)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


async def memory_worker(report: Path) -> None:
    """The real worker (apps.fleet.build_worker) that writes its memory to `report` on SIGUSR1
    and starts tracemalloc on SIGUSR2."""
    from apps.fleet import build_worker
    from runtime.app import open_app
    from runtime.db import open_pool

    ctx = await open_app()
    pool = await open_pool(ctx.stack.database_url, max_size=10)
    worker = await build_worker(ctx.client, ctx.settings, pool)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    baseline: list = []
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: memory_report(report, worker, baseline))
    loop.add_signal_handler(signal.SIGUSR2, lambda: tracemalloc.start(TRACE_FRAMES))
    async with worker:
        await stop.wait()
    await pool.close()


def bare_runner(name: str) -> Any:
    """The workflow runner of a bare memory worker, by its name in BARE_RUNNERS."""
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from runtime.sandbox import worker_runner

    return {
        "stock": SandboxedWorkflowRunner,
        "project": worker_runner,
        "none": UnsandboxedWorkflowRunner,
    }[name]()


async def bare_memory_worker(report: Path, runner: str) -> None:
    """The naive design's worker with the named runner, reporting its memory to `report` on
    SIGUSR1."""
    from temporalio.worker import Worker

    from bench.baseline_wf import BaselineJourney, noop
    from runtime.app import open_app

    ctx = await open_app()
    worker = Worker(
        ctx.client,
        task_queue=ctx.settings.task_queue,
        workflows=[BaselineJourney],
        activities=[noop],
        workflow_runner=bare_runner(runner),
        max_cached_workflows=ctx.settings.worker_max_cached_workflows,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: memory_report(report, worker, []))
    async with worker:
        await stop.wait()


BARE_RUNNERS = ("stock", "project", "none")


async def ack_worker() -> None:
    """The bare engine's acknowledgements (bench ack-latency --worker-process): AckTarget on the
    task queue of CASN_TASK_QUEUE, with the SDK's sandbox and our worker's cache size, in a process
    of its own as our worker is, until SIGTERM."""
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from bench.baseline_wf import AckTarget
    from runtime.app import open_app

    ctx = await open_app()
    worker = Worker(
        ctx.client,
        task_queue=ctx.settings.task_queue,
        workflows=[AckTarget],
        workflow_runner=SandboxedWorkflowRunner(),
        max_cached_workflows=ctx.settings.worker_max_cached_workflows,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        await stop.wait()


def main(argv: list[str]) -> None:
    if argv[1:] == ["ack-worker"]:
        asyncio.run(ack_worker())
        return
    if (
        len(argv) not in (3, 4)
        or argv[1] != "memory-worker"
        or argv[3:4] not in [[]] + [[r] for r in BARE_RUNNERS]
    ):
        raise SystemExit(
            "usage: python -m bench.fleet memory-worker REPORT_PATH [BARE_RUNNER]\n"
            "       python -m bench.fleet ack-worker\n"
            f"  BARE_RUNNER (the naive journey's worker): one of {', '.join(BARE_RUNNERS)}"
        )
    if len(argv) == 4:
        asyncio.run(bare_memory_worker(Path(argv[2]), argv[3]))
    else:
        asyncio.run(memory_worker(Path(argv[2])))


if __name__ == "__main__":
    run_and_end(lambda: main(sys.argv))
