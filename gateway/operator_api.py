"""What the round's operators read and announce through the gateway, with an API key and their
own signing key but no access to the cluster: the round's status (`starter.py status --gateway`),
one applicant's (`lookup --gateway`), the reports the journeys still await before a close
(`outstanding --gateway`), the satisfaction survey's results (`survey-results --gateway`), and announcements drafted here and signed on the operator's machine (`announce
--gateway`). Only the round's `operator` reporters: 403 for anyone else. And a national round's
funnel (`national-funnel --gateway`), for the `readers` its file names.

Like gateway/service_api.py, no `from __future__ import annotations`: FastAPI reads the routes'
annotations live.
"""

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field, model_validator
from temporalio.client import RPCTimeoutOrCancelledError, WorkflowQueryFailedError
from temporalio.service import RPCError

from activities.purges import purged_on
from client.access_log import record_access
from client.announcements import AnnouncementStage
from client.api import RefusedError, applicant_id_for
from client.national import NationalRefusal, funnel_document, national_funnel
from client.outstanding import Outstanding, formasi_checked, outstanding_view
from client.publication import SignedDraft, draft_announcement, publish_signed
from client.status import (
    WIB,
    ApplicantView,
    RoundStatus,
    RoundView,
    build_round_view,
    funnel_counts,
)
from client.survey import FEW_RESPONDENTS, SurveyRow, survey_rows
from domain.config import RoundConfig
from domain.national import NationalState
from domain.registration import normalise_nik
from gateway.deps import Gateway, gateway
from gateway.limits import hold_back
from gateway.problems import ENGINE_UNREADABLE, Problem
from gateway.service_api import READ_MODEL_DOWN, RESPONSES, Caller, engine_answer, round_config
from runtime.logs import get_logger
from runtime.metrics import record_announcement, record_lookup

log = get_logger("gateway.operators")
router = APIRouter(prefix="/api/v1", tags=["operators"])


# --- the round's status, for its operators -------------------------------------------------------

ROUND_STATE_TIMEOUT = 10.0  # seconds the status waits for the round's worker to answer


def _operator(config: RoundConfig, identity: str, what: str) -> None:
    """Only the round's operators (its `operator` reporters) read its status and applicants and
    announce its results here; `what` they do, for the 403's words."""
    if identity not in config.reporters.get("operator", []):
        raise Problem(
            403,
            f"{identity} is not an operator of round {config.round_id}: only its operators "
            f"{what} here",
        )


async def _round_now(gw: Gateway, config: RoundConfig) -> tuple[RoundView | None, str | None]:
    """The round's view, or why it cannot be had now: a read that fails says so, it changes
    nothing, and the funnel is still shown beside it."""
    round_id = config.round_id
    try:
        state = await gw.rounds.state(round_id, timeout=ROUND_STATE_TIMEOUT)
    except WorkflowQueryFailedError as exc:
        log.error("a query the worker could not answer", round_id=round_id, error=str(exc)[:300])
        return None, ENGINE_UNREADABLE
    except (TimeoutError, RPCTimeoutOrCancelledError, RPCError) as exc:
        log.warning("the round did not answer", round_id=round_id, error=type(exc).__name__)
        return None, (
            f"the round's worker did not answer within {ROUND_STATE_TIMEOUT:.0f} s; ask again later"
        )
    return build_round_view(config, state, datetime.now(WIB)), None


async def _funnel_now(gw: Gateway, round_id: str) -> tuple[dict | None, str | None]:
    """The funnel from the read model, or why it cannot be had now (the database's own words stay
    in the gateway's log: they may name its host)."""
    try:
        return await funnel_counts(gw.pool, round_id), None
    except READ_MODEL_DOWN as exc:
        log.warning("the read model did not answer", round_id=round_id, error=type(exc).__name__)
        return None, "the read model cannot be read now; ask again later"


@router.get(
    "/rounds/{round_id}",
    summary="The round's windows, TMT and funnel per formasi, for the round's operators",
    responses=RESPONSES,
)
async def get_round(
    round_id: str,
    identity: Caller,
    response: Response,
    gw: Gateway = Depends(gateway),
) -> RoundStatus:
    """What `starter.py status` shows, for an operator of the round (its `operator` reporters)
    who has no access to Temporal or the database. Answered 200 even when one half cannot be read
    now, with `Retry-After`; counts only, no applicant's data."""
    config = await round_config(gw, round_id, f"status of {round_id}")
    _operator(config, identity, "read its status")
    (view, round_problem), (funnel, funnel_problem) = await asyncio.gather(
        _round_now(gw, config), _funnel_now(gw, round_id)
    )
    purged_at = None
    if funnel is not None:
        try:
            purged_at = await purged_on(gw.pool, round_id)
        except READ_MODEL_DOWN as exc:
            log.warning(
                "the read model did not answer", round_id=round_id, error=type(exc).__name__
            )
            funnel, funnel_problem = None, "the read model cannot be read now; ask again later"
    if round_problem or funnel_problem:
        response.headers["Retry-After"] = "30"
    return RoundStatus.of(round_id, view, round_problem, funnel, funnel_problem, purged_at)


