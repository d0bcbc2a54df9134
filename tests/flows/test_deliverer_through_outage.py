"""The notification deliverer rides out PostgreSQL killed or shut down, mid-pass or between
passes: it keeps running, /readyz says 503 while the database is down and 200 once delivery
resumed, and every notification reaches the transport's file once, the one handed over as the
connection was lost included."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import asyncpg
import psutil
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from activities.notify import STATEMENT_TIMEOUT_S, DeliveryPass, FileTransport, deliver_pass
from apps.fleet import (
    DeliveryProgress,
    WatchedTransport,
    deliver_until_stopped,
    open_deliverer_pool,
)
from runtime.embedded import _stop_postgres, ensure_stack, isolated_settings, stop_stack
from runtime.keys import load_or_create_keys
from runtime.probes import ProbeServer, deliverer_probe_app
from runtime.settings import LogFormat, Settings
from tests.roundkit import command_env, sigkill_postgres

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]

QUEUED = 40
KILLED_AT = 10  # PostgreSQL is killed once this notification is handed over, before its mark


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def own_stack(server_dir):
    """A stack of this test's own: killing its PostgreSQL disturbs no other test."""
    settings = isolated_settings(server_dir("deliverer-outage"), log_format=LogFormat.JSON)
    info = await ensure_stack(settings)
    try:
        yield settings, info
    finally:
        stop_stack(settings)


def _sigkill_postgres(settings: Settings) -> None:
    """SIGKILL the postmaster and every backend at once, by pid: the machine lost."""
    sigkill_postgres(settings.data_dir)


def _shut_postgres_down(settings: Settings) -> None:
    """Stop PostgreSQL as an operator would (`pg_ctl stop -m fast`): its backends end their
    sessions with "terminating connection due to administrator command"."""
    _stop_postgres(settings.data_dir.resolve())


class KillingTransport(FileTransport):
    """The file transport, which stops PostgreSQL (with `down`) right after handing over the
    KILLED_AT-th notification: its row is claimed, its line written, its mark not yet made."""

    def __init__(self, path: Path, settings: Settings, down: Callable[[Settings], None]) -> None:
        super().__init__(path)
        self.settings, self.down, self.sent = settings, down, 0
        self.killed = asyncio.Event()

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        await super().send(round_id, applicant_id, key, text)
        self.sent += 1
        if self.sent == KILLED_AT:
            await asyncio.to_thread(self.down, self.settings)
            self.killed.set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _readyz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


