"""Which errors does a notification pass meet when PostgreSQL is SIGKILLed at a random moment of
it, and does the deliverer take each as an outage to wait out? For an asyncpg upgrade, or when a
deliverer stops on an error that only a lost database could have caused.

    .venv/bin/python scripts/kill_postgres_mid_pass.py [--kills 30] [--seed N]

Starts an embedded stack of its own under a temporary directory. Each round queues 30
notifications, runs up to three passes (`deliver_pass`, a transport that waits up to 10 ms per
notification, the deliverer's memory of what it handed over), SIGKILLs the postmaster and every
backend after a random 0 to 0.4 s, and starts PostgreSQL again. Every error a pass raised is
counted by kind, with what `database_unavailable` says of it; a kind it does not take as an outage
is printed with its traceback, and the exit status is 1.

On 2026-12-07 (asyncpg 0.32.0) one round in 30 to 60 met "cannot switch to state 15; another
operation (2) is in progress" (an InternalClientError) on a connection already closed: the
deliverer stopped on it (the fresh clone's CI run of that day). deliver_pass now says it as the
lost connection it is; with that, every kind met is an outage.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import sys
import tempfile
import traceback
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from activities.notify import FileTransport, deliver_pass  # noqa: E402
from apps.fleet import open_deliverer_pool  # noqa: E402
from runtime.db import database_unavailable  # noqa: E402
from runtime.embedded import ensure_stack, isolated_settings, stop_stack  # noqa: E402
from runtime.process import run_and_end  # noqa: E402
from runtime.settings import LogFormat  # noqa: E402
from tests.roundkit import sigkill_postgres  # noqa: E402

QUEUED = 30


class _Unhurried(FileTransport):
    """The file transport, waiting up to 10 ms after each notification: kills land mid-pass."""

    def __init__(self, path: Path, rng: random.Random) -> None:
        super().__init__(path)
        self.rng = rng

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        await super().send(round_id, applicant_id, key, text)
        await asyncio.sleep(self.rng.random() * 0.01)


async def run(kills: int, rng: random.Random, work: Path) -> tuple[Counter, dict[str, str]]:
    settings = isolated_settings(work / "stack", log_format=LogFormat.JSON)
    info = await ensure_stack(settings)
    met: Counter[tuple[str, bool]] = Counter()
    not_outage: dict[str, str] = {}
    try:
        pool = await open_deliverer_pool(info.database_url)
        try:
            for done in range(1, kills + 1):
                round_id = f"kill-{uuid.uuid4().hex[:6]}"
                await pool.executemany(
                    "INSERT INTO notifications (round_id, applicant_id, key, text) "
                    "VALUES ($1, $2, 'registered', 'x')",
                    [(round_id, f"K{i:02d}") for i in range(QUEUED)],
                )
                transport = _Unhurried(work / "notifications.jsonl", rng)
                handed_over: set[tuple[str, str, str]] = set()

                async def passes(
                    transport: FileTransport = transport,
                    handed_over: set[tuple[str, str, str]] = handed_over,
                ) -> list[Exception]:
                    errors = []
                    for _ in range(3):
                        try:
                            await deliver_pass(pool, transport, handed_over=handed_over)
                        except Exception as exc:  # noqa: BLE001 - each one is what we count
                            errors.append(exc)
                        await asyncio.sleep(rng.random() * 0.05)
                    return errors

                task = asyncio.create_task(passes())
                await asyncio.sleep(rng.random() * 0.4)
                await asyncio.to_thread(sigkill_postgres, settings.data_dir)
                for error in await task:
                    outage = database_unavailable(error)
                    met[type(error).__name__, outage] += 1
                    if not outage:
                        not_outage.setdefault(
                            type(error).__name__, "".join(traceback.format_exception(error))
                        )
                await ensure_stack(settings)
                print(f"\r{done}/{kills} kills", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
        finally:
            await pool.close()
    finally:
        stop_stack(settings)
    return met, not_outage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kills", type=int, default=30, help="rounds of queue, pass, kill (1-1000)"
    )
    parser.add_argument("--seed", type=int, default=None, help="the random moments' seed")
    args = parser.parse_args()
    if not 1 <= args.kills <= 1000:
        parser.error(f"--kills: expected 1 to 1000, got {args.kills}")
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    with tempfile.TemporaryDirectory(prefix="casn-kills-") as work:
        met, not_outage = asyncio.run(run(args.kills, random.Random(seed), Path(work)))
    console = Console()
    table = Table(title=f"errors met in {args.kills} kills (seed {seed}, {platform.node()})")
    table.add_column("error")
    table.add_column("an outage?")
    table.add_column("times", justify="right")
    for (kind, outage), times in sorted(met.items()):
        table.add_row(kind, "yes" if outage else "NO: the deliverer stops", str(times))
    console.print(table)
    for kind, trace in not_outage.items():
        console.print(f"[bold red]{kind}[/] not taken as an outage:\n{trace}")
    return 1 if not_outage else 0


if __name__ == "__main__":
    run_and_end(main)
