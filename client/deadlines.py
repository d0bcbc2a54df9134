"""A deadline on every query a client sends: a query is answered by a worker after the workflow's
current task, and with no worker (or none that can replay the workflow) the server answers late
and in more than one way. With a deadline it is always the same answer, at a known time: an
RPCError whose status is DEADLINE_EXCEEDED or CANCELLED ("Timeout expired")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, Interceptor, OutboundInterceptor, QueryWorkflowInput


class QueryDeadline(Interceptor):
    """Gives every query a client sends without a deadline of its own `deadline`."""

    def __init__(self, deadline: timedelta) -> None:
        self.deadline = deadline

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _QueryDeadlineOutbound(next, self.deadline)


class _QueryDeadlineOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, deadline: timedelta) -> None:
        super().__init__(next)
        self.deadline = deadline

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        if input.rpc_timeout is None:
            input.rpc_timeout = self.deadline
        return await super().query_workflow(input)


def with_query_deadline(client: Client, deadline: timedelta) -> Client:
    """`client` on the same connection, its queries ending after `deadline` at the latest."""
    config = client.config()
    config["interceptors"] = [*config["interceptors"], QueryDeadline(deadline)]
    return Client(**config)