# --- one applicant, for the round's operators ----------------------------------------------------


class Lookup(BaseModel):
    """Whom to look up: the registration number, or the NIK. The NIK travels in the body, never in
    a URL (where access logs and proxies keep it), and is never logged or echoed back."""

    applicant_id: str | None = Field(
        default=None, pattern=r"^[A-Z2-7]{16}$", description="the registration number"
    )
    # Checked by normalise_nik in the route, whose refusal masks it (a length limit here would
    # echo the value back in its 422).
    nik: str | None = Field(default=None, description="the NIK (16 digits)")

    @model_validator(mode="after")
    def _exactly_one(self) -> "Lookup":
        if (self.applicant_id is None) == (self.nik is None):
            raise ValueError("give exactly one of applicant_id and nik")
        return self


def _whom(gw: Gateway, round_id: str, lookup: Lookup) -> str:
    """The registration number looked up: given, or the round's pseudonym of the NIK."""
    if lookup.applicant_id is not None:
        return lookup.applicant_id
    try:
        nik = normalise_nik(lookup.nik or "")
    except ValueError as exc:  # the reason names the character, never the whole NIK
        raise Problem(
            422, f"nik: {exc}", errors=[{"field": "nik", "value": None, "reason": str(exc)}]
        ) from None
    return applicant_id_for(gw.api.pseudonym_key, round_id, nik)


async def _accounted(
    gw: Gateway,
    request: Request,
    round_id: str,
    applicant_id: str,
    identity: str,
    lookup: Lookup,
    found: bool,
) -> None:
    """Record the lookup in the access log (client/access_log.py) and count it; 503 when it
    cannot be recorded."""
    try:
        await record_access(
            gw.pool,
            round_id=round_id,
            applicant_id=applicant_id,
            reader=identity,
            by_nik=lookup.nik is not None,
            found=found,
            request_id=getattr(request.state, "request_id", ""),
        )
    except READ_MODEL_DOWN as exc:
        log.error("access not recorded", round_id=round_id, by=identity, error=type(exc).__name__)
        raise Problem(
            503,
            "the lookup could not be recorded in the access log, so nothing is shown; ask again "
            "later",
            headers={"Retry-After": "30"},
        ) from None
    record_lookup("nik" if lookup.nik is not None else "number", "found" if found else "unknown")


@router.post(
    "/rounds/{round_id}/lookups",
    summary="One applicant's status (by registration number or NIK), for the round's operators",
    responses=RESPONSES,
)
async def post_lookup(
    round_id: str,
    lookup: Lookup,
    identity: Caller,
    request: Request,
    response: Response,
    gw: Gateway = Depends(gateway),
) -> ApplicantView:
    """What `starter.py lookup` shows: the applicant's stage, codes, every decision with its
    reason, the deadlines that apply now and what they may do now. 404 for no such applicant.
    Each lookup is recorded in the access log (and the gateway's log) with the registration
    number and who asked, never the NIK, before it is answered."""
    subject = f"lookup in {round_id}"
    config = await round_config(gw, round_id, subject)
    _operator(config, identity, "look up its applicants")
    try:  # a stolen operator key must not sweep NIKs to learn which registered
        hold_back(gw.lookup_limit, identity, "lookups")
    except Problem:
        record_lookup("number" if lookup.nik is None else "nik", "limited")
        raise
    if lookup.nik is not None:
        # Another pseudonym key would find another number: the round's must be the gateway's.
        await engine_answer(gw.api.check_round_keys(round_id), subject)
    applicant_id = _whom(gw, round_id, lookup)
    try:
        view = await engine_answer(gw.applicant_status(round_id, applicant_id, config), subject)
    except Problem as problem:
        if problem.status == 404:
            await _accounted(gw, request, round_id, applicant_id, identity, lookup, found=False)
        raise
    # Recorded before it is answered: a read of personal data that cannot be accounted for is
    # not answered.
    await _accounted(gw, request, round_id, applicant_id, identity, lookup, found=True)
    response.headers["Cache-Control"] = "no-store"
    log.info(
        "lookup", round_id=round_id, applicant_id=applicant_id, by=identity, by_nik=bool(lookup.nik)
    )
    return view


# --- announcements, signed by the round's operator with a key the gateway never holds -------------


