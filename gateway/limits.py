"""Limits every request passes: a request id in every log line, a body-size cap (413), and
per-client rate limits on the endpoints that attract floods (registration, login)."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import PROBLEM_JSON, Problem
from runtime.logs import get_logger

log = get_logger("gateway")
REQUEST_ID = "x-request-id"


def _problem_bytes(status: int, title: str, detail: str, path: str, request_id: str) -> bytes:
    import json

    return json.dumps(
        {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": path,
            "request_id": request_id,
        }
    ).encode()


class RequestLimits:
    """ASGI middleware: gives each request an id (kept from a well-formed `X-Request-Id`, else
    new), binds it to every log line written while the request runs, answers it in the
    response, logs one line per request, and refuses a body over `max_body` bytes (`wider`'s
    limit on its paths) with 413 (by Content-Length up front, or while reading a chunked body)."""

    def __init__(
        self, app: ASGIApp, max_body: int, wider: tuple[re.Pattern[str], int] | None = None
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.wider = wider  # (paths, their larger limit): the batch route's

    def limit(self, path: str) -> int:
        """The largest body a request to `path` may carry."""
        if self.wider is not None and self.wider[0].fullmatch(path):
            return self.wider[1]
        return self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = (
            given
            if 8 <= len(given) <= 64 and given.replace("-", "").isalnum()
            else uuid.uuid4().hex
        )
        scope.setdefault("state", {})["request_id"] = request_id
        max_body = self.limit(scope.get("path", ""))
        started = time.perf_counter()
        status = {"code": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        async def refuse_too_large() -> None:
            body = _problem_bytes(
                413,
                "Request body too large",
                f"the body is larger than {max_body} bytes",
                scope.get("path", ""),
                request_id,
            )
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > max_body):
                await refuse_too_large()
                return
            received = 0
            too_large = False

            async def counting_receive() -> Message:
                nonlocal received, too_large
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > max_body:
                        too_large = True
                        raise _BodyTooLarge(max_body)
                return message

            try:
                await self.app(scope, counting_receive, send_with_id)
            except _BodyTooLarge:
                if status["code"] == 0:
                    await refuse_too_large()
            except Exception:
                # Answered outside, by the app's handler of unexpected errors: a 500, not the
                # 413 the log line would otherwise say.
                status["code"] = status["code"] or 500
                raise
        finally:
            log.info(
                "request",
                method=scope.get("method"),
                path=loggable_path(scope.get("path", "")),
                status=status["code"] or 413,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.unbind_contextvars("request_id")


class _BodyTooLarge(HTTPException):
    """A body found too large while it is read. An HTTPException, because FastAPI turns any
    other exception raised while it reads a body into a 400; this one reaches the app's
    handler and becomes the 413 (and the middleware answers it where no handler does)."""

    def __init__(self, max_body: int) -> None:
        super().__init__(413, f"the body is larger than {max_body} bytes")


_DIGIT_RUN = re.compile(r"\d{10,}")


def loggable_path(path: str) -> str:
    """The path as logged: registration numbers are pseudonyms, so the gateway's own paths carry
    no personal data; a query string (which could) is never logged. A caller that puts a NIK
    where a registration number goes (a run of 10 or more digits, fullwidth ones too) has it
    logged as its length. Masked before it is cut to 200 characters, so a NIK the cut splits
    leaves none of its digits. Every log line of the gateway that names a path takes it from
    here: the request line and each error handler's."""
    return _DIGIT_RUN.sub(lambda run: f"<{len(run[0])} digits>", path[:1000])[:200]


class RateLimiter:
    """A token bucket per client key: `per_minute` requests a minute, bursts up to `burst`
    (the same as `per_minute` unless given).

    Per process: with several gateway processes behind a balancer each keeps its own buckets,
    so the effective limit is per process (docs/GATEWAY.md)."""

    def __init__(
        self,
        per_minute: float,
        max_clients: int = 100_000,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute if burst is None else burst)
        self.max_clients = max_clients
        self.clock = clock  # seconds, never going back (a test's own, to pass a window at once)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def refund(self, key: str) -> None:
        """Give back the token a request took (a login that succeeded counts no failure). Taken
        first and given back after, so concurrent requests cannot all pass one check."""
        if key in self._buckets:
            tokens, at = self._buckets[key]
            self._buckets[key] = (min(self.burst, tokens + 1), at)

    def retry_after(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead (and takes a token), else seconds to wait."""
        now = self.clock() if now is None else now
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / self.rate
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def hold_back(limiter: RateLimiter, identity: str, what: str) -> None:
    """429, with Retry-After and a warning in the log naming who, when `identity` has had its
    share of `what` this minute from `limiter`."""
    wait = limiter.retry_after(identity)
    if wait <= 0:
        return
    seconds = max(1, math.ceil(wait))
    log.warning("rate limited", what=what, by=identity, retry_after=seconds)
    raise Problem(
        429,
        f"too many {what} for {identity}: at most {round(limiter.rate * 60)} a minute; try "
        f"again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )
