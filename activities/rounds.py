"""Read a round's own answer for a journey that starts (its rules and registration window)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.messages import RoundView, RoundViewRequest
from domain.protocol import READ_ROUND, ROUND_VIEW

QUERY_TIMEOUT = timedelta(seconds=10)  # within the local activity's 15 s


class RoundReader:
    """Asks the round workflow (by query: no event in its history) what a journey is judged by."""

    def __init__(self, client: Client) -> None:
        self.client = client

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
        handle = self.client.get_workflow_handle(req.workflow_id)
        try:
            return await ROUND_VIEW.ask(handle, req.formasi_code, rpc_timeout=QUERY_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return RoundView(found=False)
            raise
