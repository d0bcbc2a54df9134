"""A registration is answered by its journey (update-with-start), on the real dev server and
PostgreSQL (issue 17 item 3).

RecruitmentApi.register starts the journey together with its confirm_registration update and
answers only when the journey has judged its admission and written its first read-model row:
the row is there when the answer arrives, a burst cannot run ahead of the journeys' first tasks,
and what the journey refuses is refused to the applicant. The update is taken once per journey;
any later one, from anyone who reaches Temporal, is refused and leaves no trace in the history.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

import client.api as client_api
from apps.fleet import fleet_activities
from client.api import RecruitmentApi, RefusedError, registration_digest
from domain.messages import AdminReport, CloseWindow, RegistrationConfirm
from domain.protocol import CONFIRM_REGISTRATION, REPORT_ADMIN
from runtime.sandbox import worker_runner
from runtime.stopping import LocalActivitiesEndWhenStopping
from tests.flows.test_operator_commands import _terminate_round
from tests.roundkit import (
    OPERATOR,
    TEST_KEYRING,
    UnreadableQuery,
    accepted_updates,
    open_registration_round,
    plain_start_api,
    registration,
)
from workflows.ids import journey_workflow_id
from workflows.registry import WORKFLOWS

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _round(api: RecruitmentApi, tmp_path, prefix: str):
    return await open_registration_round(api, tmp_path, prefix)


def _idle(client, settings, keys, confirm_within: float) -> RecruitmentApi:
    """A client whose journeys start on a task queue that no worker polls."""
    return RecruitmentApi(
        client,
        f"{settings.task_queue}-nobody",
        keys.pseudonym_key,
        keyring=TEST_KEYRING,
        confirm_within=confirm_within,
    )


async def test_the_answer_waits_for_the_first_row_and_is_taken_once(
    client, keys, running_worker, tmp_path
):
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = await _round(api, tmp_path, "confirm")
    try:
        reg = registration(1, "F1")
        first = await api.register(config, reg, "sscasn")
        assert (first.status, first.pending) == ("registered", False), first
        # No wait: the answer came after the journey wrote its row.
        row = await pool.fetchrow(
            "SELECT stage FROM applicants WHERE round_id = $1 AND applicant_id = $2",
            config.round_id,
            first.applicant_id,
        )
        assert row is not None and row["stage"] == "admin_check", row
        handle = client.get_workflow_handle(
            journey_workflow_id(config.round_id, first.applicant_id)
        )
        assert await accepted_updates(handle) == [CONFIRM_REGISTRATION.name]

        # The same registration again is a repeat; the same NIK with other data is refused.
        assert (await api.register(config, reg, "sscasn")).status == "repeat"
        other = reg.model_copy(update={"name": "Nama Lain"})
        changed = await api.register(config, other, "sscasn")
        assert changed.status == "refused" and "once per round" in changed.refusals[0].reason

        # A second confirmation sent straight to Temporal is refused and not recorded.
        length = (await handle.describe()).raw_description.workflow_execution_info.history_length
        confirm = RegistrationConfirm(registration_digest=registration_digest(reg))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await CONFIRM_REGISTRATION.execute(handle, confirm)
        assert "confirmed already" in refused.value.cause.message
        after = (await handle.describe()).raw_description.workflow_execution_info.history_length
        assert after == length
        assert await accepted_updates(handle) == [CONFIRM_REGISTRATION.name]
    finally:
        await _terminate_round(client, config.round_id)


async def test_a_second_registration_whose_journey_cannot_be_read_is_told_so_and_records_nothing(
    client, keys, running_worker, tmp_path, monkeypatch
):
    """The same NIK again, while the worker cannot answer for its journey: whether it is a repeat
    cannot be told, and the sender hears that instead of the query's failure (the gateway answered
    it with a bare 500). Nothing is recorded, and once the journey can be read the same
    registration is a repeat again."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = await _round(api, tmp_path, "unread")
    try:
        reg = registration(6, "F1")
        first = await api.register(config, reg, "sscasn")
        assert first.status == "registered", first
        handle = client.get_workflow_handle(
            journey_workflow_id(config.round_id, first.applicant_id)
        )
        length = (await handle.describe()).raw_description.workflow_execution_info.history_length
        with monkeypatch.context() as patched:
            patched.setattr(client_api, "REGISTRATION_DIGEST", UnreadableQuery())
            with pytest.raises(RefusedError, match="cannot be read now") as digest:
                await api.register(config, reg, "sscasn")
        with monkeypatch.context() as patched:
            patched.setattr(client_api, "JOURNEY_STATE", UnreadableQuery())
            with pytest.raises(RefusedError, match="cannot be read now") as state:
                await api.register(config, reg, "sscasn")
            # Another person's data under the same NIK needs only the digest: refused as before.
            other = reg.model_copy(update={"name": "Nama Lain"})
            changed = await api.register(config, other, "sscasn")
            assert changed.status == "refused" and "once per round" in changed.refusals[0].reason
        for told in (digest, state):
            assert first.applicant_id in str(told.value) and reg.nik not in str(told.value)
        after = (await handle.describe()).raw_description.workflow_execution_info.history_length
        assert after == length
        assert (await api.register(config, reg, "sscasn")).status == "repeat"
    finally:
        await _terminate_round(client, config.round_id)


