"""Deliver an announcement to every running journey of a formasi."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from domain.contracts import BroadcastRequest, BroadcastResult, CloseAnswer, JourneyProjection
from domain.messages import CloseReply
from domain.protocol import ANNOUNCE, BROADCAST, CLOSE_STAGE

CONCURRENCY = 32
CLOSE_ATTEMPTS = 5

WriteRows = Callable[[list[JourneyProjection]], Awaitable[None]]


class Broadcaster:
    """Lists a formasi's running journeys through Temporal's visibility and tells each one.

    Modes (BroadcastRequest.mode): "signal" signals `announce` to each; "close" sends the
    `close_stage` update and returns every journey's answer.
    """

    def __init__(self, client: Client, write_rows: WriteRows) -> None:
        self.client = client
        self.write_rows = write_rows  # the read model's batch write (ReadModel.write_rows)

    @activity.defn(name=BROADCAST.name)
    async def broadcast(self, req: BroadcastRequest) -> BroadcastResult:
        """Tell one page (or all) of the formasi's running journeys; every mode is safe to repeat."""
        if req.mode not in ("signal", "close"):
            raise ValueError(f"broadcast: mode {req.mode!r} is not one of signal, close")
        ids, next_token = await self._list(req)
        gate = asyncio.Semaphore(CONCURRENCY)
        delivered = 0
        replies: dict[str, CloseAnswer] = {}

        async def deliver(workflow_id: str) -> None:
            nonlocal delivered
            async with gate:
                handle = self.client.get_workflow_handle(workflow_id)
                try:
                    if req.mode == "close":
                        reply = await self._close(handle, req)
                        if reply is None:
                            return
                        replies[workflow_id] = reply
                    else:
                        await ANNOUNCE.send(handle, req.announcement)
                    delivered += 1
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    # The journey ended between listing and telling it: nothing to tell it.
                if delivered % 500 == 0:
                    activity.heartbeat(delivered)

        await asyncio.gather(*(deliver(i) for i in ids))
        answers = [replies[i] for i in ids if i in replies]
        return BroadcastResult(
            delivered=delivered,
            next_page_token=next_token,
            replies=await self._write_close_rows(answers),
        )

    async def _write_close_rows(self, answers: list[CloseAnswer]) -> list[CloseReply]:
        """The rows the journeys answered the close with, written in one statement; the formasi
        gets the answers without them (patch close-answered-with-row, workflows/versions.py).

        Written before the activity completes: a failure fails the activity, and its retry closes
        again, which each journey answers with the same row."""
        rows = [a.row for a in answers if a.row is not None]
        if rows:
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

    async def _close(self, handle: WorkflowHandle, req: BroadcastRequest) -> CloseAnswer | None:
        """The journey's answer to the close; None when it has ended (it no longer ranks)."""
        for attempt in range(1, CLOSE_ATTEMPTS + 1):
            try:
                return await CLOSE_STAGE.execute(handle, req.announcement)
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
