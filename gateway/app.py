"""The gateway's FastAPI application: one app for the service API, the portal and the public
pages, built from a `Gateway` (its connections) so that tests can hand it their own."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import RPCTimeoutOrCancelledError, WorkflowQueryFailedError

from client.api import RecruitmentApi
from client.deadlines import with_query_deadline
from client.sanctions import SanctionRegister
from client.status import StateCache
from domain.signing import Keyring, Signer, SigningKeyError
from gateway import problems
from gateway.api_docs import serve_api_docs
from gateway.clients import from_inside
from gateway.deps import (
    STATIC,
    ApiKeyFile,
    ApiKeys,
    Gateway,
    GatewayConfigError,
    RoundDirectory,
)
from gateway.headers import HeadAsGet, SecurityHeaders, add_security_headers
from gateway.limits import RequestLimits, loggable_path
from gateway.service_api import READ_MODEL_DOWN
from runtime.db import open_pool, raised_by_database
from runtime.logs import get_logger
from runtime.metrics import CONTENT_TYPE, metrics_page, read_model_gauges
from runtime.probes import ready_response
from runtime.sealed import ColumnCipher

log = get_logger("gateway")

# What a visitor's browser shows for an HTTP error outside the API (title, text), by status.
HTTP_PAGES = {
    400: (
        "Permintaan tidak dapat diproses",
        "Permintaan ini tidak dapat diproses. Tidak ada yang diubah. Mulai lagi dari halaman depan.",
    ),
    404: (
        "Halaman tidak ditemukan",
        "Halaman yang Anda buka tidak ada. Periksa kembali alamatnya, atau mulai dari halaman "
        "depan.",
    ),
    405: (
        "Halaman tidak dapat dibuka langsung",
        "Alamat ini hanya menerima formulir yang dikirim dari halaman portal. Tidak ada yang "
        "diubah. Buka kembali halaman asalnya, atau mulai dari halaman depan.",
    ),
    413: (
        "Isian terlalu panjang",
        "Formulir yang dikirim terlalu besar untuk diterima. Tidak ada yang diubah. Persingkat "
        "isiannya, lalu kirim ulang.",
    ),
}


def _serve_openapi(app: FastAPI) -> None:
    """Have `app` serve its OpenAPI document with what FastAPI cannot read from the models added
    (service_api.describe_batch_items): FastAPI's documented way to edit the document, built once
    and kept in `app.openapi_schema`."""
    from gateway import service_api

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            service_api.describe_batch_items(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


@asynccontextmanager
async def _documented(app: FastAPI) -> AsyncIterator[None]:
    """Build the OpenAPI document as the server starts: a document that would refer to a schema
    it lacks stops the start, instead of reaching an integrator's code generator."""
    app.openapi()
    yield