async def test_a_plain_start_takes_one_confirmation_of_its_own_registration_only(
    client, keys, running_worker, tmp_path
):
    settings, pool = running_worker
    api = plain_start_api(client, settings.task_queue, keys)
    config = await _round(api, tmp_path, "plain")
    try:
        reg = registration(2, "F1")
        result = await api.register(config, reg, "sscasn")
        assert result.status == "registered"
        handle = client.get_workflow_handle(
            journey_workflow_id(config.round_id, result.applicant_id)
        )
        other = registration(3, "F1")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await CONFIRM_REGISTRATION.execute(
                handle, RegistrationConfirm(registration_digest=registration_digest(other))
            )
        assert "not that of the registration" in refused.value.cause.message
        outcome = await CONFIRM_REGISTRATION.execute(
            handle, RegistrationConfirm(registration_digest=registration_digest(reg))
        )
        assert (outcome.applicant_id, outcome.refused) == (result.applicant_id, "")
        assert await accepted_updates(handle) == [CONFIRM_REGISTRATION.name]
    finally:
        await _terminate_round(client, config.round_id)


async def test_an_unanswered_registration_is_pending_not_lost(
    client, keys, running_worker, tmp_path
):
    """No worker polls the journey's task queue: the confirmation cannot come, the registration is
    answered `pending` after confirm_within, and the journey it started exists."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = await _round(api, tmp_path, "pending")
    idle = _idle(client, settings, keys, confirm_within=2.0)
    try:
        result = await idle.register(config, registration(4, "F1"), "sscasn")
        assert (result.status, result.pending) == ("registered", True), result
        handle = client.get_workflow_handle(
            journey_workflow_id(config.round_id, result.applicant_id)
        )
        assert (await handle.describe()).status is not None
        await handle.terminate("test over")
    finally:
        await _terminate_round(client, config.round_id)


async def test_a_cancelled_registration_is_cancelled_not_answered(
    client, keys, running_worker, tmp_path
):
    """The caller goes away (a gateway request dropped, a bench stopped with Ctrl-C) while the
    confirmation waits: the call ends with its cancellation at once. The SDK reports a cancelled
    update call as WorkflowUpdateRPCTimeoutOrCancelledError, which the client took for a timeout:
    it described the journey and answered `pending` to nobody, or, with the servers stopped, kept
    asking them."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = await _round(api, tmp_path, "cancel")
    idle = _idle(client, settings, keys, confirm_within=30.0)
    try:
        call = asyncio.ensure_future(idle.register(config, registration(5, "F1"), "sscasn"))
        await asyncio.sleep(1.5)  # the update-with-start is waiting for a worker
        call.cancel()
        done, _ = await asyncio.wait([call], timeout=5)
        assert done, "the cancelled registration was still running 5 s later"
        assert call.cancelled(), call.result()
    finally:
        await _terminate_round(client, config.round_id)


