"""A round whose Temporal server and PostgreSQL are SIGKILLed mid-round ends as it would have.

Its own stack (own data dir, own ports), a `worker.py run` process and a notification deliverer
as processes: the round is played once unharmed, then again with the same applicants and scores
while the Temporal dev server is killed (SIGKILL by pid) as the SKD close is being broadcast and
restarted on the same SQLite file, and PostgreSQL (the postmaster and every backend at once) is
killed amid the filing reports, as NIPs are issued, and restarted on the same data dir. The driver
retries what fails meanwhile, as a client would (bench/chaos.py, which `bench chaos` runs at size).
"""

from __future__ import annotations

import uuid

import pytest

from bench.chaos import compare, run_chaos
from runtime.connection import connect
from runtime.db import open_pool
from runtime.embedded import ensure_stack, isolated_settings, stop_stack
from runtime.keys import load_or_create_keys
from runtime.settings import LogFormat

pytestmark = pytest.mark.asyncio(loop_scope="session")

SIZE = 12
PLAN = {"skd-close": ["temporal"], "nip": ["postgres"]}


async def test_a_round_through_killed_servers_ends_as_it_would_have(server_dir, tmp_path):
    settings = isolated_settings(
        server_dir("chaos"),
        log_format=LogFormat.JSON,
        task_queue=f"chaos-{uuid.uuid4().hex[:6]}",
    )
    stack = await ensure_stack(settings)
    try:
        keys = load_or_create_keys(settings)
        client = await connect(settings, stack, keys)
        pool = await open_pool(stack.database_url, max_size=4)
        try:
            unharmed, killed, supervised = await run_chaos(
                client, pool, keys.pseudonym_key, settings, tmp_path, SIZE, PLAN,
                down=0.5, seed=3, workers=1, audit_unharmed=False,
            )  # fmt: skip
        finally:
            await pool.close()
    finally:
        stop_stack(settings)

    assert [(k.what, k.point) for k in killed.kills] == [
        ("temporal", "skd-close"),
        ("postgres", "nip"),
    ]
    # Every applicant ended with the outcome the same round gave unharmed.
    same = compare(unharmed, killed)
    assert (same["applicants compared"], same["only in one play"]) == (SIZE, 0), same
    assert same["different outcome"] == 0, same["first differences"]
    assert killed.driver.answers == {"registered": SIZE}
    # The audit finds what was decided, and the read model holds what the histories wrote.
    assert killed.recompute[0] == 0, killed.recompute[1]
    assert killed.read_model[0] == 0, killed.read_model[1]
    # Nothing counted twice or lost: journeys, rows, reports, NIPs (one per person).
    held = killed.stores
    assert held["journeys"] == held["applicant rows"] == SIZE, held
    assert held["reports"] == unharmed.stores["reports"], (held, unharmed.stores)
    appointed = sum(s.nip is not None for s in killed.ended.values())
    assert appointed > 0
    assert held["nip rows"] == held["distinct nips"] == held["distinct persons"] == appointed
    assert held["nips not as the journeys were told"] == 0
    # Every notification delivered, none lost, none twice: the deliverer rode the PostgreSQL kill
    # out (never restarted), and the notification it had handed over as the connection was lost
    # was marked, not sent again (docs/OPERATIONS.md 2.5).
    outbox = killed.outbox
    assert outbox["notifications"] == unharmed.outbox["notifications"] > 0
    assert (outbox["undelivered"], outbox["lost (no line)"], outbox["lines without a row"]) == (
        0,
        0,
        0,
    )
    assert supervised.restarts["deliverer"] == 0
    assert outbox["sent twice"] == 0
