"""The national round: the shared schedule instansi rounds join, and one claim per NIK.

`NationalRound` (id `{national}/national`) holds the national schedule and the register of the
instansi rounds that joined; a join is an update, checked in its validator (the schedule agrees,
the register is open, one round per instansi), so a refused join leaves nothing in the history.
`NationalClaim` (id `{national}/claim/{national pseudonym}`) is one NIK's registration in one
instansi round: the engine starts one workflow per id, so a second registration of the NIK in any
instansi finds the first claim recorded and is refused (client/national.py). It holds open until
the national SKD closes (a closed workflow's id could be reused once the namespace's retention has
passed), unless no journey took it within the national round's `claim_grace` (patch claim-swept):
then it releases itself, so a registrar that stopped between the claim and the journey's start
does not hold the NIK nationwide for nothing. Whether a journey took it is decided by looking for
the journey, not by what the claim is told (patch claim-looks-again). A registrar whose start of
the journey failed on its side asks the claim to look at once (patch claim-looks-when-asked)
rather than ending it: the start may still land, and its journey be admitted.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.national import (
        CLAIM_RELEASED,
        CLAIM_TAKEN,
        FIND_CLAIMED_JOURNEY,
        LOOK_FOR_JOURNEY,
        MAX_ROUNDS,
        TAKE_CLAIM,
        ClaimedJourney,
        ClaimStart,
        ClaimTaken,
        JoinAck,
        JoinedRound,
        JourneyNotStarted,
        NationalStart,
        NationalState,
        RoundJoin,
        claim_ends_at,
        parse_national_config,
        schedule_disagreement,
        swept,
    )
    from workflows.calls import run_local_activity_until_done, signal_message
    from workflows.ids import journey_workflow_id
    from workflows.versions import CLAIM_LOOKS_AGAIN, CLAIM_LOOKS_WHEN_ASKED, CLAIM_SWEPT

JOIN_REFUSED = "JoinRefused"
# The sweep's look at the journey: two reads of the server, within activities/claims.py's 10 s.
CLAIM_READ_TIMEOUT = timedelta(seconds=15)


@workflow.defn
class NationalRound:
    """The national schedule and the register of the instansi rounds that joined it."""

    @workflow.init
    def __init__(self, start: NationalStart) -> None:
        self.config = parse_national_config(start.config, "national round configuration")
        self.rounds: dict[str, JoinedRound] = {}
        self.digests: dict[str, str] = {}  # round id -> the rules' digest it joined with
        self.phase = "registration"

    @workflow.run
    async def run(self, start: NationalStart) -> NationalState:
        # Instansi rounds join until the national registration closes; their own rounds run on.
        remaining = self.config.schedule.registration.closes - workflow.now()
        if remaining > timedelta(0):
            await workflow.sleep(remaining)
        self.phase = "closed"
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.logger.info(
            "national round %s: registration closed with %d instansi rounds",
            self.config.national_id,
            len(self.rounds),
        )
        return self.state()

    @workflow.update
    def join_round(self, join: RoundJoin) -> JoinAck:
        """Record an instansi round in the register; a repeat gets its first answer."""
        if join.round_id not in self.rounds:
            self.rounds[join.round_id] = JoinedRound(
                round_id=join.round_id,
                instansi=join.instansi,
                instansi_kind=join.instansi_kind,
                formasi=join.formasi,
                seats=join.seats,
                joined_at=workflow.now(),
            )
            self.digests[join.round_id] = join.rules_digest
        joined = self.rounds[join.round_id]
        return JoinAck(
            national_id=self.config.national_id,
            round_id=join.round_id,
            joined_at=joined.joined_at,
            rounds=list(self.rounds).index(join.round_id) + 1,
        )

    @join_round.validator
    def validate_join_round(self, join: RoundJoin) -> None:
        national = self.config.national_id
        where = f"round {join.round_id} joining national round {national}"
        known = self.digests.get(join.round_id)
        if known is not None:
            if known != join.rules_digest:
                self._refuse(
                    f"{where}: it joined already with other rules (digest {known[:12]}); a "
                    "round's rules change through a new round id"
                )
            return  # a repeat: the first answer again
        if join.national_id != national:
            self._refuse(f"{where}: the join names national round {join.national_id}")
        if self.phase != "registration":
            self._refuse(f"{where}: the national registration has closed; no round joins now")
        if len(self.rounds) >= MAX_ROUNDS:
            self._refuse(f"{where}: the register holds its maximum of {MAX_ROUNDS} rounds")
        other = next((r for r in self.rounds.values() if r.instansi == join.instansi), None)
        if other is not None:
            self._refuse(
                f"{where}: instansi {join.instansi!r} joined already with round {other.round_id}; "
                "one round per instansi"
            )
        problems = schedule_disagreement(self.config.schedule, join.schedule)
        if problems:
            self._refuse(f"{where}: its schedule does not agree: " + "; ".join(problems))

    def _refuse(self, problem: str) -> None:
        raise ApplicationError(problem, type=JOIN_REFUSED, non_retryable=True)

    @workflow.query
    def state(self) -> NationalState:
        """The schedule and the register, in the order rounds joined."""
        return NationalState(
            national_id=self.config.national_id,
            name=self.config.name,
            phase=self.phase,
            schedule=self.config.schedule,
            rounds=list(self.rounds.values()),
        )


@workflow.defn
class NationalClaim:
    """One NIK's registration in one instansi round of the national round, held open until the
    national SKD closes (no instansi registers after it), or released by itself when no journey
    took it within its grace."""

    @workflow.init
    def __init__(self, claim: ClaimStart) -> None:
        self.claim = claim
        # Messages heard that say the journey of this claim's registration admitted it (signal
        # claim_taken, update take_claim). Anyone holding the payload key can send one.
        self.told = 0
        # Whether its registrar, whose start of the journey failed on its side, asked it to look
        # for the journey now (update look_for_journey): what the sweep does at its grace.
        self.asked = False

    @workflow.run
    async def run(self, claim: ClaimStart) -> ClaimStart:
        if claim.sweep_after is None or not self._patched(CLAIM_SWEPT):
            # Held to the end; since the start is delayed to the end, no timer in practice.
            remaining = claim.holds_until - workflow.now()
            if remaining > timedelta(0):
                await workflow.sleep(remaining)
            return claim
        if self._patched(CLAIM_LOOKS_AGAIN):
            await self._released_unless_found(claim, claim.sweep_after)
        else:
            await self._swept_unless_taken(claim, claim.sweep_after)
        remaining = claim_ends_at(claim.holds_until, workflow.info().workflow_id) - workflow.now()
        if remaining > timedelta(0):
            await workflow.sleep(remaining)
        return claim

    async def _released_unless_found(self, claim: ClaimStart, grace: timedelta) -> None:
        """After the grace (on the server's clock, from the claim's start), the claim looks for
        its journey, and releases itself unless it finds it: it fails with CLAIM_RELEASED, naming
        the round, the registration and the journey it looked for. What it was told decides
        nothing (anyone holding the payload key can send the journey's words): a word heard
        while it looked makes it look again, as it may come from a journey started after the
        look read its id. A journey speaks only once it has started, so a look begun after its
        word finds it. The word can only arrive before the run ends (it is sent to this run):
        one recorded before the task that decides is in that task, as the engine fails a task
        that would end the run with a message not yet handled. Asked by its registrar (update
        look_for_journey, patch claim-looks-when-asked), it looks before the grace is over, and
        decides the same way."""
        due = workflow.info().workflow_start_time + grace
        remaining = due - workflow.now()
        if remaining > timedelta(0) and self._patched(CLAIM_LOOKS_WHEN_ASKED):
            # Here before the grace: a message handed the delayed first task over early (its
            # registrar's request to look now, or a client started it without the delay).
            try:
                await workflow.wait_condition(lambda: self.asked, timeout=remaining)
            except TimeoutError:
                pass
        elif remaining > timedelta(0):
            # The start is delayed by the grace: this waits only when a client started it earlier.
            await workflow.sleep(remaining)
        journey_id = journey_workflow_id(claim.round_id, claim.applicant_id)
        lookup = ClaimedJourney(
            claim_workflow_id=workflow.info().workflow_id, journey_workflow_id=journey_id
        )
        while True:
            told = self.told
            journey = await run_local_activity_until_done(
                FIND_CLAIMED_JOURNEY, lookup, CLAIM_READ_TIMEOUT, backoff_timers=True
            )
            if journey.found:
                return
            if self.told == told:
                break
        if self.told:
            workflow.logger.warning(
                "claim %s: told %d time(s) that its journey took it, but found none (%s)",
                workflow.info().workflow_id,
                self.told,
                journey.detail,
            )
        raise ApplicationError(
            swept(claim, journey_id, journey.detail), type=CLAIM_RELEASED, non_retryable=True
        )

    async def _swept_unless_taken(self, claim: ClaimStart, grace: timedelta) -> None:
        """The sweep before claim-looks-again, kept for the runs that recorded it: a claim told
        that its journey took it held without looking (a forged word kept it held)."""
        due = workflow.info().workflow_start_time + grace
        remaining = due - workflow.now()
        if not self.told and remaining > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self.told > 0, timeout=remaining)
            except TimeoutError:
                pass
        if self.told:
            return
        journey_id = journey_workflow_id(claim.round_id, claim.applicant_id)
        lookup = ClaimedJourney(
            claim_workflow_id=workflow.info().workflow_id, journey_workflow_id=journey_id
        )
        journey = await run_local_activity_until_done(
            FIND_CLAIMED_JOURNEY, lookup, CLAIM_READ_TIMEOUT, backoff_timers=True
        )
        if journey.found or self.told:
            return
        raise ApplicationError(
            swept(claim, journey_id, journey.detail), type=CLAIM_RELEASED, non_retryable=True
        )

    @workflow.signal(name=CLAIM_TAKEN.name)
    def claim_taken(self, *args: object) -> None:
        """The journey of this claim's registration says it admitted it: a claim that has not
        decided yet looks for the journey (again) before it does. A message naming another
        registration is ignored."""
        message = signal_message(ClaimTaken, args)
        if not isinstance(message, str) and not self._holds(message):
            message = f"from registration {message.applicant_id} of round {message.round_id}"
        if isinstance(message, str):
            workflow.logger.warning(
                "claim %s: claim_taken ignored: %s", workflow.info().workflow_id, message
            )
            return
        self.told += 1

    @workflow.update(name=LOOK_FOR_JOURNEY.name)
    def look_for_journey(self, asked: JourneyNotStarted) -> bool:
        """The registrar of this claim's registration says its start of the journey failed on its
        side: the claim looks for the journey now, not at its grace (patch claim-looks-when-asked),
        and holds if it finds it (the start landed after all). A look is all it can cause; a
        repeat changes nothing."""
        self.asked = True
        return True

    @look_for_journey.validator
    def validate_look_for_journey(self, asked: JourneyNotStarted) -> None:
        if (asked.round_id, asked.applicant_id) != (self.claim.round_id, self.claim.applicant_id):
            raise ApplicationError(
                f"claim {workflow.info().workflow_id}: registration {asked.applicant_id} of round "
                f"{asked.round_id} is not the one it holds",
                type="ClaimNotAsked",
                non_retryable=True,
            )

    @workflow.update(name=TAKE_CLAIM.name)
    def take_claim(self, taken: ClaimTaken) -> bool:
        """`claim_taken` as an update: what a journey sends once the run takes no more signals
        (another sender spent them). Completed before the run ends (heard, as the signal is), or
        refused once it has ended (the journey is then not admitted)."""
        self.told += 1
        return True

    @take_claim.validator
    def validate_take_claim(self, taken: ClaimTaken) -> None:
        if not self._holds(taken):
            raise ApplicationError(
                f"claim {workflow.info().workflow_id}: registration {taken.applicant_id} of round "
                f"{taken.round_id} is not the one it holds",
                type="ClaimNotTaken",
                non_retryable=True,
            )

    def _patched(self, patch: str) -> bool:
        """The claim's patches: a claim has no engine version, so each is decided by its marker."""
        return workflow.patched(patch)

    def _holds(self, taken: ClaimTaken) -> bool:
        """Whether `taken` speaks of the registration this claim holds (signal and update alike)."""
        return (taken.round_id, taken.applicant_id) == (
            self.claim.round_id,
            self.claim.applicant_id,
        )
