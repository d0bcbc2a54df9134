"""The outbox's delivery under interruption: each notification is marked delivered as soon as it
is handed over, so a deliverer stopped or killed mid-pass sends again at most the one in flight."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from activities.notify import FileTransport, deliver_pending
from runtime.db import open_pool
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


async def test_sigterm_stops_the_deliverer_cleanly(stack, keys, tmp_path):
    env = command_env(stack.temporal_address, stack.database_url, keys, tmp_path / "data")
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
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    rest, _ = await asyncio.wait_for(process.communicate(), 30)
    said.append(rest.decode())

    assert process.returncode == 0, "".join(said)
    assert "notification deliverer stopped" in "".join(said)
