"""Deliver an announcement to every running journey of a formasi."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.offers import ENDED, send_update
from domain.contracts import (
    TAKEN,
    BroadcastRequest,
    BroadcastResult,
    CloseAnswer,
    JourneyProjection,
)
from domain.messages import Announcement, CloseReply
from domain.pages import REPLIES
from domain.protocol import (
    ANNOUNCE,
    ANNOUNCE_UPDATE,
    BROADCAST,
    CLOSE_STAGE,
    close_update_id,
    listing_digest,
)

if TYPE_CHECKING:
    from activities.pages import PageStore

CONCURRENCY = 32
CLOSE_ATTEMPTS = 5
# A close's update ids name the page's listing (domain.protocol.close_update_id), so a page listed
# afresh is delivered only once the server holds the listing in the attempt's heartbeat: a worker
# lost mid-page is then always resumed from the same listing, and the journeys it had closed get
# the same update ids, answered by the server. Without that wait, a worker lost in the moment
# between its first closes and its first heartbeat left the retry to list again, and a journey
# ended by the close shifted every later place: the journeys already closed were sent a second
# close under a new id (answered from their record, but an update their history holds twice).
# Past LISTING_WAIT_MAX seconds unconfirmed, the page goes on and says so in the log.
LISTING_CHECK_EVERY = 0.05
LISTING_WAIT_MAX = 10.0
# Seconds between heartbeats while a page is delivered, whatever the deliveries are doing: a worker
# killed mid-page is noticed when the formasi's heartbeat timeout (workflows/formasi.py) passes
# since the last one that reached the server (the SDK sends at most one per 0.8 x that timeout).
HEARTBEAT_EVERY = 1.0
# A page longer than this (only the unpaged broadcast of executions from before paging) heartbeats
# its count alone: its listing would pass the 2 MB payload limit. Its retry lists again.
RESUMABLE_PAGE = 2_000
# Signals are fire-and-forget: sent faster than the workers run the journeys, the journeys' tasks
# pile up in the server's persisted backlog, where each costs a write, a read and a delete and
# is handed out slower than a task given straight to a waiting poller (BENCHMARKS.md, "An
# announcement's backlog"). The signals wait while the queue holds more than the limit
# (CASN_BROADCAST_BACKLOG_LIMIT), read at most twice a second, and at most BACKLOG_WAIT_MAX
# seconds each: the gate slows an announcement down to the workers' pace, never stops it.
BACKLOG_CHECK_EVERY = 0.5
BACKLOG_WAIT_MAX = 60.0
BACKLOG_READ_TIMEOUT = timedelta(seconds=5)
# Answers that mean the server cannot tell a backlog at all (an older release, a test server):
# the gate turns off for this worker. Any other failure (the 100,000 run's "operation was
# canceled" under load) skips one reading, and the gate reads again at the next interval.
UNSUPPORTED = frozenset(
    {RPCStatusCode.UNIMPLEMENTED, RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.PERMISSION_DENIED}
)


@dataclass
class PageProgress:
    """Where one page's delivery stands: carried in the heartbeat, so that a retry resumes it.

    `ids` is the page as first listed (a retry tells the same journeys, not a fresh listing);
    `done` holds the positions in `ids` already told. No personal data: ids are pseudonymous.
    """

    ids: list[str]
    next_page_token: str | None
    done: set[int] = field(default_factory=set)

    def details(self) -> dict[str, Any]:
        if len(self.ids) > RESUMABLE_PAGE:
            return {"told": len(self.done)}
        return {"ids": self.ids, "next": self.next_page_token, "done": sorted(self.done)}

    @classmethod
    def resumed(cls, details: Any) -> PageProgress | None:
        """The progress a previous attempt heartbeated, or None (first attempt, or older details)."""
        if not isinstance(details, dict) or not isinstance(details.get("ids"), list):
            return None
        ids = [str(i) for i in details["ids"]]
        done = {int(i) for i in details.get("done", []) if 0 <= int(i) < len(ids)}
        return cls(ids=ids, next_page_token=details.get("next"), done=done)


WriteRows = Callable[[list[JourneyProjection]], Awaitable[None]]
ReadBacklog = Callable[[str], Awaitable[int]]


class BacklogGate:
    """Holds an announcement's signals back while the journeys' task queue has a backlog.

    `read_backlog(task_queue)` gives the server's approximate count of workflow tasks waiting
    in the queue. One reading serves every delivery for BACKLOG_CHECK_EVERY seconds. A server
    that cannot tell (an older release, a test server) turns the gate off for this worker, with
    one warning: the broadcast then signals as fast as before.
    """

    def __init__(
        self,
        read_backlog: ReadBacklog,
        limit: int,
        check_every: float = BACKLOG_CHECK_EVERY,
        wait_max: float = BACKLOG_WAIT_MAX,
    ) -> None:
        self.read_backlog = read_backlog
        self.limit = limit
        self.check_every = check_every
        self.wait_max = wait_max
        self.enabled = limit > 0
        self._lock = asyncio.Lock()
        self._read_at: dict[str, float] = {}
        self._backlog: dict[str, int] = {}
        self.failed_readings = 0

    async def _current(self, task_queue: str) -> int | None:
        async with self._lock:
            if not self.enabled:
                return None
            now = time.monotonic()
            if now - self._read_at.get(task_queue, float("-inf")) >= self.check_every:
                try:
                    self._backlog[task_queue] = await self.read_backlog(task_queue)
                except RPCError as exc:
                    if exc.status in UNSUPPORTED:
                        self.enabled = False
                        activity.logger.warning(
                            "broadcast: the server does not tell the task queue's backlog (%s); "
                            "announcements are signalled without waiting for it",
                            exc.message,
                        )
                        return None
                    # A passing failure (a busy server, a call cut short): this interval's
                    # deliveries go without a reading, and the next interval reads again.
                    self.failed_readings += 1
                    if self.failed_readings == 1 or self.failed_readings % 100 == 0:
                        activity.logger.warning(
                            "broadcast: reading the task queue's backlog failed (%s, %d so far); "
                            "signals go on without it until a reading succeeds",
                            exc.message,
                            self.failed_readings,
                        )
                    self._read_at[task_queue] = time.monotonic()
                    self._backlog.pop(task_queue, None)
                    return None
                self._read_at[task_queue] = time.monotonic()
            return self._backlog.get(task_queue)

    async def wait(self, task_queue: str) -> float:
        """Wait until the queue's backlog is at most the limit, or `wait_max` seconds; return
        the seconds waited."""
        started = time.monotonic()
        while True:
            backlog = await self._current(task_queue)
            if backlog is None or backlog <= self.limit:
                break
            if time.monotonic() - started >= self.wait_max:
                break
            await asyncio.sleep(self.check_every)
        return time.monotonic() - started


def task_queue_backlog(client: Client) -> ReadBacklog:
    """Reads the approximate number of workflow tasks waiting in a task queue (DescribeTaskQueue)."""

    async def read(task_queue: str) -> int:
        reply = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                report_stats=True,
            ),
            timeout=BACKLOG_READ_TIMEOUT,
        )
        return int(reply.stats.approximate_backlog_count)

    return read


class Broadcaster:
    """Lists a formasi's running journeys through Temporal's visibility and tells each one.

    Modes (BroadcastRequest.mode): "signal" signals `announce` to each (as the update
    `announce_update` to one whose run takes no more signals); "close" sends the `close_stage`
    update and returns every journey's answer.
    """

    def __init__(
        self,
        client: Client,
        write_rows: WriteRows | None = None,
        pages: PageStore | None = None,
        backlog_limit: int = 0,
        read_backlog: ReadBacklog | None = None,
    ) -> None:
        self.client = client
        # Signals only: a close is an update, answered once the journey has run it.
        self.gate = BacklogGate(read_backlog or task_queue_backlog(client), backlog_limit)
        self.write_rows = write_rows  # the read model's batch write (ReadModel.write_rows)
        self.pages = pages  # where a close keeps its answers (keep_replies)

    @activity.defn(name=BROADCAST.name)
    async def broadcast(self, req: BroadcastRequest) -> BroadcastResult:
        """Tell one page (or all) of the formasi's running journeys; every mode is safe to repeat.

        A retry after a lost worker resumes from the last heartbeat: the same listing, and in
        "signal" mode only the journeys not yet told. In "close" mode every journey of the page is
        asked again, under the same update id, so the server answers the ones already closed from
        their histories without running them again.
        """
        if req.mode not in ("signal", "close"):
            raise ValueError(f"broadcast: mode {req.mode!r} is not one of signal, close")
        details = activity.info().heartbeat_details
        progress = PageProgress.resumed(details[0] if details else None)
        listed = progress is None and not req.workflow_ids  # a fresh listing of the visibility
        if progress is None:
            progress = PageProgress(*await self._list(req))
        elif req.mode == "close":
            progress.done.clear()
        else:
            activity.logger.info(
                "broadcast resumed: %d of %d journeys of the page were told before",
                len(progress.done),
                len(progress.ids),
            )
        gate = asyncio.Semaphore(CONCURRENCY)
        replies: dict[str, CloseAnswer] = {}
        task_queue = activity.info().task_queue  # the journeys run where their formasi runs
        held: list[float] = []  # seconds each delivery held back by the gate waited

        listing = listing_digest(progress.ids)

        async def deliver(position: int, workflow_id: str) -> None:
            async with gate:
                handle = self.client.get_workflow_handle(workflow_id)
                try:
                    if req.mode == "close":
                        update_id = close_update_id(
                            req.announcement.announcement_id, listing, position
                        )
                        reply = await self._close(handle, req, update_id)
                        if reply is None:
                            return
                        replies[workflow_id] = reply
                    else:
                        held.append(await self.gate.wait(task_queue))
                        await _announce(handle, req.announcement)
                    progress.done.add(position)
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    # The journey ended between listing and telling it: nothing to tell it.

        pending = [(p, i) for p, i in enumerate(progress.ids) if p not in progress.done]
        beating = asyncio.create_task(_heartbeat(progress))
        try:
            if req.mode == "close" and listed and pending:
                await self._listing_recorded()
            await asyncio.gather(*(deliver(p, i) for p, i in pending))
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        delivered, token = len(progress.done), progress.next_page_token
        held = [h for h in held if h >= self.gate.check_every]
        if held:
            activity.logger.info(
                "broadcast held %d of %d signals back for the task queue's backlog (longest "
                "%.1f s)",
                len(held),
                len(pending),
                max(held),
            )
        answers = await self._write_close_rows([replies[i] for i in progress.ids if i in replies])
        if req.keep_replies:
            return await self._kept(req, delivered, token, answers)
        return BroadcastResult(delivered=delivered, next_page_token=token, replies=answers)

    async def _listing_recorded(self) -> bool:
        """Wait until the server holds a heartbeat of this attempt (the page's listing, heartbeated
        as the page starts); False, with a warning, when it has not within LISTING_WAIT_MAX."""
        info = activity.info()
        handle = self.client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
        deadline = time.monotonic() + LISTING_WAIT_MAX
        while True:
            description = await handle.describe()
            for pending in description.raw_description.pending_activities:
                if pending.activity_id != info.activity_id:
                    continue
                beat = pending.last_heartbeat_time
                if beat.seconds and beat.ToDatetime(tzinfo=UTC) >= info.started_time:
                    return True
            if time.monotonic() >= deadline:
                activity.logger.warning(
                    "broadcast: the server did not show this page's listing in a heartbeat within "
                    "%g s; the page is closed without it, and a retry will list the page again",
                    LISTING_WAIT_MAX,
                )
                return False
            await asyncio.sleep(LISTING_CHECK_EVERY)

    async def _kept(
        self, req: BroadcastRequest, delivered: int, token: str | None, answers: list[CloseReply]
    ) -> BroadcastResult:
        """The page's answers that rank, kept in the page store; the result holds its reference."""
        if self.pages is None:
            raise RuntimeError(
                "broadcast: keep_replies needs the page store, and this worker has none"
            )
        ranking = [a for a in answers if a.key is not None or a.entry is not None]
        kept = None
        if ranking:
            # The owner is the formasi that asked: the workflow this activity runs for.
            kept = await self.pages.put(REPLIES, activity.info().workflow_id, ranking)
        return BroadcastResult(
            delivered=delivered, next_page_token=token, kept=kept, replied=len(answers)
        )

    async def _write_close_rows(self, answers: list[CloseAnswer]) -> list[CloseReply]:
        """The rows the journeys answered the close with, written in one statement; the formasi
        gets the answers without them (patch close-answered-with-row, workflows/versions.py).

        Written before the activity completes: a failure fails the activity, and its retry closes
        again, which each journey answers with the same row."""
        rows = [a.row for a in answers if a.row is not None]
        if rows:
            if self.write_rows is None:
                raise RuntimeError(
                    "broadcast: journeys answered the close with their rows, and this worker has "
                    "no read model to write them"
                )
            await self.write_rows(rows)
        return [a.reply() for a in answers]

    async def _list(self, req: BroadcastRequest) -> tuple[list[str], str | None]:
        if req.workflow_ids:
            return list(req.workflow_ids), None
        query = (
            f"CasnKind = 'journey' AND RoundId = '{req.round_id}' "
            f"AND FormasiCode = '{req.formasi_code}' AND ExecutionStatus = 'Running'"
        )
        if not req.page_size:
            return [wf.id async for wf in self.client.list_workflows(query)], None
        listing = self.client.list_workflows(
            query,
            page_size=req.page_size,
            next_page_token=base64.b64decode(req.page_token) if req.page_token else None,
        )
        await listing.fetch_next_page()
        ids = [wf.id for wf in listing.current_page or []]
        token = (
            base64.b64encode(listing.next_page_token).decode() if listing.next_page_token else None
        )
        return ids, token

    async def _close(
        self, handle: WorkflowHandle, req: BroadcastRequest, update_id: str
    ) -> CloseAnswer | None:
        """The journey's answer to the close; None when it has ended (it no longer ranks)."""
        # One update id per close, listing and journey (domain.protocol.close_update_id): a repeat
        # (a retried attempt resuming the listing, or the loop below) is answered by the server
        # from the journey's history when the first one completed.
        for attempt in range(1, CLOSE_ATTEMPTS + 1):
            try:
                return await CLOSE_STAGE.execute(handle, req.announcement, id=update_id)
            except RPCError as exc:
                try:
                    status = (await handle.describe()).status
                except RPCError:
                    return None
                if status != WorkflowExecutionStatus.RUNNING:
                    return None
                if attempt == CLOSE_ATTEMPTS:
                    raise
                # Running, but the update was lost with a workflow task the server rejected (a
                # signal raced the task): the same close again is answered from the journey's record.
                activity.logger.info("close_stage lost, sending it again: %s", exc.message)
                await asyncio.sleep(0.2 * attempt)
        return None


async def _announce(handle: WorkflowHandle, announcement: Announcement) -> None:
    """Tell one journey `announcement` by signal; by the update ANNOUNCE_UPDATE when its run
    takes no more signals (INVALID_ARGUMENT: its 10,000 spent, by anyone who reaches Temporal,
    which would otherwise fail this page for ever and hold the formasi's announcement). Refused
    (the journey not admitted yet), the page fails and is tried again, as for a close."""
    try:
        await ANNOUNCE.send(handle, announcement)
        return
    except RPCError as exc:
        if exc.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
    outcome = await send_update(handle, ANNOUNCE_UPDATE.name, announcement)
    if outcome not in (TAKEN, ENDED):  # ended: nothing to tell it, as for NOT_FOUND
        raise RuntimeError(f"{handle.id}: {ANNOUNCE_UPDATE.name} {outcome}")


async def _heartbeat(progress: PageProgress) -> None:
    """Heartbeat the page's progress every HEARTBEAT_EVERY seconds until cancelled."""
    while True:
        activity.heartbeat(progress.details())
        await asyncio.sleep(HEARTBEAT_EVERY)
