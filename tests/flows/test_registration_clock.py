"""A registration near the window's ends is judged by the round on the server's clock, not by the
client's clock: an operator's machine a few minutes off neither refuses a registration the round
still takes nor starts one the round would not admit."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from client.api import CLOCK_MARGIN, RecruitmentApi
from tests.roundkit import TEST_KEYRING, compressed_round, create_round_file, formasi, registration

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIRTH = date(1996, 3, 7)  # no other test's applicants


def _serial() -> int:
    """A serial of its own: a session's stack is shared, and a NIK is one registration per round."""
    return random.randrange(1000, 10000)


def _api(client, keys, running_worker) -> RecruitmentApi:
    settings, _ = running_worker
    return RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)


async def _round(api, tmp_path, windows):
    config = compressed_round(
        f"clock-{uuid.uuid4().hex[:6]}", [formasi("F1", 2)], windows, t0=datetime.now(UTC)
    )
    await create_round_file(api, config, tmp_path)
    return config


async def test_a_clock_a_few_minutes_fast_does_not_refuse_a_registration_still_open(
    client, keys, running_worker, tmp_path
):
    api = _api(client, keys, running_worker)
    config = await _round(api, tmp_path, {"registration": (-60, 600), **_LATER})
    closes = config.schedule.registration.closes

    # The operator's clock reads two minutes past the close; the server's, ten minutes before it.
    fast = await api.register(
        config,
        registration(_serial(), "F1", birth=BIRTH),
        "sscasn",
        now=closes + timedelta(minutes=2),
    )
    # Further off than any clock should be: refused here, nothing started.
    beyond = closes + CLOCK_MARGIN + timedelta(minutes=1)
    late = await api.register(
        config, registration(_serial(), "F1", birth=BIRTH), "sscasn", now=beyond
    )

    assert fast.status == "registered", fast
    assert late.status == "refused" and [r.field for r in late.refusals] == ["registered_at"]


async def test_a_clock_a_few_minutes_slow_does_not_admit_a_registration_after_the_close(
    client, keys, running_worker, tmp_path
):
    api = _api(client, keys, running_worker)
    config = await _round(api, tmp_path, {"registration": (-60, 3), **_LATER})
    closes = config.schedule.registration.closes
    while datetime.now(UTC) < closes + timedelta(seconds=1):
        await asyncio.sleep(0.5)

    # The operator's clock reads a minute before the close; the server's, past it.
    slow = await api.register(
        config,
        registration(_serial(), "F1", birth=BIRTH),
        "sscasn",
        now=closes - timedelta(minutes=1),
    )

    assert slow.status == "refused", slow
    assert "clos" in " ".join(r.reason for r in slow.refusals), slow.refusals


_LATER = {
    "administration": (700, 800),
    "skd": (800, 900),
    "skb": (900, 1000),
    "filing": (1000, 1100),
    "latsar": (1100, 1200),
}
