"""RecruitmentApi sends a report again when its update call times out (idempotent by report_id),
and gives the timeout to the caller after its last attempt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

import client.api as api_module
from client.api import RecruitmentApi, update_id
from domain.administration import DocumentFinding
from domain.messages import Ack, AdminReport


class TimingOutUpdate:
    """An update whose first `failures` calls time out at the RPC, then acknowledges."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.ids: list[str] = []

    async def execute(self, handle, message, *, id: str) -> Ack:
        self.calls += 1
        self.ids.append(id)
        if self.calls <= self.failures:
            raise WorkflowUpdateRPCTimeoutOrCancelledError()
        return Ack(
            report_id=message.report_id,
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


FINDING = DocumentFinding(document="ijazah", reason="tidak terbaca")


def _report(report_id: str) -> AdminReport:
    return AdminReport(report_id=report_id, reported_by="bkpsdm-verifikator")


async def test_a_timed_out_update_is_sent_again_until_acknowledged_under_one_update_id():
    update = TimingOutUpdate(failures=2)
    ack = await _api()._update(None, update, _report("r-1"), journey=True, subject="applicant A")
    assert (ack.report_id, update.calls) == ("r-1", 3)
    # Each attempt is the same update to the server: a retry of one still in flight or taken
    # attaches to it instead of being taken a second time.
    key = _api().pseudonym_key
    assert update.ids == [update_id(_report("r-1"), key)] * 3
    same = _report("r-1").model_copy(update={"findings": []}, deep=True)
    assert update_id(same, key) == update.ids[0]  # the same content, the same id
    # Signed again, with a later validity: the same report, the same update.
    resigned = _report("r-1").model_copy(
        update={"signature": "x", "valid_until": datetime(2027, 1, 1, tzinfo=UTC)}
    )
    assert update_id(resigned, key) == update.ids[0]
    other = AdminReport(report_id="r-1", reported_by="bkpsdm-verifikator", findings=[FINDING])
    assert update_id(other, key) != update.ids[0]  # other content: another update (a conflict)
    # In clear on the server: nothing of the report_id, and unguessable without the key.
    nik_id = AdminReport(report_id="adm-3273011705980001", reported_by="bkpsdm-verifikator")
    assert "3273011705980001" not in update_id(nik_id, key)
    assert update_id(nik_id, key) != update_id(nik_id, b"another key" * 3)


async def test_the_timeout_reaches_the_caller_after_the_last_attempt():
    update = TimingOutUpdate(failures=api_module.UPDATE_ATTEMPTS)
    with pytest.raises(WorkflowUpdateRPCTimeoutOrCancelledError):
        await _api()._update(None, update, _report("r-2"), journey=True, subject="applicant A")
    assert update.calls == api_module.UPDATE_ATTEMPTS
