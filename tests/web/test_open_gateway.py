"""The gateway as `open_gateway` builds it for serve.py, on the session's real stack."""

from __future__ import annotations

from datetime import timedelta

import pytest

from client.deadlines import QueryDeadline
from gateway.app import open_gateway
from runtime.app import App

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_gateways_queries_end_at_the_configured_deadline(
    client, keys, stack, stack_settings, tmp_path
):
    """CASN_QUERY_SECONDS reaches the gateway's client: a status page whose journey no worker
    answers for is the unavailable page after that long (tests/web/test_portal.py), on the same
    connection as the rest of the process."""
    settings = stack_settings.model_copy(update={"query_seconds": 7.0, "data_dir": tmp_path})
    gateway = await open_gateway(App(settings=settings, stack=stack, keys=keys, client=client))
    try:
        mine = gateway.api.client
        deadlines = [i for i in mine.config()["interceptors"] if isinstance(i, QueryDeadline)]
        assert [d.deadline for d in deadlines] == [timedelta(seconds=7)]
        assert mine.service_client is client.service_client
        assert not any(isinstance(i, QueryDeadline) for i in client.config()["interceptors"])
    finally:
        await gateway.pool.close()
