"""Histories for the auditor: fetch them, decode what arrived, replay them against the code.

Nothing here reads the read model: every answer comes from Temporal event histories, which a
bundle can also carry offline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from domain import protocol
from domain.config import CODE, CODE_RULE
from domain.messages import (
    Decision,
    JourneyStart,
)
from runtime.sandbox import worker_runner
from workflows.registry import WORKFLOWS

# The CasnKind of every workflow the engine starts (runtime/attributes.py): an instansi round's own,
# then the national round's (its RoundId is the national id).
KINDS = ("journey", "formasi", "round", "aftermath", "national", "national-claim")
# What a round id or a national id can be (domain.config.Code): the query quotes nothing else.
ROUND_ID = CODE

# A decision's time is workflow.now(): replay takes it from the WorkflowTaskStarted event, and a
# live run was seen to read a clock some milliseconds earlier for the same task. Within this
# tolerance the times are the same decision time; beyond it they are drift.
AT_TOLERANCE = timedelta(seconds=1)

START_TYPES: dict[str, type] = {w.name: w.input for w in protocol.WORKFLOWS}
KIND_OF_TYPE = {
    protocol.APPLICANT_JOURNEY.name: "journey",
    protocol.FORMASI_SELECTION.name: "formasi",
    protocol.RECRUITMENT_ROUND.name: "round",
    protocol.APPLICANT_AFTERMATH.name: "aftermath",
}

UPDATE_TYPES: dict[str, type] = {u.name: u.input for u in protocol.UPDATES}
SIGNAL_TYPES: dict[str, type] = {s.name: s.input for s in protocol.SIGNALS}


class AuditError(Exception):
    """Something an auditor must see: a missing history, an undecodable payload, a mismatch."""


@dataclass
class Message:
    """One input a history recorded: the start input, an accepted update or a signal."""

    at: datetime
    kind: str  # start | update | signal
    name: str
    content: Any  # the decoded pydantic model (or plain data when the name is unknown)
    update_id: str = ""
    identity: str = ""
    # For an update: when the workflow task that took it started, the workflow's `now` when its
    # validator judged it (the accepted event is written when that task completes, later).
    judged_at: datetime | None = None

    @property
    def reporter(self) -> str:
        """Who reported it, as the message itself says (falls back to the client identity)."""
        return (
            getattr(self.content, "reported_by", None)
            or getattr(self.content, "registered_by", None)
            or self.identity
        )

    @property
    def report_id(self) -> str:
        """The idempotency key the reporter gave, if the message has one."""
        return getattr(self.content, "report_id", "") or ""

    def content_json(self) -> Any:
        """The content as JSON-ready data."""
        dump = getattr(self.content, "model_dump", None)
        return dump(mode="json") if dump else self.content


@dataclass(frozen=True)
class RefusedSignal:
    """A recorded signal the auditor cannot read (not encrypted with the round's key, or not the
    message its name promises): the workflow dropped or ignored it, so it decided nothing."""

    reason: str

    def model_dump(self, mode: str = "json") -> dict[str, str]:
        return {"refused": self.reason}


@dataclass
class RecordedHistory:
    """One run's history and what kind of workflow it belongs to."""

    history: WorkflowHistory
    workflow_type: str = ""
    start_time: datetime | None = None

    @property
    def workflow_id(self) -> str:
        return self.history.workflow_id

    @property
    def run_id(self) -> str:
        return self.history.run_id

    @property
    def kind(self) -> str:
        return KIND_OF_TYPE.get(self.workflow_type, self.workflow_type)


def workflow_type_of(history: WorkflowHistory) -> str:
    """The workflow type name from the history's first event."""
    first = history.events[0]
    return first.workflow_execution_started_event_attributes.workflow_type.name


def recorded(history: WorkflowHistory) -> RecordedHistory:
    """Wrap a history with its type and start time."""
    first = history.events[0]
    return RecordedHistory(
        history, workflow_type_of(history), first.event_time.ToDatetime(tzinfo=UTC)
    )


async def fetched(client: Client, workflow_id: str, run_id: str) -> RecordedHistory:
    """One run's whole history, from the server."""
    return recorded(await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history())


