"""Who said what: every recorded report and command checked against the round's keys, offline.

A round with `identities` took only signed reports and commands; their signed messages are in the
histories' update events. This check verifies each one again with the public keys the round's own
start input lists (not the keys a journey was started with: a journey started outside the API
could carry keys of its own), and names every journey whose rules are not the round's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from pydantic import BaseModel
from temporalio.converter import DataConverter

from auditing.history import RecordedHistory, messages, replay
from domain.config import parse_round_config
from domain.messages import BLIND_REPORTS, ChangeKeys, JourneyStart, Report, RoundStart
from domain.panels import report_audiences
from domain.signing import problem_for_every, signer_of, verify
from workflows.ids import aftermath_of, journey_workflow_id


@dataclass
class ProvenanceCheck:
    """Signatures checked, what fails, and rounds that took unsigned reports (older rounds)."""

    verified: int = 0
    problems: list[str] = field(default_factory=list)
    unsigned_rounds: list[str] = field(default_factory=list)


class KeyTimeline:
    """The keys a round's identities held over time: the first, and each recorded change.

    A signature counts when it verifies under a key its identity held at the time the message
    was recorded, or before: signatures made before a key was changed stay valid."""

    def __init__(self, initial: dict[str, str]) -> None:
        self.initial = dict(initial)
        self.changes: list[tuple[datetime, dict[str, str]]] = []

    def change(self, at: datetime, keys: dict[str, str]) -> None:
        self.changes.append((at, dict(keys)))

    def verify(self, message: BaseModel, at: datetime, audience: str) -> str | None:
        identity = signer_of(message)
        held = [self.initial.get(identity)] + [
            keys.get(identity) for since, keys in self.changes if since <= at
        ]
        first_problem = None
        for key in [k for k in held if k] or [None]:
            problem = verify(message, {identity: key} if key else {}, audience)
            if problem is None:
                return None
            first_problem = first_problem or problem
        return first_problem


async def _recorded_digest(round_history: RecordedHistory, converter: DataConverter) -> str:
    """The rules' digest the round recorded when it opened (as its code computed it then)."""
    [outcome] = await replay([round_history.history], converter)
    opened = outcome.state.decisions[0] if outcome.state and outcome.state.decisions else None
    return str(opened.input.get("rules_digest", "")) if opened else ""


async def check_provenance(
    histories: list[RecordedHistory], converter: DataConverter
) -> ProvenanceCheck:
    """Verify every accepted report's and command's signature against its round's keys."""
    check = ProvenanceCheck()
    decoded = [(h, await messages(h.history, converter)) for h in histories]
    rounds: dict[str, tuple[KeyTimeline, str]] = {}  # round id -> (its keys, rules digest)
    for h, msgs in decoded:
        if h.kind == "round" and msgs and isinstance(msgs[0].content, RoundStart):
            config = parse_round_config(msgs[0].content.config, f"{h.workflow_id} start input")
            timeline = KeyTimeline(config.identities)
            for m in msgs:
                if m.kind == "update" and isinstance(m.content, ChangeKeys):
                    timeline.change(m.at, m.content.identities)
            rounds[config.round_id] = (timeline, await _recorded_digest(h, converter))
    for round_id, (timeline, _) in sorted(rounds.items()):
        if not timeline.initial:
            check.unsigned_rounds.append(round_id)
    for h, msgs in decoded:
        if h.kind not in ("journey", "round", "aftermath") or not msgs:
            continue
        start = msgs[0].content
        round_id = (
            start.round_id if isinstance(start, JourneyStart) else h.workflow_id.rsplit("/", 1)[0]
        )
        # An aftermath's reports are signed for the applicant's journey, like every report about
        # the applicant; its round and journey come from its own id, never from its start input.
        audience = h.workflow_id
        after = aftermath_of(h.workflow_id) if h.kind == "aftermath" else None
        if after is not None:
            round_id, audience = after[0], journey_workflow_id(*after)
        if round_id not in rounds:
            check.problems.append(
                f"{h.workflow_id}: the history of round {round_id} is missing; its keys are unknown"
            )
            continue
        timeline, digest = rounds[round_id]
        if isinstance(start, JourneyStart) and digest and start.rules.rules_digest != digest:
            check.problems.append(
                f"{h.workflow_id}: started with rules {start.rules.rules_digest[:12]}, not the round's {digest[:12]}"
            )
        if not timeline.initial:
            continue
        for m in msgs:
            signed = (m.kind == "update" and isinstance(m.content, Report)) or (
                m.kind == "start" and isinstance(m.content, JourneyStart) and m.content.signature
            )
            if not signed:
                continue
            # A panellist's blind report may be signed for the candidate's code, which the
            # journey's start carries (domain/panels.py), instead of for the journey.
            code = start.candidate_code if isinstance(start, JourneyStart) else ""
            audiences = report_audiences(
                audience, round_id, code, isinstance(m.content, BLIND_REPORTS)
            )
            problem = problem_for_every(partial(timeline.verify, m.content, m.at), audiences)
            if problem:
                what = getattr(m.content, "report_id", "registration")
                check.problems.append(
                    f"{h.workflow_id} (run {h.run_id}) {m.name} {what} by "
                    f"{signer_of(m.content)} at {m.at.isoformat()}: {problem}"
                )
            else:
                check.verified += 1
    return check
