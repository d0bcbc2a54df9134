"""The worker fleet: every workflow and activity on the task queue, and notification delivery."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.worker import (
    FixedSizeSlotSupplier,
    PollerBehaviorSimpleMaximum,
    Worker,
    WorkerTuner,
)

from activities.broadcast import Broadcaster
from activities.claims import ClaimReader
from activities.journeys import JourneyReader
from activities.notify import (
    STATEMENT_TIMEOUT_S,
    DeliveryPass,
    FileTransport,
    Transport,
    deliver_pass,
)
from activities.offers import OfferSender
from activities.pages import PageStore
from activities.readmodel import ReadModel
from activities.revocations import RevocationWriter
from activities.rounds import RoundBoards, RoundReader
from activities.sanctions import SanctionChecker
from domain.notices import Language
from runtime.app import open_app
from runtime.db import database_unavailable, open_pool
from runtime.gcwatch import GcWatch
from runtime.keys import Keys, load_or_create_keys
from runtime.logs import get_logger
from runtime.metrics import DELIVERER_DATABASE_DOWN, DELIVERER_OUTAGES, GC_PAUSE_SECONDS
from runtime.probes import ProbeServer, deliverer_probe_app, probe_app
from runtime.sandbox import worker_runner
from runtime.sealed import ColumnCipher
from runtime.settings import Settings, load_settings
from runtime.slots import StickyReserveSlots
from runtime.stopping import LocalActivitiesEndWhenStopping
from workflows.registry import WORKFLOWS

log = get_logger("worker")


async def build_worker(client: Client, settings: Settings, pool: asyncpg.Pool) -> Worker:
    """A worker for the project's task queue with every workflow and activity registered."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=fleet_activities(client, settings, pool),
        max_cached_workflows=settings.worker_max_cached_workflows,
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=settings.worker_sticky_schedule_to_start_seconds
        ),
        workflow_runner=worker_runner(),
        graceful_shutdown_timeout=timedelta(seconds=10),
        # A stopping worker's local activities end instead of retrying (runtime/stopping.py).
        interceptors=[LocalActivitiesEndWhenStopping()],
        # issue 17: registration bursts and deadline peaks (docs/OPERATIONS.md, "Worker tuning")
        **worker_tuning(settings),
    )


def fleet_activities(client: Client, settings: Settings, pool: asyncpg.Pool) -> list:
    """Every activity the workflows ask for (domain.protocol.ACTIVITIES and the claims'), bound
    to the read model, the page store and the client."""
    # The read model seals the notifications with the payload keys the client's codec holds.
    cipher = ColumnCipher.from_keys(load_or_create_keys(settings))
    readmodel = ReadModel(pool, cipher)
    pages = PageStore(pool, cipher)
    broadcaster = Broadcaster(
        client, readmodel.write_rows, pages, backlog_limit=settings.broadcast_backlog_limit
    )
    rounds = RoundReader(client, RoundBoards(pool, cipher))
    claims = ClaimReader(client)
    offers = OfferSender(client)
    return [
        readmodel.project_journey,
        readmodel.issue_nip,
        broadcaster.broadcast,
        rounds.read_round,
        rounds.publish_round_board,
        offers.send_offers,
        offers.send_by_update,
        SanctionChecker(pool).check_sanctions,
        claims.check_claim,
        claims.release_claim,
        claims.find_claimed_journey,
        JourneyReader(client).read_journey_end,
        RevocationWriter(pool).project_revocations,
        pages.read_page,
        pages.fold_pages,
        pages.read_leaf,
        pages.rank_skd_pages,
        pages.rank_final_pages,
        pages.allocate_pages,
        pages.keep_page,
    ]


def worker_tuning(settings: Settings) -> dict:
    """The workflow-task pollers and the slots the settings give a Worker: workflow-task slots
    with a share kept for cached workflows (runtime/slots.py), fixed activity and local-activity
    slots."""
    return {
        "workflow_task_poller_behavior": PollerBehaviorSimpleMaximum(
            maximum=settings.worker_workflow_task_pollers
        ),
        "nonsticky_to_sticky_poll_ratio": settings.worker_nonsticky_to_sticky_poll_ratio,
        "tuner": WorkerTuner.create_composite(
            workflow_supplier=StickyReserveSlots(
                settings.worker_max_concurrent_workflow_tasks,
                settings.worker_sticky_reserved_workflow_slots,
            ),
            activity_supplier=FixedSizeSlotSupplier(settings.worker_max_concurrent_activities),
            local_activity_supplier=FixedSizeSlotSupplier(
                settings.worker_max_concurrent_local_activities
            ),
            nexus_supplier=FixedSizeSlotSupplier(1),  # no Nexus operations on this queue
        ),
    }


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
    gc_watch = GcWatch(pauses=GC_PAUSE_SECONDS).install()
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


