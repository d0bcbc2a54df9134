"""The service API: each report and command is a POST carrying the sender's signed message
(gateway/operator_api.py has what the round's operators read and announce).

Two checks stand in front of the engine's own: the caller proves who it is with its API key
(`Authorization: Bearer <key>`), and the message must be reported by that same identity. The
signature inside the message is then checked by the journey or the round themselves (domain/
signing.py), which decide whether the report counts; the answer is their acknowledgement.

No `from __future__ import annotations` here: FastAPI reads the body types of the routes made in
a loop below from their live annotations.
"""

import asyncio
import time
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError
from temporalio.client import RPCTimeoutOrCancelledError, WorkflowQueryFailedError
from temporalio.service import RPCError

from client.api import RefusedError, UnknownError
from client.panels import CODE_PREFIX, panel_sheet
from domain.config import ComponentKind, RoundConfig
from domain.messages import (
    BLIND_REPORTS,
    Ack,
    Dismissal,
    Disqualification,
    JourneyRules,
    Report,
    unstated,
)
from domain.protocol import (
    COMMAND_KINDS,
    SERVICE_KINDS,
    Update,
)
from domain.registration import Registration
from domain.sheet import sender_refusal
from gateway.deps import Gateway, gateway
from gateway.limits import hold_back
from gateway.problems import (
    ENGINE_LATE,
    ENGINE_UNREADABLE,
    PROBLEM_JSON,
    Problem,
    validation_errors,
    without_niks,
)
from runtime.db import DATABASE_ERRORS
from runtime.logs import get_logger
from runtime.metrics import record_batch

log = get_logger("gateway.api")
router = APIRouter(prefix="/api/v1", tags=["service API"])

