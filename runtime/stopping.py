"""A stopping worker's local activities end instead of retrying, so the worker can stop.

Every local activity runs through `workflows.calls.run_local_activity_until_done`: its retries are
bounded (a 60 s schedule-to-close and, since patch local-activity-attempts, 9 attempts), then the
workflow waits on a durable timer and asks again. With the read model down, a worker asked to stop
never stopped (measured with temporalio 1.35.0 before the attempts bound, tests/flows/
test_worker_stop.py): the SDK's core kept dispatching the failing attempt every 10 s, past the
60 s, so the workflow task it belonged to stayed open (heartbeating) and the shutdown waited for
it without end. The attempts bound alone should end that after about a minute (not measured); a
rolling restart should not wait a minute per worker either.
scripts/local_activity_shutdown.py shows the SDK's part alone (one workflow, one activity).
Since patch local-activity-backoff-timers a new workflow holds at most 7 s of attempts in its task
(the longer back-offs are timers), so the shutdown no longer hangs on it; this interceptor stays
for workflows started before that patch, and to end those 7 s at once.

So, for a local activity on a worker that is stopping:
- an attempt that fails ends the local activity, not retryable (the failure is the cause);
- a retry is refused before it runs (an attempt cancelled by the shutdown is retried at once by
  the core, sdk-rust issue 709).
The workflow takes the failure as an exhausted local activity (patch
local-activity-stopping-pause: its pause on a durable timer, which holds no worker) and the work
is done again on a worker that runs. A first attempt that starts during the shutdown still runs:
when it succeeds, nothing waits. Activities on the task queue are not touched: the server retries
them on another worker.
"""

from __future__ import annotations

from typing import Any, NoReturn

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from domain.protocol import WORKER_STOPPING


class LocalActivitiesEndWhenStopping(Interceptor):
    """The worker interceptor (apps/fleet.py: build_worker)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _EndWhenStopping(next)


class _EndWhenStopping(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if not info.is_local:
            return await self.next.execute_activity(input)
        if info.attempt > 1 and activity.is_worker_shutdown():
            _stop(info, "not retried")
        try:
            return await self.next.execute_activity(input)
        except ApplicationError as err:
            if err.non_retryable or not activity.is_worker_shutdown():
                raise
            _stop(info, f"failed ({err.type or 'ApplicationError'})", err)
        except Exception as err:
            if not activity.is_worker_shutdown():
                raise
            _stop(info, f"failed ({type(err).__name__})", err)


def _stop(info: activity.Info, what: str, cause: BaseException | None = None) -> NoReturn:
    raise ApplicationError(
        f"{info.activity_type} attempt {info.attempt} {what} while the worker stops; the workflow "
        "pauses and asks again on a worker that runs",
        type=WORKER_STOPPING,
        non_retryable=True,
    ) from cause
