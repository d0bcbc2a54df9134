"""RecruitmentApi sends a report again when its update call times out (idempotent by report_id),
and gives the timeout to the caller after its last attempt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

import client.api as api_module
from client.api import RecruitmentApi
from domain.messages import Ack


class TimingOutUpdate:
    """An update whose first `failures` calls time out at the RPC, then acknowledges."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def execute(self, handle, message) -> Ack:
        self.calls += 1
        if self.calls <= self.failures:
            raise WorkflowUpdateRPCTimeoutOrCancelledError()
        return Ack(
            report_id=message,
            applicant_id="A",
            stage="skd",
            effect="recorded",
            recorded_at=datetime(2027, 1, 1, tzinfo=UTC),
        )


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    async def instant(_seconds: float) -> None:
        return None

    monkeypatch.setattr(api_module.asyncio, "sleep", instant)


def _api() -> RecruitmentApi:
    return RecruitmentApi(None, "queue", b"k" * 32)  # type: ignore[arg-type]


async def test_a_timed_out_update_is_sent_again_until_acknowledged():
    update = TimingOutUpdate(failures=2)
    ack = await _api()._update(None, update, "r-1", journey=True, subject="applicant A")
    assert (ack.report_id, update.calls) == ("r-1", 3)


async def test_the_timeout_reaches_the_caller_after_the_last_attempt():
    update = TimingOutUpdate(failures=api_module.UPDATE_ATTEMPTS)
    with pytest.raises(WorkflowUpdateRPCTimeoutOrCancelledError):
        await _api()._update(None, update, "r-2", journey=True, subject="applicant A")
    assert update.calls == api_module.UPDATE_ATTEMPTS