_PROBLEM = {"description": "RFC 9457 problem details", "content": {PROBLEM_JSON: {}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    code: _PROBLEM for code in (401, 403, 404, 409, 413, 422, 429, 503)
}
# What each report kind is called in the path (domain.protocol.SERVICE_KINDS): the journey's
# update name without the report_ prefix; a dismissal goes to the applicant's aftermath.
JOURNEY_PATHS = SERVICE_KINDS
COMMAND_PATHS = COMMAND_KINDS  # the operator commands, by path


async def caller(
    request: Request,
    authorization: Annotated[
        str | None, Header(description="`Bearer <API key>` of the calling service")
    ] = None,
) -> str:
    """The identity whose API key the request carries; 401 without a known key. (Async: it
    does no blocking work, and FastAPI would run a plain function in a thread pool.)"""
    gw: Gateway = request.app.state.gateway
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Problem(
            401,
            "send the service's API key as `Authorization: Bearer <key>`",
            errors=[{"field": "header authorization", "value": None, "reason": "missing"}],
            headers={"WWW-Authenticate": 'Bearer realm="casn"'},
        )
    identity = gw.api_keys.identity_of(key.strip())
    if identity is None:
        raise Problem(
            401,
            "the API key is not one this gateway knows",
            errors=[{"field": "header authorization", "value": None, "reason": "unknown key"}],
            headers={"WWW-Authenticate": 'Bearer realm="casn", error="invalid_token"'},
        )
    return identity


Caller = Annotated[str, Depends(caller)]
TellRepeats = Annotated[
    bool,
    Query(
        description="true: the engine is first asked whether it answered this very report before, "
        'and such an answer is marked "repeat": true (one read more per report on the engine: '
        "for reconciling a resend, not for every report)",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="the message's report_id; a repeat returns the first acknowledgement",
    ),
]


def _check_sender(identity: str, message: Report, idempotency_key: str | None) -> None:
    """The message is the caller's own (its `reported_by` is the API key's identity), and its
    Idempotency-Key, when sent, is its report_id."""
    if message.reported_by != identity:
        raise Problem(
            403,
            f"the API key is {identity}'s, but the message is reported by {message.reported_by}",
            errors=[
                {"field": "reported_by", "value": message.reported_by, "reason": "not the caller"}
            ],
        )
    missing = unstated(message)
    if missing:
        raise Problem(
            422,
            f"{', '.join(missing)}: must be stated (true or false); it is never assumed",
            errors=[{"field": name, "value": None, "reason": "not given"} for name in missing],
        )
    if idempotency_key is not None and idempotency_key != message.report_id:
        raise Problem(
            422,
            "Idempotency-Key must be the message's report_id",
            errors=[
                {
                    "field": "header Idempotency-Key",
                    "value": idempotency_key[:80],
                    "reason": f"is not report_id {message.report_id}",
                }
            ],
        )


async def round_config(gw: Gateway, round_id: str, subject: str) -> RoundConfig:
    """The round's rules (cached by the gateway); 404 when there is no such round."""
    return await engine_answer(gw.rounds.config(round_id), subject)


def _check_signed(config: RoundConfig, message: Report) -> None:
    """Refuse an unsigned message in a round with keys here, before the engine: the gateway's
    client holds the portal's key and would sign a portal-reported message itself, so a
    service could otherwise have the gateway sign in its name."""
    round_id = config.round_id
    if config.identities and not message.signature:
        raise Problem(
            409,
            f"{message.report_id} is unsigned: in round {round_id} every report and command "
            f"carries its reporter's signature ({message.reported_by}'s key)",
            type_="/problems/refused",
            errors=[{"field": "signature", "value": None, "reason": "missing"}],
        )


# What goes to the applicant's aftermath once the journey has ended (a dismissal always): an
# operator's only, in the journey and the aftermath alike (domain.sheet.SENDERS).
AFTERMATH_KINDS = (Dismissal, Disqualification)


def _check_may_send(rules: JourneyRules, message: Report) -> None:
    """Refuse here, before the engine, a message from an identity that is none of the round's
    reporters (another round's hospital, CAT centre or operator, whose API key this gateway also
    knows), and a dismissal or DIS from anyone but the round's operators (domain.sheet
    sender_refusal, the rule the journeys, the aftermath and the auditor apply). The round's
    reporters are fixed when it is created. Before, the engine refused these, but only once the
    gateway had asked it, and a dismissal of an ended journey from any API key started the
    applicant's aftermath, which stayed open. Which kind a reporter of the round may send is left
    to the engine, whose reasons also say what is wrong with the message (a component the round
    does not have)."""
    reporters = {i for ids in rules.reporters.values() for i in ids}
    if message.reported_by not in reporters:
        why = f"{message.reported_by} is none of the round's reporters"
    elif isinstance(message, AFTERMATH_KINDS):
        why = sender_refusal(message, rules)
    else:
        why = None
    if why:
        raise Problem(
            403,
            f"{message.report_id}: {why} (the round's file names who may send each kind)",
            errors=[{"field": "reported_by", "value": message.reported_by, "reason": why}],
        )


# What the read model raises when it cannot be reached or used now (its words stay in the log).
READ_MODEL_DOWN = DATABASE_ERRORS


async def engine_answer(call, subject: str) -> Any:
    """Run one call into the engine (or the read model beside it: a candidate code's journey, a
    panel sheet), its refusals turned into problems."""
    try:
        return await call
    except UnknownError as exc:
        raise Problem(404, str(exc)) from None
    except RefusedError as exc:
        raise Problem(409, str(exc), type_="/problems/refused") from None
    except (RPCError, *READ_MODEL_DOWN) as exc:
        what, again = (
            ("engine", "send the same message again later")
            if isinstance(exc, RPCError)
            else ("read model", "ask, or send the same message, again later")
        )
        log.warning(f"{what} unreachable", subject=subject, error=type(exc).__name__)
        raise Problem(
            503, f"the {what} cannot be reached; {again}", headers={"Retry-After": "30"}
        ) from None


async def _accept(gw: Gateway, identity: str, round_id: str, message: Report, key, send, what):
    """The checks every report and command passes before the engine, then the engine's answer."""
    _check_sender(identity, message, key)
    config = await round_config(gw, round_id, f"{message.report_id} to {round_id}")
    _check_may_send(gw.api.journey_rules(config), message)
    _check_signed(config, message)
    return await _taken(identity, message, send, what)


async def _taken(identity: str, message: Report, send, what: str) -> Ack:
    """The engine's acknowledgement of a message that passed the door (its refusals problems)."""
    ack = await engine_answer(send(message), f"{what} {message.report_id}")
    log.info("accepted", kind=what, report_id=message.report_id, by=identity, effect=ack.effect)
    return ack


# The kinds a panellist sends about a candidate known by code only: these may name the candidate
# by code in place of the registration number (domain.messages.BLIND_REPORTS).
BLIND_KINDS = frozenset(k for k, u in JOURNEY_PATHS.items() if u.input in BLIND_REPORTS)


async def send_report(
    gw: Gateway,
    round_id: str,
    applicant: str,
    kind: str,
    message: Report,
    tell_repeat: bool = False,
) -> Ack:
    """Send one report to its applicant's journey. A panellist's blind report may name the
    candidate by code (K-...), signed for that code: the gateway finds the journey with its
    pseudonym key and answers with the code in place of the registration number, which the
    panellist must not learn (the announcements print it beside the name).

    `tell_repeat` (the caller's `?tell_repeats=true`): ask the engine first whether it answered
    this very report before (RecruitmentApi.submit), and mark that answer `repeat`. It costs the
    Temporal server a read per report (0.6-0.8 ms of CPU against 6 ms for the update itself, here),
    so only a caller reconciling a resend asks it: a deadline peak's reports do not pay for it."""
    # A journey that has ended is named to the service with its code, not the reason it recorded
    # (a DIS's finding, a failed health gate): any reporter may name any registration number.
    send = partial(gw.api.submit if tell_repeat else gw.api.report, tell_reason=False)
    if not applicant.startswith(CODE_PREFIX):
        if isinstance(message, BLIND_REPORTS):
            config = await round_config(gw, round_id, f"{message.report_id} to {round_id}")
            _check_blind(gw.api.journey_rules(config), applicant, message)
        return await send(round_id, applicant, message)
    if kind not in BLIND_KINDS:
        raise Problem(
            422,
            f"{applicant} is a candidate code: only {', '.join(sorted(BLIND_KINDS))} name a "
            "candidate by code; give the registration number",
            errors=[{"field": "applicant_id", "value": applicant, "reason": "a candidate code"}],
        )
    registration_no = await gw.candidates.applicant_of(round_id, applicant)
    if registration_no is None:
        raise UnknownError(f"no candidate {applicant} in round {round_id}")
    try:
        ack = await send(round_id, registration_no, message)
    except RefusedError as exc:  # its reason may name the journey: never to the panellist
        raise type(exc)(str(exc).replace(registration_no, applicant)) from None
    return ack.model_copy(update={"applicant_id": applicant})


def _check_blind(rules: JourneyRules, applicant: str, message: Report) -> None:
    """Refuse a panellist's own report on a blind panel (a component with a pool) that names the
    candidate by registration number. Its answer would tell which number a code stands for: the
    report signed for a code verifies only at that code's journey, and `?tell_repeats` finds an
    earlier answer only there (review of 12-07). The committee's own conflict declaration, sent
    by an operator who knows the applicant, goes by number as before."""
    assert isinstance(message, BLIND_REPORTS)
    component = rules.skb.component(message.component)
    if component is None or not (component.assign or component.panellists):
        return
    if message.reported_by != message.panellist:
        return
    why = "a registration number on a blind panel, where a panellist names a candidate code"
    raise Problem(
        422,
        f"{message.report_id}: panellist {message.panellist} names the candidate by code (K-...) "
        f"on the {message.component} panel, never by registration number",
        errors=[{"field": "applicant_id", "value": applicant, "reason": why}],
    )


def _route(url: str, name: str, model: type, endpoint) -> None:
    """Register one POST whose body is `model`, answered by the acknowledgement."""
    endpoint.__name__ = name
    router.post(
        url,
        summary=f"{model.__name__}: {(model.__doc__ or '').strip().splitlines()[0]}",
        responses=RESPONSES,
        response_model=Ack,
    )(endpoint)


def _journey_route(path: str, update: Update[Any, Ack]) -> None:
    model = update.input

    async def post_report(
        round_id: str,
        applicant_id: str,
        message: Annotated[model, Body()],  # type: ignore[valid-type]
        identity: Caller,
        idempotency_key: IdempotencyKey = None,
        tell_repeats: TellRepeats = False,
        gw: Gateway = Depends(gateway),
    ) -> Ack:
        return await _accept(
            gw,
            identity,
            round_id,
            message,
            idempotency_key,
            lambda m: send_report(gw, round_id, applicant_id, path, m, tell_repeats),
            path,
        )

    _route(
        f"/rounds/{{round_id}}/applicants/{{applicant_id}}/{path}",
        f"post_{path}",
        model,
        post_report,
    )


def _command_route(path: str, update: Update[Any, Ack]) -> None:
    model = update.input

    async def post_command(
        round_id: str,
        message: Annotated[model, Body()],  # type: ignore[valid-type]
        identity: Caller,
        idempotency_key: IdempotencyKey = None,
        gw: Gateway = Depends(gateway),
    ) -> Ack:
        return await _accept(
            gw,
            identity,
            round_id,
            message,
            idempotency_key,
            lambda m: gw.api.command(round_id, m),
            path,
        )

    _route(
        f"/rounds/{{round_id}}/commands/{path}",
        f"post_{path.replace('-', '_')}",
        model,
        post_command,
    )


for _path, _update in JOURNEY_PATHS.items():
    _journey_route(_path, _update)
for _path, _update in COMMAND_PATHS.items():
    _command_route(_path, _update)


# --- batches: a test session's results in one request --------------------------------------------

MAX_BATCH = 500  # items in one batch: a CAT session's results, or a page of a larger file
# Items of different applicants in flight at once, per batch (the CSV route sends 32): a batch of
# 500 is answered in a few seconds while other callers still get their share of the engine.
BATCH_CONCURRENCY = 16
BATCH_PATH = "/rounds/{round_id}/reports"


class BatchItem(BaseModel):
    """One report of a batch: the applicant, the kind (as in the single route's path) and the
    signed message, exactly as the single route takes it."""

    applicant_id: str = Field(
        min_length=1,
        max_length=100,
        description="the registration number; for a panel score or a conflict declaration, the "
        "candidate code (K-...) instead, the message signed for it",
    )
    kind: str = Field(description="one of the report kinds: " + ", ".join(JOURNEY_PATHS))
    message: dict[str, Any] = Field(description="the signed message of that kind")


class ReportBatch(BaseModel):
    """Up to MAX_BATCH reports about applicants of one round."""

    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)


