"""The outbox's delivery under interruption and failure: each notification is marked delivered as
soon as it is handed over, so a deliverer stopped or killed mid-pass sends again at most the one
in flight; a row that fails waits for its next attempt, so failing rows never hold back the rest,
and is given up (kept) after its last attempt."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from activities.notify import FileTransport, deliver_pass, deliver_pending
from apps.fleet import DELIVERY_BATCH, DELIVERY_PAUSE, pause_after
from runtime.db import open_pool
from runtime.sealed import ColumnCipher
from tests.roundkit import command_env

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]


class InterruptedTransport(FileTransport):
    """Writes the notifications of one round; after `k` of them, interrupts the pass the way
    Ctrl-C does (the task is cancelled) while the k-th is handed over but not yet marked."""

    def __init__(self, path: Path, round_id: str, k: int) -> None:
        super().__init__(path)
        self.round_id, self.left = round_id, k

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        if round_id != self.round_id:
            return  # rows of other tests in the session database
        await super().send(round_id, applicant_id, key, text)
        self.left -= 1
        if self.left == 0:
            asyncio.current_task().cancel()
            await asyncio.sleep(0)


async def _outbox(pool, round_id: str, n: int) -> None:
    await pool.executemany(
        "INSERT INTO notifications (round_id, applicant_id, key, text, created_at) "
        "VALUES ($1, $2, 'registered', $3, now() - interval '1 day' + $4 * interval '1 ms')",
        [(round_id, f"A{i:02d}", f"text {i}", i) for i in range(n)],
    )


def _sent(path: Path) -> Counter:
    return Counter(json.loads(line)["applicant_id"] for line in path.read_text().splitlines())


async def test_an_interrupted_pass_sends_again_at_most_the_notification_in_flight(stack, tmp_path):
    round_id = f"cut-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "notifications.jsonl"
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        await _outbox(pool, round_id, 10)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(
                deliver_pending(pool, InterruptedTransport(out, round_id, 6), round_id=round_id)
            )
        await deliver_pending(pool, FileTransport(out), round_id=round_id)
    finally:
        await pool.close()

    sent = _sent(out)
    assert set(sent) == {f"A{i:02d}" for i in range(10)}
    assert [a for a, times in sent.items() if times > 1] == ["A05"]  # the one in flight


async def test_a_stopped_pass_ends_after_the_notification_in_flight(stack, tmp_path):
    round_id = f"stop-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "notifications.jsonl"
    stop = asyncio.Event()

    class StoppingTransport(FileTransport):
        async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
            await super().send(round_id, applicant_id, key, text)
            if applicant_id == "A03":
                stop.set()  # SIGTERM arrives while A03 is handed over

    pool = await open_pool(stack.database_url, max_size=2)
    try:
        await _outbox(pool, round_id, 10)
        first = await deliver_pending(pool, StoppingTransport(out), round_id=round_id, stop=stop)
        second = await deliver_pending(pool, FileTransport(out), round_id=round_id)
    finally:
        await pool.close()

    assert (first, second) == (4, 6)
    assert max(_sent(out).values()) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(port: int) -> int:
    """The status of the deliverer's /readyz (urllib raises on a 503)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
        return answer.status


async def test_sigterm_stops_the_deliverer_cleanly_and_it_is_ready_after_its_first_pass(
    stack, keys, tmp_path
):
    port = _free_port()
    env = command_env(
        stack.temporal_address,
        stack.database_url,
        keys,
        tmp_path / "data",
        CASN_DELIVERER_METRICS_PORT=str(port),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "worker.py"),
        "deliver-notifications",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    said: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not said or "notifications delivered" not in said[-1]:
                line = (await process.stdout.readline()).decode()
                assert line, "the deliverer ended before its first pass: " + "".join(said)
                said.append(line)
        ready = await asyncio.to_thread(_ready, port)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    rest, _ = await asyncio.wait_for(process.communicate(), 30)
    said.append(rest.decode())

    assert process.returncode == 0, "".join(said)
    assert "notification deliverer stopped" in "".join(said)
    assert ready == 200


