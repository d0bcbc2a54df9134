"""The headers every answer of the gateway carries: no page in another site's frame, no type
guessed from content, no full URL sent to other sites, and no cache keeping a visitor's page.

The pages are the gateway's own templates with one style sheet (/static/site.css) and no script,
so the policy allows nothing else; the OpenAPI page (/api/docs) loads Swagger UI's script and
style from its CDN and keeps only the frame rule.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
DOCS_POLICY = "frame-ancestors 'none'"
DOCS = "/api/docs"
# The same for every visitor, whoever asks: announcements (signed, public) and the style sheet.
# Everything else may be a visitor's own (a session, a form token tied to their cookie, an API
# caller's answer) and is kept by no cache, unless the route says otherwise.
SHARED = ("/pengumuman", "/static/")


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers an answer to `path` carries (each unless the route set its own)."""
    policy = DOCS_POLICY if path == DOCS or path.startswith(DOCS + "/") else PAGE_POLICY
    headers = [
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    ]
    if not path.startswith(SHARED):
        headers.append((b"cache-control", b"no-store"))
    return headers


def add_security_headers(response: Response, path: str) -> None:
    """Give `response` the headers of `path` it lacks (an answer made outside the middleware)."""
    for name, value in security_headers(path):
        if name.decode() not in response.headers:
            response.headers[name.decode()] = value.decode()


class SecurityHeaders:
    """ASGI middleware: adds `security_headers` to every HTTP answer, keeping a header the
    route set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = list(message.get("headers") or [])
                names = {name.lower() for name, _ in given}
                message["headers"] = given + [(n, v) for n, v in extra if n not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)
