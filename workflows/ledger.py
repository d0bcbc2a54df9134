"""What a workflow records: one answer per report id (idempotency) and its decisions."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from domain.messages import Ack, Decision, Report


class Ledger:
    """The first answer to each report id, with the digest of the content it answered.

    A repeat with the same content gets the first answer back and changes nothing; the same id
    with other content is refused. Used by validators (before anything is written) and handlers.
    """

    def __init__(self, noun: str, subject: str, error_type: str) -> None:
        self.noun = noun  # "report" or "command"
        self.subject = subject  # " for applicant X", or "" for the round
        self.error_type = error_type
        self.answers: dict[str, tuple[str, Ack]] = {}

    def refuse(self, message: Report, problem: str) -> NoReturn:
        """Reject an update in its validator: nothing reaches the history."""
        raise ApplicationError(
            f"{self.noun} {message.report_id}{self.subject}: {problem}",
            type=self.error_type,
            non_retryable=True,
        )

    def is_repeat(self, message: Report) -> bool:
        """True for an exact repeat; refuses the same id with different content."""
        seen = self.answers.get(message.report_id)
        if seen is None:
            return False
        # A ledger carried across continue-as-new may hold digests made before `valid_until`
        # (over the content and the signature): the same message matches either.
        if seen[0] not in (message.content_digest(), message.legacy_digest()):
            self.refuse(message, f"this {self.noun} id was already used with different content")
        return True

    def seen(self, message: Report) -> bool:
        """True when this id has been answered before."""
        return message.report_id in self.answers

    def accept(self, message: Report, apply: Callable[[], None], answer: Callable[[], Ack]) -> Ack:
        """Apply a new message once and remember its answer; a repeat gets the first answer."""
        seen = self.answers.get(message.report_id)
        if seen is not None:
            return seen[1]
        apply()
        ack = answer()
        self.answers[message.report_id] = (message.content_digest(), ack)
        return ack


def decision(
    stage: str, outcome: str, actor: str, inputs: dict, rule_version: str, rules_digest: str
) -> Decision:
    """A decision made now (workflow time) with its input, its actor and the rules it was made by."""
    return Decision(
        at=workflow.now(),
        stage=stage,
        outcome=outcome,
        actor=actor,
        input=inputs,
        rule_version=rule_version,
        rules_digest=rules_digest,
    )