async def test_failing_rows_ahead_wait_their_turn_and_are_given_up_after_the_last_attempt(
    stack, keys, tmp_path
):
    # 501 rows sealed under a key this deliverer does not hold, older than everything else.
    stuck, good = f"stuck-{uuid.uuid4().hex[:6]}", f"good-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "notifications.jsonl"
    cipher = ColumnCipher.from_keys(keys)
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        await pool.executemany(
            "INSERT INTO notifications (round_id, applicant_id, key, text, sealed, created_at) "
            "VALUES ($1, $2, 'registered', '', $3, now() - interval '1 day')",
            [(stuck, f"P{i:04d}", b"\x00" * 48) for i in range(501)],
        )
        await pool.execute(  # in clear, as written just before sealing began (migration 007)
            "INSERT INTO notifications (round_id, applicant_id, key, text, created_at) "
            "SELECT $1, 'G1', 'registered', 'hai', applied_at - interval '1 ms' "
            "FROM schema_migrations WHERE version = 7",
            good,
        )
        passes = [
            await deliver_pass(pool, FileTransport(out), batch=DELIVERY_BATCH, cipher=cipher)
            for _ in range(2)
        ]
        assert passes[0].failed == 500 and passes[1].failed == 1
        # A full pass is followed by the next at once; the pass that found fewer waits. The
        # table is the worker's stack's: rounds of earlier modules can still be writing rows
        # (8 more in one loaded run), so the second pass found at least the stuck one and "G1".
        assert (passes[0].due, pause_after(passes[0])) == (500, 0.0)
        assert 2 <= passes[1].due < DELIVERY_BATCH, passes[1]
        assert pause_after(passes[1]) == DELIVERY_PAUSE
        assert f'"round_id": "{good}"' in out.read_text()  # delivered in the second pass
        assert passes[1].waiting >= 501

        waiting = await pool.fetchrow(
            "SELECT count(*) AS n, min(attempts) AS least, max(attempts) AS most, "
            "min(next_attempt_at - now()) AS soonest, max(next_attempt_at - now()) AS latest "
            "FROM notifications WHERE round_id = $1 AND delivered_at IS NULL",
            stuck,
        )
        assert (waiting["n"], waiting["least"], waiting["most"]) == (501, 1, 1)
        assert 50 <= waiting["soonest"].total_seconds() <= waiting["latest"].total_seconds() <= 60

        with capture_logs() as logs:
            for _ in range(2):  # their next attempts are due: the 2nd, then the 3rd and last
                await pool.execute(
                    "UPDATE notifications SET next_attempt_at = now() WHERE round_id = $1", stuck
                )
                last = await deliver_pass(
                    pool,
                    FileTransport(out),
                    batch=1000,
                    round_id=stuck,
                    cipher=cipher,
                    max_attempts=3,
                )
        assert (last.failed, last.given_up, last.waiting) == (501, 501, 0)
        given_up = [e for e in logs if e["log_level"] == "warning"]
        assert sorted(e["applicant_id"] for e in given_up) == [f"P{i:04d}" for i in range(501)]
        assert {(e["event"], e["round_id"], e["attempts"]) for e in given_up} == {
            ("notification given up", stuck, 3)
        }

        await pool.execute(
            "UPDATE notifications SET next_attempt_at = now() WHERE round_id = $1", stuck
        )
        after = await deliver_pass(pool, FileTransport(out), round_id=stuck, cipher=cipher)
        kept = await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE round_id = $1 AND given_up_at IS NOT NULL "
            "AND delivered_at IS NULL AND attempts = 3",
            stuck,
        )
        assert (after.failed, kept) == (0, 501)  # kept, and not tried again
    finally:
        await pool.close()
