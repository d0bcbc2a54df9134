"""The gateway asks a round for its state once at a time (gateway/deps.py, RoundDirectory.state):
pages that find the cached state stale while it is being asked for wait for that one answer, so
the portal's pages at the moment registration opens do not each query the round's worker. On the
session's real stack and worker; the API below counts the queries it makes, each a real one."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.service import RPCError

from client.api import RecruitmentApi
from gateway.deps import RoundDirectory
from tests.roundkit import TEST_KEYRING, open_registration_round

pytestmark = pytest.mark.asyncio(loop_scope="session")


class _Counting(RecruitmentApi):
    """RecruitmentApi, counting the round-state queries it sends to the engine."""

    asked = 0

    async def round_state(self, round_id):
        self.asked += 1
        return await super().round_state(round_id)


async def test_concurrent_reads_of_a_stale_state_ask_the_round_once(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = await open_registration_round(api, tmp_path, "states")
    counting = _Counting(client, settings.task_queue, keys.pseudonym_key)
    directory = RoundDirectory(counting, state_ttl=30.0)

    states = await asyncio.gather(*(directory.state(config.round_id) for _ in range(50)))
    assert counting.asked == 1
    assert states[0].phase == "registration" and all(s == states[0] for s in states)
    assert await directory.state(config.round_id) == states[0] and counting.asked == 1  # cached

    # Stale again: the next burst asks once more, once; a caller whose own timeout passes stops
    # waiting without ending the query the others wait on.
    directory.state_ttl = 0.0
    impatient = asyncio.ensure_future(directory.state(config.round_id, timeout=1e-6))
    burst = await asyncio.gather(*(directory.state(config.round_id) for _ in range(20)))
    with pytest.raises(TimeoutError):
        await impatient
    assert counting.asked == 2
    assert all(s.phase == "registration" for s in burst)


async def test_a_failed_read_reaches_every_waiter_and_the_next_read_asks_again(
    client, keys, running_worker
):
    settings, _ = running_worker
    counting = _Counting(client, settings.task_queue, keys.pseudonym_key)
    directory = RoundDirectory(counting)
    failures = await asyncio.gather(
        *(directory.state("no-such-round") for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(f, RPCError) for f in failures), failures
    assert counting.asked == 1
    with pytest.raises(RPCError):
        await directory.state("no-such-round")
    assert counting.asked == 2  # a failure is not kept
