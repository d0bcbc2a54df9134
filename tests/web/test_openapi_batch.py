"""The OpenAPI document describes a batch item as the single routes describe their messages: its
`message` is the report model its `kind`'s route takes, its `kind` one of their kinds (gateway/service_api.py,
describe_batch_items). Built in-process: the document asks neither Temporal nor PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from domain.protocol import SERVICE_KINDS
from gateway import service_api
from gateway.app import create_app
from gateway.deps import ApiKeys, Gateway
from gateway.service_api import ReportBatch, describe_batch_items
from runtime.embedded import isolated_settings

SCHEMAS = "#/components/schemas/"


def app_without_engine(tmp_path) -> FastAPI:
    """The gateway's app with no engine and no read model (None): its document is made from its
    routes alone."""
    gw = Gateway(
        settings=isolated_settings(tmp_path),
        api=None,  # type: ignore[arg-type]
        pool=None,  # type: ignore[arg-type]
        api_keys=ApiKeys(),
        portal=None,
        rounds=None,  # type: ignore[arg-type]
    )
    return create_app(gw)


@pytest_asyncio.fixture(loop_scope="session")
async def spec(tmp_path) -> dict:
    """The document as /openapi.json serves it."""
    transport = httpx.ASGITransport(app=app_without_engine(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        answer = await http.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()


def single_route_schemas(spec: dict) -> set[str]:
    """The schemas the single report routes take as their bodies, one per kind."""
    paths = spec["paths"]
    bodies = [
        paths[f"/api/v1/rounds/{{round_id}}/applicants/{{applicant_id}}/{kind}"]["post"]
        for kind in SERVICE_KINDS
    ]
    return {b["requestBody"]["content"]["application/json"]["schema"]["$ref"] for b in bodies}


def batch_item_schema(spec: dict) -> dict:
    """BatchItem's schema, found from the batch route's body."""
    schemas = spec["components"]["schemas"]
    body = spec["paths"]["/api/v1/rounds/{round_id}/reports"]["post"]["requestBody"]
    batch = schemas[body["content"]["application/json"]["schema"]["$ref"].removeprefix(SCHEMAS)]
    return schemas[batch["properties"]["items"]["items"]["$ref"].removeprefix(SCHEMAS)]


def batch_item(spec: dict) -> dict:
    """BatchItem's properties."""
    return batch_item_schema(spec)["properties"]


async def test_a_batch_message_is_any_of_the_single_routes_report_models(spec):
    choices = batch_item(spec)["message"]["anyOf"]
    refs = [choice["$ref"] for choice in choices]
    assert all(list(choice) == ["$ref"] for choice in choices)
    assert all(r.removeprefix(SCHEMAS) in spec["components"]["schemas"] for r in refs)
    assert len(refs) == len(set(refs))
    assert set(refs) == single_route_schemas(spec)


async def test_each_kind_ties_its_message_to_its_single_route_s_model(spec):
    """`if kind is K then message is M`, one rule per kind, M the schema the route of K takes."""
    paths = spec["paths"]
    rules = {
        rule["if"]["properties"]["kind"]["const"]: rule["then"]["properties"]["message"]["$ref"]
        for rule in batch_item_schema(spec)["allOf"]
    }
    assert list(rules) == list(SERVICE_KINDS)
    for kind, ref in rules.items():
        route = paths[f"/api/v1/rounds/{{round_id}}/applicants/{{applicant_id}}/{kind}"]["post"]
        assert ref == route["requestBody"]["content"]["application/json"]["schema"]["$ref"], kind


async def test_a_batch_kind_is_one_of_the_report_kinds(spec):
    assert batch_item(spec)["kind"]["enum"] == list(SERVICE_KINDS)


def test_the_batch_models_own_schema_is_unchanged():
    """Only the document is edited: pydantic still makes the model's schema, whose message is any
    object (the route parses it by its kind)."""
    item = ReportBatch.model_json_schema()["$defs"]["BatchItem"]["properties"]
    assert item["message"]["type"] == "object"
    assert "enum" not in item["kind"]


def test_a_report_model_without_its_route_stops_the_document():
    """A model the document has no schema of fails loudly, rather than being referred to."""
    routes = [
        r
        for r in service_api.router.routes
        if not r.path.endswith("/applicants/{applicant_id}/skd")
    ]
    spec = get_openapi(title="without skd", version="1", routes=routes)
    with pytest.raises(RuntimeError, match="no schema of SkdReport"):
        describe_batch_items(spec)


async def test_the_document_is_made_as_the_gateway_starts(tmp_path):
    """Made at startup, a document that would refer to a schema it lacks stops the start rather
    than reaching an integrator."""
    app = app_without_engine(tmp_path)
    async with app.router.lifespan_context(app):
        made = app.openapi_schema
    assert made is not None
    assert "anyOf" in batch_item(made)["message"]