def create_app(gw: Gateway) -> FastAPI:
    """The ASGI app serving `gw`."""
    from gateway import operator_api, portal, public, service_api

    app = FastAPI(
        title="CASN recruitment gateway",
        version="1",
        summary="Signed reports and commands from services; the applicant portal; public "
        "announcements.",
        docs_url=None,  # served by api_docs: Swagger UI from the gateway, not a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=_documented,
        # No redirect of `/x/` to `/x`: Starlette builds its Location from the request's Host
        # header and the scheme the gateway sees (http behind the TLS balancer), so a visitor
        # was sent to plain http, or by a cache keyed without the Host to whatever host one
        # client wrote. `/x/` is answered as any address no route serves: 404.
        redirect_slashes=False,
    )
    _serve_openapi(app)
    serve_api_docs(app)
    app.state.gateway = gw
    problems.install(app)

    async def engine_unavailable(request: Request, detail: str, exc: Exception) -> Response:
        """503 with Retry-After: problem+json on the API, the portal's unavailable page."""
        if request.url.path.startswith("/api/"):
            return problems.problem_response(
                request, problems.Problem(503, detail, headers={"Retry-After": "30"})
            )
        return portal.unavailable(
            await portal.visit(request, gw), loggable_path(request.url.path), exc
        )

    @app.exception_handler(WorkflowQueryFailedError)
    async def _unreadable(request: Request, exc: WorkflowQueryFailedError) -> Response:
        """A workflow's query that its worker could not answer (it could not replay the workflow:
        a non-deterministic deployment, a bug): 503, nothing changed, and an error in the log for
        the operators. A bare 500 before."""
        log.error(
            "a query the worker could not answer",
            path=loggable_path(request.url.path),
            error=str(exc)[:300],
        )
        return await engine_unavailable(request, problems.ENGINE_UNREADABLE, exc)

    @app.exception_handler(RPCTimeoutOrCancelledError)
    async def _late(request: Request, exc: RPCTimeoutOrCancelledError) -> Response:
        """The engine did not answer within the client's attempts (a deadline peak: the client
        already sent the same message again, RecruitmentApi._update): whether it was taken is not
        known, and a repeat is safe. 503, not a bare 500."""
        log.warning("the engine did not answer in time", path=loggable_path(request.url.path))
        return await engine_unavailable(request, problems.ENGINE_LATE, exc)

    def plain_page(
        request: Request, status: int, title: str, text: str, **headers: str
    ) -> Response:
        """A page of the portal's look that asks nothing of the database or the engine."""
        return gw.templates.TemplateResponse(
            request,
            "portal/message.html",
            {
                "account": None,
                "title": title,
                "text": text,
                "kind": "errors",
                "back": ("/", "Halaman depan"),
            },
            status_code=status,
            headers=headers or None,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """An address no route serves (404), or one opened with a method it does not take (405:
        a bookmarked /keluar, a form's address typed in): problem+json on the API, a page in
        Indonesian on the portal and the public pages, where a visitor's browser shows it.
        Starlette's own words ("Not Found") never reach an applicant."""
        if request.url.path.startswith("/api/"):
            return problems.problem_response(
                request,
                problems.Problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {})),
            )
        title, text = HTTP_PAGES.get(exc.status_code, HTTP_PAGES[400])
        return plain_page(request, exc.status_code, title, text, **dict(exc.headers or {}))

    async def _read_model_down(request: Request, exc: Exception) -> Response:
        """The read model could not be reached or used (a page or a route that reads it without
        its own answer for that): 503 with Retry-After, its own words only in the log (they may
        name a host). On the portal and the public pages, a page that does not ask the database
        for the visitor's session. A bare 500 before. An OSError raised anywhere but in asyncpg is
        not the read model's: it is answered as unexpected."""
        if isinstance(exc, OSError) and not raised_by_database(exc):
            return await _unexpected(request, exc)  # a file, a socket of its own: not the database
        log.warning(
            "read model unreachable", path=loggable_path(request.url.path), error=type(exc).__name__
        )
        if request.url.path.startswith("/api/"):
            return problems.problem_response(
                request,
                problems.Problem(
                    503,
                    "the read model cannot be reached; ask again later",
                    headers={"Retry-After": "30"},
                ),
            )
        return plain_page(
            request,
            503,
            "Layanan sedang tidak tersedia",
            "Data seleksi sedang tidak dapat dibaca. Silakan coba lagi beberapa saat lagi.",
            **{"Retry-After": "30"},
        )

    for kind in READ_MODEL_DOWN:
        app.add_exception_handler(kind, _read_model_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        """Whatever no other handler answers: a 500 that carries the request id (the log line
        with the traceback has it too), as problem+json on the API; the portal and the public
        pages get a page that asks nothing of the database or the engine. Starlette answers it
        outside every middleware, so it gets the security headers here."""
        log.error(
            "unexpected error",
            path=loggable_path(request.url.path),
            error=type(exc).__name__,
            exc_info=exc,
        )
        request_id = getattr(request.state, "request_id", "")
        response: Response
        if request.url.path.startswith("/api/"):
            response = problems.problem_response(
                request,
                problems.Problem(
                    500,
                    f"the gateway failed to answer (request {request_id}); nothing is known to "
                    "have changed: send the same message again, and give the request id to the "
                    "operators if it fails again",
                ),
            )
        else:
            response = plain_page(
                request,
                500,
                "Terjadi kesalahan",
                "Permintaan Anda tidak dapat diselesaikan. Silakan coba lagi beberapa saat lagi. "
                "Jika masalah berlanjut, sampaikan kode permintaan ini kepada panitia: "
                f"{request_id}.",
            )
        add_security_headers(response, request.url.path, hsts=not gw.settings.development)
        return response

    app.include_router(service_api.router)
    app.include_router(operator_api.router)
    app.include_router(portal.router)
    app.include_router(public.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    gauges = read_model_gauges(gw.pool, gw.settings.metrics_read_model_interval)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Liveness: the process serves. It asks no dependency (that is /readyz), so a database
        outage does not get every gateway restarted."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Readiness: Temporal and PostgreSQL answer within 2 s each; 503 naming what did not."""
        return await ready_response(gw.api.client, gw.pool)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus: the gateway's metrics and its SDK core's (runtime/metrics.py), for the
        scraper in the deployment's own network only: to anyone else, or through the balancer,
        the 404 of an address no page serves (they count journeys per stage before the
        announcements, and name the operators who looked applicants up)."""
        peer = request.client.host if request.client else None
        if not from_inside(peer, request.headers.keys()):
            raise StarletteHTTPException(404)
        return Response(await metrics_page(gauges), media_type=CONTENT_TYPE)

    # Inside the request log (RequestLimits), which so names a HEAD as HEAD.
    app.add_middleware(HeadAsGet)
    batches = re.compile(re.escape(service_api.router.prefix) + r"/rounds/[^/]+/reports")
    app.add_middleware(
        RequestLimits,
        max_body=gw.settings.http_max_body_bytes,
        wider=(batches, gw.settings.http_max_batch_bytes),
    )
    # The outermost: on every answer, a 413 included; HSTS outside the embedded mode (HTTPS).
    app.add_middleware(SecurityHeaders, hsts=not gw.settings.development)
    return app


def load_portal_signer(path: Path, identity: str) -> Signer:
    """The portal's private key file (written by `starter.py keygen`), which must be `identity`'s."""
    try:
        signer = Signer.from_jwk(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise GatewayConfigError(f"portal_key_file {path}: no such file") from None
    except (ValueError, TypeError, SigningKeyError) as exc:
        raise GatewayConfigError(f"portal_key_file {path}: not a key file ({exc})") from None
    if signer.identity != identity:
        raise GatewayConfigError(
            f"portal_key_file {path} holds {signer.identity}'s key, not portal_identity {identity}"
        )
    return signer


async def open_gateway(ctx) -> Gateway:
    """The gateway of a connected application context (runtime.app.App): the read model's
    pool, the API keys, and the portal's key."""
    settings = ctx.settings
    keys_dir = settings.data_dir / "keys"
    api_keys_file = settings.gateway_api_keys_file or keys_dir / "api-keys.toml"
    portal_key_file = settings.portal_key_file or keys_dir / f"{settings.portal_identity}.key.json"
    if not settings.embedded_temporal and (
        settings.gateway_api_keys_file is None or settings.portal_key_file is None
    ):
        raise GatewayConfigError(
            "with CASN_TEMPORAL_ADDRESS set, CASN_GATEWAY_API_KEYS_FILE and CASN_PORTAL_KEY_FILE "
            "must be set too"
        )
    # Read again whenever the file changes: a revoked key opens nothing without a restart.
    api_keys = ApiKeyFile(api_keys_file) if api_keys_file.exists() else ApiKeys()
    portal_signer = (
        load_portal_signer(portal_key_file, settings.portal_identity)
        if portal_key_file.exists() or settings.portal_key_file is not None
        else None
    )
    pool = await open_pool(ctx.stack.database_url, max_size=20)
    api = RecruitmentApi(
        # A status page whose journey no worker answers for is a 503 after this, not a wait.
        with_query_deadline(ctx.client, timedelta(seconds=settings.query_seconds)),
        settings.task_queue,
        ctx.keys.pseudonym_key,
        keyring=Keyring([portal_signer] if portal_signer else []),
        sanctions=SanctionRegister(pool),  # every online registration is checked against it
    )
    log.info(
        "gateway ready",
        api_identities=len(set(api_keys.by_digest.values())),
        portal_signs=portal_signer is not None,
    )
    return Gateway(
        settings=settings,
        api=api,
        pool=pool,
        api_keys=api_keys,
        portal=portal_signer,
        rounds=RoundDirectory(api),
        states=StateCache(settings.status_cache_size),
        cipher=ColumnCipher.from_keys(ctx.keys),
    )