async def _until(done: Callable[[], object], what: str, within: float = 120.0) -> None:
    """Wait until `done()` is true; a deadline only so that a broken deliverer fails the test."""
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {what}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "down", [_sigkill_postgres, _shut_postgres_down], ids=["sigkill", "fast-shutdown"]
)
async def test_the_deliverer_rides_out_postgresql_stopped_mid_pass(
    down, own_stack, tmp_path, caplog
):
    settings, info = own_stack
    round_id = f"outage-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "notifications.jsonl"
    pool = await open_deliverer_pool(info.database_url)
    await pool.executemany(
        "INSERT INTO notifications (round_id, applicant_id, key, text, created_at) "
        "VALUES ($1, $2, 'registered', $3, now() - interval '1 day' + $4 * interval '1 ms')",
        [(round_id, f"A{i:02d}", f"text {i}", i) for i in range(QUEUED)],
    )
    port = _free_port()
    transport = KillingTransport(out, settings, down)
    progress, stop = DeliveryProgress(), asyncio.Event()
    handed_over: set[tuple[str, str, str]] = set()

    async def run_pass() -> DeliveryPass:
        return await deliver_pass(
            pool, WatchedTransport(transport, progress), stop=stop, handed_over=handed_over
        )

    try:
        with capture_logs() as logs:
            async with ProbeServer(deliverer_probe_app(pool, progress.state), "127.0.0.1", port):
                deliverer = asyncio.create_task(deliver_until_stopped(run_pass, stop, progress))
                await _until(transport.killed.is_set, "PostgreSQL killed")
                # The outage itself: the transport's answer for the KILLED_AT-th notification
                # already made the state "ok", before the pass met the lost connection.
                await _until(
                    lambda: progress.state().startswith("database down for "), "outage seen"
                )
                during = await asyncio.to_thread(_readyz, port)
                await asyncio.sleep(2)  # a few tries against the dead server
                assert not deliverer.done(), deliverer.result()

                await ensure_stack(settings)  # PostgreSQL again, on the same data dir (WAL)
                await _until(lambda: progress.state() == "ok", "delivery resumed")
                after = await asyncio.to_thread(_readyz, port)
                left = await pool.fetchval(
                    "SELECT count(*) FROM notifications "
                    "WHERE round_id = $1 AND delivered_at IS NULL",
                    round_id,
                )
                still_running = not deliverer.done()
                stop.set()
                await deliverer
    finally:
        await pool.close()

    assert still_running
    assert during[0] == 503 and during[1]["deliverer"].startswith("database down for "), during
    assert after == (200, {"status": "ok", "postgres": "ok", "deliverer": "ok"})
    # Every notification once: the one handed over as the connection was lost is marked, not
    # sent again, and no line is cut.
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    sent = Counter(n["applicant_id"] for n in lines)
    assert left == 0
    assert sent == Counter({f"A{i:02d}": 1 for i in range(QUEUED)})
    # One warning for the outage, one line when it ended, with its length.
    warnings = [e["event"] for e in logs if e["log_level"] in ("warning", "error")]
    assert warnings == ["database down: notification delivery paused until it answers"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    back = [e for e in logs if e["event"] == "database back: notification delivery resumed"]
    assert len(back) == 1 and back[0]["down_s"] > 0


async def test_the_deliverer_command_keeps_running_through_a_killed_postgresql(own_stack, tmp_path):
    settings, info = own_stack
    round_id = f"idle-{uuid.uuid4().hex[:6]}"
    port, data_dir = _free_port(), tmp_path / "data"
    out = data_dir / "notifications.jsonl"
    env = command_env(
        info.temporal_address,
        info.database_url,
        load_or_create_keys(settings),
        data_dir,
        CASN_DELIVERER_METRICS_PORT=str(port),
    )
    said_file = tmp_path / "deliverer.out"  # a file, not a pipe: no buffer to fill, kept on failure
    with said_file.open("wb") as said_to:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "worker.py"),
            "deliver-notifications",
            env=env,
            cwd=tmp_path,
            stdout=said_to,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def insert(applicant_id: str) -> None:
        conn = await asyncpg.connect(info.database_url)
        try:
            await conn.execute(  # in clear, as written before sealing began (migration 007)
                "INSERT INTO notifications (round_id, applicant_id, key, text, created_at) "
                "SELECT $1, $2, 'registered', 'hai', applied_at - interval '1 day' "
                "FROM schema_migrations WHERE version = 7",
                round_id,
                applicant_id,
            )
        finally:
            await conn.close()

    def lines() -> list[str]:
        return out.read_text(encoding="utf-8").splitlines() if out.exists() else []

    try:
        await insert("B1")
        await _until(lambda: any(round_id in line for line in lines()), "the first delivered")
        await asyncio.to_thread(_sigkill_postgres, settings)  # between two passes
        down: tuple[int, dict] = (0, {})

        async def down_seen() -> bool:
            nonlocal down
            down = await asyncio.to_thread(_readyz, port)
            return down[1].get("deliverer", "").startswith("database down for ")

        await _until_async(down_seen, "/readyz telling the outage")
        await ensure_stack(settings)
        await insert("B2")
        await _until(lambda: sum(round_id in line for line in lines()) == 2, "the second delivered")
        up: tuple[int, dict] = (0, {})

        async def up_seen() -> bool:
            nonlocal up
            up = await asyncio.to_thread(_readyz, port)
            return up[0] == 200

        await _until_async(up_seen, "/readyz ready again")
        running = process.returncode is None
    except BaseException as failed:
        # What the deliverer said tells why (it stopped, or never served its port).
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)
        raise AssertionError(
            f"{failed!r}; the deliverer (exit {process.returncode}) said:\n"
            + said_file.read_text(encoding="utf-8", errors="replace")
        ) from failed
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 60)
    said = said_file.read_bytes()
    events = [json.loads(line)["event"] for line in said.decode().splitlines() if line[:1] == "{"]

    assert running, said.decode()
    assert down[0] == 503, down
    assert up == (200, {"status": "ok", "postgres": "ok", "deliverer": "ok"})
    assert process.returncode == 0, said.decode()
    assert events.count("database down: notification delivery paused until it answers") == 1
    assert events.count("database back: notification delivery resumed") == 1
    assert "notification deliverer stopped" in events


