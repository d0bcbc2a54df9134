"""No answer of the gateway sends a visitor to an address built from what the request said, and
no cache keeps a redirect.

Found by review B: a path with a trailing slash was redirected (Starlette's redirect_slashes) to
an absolute URL built from the request's Host header and the scheme the gateway sees. serve.py
runs uvicorn with proxy_headers=False behind a TLS-terminating balancer, so the scheme was always
http, and the Host whatever the client wrote; under /pengumuman the 307 carried `Cache-Control:
public, max-age=60`, so a cache in front keyed without the Host could serve
`Location: http://phish.example/pengumuman` to everyone."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket

import httpx
import pytest
import uvicorn

from gateway.app import create_app
from gateway.headers import PAGE_CACHE, security_headers

pytestmark = pytest.mark.asyncio(loop_scope="session")


@contextlib.asynccontextmanager
async def serving(gateway):
    """The gateway's app on a real TCP port, configured as serve.py runs it (proxy_headers off)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(gateway),
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
    )
    server.capture_signals = contextlib.nullcontext
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_a_trailing_slash_is_not_found_and_sends_nobody_to_the_host_they_wrote(
    gateway_state,
):
    # Outside the embedded mode: the gateway is reached over HTTPS through its balancer.
    deployed = dataclasses.replace(
        gateway_state,
        settings=gateway_state.settings.model_copy(
            update={"temporal_address": "temporal.example:7233"}
        ),
    )
    forged = {"Host": "phish.example", "X-Forwarded-Proto": "https"}
    async with serving(deployed) as url, httpx.AsyncClient(base_url=url) as c:
        for path in ("/pengumuman/", "/pengumuman/CPNS-2027/", "/masuk/", "/status/", "/daftar/"):
            r = await c.get(path, headers=forged)
            assert (r.status_code, r.headers.get("location")) == (404, None), path
            assert r.headers["cache-control"] == "no-store", path
            assert "Halaman tidak ditemukan" in r.text, path
        api = await c.get("/api/v1/rounds/CPNS-2027/", headers=forged)
        assert (api.status_code, api.headers.get("location")) == (404, None)
        assert api.headers["content-type"].startswith("application/problem+json")
        # The addresses themselves are served as before.
        assert (await c.get("/masuk", headers=forged)).status_code == 200


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308, 400, 404, 429, 500, 503])
async def test_an_announcements_redirect_or_error_is_kept_by_no_cache(status):
    headers = dict(security_headers("/pengumuman/CPNS-2027/1", status))
    assert headers[b"cache-control"] == b"no-store"


@pytest.mark.parametrize("status", [200, 304])
async def test_an_announcements_answer_or_its_304_is_kept_for_a_minute(status):
    headers = dict(security_headers("/pengumuman/CPNS-2027/1", status))
    assert headers[b"cache-control"] == PAGE_CACHE.encode()
