"""Read how a journey ended: its result, from Temporal, for the applicant's aftermath."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from domain.aftermath import JourneyEnd, JourneyEndRequest
from domain.messages import JourneyState
from domain.protocol import READ_JOURNEY_END

RPC_TIMEOUT = timedelta(seconds=10)  # within the local activity's 15 s


class JourneyReader:
    """Reads a journey's status and, once it completed, its result (the JourneyState it returned:
    the last event of its history, which no one can change after the journey closed)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=READ_JOURNEY_END.name)
    async def read_journey_end(self, req: JourneyEndRequest) -> JourneyEnd:
        """`found=False` when there is no such journey; the state only when it completed. Safe to
        repeat; never waits for a running journey."""
        handle = self.client.get_workflow_handle(req.workflow_id, result_type=JourneyState)
        try:
            description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return JourneyEnd(found=False)
            raise
        status = description.status
        name = status.name.lower() if status is not None else "unknown"
        if status != WorkflowExecutionStatus.COMPLETED:
            return JourneyEnd(status=name)
        state = await handle.result(rpc_timeout=RPC_TIMEOUT)
        return JourneyEnd(status=name, state=state)