class DraftRequest(BaseModel):
    """Which announcement to draft: the stage's first, or a correction of an earlier one."""

    corrects: int | None = Field(
        default=None, ge=1, description="the publication this one corrects (its seq), if any"
    )


class AnnouncementAnswer(BaseModel):
    """A draft to sign (`new`: its body, unsigned), or a publication stored (`stored`), or the one
    that already announces these results (neither: signed, as it was published)."""

    round_id: str
    new: bool = Field(description="a draft not yet published, or a publication just stored")
    stored: bool = Field(description="this request stored the publication")
    publication: dict[str, Any] = Field(
        description="the document: its body, `signature` (empty in a draft) and `body_sha256`"
    )
    cut_multiplier: int = Field(
        description="the round's SKD cut multiplier, which the printable announcement states"
    )
    timezone: str = Field(
        default="Asia/Jakarta",
        description="the round's IANA zone, in which the printable announcement states its time",
    )


async def _announcing(gw: Gateway, round_id: str, identity: str) -> None:
    """Only the round's operators announce; 404 for no such round."""
    config = await round_config(gw, round_id, f"announcement of {round_id}")
    _operator(config, identity, "announce its results")


@router.post(
    "/rounds/{round_id}/announcements/{stage}/drafts",
    summary="Draft the stage's announcement for the calling operator to sign",
    responses=RESPONSES,
)
async def post_announcement_draft(
    round_id: str,
    stage: AnnouncementStage,
    request: DraftRequest,
    identity: Caller,
    gw: Gateway = Depends(gateway),
) -> AnnouncementAnswer:
    """The stage's announcement as it would be published now, signed by the caller: the rows
    the read model gives, the next link of the round's chain. Nothing is stored. The operator
    checks it, signs it with its own key and sends the signature (the next route) within 30
    minutes. The same results published already answer with that publication (`new` false);
    409 while the stage has no result for everyone."""
    await _announcing(gw, round_id, identity)
    async with gw.pool.acquire() as conn:
        drafted = await engine_answer(
            draft_announcement(
                gw.api, conn, round_id, stage, identity, request.corrects, gw.cipher
            ),
            f"draft of {round_id} {stage.value}",
        )
    record_announcement(stage.value, "drafted" if drafted.new else "unchanged")
    return AnnouncementAnswer(
        round_id=round_id,
        new=drafted.new,
        stored=False,
        publication=drafted.publication.document(),
        cut_multiplier=drafted.cut_multiplier,
        timezone=drafted.timezone,
    )


@router.post(
    "/rounds/{round_id}/announcements/{stage}",
    summary="Publish a drafted announcement with the calling operator's signature",
    responses=RESPONSES,
)
async def post_announcement(
    round_id: str,
    stage: AnnouncementStage,
    signed: SignedDraft,
    identity: Caller,
    gw: Gateway = Depends(gateway),
) -> AnnouncementAnswer:
    """The draft is built again and stored only if it hashes to the signed `body_sha256` and the
    signature verifies under the round's key of `reported_by`, the caller: a gateway that holds
    no operator's key cannot publish in an operator's name, nor change what the operator signed.
    409, nothing stored, when the results or the chain moved since the draft (draft again)."""
    if signed.reported_by != identity:
        raise Problem(
            403,
            f"the API key is {identity}'s, but the draft is signed by {signed.reported_by}",
            errors=[
                {"field": "reported_by", "value": signed.reported_by, "reason": "not the caller"}
            ],
        )
    await _announcing(gw, round_id, identity)
    async with gw.pool.acquire() as conn:
        try:
            published = await engine_answer(
                publish_signed(gw.api, conn, round_id, stage, signed, gw.cipher),
                f"publication of {round_id} {stage.value}",
            )
        except Problem as problem:
            if problem.status == 409:
                log.warning(
                    "announcement refused", round_id=round_id, stage=stage.value, by=identity
                )
                record_announcement(stage.value, "refused")
            raise
    record_announcement(stage.value, "published" if published.new else "unchanged")
    p = published.publication
    log.info(
        "announcement published" if published.new else "announcement unchanged",
        round_id=round_id,
        stage=stage.value,
        seq=p.seq,
        rows=sum(len(f.rows) for f in p.formasi),
        by=identity,
    )
    return AnnouncementAnswer(
        round_id=round_id,
        new=published.new,
        stored=published.new,
        publication=p.document(),
        cut_multiplier=published.cut_multiplier,
        timezone=published.timezone,
    )


# --- the satisfaction survey's results ----------------------------------------------------------


class SurveyResults(BaseModel):
    """The IKM per instansi and stage, and over every stage (`stage` "all"), as `starter.py
    survey-results --json` prints it. Sums of anonymous answers only; a result of fewer than
    `few_below` respondents is marked, not for publication."""

    round_id: str
    few_below: int
    results: list[SurveyRow]


