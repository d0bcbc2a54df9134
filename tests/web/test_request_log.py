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


def test_a_fullwidth_nik_and_one_cut_at_the_line_s_length_leave_no_digit():
    """normalise_nik reads fullwidth digits as the same NIK; a path is cut to 200 characters
    only after it is masked, so a NIK the cut would split is not left as 9 digits and a tail."""
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in "3273014501950001")
    assert limits.loggable_path(f"/pengumuman/{fullwidth}") == "/pengumuman/<16 digits>"
    at_the_cut = "/x" * 95 + "/3273014501950001"  # the NIK starts at character 191
    logged = limits.loggable_path(at_the_cut)
    assert len(logged) == 200 and logged.endswith("/<16 digit")  # not "/327301450"


def test_an_error_answer_masks_a_fullwidth_nik_as_an_ascii_one():
    from gateway.problems import without_niks

    fullwidth = "".join(chr(0xFF10 + int(d)) for d in "3273014501950001")
    assert (
        without_niks(f"/lookups/{fullwidth}")
        == "/lookups/" + fullwidth[:4] + "*" * 8 + fullwidth[-4:]
    )
    assert without_niks("/lookups/3273014501950001") == "/lookups/3273********0001"
    assert without_niks("ABC3273014501950001") == "ABC3273014501950001"  # not standing alone
