"""The national round: the shared schedule instansi rounds join, and one claim per NIK.

`NationalRound` (id `{national}/national`) holds the national schedule and the register of the
instansi rounds that joined; a join is an update, checked in its validator (the schedule agrees,
the register is open, one round per instansi), so a refused join leaves nothing in the history.
`NationalClaim` (id `{national}/claim/{national pseudonym}`) is one NIK's registration in one
instansi round: the engine starts one workflow per id, so a second registration of the NIK in any
instansi finds the first claim recorded and is refused (client/national.py). It costs two engine
actions per applicant: its start and the timer that holds it open until the national SKD closes
(a closed workflow's id could be reused once the namespace's retention has passed).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.national import (
        MAX_ROUNDS,
        ClaimStart,
        JoinAck,
        JoinedRound,
        NationalStart,
        NationalState,
        RoundJoin,
        parse_national_config,
        schedule_disagreement,
    )

JOIN_REFUSED = "JoinRefused"


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
    national SKD closes (no instansi registers after it)."""

    @workflow.run
    async def run(self, claim: ClaimStart) -> ClaimStart:
        remaining = claim.holds_until - workflow.now()
        if remaining > timedelta(0):
            await workflow.sleep(remaining)
        return claim
