"""`serve.py --with-worker` (what `python3 run.py serve` runs) on one machine: the gateway, a
worker and the notification deliverer in one process, all stopped by one SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from runtime.embedded import ensure_stack, isolated_settings, stop_stack
from runtime.settings import LogFormat

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(loop_scope="session")
async def serve_stack(server_dir):
    """An embedded stack of the test's own, which serve.py finds running and reuses."""
    settings = isolated_settings(
        server_dir("serve"), task_queue=f"serve-{uuid.uuid4().hex[:6]}", log_format=LogFormat.JSON
    )
    info = await ensure_stack(settings)
    try:
        yield settings, info
    finally:
        stop_stack(settings)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_serve_with_worker_delivers_notifications_and_stops_on_sigterm(serve_stack, tmp_path):
    settings, info = serve_stack
    round_id = f"serve-{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(info.database_url)
    try:
        await conn.execute(
            # In clear, as written before sealing began (migration 007): delivered as it is.
            "INSERT INTO notifications (round_id, applicant_id, key, text, created_at) "
            "SELECT $1, 'S1', 'registered', 'hai', applied_at - interval '1 day' "
            "FROM schema_migrations WHERE version = 7",
            round_id,
        )
    finally:
        await conn.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASN_")}
    env.update(
        CASN_DATA_DIR=str(settings.data_dir),
        CASN_TEMPORAL_PORT=str(settings.temporal_port),
        CASN_TEMPORAL_UI_PORT=str(settings.temporal_ui_port),
        CASN_POSTGRES_PORT=str(settings.postgres_port),
        CASN_TASK_QUEUE=settings.task_queue,
        CASN_HTTP_HOST="127.0.0.1",
        CASN_HTTP_PORT=str(_free_port()),
        CASN_LOG_FORMAT="json",
    )
    out = settings.data_dir / "notifications.jsonl"
    said_path = tmp_path / "serve.out"
    with said_path.open("wb") as said:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "serve.py"), "--with-worker"],
            cwd=tmp_path,
            env=env,
            stdout=said,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while not (out.exists() and round_id in out.read_text(encoding="utf-8")):
                assert process.poll() is None, said_path.read_text(encoding="utf-8")
                assert time.monotonic() < deadline, (
                    "the notification was not delivered within 90 s:\n"
                    + said_path.read_text(encoding="utf-8")
                )
                await asyncio.sleep(0.3)
            running = process.poll() is None
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 60)
    text = said_path.read_text(encoding="utf-8")
    events = [json.loads(line)["event"] for line in text.splitlines() if line[:1] == "{"]

    assert running, text
    assert code == 0, text
    assert f"notifications (file)    {out}" in text, text  # in the start-up lines
    assert [n["applicant_id"] for n in map(json.loads, out.read_text().splitlines())] == ["S1"]
    assert "notification deliverer stopped" in events, events
    assert events[-1] != "notification deliverer stopped: not an outage of the database", events
