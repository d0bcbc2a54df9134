"""Workflow-task slots with a share kept for cached workflows, so that a burst of new journeys
cannot take every slot.

A journey's first task asks the round for its view (a local activity that queries the round
workflow) and holds its workflow-task slot until the answer comes. The round's query is itself a
workflow task on this worker. With plain fixed slots a registration burst filled every slot with
first tasks, the round's query found no slot (its poll was never made: a poll needs a slot), the
server answered "no poller seen for task queue recently", and the journeys waited out their
local activity's retries and a one-minute pause (issue 17, measured). Here the polls of the
shared queue and eager starts, which bring new journeys, stop `reserved` slots short of the
total; polls of this worker's sticky queue, where the round and every cached journey's tasks
arrive, may use every slot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from temporalio.worker import (
    CustomSlotSupplier,
    SlotMarkUsedContext,
    SlotPermit,
    SlotReleaseContext,
    SlotReserveContext,
)


class StickyReserveSlots(CustomSlotSupplier):
    """At most `total` workflow tasks at once, of which new (non-sticky) ones at most
    `total - reserved`."""

    def __init__(self, total: int, reserved: int) -> None:
        if not 0 < reserved < total:
            raise ValueError(
                f"reserved sticky slots {reserved} must be at least 1 and below the total {total}"
            )
        self.total = total
        self.reserved = reserved
        self.held = 0
        self._sticky: deque[asyncio.Future[None]] = deque()
        self._shared: deque[asyncio.Future[None]] = deque()

    def _limit(self, sticky: bool) -> int:
        return self.total if sticky else self.total - self.reserved

    async def reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit:
        """Wait for a slot within this kind of poll's limit."""
        sticky = ctx.is_sticky
        if self.held < self._limit(sticky) and not (self._sticky or (self._shared and not sticky)):
            self.held += 1
            return SlotPermit()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._sticky if sticky else self._shared
        queue.append(waiter)
        try:
            await waiter  # the slot is counted as held by whoever woke us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # woken and cancelled at once: give the slot back
            else:
                with contextlib.suppress(ValueError):  # already taken off by a release
                    queue.remove(waiter)
            raise
        return SlotPermit()

    def try_reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit | None:
        """An eager start's slot, only within the limit of new journeys and never ahead of a
        waiting poll."""
        if self.held < self._limit(ctx.is_sticky) and not (self._sticky or self._shared):
            self.held += 1
            return SlotPermit()
        return None

    def mark_slot_used(self, ctx: SlotMarkUsedContext) -> None:
        """Nothing to record: a slot counts from its reservation."""

    def release_slot(self, ctx: SlotReleaseContext) -> None:
        """Hand the slot to a waiting sticky poll first, then to a shared one within its limit."""
        self._release()

    def _release(self) -> None:
        self.held -= 1
        for queue, limit in ((self._sticky, self.total), (self._shared, self._limit(False))):
            while queue and self.held < limit:
                waiter = queue.popleft()
                if not waiter.done():
                    self.held += 1
                    waiter.set_result(None)
                    return
