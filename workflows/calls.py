"""Typed calls from workflow code: activities, other workflows and incoming updates by their
protocol reference."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as RecordedTimeout

with workflow.unsafe.imports_passed_through():
    from domain.contracts import TAKEN, SignalByUpdate
    from domain.pages import PageFold, PageRef
    from domain.protocol import (
        FOLD_PAGES,
        SEND_BY_UPDATE,
        WORKER_STOPPING,
        Activity,
        Signal,
        Update,
    )
    from domain.seal import seal_problem
    from workflows.versions import (
        LOCAL_ACTIVITY_ATTEMPTS,
        LOCAL_ACTIVITY_GROWING_PAUSE,
        LOCAL_ACTIVITY_STOPPING_PAUSE,
        SIGNAL_BY_UPDATE_WHEN_SPENT,
    )

PAGE_TIMEOUT = timedelta(seconds=30)  # a local activity that reads or writes one page

In = TypeVar("In")
M = TypeVar("M", bound=BaseModel)
Out = TypeVar("Out")


def _result_type(ref: Activity[Any, Any]) -> dict[str, Any]:
    return {} if ref.output is type(None) else {"result_type": ref.output}


async def run_activity(ref: Activity[In, Out], arg: In, **options: Any) -> Out:
    """Run an activity (three history events and a task-queue round trip)."""
    return await workflow.execute_activity(ref.name, arg, **_result_type(ref), **options)


async def run_local_activity(ref: Activity[In, Out], arg: In, **options: Any) -> Out:
    """Run a local activity (one marker event, in the same workflow task)."""
    return await workflow.execute_local_activity(ref.name, arg, **_result_type(ref), **options)


LOCAL_ATTEMPTS_FOR = timedelta(seconds=60)  # one local activity's retries, in all
# ... and at most this many attempts (1 + 2 + 4 + 8 + 4 × 10 = 55 s of back-off between them):
# the SDK's core does not end a local activity whose attempts keep failing at its
# schedule-to-close (scripts/local_activity_shutdown.py --bound), only at its attempt count.
LOCAL_ATTEMPTS = 9
LOCAL_PAUSE = timedelta(minutes=1)  # then the workflow waits this long, on a timer, and asks again
# Patch local-activity-growing-pause: each further pause twice the one before, up to
# LOCAL_PAUSE_MOST, each shortened at random by up to PAUSE_JITTER of it; and after a pause, a
# series of LOCAL_ATTEMPTS_AFTER_PAUSE attempts (1 + 2 s of back-off: no heartbeat, so the task
# is not held open and a query is answered at once).
LOCAL_PAUSE_MOST = timedelta(minutes=10)
PAUSE_JITTER = 0.25
LOCAL_ATTEMPTS_AFTER_PAUSE = 3
# Patch local-activity-backoff-timers: in the first series, a back-off longer than this is a
# timer in the history (the SDK's local_retry_threshold), the workflow task closed meanwhile.
LOCAL_RETRY_THRESHOLD = timedelta(seconds=5)


def local_pause(paused: int, draw: float) -> timedelta:
    """The pause after `paused` earlier pauses, `draw` in [0, 1) from the workflow's random: 1, 2, 4,
    8, then 10 minutes, each between three quarters of that and all of it, in whole seconds."""
    whole = min(LOCAL_PAUSE * 2 ** min(paused, 8), LOCAL_PAUSE_MOST)
    return timedelta(seconds=round(whole.total_seconds() * (1 - PAUSE_JITTER * draw)))


def local_pause_bounds(paused: int) -> tuple[timedelta, timedelta]:
    """The shortest and longest pause `local_pause` gives after `paused` earlier pauses."""
    return local_pause(paused, 1.0), local_pause(paused, 0.0)


async def run_local_activity_until_done(
    ref: Activity[In, Out],
    arg: In,
    start_to_close_timeout: timedelta,
    woken_by: Callable[[], int] | None = None,
    backoff_timers: bool = False,
) -> Out:
    """A local activity that must succeed: its retries bounded (9 attempts, about a minute), then a
    durable timer, then again, for as long as it takes; the pause grows to 10 minutes while it
    keeps failing (patch local-activity-growing-pause).

    `woken_by`, a count that grows with what the workflow is sent (the round's commands), ends
    such a pause early: an operator who sends a command again once the database is back has it
    tried at once, not when the pause ends.

    `backoff_timers` (patch local-activity-backoff-timers, decided by the caller when its
    workflow starts): the first series' back-offs longer than LOCAL_RETRY_THRESHOLD are timers,
    so the workflow answers queries and updates between its attempts.

    Never an endless retry inside one workflow task: a worker that is asked to stop cancels its
    local activities and the SDK's core retries them at once, so unbounded retries would keep the
    worker from ever stopping (sdk-rust issue 709). A timer holds no worker.
    """
    paused = 0
    growing = False
    while True:
        attempts = LOCAL_ATTEMPTS_AFTER_PAUSE if growing else LOCAL_ATTEMPTS
        try:
            return await run_local_activity(
                ref,
                arg,
                start_to_close_timeout=start_to_close_timeout,
                schedule_to_close_timeout=LOCAL_ATTEMPTS_FOR,
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(seconds=10), maximum_attempts=attempts
                ),
                # Only the first series has back-offs above it: after a pause, 1 and 2 s.
                local_retry_threshold=LOCAL_RETRY_THRESHOLD if backoff_timers else None,
            )
        except (ActivityError, RecordedTimeout) as exc:
            # Live, the exhausted budget arrives as ActivityError; replayed from history, as the
            # recorded timeout itself (temporalio.exceptions.TimeoutError): both pause alike, or a
            # journey replayed during its pause fails every task as non-deterministic.
            why = f"did not succeed ({exc})"
        except ApplicationError as exc:
            # A local activity's own failure arrives as itself, live and replayed, not wrapped in
            # an ActivityError: its worker stopped (runtime/stopping.py, patch
            # local-activity-stopping-pause), or its attempts ran out (patch
            # local-activity-attempts). Before those patches it escaped.
            if exc.type == WORKER_STOPPING:
                if not workflow.patched(LOCAL_ACTIVITY_STOPPING_PAUSE):
                    raise
                why = "ended as its worker stopped"
            elif workflow.patched(LOCAL_ACTIVITY_ATTEMPTS):
                why = f"failed {attempts} times ({exc})"
            else:
                raise
        if paused == 0:
            growing = workflow.patched(LOCAL_ACTIVITY_GROWING_PAUSE)
        pause = local_pause(paused, workflow.random().random()) if growing else LOCAL_PAUSE
        paused += 1
        workflow.logger.warning(
            "%s %s; again in %d s (pause %d)", ref.name, why, pause.total_seconds(), paused
        )
        if growing and woken_by is not None:
            count, seen = woken_by, woken_by()
            try:
                await workflow.wait_condition(
                    lambda count=count, seen=seen: count() != seen, timeout=pause
                )
            except TimeoutError:
                continue
            workflow.logger.warning("%s tried again before its pause ended: woken", ref.name)
        else:
            await workflow.sleep(pause)


async def fold_pages(pages: list[PageRef], *, backoff_timers: bool) -> None:
    """Replace a carried list of page references by the one reference of an index page of them
    (FOLD_PAGES, retried until done): the formasi's rankings (patch folded-page-references) and
    the round's offered applicants (patch offered-pages-folded) stay bounded however many."""
    index = await run_local_activity_until_done(
        FOLD_PAGES,
        PageFold(owner=workflow.info().workflow_id, pages=list(pages)),
        PAGE_TIMEOUT,
        backoff_timers=backoff_timers,
    )
    pages[:] = [index]


def signal_message(model: type[M], args: tuple[object, ...], secret: str = "") -> M | str:
    """The one `model` a signal carries, or what is wrong with it (field names and error kinds
    only: the values may be personal data); with the round's `secret`, also its seal."""
    if len(args) != 1:
        return f"takes one {model.__name__}, got {len(args)} arguments"
    try:
        message = model.model_validate(args[0])
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'value'}: {e['type']}"
            for e in exc.errors()[:3]
        )
        return f"not a valid {model.__name__} ({where})"
    except Exception as exc:  # noqa: BLE001 - any other failure to read it is the sender's
        return f"not a valid {model.__name__} ({type(exc).__name__})"
    return seal_problem(message, secret) or message