async def _until_async(done, what: str, within: float = 120.0) -> None:
    """`_until` for a check that awaits."""
    deadline = time.monotonic() + within
    while not await done():
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {what}"
        await asyncio.sleep(0.2)


class Frozen:
    """PostgreSQL stopped without closing a connection (SIGSTOP to the postmaster and every
    backend), as a network partition or a paused machine leaves it; `thaw` lets it go on."""

    def __init__(self) -> None:
        self.processes: list[psutil.Process] = []

    def freeze(self, settings: Settings) -> None:
        pid_file = settings.data_dir.resolve() / "postgres" / "postmaster.pid"
        postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
        self.processes = [postmaster, *postmaster.children(recursive=True)]
        for p in self.processes:
            p.suspend()

    def thaw(self) -> None:
        for p in self.processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.resume()
        self.processes = []


async def test_a_pass_on_a_postgresql_that_stops_answering_ends_and_the_deliverer_waits(
    own_stack, tmp_path
):
    settings, info = own_stack
    round_id = f"frozen-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "notifications.jsonl"
    pool = await open_deliverer_pool(info.database_url)
    await pool.executemany(
        "INSERT INTO notifications (round_id, applicant_id, key, text, created_at) "
        "VALUES ($1, $2, 'registered', $3, now() - interval '1 day' + $4 * interval '1 ms')",
        [(round_id, f"F{i:02d}", f"text {i}", i) for i in range(QUEUED)],
    )
    frozen = Frozen()
    # Stopped right after the KILLED_AT-th hand-over: its mark hangs, on a connection not reset.
    transport = KillingTransport(out, settings, frozen.freeze)
    progress, stop = DeliveryProgress(), asyncio.Event()
    handed_over: set[tuple[str, str, str]] = set()

    async def run_pass() -> DeliveryPass:
        return await deliver_pass(
            pool, WatchedTransport(transport, progress), stop=stop, handed_over=handed_over
        )

    async def undelivered() -> int:
        return await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE round_id = $1 AND delivered_at IS NULL",
            round_id,
        )

    left = -1
    with capture_logs() as logs:
        deliverer = asyncio.create_task(deliver_until_stopped(run_pass, stop, progress))
        try:
            await _until(transport.killed.is_set, "PostgreSQL stopped")
            # The pass's statement, then its rollback, each bounded: the pass ends as an outage.
            # Without a bound it waited for an answer for ever; this wait only fails the test.
            await _until(
                lambda: progress.state().startswith("database down for "),
                "the hung pass ended as an outage of the database",
                within=3 * STATEMENT_TIMEOUT_S + 30,
            )
            still_running = not deliverer.done()
            frozen.thaw()
            await _until(lambda: progress.state() == "ok", "delivery resumed")
            deadline = time.monotonic() + 60
            while (left := await undelivered()) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)  # a row still locked by the old backend is skipped
        finally:
            frozen.thaw()
            stop.set()
            if not deliverer.done():
                deliverer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliverer
            await pool.close()

    assert still_running
    assert left == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert Counter(n["applicant_id"] for n in lines) == Counter(
        {f"F{i:02d}": 1 for i in range(QUEUED)}
    )
    warnings = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert [e["event"] for e in warnings] == [
        "database down: notification delivery paused until it answers"
    ]
    assert warnings[0]["error"].startswith("DatabaseSilentError: "), warnings[0]
