"""The worker fleet: every workflow and activity on the task queue, and notification delivery."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import timedelta

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from activities.broadcast import Broadcaster
from activities.journeys import JourneyReader
from activities.notify import FileTransport, deliver_pending
from activities.readmodel import ReadModel
from activities.revocations import RevocationWriter
from activities.rounds import RoundReader
from domain.notices import Language
from runtime.app import open_app
from runtime.db import open_pool
from runtime.gcwatch import GcWatch
from runtime.keys import load_or_create_keys
from runtime.logs import get_logger
from runtime.probes import ProbeServer, probe_app
from runtime.sandbox import worker_runner
from runtime.sealed import ColumnCipher
from runtime.settings import Settings, load_settings
from workflows.registry import WORKFLOWS

log = get_logger("worker")


async def build_worker(client: Client, settings: Settings, pool: asyncpg.Pool) -> Worker:
    """A worker for the project's task queue with every workflow and activity registered."""
    # The read model seals the notifications with the payload keys the client's codec holds.
    readmodel = ReadModel(pool, ColumnCipher.from_keys(load_or_create_keys(settings)))
    broadcaster = Broadcaster(client, readmodel.write_rows)
    rounds = RoundReader(client)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[
            readmodel.project_journey,
            readmodel.issue_nip,
            broadcaster.broadcast,
            rounds.read_round,
            JourneyReader(client).read_journey_end,
            RevocationWriter(pool).project_revocations,
        ],
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=worker_runner(),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set or SIGTERM/SIGINT arrives; in-flight tasks finish first.

    With CASN_METRICS_PORT (9464; 0 = off) the worker serves /metrics (ours and the SDK core's),
    /healthz and /readyz on CASN_METRICS_HOST (runtime/probes.py)."""
    settings = load_settings()
    ctx = await open_app(settings, core_metrics=settings.metrics_port != 0)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await open_pool(ctx.stack.database_url, max_size=10)
    gc_watch = GcWatch().install()
    polling = False
    try:
        worker = await build_worker(ctx.client, ctx.settings, pool)
        async with contextlib.AsyncExitStack() as running:
            if settings.metrics_port:
                app = probe_app(
                    ctx.client, pool, lambda: polling, settings.metrics_read_model_interval
                )
                await running.enter_async_context(
                    ProbeServer(app, settings.metrics_host, settings.metrics_port)
                )
            await running.enter_async_context(worker)
            polling = True
            log.info(
                "worker started",
                task_queue=ctx.settings.task_queue,
                temporal=ctx.stack.temporal_address,
                ui=ctx.stack.ui_url,
            )
            await stop.wait()
            polling = False  # /readyz answers 503 while the worker drains
            log.info("worker stopping: draining in-flight tasks")
    finally:
        gc_watch.remove()
        await pool.close()
    log.info("worker stopped", longest_gc_pause_s=round(gc_watch.longest, 3))


async def deliver_notifications(once: bool = False) -> None:
    """Hand undelivered notifications to the transport (a JSON-lines file under the data dir)."""
    ctx = await open_app()
    transport = FileTransport(ctx.settings.data_dir / "notifications.jsonl")
    pool = await open_pool(ctx.stack.database_url, max_size=2)
    try:
        while True:
            count = await deliver_pending(
                pool,
                transport,
                language=Language(ctx.settings.notification_language),
                cipher=ColumnCipher.from_keys(ctx.keys),
            )
            log.info("notifications delivered", count=count, transport=str(transport.path))
            if once:
                return
            await asyncio.sleep(5)
    finally:
        await pool.close()
