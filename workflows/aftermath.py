"""ApplicantAftermath: the applicant's history after the journey ended.

A journey that has ended takes no more reports and its history is closed; a DIS found later
(DOMAIN.md: "even after appointment") or a PNS's dismissal by decree is recorded here, in a
workflow whose id is the journey's with `/after` (no personal data), started by the first such
report (update-with-start, client/api.py). Every check is made here, where the decision is made:
the signature and the reporter under the round's keys and reporters (read from the round, like a
journey's admission), that the journey really ended and what it ended as (read from the closed
journey's result; its id derived from this workflow's own, never taken from an input), and what
this history already recorded. Repeats get their first answer (workflows/ledger.py).

It reads before it takes anything: a report that arrives before the round and the journey's end
are read is refused with `AftermathNotReady` (nothing recorded) and the client sends it again. An
aftermath that cannot take reports (no such round, a journey still running) ends at once; the next
report starts a new one. Otherwise it stays open for what may still come.

An aftermath stays open for years, and the round's keys change meanwhile (`change-keys`: a key
lost or stolen). Since patch aftermath-reads-keys-again a report is judged only by keys read from
the round at most KEYS_FRESH ago: an older reading refuses it with `AftermathKeysStale` (nothing
recorded), and the client asks the aftermath to read the round again (`read_round_again`, an
update with no input, taken at most once per KEYS_FRESH) before it sends the report again. Before
the patch the keys read when the aftermath began judged every later report: a key changed since
was still taken, and its new key refused.

An aftermath's history grows with every reading of the keys, at most one a minute for as long as
someone keeps sending reports, and Temporal takes at most 2,000 updates in a run. Since patch
aftermath-continues-as-new a run whose history reaches CONTINUE_AT_EVENTS continues as new once
its handlers are done and its rows written, handing its whole record to the next run
(`AftermathCarry`: how the journey ended, the keys as last read, every answer, revocation and
decision). The next run takes that record only when the server started it as the continuation;
a client's start that carries one is refused, as a start that names another applicant is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import notices
    from domain.aftermath import (
        AfterEndReport,
        AftermathCarry,
        AftermathStart,
        AftermathState,
        CarriedAnswer,
        JourneyEndRequest,
        Revocation,
        RevocationRows,
        decide,
        effect,
        end_problem,
        revocation,
        revocation_refusal,
    )
    from domain.codes import Stage
    from domain.contracts import JourneyProjection, Notification
    from domain.messages import (
        Ack,
        Decision,
        JourneyState,
        RoundView,
        RoundViewRequest,
        validity_refusal,
    )
    from domain.notices import Language, render
    from domain.protocol import (
        AFTERMATH_REPORTS,
        PROJECT_JOURNEY,
        PROJECT_REVOCATIONS,
        READ_JOURNEY_END,
        READ_ROUND,
    )
    from domain.signing import signature_problem
    from workflows.calls import decode, run_local_activity_until_done
    from workflows.ids import aftermath_of, journey_workflow_id, round_workflow_id
    from workflows.ledger import Ledger
    from workflows.versions import AFTERMATH_CONTINUES_AS_NEW, AFTERMATH_READS_KEYS_AGAIN

READ_TIMEOUT = timedelta(seconds=15)
WRITE_TIMEOUT = timedelta(seconds=30)
NOT_READY = "AftermathNotReady"  # the error type of a report that came before the reading
# The error type of a report that came when the round's keys were last read more than KEYS_FRESH
# ago (patch aftermath-reads-keys-again): the client asks for READ_ROUND_AGAIN and sends it again.
KEYS_STALE = "AftermathKeysStale"
KEYS_FRESH = timedelta(seconds=60)
READ_ROUND_AGAIN = "read_round_again"  # the update that asks it to read them again
ROUND_UNREADABLE = "AftermathRoundUnreadable"  # read_round_again's failure: the round not found
# A run whose history has this many events continues as new (patch aftermath-continues-as-new): a
# reading of the keys adds 6 events, so a run takes some 80 before it continues, far from Temporal's
# 2,000 updates and 51,200 events in a run. An aftermath that only records its reports never gets
# near it.
CONTINUE_AT_EVENTS = 500


@workflow.defn
class ApplicantAftermath:
    """DIS or dismissal after the journey ended, decided against what the journey ended as."""

    @workflow.init
    def __init__(self, start: AftermathStart) -> None:
        ids = aftermath_of(workflow.info().workflow_id)
        self.round_id, self.applicant_id = ids or (start.round_id, start.applicant_id)
        self.journey_id = journey_workflow_id(self.round_id, self.applicant_id)
        self.problem = ""
        if ids is None:
            self.problem = "this workflow's id is not an aftermath's (<journey id>/after)"
        elif ids != (start.round_id, start.applicant_id):
            self.problem = "its start names another round or applicant than its id"
        elif start.carry is not None and workflow.info().continued_run_id is None:
            self.problem = (
                "its start carries an earlier run's record, which only the aftermath's own "
                "continue-as-new hands over"
            )
        self.ready = False
        self.view = RoundView(found=False)
        self.journey: JourneyState | None = None
        self.ledger = Ledger(
            "report", f" for applicant {self.applicant_id} after the journey", "ReportRefused"
        )
        self.revocations: list[Revocation] = []
        self.decisions: list[Decision] = []
        self.notifications: list[Notification] = []
        self.written_decisions = 0
        self.written_revocations = 0
        # When the round's keys were last read, and whether reports wait for a fresh reading
        # (patch aftermath-reads-keys-again, asked once the aftermath is ready).
        self.keys_read_at: datetime | None = None
        self.read_tried_at: datetime | None = None  # the last reading asked, found or not
        self.reads_keys_again = False
        self.reading_round = False
        # Whether this run continues as new when its history is long (patch
        # aftermath-continues-as-new, asked when it first is): None until asked.
        self.continues: bool | None = None
        self.runs_before = 0
        if start.carry is not None and not self.problem:
            self._take(start.carry)

    # --- the process -------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: AftermathStart) -> AftermathState:
        if not self.problem and start.carry is None:
            await self.read_journey_end()
        if self.problem:
            workflow.logger.warning(
                "aftermath %s takes no report: %s", self.journey_id, self.problem
            )
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self.state()
        self.reads_keys_again = self._patched(AFTERMATH_READS_KEYS_AGAIN)
        self.ready = True
        while True:  # the applicant's history after the journey: open for what may still come
            await workflow.wait_condition(lambda: self._unwritten() or self._may_continue())
            if self._unwritten():
                await self._write()
            elif self._continues():
                workflow.continue_as_new(
                    AftermathStart(
                        round_id=self.round_id, applicant_id=self.applicant_id, carry=self._carry()
                    )
                )

    async def read_journey_end(self) -> None:
        """The journey's result and the round's keys and reporters, as they stand now."""
        end = await run_local_activity_until_done(
            READ_JOURNEY_END, JourneyEndRequest(workflow_id=self.journey_id), READ_TIMEOUT
        )
        problem = end_problem(end, self.journey_id)
        if problem:
            self.problem = problem
            return
        assert end.state is not None
        self.journey = end.state
        self.view = await self._read_round(end.state.formasi_code)
        if not self.view.found or self.view.rules is None:
            self.problem = f"round {self.round_id} does not exist"
        self.keys_read_at = self.read_tried_at = workflow.now()

    # --- reports -------------------------------------------------------------------------------

    @workflow.update(dynamic=True)
    async def report(self, name: str, args: Sequence[RawValue]) -> Ack:
        """A DIS (`disqualify`) or a dismissal (`dismiss`); answered once it is in the read model."""
        report: AfterEndReport = decode(AFTERMATH_REPORTS, name, args, self._subject())
        ack = self.ledger.accept(report, lambda: self._record(report), lambda: self._ack(report))
        await workflow.wait_condition(lambda: not self._unwritten())
        return ack

    @report.validator
    def validate_report(self, name: str, args: Sequence[RawValue]) -> None:
        report: AfterEndReport = decode(AFTERMATH_REPORTS, name, args, self._subject())
        if self.problem:
            self.ledger.refuse(report, self.problem)
        if not self.ready:
            self._not_ready(report)
        if self._keys_stale():
            raise ApplicationError(
                f"report {report.report_id} {self._subject()}: the round's keys were read more "
                f"than {KEYS_FRESH.total_seconds():.0f} s ago; ask read_round_again, then send "
                "the report again",
                type=KEYS_STALE,
                non_retryable=True,
            )
        assert self.view.rules is not None and self.journey is not None
        problem = signature_problem(report, self.view.rules.identities, self.journey_id)
        if problem:
            self.ledger.refuse(report, problem)
        if self.ledger.is_repeat(report):
            return
        problem = validity_refusal(
            report, self.view.rules.identities, workflow.now()
        ) or revocation_refusal(report, self.journey, self.revocations, self.view.rules)
        if problem:
            self.ledger.refuse(report, problem)

    async def _read_round(self, formasi_code: str) -> RoundView:
        """The round's keys and reporters as they stand now (a local activity)."""
        return await run_local_activity_until_done(
            READ_ROUND,
            RoundViewRequest(
                round_id=self.round_id,
                workflow_id=round_workflow_id(self.round_id),
                formasi_code=formasi_code,
            ),
            READ_TIMEOUT,
        )

    @workflow.update(name=READ_ROUND_AGAIN)
    async def read_round_again(self, *args: RawValue) -> str:
        """Read the round's keys and reporters again, for a report refused as `AftermathKeysStale`
        (patch aftermath-reads-keys-again); answers when they were read. Changes no decision. It
        takes no input: one sent with any is refused, undecoded, and never reaches the history."""
        assert self.journey is not None
        self.reading_round, self.read_tried_at = True, workflow.now()
        try:
            view = await self._read_round(self.journey.formasi_code)
        finally:
            self.reading_round = False
        if not view.found or view.rules is None:
            # Not taken, and no reading asked again for a minute: the reports wait.
            raise ApplicationError(
                f"{READ_ROUND_AGAIN} {self._subject()}: round {self.round_id} cannot be read now, "
                "so no report is judged by its keys; send the report again later",
                type=ROUND_UNREADABLE,
                non_retryable=True,
            )
        self.view, self.keys_read_at = view, workflow.now()
        return self.keys_read_at.isoformat()

    @read_round_again.validator
    def validate_read_round_again(self, *args: RawValue) -> None:
        problem = None
        if args:
            problem = "it takes no input"
        elif self.problem:
            problem = self.problem
        elif not self.ready or not self.reads_keys_again:
            problem = "this aftermath reads the round's keys once, when it begins"
        elif self.reading_round:
            problem = "it is reading the round's keys now: send the report again"
        elif not self._keys_stale():
            problem = "the round's keys were read less than a minute ago: send the report again"
        elif self.read_tried_at and workflow.now() - self.read_tried_at <= KEYS_FRESH:
            problem = "the round could not be read less than a minute ago: send the report later"
        if problem:
            raise ApplicationError(
                f"read_round_again {self._subject()}: {problem}",
                type="ReportRefused",
                non_retryable=True,
            )

    @workflow.query
    def state(self) -> AftermathState:
        """What the journey ended as, every revocation since and the decisions recording them."""
        return AftermathState(
            round_id=self.round_id,
            applicant_id=self.applicant_id,
            ready=self.ready,
            problem=self.problem,
            journey_terminal=self.journey.terminal if self.journey else None,
            nip=self.journey.nip if self.journey else None,
            journey_decisions=len(self.journey.decisions) if self.journey else 0,
            revocations=self.revocations,
            decisions=self.decisions,
        )

    # --- helpers ---------------------------------------------------------------------------------

    def _record(self, report: AfterEndReport) -> None:
        assert self.journey is not None and self.view.rules is not None
        rules = self.view.rules
        event = decide(report, self.journey)
        self.decisions.append(event.record(workflow.now(), rules.rule_version, rules.rules_digest))
        done = revocation(report, self.journey, workflow.now())
        self.revocations.append(done)
        notice = notices.revoked(done.code, done.reason, done.decree_no)
        self.notifications.append(
            Notification(key=f"after-{done.code}", text=render(notice, Language.ID), notice=notice)
        )

    def _ack(self, report: AfterEndReport) -> Ack:
        return Ack(
            report_id=report.report_id,
            applicant_id=self.applicant_id,
            stage=Stage.ENDED.value,
            effect=effect(report),
            recorded_at=workflow.now(),
        )

    def _unwritten(self) -> bool:
        return self.written_decisions < len(self.decisions) or bool(self.notifications)

    async def _write(self) -> None:
        """The new decisions and notifications the journey's way (after the journey's trail, in a
        row version that never wins over the journey's row), then the new revocations."""
        assert self.journey is not None
        decisions, notifications = len(self.decisions), list(self.notifications)
        revocations = len(self.revocations)
        await run_local_activity_until_done(
            PROJECT_JOURNEY,
            JourneyProjection(
                version=0,
                state=self.journey.model_copy(update={"decisions": []}),
                registration_no=self.applicant_id,
                name="",
                category="",
                first_seq=len(self.journey.decisions) + self.written_decisions,
                new_decisions=self.decisions[self.written_decisions : decisions],
                notifications=notifications,
            ),
            WRITE_TIMEOUT,
        )
        await run_local_activity_until_done(
            PROJECT_REVOCATIONS,
            RevocationRows(
                round_id=self.round_id,
                applicant_id=self.applicant_id,
                first_seq=self.written_revocations,
                revocations=self.revocations[self.written_revocations : revocations],
            ),
            WRITE_TIMEOUT,
        )
        self.written_decisions, self.written_revocations = decisions, revocations
        self.notifications = self.notifications[len(notifications) :]

    def _may_continue(self) -> bool:
        """Whether this run could continue as new now: its history is long, and nothing is under
        way (no handler running, every row written)."""
        return (
            self.continues is not False
            and workflow.info().get_current_history_length() >= CONTINUE_AT_EVENTS
            and workflow.all_handlers_finished()  # read_round_again's reading included
        )

    def _continues(self) -> bool:
        """Patch aftermath-continues-as-new, asked the first time the run could continue: a run
        recorded before it, replayed, reached that point without continuing, and goes on so."""
        if self.continues is None:
            self.continues = self._patched(AFTERMATH_CONTINUES_AS_NEW)
        return self.continues

    def _carry(self) -> AftermathCarry:
        """The whole record, for the next run: every row of it is written by now."""
        assert self.journey is not None and not self._unwritten()
        return AftermathCarry(
            journey=self.journey,
            view=self.view,
            keys_read_at=self.keys_read_at,
            read_tried_at=self.read_tried_at,
            answers=[
                CarriedAnswer(report_id=report_id, digest=digest, ack=ack)
                for report_id, (digest, ack) in self.ledger.answers.items()
            ],
            revocations=self.revocations,
            decisions=self.decisions,
            runs=self.runs_before + 1,
        )

    def _take(self, carry: AftermathCarry) -> None:
        """An earlier run's record, handed over by its continue-as-new: nothing to read again (the
        journey's closed history may be gone by now), nothing to write again."""
        self.journey, self.view = carry.journey, carry.view
        self.keys_read_at, self.read_tried_at = carry.keys_read_at, carry.read_tried_at
        self.ledger.answers = {a.report_id: (a.digest, a.ack) for a in carry.answers}
        self.revocations = list(carry.revocations)
        self.decisions = list(carry.decisions)
        self.written_decisions, self.written_revocations = (
            len(self.decisions),
            len(self.revocations),
        )
        self.runs_before = carry.runs

    def _keys_stale(self) -> bool:
        """Whether the round's keys were read too long ago to judge a report by (patch
        aftermath-reads-keys-again; never before it)."""
        return self.reads_keys_again and (
            self.keys_read_at is None or workflow.now() - self.keys_read_at > KEYS_FRESH
        )

    def _patched(self, patch: str) -> bool:
        """The aftermath's patches: it has no engine version, so each is decided by its marker."""
        return workflow.patched(patch)

    def _subject(self) -> str:
        return f"for applicant {self.applicant_id} after the journey"

    def _not_ready(self, report: AfterEndReport) -> NoReturn:
        raise ApplicationError(
            f"report {report.report_id} {self._subject()}: the aftermath is still reading how the "
            "journey ended; send the report again",
            type=NOT_READY,
            non_retryable=True,
        )