def sealed_or_refused(
    model: type[M],
    args: tuple[object, ...],
    secret: str,
    subject: str,
    error_type: str = "ReportRefused",
    extra: Callable[[M], str | None] = lambda _: None,
) -> M:
    """The `model` an update that stands for a signal carries (domain.protocol.BY_UPDATE), sealed
    by the round's workflows; else the validator's refusal, naming `subject`, which leaves nothing
    in the history. `extra`: a further check of the message (None when it holds)."""
    message = signal_message(model, args, secret)
    problem = message if isinstance(message, str) else extra(message)
    if problem:
        raise ApplicationError(f"{subject}: {problem}", type=error_type, non_retryable=True)
    assert not isinstance(message, str)
    return message


def changed_keys(note: str) -> dict[str, str] | None:
    """The identities' new keys a `keys_changed` announcement carries, or None when its note is
    not a JSON object of names to keys."""
    try:
        keys = json.loads(note)
    except ValueError:
        return None
    if not isinstance(keys, dict) or not keys:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
        return None
    return keys


def workflow_handle(workflow_id: str) -> workflow.ExternalWorkflowHandle[Any]:
    """Another workflow of the round, to signal with a protocol `Signal`."""
    return workflow.get_external_workflow_handle(workflow_id)


# The failure the server gives a workflow's signal to a run that takes no more signals (its
# 10,000 spent: anyone who reaches Temporal can send them, refused payloads included).
SIGNALS_SPENT = "SignalCountLimitExceeded"
SEND_BY_UPDATE_TIMEOUT = timedelta(minutes=1)


