"""Deliver an announcement to every running journey of a formasi."""

from __future__ import annotations

import asyncio
import base64

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.contracts import BroadcastRequest, BroadcastResult

CONCURRENCY = 32


class Broadcaster:
    """Lists a formasi's running journeys through Temporal's visibility and signals each one."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="broadcast")
    async def broadcast(self, req: BroadcastRequest) -> BroadcastResult:
        """Signal `announce` to each running journey; journeys ignore a repeated announcement."""
        query = (
            f"CasnKind = 'journey' AND RoundId = '{req.round_id}' "
            f"AND FormasiCode = '{req.formasi_code}' AND ExecutionStatus = 'Running'"
        )
        next_token: str | None = None
        if req.page_size:
            listing = self.client.list_workflows(
                query,
                page_size=req.page_size,
                next_page_token=base64.b64decode(req.page_token) if req.page_token else None,
            )
            await listing.fetch_next_page()
            ids = [wf.id for wf in listing.current_page or []]
            if listing.next_page_token:
                next_token = base64.b64encode(listing.next_page_token).decode()
        else:
            ids = [wf.id async for wf in self.client.list_workflows(query)]
        gate = asyncio.Semaphore(CONCURRENCY)
        delivered = 0

        async def deliver(workflow_id: str) -> None:
            nonlocal delivered
            async with gate:
                try:
                    await self.client.get_workflow_handle(workflow_id).signal("announce", req.announcement)
                    delivered += 1
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    # The journey ended between listing and signalling: nothing to tell it.
                if delivered % 500 == 0:
                    activity.heartbeat(delivered)

        await asyncio.gather(*(deliver(i) for i in ids))
        return BroadcastResult(delivered=delivered, next_page_token=next_token)
