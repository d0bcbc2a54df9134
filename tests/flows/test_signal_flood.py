"""A run whose signals another sender spent still hears what the round's workflows tell it.

Anyone who reaches Temporal can send one journey's run its 10,000 signals (refused payloads
count; a journey's id is its round's and its registration number). The server then refuses every
signal to it, the formasi's announcements included: the broadcast's page failed on that journey
at every attempt, and the formasi's announcement never ended, for every applicant of the formasi.
The broadcast now sends such a journey the announcement as the update `announce_update`, which
nobody else can use up. On the small server of tests/flows/conftest.py (runs take 200 signals).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter

from apps.fleet import build_worker
from auditing.bundle import load_histories
from auditing.history import RecordedHistory, replay
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import Announcement
from domain.protocol import (
    ANNOUNCE,
    ANNOUNCE_UPDATE,
    FORMASI_PHASE,
    FORMASI_PHASE_UPDATE,
    FORMASI_RESULT,
    FORMASI_RESULT_UPDATE,
    SEND_BY_UPDATE,
)
from runtime.connection import data_converter
from runtime.db import open_pool
from runtime.keys import Keys
from tests.flows.conftest import flood
from tests.flows.test_round_end_to_end import _state
from tests.roundkit import (
    TEST_KEYRING,
    accepted_updates,
    close_window,
    compressed_round,
    create_round_file,
    formasi,
    keep_histories,
    play_to_skb,
    registration,
    report_skb,
)
from workflows.ids import formasi_workflow_id, journey_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

SIGNALS_SPENT_SET = Path(__file__).resolve().parents[1] / "histories" / "signals-spent-v1"

# The round's signals spent: before patch signal-by-update-when-spent the formasi's result signal
# failed the formasi ("SignalCountLimitExceeded"), its ranking and result lost, and the round
# waited for it for ever. Its result now goes as the round's update formasi_result_update.

# Registration open for 15 s (two applicants register), the later windows closed by the committee.
SCHEDULE = {
    "registration": (-60, 15),
    "administration": (15, 600),
    "skd": (600, 1200),
    "skb": (1200, 1800),
    "filing": (1800, 2400),
    "latsar": (2400, 3000),
}


@contextlib.asynccontextmanager
async def _flood_stack(small_server, keys, stack, stack_settings):
    """(client, api, outsider) while a worker of the project runs on the small server, with the
    session's read model; `outsider` reaches the server without the payload key (plaintext)."""
    address, client = small_server
    settings = stack_settings.model_copy(update={"task_queue": f"flood-{uuid.uuid4().hex[:8]}"})
    pool = await open_pool(stack.database_url, max_size=4)
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    outsider = await Client.connect(address, data_converter=pydantic_data_converter)
    try:
        async with await build_worker(client, settings, pool):
            yield client, api, outsider
    finally:
        await pool.close()


async def _round_to_skb(api, client, tmp_path, birth: date, spend=None) -> tuple[str, list[str]]:
    """A round of two applicants played to the SKB; `spend(round_id, ids)` once they have
    registered, when given."""
    config = compressed_round(
        f"flood-{uuid.uuid4().hex[:6]}", [formasi("F1", 2)], SCHEDULE, t0=datetime.now(UTC)
    )
    await create_round_file(api, config, tmp_path)
    ids = []
    for serial in (1, 2):
        person = registration(serial, "F1", birth=birth)
        ids.append((await api.register(config, person, "sscasn")).applicant_id)
    if spend is not None:
        await spend(config.round_id, ids)
    await play_to_skb(api, client, config.round_id, ids)
    return config.round_id, ids


