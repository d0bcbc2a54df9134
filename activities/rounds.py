"""Read a round's own answer for a journey that starts (its rules and registration window)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.messages import RoundView, RoundViewRequest
from domain.protocol import READ_ROUND, ROUND_VIEW

QUERY_TIMEOUT = timedelta(seconds=10)  # within the local activity's 15 s
# The server holds a query to a workflow whose task is in progress in a buffer of one (dynamic
# config history.MaxBufferedQueryCount) and refuses the next with RESOURCE_EXHAUSTED; the local
# activity's own retry would wait 1, 2, 4, 8 s. Asked again here after a short pause instead.
BUSY_PAUSE = 0.05  # seconds, doubled up to BUSY_PAUSE_MAX
BUSY_PAUSE_MAX = 0.5


class RoundReader:
    """Asks the round workflow (by query: no event in its history) what a journey is judged by."""

    def __init__(self, client: Client) -> None:
        self.client = client
        # (round workflow, formasi) -> the callers waiting for the next query to be sent
        self._waiting: dict[tuple[str, str], asyncio.Future[RoundView]] = {}
        self._sending: dict[str, asyncio.Lock] = {}  # round workflow -> its query in flight

    @activity.defn(name=READ_ROUND.name)
    async def read_round(self, req: RoundViewRequest) -> RoundView:
        """The round's view; `found=False` when no such round exists. Safe to repeat.

        A worker that is stopping answers at once that it cannot: it no longer takes the round's
        query either, and the SDK would retry this local activity until its budget ran out (a
        minute) before the worker could stop. The journey pauses on its durable timer instead
        and asks again on a worker that runs (workflows/calls.py)."""
        if activity.is_worker_shutdown():
            raise ApplicationError(
                "the worker is stopping; the round is asked again after a pause",
                type="WorkerStopping",
                non_retryable=True,
            )
        return await self._next_answer(req)

    async def _next_answer(self, req: RoundViewRequest) -> RoundView:
        """The answer of a query sent after this call began, shared with every caller that asked
        for the same formasi meanwhile, and one query in flight per round, however many journeys
        start at once (a registration burst of issue 17 asked the round once per journey; the
        server buffers one query while the round's task runs and refuses the others). No answer
        is older than its ask."""
        key = (req.workflow_id, req.formasi_code)
        batch = self._waiting.get(key)
        if batch is None:
            batch = asyncio.get_running_loop().create_future()
            self._waiting[key] = batch
            asyncio.ensure_future(self._send(key, req, batch))
        return await asyncio.shield(batch)

    async def _send(
        self, key: tuple[str, str], req: RoundViewRequest, batch: asyncio.Future[RoundView]
    ) -> None:
        async with self._sending.setdefault(key[0], asyncio.Lock()):  # per round workflow
            if self._waiting.get(key) is batch:
                del self._waiting[key]  # who asks from now on waits for the next query
            try:
                batch.set_result(await self._ask(req))
            except Exception as exc:  # noqa: BLE001 - every caller of this batch gets it
                batch.set_exception(exc)
                batch.exception()  # retrieved: a batch whose callers all left logs nothing

    async def _ask(self, req: RoundViewRequest) -> RoundView:
        handle = self.client.get_workflow_handle(req.workflow_id)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + QUERY_TIMEOUT.total_seconds()
        pause = BUSY_PAUSE
        while True:
            try:
                return await ROUND_VIEW.ask(handle, req.formasi_code, rpc_timeout=QUERY_TIMEOUT)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return RoundView(found=False)
                busy = exc.status == RPCStatusCode.RESOURCE_EXHAUSTED
                if not busy or loop.time() + pause > give_up:
                    raise
            await asyncio.sleep(pause)
            pause = min(2 * pause, BUSY_PAUSE_MAX)
