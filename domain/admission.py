"""Admission of a journey: whether a started journey belongs to its round at all.

Anyone who can reach Temporal can start an ApplicantJourney with an input of their own making:
after registration closed, with rules (and keys) of their own, in the portal's name. The journey
therefore asks its round (the workflow the operator created) for the round's rules and its
registration window, and admits itself only when its start agrees with them. Pure: the round's
answer and the start time come in as arguments.
"""

from __future__ import annotations

from datetime import datetime

from domain.config import ReportKind
from domain.events import Registered
from domain.messages import JourneyRules, JourneyStart, JourneyState, RoundView
from domain.signing import signature_problem


def admission_problem(
    start: JourneyStart, view: RoundView, started_at: datetime, workflow_id: str
) -> str | None:
    """Why the journey `workflow_id` cannot be one of its round's (None when it can), in the order
    checked."""
    if not view.found or view.rules is None:
        return f"round {start.round_id} does not exist"
    rules = view.rules
    if view.formasi is None or view.formasi != start.formasi:
        return f"formasi {start.formasi.code} is not round {start.round_id}'s formasi of that code"
    if start.rules.rules_digest != rules.rules_digest:
        return (
            f"started with rules {start.rules.rules_digest[:12]}, not round {start.round_id}'s "
            f"{rules.rules_digest[:12]}"
        )
    if view.registration_closed_at is not None and started_at > view.registration_closed_at:
        return (
            f"started at {started_at.isoformat()}, after registration closed at "
            f"{view.registration_closed_at.isoformat()}"
        )
    if view.registration_closes is not None and started_at >= view.registration_closes:
        return (
            f"started at {started_at.isoformat()}, after registration closed at "
            f"{view.registration_closes.isoformat()}"
        )
    return registrar_problem(start, rules) or signature_problem(
        start, rules.identities, workflow_id
    )


def registrar_problem(start: JourneyStart, rules: JourneyRules) -> str | None:
    """Why the start's `registered_by` may not register applicants under the round's rules (None
    when it may): in a round with keys, only its portal and its operators register."""
    registrars = {
        *rules.reporters.get(ReportKind.PORTAL, []),
        *rules.reporters.get(ReportKind.OPERATOR, []),
    }
    if rules.identities and start.registered_by not in registrars:
        return f"{start.registered_by} may not register applicants in this round"
    return None


def registration_refusal(state: JourneyState) -> str:
    """Why a journey refused its registration, from its state; "" when it took it. A refused
    registration (not admitted, or not eligible on its date) ends before its Registered decision."""
    if state.terminal is None or any(Registered.matches(d) for d in state.decisions):
        return ""
    return state.terminal_reason or "registration refused"