async def test_a_cancelled_report_is_not_sent_again(client, keys, running_worker, tmp_path):
    """Same for a report: a cancelled update call is not taken for a timeout and sent again."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = await _round(api, tmp_path, "cancel-report")
    idle = _idle(client, settings, keys, confirm_within=1.0)
    sent = []

    class Counted:
        async def execute(self, handle, message, **options):
            sent.append(message.report_id)
            return await REPORT_ADMIN.execute(handle, message, **options)

    try:
        result = await idle.register(config, registration(6, "F1"), "sscasn")
        assert result.pending, result  # the journey exists; nobody runs it
        handle = client.get_workflow_handle(
            journey_workflow_id(config.round_id, result.applicant_id)
        )
        report = AdminReport(report_id="admin-6", reported_by="instansi")
        call = asyncio.ensure_future(
            idle._update(handle, Counted(), report, journey=True, subject="applicant")
        )
        await asyncio.sleep(1.5)
        call.cancel()
        done, _ = await asyncio.wait([call], timeout=5)
        assert done, "the cancelled report was still running 5 s later"
        assert call.cancelled(), call.result()
        assert sent == ["admin-6"]
        await handle.terminate("test over")
    finally:
        await _terminate_round(client, config.round_id)


class _SignalDuringAdmission(Interceptor):
    """Sends each journey a message while its first workflow task runs (from its admission's
    read of the round): a journey that ends in that task then has its completion refused by the
    server (UnhandledCommand) and the task runs again."""

    def __init__(self, client) -> None:
        self.client = client
        self.signalled: list[str] = []

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                info = activity.info()
                if info.activity_type == "read_round" and info.workflow_id not in outer.signalled:
                    outer.signalled.append(info.workflow_id)
                    handle = outer.client.get_workflow_handle(info.workflow_id)
                    await handle.signal("announce", "not an announcement")
                return await super().execute_activity(input)

        return Inbound(next)


async def test_a_refusal_whose_first_task_ran_again_is_answered_not_lost(
    client, keys, running_worker, tmp_path, monkeypatch
):
    """The server drops a registration's confirmation when the journey's first workflow task
    fails, as it does when a message (here a stray signal; in a round, a TMT move's broadcast)
    arrives while a refused journey ends in that task. The registration is asked again and
    answered with the refusal, not failed with the server's error."""
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config = await _round(api, tmp_path, "again")
    queue = f"{settings.task_queue}-again"
    journeys = RecruitmentApi(client, queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    spy = _SignalDuringAdmission(client)
    reg = registration(1, "F1")
    worker = Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=fleet_activities(client, settings, pool),
        workflow_runner=worker_runner(),
        interceptors=[LocalActivitiesEndWhenStopping(), spy],
    )
    try:
        await api.command(
            config.round_id,
            CloseWindow(report_id="close", reported_by=OPERATOR, window="registration", reason="x"),
        )
        async with worker:
            result = await journeys.register(config, reg, "sscasn")
            assert result.status == "refused", result
            assert "after registration closed" in result.refusals[0].reason
            handle = client.get_workflow_handle(
                journey_workflow_id(config.round_id, result.applicant_id)
            )
            assert spy.signalled == [handle.id]
            # The premise: the journey's first task failed as UnhandledCommand, and was run again.
            failed = [
                e.workflow_task_failed_event_attributes.failure.message
                async for e in handle.fetch_history_events()
                if e.HasField("workflow_task_failed_event_attributes")
            ]
            assert "UnhandledCommand" in failed, failed
            assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

            # Asked again once the journey has ended, the answer is read from its state (replayed
            # on the worker); a state that cannot be read now is said so, not raised as the
            # query's failure.
            confirm = RegistrationConfirm(registration_digest=registration_digest(reg))
            again = await journeys._confirm_again(handle.id, result.applicant_id, confirm)
            assert "after registration closed" in again.refused
            monkeypatch.setattr(client_api, "JOURNEY_STATE", UnreadableQuery())
            with pytest.raises(RefusedError, match="its outcome cannot be read now"):
                await journeys._confirm_again(handle.id, result.applicant_id, confirm)
    finally:
        await _terminate_round(client, config.round_id)
