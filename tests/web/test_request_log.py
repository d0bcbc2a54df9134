"""The gateway's request log line: method, path, status and time, never personal data.

Its own paths hold registration numbers (pseudonyms) only, but a caller may put a NIK where a
registration number goes; the line then says how many digits it held, not the digits.
"""

from __future__ import annotations

import httpx
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway import limits
from gateway.limits import RequestLimits


async def _not_found(request: Request) -> JSONResponse:
    return JSONResponse({"detail": "no such applicant"}, 404)


async def test_a_nik_in_a_path_is_logged_as_its_length(monkeypatch):
    # A logger of its own: the module's may have cached its processors in an earlier test of the
    # session (cache_logger_on_first_use), which capture_logs could then not see.
    monkeypatch.setattr(limits, "log", structlog.get_logger("gateway.limits"))
    app = Starlette(
        routes=[Route("/api/v1/rounds/{r}/applicants/{a}/skd", _not_found, methods=["POST"])]
    )
    transport = httpx.ASGITransport(app=RequestLimits(app, max_body=10_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        with structlog.testing.capture_logs() as logs:
            await http.post("/api/v1/rounds/R1/applicants/3273014501950001/skd", json={})
            await http.post("/api/v1/rounds/CPNS-2027/applicants/ABCDEFGH234567AB/skd", json={})

    paths = [e["path"] for e in logs if e["event"] == "request"]
    assert paths == [
        "/api/v1/rounds/R1/applicants/<16 digits>/skd",
        "/api/v1/rounds/CPNS-2027/applicants/ABCDEFGH234567AB/skd",
    ]
    assert "3273014501950001" not in str(logs)
