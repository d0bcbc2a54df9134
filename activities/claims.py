"""A journey of an instansi round checks the NIK's national claim it was started with (patch
national-claim-in-journey): "one NIK, one formasi nationwide" decided where the journey is, not
only by the registrar that claimed (client/national.py).

The claim is read from Temporal: its status (a released claim is terminated with the reason
"released: ...", a swept one failed; a claim terminated otherwise, as the server does at its history
limit, still holds)
and its start input, the first event of its history, which nobody can change once recorded. A
journey that admits its registration tells the claim so (signal claim_taken), and a claim past its
grace looks for its journey (`find_claimed_journey`, patch claim-swept).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHistoryEventFilterType,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from domain.messages import JourneyStart
from domain.national import (
    CHECK_CLAIM,
    CLAIM_TAKEN,
    FIND_CLAIMED_JOURNEY,
    LOOK_FOR_JOURNEY,
    RELEASE_CLAIM,
    TAKE_CLAIM,
    ClaimCheck,
    ClaimedJourney,
    ClaimRelease,
    ClaimStart,
    ClaimTaken,
    ClaimVerdict,
    JourneyNotStarted,
    JourneyOfClaim,
    held_elsewhere,
)

RPC_TIMEOUT = timedelta(seconds=10)  # within the local activity's 15 s
M = TypeVar("M")

# A claim that is held, or held to its end (the national SKD closed: nobody registers after it).
HELD = (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED)
# The reason a journey or a registrar terminates a claim with when it releases it. A termination
# with another reason is no release: the server terminates a run whose history passed its limit
# (50 MB, reached by anyone who can send the claim signals of nearly 2 MB), and that claim still
# holds its NIK.
RELEASE_REASON = "released: "


async def started_with(
    client: Client, workflow_id: str, run_id: str | None = None
) -> list[Payload] | None:
    """A workflow's start input as recorded (its history's first event), still encoded; the latest
    run's unless `run_id` names one. None when there is no such workflow."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        events = handle.fetch_history_events(page_size=1, rpc_timeout=RPC_TIMEOUT)
        first = await anext(aiter(events), None)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return None
    if first is None:
        return None
    return list(first.workflow_execution_started_event_attributes.input.payloads)


async def first_input(
    client: Client, workflow_id: str, model: type[M], run_id: str | None = None
) -> M | None:
    """A workflow's start input as recorded (its history's first event), decoded with the client's
    codec; the latest run's unless `run_id` names one. None when there is no such workflow."""
    payloads = await started_with(client, workflow_id, run_id)
    if payloads is None:
        return None
    decoded: list[Any] = await client.data_converter.decode(payloads[:1], [model])
    return decoded[0]


async def claim_released(
    client: Client, workflow_id: str, run_id: str, status: WorkflowExecutionStatus | None
) -> bool:
    """Whether a claim's run that ended with `status` let its NIK go: it released itself (failed,
    ClaimReleased: the only way the claim's code fails), or its journey or registrar released it
    (terminated with RELEASE_REASON, read from the run's last event). A run held to its end
    (completed), cancelled, timed out or terminated for another reason (the server's, at its
    history limit) still holds the NIK: an ending nobody decided is not a release."""
    if status == WorkflowExecutionStatus.FAILED:
        return True
    if status != WorkflowExecutionStatus.TERMINATED:
        return False
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    events = handle.fetch_history_events(
        event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT, rpc_timeout=RPC_TIMEOUT
    )
    last = await anext(aiter(events), None)
    if last is None or not last.HasField("workflow_execution_terminated_event_attributes"):
        return False
    return last.workflow_execution_terminated_event_attributes.reason.startswith(RELEASE_REASON)