class ItemProblem(BaseModel):
    """Why one item was not acknowledged: the single route's problem, without its envelope."""

    type: str
    title: str
    detail: str


class BatchItemResult(BaseModel):
    """What became of one item: the status the single route would have answered, with its
    acknowledgement (200) or its problem."""

    index: int
    applicant_id: str
    kind: str
    report_id: str
    status: int
    ack: Ack | None = None
    problem: ItemProblem | None = None


class BatchAnswer(BaseModel):
    """Every item's outcome, in the order sent."""

    round_id: str
    acknowledged: int = Field(description="items answered 200 (repeats of earlier ones included)")
    refused: int = Field(
        description="items refused (404, 409; 422 for a candidate code in a kind that takes "
        "none): sending them again changes nothing"
    )
    unavailable: int = Field(
        description="items the engine did not take now (503, 500): send the batch again"
    )
    results: list[BatchItemResult]


SCHEMAS = "#/components/schemas/"  # where a reference in an OpenAPI document points


def describe_batch_items(spec: dict[str, Any]) -> None:
    """Describe, in the app's OpenAPI document `spec`, a batch item's `kind` as one of the report
    kinds and its `message` as the report model that kind's single route takes (one `if kind is
    K then message is M` rule per kind; `message` itself any of them). BatchItem declares the
    message a bare object because the route parses it by its kind (_parsed), which leaves an
    integrator's code generator nothing to go on; only the document changes, never what a request
    must be. Not `oneOf`: the report models take fields they do not know, so a message matches
    several of them (an AdminReport is a valid Withdrawal), and `oneOf` would refuse it."""
    schemas = spec["components"]["schemas"]
    item_ref = schemas[_body_schema(spec, ReportBatch)]["properties"]["items"]["items"]["$ref"]
    item = schemas[item_ref.removeprefix(SCHEMAS)]
    fields = item["properties"]
    by_kind = {kind: _body_schema(spec, update.input) for kind, update in JOURNEY_PATHS.items()}
    fields["kind"] = {**fields["kind"], "enum": list(by_kind)}
    fields["message"] = {
        **{k: v for k, v in fields["message"].items() if k in ("title", "description")},
        "anyOf": [{"$ref": SCHEMAS + name} for name in dict.fromkeys(by_kind.values())],
    }
    item["allOf"] = [
        {
            "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
            "then": {"properties": {"message": {"$ref": SCHEMAS + name}}},
        }
        for kind, name in by_kind.items()
    ]


