"""runtime/stopping.py without a stack: what a local activity gives when its worker stops.

tests/flows/test_worker_stop.py plays the case that made it necessary on the real stack (a worker
stopped with the database down); these check each branch against the SDK's activity context."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from domain.protocol import WORKER_STOPPING
from runtime.stopping import LocalActivitiesEndWhenStopping

REFUSED = ConnectionRefusedError(111, "Connect call failed")


class _Body(ActivityInboundInterceptor):
    """The activity itself: returns what it is given, or raises it; counts its runs."""

    def __init__(self, outcome: object) -> None:
        self.outcome = outcome
        self.runs = 0

    async def execute_activity(self, input: ExecuteActivityInput) -> object:
        self.runs += 1
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


async def _attempt(outcome: object, *, local=True, attempt=1, stopping=False):
    """One attempt through the interceptor: (what it gave, the body's runs)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, activity_type="publish_round_board", is_local=local, attempt=attempt
    )
    if stopping:
        env.worker_shutdown()
    body = _Body(outcome)
    interceptor = LocalActivitiesEndWhenStopping().intercept_activity(body)
    given = ExecuteActivityInput(fn=lambda: None, args=[], executor=None, headers={})

    async def call() -> object:
        return await interceptor.execute_activity(given)

    try:
        return await env.run(call), body.runs
    except BaseException as exc:  # noqa: BLE001 - what the attempt raised is the result here
        return exc, body.runs


async def test_a_running_worker_is_not_touched():
    assert await _attempt("written") == ("written", 1)
    assert await _attempt(REFUSED, attempt=5) == (REFUSED, 1)  # the core retries it as before


async def test_a_failed_attempt_on_a_stopping_worker_ends_the_local_activity():
    error, runs = await _attempt(REFUSED, stopping=True)
    assert runs == 1 and isinstance(error, ApplicationError)
    assert error.type == WORKER_STOPPING and error.non_retryable
    assert error.__cause__ is REFUSED
    assert error.message == (
        "publish_round_board attempt 1 failed (ConnectionRefusedError) while the worker stops; "
        "the workflow pauses and asks again on a worker that runs"
    )
    retryable = ApplicationError("busy", type="Busy")
    error, _ = await _attempt(retryable, stopping=True)
    assert isinstance(error, ApplicationError) and error.type == WORKER_STOPPING
    assert "failed (Busy)" in error.message


async def test_a_retry_on_a_stopping_worker_is_refused_before_it_runs():
    error, runs = await _attempt("written", attempt=2, stopping=True)
    assert runs == 0
    assert isinstance(error, ApplicationError) and error.type == WORKER_STOPPING
    assert error.non_retryable and "attempt 2 not retried" in error.message


async def test_a_first_attempt_on_a_stopping_worker_still_runs():
    assert await _attempt("written", stopping=True) == ("written", 1)


@pytest.mark.parametrize(
    "outcome",
    [
        ApplicationError("refused by the activity", type="WorkerStopping", non_retryable=True),
        asyncio.CancelledError(),  # the shutdown's cancel: the core decides, the next attempt ends
    ],
    ids=["non-retryable", "cancelled"],
)
async def test_what_is_final_already_passes_unchanged(outcome):
    assert await _attempt(outcome, stopping=True) == (outcome, 1)


async def test_activities_on_the_task_queue_are_not_touched():
    """The server retries those, on a worker that runs."""
    assert await _attempt(REFUSED, local=False, attempt=3, stopping=True) == (REFUSED, 1)