@router.get(
    "/rounds/{round_id}/survey",
    summary="The satisfaction survey's IKM per instansi and stage, for the round's operators",
    responses=RESPONSES,
)
async def get_survey(
    round_id: str, identity: Caller, gw: Gateway = Depends(gateway)
) -> SurveyResults:
    """What `starter.py survey-results` shows: respondents, each element's NRR and the IKM with
    its band (PermenPANRB 14/2017), read from the sums of the answers, never an answer itself."""
    config = await round_config(gw, round_id, f"survey of {round_id}")
    _operator(config, identity, "read its survey")
    return SurveyResults(
        round_id=round_id, few_below=FEW_RESPONDENTS, results=await survey_rows(gw.pool, round_id)
    )


# --- what the journeys still await before a close ---------------------------------------------


@router.get(
    "/rounds/{round_id}/outstanding",
    summary="The reports the journeys at administration, SKD, SKB and Latsar await, for operators",
    responses=RESPONSES,
)
async def get_outstanding(
    round_id: str,
    identity: Caller,
    response: Response,
    formasi: Annotated[str | None, Query(max_length=50, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
    gw: Gateway = Depends(gateway),
) -> Outstanding:
    """What `starter.py outstanding` shows: per formasi, each report the applicants at the
    administrative check, SKD, SKB and Latsar still lack (the administration and SKD results, each
    SKB score, gate and panel component, the Latsar result), how many lack it and
    which by registration number, and when each window closes. 404 for no such round or formasi.
    Stages are read from the read model, reports from each such journey's history
    (client/outstanding.py): one history read per applicant at the stage, so OUTSTANDING_PER_MINUTE
    (6) a minute per operator, 429 beyond."""
    subject = f"outstanding reports of {round_id}"
    config = await round_config(gw, round_id, subject)
    _operator(config, identity, "read what its journeys await")
    hold_back(gw.outstanding_limit, identity, "reads of what is outstanding")
    try:
        formasi_checked(config, formasi)
    except RefusedError as exc:
        raise Problem(
            404,
            str(exc),
            errors=[{"field": "formasi", "value": formasi, "reason": "not in the round"}],
        ) from None
    view, unavailable = await _round_now(gw, config)
    if view is None:
        raise Problem(503, str(unavailable), headers={"Retry-After": "30"})
    shown = await engine_answer(
        outstanding_view(gw.api, gw.pool, config, view, formasi, datetime.now(WIB)), subject
    )
    response.headers["Cache-Control"] = "no-store"
    log.info(
        "outstanding read",
        round_id=round_id,
        formasi=formasi,
        by=identity,
        applicants_missing=shown.applicants_missing,
    )
    return shown


# --- the national funnel, for the readers the national file names ---------------------------------


class InstansiLine(BaseModel):
    """One instansi round of the national round: its applicants by stage or result code, the
    registrations its journeys refused (no applicants, not in `funnel`) and its announcements
    signed, by stage."""

    round_id: str
    instansi: str
    formasi: int
    seats: int
    funnel: dict[str, int]
    refused: int = 0
    publications: dict[str, int]


class NationalFunnel(BaseModel):
    """What `starter.py national-funnel --json` prints: the national windows and register, and a
    line per instansi round in the order they joined. Counts only, no applicant."""

    national_id: str
    national: NationalState
    instansi: list[InstansiLine]


@router.get(
    "/national/{national_id}",
    summary="A national round's windows and funnel per instansi, for the readers its file names",
    responses=RESPONSES,
)
async def get_national(
    national_id: Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")],
    identity: Caller,
    response: Response,
    gw: Gateway = Depends(gateway),
) -> NationalFunnel:
    """What `starter.py national-funnel` shows, for an identity the national round's file lists
    among its `readers` (the national committee, an inspector): 403 for anyone else, the rounds'
    own operators included (a national round's file that names no readers is read with access to
    the cluster only)."""

    subject = f"national funnel of {national_id}"
    try:
        found = await engine_answer(gw.api.national.config(national_id), subject)
    except NationalRefusal as exc:  # no such national round
        raise Problem(404, str(exc)) from None
    if identity not in found.readers:
        raise Problem(
            403,
            f"{identity} is not a reader of national round {national_id}: its file names who "
            "may read its funnel here (readers)",
        )

    async with gw.pool.acquire() as conn:
        state, lines = await engine_answer(
            national_funnel(gw.api.national, conn, national_id), subject
        )
    document = funnel_document(national_id, state, lines)
    response.headers["Cache-Control"] = "no-store"
    log.info(
        "national funnel", national_id=national_id, by=identity, rounds=len(document["instansi"])
    )
    return NationalFunnel.model_validate(document)