def _body_schema(spec: dict[str, Any], model: type[BaseModel]) -> str:
    """The name in `spec`'s components.schemas of `model`, read where a route of this router takes
    it as its body: FastAPI names a schema after its class, but qualifies the name when two classes
    share it and suffixes it when input and output schemas differ, so the name is read, never
    assumed. A model that no route in the document takes is an error, not a reference to nothing."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or route.body_field is None:
            continue
        if route.body_field.field_info.annotation is not model:
            continue
        for method in route.methods:
            try:
                body = spec["paths"][route.path][method.lower()]["requestBody"]
                name = body["content"]["application/json"]["schema"]["$ref"].removeprefix(SCHEMAS)
            except KeyError:
                continue  # not in this document as its body: the error below names the model
            if name in spec["components"]["schemas"]:
                return name
    raise RuntimeError(
        f"the OpenAPI document has no schema of {model.__name__}: no route of {router.prefix} in "
        "it takes the model as its body, so a batch item cannot be described by reference to it; "
        "serve the route that takes it (JOURNEY_PATHS) before describing the batch items"
    )


def _parsed(batch: ReportBatch) -> list[Report]:
    """Each item's message as its kind's model; a 422 naming every bad field if any is wrong, so
    that a batch that does not parse sends nothing."""
    messages: list[Report] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(batch.items):
        update = JOURNEY_PATHS.get(item.kind)
        if update is None:
            errors.append(
                {
                    "field": f"items.{i}.kind",
                    "value": item.kind[:80],
                    "reason": "not a report kind: " + ", ".join(JOURNEY_PATHS),
                }
            )
            continue
        try:
            messages.append(update.input.model_validate(item.message))
        except ValidationError as exc:
            errors.extend(validation_errors(exc, ("items", i, "message")))
    if errors:
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
        raise Problem(422, detail, errors=errors)
    return messages


def _door(config: RoundConfig, rules: JourneyRules, identity: str, messages: list[Report]) -> None:
    """The single route's checks before the engine, for every item at once: one message that
    fails them refuses the whole batch (with the fields of every one that failed), before any is
    sent."""
    failed: list[Problem] = []
    errors: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        try:
            _check_sender(identity, message, None)
            _check_may_send(rules, message)
            _check_signed(config, message)
        except Problem as problem:
            failed.append(problem)
            errors += [{**e, "field": f"items.{i}.message.{e['field']}"} for e in problem.errors]
    if failed:
        raise Problem(
            failed[0].status,
            f"{len(failed)} of {len(messages)} items refused before anything was sent; the "
            f"first: {failed[0].detail}",
            type_=failed[0].type,
            errors=errors,
        )


async def _item(
    gw: Gateway,
    identity: str,
    round_id: str,
    index: int,
    item: BatchItem,
    message: Report,
    tell_repeat: bool = False,
) -> BatchItemResult:
    """One item through the engine, every way it can end turned into its result."""
    ack: Ack | None = None
    problem: Problem | None = None
    try:
        send = lambda m: send_report(  # noqa: E731
            gw, round_id, item.applicant_id, item.kind, m, tell_repeat
        )
        ack = await _taken(identity, message, send, item.kind)
    except Problem as exc:
        problem = exc
    except RPCTimeoutOrCancelledError:
        log.warning("the engine did not answer in time", report_id=message.report_id)
        problem = Problem(503, ENGINE_LATE)
    except WorkflowQueryFailedError as exc:
        log.error("a query the worker could not answer", error=str(exc)[:300])
        problem = Problem(503, ENGINE_UNREADABLE)
    except Exception as exc:  # one item's failure is its own, never the batch's
        log.error("unexpected error", report_id=message.report_id, exc_info=exc)
        problem = Problem(500, "the gateway failed to take this item: send it again")
    return BatchItemResult(
        index=index,
        applicant_id=without_niks(item.applicant_id),  # a NIK sent in its place, masked
        kind=item.kind,
        report_id=message.report_id,
        status=200 if problem is None else problem.status,
        ack=ack,
        problem=None
        if problem is None
        else ItemProblem(type=problem.type, title=problem.title, detail=problem.shown_detail),
    )


def _not_sent(index: int, item, message: Report, before: BatchItemResult) -> BatchItemResult:
    """An item held back because item `before.index` of the same applicant was not taken."""
    problem = Problem(
        503,
        f"not sent: item {before.index} of the same applicant was not taken before it; "
        "send both again",
    )
    return BatchItemResult(
        index=index,
        applicant_id=without_niks(item.applicant_id),
        kind=item.kind,
        report_id=message.report_id,
        status=503,
        ack=None,
        problem=ItemProblem(type=problem.type, title=problem.title, detail=problem.shown_detail),
    )


@router.post(
    BATCH_PATH,
    summary=f"Up to {MAX_BATCH} reports about applicants of the round, each answered as the "
    "single route would answer it",
    responses=RESPONSES,
    response_model=BatchAnswer,
)
async def post_reports(
    round_id: str,
    batch: ReportBatch,
    identity: Caller,
    response: Response,
    tell_repeats: TellRepeats = False,
    gw: Gateway = Depends(gateway),
) -> BatchAnswer:
    """Each item is the message its single route takes, and is judged by its journey as that
    route's would be; the answer lists each item's status with its acknowledgement or problem.
    Items about one applicant go in the order sent, one after another; other applicants' at the
    same time. A batch that does not parse, or whose messages are not all the caller's and (in a
    round with keys) signed, is refused whole, before any item is sent."""
    started = time.perf_counter()
    config = await round_config(gw, round_id, f"a batch to {round_id}")
    messages = _parsed(batch)
    _door(config, gw.api.journey_rules(config), identity, messages)
    gate = asyncio.Semaphore(BATCH_CONCURRENCY)
    results: list[BatchItemResult | None] = [None] * len(messages)
    applicants: dict[str, list[int]] = {}
    for i, item in enumerate(batch.items):
        applicants.setdefault(item.applicant_id, []).append(i)

    async def one_applicant(indexes: list[int]) -> None:
        async with gate:
            held: BatchItemResult | None = None
            for i in indexes:
                if held is not None:
                    # An earlier item of this applicant was not taken (503, 500): the later ones
                    # are not sent either, so no item is taken before one sent ahead of it (a
                    # panellist's conflict declaration before their score). Sent again, the batch
                    # takes them in order.
                    results[i] = _not_sent(i, batch.items[i], messages[i], held)
                    continue
                results[i] = await _item(
                    gw, identity, round_id, i, batch.items[i], messages[i], tell_repeats
                )
                if results[i].status >= 500:
                    held = results[i]

    await asyncio.gather(*(one_applicant(ix) for ix in applicants.values()))
    done = [r for r in results if r is not None]
    counts = {
        "acknowledged": sum(r.status == 200 for r in done),
        "refused": sum(400 <= r.status < 500 for r in done),
        "unavailable": sum(r.status >= 500 for r in done),
    }
    if counts["unavailable"]:
        response.headers["Retry-After"] = "30"
    record_batch(len(done), time.perf_counter() - started)
    log.info("batch", round_id=round_id, items=len(done), by=identity, **counts)
    return BatchAnswer(round_id=round_id, results=done, **counts)


class RegistrationAnswer(BaseModel):
    """What became of a registration sent through the service API."""

    status: str = Field(description="registered | repeat")
    applicant_id: str = Field(description="the registration number")
    registered_at: datetime
    pending: bool = Field(
        default=False,
        description="registered, but the journey had not written its first row within the "
        "engine's confirm_within: the applicant's page shows it once it does",
    )


@router.post(
    "/rounds/{round_id}/registrations",
    summary="Register one applicant (operators and the portal), signed by the portal's key",
    responses=RESPONSES,
)
async def post_registration(
    round_id: str,
    registration: Registration,
    identity: Caller,
    gw: Gateway = Depends(gateway),
) -> RegistrationAnswer:
    config = await round_config(gw, round_id, f"registration in {round_id}")
    allowed = {*config.reporters.get("operator", []), *config.reporters.get("portal", [])}
    if identity not in allowed:
        raise Problem(403, f"{identity} may not register applicants in round {round_id}")
    # Per API key, not per round: a key that floods is held back wherever it registers.
    hold_back(gw.registration_limit, identity, "registrations")
    if gw.portal is None:
        raise Problem(503, "this gateway holds no portal key, so it cannot sign registrations")
    state = await engine_answer(gw.rounds.state(round_id), f"registration in {round_id}")
    result = await engine_answer(
        gw.api.register(
            config,
            registration,
            gw.portal.identity,
            schedule_closes=state.schedule.registration.closes,
            submitted_by="" if identity == gw.portal.identity else identity,
        ),
        f"registration in {round_id}",
    )
    if result.status == "refused":
        errors = [
            {"field": r.field, "value": str(r.value)[:80], "reason": r.reason}
            for r in result.refusals
        ]
        raise Problem(
            409,
            "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
            type_="/problems/refused",
            errors=errors,
            # The registration number the refusal is about, for the caller's numbers file.
            members={"applicant_id": result.applicant_id} if result.applicant_id else None,
        )
    log.info("registration", status=result.status, applicant_id=result.applicant_id, by=identity)
    return RegistrationAnswer(
        status=result.status,
        applicant_id=result.applicant_id or "",
        registered_at=datetime.now(UTC),
        pending=result.pending,
    )


# --- a panellist's blind sheet -------------------------------------------------------------------


class SheetRow(BaseModel):
    """One applicant on a panellist's sheet, by candidate code: never a name or number."""

    candidate: str
    formasi_code: str
    component: str