async def _replays(client, workflow_id: str, payload_key: bytes) -> None:
    """The workflow's history holds the activity that sent by update (and the patch's marker,
    encrypted with its details), and replays with this code. With CASN_RECORD_SIGNALS_SPENT set,
    it is kept in tests/histories/signals-spent-v1, which the last test replays in every run."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    assert f'"{SEND_BY_UPDATE.name}"' in history.to_json()
    [outcome] = await replay([history], client.data_converter)
    assert outcome.failure is None, outcome.failure
    if os.environ.get("CASN_RECORD_SIGNALS_SPENT"):
        kept = RecordedHistory(history=history)
        keep_histories(SIGNALS_SPENT_SET, [kept], payload_key)


async def test_a_journey_whose_signals_were_spent_hears_its_announcements_by_update(
    small_server, keys, stack, stack_settings, tmp_path
):
    async with _flood_stack(small_server, keys, stack, stack_settings) as (client, api, outsider):
        spent: list[str] = []

        async def spend(round_id: str, ids: list[str]) -> None:
            spent.append(journey_workflow_id(round_id, ids[0]))
            await flood(outsider.get_workflow_handle(spent[0]), ANNOUNCE.name)

        # The administration and SKD announcements reach both journeys: each is at the SKB.
        round_id, ids = await _round_to_skb(api, client, tmp_path, date(1993, 10, 17), spend)

        handle = client.get_workflow_handle(spent[0])
        heard = (await accepted_updates(handle)).count(ANNOUNCE_UPDATE.name)
        assert heard >= 2
        other = client.get_workflow_handle(journey_workflow_id(round_id, ids[1]))
        assert ANNOUNCE_UPDATE.name not in await accepted_updates(other)
        for applicant in ids:
            state = await _state(client, round_id, applicant)
            assert state.stage == Stage.SKB and state.admin_announced_at is not None
        # The update is no way in for the sender who spent the signals: without the round's
        # seal (or the payload key) it is refused, and leaves nothing in the history.
        forged = Announcement(
            announcement_id=f"{round_id}/final_result/1",
            phase="final_result",
            at=datetime.now(UTC),
            winners=[ids[0]],
        )
        for sender in (client, outsider):
            with pytest.raises(WorkflowUpdateFailedError):
                await ANNOUNCE_UPDATE.execute(sender.get_workflow_handle(spent[0]), forged)
        assert (await accepted_updates(handle)).count(ANNOUNCE_UPDATE.name) == heard


async def test_a_round_tells_a_formasi_whose_signals_were_spent_its_phases_by_update(
    small_server, keys, stack, stack_settings, tmp_path
):
    """The round's phases reach a formasi so spent (its administration and SKD closes, which it
    then announces to its journeys): both journeys reach the SKB."""
    async with _flood_stack(small_server, keys, stack, stack_settings) as (client, api, outsider):

        async def spend(round_id: str, ids: list[str]) -> None:
            formasi_id = formasi_workflow_id(round_id, "F1")
            await flood(outsider.get_workflow_handle(formasi_id), FORMASI_PHASE.name)

        round_id, _ = await _round_to_skb(api, client, tmp_path, date(1993, 10, 19), spend)
        formasi_handle = client.get_workflow_handle(formasi_workflow_id(round_id, "F1"))
        assert FORMASI_PHASE_UPDATE.name in await accepted_updates(formasi_handle)
        await _replays(client, round_workflow_id(round_id), keys.payload_key)


async def test_a_formasi_tells_a_round_whose_signals_were_spent_its_result_by_update(
    small_server, keys, stack, stack_settings, tmp_path
):
    async with _flood_stack(small_server, keys, stack, stack_settings) as (client, api, outsider):
        round_id, ids = await _round_to_skb(api, client, tmp_path, date(1993, 10, 18))
        round_handle = client.get_workflow_handle(round_workflow_id(round_id))
        await flood(outsider.get_workflow_handle(round_handle.id), FORMASI_RESULT.name)
        await report_skb(api, round_id, ids)
        await close_window(api, round_id, "skb")

        # The round holds the formasi's result, taken by update; the formasi runs on.
        deadline = time.monotonic() + 60
        while "F1" not in (await api.round_state(round_id)).formasi_results:
            assert time.monotonic() < deadline, "the round never took the formasi's result"
            await asyncio.sleep(0.5)
        assert FORMASI_RESULT_UPDATE.name in await accepted_updates(round_handle)
        formasi_id = formasi_workflow_id(round_id, "F1")
        described = await client.get_workflow_handle(formasi_id).describe()
        assert described.status in (
            WorkflowExecutionStatus.RUNNING,
            WorkflowExecutionStatus.COMPLETED,
        ), described.status
        await _replays(client, formasi_id, keys.payload_key)


async def test_the_recorded_histories_of_a_spent_round_and_formasi_replay():
    """signals-spent-v1 (the two tests above with CASN_RECORD_SIGNALS_SPENT=1): a round that told
    its spent formasi a phase by update, and a formasi that told its spent round its result so.
    Both hold patch signal-by-update-when-spent's marker and the activity send_by_update, and
    replay with the current code, as no recorded full round can show (a default server takes
    10,000 signals before the marker appears)."""
    histories = load_histories(SIGNALS_SPENT_SET)
    assert sorted(h.kind for h in histories) == ["formasi", "round"]
    key = base64.b64decode((SIGNALS_SPENT_SET / "payload_key.b64").read_text().strip())
    converter = data_converter(Keys(payload_key=key, pseudonym_key=b"", signing_key=b""))
    for h in histories:
        assert f'"{SEND_BY_UPDATE.name}"' in h.history.to_json()
    outcomes = await replay([h.history for h in histories], converter)
    assert [o.failure for o in outcomes] == [None, None]
