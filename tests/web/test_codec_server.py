"""The decode-only codec server, over HTTP in-process: who may decode, for which origin, what.

No Temporal server is needed: the payloads are what the project's data converter writes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import time
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from structlog.testing import capture_logs

from domain.messages import AdminReport, DocumentFinding
from gateway.codec_server import (
    MAX_BODY_BYTES,
    SESSION_COOKIE,
    CodecServer,
    Sessions,
    build_codec_server,
    create_codec_app,
    embedded_auditor,
)
from gateway.deps import ApiKeys, GatewayConfigError, api_key_digest
from runtime.codec import AesGcmCodec
from runtime.connection import data_converter
from runtime.embedded import isolated_settings
from runtime.keys import Keys

UI = "http://127.0.0.1:8233"
TOKEN = "token-of-the-inspectorate-0123456789"
OLD_KEY, KEY, OTHER_KEY = (bytes([n]) * 32 for n in (1, 2, 3))
REPORT = AdminReport(
    report_id="adm-1",
    reported_by="bkpsdm-verifikator",
    findings=[DocumentFinding(document="ijazah", reason="belum dilegalisir")],
)


def keys(key: bytes = KEY, previous: tuple[bytes, ...] = ()) -> Keys:
    return Keys(payload_key=key, pseudonym_key=b"", signing_key=b"", previous_payload_keys=previous)


async def encrypted(value, under: Keys) -> dict:
    """A value as a worker writes it into a history, in the JSON the Web UI sends."""
    [payload] = await data_converter(under).encode([value])
    return json_format.MessageToDict(payload)


@pytest.fixture
def codec():
    """A codec server holding the current key and one previous key, for one auditor."""
    server = CodecServer(
        codec=AesGcmCodec(KEY, previous_keys=[OLD_KEY]),
        auditors=ApiKeys({api_key_digest(TOKEN): "inspektorat"}),
        origins=frozenset({UI}),
    )
    transport = httpx.ASGITransport(app=create_codec_app(server))
    return httpx.AsyncClient(transport=transport, base_url="http://codec.test")


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Origin": UI}


async def test_an_auditor_reads_a_report_in_plain_json(codec):
    body = {"payloads": [await encrypted(REPORT, keys())]}

    with capture_logs() as logs:
        response = await codec.post(
            "/decode", json=body, headers={**bearer(), "X-Namespace": "default"}
        )

    assert response.status_code == 200, response.text
    [payload] = response.json()["payloads"]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(payload["data"]))["findings"][0]["reason"] == (
        "belum dilegalisir"
    )
    [line] = [entry for entry in logs if entry["event"] == "payloads decoded"]
    assert (line["auditor"], line["count"], line["namespace"]) == ("inspektorat", 1, "default")
    assert "dilegalisir" not in json.dumps(logs), "a payload's content reached the log"


async def test_histories_written_under_a_previous_key_still_decode(codec):
    body = {"payloads": [await encrypted(REPORT, keys(OLD_KEY))]}

    response = await codec.post("/decode", json=body, headers=bearer())

    assert response.status_code == 200, response.text
    assert b"dilegalisir" in base64.b64decode(response.json()["payloads"][0]["data"])


async def test_a_payload_under_a_key_the_server_lacks_is_refused_by_its_index(codec):
    body = {
        "payloads": [
            await encrypted(REPORT, keys()),
            await encrypted(REPORT, keys(OTHER_KEY)),
        ]
    }

    response = await codec.post("/decode", json=body, headers=bearer())

    assert response.status_code == 422
    assert response.json()["error"].startswith("payloads[1]: payload refused: it was encrypted "), (
        response.text
    )
    assert "dilegalisir" not in response.text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
async def test_without_an_auditor_decode_answers_401(codec, headers):
    body = {"payloads": [await encrypted(REPORT, keys())]}

    response = await codec.post("/decode", json=body, headers={**headers, "Origin": UI})

    assert response.status_code == 401
    assert "dilegalisir" not in response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_logging_in_sets_a_session_cookie_that_decodes(codec):
    refused = await codec.post("/login", data={"token": "guess"})
    assert refused.status_code == 401 and SESSION_COOKIE not in refused.cookies

    login = await codec.post("/login", data={"token": TOKEN})

    assert login.status_code == 303
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie, cookie
    body = {"payloads": [await encrypted(REPORT, keys())]}
    response = await codec.post("/decode", json=body, headers={"Origin": UI})
    assert response.status_code == 200, response.text
    await codec.post("/logout")
    assert (await codec.post("/decode", json=body, headers={"Origin": UI})).status_code == 401


async def test_the_ui_origin_gets_a_preflight_with_credentials(codec):
    response = await codec.options(
        "/decode",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        },
    )

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == UI
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "x-namespace" in response.headers["Access-Control-Allow-Headers"].lower()


async def test_another_origin_gets_no_cors_headers(codec):
    evil = {"Origin": "http://127.0.0.1:9999"}
    preflight = await codec.options(
        "/decode", headers={**evil, "Access-Control-Request-Method": "POST"}
    )
    body = {"payloads": [await encrypted(REPORT, keys())]}
    decode = await codec.post("/decode", json=body, headers={**bearer(), **evil})

    assert (preflight.status_code, decode.status_code) == (403, 403)
    for response in (preflight, decode):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_there_is_no_encode_endpoint(codec):
    body = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "e30="}]}

    response = await codec.post("/encode", json=body, headers=bearer())

    assert response.status_code in (404, 405)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "the body is not JSON"),
        (b'{"payload": []}', "payloads: missing"),
        (b'{"payloads": {"data": "e30="}}', "payloads: expected a list"),
        (b'{"payloads": [7]}', "payloads[0]: expected an object"),
        (b'{"payloads": [{"data": "e30="}, {"data": "!!"}]}', "payloads[1].data"),
        (b'{"payloads": [{"metadata": {"encoding": 5}}]}', "payloads[0].metadata.encoding"),
    ],
)
async def test_a_malformed_request_is_refused_naming_the_field(codec, content, field):
    response = await codec.post(
        "/decode", content=content, headers={**bearer(), "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith(field), response.text


def test_the_embedded_auditor_is_made_once_and_private(tmp_path):
    path = embedded_auditor(tmp_path)
    tokens = (tmp_path / "auditors.local.toml").read_text()

    assert embedded_auditor(tmp_path) == path
    assert (tmp_path / "auditors.local.toml").read_text() == tokens
    for file in (path, tmp_path / "auditors.local.toml"):
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600, file
    token = tokens.split('"')[3]
    assert ApiKeys.load(path).identity_of(token) == "auditor"


def test_a_deployment_must_name_its_auditors_and_ui_origin(tmp_path):
    deployed = isolated_settings(tmp_path, temporal_address="temporal:7233")
    with pytest.raises(GatewayConfigError, match="CASN_CODEC_AUDITORS_FILE"):
        build_codec_server(deployed, keys())

    auditors = tmp_path / "auditors.toml"
    auditors.write_text(f'inspektorat = "{api_key_digest(TOKEN)}"\n')
    named = deployed.model_copy(update={"codec_auditors_file": auditors})
    with pytest.raises(GatewayConfigError, match="CASN_CODEC_CORS_ORIGINS"):
        build_codec_server(named, keys())
    for wrong in ("https://ui.example/path", "ui.example", "https://ui.example?x=1"):
        with pytest.raises(
            GatewayConfigError, match=re.escape(f"entry {wrong!r} is not an origin")
        ):
            build_codec_server(named.model_copy(update={"codec_cors_origins": wrong}), keys())
    given = named.model_copy(update={"codec_cors_origins": "https://ui.example/, http://b:8080"})
    assert build_codec_server(given, keys()).origins == {"https://ui.example", "http://b:8080"}


def test_a_session_ends_when_its_time_is_up():
    sessions = Sessions(seconds=0.05)
    cookie = sessions.open("inspektorat")
    assert sessions.identity_of(cookie) == "inspektorat"

    time.sleep(0.06)

    assert sessions.identity_of(cookie) is None


def test_serve_codec_stops_with_exit_2_naming_what_a_deployment_lacks(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CASN_TEMPORAL_ADDRESS": "temporal:7233",
        "CASN_PAYLOAD_KEY": base64.b64encode(KEY).decode(),
        "CASN_DATA_DIR": str(tmp_path),
        "CASN_CODEC_PORT": "1",  # never reached: the configuration is refused first
    }

    done = subprocess.run(
        [sys.executable, "audit.py", "serve-codec"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert "CASN_CODEC_AUDITORS_FILE" in done.stderr, done.stderr


async def test_a_body_over_the_limit_is_refused_unread(codec):
    response = await codec.post(
        "/decode",
        content=b" " * (MAX_BODY_BYTES + 1),
        headers={**bearer(), "Content-Type": "application/json"},
    )

    assert response.status_code == 413


async def test_decoded_answers_are_kept_by_no_cache_and_the_login_page_in_no_frame(codec):
    body = {"payloads": [await encrypted(REPORT, keys())]}
    decoded = await codec.post("/decode", json=body, headers=bearer())
    page = await codec.get("/login")

    assert decoded.status_code == 200 and decoded.json()["payloads"]
    for response in (decoded, page):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
