"""The worker: runs the workflows and activities on the embedded stack or a configured cluster.

    python worker.py run          # until SIGTERM/SIGINT, then drains and exits
    python worker.py stop-stack   # stop the embedded servers this project started
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import asyncpg
import typer
from temporalio.client import Client
from temporalio.worker import Worker

from activities.broadcast import Broadcaster
from activities.readmodel import ReadModel
from runtime.db import open_pool
from runtime.gcwatch import GcWatch
from runtime.logs import get_logger
from runtime.sandbox import worker_runner
from runtime.settings import Settings
from workflows.applicant import ApplicantJourney
from workflows.formasi import FormasiSelection
from workflows.round import RecruitmentRound

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
log = get_logger("worker")

WORKFLOWS = [ApplicantJourney, FormasiSelection, RecruitmentRound]


async def build_worker(client: Client, settings: Settings, pool: asyncpg.Pool) -> Worker:
    """A worker for the project's task queue with every workflow and activity registered."""
    readmodel = ReadModel(pool)
    broadcaster = Broadcaster(client)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[readmodel.project_journey, readmodel.issue_nip, broadcaster.broadcast],
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=worker_runner(),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set or SIGTERM/SIGINT arrives; in-flight tasks finish first."""
    from runtime.app import open_app

    ctx = await open_app()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await open_pool(ctx.stack.database_url, max_size=10)
    gc_watch = GcWatch().install()
    try:
        worker = await build_worker(ctx.client, ctx.settings, pool)
        log.info("worker started", task_queue=ctx.settings.task_queue, temporal=ctx.stack.temporal_address,
                 ui=ctx.stack.ui_url)
        async with worker:
            await stop.wait()
            log.info("worker stopping: draining in-flight tasks")
    finally:
        gc_watch.remove()
        await pool.close()
    log.info("worker stopped", longest_gc_pause_s=round(gc_watch.longest, 3))


@app.command("run")
def run_command() -> None:
    """Run the worker until SIGTERM or SIGINT."""
    asyncio.run(run_worker())


@app.command("deliver-notifications")
def deliver_notifications_command(
    once: bool = typer.Option(False, "--once", help="One pass, then exit (default: every 5 s until stopped)."),
) -> None:
    """Hand undelivered notifications to the transport (a JSON-lines file under the data dir)."""
    from activities.notify import FileTransport, deliver_pending
    from runtime.app import open_app

    async def main() -> None:
        ctx = await open_app()
        transport = FileTransport(ctx.settings.data_dir / "notifications.jsonl")
        pool = await open_pool(ctx.stack.database_url, max_size=2)
        try:
            while True:
                count = await deliver_pending(pool, transport)
                log.info("notifications delivered", count=count, transport=str(transport.path))
                if once:
                    return
                await asyncio.sleep(5)
        finally:
            await pool.close()

    asyncio.run(main())


@app.command("stop-stack")
def stop_stack_command() -> None:
    """Stop the embedded Temporal server and PostgreSQL that this project started."""
    from runtime.embedded import stop_stack
    from runtime.settings import load_settings

    lines = stop_stack(load_settings())
    for line in lines or ["nothing of ours was running"]:
        typer.echo(line)


if __name__ == "__main__":
    app()