# How long the deliverer may go without finishing a pass or handing a notification over before
# its /readyz says so: passes start every 5 s, and a pass that sends hands one over far more often.
DELIVERER_STALE_AFTER_S = 60.0


class DeliveryProgress:
    """When the deliverer last got on: a pass finished, or one notification handed over (or
    refused) by the transport. A pass stuck on the database or the transport stops both. While
    the deliverer waits out an outage of the database it is not ready, whatever the clock says."""

    def __init__(
        self,
        stale_after: float = DELIVERER_STALE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._last: float | None = None
        self._down_since: float | None = None
        self._down_cause = ""

    def moved(self) -> None:
        """A pass finished, or the transport answered for one notification."""
        self._last = self._clock()

    def database_down(self, cause: str) -> None:
        """An outage of the database began: passes wait for it."""
        self._down_since = self._clock()
        self._down_cause = cause

    def database_back(self) -> float:
        """The outage ended (a pass finished): its length in seconds."""
        began, self._down_since = self._down_since, None
        return 0.0 if began is None else self._clock() - began

    def state(self) -> str:
        """ "ok", or what is wrong, for /readyz."""
        if self._down_since is not None:
            down = self._clock() - self._down_since
            return f"database down for {down:.0f} s, delivery paused: {self._down_cause}"
        if self._last is None:
            return "no pass finished yet"
        idle = self._clock() - self._last
        if idle > self.stale_after:
            return f"no pass finished and no notification handed over for {idle:.0f} s"
        return "ok"


class WatchedTransport:
    """A transport whose every answer (a send returned or raised) counts as the deliverer's
    progress."""

    def __init__(self, transport: Transport, progress: DeliveryProgress) -> None:
        self._transport = transport
        self._progress = progress

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        try:
            await self._transport.send(round_id, applicant_id, key, text)
        finally:
            self._progress.moved()


# A pass hands over at most DELIVERY_BATCH notifications; the deliverer then pauses
# DELIVERY_PAUSE seconds, unless the pass was full (more may be due now): with a pause after every
# pass, delivery stopped at 100 a second, and a national announcement's two million notices
# would have taken five and a half hours.
DELIVERY_BATCH = 500
DELIVERY_PAUSE = 5.0


def pause_after(done: DeliveryPass) -> float:
    """Seconds to wait before the next pass: none after a full batch, DELIVERY_PAUSE otherwise."""
    return 0.0 if done.due >= DELIVERY_BATCH else DELIVERY_PAUSE


# While the database is down the deliverer tries a pass again after a pause that doubles from
# OUTAGE_FIRST_PAUSE_S up to OUTAGE_LONGEST_PAUSE_S: quick after a restart, a few tries a minute
# through a long outage.
OUTAGE_FIRST_PAUSE_S = 1.0
OUTAGE_LONGEST_PAUSE_S = 30.0


def outage_pause(tries: int) -> float:
    """Seconds to wait after the `tries`-th pass in a row that found the database down."""
    return min(OUTAGE_FIRST_PAUSE_S * 2 ** min(tries - 1, 16), OUTAGE_LONGEST_PAUSE_S)


async def open_deliverer_pool(database_url: str) -> asyncpg.Pool:
    """The deliverer's pool: one connection for the pass, one for /readyz's SELECT 1, one for
    /metrics' read-model counts; none kept open by the pool itself, so that an outage is told
    once, by the deliverer, not at every reconnection the pool would try (runtime/db.py). Every
    statement and connection is bounded by STATEMENT_TIMEOUT_S: a database that stops answering
    is an outage waited out, not a pass hung for ever."""
    return await open_pool(database_url, max_size=3, min_size=0, timeout=STATEMENT_TIMEOUT_S)


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]