async def run_histories(client: Client, workflow_id: str) -> list[RecordedHistory]:
    """Every run of one workflow id, oldest first (continue-as-new makes a chain of runs)."""
    runs = [e async for e in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    if not runs:
        raise AuditError(
            f"no workflow with id {workflow_id!r} on this server (check the round and applicant ids)"
        )
    runs.sort(key=lambda e: e.start_time)
    return [await fetched(client, e.id, e.run_id) for e in runs]


async def aftermath_histories(client: Client, workflow_id: str) -> list[RecordedHistory]:
    """Every run of an applicant's aftermath (`<journey id>/after`), oldest first; none when
    nothing was reported after the journey ended."""
    try:
        return await run_histories(client, workflow_id)
    except AuditError:
        return []


def round_query(round_id: str, kind: str | None = None) -> str:
    """The visibility query for a round's workflows, optionally of one kind."""
    if not ROUND_ID.fullmatch(round_id):
        raise AuditError(f"round id {round_id!r} is not a round or national id ({CODE_RULE})")
    query = f"RoundId = '{round_id}'"
    if kind:
        if kind not in KINDS:
            raise AuditError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        query += f" AND CasnKind = '{kind}'"
    return query


async def round_histories(
    client: Client, round_id: str, kind: str | None = None
) -> list[RecordedHistory]:
    """Every run of every workflow of the round, ordered by workflow id then start."""
    runs = [e async for e in client.list_workflows(round_query(round_id, kind))]
    if not runs:
        raise AuditError(
            f"no workflows found for round {round_id!r} (query {round_query(round_id, kind)!r})"
        )
    runs.sort(key=lambda e: (e.id, e.start_time))
    return [await fetched(client, e.id, e.run_id) for e in runs]


async def _decode(
    converter: DataConverter, payloads: Payloads, hint: type | None, where: str
) -> Any:
    if not payloads.payloads:
        return None
    try:
        values = await converter.decode(list(payloads.payloads), [hint] if hint else None)
    except Exception as exc:  # noqa: BLE001 - name the event that cannot be decoded
        raise AuditError(
            f"cannot decode {where}: {exc} (is this the round's payload key?)"
        ) from exc
    return values[0]


class DecodedMessages:
    """Each history's messages decoded once, for the checks that read the same histories in turn
    (`audit.py recompute`: the provenance check, then the recompute). Kept by the history object
    itself, so a history fetched again is decoded again."""

    def __init__(self, converter: DataConverter) -> None:
        self.converter = converter
        self._kept: dict[int, tuple[WorkflowHistory, list[Message]]] = {}

    async def of(self, history: WorkflowHistory) -> list[Message]:
        kept = self._kept.get(id(history))
        if kept is not None and kept[0] is history:
            return kept[1]
        decoded = await messages(history, self.converter)
        self._kept[id(history)] = (history, decoded)
        return decoded


async def messages(history: WorkflowHistory, converter: DataConverter) -> list[Message]:
    """The start input, every accepted update and every signal of a history, decoded, in order.

    Refused updates never reach a history (validators reject them first), so every update listed
    here was accepted by the workflow.
    """
    out: list[Message] = []
    wtype = workflow_type_of(history)
    task_started: datetime | None = None
    for event in history.events:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        where = f"event {event.event_id} of {history.workflow_id} (run {history.run_id})"
        if event.HasField("workflow_task_started_event_attributes"):
            task_started = at
        elif event.HasField("workflow_execution_started_event_attributes"):
            attrs = event.workflow_execution_started_event_attributes
            content = await _decode(converter, attrs.input, START_TYPES.get(wtype), where)
            out.append(Message(at, "start", wtype, content, identity=attrs.identity))
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            name = request.input.name
            content = await _decode(converter, request.input.args, UPDATE_TYPES.get(name), where)
            out.append(
                Message(
                    at,
                    "update",
                    name,
                    content,
                    update_id=request.meta.update_id,
                    identity=request.meta.identity,
                    judged_at=task_started,
                )
            )
        elif event.HasField("workflow_execution_signaled_event_attributes"):
            attrs = event.workflow_execution_signaled_event_attributes
            try:
                content = await _decode(
                    converter, attrs.input, SIGNAL_TYPES.get(attrs.signal_name), where
                )
            except AuditError as exc:
                # Anyone who reaches Temporal can signal, and every signal is recorded; the
                # workflow dropped or ignored one it could not read. The audit lists it, refused.
                content = RefusedSignal(str(exc))
            out.append(Message(at, "signal", attrs.signal_name, content, identity=attrs.identity))
    return out


# --- replay --------------------------------------------------------------------------------------


@dataclass
class ReplayOutcome:
    """What replaying one history showed: a failure (divergence) or the re-derived state."""

    workflow_id: str
    run_id: str
    failure: Exception | None = None
    state: Any = None  # the workflow's `state()` after replay, re-derived by the current code
    drift: str = ""  # re-derived decisions that differ from those the history recorded
    unstarted: bool = False  # no workflow task has run yet (a delayed start): nothing to replay

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.drift


def unstarted(history: WorkflowHistory) -> bool:
    """A run none of whose workflow tasks has started: a start delayed (a national claim holds
    its id until the national SKD closes) has only its started event. Its code has decided nothing,
    and the SDK's replayer would wait for ever for the task that is not in the history."""
    return not any(e.HasField("workflow_task_started_event_attributes") for e in history.events)


@dataclass
class _Capture:
    instances: dict[str, Any] = field(default_factory=dict)


def when_done(handle: Any, action: Callable[[], None]) -> None:
    """Run `action` once an activity or local activity started in a replay has completed as its
    history records. One whose completion is not (yet) recorded, at the end of an open run's
    history, never resolves in replay; one that failed is not counted."""

    def done(task) -> None:
        if not task.cancelled() and task.exception() is None:
            action()

    handle.add_done_callback(done)


def _capturing_interceptor(capture: _Capture) -> Interceptor:
    """An interceptor that keeps each replayed workflow object, so its state can be read after replay."""

    class Inbound(WorkflowInboundInterceptor):
        async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
            capture.instances[workflow.info().run_id] = workflow.instance()
            return await super().execute_workflow(input)

    class Capturing(Interceptor):
        def workflow_interceptor_class(
            self, input: WorkflowInterceptorClassInput
        ) -> type[WorkflowInboundInterceptor]:
            return Inbound

    return Capturing()


def default_workflows() -> list[type]:
    """The workflows the current code registers."""
    return list(WORKFLOWS)


async def replay(
    histories: Iterable[WorkflowHistory],
    converter: DataConverter,
    workflows: list[type] | None = None,
    on_result: Callable[[ReplayOutcome], None] | None = None,
    interceptors: Sequence[Interceptor] = (),
    **replayer_options: Any,
) -> list[ReplayOutcome]:
    """Replay every history against `workflows` (default: the current code); never raises on
    divergence. `interceptors` see the replayed code's calls too (auditing/readmodel.py).

    The histories replay in the sandbox the worker runs them in (runtime/sandbox.py), unless a
    `workflow_runner` is given: the same restrictions on workflow code, without re-importing every
    module for each history."""
    replayer_options.setdefault("workflow_runner", worker_runner())
    capture = _Capture()
    replayer = Replayer(
        workflows=workflows or default_workflows(),
        data_converter=converter,
        interceptors=[_capturing_interceptor(capture), *interceptors],
        **replayer_options,
    )
    items = list(histories)
    results: list[ReplayOutcome] = []
    for h in items:
        if unstarted(h):
            results.append(ReplayOutcome(h.workflow_id, h.run_id, unstarted=True))
            if on_result:
                on_result(results[-1])

    async def iterate():
        for h in items:
            if not unstarted(h):
                yield h

    async with replayer.workflow_replay_iterator(iterate()) as replay_iterator:
        async for result in replay_iterator:
            h = result.history
            outcome = ReplayOutcome(h.workflow_id, h.run_id, result.replay_failure)
            instance = capture.instances.pop(h.run_id, None)
            if (
                result.replay_failure is None
                and instance is not None
                and hasattr(instance, "state")
            ):
                outcome.state = instance.state()
                recorded_decisions = await decisions_recorded(h, converter)
                derived = getattr(outcome.state, "decisions", None)
                if _continued(h) and hasattr(instance, "decisions_handed_on"):
                    # A round hands on only some of its decisions (domain.optimalisasi.handed_on):
                    # the rest stay in this run, derived by this replay and recorded nowhere else.
                    derived = instance.decisions_handed_on()
                outcome.drift = decision_drift(recorded_decisions, derived)
            results.append(outcome)
            if on_result:
                on_result(outcome)
    return results


def _continued(history: WorkflowHistory) -> bool:
    return history.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")


async def decisions_recorded(
    history: WorkflowHistory, converter: DataConverter
) -> list[dict] | None:
    """The decisions a run wrote into its history on the way out, if it closed.

    A completed run's result is its state (with `decisions`); a continued-as-new run hands its
    decisions to the next run in the carry. A run still open recorded none yet (None).
    """
    last = history.events[-1]
    where = f"the last event of {history.workflow_id} (run {history.run_id})"
    if last.HasField("workflow_execution_completed_event_attributes"):
        value = await _decode(
            converter, last.workflow_execution_completed_event_attributes.result, None, where
        )
    elif last.HasField("workflow_execution_continued_as_new_event_attributes"):
        value = await _decode(
            converter, last.workflow_execution_continued_as_new_event_attributes.input, None, where
        )
        value = (value or {}).get("carry") or {}
    else:
        return None
    if not isinstance(value, dict) or "decisions" not in value:
        return None
    return [Decision.model_validate(d).model_dump(mode="json") for d in value["decisions"]]


def decision_drift(recorded: list[dict] | None, derived: list[Decision] | None) -> str:
    """Where the re-derived decisions first differ from the recorded ones ('' when they agree)."""
    if recorded is None or derived is None:
        return ""
    mine = [d.model_dump(mode="json") for d in derived]
    for i, (a, b) in enumerate(zip(recorded, mine, strict=False)):
        same_time = (
            abs(datetime.fromisoformat(a["at"]) - datetime.fromisoformat(b["at"])) <= AT_TOLERANCE
        )
        if not same_time or {**a, "at": ""} != {**b, "at": ""}:
            return (
                f"decision {i + 1} recorded {_brief(a)} at {a['at']}, the current code derives {_brief(b)} "
                f"at {b['at']}"
            )
    if len(recorded) != len(mine):
        return f"{len(recorded)} decisions recorded, the current code derives {len(mine)}"
    return ""


def _brief(d: dict) -> str:
    return f"{d['stage']}/{d['outcome']} by {d['actor']} (rules {d['rule_version']})"


def offers_of(outcomes: Iterable[ReplayOutcome]) -> dict[str, str]:
    """A round's optimalisasi offers over its runs, in order, each with its last status. A run that
    continued-as-new in optimalisasi (patch optimalisasi-continues) lists its own offers and those
    pending when it began; the runs before it list the rest."""
    offers: dict[str, str] = {}
    for o in outcomes:
        offers.update(getattr(o.state, "offers", None) or {})
    return offers


def decisions_of(outcomes: Iterable[ReplayOutcome]) -> list[Decision]:
    """The decisions re-derived by replay, across runs, without repeats (a carry repeats them)."""
    seen: set[str] = set()
    out: list[Decision] = []
    for o in outcomes:
        for d in getattr(o.state, "decisions", []) or []:
            key = d.model_dump_json()
            if key not in seen:
                seen.add(key)
                out.append(d)
    out.sort(key=lambda d: d.at)
    return out


# --- who registered each applicant ---------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    """Who registered one applicant, and on whose request: from the journey's signed start."""

    applicant_id: str
    at: datetime
    registered_by: str
    submitted_by: str  # the gateway caller who asked the portal to register it; "" for none

    @classmethod
    def of(cls, start: JourneyStart, at: datetime) -> Registered:
        return cls(start.applicant_id, at, start.registered_by, start.submitted_by)


async def registrations(
    client: Client,
    converter: DataConverter,
    round_id: str,
    concurrency: int = 16,
    on_read: Callable[[int], None] | None = None,
) -> list[Registered]:
    """Every applicant of the round with who registered them, by registration number: the first
    event of each journey's first run (one small read each, `concurrency` at a time), decoded with
    the round's payload key. Nothing else of the registration (no NIK, no name) is kept."""
    first: dict[str, Any] = {}
    async for execution in client.list_workflows(round_query(round_id, "journey")):
        known = first.get(execution.id)
        if known is None or execution.start_time < known.start_time:
            first[execution.id] = execution
    if not first:
        raise AuditError(f"no journeys found for round {round_id!r}")
    gate = asyncio.Semaphore(concurrency)

    async def one(execution: Any) -> Registered:
        async with gate:
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            events = handle.fetch_history_events(page_size=1)
            event = await anext(aiter(events))
        where = f"the start of {execution.id} (run {execution.run_id})"
        attrs = event.workflow_execution_started_event_attributes
        start = await _decode(converter, attrs.input, JourneyStart, where)
        if not isinstance(start, JourneyStart):
            raise AuditError(f"{where} is not a journey's start")
        if on_read:
            on_read(1)
        return Registered.of(start, event.event_time.ToDatetime(tzinfo=UTC))

    found = await asyncio.gather(*(one(e) for e in first.values()))
    return sorted(found, key=lambda r: r.applicant_id)
