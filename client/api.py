"""The small client API operators and services use: create a round, register, report.

starter.py is built on it; an integrating service can use it directly, or send the same
updates from its own Temporal client (see README, "Sending results as a service").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
from temporalio.api.errordetails.v1 import (
    MultiOperationExecutionFailure,
    WorkflowNotReadyFailure,
)
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from client.national import NationalRefusal, NationalRegister, national_applicant_id
from client.sanctions import SanctionRegister, sanction_subject
from domain.admission import registration_refusal
from domain.aftermath import AftermathStart
from domain.config import RoundConfig, load_round_config
from domain.digest import canonical_digest
from domain.messages import (
    Ack,
    Dismissal,
    Disqualification,
    JourneyRules,
    JourneyStart,
    JourneyState,
    RegistrationConfirm,
    RegistrationOutcome,
    Report,
    RoundStart,
    RoundState,
)
from domain.panels import candidate_code
from domain.protocol import (
    AFTERMATH_REPORTS,
    CONFIG_DIGEST,
    CONFIRM_REGISTRATION,
    JOURNEY_STATE,
    REGISTRATION_DIGEST,
    ROUND_STATE,
    Update,
    command_update,
    report_update,
)
from domain.registration import Refusal, Registration, check_registration, mask_nik
from domain.signing import Keyring
from runtime.attributes import FORMASI_CODE, RECRUITMENT_STAGE, ROUND_ID, WORKFLOW_KIND
from runtime.codec import KEY_ID, PayloadDecryptionError
from runtime.keys import pseudonym_key_id
from runtime.metrics import record_report
from workflows.aftermath import (
    KEYS_STALE,
    NOT_READY,
    READ_ROUND_AGAIN,
    ROUND_UNREADABLE,
    ApplicantAftermath,
)
from workflows.applicant import ENGINE_VERSION, ApplicantJourney
from workflows.ids import (
    aftermath_workflow_id,
    claim_workflow_id,
    journey_workflow_id,
    round_workflow_id,
)
from workflows.round import RecruitmentRound, journey_rules

UPDATE_ATTEMPTS = 5
AFTERMATH_ATTEMPTS = 30  # an aftermath reads the journey's end before it takes a report
# How far a client's clock may be from the server's before the client itself refuses a
# registration by the window (registration_refusals): nearer the window's ends the round judges
# it, on the server's clock, when it admits the journey.
CLOCK_MARGIN = timedelta(minutes=5)
M = TypeVar("M", bound=BaseModel)
EARLIER_ANSWER_TIMEOUT = timedelta(seconds=15)  # asking whether a report was answered before
_AFTER_END_UPDATE = {u.input: u for u in AFTERMATH_REPORTS.values()}


class RefusedError(Exception):
    """A report, command or registration that the engine refused, with the reason."""


class NotTaken(RefusedError):
    """A registration the engine did not take in time, and no journey of it exists: send it
    again."""


class UnknownError(RefusedError):
    """The round or applicant a message is for does not exist."""


# What applicant_id_for makes: a registration number, for checking one given outside (a command
# line, a lookup) before it is looked up or sent.
REGISTRATION_NUMBER = re.compile(r"[A-Z2-7]{16}")


def applicant_id_for(pseudonym_key: bytes, round_id: str, nik: str) -> str:
    """The registration number: a keyed pseudonym of the NIK, so ids carry no personal data."""
    digest = hmac.new(pseudonym_key, f"{round_id}\x00{nik}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().rstrip("=")


def registration_refusals(
    config: RoundConfig,
    reg: Registration,
    now: datetime,
    closes: datetime | None = None,
    clock_margin: timedelta = timedelta(0),
) -> list[Refusal]:
    """Every reason the round's own rules refuse `reg` at `now`, as far as they are judged
    without the engine or the read model: the registration rules (domain/registration.py) on
    the day in the round's time zone, and the window (until `closes`, the schedule in force,
    when given). The sanctions register and a national round's claim come after.

    `clock_margin`: how far `now` (this machine's clock) may be from the server's. Within it of
    either end the window is not judged here but by the round, on the server's clock, when it
    admits the journey: an operator's clock five minutes fast refused a whole import made two
    minutes before the close."""
    opens = config.schedule.registration.opens
    closes = closes or config.schedule.registration.closes
    formasi = config.formasi_by_code(reg.formasi_code)
    applied_on = now.astimezone(ZoneInfo(config.timezone)).date()
    refusals = check_registration(reg, formasi, applied_on)
    if not opens - clock_margin <= now < closes + clock_margin:
        refusals.append(
            Refusal(
                field="registered_at",
                value=now.isoformat(),
                reason=f"registration is open {opens.isoformat()} to {closes.isoformat()}",
            )
        )
    return refusals


def registration_digest(reg: Registration) -> str:
    """The digest of a registration's content, to tell a repeat from a different person's data."""
    return canonical_digest(reg)


@dataclass
class RegistrationResult:
    """What happened to one registration."""

    status: str  # registered | repeat | refused
    applicant_id: str | None = None
    refusals: list[Refusal] = field(default_factory=list)
    # Registered, but the journey's confirmation (its first row) did not come within
    # RecruitmentApi.confirm_within: the applicant's page shows it once the journey writes it.
    pending: bool = False


def raise_if_cancelled(exc: BaseException) -> None:
    """Raise CancelledError when the calling task is being cancelled. The SDK turns a cancelled
    update call into WorkflowUpdateRPCTimeoutOrCancelledError, which this client takes for a
    timeout: without this, a cancelled caller (a stopped gateway request, a bench stopped with
    Ctrl-C) would go on asking the server, sending again or describing the journey."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from exc


@dataclass
class RecruitmentApi:
    """Operations on one Temporal namespace and task queue.

    Reports and commands are signed with the key of their `reported_by` when `keyring` holds it
    (a service's client holds its own key only); a message that comes signed is sent as it is.
    """

    client: Client
    task_queue: str
    pseudonym_key: bytes
    keyring: Keyring = field(default_factory=Keyring)
    # The sanctions register (client/sanctions.py) every registration is checked against; the
    # entry points give it (starter.py, the gateway). Without one, only each journey checks it
    # (patch sanctions-in-journey), which refuses after the journey has started.
    sanctions: SanctionRegister | None = None
    # Ask the server to hand a new journey's first workflow task straight back to a worker that
    # runs in this process with this client (eager start): no trip through the task queue, so
    # the first task does not wait behind a backlog. Without such a worker with a free slot the
    # SDK sends a plain start (issue 17 item 3).
    eager_start: bool = True
    # Start each journey with its confirm_registration update (update-with-start) and answer the
    # registration only when the journey has judged its admission and written its first row: the
    # applicant hears the journey's own answer, and a burst of registrations cannot run ahead of
    # the journeys' first tasks (back-pressure; issue 17 item 3). One more action per journey,
    # and no eager start. False: a plain start, answered as soon as the server has it.
    confirm_registrations: bool = True
    # How long a registration waits for its confirmation before it is answered `pending`.
    confirm_within: float = 60.0
    # Updates this client waits on at once. Each waiting update is a long poll, and the server
    # refuses long polls past 1,200 per namespace ("namespace concurrent poller limit exceeded",
    # pollers of the workers included): at an overload the refused updates were retried with
    # back-off and piled up further (issue 17 item 6). Past this many, an update waits here.
    max_updates_in_flight: int = 400
    # The clock a signed message's `valid_until` runs from: None, the keyring's (this machine's).
    # A time-skipping test server's clock runs ahead of this machine's; its tests give its own.
    clock: Callable[[], Awaitable[datetime]] | None = None
    _updates_in_flight: asyncio.Semaphore | None = field(default=None, init=False, repr=False)
    _rules: dict[str, JourneyRules] = field(default_factory=dict, init=False, repr=False)
    # round id -> the check of this client's keys against the round's (check_round_keys)
    _key_checks: dict[str, asyncio.Future] = field(default_factory=dict, init=False, repr=False)
    _national: NationalRegister | None = field(default=None, init=False, repr=False)

    async def _sign(self, message: M, audience: str) -> M:
        """`message` signed for `audience` by the keyring, its validity running from `clock`."""
        return self.keyring.sign(message, audience, await self.clock() if self.clock else None)

    @property
    def national(self) -> NationalRegister:
        """The national rounds (client/national.py) on this client's namespace and task queue."""
        if self._national is None:
            self._national = NationalRegister(self.client, self.task_queue)
        return self._national

    def journey_rules(self, config: RoundConfig) -> JourneyRules:
        """The rules a journey carries, built once per round configuration, not per registration
        (and the gateway checks who may send what by them, gateway/service_api.py)."""
        digest = config.digest()
        if digest not in self._rules:
            self._rules[digest] = journey_rules(config)
        return self._rules[digest]

    async def create_round(self, path: Path, created_by: str) -> tuple[RoundConfig, bool]:
        """Start the round from its file; a second call with the same file creates nothing.

        The round records the ids of this client's keys: every later client must hold the same
        keys (check_round_keys)."""
        config = load_round_config(path)
        national_windows: dict[str, Any] = {}
        if config.national_round is not None:
            # The national round checks the schedule and enters the round in its register first:
            # a round it refuses never starts (a repeat of the join gets its first answer).
            try:
                await self.national.join(config, created_by)
                national = await self.national.config(config.national_round)
            except NationalRefusal as exc:
                raise RefusedError(str(exc)) from None
            # The round keeps its extensions within them (domain.national.beyond_national_window).
            national_windows = national.schedule.windows()
        start = RoundStart(
            config_toml=Path(path).read_text(encoding="utf-8"),
            config=config.model_dump(mode="json"),
            created_by=created_by,
            key_ids=await self.key_ids(),
            national_windows=national_windows,
        )
        try:
            await self.client.start_workflow(
                RecruitmentRound.run,
                start,
                id=round_workflow_id(config.round_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(ROUND_ID, config.round_id),
                        SearchAttributePair(WORKFLOW_KIND, "round"),
                        SearchAttributePair(RECRUITMENT_STAGE, "registration"),
                    ]
                ),
            )
            return config, True
        except WorkflowAlreadyStartedError:
            await self.check_round_keys(config.round_id)
            digest = await CONFIG_DIGEST.ask(
                self.client.get_workflow_handle(round_workflow_id(config.round_id))
            )
            if digest != config.digest():
                raise RefusedError(
                    f"round {config.round_id} already exists with different rules (digest {digest[:12]}); "
                    "change rules of a running round through a new rule_version, not by re-creating it"
                ) from None
            return config, False

    async def key_ids(self) -> dict[str, str]:
        """The public fingerprints of this client's keys, as a round records them: the payload
        key's (the id its codec writes next to every ciphertext) and the pseudonym key's."""
        ids = {"pseudonym": pseudonym_key_id(self.pseudonym_key)}
        [probe] = await self.client.data_converter.encode([""])
        if probe.metadata.get(KEY_ID):
            ids["payload"] = probe.metadata[KEY_ID].decode()
        return ids

    async def check_round_keys(self, round_id: str) -> None:
        """Refuse (RefusedError) a client whose keys are not the ones round `round_id` was created
        with, before it registers or sends anything: with another pseudonym key every applicant
        would get a second registration number, with another payload key nothing it sends could
        be read. Asked of the server once per round by this client; rounds created before their
        key ids were recorded are not checked."""
        check = self._key_checks.get(round_id)
        if check is None:
            check = asyncio.ensure_future(self._round_key_problem(round_id))
            self._key_checks[round_id] = check
        try:
            problem = await asyncio.shield(check)
        except BaseException:
            if self._key_checks.get(round_id) is check:
                del self._key_checks[round_id]  # no answer yet: ask again next time
            raise
        if problem:
            raise RefusedError(problem)

    async def _round_start_payloads(self, round_id: str) -> list:
        """The round's start input as recorded (its history's first event, which the round's
        code cannot change); RefusedError when there is no such round."""
        handle = self.client.get_workflow_handle(round_workflow_id(round_id))
        try:
            events = handle.fetch_history_events(page_size=1)
            first = await anext(aiter(events), None)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            first = None
        if first is None:
            raise UnknownError(
                f"round {round_id} does not exist; create it first (starter.py create-round)"
            )
        return list(first.workflow_execution_started_event_attributes.input.payloads)

    async def round_config(self, round_id: str) -> RoundConfig:
        """The rules round `round_id` was created with, read from its start input: what a
        reader without the operator's file (the gateway, an auditor) goes by."""
        payloads = await self._round_start_payloads(round_id)
        if not payloads:
            raise RefusedError(
                f"round {round_id} has no start input: it was not started by create-round"
            )
        [start] = await self.client.data_converter.decode(payloads[:1], [RoundStart])
        return RoundConfig.model_validate(start.config)

    async def _round_key_problem(self, round_id: str) -> str | None:
        """Why this client's keys are not the round's, read from the round's start input (its
        history's first event, which the round's code cannot change); None when they are."""
        payloads = await self._round_start_payloads(round_id)
        if not payloads:
            return f"round {round_id} has no start input: it was not started by create-round"
        mine = await self.key_ids()
        try:
            [start] = await self.client.data_converter.decode(payloads[:1], [RoundStart])
        except PayloadDecryptionError:
            theirs = payloads[0].metadata.get(KEY_ID, b"").decode(errors="replace")[:40]
            return (
                f"this client's payload key (key id {mine.get('payload', 'none')}) is not the one "
                f"round {round_id} was created with (key id {theirs or 'unknown'}): it cannot "
                "read the round. Set CASN_PAYLOAD_KEY to the round's key (after a rotation, list "
                "the round's key in CASN_PAYLOAD_PREVIOUS_KEYS)"
            )
        # A payload key id other than the round's is a rotation: this client decrypted the round
        # with the round's key, held among its previous keys (CASN_PAYLOAD_PREVIOUS_KEYS).
        recorded = start.key_ids.get("pseudonym")
        if recorded and recorded != mine["pseudonym"]:
            return (
                f"this client's pseudonym key (key id {mine['pseudonym']}) is not the one round "
                f"{round_id} was created with (key id {recorded}): it would give every applicant "
                "another registration number. Set CASN_PSEUDONYM_KEY to the round's key"
            )
        return None

    async def round_state(self, round_id: str) -> RoundState:
        """The round's phase and current schedule (with extensions)."""
        return await ROUND_STATE.ask(self.client.get_workflow_handle(round_workflow_id(round_id)))

    async def register(
        self,
        config: RoundConfig,
        reg: Registration,
        registered_by: str,
        now: datetime | None = None,
        schedule_closes: datetime | None = None,
        submitted_by: str = "",
    ) -> RegistrationResult:
        """Check and register one applicant; a repeat of the same data is not a second registration.
        `submitted_by`: who asked `registered_by` to register it (the gateway's caller), recorded
        in the signed start."""
        await self.check_round_keys(config.round_id)
        now = now or datetime.now(UTC)
        formasi = config.formasi_by_code(reg.formasi_code)
        applied_on = now.astimezone(ZoneInfo(config.timezone)).date()
        refusals = registration_refusals(
            config, reg, now, schedule_closes, clock_margin=CLOCK_MARGIN
        )
        applicant_id = applicant_id_for(self.pseudonym_key, config.round_id, reg.nik)
        subject = sanction_subject(self.pseudonym_key, reg.nik)
        if self.sanctions is not None:
            barred = await self.sanctions.refusal(config, subject, reg.nik, applied_on)
            if barred is not None:
                refusals.append(barred)
        if refusals:
            return RegistrationResult("refused", applicant_id, refusals)
        assert formasi is not None
        national_applicant = None
        national_claim = ""  # the claim's workflow id, which the journey checks
        if config.national_round is not None:
            # One NIK, one formasi nationwide: claimed before the journey starts (client/national.py).
            national_applicant = national_applicant_id(
                self.pseudonym_key, config.national_round, reg.nik
            )
            try:
                problem = await self.national.claim(
                    config, applicant_id, formasi.code, national_applicant, registration_digest(reg)
                )
            except NationalRefusal as exc:
                raise RefusedError(str(exc)) from None
            if problem is not None:
                refusal = Refusal(field="nik", value=mask_nik(reg.nik), reason=problem)
                return RegistrationResult("refused", applicant_id, [refusal])
            national_claim = claim_workflow_id(config.national_round, national_applicant)
        start = JourneyStart(
            round_id=config.round_id,
            applicant_id=applicant_id,
            registration=reg,
            formasi=formasi,
            rules=self.journey_rules(config),
            registered_by=registered_by,
            tmt=config.schedule.tmt,
            engine_version=ENGINE_VERSION,
            applied_on=applied_on,
            sanction_key=subject,
            national_claim=national_claim,
            candidate_code=candidate_code(self.pseudonym_key, config.round_id, applicant_id),
            submitted_by=submitted_by,
        )
        workflow_id = journey_workflow_id(config.round_id, applicant_id)
        start = await self._sign(start, workflow_id)  # by registered_by, in a round with keys
        # The journey's start, the same whether it is confirmed or plain.
        options: dict[str, Any] = {
            "id": workflow_id,
            "task_queue": self.task_queue,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
            "search_attributes": TypedSearchAttributes(
                [
                    SearchAttributePair(ROUND_ID, config.round_id),
                    SearchAttributePair(FORMASI_CODE, formasi.code),
                    SearchAttributePair(WORKFLOW_KIND, "journey"),
                ]
            ),
        }
        try:
            try:
                if not self.confirm_registrations:
                    await self.client.start_workflow(
                        ApplicantJourney.run, start, request_eager_start=self.eager_start, **options
                    )
                    return RegistrationResult("registered", applicant_id)
                result = await self._start_confirmed(start, reg, options)
            except (NotTaken, RPCError):
                # No journey took the claim yet: the claim is asked to look for it now and goes if
                # it finds none, or the NIK would be held nationwide by a registration that is
                # nowhere until the claim's grace is over. Not ended from here: a start that
                # failed on this side may still land, and its journey is admitted by the claim.
                if national_applicant is not None:
                    with contextlib.suppress(RPCError):
                        if await self._not_started(workflow_id):
                            await self.national.look_for_journey(
                                config, applicant_id, national_applicant
                            )
                raise
            if result.status == "refused" and national_applicant is not None:
                # Refused by its journey: the NIK's national claim goes (client/national.py).
                await self.national.release(config, applicant_id, national_applicant)
            return result
        except WorkflowAlreadyStartedError:
            handle = self.client.get_workflow_handle(workflow_id)
            try:
                existing = await REGISTRATION_DIGEST.ask(handle)
                repeat = existing == registration_digest(reg)
                # Another registration of a national round's NIK reads the journey too: a claim
                # this try took for it must go if that journey refused its own (review of 12-07).
                read = repeat or national_applicant is not None
                state = await JOURNEY_STATE.ask(handle) if read else None
            except WorkflowQueryFailedError:
                # The worker could not answer for the journey (it could not replay it): which of
                # the two answers below is true cannot be told now. Nothing was recorded.
                raise RefusedError(
                    f"registration {applicant_id} in round {config.round_id}: this NIK already has "
                    "a journey in the round, which cannot be read now to tell a repeat of its "
                    "registration from another; send the same registration again later"
                ) from None
            if state is not None and not repeat:
                # Another registration of the NIK in this round, whose journey refused the first:
                # the claim taken for this try is released, or, finding that refused journey
                # after its grace, it held the NIK nationwide until the national SKD closed.
                if national_applicant is not None and registration_refusal(state):
                    await self.national.release(config, applicant_id, national_applicant)
                state = None
            if state is not None:
                # A repeat of a registration the journey refused is refused again, as it was,
                # and releases the claim a lost answer may have left (release is idempotent).
                refused = registration_refusal(state)
                if refused:
                    if national_applicant is not None:
                        await self.national.release(config, applicant_id, national_applicant)
                    refusal = Refusal(field="registration", value=applicant_id, reason=refused)
                    return RegistrationResult("refused", applicant_id, [refusal])
                return RegistrationResult("repeat", applicant_id)
            return RegistrationResult(
                "refused",
                applicant_id,
                [
                    Refusal(
                        field="nik",
                        value=mask_nik(reg.nik),
                        reason=f"already registered in round {config.round_id} as {applicant_id}; "
                        "one NIK may register once per round",
                    )
                ],
            )

    async def _start_confirmed(
        self, start: JourneyStart, reg: Registration, options: dict[str, Any]
    ) -> RegistrationResult:
        """Start the journey with confirm_registration (update-with-start) and answer with what
        the journey made of it once its first row is written. The start fails, as a plain start
        does, when the journey exists: the caller reads it (a repeat, or another person's data)."""
        applicant_id, workflow_id = start.applicant_id, options["id"]
        operation = WithStartWorkflowOperation(
            ApplicantJourney.run, start, id_conflict_policy=WorkflowIDConflictPolicy.FAIL, **options
        )
        confirm = RegistrationConfirm(registration_digest=registration_digest(reg))
        try:
            async with self._update_slots(), asyncio.timeout(self.confirm_within):
                try:
                    outcome = await self.client.execute_update_with_start_workflow(
                        CONFIRM_REGISTRATION.name,
                        confirm,
                        start_workflow_operation=operation,
                        result_type=RegistrationOutcome,
                    )
                except BaseException as exc:
                    # The SDK keeps the start's failure for workflow_handle() (always settled by
                    # now): read it, or asyncio logs it as an exception never retrieved.
                    with contextlib.suppress(BaseException):
                        await operation.workflow_handle()
                    if not (isinstance(exc, RPCError) and _first_task_failed(exc)):
                        raise
                    # The journey started, but the server dropped the confirmation with its
                    # first workflow task, which failed: a message arrived while the journey
                    # ended in that task (UnhandledCommand; the worker runs the task again).
                    outcome = await self._confirm_again(workflow_id, applicant_id, confirm)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise RefusedError(
                cause.message if isinstance(cause, ApplicationError) else str(cause)
            ) from None
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            raise_if_cancelled(exc)
            # Not answered in time (a backlog, or the read model down): the start may have been
            # taken. The journey exists or it does not; either way the caller is told which.
            if await self._not_started(workflow_id):
                raise NotTaken(
                    f"registration {applicant_id} was not taken within {self.confirm_within:.0f} s"
                    " (the engine is busy); send it again"
                ) from None
            return RegistrationResult("registered", applicant_id, pending=True)
        if outcome.refused:
            refusal = Refusal(field="registration", value=applicant_id, reason=outcome.refused)
            return RegistrationResult("refused", applicant_id, [refusal])
        return RegistrationResult("registered", applicant_id)

    async def journey_started(self, round_id: str, applicant_id: str) -> bool:
        """Whether the applicant's journey exists in the round (asked of the server, no worker);
        an RPCError when the server cannot say."""
        return not await self._not_started(journey_workflow_id(round_id, applicant_id))

    async def _not_started(self, workflow_id: str) -> bool:
        """Whether no journey of that id exists (the server says NOT_FOUND); an RPCError else."""
        try:
            await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return True
        return False

    async def _confirm_again(
        self, workflow_id: str, confirm_for: str, confirm: RegistrationConfirm
    ) -> RegistrationOutcome:
        """Ask applicant `confirm_for`'s started journey for its registration's confirmation
        again; one that has ended meanwhile (refused, its first task run again) answers by its
        state."""
        handle = self.client.get_workflow_handle(workflow_id)
        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            try:
                return await CONFIRM_REGISTRATION.execute(handle, confirm)
            except RPCError:
                status = (await handle.describe()).status
                if status == WorkflowExecutionStatus.COMPLETED:
                    state = await _ended_state(handle)
                    if state is None:
                        raise RefusedError(
                            f"registration {confirm_for} was taken and its journey has ended, but "
                            "its outcome cannot be read now; send it again to be told"
                        ) from None
                    return RegistrationOutcome(
                        applicant_id=state.applicant_id,
                        stage=state.stage,
                        refused=registration_refusal(state),
                    )
                if attempt == UPDATE_ATTEMPTS:
                    raise
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def report(
        self, round_id: str, applicant_id: str, message: Report, *, tell_reason: bool = True
    ) -> Ack:
        """Send one report to an applicant's journey (the update its kind travels by); raises
        RefusedError with the engine's reason. A DIS for a journey that has ended, and a
        dismissal, go to the applicant's aftermath instead (report_after_end). A journey that
        has ended is named with its code, and with the reason it recorded unless `tell_reason`
        is False (a service's report through the gateway: a DIS's finding or a failed health
        gate is not every reporter's to read)."""
        if isinstance(message, Dismissal) or (
            isinstance(message, Disqualification)
            and await self._journey_status(
                round_id,
                applicant_id,
                f"report {message.report_id} for applicant {applicant_id} in round {round_id}",
            )
            == WorkflowExecutionStatus.COMPLETED
        ):
            return await self.report_after_end(round_id, applicant_id, message)
        update = report_update(message)
        async with _submitted(update.name.removeprefix("report_")):
            await self.check_round_keys(round_id)
            handle = self.client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
            return await self._update(
                handle,
                update,
                await self._sign(message, journey_workflow_id(round_id, applicant_id)),
                journey=True,
                subject=f"report {message.report_id} for applicant {applicant_id} in round {round_id}",
                tell_reason=tell_reason,
            )

    async def submit(
        self, round_id: str, applicant_id: str, message: Report, *, tell_reason: bool = True
    ) -> Ack:
        """`report`, told apart from a repeat by what the engine holds: when the journey (or the
        applicant's aftermath) already answered this very report (its update id, a digest of
        the content and signature: `update_id`), its first answer marked `repeat`, and nothing
        is sent; else the report is sent and its answer is new. No clock is compared: the
        sender's and the server's may be minutes apart."""
        earlier = await self._earlier_answer(round_id, applicant_id, message)
        if earlier is None:
            return await self.report(round_id, applicant_id, message, tell_reason=tell_reason)
        if earlier.refused:  # a refusal taken into the record is refused again, as report() does
            raise RefusedError(
                f"report {message.report_id} for applicant {applicant_id} in round {round_id}: "
                f"{earlier.effect} (the refusal is recorded)"
            )
        return earlier.model_copy(update={"repeat": True})

    async def _earlier_answer(
        self, round_id: str, applicant_id: str, message: Report
    ) -> Ack | None:
        """The answer the engine gave this very report before, or None (never sent, refused
        by a validator, still in flight, or the workflow is not there: `report` says which)."""
        journey = journey_workflow_id(round_id, applicant_id)
        # The id is the content's (update_id): the same whether or when the message is signed.
        update = update_id(message, self.pseudonym_key)
        targets = [journey]
        if isinstance(message, Disqualification | Dismissal):
            targets.append(aftermath_workflow_id(round_id, applicant_id))
        for workflow_id in targets:
            request = PollWorkflowExecutionUpdateRequest(
                namespace=self.client.namespace,
                update_ref=UpdateRef(
                    workflow_execution=WorkflowExecution(workflow_id=workflow_id),
                    update_id=update,
                ),
                identity=self.client.identity,
                # Not waiting: an update the server does not know is NOT_FOUND at once.
                wait_policy=WaitPolicy(
                    lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_UNSPECIFIED
                ),
            )
            try:
                answer = await self.client.workflow_service.poll_workflow_execution_update(
                    request, retry=True, timeout=EARLIER_ANSWER_TIMEOUT
                )
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    continue  # no such update (or workflow) there
                raise
            if answer.HasField("outcome") and answer.outcome.HasField("success"):
                [ack] = await self.client.data_converter.decode(
                    answer.outcome.success.payloads, [Ack]
                )
                return ack
        return None

    async def report_after_end(
        self, round_id: str, applicant_id: str, message: Disqualification | Dismissal
    ) -> Ack:
        """Send a DIS or a dismissal to the applicant's aftermath (workflows/aftermath.py),
        starting it with the report if it is not running (update-with-start). Signed for the
        journey, like every report about the applicant. An aftermath still reading how the
        journey ended refuses with AftermathNotReady and records nothing: sent again shortly."""
        async with _submitted(_AFTER_END_UPDATE[type(message)].name):
            return await self._report_after_end(round_id, applicant_id, message)

    async def _report_after_end(
        self, round_id: str, applicant_id: str, message: Disqualification | Dismissal
    ) -> Ack:
        await self.check_round_keys(round_id)
        subject = f"report {message.report_id} for applicant {applicant_id} in round {round_id}"
        if isinstance(message, Dismissal):
            status = await self._journey_status(round_id, applicant_id, subject)
            if status != WorkflowExecutionStatus.COMPLETED:
                raise RefusedError(
                    f"{subject}: the journey has not ended ({status.name.lower() if status else '?'});"
                    " a dismissal is of an appointed PNS after the journey ended (during "
                    "probation the Latsar report decides)"
                )
        signed = await self._sign(message, journey_workflow_id(round_id, applicant_id))
        update = _AFTER_END_UPDATE[type(message)]
        for attempt in range(1, AFTERMATH_ATTEMPTS + 1):
            start = WithStartWorkflowOperation(
                ApplicantAftermath.run,
                AftermathStart(round_id=round_id, applicant_id=applicant_id),
                id=aftermath_workflow_id(round_id, applicant_id),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(ROUND_ID, round_id),
                        SearchAttributePair(WORKFLOW_KIND, "aftermath"),
                    ]
                ),
            )
            try:
                return await self.client.execute_update_with_start_workflow(
                    update.name,
                    signed,
                    start_workflow_operation=start,
                    # The same report sent again is the same update (as to a journey), so that
                    # submit() finds its first answer.
                    id=update_id(signed, self.pseudonym_key),
                    result_type=Ack,
                )
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                if isinstance(cause, ApplicationError) and cause.type == NOT_READY:
                    await asyncio.sleep(min(0.1 * attempt, 1.0))
                    continue
                if isinstance(cause, ApplicationError) and cause.type == KEYS_STALE:
                    await self._read_round_again(aftermath_workflow_id(round_id, applicant_id))
                    continue
                raise RefusedError(
                    cause.message if isinstance(cause, ApplicationError) else str(cause)
                ) from None
            except RPCError as exc:
                # An aftermath that could take no report closed meanwhile: the next one starts.
                if attempt < AFTERMATH_ATTEMPTS:
                    await asyncio.sleep(min(0.1 * attempt, 1.0))
                    continue
                raise RefusedError(f"{subject}: {exc.message}") from None
        raise RefusedError(f"{subject}: the applicant's aftermath did not become ready; send again")

    async def _read_round_again(self, workflow_id: str) -> None:
        """Ask an aftermath whose reading of the round's keys is too old to judge a report by to
        read them again (workflows/aftermath.py). Its refusal (it is reading them now, or read
        them a moment ago) is no matter: the report is sent again either way; a round it cannot read
        now is the report's refusal (RefusedError)."""
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            await handle.execute_update(READ_ROUND_AGAIN, result_type=str)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == ROUND_UNREADABLE:
                raise RefusedError(cause.message) from None
            await asyncio.sleep(0.2)

    async def _journey_status(
        self, round_id: str, applicant_id: str, subject: str
    ) -> WorkflowExecutionStatus | None:
        """The journey's status; UnknownError when there is no such applicant."""
        handle = self.client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
        try:
            return (await handle.describe()).status
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            raise UnknownError(f"{subject}: no such applicant in this round") from None

    def _update_slots(self) -> asyncio.Semaphore:
        """The slots of max_updates_in_flight: every update this client waits on takes one."""
        if self._updates_in_flight is None:
            if self.max_updates_in_flight < 1:
                raise ValueError(
                    f"max_updates_in_flight {self.max_updates_in_flight} must be at least 1"
                )
            self._updates_in_flight = asyncio.Semaphore(self.max_updates_in_flight)
        return self._updates_in_flight

    async def _update(
        self,
        handle,
        update: Update[Any, Ack],
        message: Report,
        *,
        journey: bool,
        subject: str,
        tell_reason: bool = True,
    ) -> Ack:
        """Execute an update; a refusal raises RefusedError, a lost update is sent again."""
        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            try:
                async with self._update_slots():
                    ack = await update.execute(
                        handle, message, id=update_id(message, self.pseudonym_key)
                    )
                if ack.refused:  # taken into the record as refused (a conflict of interest)
                    raise RefusedError(f"{subject}: {ack.effect} (the refusal is recorded)")
                return ack
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                raise RefusedError(
                    cause.message if isinstance(cause, ApplicationError) else str(cause)
                ) from None
            except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
                raise_if_cancelled(exc)
                # The call timed out (a busy server or worker at a deadline peak): the update may
                # or may not have been taken. The same message again is safe, since its report_id
                # makes it idempotent; after the last attempt the caller hears that it timed out.
                if attempt < UPDATE_ATTEMPTS:
                    await asyncio.sleep(0.5 * attempt)
                    continue
                raise
            except RPCError as exc:
                try:
                    why = await self._why_not_running(handle, journey, tell_reason)
                except UnknownError as unknown:
                    raise UnknownError(f"{subject}: {unknown}") from None
                if why is None and attempt < UPDATE_ATTEMPTS:
                    # The workflow is running but the update was lost with a workflow task the
                    # server rejected (e.g. a signal raced the workflow's completion). Sending the
                    # same message again is safe: its report_id makes it idempotent.
                    await asyncio.sleep(0.2 * attempt)
                    continue
                raise RefusedError(f"{subject}: {why or exc.message}") from None
        raise AssertionError("unreachable")

    async def _why_not_running(self, handle, journey: bool, tell_reason: bool = True) -> str | None:
        """Why an update could not reach a workflow (ended with its outcome: the code, and the
        recorded reason when `tell_reason`), None if it is running; UnknownError when there is
        no such workflow."""
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            raise UnknownError(
                "no such applicant in this round" if journey else "no such round"
            ) from None
        if description.status == WorkflowExecutionStatus.COMPLETED and journey:
            state = await _ended_state(handle)
            if state is None:
                # That it ended is known: the sender hears that, not the query's failure.
                return "the journey has ended"
            code = state.terminal.value if state.terminal else "?"
            if not tell_reason:
                return f"the journey has ended ({code})"
            return f"the journey has ended ({code}: {state.terminal_reason})"
        if description.status is not None and description.status != WorkflowExecutionStatus.RUNNING:
            return f"the workflow is {description.status.name.lower()}"
        return None

    async def command(self, round_id: str, message: Report) -> Ack:
        """Send an operator command (ExtendWindow, CloseWindow, MoveTmt) to the round."""
        update = command_update(message)
        async with _submitted(update.name):
            await self.check_round_keys(round_id)
            handle = self.client.get_workflow_handle(round_workflow_id(round_id))
            return await self._update(
                handle,
                update,
                await self._sign(message, round_workflow_id(round_id)),
                journey=False,
                subject=f"command {message.report_id} to round {round_id}",
            )


