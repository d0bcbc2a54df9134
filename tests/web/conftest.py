"""The gateway's ASGI app on the session's real stack, with a worker, for httpx and the browser.

The gateway connects to the read model as the gateway's role (casn_gateway, migrations 023 and
024, by column), as serve.py's does, so that every web test shows its grants suffice; the worker,
and a test's own set-up that writes as the workers do, use the worker's pool (casn_runtime).

Every test identity of tests/roundkit.py holds the API key `api-key-<identity>`; the portal
signs as `sscasn`, the test rounds' portal identity.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest_asyncio

from client.api import RecruitmentApi
from client.sanctions import SanctionRegister
from client.status import StateCache
from domain.signing import Keyring
from gateway.app import create_app
from gateway.deps import ApiKeys, Gateway, RoundDirectory, api_key_digest
from runtime.db import open_pool
from runtime.embedded import role_database_url
from runtime.migrate import GATEWAY_ROLE, check_schema
from tests.roundkit import REPORTERS, TEST_KEYRING, test_signer

PORTAL = "sscasn"
IDENTITIES = sorted({i for ids in REPORTERS.values() for i in ids})


def api_key(identity: str) -> str:
    """The test API key of a test identity."""
    return f"api-key-{identity}"


def auth(identity: str) -> dict[str, str]:
    """The Authorization header of a test identity."""
    return {"Authorization": f"Bearer {api_key(identity)}"}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def gateway_pool(stack, stack_settings):
    """The read model as the gateway connects to it: as the gateway's role, checked as serve.py
    checks it at start."""
    url = role_database_url(stack_settings, GATEWAY_ROLE)
    await check_schema(url, role=GATEWAY_ROLE)
    pool = await open_pool(url, max_size=8)
    try:
        yield pool
    finally:
        await pool.close()


@pytest_asyncio.fixture(loop_scope="session")
async def gateway_state(client, keys, running_worker, gateway_pool):
    """A Gateway on the running worker's task queue, connected to the read model as the gateway's
    role, and checking every registration against the sanctions register on that pool, as
    gateway/app.py builds it (without it, no web test saw that 023 left the gateway's role unable
    to put a round on the sanctions calendar: every online registration at a real gateway was 503)."""
    settings, _ = running_worker
    pool = gateway_pool
    settings = settings.model_copy(update={"portal_identity": PORTAL})
    portal = test_signer(PORTAL)
    return Gateway(
        settings=settings,
        api=RecruitmentApi(
            client,
            settings.task_queue,
            keys.pseudonym_key,
            keyring=Keyring([portal]),
            sanctions=SanctionRegister(pool),
        ),
        pool=pool,
        api_keys=ApiKeys({api_key_digest(api_key(i)): i for i in IDENTITIES}),
        portal=portal,
        rounds=RoundDirectory(
            RecruitmentApi(client, settings.task_queue, keys.pseudonym_key), state_ttl=0.0
        ),
        # As the gateway runs: every status page of the web tests goes through the cache, so
        # each test that reads a status after a change holds the cache to answering the new state.
        states=StateCache(1_000),
    )


@pytest_asyncio.fixture(loop_scope="session")
async def http(gateway_state):
    """An httpx client speaking to the app in-process (ASGI), as a service would over HTTP."""
    app = create_app(gateway_state)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


# The services' signing keys, for tests that sign what they send.
SERVICES = TEST_KEYRING


def idle_gateway(gateway: Gateway, client, keys) -> Gateway:
    """`gateway` with an engine client on a task queue no worker polls, waiting one second for a
    registration's answer: the journey is started and recorded but cannot answer in time (a
    deadline-day backlog), so the registration is pending."""
    import dataclasses
    import uuid

    api = RecruitmentApi(
        client,
        f"idle-{uuid.uuid4().hex[:6]}",
        keys.pseudonym_key,
        keyring=gateway.api.keyring,
        confirm_within=1.0,
    )
    return dataclasses.replace(gateway, api=api)


@contextlib.asynccontextmanager
async def serving(gateway: Gateway):
    """The gateway's app on a real TCP port (uvicorn, in the running event loop): its URL."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(gateway),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
    )
    server.capture_signals = contextlib.nullcontext  # pytest keeps its own signal handling
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest_asyncio.fixture(loop_scope="session")
async def live_url(gateway_state):
    """The app on a real TCP port, for the browser."""
    async with serving(gateway_state) as url:
        yield url
