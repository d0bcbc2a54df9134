"""A report to a journey that has ended, on the real stack.

The sender hears that the journey has ended, with its outcome when the journey's state can be
read. Reading an ended journey's state replays it on a worker; when that fails (no worker, or one
past the SDK's deadlock limit under load, as `bench optimalisasi` saw on 12-05), the sender still
hears that the journey has ended, not the query's failure."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowExecutionStatus

import client.api as client_api
from client.api import RefusedError
from domain.messages import CloseWindow, OfferAnswer
from gateway.portal import indonesian
from tests.roundkit import (
    OPERATOR,
    REGISTRATION_OPEN,
    UnreadableQuery,
    compressed_round,
    create_round_file,
    formasi,
    plain_start_api,
    registration,
)
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def ended_journey(client, api, tmp_path, prefix: str) -> tuple[str, str]:
    """A round whose registration the committee closed, and a journey started after it, which
    refuses its registration and ends (TMS): the round and the registration number."""
    round_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], REGISTRATION_OPEN)
    await create_round_file(api, config, tmp_path)
    await api.command(
        round_id,
        CloseWindow(report_id="close", reported_by=OPERATOR, window="registration", reason="kuota"),
    )
    started = await api.register(config, registration(7, "F1"), "sscasn", now=datetime.now(UTC))
    handle = client.get_workflow_handle(journey_workflow_id(round_id, started.applicant_id))
    deadline = time.monotonic() + 120
    while (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
        assert time.monotonic() < deadline, "the refused journey did not end"
        await asyncio.sleep(0.2)
    return round_id, started.applicant_id


async def test_a_report_to_an_ended_journey_is_refused_as_such_even_when_its_state_cannot_be_read(
    client, keys, running_worker, tmp_path, monkeypatch
):
    settings, _ = running_worker
    api = plain_start_api(client, settings.task_queue, keys)
    round_id, applicant_id = await ended_journey(client, api, tmp_path, "ended")

    answer = OfferAnswer(report_id="late", reported_by="sscasn", accept=True)
    with pytest.raises(RefusedError) as read:
        await api.report(round_id, applicant_id, answer)
    assert "the journey has ended (TMS: registration refused" in str(read.value)

    monkeypatch.setattr(client_api, "JOURNEY_STATE", UnreadableQuery())
    with pytest.raises(RefusedError) as unread:
        await api.report(round_id, applicant_id, answer)
    assert str(unread.value).endswith("the journey has ended")
    assert indonesian("the journey has ended") == "proses seleksi Anda sudah berakhir"