class PanelSheet(BaseModel):
    """The applicants the calling panellist is drawn for now (every conflict and review taken
    into account), in code order."""

    round_id: str
    panellist: str
    rows: list[SheetRow]


@router.get(
    "/rounds/{round_id}/panel-sheet",
    summary="The calling panellist's blind sheet: candidate codes, never names or numbers",
    responses=RESPONSES,
)
async def get_panel_sheet(
    round_id: str,
    identity: Caller,
    response: Response,
    formasi: Annotated[str | None, Query(max_length=50, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
    gw: Gateway = Depends(gateway),
) -> PanelSheet:
    """What `starter.py panel-sheet` shows, for the panellist whose API key calls: each applicant
    whose panel they sit on, by candidate code. They score by that code (a report signed for the
    code, `panel_score` or `declare_conflict` with the code in place of the registration number).
    Only a panellist of one of the round's panel components. It is one read of the read model's
    panels (each journey writes its panel when drawn and when a conflict or review changes it);
    SHEETS_PER_MINUTE a minute per panellist, 429 beyond: a sheet changes only at such a draw or
    change, and a loop of requests is not a panellist at work."""
    config = await round_config(gw, round_id, f"panel sheet of {round_id}")
    pools = [c.panellists for c in config.skb.components if c.kind == ComponentKind.PANEL]
    if not any(identity in pool for pool in pools):
        raise Problem(
            403, f"{identity} is not a panellist of round {round_id}: there is no sheet of theirs"
        )
    hold_back(gw.sheet_limit, identity, "panel sheets")
    rows = await engine_answer(
        panel_sheet(gw.pool, gw.api.pseudonym_key, round_id, identity, formasi),
        f"panel sheet of {round_id}",
    )
    response.headers["Cache-Control"] = "no-store"
    log.info("panel sheet", round_id=round_id, by=identity, rows=len(rows))
    return PanelSheet(
        round_id=round_id,
        panellist=identity,
        rows=[
            SheetRow(candidate=r.candidate, formasi_code=r.formasi_code, component=r.component)
            for r in rows
        ],
    )
