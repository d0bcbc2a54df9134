"""Metrics, health and logs as an operator sees them: a `worker.py run` process with its metrics
port, read over plain HTTP like curl, and the gateway's /metrics, /healthz and /readyz.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from client.api import RecruitmentApi
from domain.administration import DocumentFinding
from domain.codes import Stage
from domain.messages import AdminReport
from domain.signing import Keyring
from gateway.app import create_app
from gateway.deps import ApiKeys, Gateway, RoundDirectory, api_key_digest
from runtime.probes import probe_app
from tests import roundkit
from tests.flows.test_round_end_to_end import _wait_stage
from tests.roundkit import (
    TEST_KEYRING,
    compressed_round,
    create_round_file,
    formasi,
    registration,
)
from tests.web.conftest import IDENTITIES, PORTAL, api_key, auth
from tests.web.test_service_api import api_path, signed

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = "bkpsdm-verifikator"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    """GET as curl would: the status and the body, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _sample(page: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text page, None when it is not there."""
    for line in page.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


@pytest_asyncio.fixture(loop_scope="session")
async def worker_process(stack, stack_settings, tmp_path):
    """`worker.py run` in its own process on the session's stack, with a metrics port and
    JSON logs; yields (task queue, base URL, stderr path, process, environment) and stops it
    with SIGTERM."""
    port = _free_port()
    queue = f"obs-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASN_")}
    env.update(
        CASN_DATA_DIR=str(stack_settings.data_dir),
        CASN_TEMPORAL_PORT=str(stack_settings.temporal_port),
        CASN_TEMPORAL_UI_PORT=str(stack_settings.temporal_ui_port),
        CASN_POSTGRES_PORT=str(stack_settings.postgres_port),
        CASN_TASK_QUEUE=queue,
        CASN_METRICS_PORT=str(port),
        CASN_LOG_FORMAT="json",
        CASN_LOG_LEVEL="INFO",
    )
    stderr = tmp_path / "worker.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "worker.py", "run"], cwd=ROOT, env=env, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while _ready(base) != 200:
            assert proc.poll() is None, stderr.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker was not ready within 60 s"
            await asyncio.sleep(0.3)
        yield queue, base, stderr, proc, env
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ready(base: str) -> int:
    try:
        return _get(f"{base}/readyz")[0]
    except OSError:
        return 0


def _gateway(client, keys, settings, queue: str, pool) -> Gateway:
    portal = roundkit.test_signer(PORTAL)
    settings = settings.model_copy(update={"task_queue": queue, "portal_identity": PORTAL})
    return Gateway(
        settings=settings,
        api=RecruitmentApi(client, queue, keys.pseudonym_key, keyring=Keyring([portal])),
        pool=pool,
        api_keys=ApiKeys({api_key_digest(api_key(i)): i for i in IDENTITIES}),
        portal=portal,
        rounds=RoundDirectory(RecruitmentApi(client, queue, keys.pseudonym_key), state_ttl=0.0),
    )


async def test_worker_and_gateway_serve_metrics_and_health(
    worker_process, client, keys, stack, stack_settings, tmp_path
):
    queue, base, stderr, proc, env = worker_process
    round_id = f"obs-{uuid.uuid4().hex[:6]}"
    api = RecruitmentApi(client, queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = compressed_round(
        round_id,
        [formasi("F1", 1)],
        {
            "registration": (-60, 600),
            "administration": (600, 1200),
            "skd": (1200, 1800),
            "skb": (1800, 2400),
            "filing": (2400, 3000),
            "latsar": (3000, 3600),
        },
        t0=datetime.now(UTC),
    )
    await create_round_file(api, config, tmp_path)
    applicant = (await api.register(config, registration(1, "F1"), "sscasn")).applicant_id
    await _wait_stage(client, round_id, applicant, {Stage.ADMIN_CHECK})

    pool = await asyncpg.create_pool(stack.database_url, min_size=0, max_size=2)
    gw = _gateway(client, keys, stack_settings, queue, pool)
    app = create_app(gw)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    # Prometheus, in the deployment's own network (the public is answered 404: test_portal_attacks).
    scraper = httpx.ASGITransport(app=app, client=("10.0.0.9", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
            report = AdminReport(report_id=f"adm-{round_id}", reported_by=VERIFIER)
            sent = signed(report, round_id, applicant)
            path = api_path(round_id, "admin", applicant)
            headers = {**auth(VERIFIER), "Idempotency-Key": report.report_id}
            ok = await http.post(path, json=sent.model_dump(mode="json"), headers=headers)
            assert ok.status_code == 200, ok.text
            # the same report_id with other content is refused by the journey
            other = signed(
                AdminReport(
                    report_id=report.report_id,
                    reported_by=VERIFIER,
                    findings=[DocumentFinding(document="ijazah", reason="other content")],
                ),
                round_id,
                applicant,
            )
            refused = await http.post(path, json=other.model_dump(mode="json"), headers=headers)
            assert refused.status_code == 409, refused.text

            # The same report again in a batch: a repeat, counted per report and per batch.
            batch = {
                "items": [
                    {
                        "applicant_id": applicant,
                        "kind": "admin",
                        "message": sent.model_dump(mode="json"),
                    }
                ]
            }
            again = await http.post(
                f"/api/v1/rounds/{round_id}/reports", json=batch, headers=auth(VERIFIER)
            )
            assert again.json()["results"][0]["status"] == 200, again.text

            async with httpx.AsyncClient(transport=scraper, base_url="http://gw.test") as prom:
                page = (await prom.get("/metrics")).text
            assert _sample(page, "casn_report_batch_items_count") >= 1
            assert _sample(page, "casn_report_batch_items_bucket", le="1.0") >= 1
            assert _sample(page, "casn_report_batch_seconds_count") >= 1
            assert _sample(page, "casn_reports_total", kind="admin", result="accepted") >= 1
            assert _sample(page, "casn_reports_total", kind="admin", result="refused") >= 1
            assert _sample(page, "casn_report_ack_seconds_count", kind="admin") >= 2
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"status": "ok", "temporal": "ok", "postgres": "ok"}

        # The same gateway with its database at a port where nothing listens: not ready, alive.
        wrong = stack.database_url.replace(f":{stack_settings.postgres_port}/", f":{_free_port()}/")
        bad_pool = await asyncpg.create_pool(wrong, min_size=0, max_size=1)
        bad = create_app(_gateway(client, keys, stack_settings, queue, bad_pool))
        bad_transport = httpx.ASGITransport(app=bad, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=bad_transport, base_url="http://gw.test") as http:
            # Each answer is a 503 naming PostgreSQL, within its timeouts. Temporal's own check
            # has 2 s too, and on a machine loaded by the rest of the suite one answer in many
            # runs has found it late ("operation was canceled"): asked up to three times, it must
            # be named "ok" once, so a database outage is never blamed on Temporal.
            temporal_states = []
            for _ in range(3):
                started = time.monotonic()
                not_ready = await http.get("/readyz")
                assert time.monotonic() - started < 5
                assert not_ready.status_code == 503, not_ready.text
                assert not_ready.json()["postgres"] != "ok", not_ready.text
                temporal_states.append(not_ready.json()["temporal"])
                if temporal_states[-1] == "ok":
                    break
            assert temporal_states[-1] == "ok", temporal_states
            assert (await http.get("/healthz")).status_code == 200
        await bad_pool.close()
    finally:
        await pool.close()

    # The worker process, over plain HTTP: its health, the SDK core's metrics and ours.
    assert _get(f"{base}/healthz")[0] == 200
    status, body = _get(f"{base}/readyz")
    assert status == 200 and json.loads(body)["worker"] == "ok", body
    status, page = _get(f"{base}/metrics")
    assert status == 200
    assert _sample(page, "temporal_workflow_task_execution_latency_count") is not None, page[:2000]
    assert _sample(page, "temporal_request") is not None
    assert _sample(page, "casn_journeys", stage="admin_check") >= 1
    assert _sample(page, "casn_notification_outbox") is not None
    assert _sample(page, "casn_read_model_up") == 1
    assert "# TYPE casn_reports_total counter" in page
    assert "# TYPE casn_report_ack_seconds histogram" in page
    # The worker's collections, each observed (a process that ran journeys has collected).
    assert _sample(page, "casn_gc_pause_seconds_count", generation="0") >= 1, page[:2000]

    # A second worker given the same metrics port stops at once, saying which setting to change.
    second = subprocess.run(
        [sys.executable, "worker.py", "run"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert second.returncode == 2, second.stderr[-2000:]
    # Said among its last lines: the SDK core's own log of the worker it had begun to build may
    # come after it (seen once under load: "Initializing worker" was the last line).
    assert any(b"CASN_METRICS_PORT" in line for line in second.stderr.splitlines()[-5:]), (
        second.stderr[-2000:]
    )

    # Its log: JSON lines only, the SDK core's among them (no coloured text).
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    lines = [line for line in stderr.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    core = [r for r in records if r.get("logger") == "temporalio.core"]
    assert core and all("target" in r for r in core), lines[:20]
    assert not any("\x1b[" in line for line in lines)


async def test_a_worker_is_not_ready_without_its_database_or_while_it_drains(
    client, stack, stack_settings
):
    wrong = stack.database_url.replace(f":{stack_settings.postgres_port}/", f":{_free_port()}/")
    pools = [
        await asyncpg.create_pool(wrong, min_size=0, max_size=1),
        await asyncpg.create_pool(stack.database_url, min_size=0, max_size=1),
    ]
    try:
        for pool, polling, failing in ((pools[0], True, "postgres"), (pools[1], False, "worker")):
            app = probe_app(client, pool, lambda polling=polling: polling)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://worker") as http:
                ready = await http.get("/readyz")
                assert ready.status_code == 503, ready.text
                assert ready.json()[failing] != "ok"
                assert (await http.get("/healthz")).status_code == 200
    finally:
        for pool in pools:
            await pool.close()