def update_id(message: Report, key: bytes) -> str:
    """The id a report's update travels under: a keyed digest of its content (the report_id and
    the fields; not the signature or its validity, so a report signed again is the same update).

    The same report sent again (this client's retry after a time-out, a service sending twice) is
    the same update, which the server answers with its first outcome: no second pair of events in
    the history, no second engine action, no second validation. The same report_id with other
    content is another update, which the journey's ledger refuses as a conflict, as before. The
    id is in clear on the server (the payloads are not): keyed with the client's pseudonym key, it
    says nothing of a report_id a service may have built from personal data."""
    # Under a label of its own, as the key's other uses (a NIK's number, the key's fingerprint).
    mac = hmac.new(key, b"casn-update-id\x00" + message.content_digest().encode(), hashlib.sha256)
    return f"report-{mac.hexdigest()[:40]}"


async def _ended_state(handle) -> JourneyState | None:
    """An ended journey's state, or None when it cannot be read now: the query replays the
    journey on a worker, and none may be running, or one past the SDK's deadlock limit under load
    cannot answer."""
    try:
        return await JOURNEY_STATE.ask(handle)
    except (WorkflowQueryFailedError, RPCError):
        return None


def _first_task_failed(exc: RPCError) -> bool:
    """Whether an update-with-start failed because the workflow's first task failed (the
    server's WorkflowNotReadyFailure): the workflow was started, its update was not taken."""
    failure = MultiOperationExecutionFailure()
    details = exc.grpc_status.details
    if not details or not details[0].Unpack(failure):
        return False
    return any(
        detail.Is(WorkflowNotReadyFailure.DESCRIPTOR)
        for status in failure.statuses
        for detail in status.details
    )


@contextlib.asynccontextmanager
async def _submitted(kind: str) -> AsyncIterator[None]:
    """Count a report or command by its result and time its acknowledgement (runtime/metrics.py):
    accepted when the engine acknowledged it, refused when it said no, failed otherwise."""
    started = time.perf_counter()
    result = "failed"
    try:
        yield
        result = "accepted"
    except RefusedError:
        result = "refused"
        raise
    finally:
        record_report(kind, result, time.perf_counter() - started)