async def deliver_until_stopped(
    run_pass: Callable[[], Awaitable[DeliveryPass]],
    stop: asyncio.Event,
    progress: DeliveryProgress,
    *,
    once: bool = False,
    pause_for: Callable[[int], float] = outage_pause,
    transport: str = "",
) -> None:
    """Run `run_pass` until `stop` is set (with `once`: one pass), pausing between passes.

    A pass that finds the database down (runtime/db.py, `database_unavailable`: a connection
    refused or lost, its shutdown, its start-up) is an outage, waited out: one warning when it
    begins, a pass tried again after `pause_for(tries)` seconds, /readyz not ready meanwhile
    (`progress`), and one line with its length once a pass finishes. Any other error (a bug, a
    permission denied, a schema behind the code) stops the deliverer, after one error line; so
    does an outage with `once`.
    """
    tries = 0
    while not stop.is_set():
        try:
            done = await run_pass()
        except Exception as exc:
            if not database_unavailable(exc):
                log.error(
                    "notification deliverer stopped: not an outage of the database",
                    error=_cause(exc),
                    hint="mend the cause (code, row, permission or migration), then start it again",
                )
                raise
            if once:
                raise  # one pass, not a wait: the command says the database cannot be reached
            tries += 1
            pause = pause_for(tries)
            if tries == 1:
                progress.database_down(_cause(exc))
                DELIVERER_DATABASE_DOWN.set(1)
                DELIVERER_OUTAGES.inc()
                log.warning(
                    "database down: notification delivery paused until it answers",
                    error=_cause(exc),
                    retry_every_s=f"{pause:g} to {OUTAGE_LONGEST_PAUSE_S:g}",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            continue
        if tries:
            down = progress.database_back()
            DELIVERER_DATABASE_DOWN.set(0)
            log.info(
                "database back: notification delivery resumed",
                down_s=round(down, 1),
                tries=tries,
            )
            tries = 0
        progress.moved()
        log.info(
            "notifications delivered",
            count=done.delivered,
            failed=done.failed,
            given_up=done.given_up,
            refused=done.refused,
            waiting=done.waiting,
            transport=transport,
        )
        if once:
            return
        pause = pause_after(done)
        if pause:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)


async def deliver_notifications(once: bool = False) -> None:
    """Hand undelivered notifications to the transport (a JSON-lines file under the data dir).

    SIGTERM or Ctrl-C ends the pass after the notification in flight and exits; a second one
    ends the process at once (the notification in flight is then sent again by the next pass).
    An outage of the database is waited out (`deliver_until_stopped`); with `once` it stops the
    command. Until then (not with `once`) it serves /metrics, /healthz and /readyz on
    CASN_METRICS_HOST:CASN_DELIVERER_METRICS_PORT (0 = not served): /readyz answers 503 while
    PostgreSQL does not answer or the deliverer waits out its outage, before the first pass has
    finished, and when for DELIVERER_STALE_AFTER_S no pass has finished and the transport has
    answered for no notification."""
    settings = load_settings()
    ctx = await open_app(settings)
    progress = DeliveryProgress()
    stop = _stop_on_signals()
    pool = await open_deliverer_pool(ctx.stack.database_url)
    try:
        async with contextlib.AsyncExitStack() as serving:
            if settings.deliverer_metrics_port and not once:
                app = deliverer_probe_app(
                    pool, progress.state, settings.metrics_read_model_interval
                )
                await serving.enter_async_context(
                    ProbeServer(
                        app,
                        settings.metrics_host,
                        settings.deliverer_metrics_port,
                        "CASN_DELIVERER_METRICS_PORT",
                    )
                )
            await run_deliverer(pool, ctx.settings, ctx.keys, stop, progress, once=once)
    finally:
        await pool.close()


def notifications_file(settings: Settings) -> Path:
    """Where the file transport appends the notifications: notifications.jsonl in the data dir."""
    return settings.data_dir / "notifications.jsonl"


async def run_deliverer(
    pool: asyncpg.Pool,
    settings: Settings,
    keys: Keys,
    stop: asyncio.Event,
    progress: DeliveryProgress,
    *,
    once: bool = False,
) -> None:
    """Deliver notifications through the file transport (`notifications_file`) in passes until
    `stop` is set (with `once`: one pass), waiting out outages of the database
    (`deliver_until_stopped`); `pool` is the deliverer's own (`open_deliverer_pool`). What it
    handed over is remembered across an outage, so nothing is sent twice for one. Run by
    `worker.py deliver-notifications` and, in the gateway's process, by `serve.py --with-worker`."""
    transport = FileTransport(notifications_file(settings))
    watched = WatchedTransport(transport, progress)
    language = Language(settings.notification_language)
    cipher = ColumnCipher.from_keys(keys)
    handed_over: set[tuple[str, str, str]] = set()  # kept across an outage

    async def run_pass() -> DeliveryPass:
        return await deliver_pass(
            pool,
            watched,
            batch=DELIVERY_BATCH,
            language=language,
            cipher=cipher,
            stop=stop,
            handed_over=handed_over,
        )

    await deliver_until_stopped(run_pass, stop, progress, once=once, transport=str(transport.path))
    if not once:
        log.info("notification deliverer stopped")


def _stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT; a second one acts as it would have without."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)

    def stopping() -> None:
        stop.set()
        for sig in signals:
            loop.remove_signal_handler(sig)

    for sig in signals:
        loop.add_signal_handler(sig, stopping)
    return stop