async def _described(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    """The claim's latest run as the server describes it, or None when there is no claim."""
    try:
        return await client.get_workflow_handle(workflow_id).describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return None


async def ended_holding(client: Client, workflow_id: str) -> ClaimStart | None:
    """The start of a NIK's claim whose latest run ended without letting the NIK go (terminated by
    the server, cancelled, timed out: `claim_released`), or None. The engine would start a new
    claim over such a run (its id reuse policy allows one after any failure), so the registrar
    asks this first."""
    description = await _described(client, workflow_id)
    if description is None:
        return None
    if description.status in HELD or await claim_released(
        client, workflow_id, description.run_id, description.status
    ):
        return None  # held (the engine refuses a second start) or let go
    return await first_input(client, workflow_id, ClaimStart, description.run_id)


async def _held_by(
    client: Client, workflow_id: str, round_id: str, applicant_id: str
) -> tuple[str, ClaimStart] | None:
    """The running claim's run id and start when it is this round's registration `applicant_id`;
    None when there is no claim, it has ended, or it is another round's or registration's."""
    description = await _described(client, workflow_id)
    if description is None:
        return None
    if description.status != WorkflowExecutionStatus.RUNNING:
        return None
    held = await first_input(client, workflow_id, ClaimStart, description.run_id)
    if held is None or held.round_id != round_id or held.applicant_id != applicant_id:
        return None
    return description.run_id, held


async def release_claim(client: Client, workflow_id: str, round_id: str, applicant_id: str) -> bool:
    """Release a NIK's claim when it is this round's registration `applicant_id`, which was
    refused: the NIK may then register in another instansi. True when a claim was released.

    The claim is ended by termination, with the round in the reason, so its history says who
    held it and why it ended; the NIK's next claim is a new run of the same id. A claim of
    another round or registration, or one already ended, is left as it is."""
    found = await _held_by(client, workflow_id, round_id, applicant_id)
    if found is None:
        return False
    run_id, _ = found
    try:
        await client.get_workflow_handle(workflow_id, run_id=run_id).terminate(
            reason=f"{RELEASE_REASON}round {round_id} refused registration {applicant_id}",
            rpc_timeout=RPC_TIMEOUT,
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return False  # it ended meanwhile
    return True


async def look_for_journey(
    client: Client, workflow_id: str, round_id: str, applicant_id: str
) -> bool:
    """Ask a NIK's claim to look for its journey now, when it is this round's registration
    `applicant_id` and the registrar's start of that journey failed on its side (patch
    claim-looks-when-asked). True when a claim was asked.

    Not a release: the start may still be on its way to the server, and a journey that lands is
    admitted by a claim that is still held (it tells the claim, which looks again). The claim
    releases itself only when its look finds no journey. A claim without a sweep (taken before
    claim-swept, held to its end) cannot look: it is released as before."""
    found = await _held_by(client, workflow_id, round_id, applicant_id)
    if found is None:
        return False
    run_id, held = found
    if held.sweep_after is None:
        return await release_claim(client, workflow_id, round_id, applicant_id)
    run = client.get_workflow_handle(workflow_id, run_id=run_id)
    asked = JourneyNotStarted(round_id=round_id, applicant_id=applicant_id)
    try:
        return await LOOK_FOR_JOURNEY.execute(run, asked, rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return False  # it ended meanwhile
    except WorkflowUpdateFailedError:
        return False  # it ended before it took the request
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        return False  # no worker took it in time: the claim looks at its grace all the same


class ClaimReader:
    """The journey's look at its NIK's national claim (local activities of its first task): is it
    this registration's, and its release when the journey refuses the registration."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=CHECK_CLAIM.name)
    async def check_claim(self, check: ClaimCheck) -> ClaimVerdict:
        """Whether the claim is this registration's (an empty verdict), another registration's
        (`refusal`), or neither (`problem`). Safe to repeat."""
        handle = self.client.get_workflow_handle(check.workflow_id)
        try:
            description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return ClaimVerdict(problem=f"no national claim {check.workflow_id} exists")
        status = description.status
        claim = await first_input(self.client, check.workflow_id, ClaimStart, description.run_id)
        if claim is None or claim.national_id != check.national_id:
            return ClaimVerdict(
                problem=f"{check.workflow_id} is no claim of national round {check.national_id}"
            )
        if (claim.round_id, claim.applicant_id) != (check.round_id, check.applicant_id):
            return ClaimVerdict(refusal=held_elsewhere(claim))
        if status not in HELD and await claim_released(
            self.client, check.workflow_id, description.run_id, status
        ):
            name = status.name.lower() if status is not None else "unknown"
            return ClaimVerdict(problem=f"the national claim {check.workflow_id} ended ({name})")
        if claim.registration_digest != check.registration_digest:
            return ClaimVerdict(
                problem=f"the national claim {check.workflow_id} is for other registration data"
            )
        if claim.sweep_after is not None and status == WorkflowExecutionStatus.RUNNING:
            # A claim that sweeps itself is told, in its own run, that its journey took it: the
            # signal is recorded before that run ends or not at all, so the claim cannot be swept
            # once this journey is admitted. A run that ended meanwhile (swept) admits nobody.
            taken = ClaimTaken(round_id=check.round_id, applicant_id=check.applicant_id)
            run = self.client.get_workflow_handle(check.workflow_id, run_id=description.run_id)
            try:
                await run.signal(CLAIM_TAKEN.name, taken, rpc_timeout=RPC_TIMEOUT)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return self._ended(check)
                if exc.status != RPCStatusCode.INVALID_ARGUMENT:
                    raise
                # The run takes no more signals (its 10,000 spent, by anyone who reaches
                # Temporal): the same word as an update, which nobody else can use up.
                try:
                    await TAKE_CLAIM.execute(run, taken, rpc_timeout=RPC_TIMEOUT)
                except RPCError as again:
                    if again.status != RPCStatusCode.NOT_FOUND:
                        raise
                    return self._ended(check)
                except WorkflowUpdateFailedError:
                    return self._ended(check)  # the run ended before it took the update
        return ClaimVerdict()

    @staticmethod
    def _ended(check: ClaimCheck) -> ClaimVerdict:
        return ClaimVerdict(
            problem=f"the national claim {check.workflow_id} ended (no journey took it in time)"
        )

    @activity.defn(name=FIND_CLAIMED_JOURNEY.name)
    async def find_claimed_journey(self, lookup: ClaimedJourney) -> JourneyOfClaim:
        """Whether the claim's journey exists, in any state, and was started with this claim (its
        signed start names it): what a claim past its grace asks before it releases itself."""
        payloads = await started_with(self.client, lookup.journey_workflow_id)
        if payloads is None:
            return JourneyOfClaim(found=False, detail="no such journey")
        # Anyone who reaches Temporal can start a workflow at the journey's id before a registrar
        # does: a start that does not decode to a journey's start (plaintext, another key, no
        # input, another value) is no journey of this claim. Raised, it would fail this look on
        # every attempt and hold the claim, its pauses growing, until the national SKD.
        if not payloads:
            return JourneyOfClaim(found=False, detail="its start has no input")
        try:
            decoded: list[Any] = await self.client.data_converter.decode(
                payloads[:1], [JourneyStart]
            )
        except ValueError as exc:  # the codec's refusal, or pydantic's: no journey start
            return JourneyOfClaim(
                found=False, detail=f"its start is no journey start ({type(exc).__name__})"
            )
        start = decoded[0]
        if start.national_claim != lookup.claim_workflow_id:
            return JourneyOfClaim(found=False, detail="its start names another claim")
        return JourneyOfClaim(found=True)

    @activity.defn(name=RELEASE_CLAIM.name)
    async def release_claim(self, release: ClaimRelease) -> bool:
        """Release the claim if it is still this registration's and held (safe to repeat)."""
        return await release_claim(
            self.client, release.workflow_id, release.round_id, release.applicant_id
        )
