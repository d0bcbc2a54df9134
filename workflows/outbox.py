"""What a journey owes the read model: its row, the new decisions, notifications and reports.

Kept apart from the applicant's sheet: this is bookkeeping about what has been written, not a
fact about the applicant. The row is written by a local activity (one marker event, no task).

A notification is recorded as a `domain.notices.Notice` (its facts: outcome, failing documents
with their reasons, the cause of an ending) with its Indonesian text. The language an applicant
reads is chosen where it is delivered (`activities/notify.py`, `CASN_NOTIFICATION_LANGUAGE`),
never here: a workflow reading the environment would replay differently on another machine. The
notice travels only in the local activity's input, so recorded histories replay unchanged.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.contracts import JourneyProjection, Notification
    from domain.messages import Decision, JourneyState
    from domain.notices import Language, Notice, render
    from domain.protocol import PROJECT_JOURNEY
    from workflows.calls import run_local_activity_until_done

PROJECT_TIMEOUT = timedelta(seconds=30)


class ReadModelOutbox:
    """Pending read-model writes of one journey, and how much of the trail was written."""

    def __init__(self, sanction_key: str = "") -> None:
        self.sanction_key = sanction_key  # the sanctions register's key of the applicant
        self.version = 0
        self.projected_decisions = 0
        self.notifications: list[Notification] = []
        self.reports: list[tuple[str, str, dict]] = []
        self.at_rest = False  # write when the journey comes to rest, not after every step
        self.unwritten = False
        self.rows_written = 0  # rows this journey wrote itself (a close's row is the broadcast's)
        self.backoff_timers = False  # patch local-activity-backoff-timers (the journey decides)

    def notify(self, key: str, notice: Notice) -> None:
        """A message to the applicant, sent with the next write (`key`: unique per applicant)."""
        self.notifications.append(
            Notification(key=key, text=render(notice, Language.ID), notice=notice)
        )

    def accepted(self, report_id: str, kind: str, content: dict) -> None:
        """An accepted report, filed with the next write."""
        self.reports.append((report_id, kind, content))

    async def changed(
        self, state: JourneyState, name: str, category: str, decisions: list[Decision]
    ) -> None:
        """The row changed: write it now, or mark it for the next rest (patch project-at-rest)."""
        if self.at_rest:
            self.unwritten = True
        else:
            await self.write(state, name, category, decisions)

    def take(
        self, state: JourneyState, name: str, category: str, decisions: list[Decision]
    ) -> JourneyProjection:
        """The row and what is pending, for someone else to write: the broadcast of the close
        that this row answers (patch close-answered-with-row). No local activity.

        The decisions, notifications and reports stay pending and go again with the next write,
        which the journey makes itself (at the latest when it ends): were the broadcast's write
        lost, nothing of them would be. Every table keys them, so a second copy changes nothing."""
        self.unwritten = False
        self.version += 1
        return self._projection(state, name, category, decisions)

    def _projection(
        self, state: JourneyState, name: str, category: str, decisions: list[Decision]
    ) -> JourneyProjection:
        return JourneyProjection(
            version=self.version,
            state=state,
            registration_no=state.applicant_id,
            name=name,
            category=category,
            first_seq=self.projected_decisions,
            new_decisions=decisions[self.projected_decisions :],
            notifications=self.notifications,
            reports=self.reports,
            sanction_key=self.sanction_key,
        )

    async def write(
        self, state: JourneyState, name: str, category: str, decisions: list[Decision]
    ) -> None:
        """Write the row, the decisions since the last write and what is pending."""
        self.unwritten = False
        self.version += 1
        projection = self._projection(state, name, category, decisions)
        await run_local_activity_until_done(
            PROJECT_JOURNEY, projection, PROJECT_TIMEOUT, backoff_timers=self.backoff_timers
        )
        self.projected_decisions = len(decisions)
        self.notifications = []
        self.reports = []
        self.rows_written += 1