async def tell(signal: Signal[M], workflow_id: str, message: M) -> None:
    """Signal `message` to another workflow of the round. When its run takes no more signals, the
    same message goes as its update (domain.protocol.BY_UPDATE), sent by the activity
    SEND_BY_UPDATE (a workflow cannot send an update), which nobody else can use up: patch
    signal-by-update-when-spent, asked only then. Before it, the failure failed the sending
    workflow: a formasi whose round's signals another sender spent ended failed, its result lost."""
    try:
        await signal.send(workflow_handle(workflow_id), message)
    except ApplicationError as exc:
        if exc.type != SIGNALS_SPENT or not workflow.patched(SIGNAL_BY_UPDATE_WHEN_SPENT):
            raise
        workflow.logger.warning(
            "%s takes no more signals: %s sent as an update", workflow_id, signal.name
        )
        outcome = await run_activity(
            SEND_BY_UPDATE,
            SignalByUpdate(
                workflow_id=workflow_id,
                signal=signal.name,
                message=message.model_dump(mode="json"),  # type: ignore[attr-defined]
            ),
            start_to_close_timeout=SEND_BY_UPDATE_TIMEOUT,
        )
        if outcome != TAKEN:
            workflow.logger.warning("%s by update to %s: %s", signal.name, workflow_id, outcome)


def decode(
    table: dict[str, Update[Any, Any]], name: str, args: Sequence[RawValue], subject: str
) -> Any:
    """The message a dynamic update carries, typed by the protocol table; a clear refusal otherwise.

    Raised in a validator, the refusal rejects the update before anything is recorded: a
    malformed payload is the sender's error, never a failed workflow task.
    """
    update = table.get(name)
    where = f"update {name} {subject}"
    if update is None:
        raise ApplicationError(f"{where}: no such update", type="ReportRefused", non_retryable=True)
    if len(args) != 1:
        raise ApplicationError(
            f"{where}: takes one {update.input.__name__}, got {len(args)} arguments",
            type="ReportRefused",
            non_retryable=True,
        )
    payload = args[0].payload
    try:
        if payload.metadata.get("encoding") == b"json/plain" and issubclass(
            update.input, BaseModel
        ):
            # Strict: JSON true is not a score of 1, "120 " is not 120, a date is a date.
            return update.input.model_validate_json(payload.data, strict=True)
        return workflow.payload_converter().from_payload(payload, update.input)
    except ValidationError as exc:
        problem = _fields(exc)
    except Exception as exc:
        problem = str(exc)
    raise ApplicationError(
        f"{where}: not a valid {update.input.__name__}: {problem}",
        type="ReportRefused",
        non_retryable=True,
    )


def _fields(exc: ValidationError) -> str:
    """Each failing field with what is wrong and the value given (shortened)."""
    parts = []
    for err in exc.errors()[:10]:
        field = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{field}: {err['msg']} (got {repr(err.get('input'))[:40]})")
    more = len(exc.errors()) - 10
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
