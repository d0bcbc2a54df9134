"""The decode-only codec server: an authenticated auditor reads payloads in the Temporal Web UI.

The Web UI shows workflow histories, whose payloads the workers encrypted (runtime/codec.py). It
can send them to a remote codec server, from the auditor's browser, as Temporal's remote codec
protocol has it: `POST <endpoint>/decode` with `{"payloads": [...]}` (each payload's metadata
values and data in base64, as protobuf's JSON mapping writes them) and the `X-Namespace` header;
the answer is the same shape, decrypted. This server answers only that: there is no `/encode`,
so nobody can use it to write payloads that workers would take as the project's own.

Who may decode: an auditor listed in the auditors file (`identity = "sha256:<hex of token>"`,
like the gateway's API keys), proven either by `Authorization: Bearer <token>` (the temporal
CLI's `--codec-auth`) or by the session cookie that logging in at `/login` sets. A browser sends
that cookie to the codec server only when the UI asks for cross-origin credentials (the UI's
"include cross-origin credentials" codec setting, or TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true on
a UI server) and only to the same site: the UI and this server on one host name (127.0.0.1
for both, on their own ports). CORS answers the configured UI origins only, with credentials.

Every decode is logged with the auditor, the namespace, the workflow id when the caller sends
one (`X-Workflow-Id`) and the count; never a payload's content.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import re
import secrets
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payload

from gateway.deps import ApiKeys, GatewayConfigError, api_key_digest
from gateway.headers import SecurityHeaders
from runtime.codec import ENCODING, AesGcmCodec, PayloadDecryptionError
from runtime.files import open_private
from runtime.keys import Keys
from runtime.logs import get_logger
from runtime.settings import Settings

log = get_logger(__name__)

SESSION_COOKIE = "casn_codec_session"
SESSION_SECONDS = 8 * 3600
MAX_BODY_BYTES = 8 * 1024 * 1024  # a batch of payloads under Temporal's 2 MB limit each
MAX_PAYLOADS = 1000
ALLOWED_HEADERS = "Content-Type, X-Namespace, X-Workflow-Id, Authorization, Authorization-Extras"
EMBEDDED_AUDITOR = "auditor"
AUDITORS_FILE = "auditors.toml"  # digests: the server's side
AUDITOR_TOKENS_FILE = "auditors.local.toml"  # the tokens themselves: the auditors' side
BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")  # standard or URL-safe, as protobuf's JSON reads


class BadRequest(ValueError):
    """A decode request that is not the codec protocol; the message names the field."""


@dataclass
class Sessions:
    """Logged-in auditors, kept in this process only (a restart asks them to log in again).

    Held by the SHA-256 of the cookie's value, so a memory dump holds no usable cookie.
    """

    seconds: float = SESSION_SECONDS
    _open: dict[str, tuple[str, float]] = field(default_factory=dict)

    def open(self, identity: str) -> str:
        """A new session for `identity`; returns the cookie's value."""
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        self._open = {k: v for k, v in self._open.items() if v[1] > now}
        self._open[_digest(token)] = (identity, now + self.seconds)
        return token

    def identity_of(self, token: str) -> str | None:
        """The auditor of a live session, or None."""
        found = self._open.get(_digest(token))
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def close(self, token: str) -> None:
        """End a session."""
        self._open.pop(_digest(token), None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class CodecServer:
    """What the codec server's requests need: the payload keys, the auditors, the UI origins."""

    codec: AesGcmCodec
    auditors: ApiKeys
    origins: frozenset[str]
    sessions: Sessions = field(default_factory=Sessions)


# --- configuration ------------------------------------------------------------------------------


def parse_origins(text: str) -> frozenset[str]:
    """CASN_CODEC_CORS_ORIGINS: comma-separated `scheme://host[:port]`, each checked."""
    origins = set()
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        parts = urlsplit(entry)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise GatewayConfigError(
                f"codec_cors_origins entry {entry!r} is not an origin: write scheme://host[:port] "
                "(the address bar of the Temporal Web UI, without a path)"
            )
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return frozenset(origins)


def embedded_auditor(keys_dir: Path, identity: str = EMBEDDED_AUDITOR) -> Path:
    """One auditor for the embedded mode, made once under `keys_dir` (mode 0600): the token in
    auditors.local.toml (the auditor's side), its digest in auditors.toml (the server's side)."""
    tokens_path = keys_dir / AUDITOR_TOKENS_FILE
    tokens = tomllib.loads(tokens_path.read_text(encoding="utf-8")) if tokens_path.exists() else {}
    if not tokens:
        tokens = {identity: secrets.token_urlsafe(32)}
        with open_private(tokens_path, encoding="utf-8") as out:
            out.write("".join(f"{json.dumps(i)} = {json.dumps(t)}\n" for i, t in tokens.items()))
        log.info("auditor token generated", auditor=identity, file=str(tokens_path))
    path = keys_dir / AUDITORS_FILE
    with open_private(path, encoding="utf-8") as out:
        out.write(
            "".join(
                f"{json.dumps(i)} = {json.dumps(api_key_digest(t))}\n" for i, t in tokens.items()
            )
        )
    return path


def auditors_file(settings: Settings) -> Path:
    """CASN_CODEC_AUDITORS_FILE, or in the embedded mode the generated one."""
    if settings.codec_auditors_file is not None:
        return settings.codec_auditors_file
    if not settings.embedded_temporal:
        raise GatewayConfigError(
            "with CASN_TEMPORAL_ADDRESS set, CASN_CODEC_AUDITORS_FILE must be set too: a TOML file "
            'of auditor = "sha256:<hex of the auditor\'s token>"'
        )
    return embedded_auditor(Path(settings.data_dir) / "keys")


def build_codec_server(settings: Settings, keys: Keys) -> CodecServer:
    """The codec server of these settings: every payload key (current and previous), the
    auditors file, and the Web UI's origins (the embedded UI's when none are set)."""
    path = auditors_file(settings)
    auditors = ApiKeys.load(path, "codec_auditors_file")
    if not auditors.by_digest:
        raise GatewayConfigError(
            f"codec_auditors_file {path} lists no auditor: nobody could decode"
        )
    origins = parse_origins(settings.codec_cors_origins)
    if not origins:
        if not settings.embedded_temporal:
            raise GatewayConfigError(
                "with CASN_TEMPORAL_ADDRESS set, CASN_CODEC_CORS_ORIGINS must name the Temporal "
                "Web UI's origin (e.g. https://temporal-ui.example.go.id)"
            )
        # The embedded UI listens on 127.0.0.1; a browser may name it localhost too.
        port = settings.temporal_ui_port
        origins = frozenset({f"http://127.0.0.1:{port}", f"http://localhost:{port}"})
    return CodecServer(
        codec=AesGcmCodec(keys.payload_key, keys.previous_payload_keys),
        auditors=auditors,
        origins=origins,
    )


def usage(settings: Settings, server: CodecServer, ui_url: str | None = None) -> str:
    """How an auditor reads decoded histories with this server (printed when it starts)."""
    base = settings.codec_endpoint
    tokens = Path(settings.data_dir) / "keys" / AUDITOR_TOKENS_FILE
    token_hint = (
        f"the token in {tokens}"
        if settings.codec_auditors_file is None
        else "your auditor token (its digest is in CASN_CODEC_AUDITORS_FILE)"
    )
    ui = ui_url or sorted(server.origins)[0]
    return (
        f"Codec server (decode only) on {base}\n"
        f"  1. log in as an auditor   {base}/login   with {token_hint}\n"
        f"  2. in the Temporal Web UI ({ui}): the Codec Server button (the glasses at the top "
        f"right) -> Use my browser setting -> endpoint {base}, Include cross-origin "
        "credentials on -> Apply\n"
        "     (a UI server started with TEMPORAL_CODEC_ENDPOINT and "
        "TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true needs no step 2)\n"
        "  3. open a workflow's history: its payloads show decoded\n"
        f"  the temporal CLI: temporal workflow show -w ID --codec-endpoint {base} "
        '--codec-auth "Bearer <token>"'
    )


# --- requests -----------------------------------------------------------------------------------


def _cors(request: Request, server: CodecServer, response: Response) -> Response:
    """CORS for the UI's origins only: the exact origin and credentials, nothing for others."""
    origin = request.headers.get("origin")
    response.headers["Vary"] = "Origin"
    if origin in server.origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
    return response


def _auditor(request: Request, server: CodecServer) -> tuple[str, str] | None:
    """(identity, how) of the caller: a bearer token or a session cookie, else None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        identity = server.auditors.identity_of(token.strip())
        if identity is not None:
            return identity, "token"
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        identity = server.sessions.identity_of(session)
        if identity is not None:
            return identity, "session"
    return None


def _shown(value: str | None) -> str | None:
    """A header value from the caller, fit for a log line."""
    if value is None:
        return None
    return "".join(c for c in value if c.isprintable())[:200]


def _check_base64(value: object, name: str) -> None:
    """Protobuf's JSON reader would take any string as bytes, dropping what is not base64."""
    if not isinstance(value, str) or not BASE64.fullmatch(value):
        shown = repr(value)[:40]
        raise BadRequest(f"{name}: {shown} is not base64")


def parse_payloads(body: bytes) -> list[Payload]:
    """The request's payloads; BadRequest names the field that is wrong."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict) or "payloads" not in doc:
        raise BadRequest('payloads: missing; the body must be {"payloads": [...]}')
    items = doc["payloads"]
    if not isinstance(items, list):
        raise BadRequest(f"payloads: expected a list, got {type(items).__name__}")
    if len(items) > MAX_PAYLOADS:
        raise BadRequest(f"payloads: {len(items)} payloads, at most {MAX_PAYLOADS} per request")
    payloads = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"payloads[{index}]: expected an object, got {type(item).__name__}")
        metadata = item.get("metadata", {})
        if not isinstance(metadata, dict):
            raise BadRequest(f"payloads[{index}].metadata: expected an object of base64 strings")
        for name, value in metadata.items():
            _check_base64(value, f"payloads[{index}].metadata.{name}")
        _check_base64(item.get("data", ""), f"payloads[{index}].data")
        try:
            payloads.append(json_format.ParseDict(item, Payload(), ignore_unknown_fields=True))
        except json_format.ParseError as exc:
            raise BadRequest(f"payloads[{index}]: {exc}") from None
    return payloads


def create_codec_app(server: CodecServer) -> Starlette:
    """The codec server's ASGI app: /decode (and its preflight), /login, /logout, /healthz."""

    async def preflight(request: Request) -> Response:
        if request.headers.get("origin") not in server.origins:
            log.warning(
                "codec preflight from an unknown origin",
                origin=_shown(request.headers.get("origin")),
            )
            return Response(status_code=403)
        response = Response(status_code=204)
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
        return _cors(request, server, response)

    def error(request: Request, status: int, message: str, **headers: str) -> Response:
        return _cors(request, server, JSONResponse({"error": message}, status, headers=headers))

    async def decode(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin not in server.origins:
            # A page of another origin gets nothing decoded, even an answer it could not read.
            log.warning("decode refused: origin not allowed", origin=_shown(origin))
            return JSONResponse({"error": "this origin may not call the codec server"}, 403)
        who = _auditor(request, server)
        if who is None:
            log.warning("decode refused: no auditor", origin=_shown(request.headers.get("origin")))
            return error(
                request,
                401,
                "log in as an auditor first (/login), or send Authorization: Bearer <token>",
                **{"WWW-Authenticate": 'Bearer realm="casn-codec"'},
            )
        identity, how = who
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error(request, 415, "Content-Type: send application/json")
        too_big = error(request, 413, f"the body is over {MAX_BODY_BYTES} bytes")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return too_big  # refused before it is read
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return too_big
        try:
            payloads = parse_payloads(bytes(body))
        except BadRequest as exc:
            return error(request, 400, str(exc))
        decoded = []
        for index, payload in enumerate(payloads):
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)  # not ours to decrypt: already plain on the server
                continue
            try:
                decoded += await server.codec.decode([payload])
            except PayloadDecryptionError as exc:
                log.warning(
                    "decode refused: a payload this server cannot decrypt",
                    auditor=identity,
                    namespace=_shown(request.headers.get("x-namespace")),
                    workflow_id=_shown(request.headers.get("x-workflow-id")),
                    index=index,
                    reason=str(exc),
                )
                return error(request, 422, f"payloads[{index}]: {exc}")
        log.info(
            "payloads decoded",
            auditor=identity,
            via=how,
            namespace=_shown(request.headers.get("x-namespace")),
            workflow_id=_shown(request.headers.get("x-workflow-id")),
            count=len(payloads),
            decrypted=sum(p.metadata.get("encoding") == ENCODING for p in payloads),
        )
        answer = {"payloads": [json_format.MessageToDict(p) for p in decoded]}
        return _cors(request, server, JSONResponse(answer))

    async def login_page(request: Request) -> Response:
        who = _auditor(request, server)
        return HTMLResponse(_page(who[0] if who else None, None))

    async def login(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", "")).strip()
        identity = server.auditors.identity_of(token) if token else None
        if identity is None:
            log.warning("auditor login refused")
            return HTMLResponse(_page(None, "That is not an auditor's token."), 401)
        response = RedirectResponse("/login", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            server.sessions.open(identity),
            max_age=int(server.sessions.seconds),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        log.info("auditor logged in", auditor=identity)
        return response

    async def logout(request: Request) -> Response:
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            server.sessions.close(session)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        # Decoded payloads are applicants' data: no cache keeps an answer, no other site frames
        # the login page, as the gateway's own answers (gateway/headers.py).
        middleware=[Middleware(SecurityHeaders)],
        routes=[
            Route("/decode", decode, methods=["POST"]),
            Route("/decode", preflight, methods=["OPTIONS"]),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
    )


def _page(identity: str | None, problem: str | None) -> str:
    """The login page: a token field, or who is logged in and what to do next."""
    if identity is not None:
        body = (
            f"<p>Logged in as <strong>{html.escape(identity)}</strong>. In the Temporal Web UI, "
            "histories now show decoded payloads (the UI's codec setting must include "
            "cross-origin credentials).</p>"
            '<form method="post" action="/logout"><button type="submit">Log out</button></form>'
        )
    else:
        body = (
            (f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else "")
            + '<form method="post" action="/login">'
            '<label for="token">Auditor token</label> '
            '<input id="token" name="token" type="password" autocomplete="off" required> '
            '<button type="submit">Log in</button></form>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>CASN codec server: auditor login</title></head><body>"
        "<h1>CASN codec server</h1><p>Decodes workflow payloads for auditors, in the Temporal "
        f"Web UI. Decode only.</p>{body}</body></html>"
    )


def uvicorn_server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the codec app that leaves signal handling to its caller."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    return server
