"""The headers every answer of the gateway carries: no page in another site's frame, no type
guessed from content, no full URL sent to other sites, no cache keeping a visitor's page, and
outside the embedded mode HTTPS only (HSTS); the public announcements, the same for everyone, are
kept by any cache for a minute (a 200 or a 304 only: never a redirect or an error).

The pages are the gateway's own templates with one style sheet (/static/site.css) and no script,
so the policy allows nothing else; the OpenAPI page (/api/docs, gateway/api_docs.py) runs Swagger
UI from the gateway's own files, so its policy allows script, and the document's fetch, from the
gateway's origin only, and the images Swagger UI's style sheet holds inline (data: URLs).
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS = "/api/docs"
DOCS_ASSETS = DOCS + "/assets"  # Swagger UI's script and style sheet
# The same for every visitor, whoever asks: announcements (signed, public), the style sheet and
# the OpenAPI page's Swagger UI files. Everything else may be a visitor's own (a session, a form
# token tied to their cookie, an API caller's answer) and is kept by no cache, unless the route
# says otherwise.
SHARED = ("/pengumuman", "/static/", DOCS_ASSETS + "/")
ANNOUNCEMENTS = "/pengumuman"
# An announcement's answer, kept by a CDN or a browser for a minute before it asks again (the
# publication routes add an ETag, so asking again costs a 304): a later DIS or revocation shows
# within the minute. The style sheet and Swagger UI's files carry StaticFiles' ETag and
# Last-Modified only.
PAGE_CACHE = "public, max-age=60"
# Only an answer itself, or its 304, is the same for everyone. An error (a publication not there
# yet, the database down) is kept by none, and neither is a redirect: its Location may be made
# from what the request said (Starlette's trailing-slash redirect built it from the client's Host
# header), and a cache keyed without the Host would send everyone where one visitor wrote.
SHARED_STATUSES = (200, 304)
# Outside the embedded mode the gateway is reached over HTTPS (its cookies are Secure): a browser
# that has seen this goes to HTTPS by itself for a year, so a first `http://` typed or linked is
# not answered by whoever sits on the visitor's network (an SSL-stripping proxy on a cafe's Wi-Fi)
# with a page that takes the password. Browsers ignore it on a plain-HTTP answer.
HSTS = "max-age=31536000"


def security_headers(path: str, status: int = 200, hsts: bool = False) -> list[tuple[bytes, bytes]]:
    """The headers an answer to `path` with `status` carries (each unless the route set its
    own); with `hsts`, Strict-Transport-Security too (a deployment behind TLS)."""
    policy = DOCS_POLICY if path == DOCS or path.startswith(DOCS + "/") else PAGE_POLICY
    headers = [
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    ]
    if hsts:
        headers.append((b"strict-transport-security", HSTS.encode()))
    if not path.startswith(SHARED) or status not in SHARED_STATUSES:
        headers.append((b"cache-control", b"no-store"))
    elif path.startswith(ANNOUNCEMENTS):
        headers.append((b"cache-control", PAGE_CACHE.encode()))
    return headers


def add_security_headers(response: Response, path: str, hsts: bool = False) -> None:
    """Give `response` the headers of `path` it lacks (an answer made outside the middleware)."""
    for name, value in security_headers(path, response.status_code, hsts):
        if name.decode() not in response.headers:
            response.headers[name.decode()] = value.decode()


class SecurityHeaders:
    """ASGI middleware: adds `security_headers` to every HTTP answer, keeping a header the
    route set itself; `hsts` outside the embedded mode (served over HTTPS)."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = security_headers(path, message.get("status", 200), self.hsts)
                given = list(message.get("headers") or [])
                names = {name.lower() for name, _ in given}
                message["headers"] = given + [(n, v) for n, v in extra if n not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """ASGI middleware: HEAD answered as GET without its body (RFC 9110 9.3.2), for uptime checks,
    balancers and `curl -I`, which otherwise met a 405 on every page. The route runs as for a GET
    (its status, headers and Content-Length are the GET's), so HEAD is refused wherever GET is, and
    is no way around a rate limit: it spends the GET's allowance."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the rest of a streamed body: nothing of it is sent
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
