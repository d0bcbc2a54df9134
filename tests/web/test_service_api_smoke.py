"""The service API's door: OpenAPI, authentication, problem+json, body limit."""

from __future__ import annotations

import pytest

from tests.web.conftest import auth

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_openapi_lists_every_report_kind(http):
    spec = (await http.get("/openapi.json")).json()
    paths = spec["paths"]
    assert "/api/v1/rounds/{round_id}/applicants/{applicant_id}/admin" in paths
    assert "/api/v1/rounds/{round_id}/commands/close-window" in paths
    batch = paths["/api/v1/rounds/{round_id}/reports"]["post"]
    assert batch["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchAnswer"
    }
    item = spec["components"]["schemas"]["BatchItem"]
    assert "skd" in item["properties"]["kind"]["description"]


async def test_missing_and_unknown_keys_are_401(http):
    url = "/api/v1/rounds/R/applicants/A/admin"
    body = {"report_id": "r1", "reported_by": "bkpsdm-verifikator", "findings": []}
    missing = await http.post(url, json=body)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = await http.post(url, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    other = await http.post(url, json=body, headers=auth("cat-bkn"))
    assert other.status_code == 403
    assert other.json()["errors"][0]["field"] == "reported_by"


async def test_oversized_body_is_413(http, gateway_state):
    big = "x" * (gateway_state.settings.http_max_body_bytes + 1)
    r = await http.post(
        "/api/v1/rounds/R/applicants/A/admin",
        content=big,
        headers={**auth("bkpsdm-verifikator"), "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["status"] == 413
    assert r.headers["x-request-id"]
