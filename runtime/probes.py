"""Health and readiness, and the small HTTP server a worker or the notification deliverer
answers them on with /metrics.

`/healthz` says the process serves (liveness: no dependency is asked, so an outage of the
database does not get every process restarted). `/readyz` says it can do its work now: Temporal's
frontend answers its health check and PostgreSQL a `SELECT 1`, each within a short timeout (the
deliverer, which needs no Temporal once started, asks PostgreSQL only), and the process's own
state is "ok" (a worker polls its queue; a deliverer's last pass finished recently); 503 with what
failed otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from runtime.logs import get_logger
from runtime.metrics import CONTENT_TYPE, metrics_page, read_model_gauges

log = get_logger("probes")
READY_TIMEOUT_S = 2.0


async def readiness(
    client: Client | None, pool: asyncpg.Pool, timeout: float = READY_TIMEOUT_S
) -> dict[str, str]:
    """Ask Temporal (unless `client` is None) and PostgreSQL, concurrently, each within `timeout`
    seconds: "ok" or why not, by name (`temporal`, `postgres`)."""

    async def temporal() -> str:
        serving = await asyncio.wait_for(
            client.service_client.check_health(timeout=timedelta(seconds=timeout)), timeout
        )
        return "ok" if serving else "not serving"

    async def postgres() -> str:
        async with asyncio.timeout(timeout):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        return "ok"

    async def check(probe) -> str:
        try:
            return await probe()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and says which
            return f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__

    probes = (
        {"postgres": postgres} if client is None else {"temporal": temporal, "postgres": postgres}
    )
    results = await asyncio.gather(*(check(probe) for probe in probes.values()))
    return dict(zip(probes, results, strict=True))


async def ready_response(
    client: Client | None, pool: asyncpg.Pool, *extra: tuple[str, str]
) -> JSONResponse:
    """/readyz's answer: 200 when every check (and each `extra` (name, state)) is "ok", else 503."""
    checks = {**await readiness(client, pool), **dict(extra)}
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **checks}, 200 if ready else 503
    )


def probe_app(
    client: Client,
    pool: asyncpg.Pool,
    running: Callable[[], bool],
    read_model_interval: float = 60.0,
) -> Starlette:
    """/metrics, /healthz and /readyz of a worker; `running` says whether it polls its queue."""

    async def readyz(_: Request) -> JSONResponse:
        return await ready_response(client, pool, ("worker", "ok" if running() else "not polling"))

    return _probe_routes(readyz, pool, read_model_interval)


def deliverer_probe_app(
    pool: asyncpg.Pool, progress: Callable[[], str], read_model_interval: float = 60.0
) -> Starlette:
    """/metrics, /healthz and /readyz of the notification deliverer: ready when PostgreSQL
    answers and `progress` (apps/fleet.py, DeliveryProgress.state) is "ok"."""

    async def readyz(_: Request) -> JSONResponse:
        return await ready_response(None, pool, ("deliverer", progress()))

    return _probe_routes(readyz, pool, read_model_interval)


def _probe_routes(readyz, pool: asyncpg.Pool, read_model_interval: float) -> Starlette:
    """The three routes, with `readyz` as /readyz."""
    gauges = read_model_gauges(pool, read_model_interval)

    async def metrics(_: Request) -> Response:
        return Response(await metrics_page(gauges), media_type=CONTENT_TYPE)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ]
    )


class ProbePortError(OSError):
    """The probes' address cannot be bound; names the settings to change."""


class ProbeServer:
    """The probe app on host:port under uvicorn, in the caller's event loop; `port_setting` is
    the variable that gave the port (named when it cannot be bound)."""

    def __init__(
        self, app: Starlette, host: str, port: int, port_setting: str = "CASN_METRICS_PORT"
    ) -> None:
        self.address = f"{host}:{port}"
        try:
            self._sock = socket.create_server((host, port), reuse_port=False)
        except OSError as exc:
            raise ProbePortError(
                f"cannot serve /metrics on CASN_METRICS_HOST:{port_setting} = {self.address} "
                f"({exc.strerror or exc}): another process on this host? Give each its own "
                f"{port_setting}, or 0 for none"
            ) from None
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                lifespan="off",
                server_header=False,
                timeout_graceful_shutdown=2,
            )
        )
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ProbeServer:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        log.info("serving /metrics, /healthz, /readyz", address=self.address)
        return self

    async def __aexit__(self, *_exc) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._sock.close()
