"""The status cache (client/status.StateCache) on the real dev server: a journey whose history has
not grown since it was last asked is answered from the cache (a describe, no query), and one whose
history has grown is asked again, so the applicant never reads a state older than the history."""

from __future__ import annotations

import asyncio
import time

import pytest

from client.api import RecruitmentApi, UnknownError
from client.status import StateCache, journey_state
from domain.messages import Withdrawal
from domain.protocol import JOURNEY_STATE
from tests.flows.test_operator_commands import _terminate_round
from tests.roundkit import TEST_KEYRING, open_registration_round, registration
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_unchanged_journey_is_answered_from_the_cache_and_a_changed_one_asked_again(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = await open_registration_round(api, tmp_path, "cache")
    round_id = config.round_id
    try:
        a = (await api.register(config, registration(1, "F1"), "sscasn")).applicant_id
        b = (await api.register(config, registration(2, "F1"), "sscasn")).applicant_id
        cache = StateCache(10)

        first = await journey_state(api, round_id, a, cache)
        again = await journey_state(api, round_id, a, cache)
        assert (cache.asked, cache.hits) == (1, 1)
        assert again == first and first.terminal is None

        # The applicant withdraws: the journey's history grows, and the next read asks it.
        await api.report(
            round_id, a, Withdrawal(report_id="w-1", reported_by="sscasn", reason="pindah kota")
        )
        changed = await journey_state(api, round_id, a, cache)
        assert cache.asked == 2
        assert changed != first and (changed.ending_pending or changed.terminal == "APS")

        # Until it has ended; from then on every read is the cache's, and the same as a query's.
        deadline = time.monotonic() + 20
        while (changed := await journey_state(api, round_id, a, cache)).terminal is None:
            assert time.monotonic() < deadline, "the withdrawal never ended the journey"
            await asyncio.sleep(0.2)
        asked = cache.asked
        ended = await journey_state(api, round_id, a, cache)
        assert cache.asked == asked and ended.terminal == "APS"
        handle = client.get_workflow_handle(journey_workflow_id(round_id, a))
        assert ended == await JOURNEY_STATE.ask(handle)

        # Bounded: a cache of one forgets the journey read least recently.
        small = StateCache(1)
        for applicant in (a, b, a):
            await journey_state(api, round_id, applicant, small)
        assert (small.asked, small.hits) == (3, 0)
        await journey_state(api, round_id, a, small)
        assert small.hits == 1

        # No such applicant: the same error as without the cache, and nothing kept.
        with pytest.raises(UnknownError, match="check the registration number"):
            await journey_state(api, round_id, "NOSUCHAPPLICANT0", cache)
    finally:
        await _terminate_round(client, round_id)


async def test_a_cache_size_below_zero_is_refused_naming_it():
    with pytest.raises(ValueError, match="status cache size -1 is below 0"):
        StateCache(-1)
