"""Who said what: every recorded report and command checked against the round's keys, offline.

A round with `identities` took only signed reports and commands; their signed messages are in the
histories' update events. This check verifies each one again with the public keys the round's own
start input lists (not the keys a journey was started with: a journey started outside the API
could carry keys of its own), and names every journey whose rules are not the round's.

Replay does not run update validators, and an insider holding the payload key can re-encrypt
anything into a history: these checks, not the replay, show that every start, report and command
came from an identity that could sign it and was allowed to send it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from pydantic import BaseModel
from temporalio.converter import DataConverter

from auditing.history import DecodedMessages, Message, RecordedHistory, replay
from domain.admission import registrar_problem, registration_refusal
from domain.codes import Phase
from domain.config import parse_round_config
from domain.messages import (
    BLIND_REPORTS,
    Announcement,
    ChangeKeys,
    JourneyRules,
    JourneyStart,
    Report,
    RoundStart,
)
from domain.panels import report_audiences
from domain.sheet import sender_refusal
from domain.signing import problem_for_every, signer_of, validity_problem, verify
from workflows.ids import aftermath_of, journey_workflow_id, round_workflow_id
from workflows.round import journey_rules


@dataclass
class ProvenanceCheck:
    """Signatures checked, what fails, and rounds that took unsigned reports (older rounds)."""

    verified: int = 0
    problems: list[str] = field(default_factory=list)
    unsigned_rounds: list[str] = field(default_factory=list)
    # Journeys whose start no registrar signed, and which refused it themselves (their replay
    # ends in the refusal): someone who reached Temporal tried, and nothing was decided on it.
    refused_starts: list[str] = field(default_factory=list)


class KeyTimeline:
    """The keys a round's identities held over time: the first, and each recorded change.

    A signature counts when it verifies under the key its identity held when the message was
    recorded: a message recorded before a change keeps the key it was signed with, and one
    recorded after it needs the new key, as the round refuses the old one from its change on and
    each journey from when it hears of it (`learned`). Before the review of 12-07 every key an
    identity had ever held counted, so a key replaced because it was lost signed for ever. Build
    it with `key_timeline`, which applies only the changes an operator signed under the keys in
    force."""

    def __init__(self, initial: dict[str, str]) -> None:
        self.initial = dict(initial)
        self.changes: list[tuple[datetime, dict[str, str]]] = []
        self.refused: list[str] = []  # recorded changes that did not verify: not applied

    def change(self, at: datetime, keys: dict[str, str]) -> None:
        self.changes.append((at, dict(keys)))

    def in_force(self) -> dict[str, str]:
        """The keys after every change applied so far: what the round checks a command by."""
        keys = dict(self.initial)
        for _, changed in self.changes:
            keys.update(changed)
        return keys

    def in_force_at(self, at: datetime) -> dict[str, str]:
        """The keys after every change taken at or before `at`."""
        keys = dict(self.initial)
        for since, changed in self.changes:
            if since <= at:
                keys.update(changed)
        return keys

    def verify(
        self, message: BaseModel, at: datetime, audience: str, learned: datetime | None = None
    ) -> str | None:
        """Why `message`, recorded at `at`, does not verify under the key its identity held then;
        a journey still holds the keys in force when it last `learned` of a change (its admission,
        or a key change announced to it), until it hears of the next."""
        identity = signer_of(message)
        held = [self.in_force_at(at).get(identity)]
        if learned is not None:
            held.append(self.in_force_at(learned).get(identity))
        first_problem = None
        for key in [k for k in held if k] or [None]:
            problem = verify(message, {identity: key} if key else {}, audience)
            if problem is None:
                return None
            first_problem = first_problem or problem
        return first_problem


def key_timeline(rules: JourneyRules, workflow_id: str, recorded: Iterable[Message]) -> KeyTimeline:
    """The keys of the round `workflow_id` over time, from its runs' messages in event order.

    Each recorded key change is checked as the round checked it before taking it: sent by an
    operator of the round, signed under the keys in force just before it (never under the keys
    it brings, so no change certifies itself). One that is not is named in `refused` and not
    applied: what it would have let sign does not verify."""
    timeline = KeyTimeline(rules.identities)
    for m in recorded:
        if m.kind != "update" or not isinstance(m.content, ChangeKeys):
            continue
        problem = sender_refusal(m.content, rules) or verify(
            m.content, timeline.in_force(), workflow_id
        )
        if problem:
            timeline.refused.append(
                f"{workflow_id} {m.name} {m.content.report_id} by {signer_of(m.content)} at "
                f"{m.at.isoformat()}: {problem}; its keys are not taken"
            )
        else:
            timeline.change(m.at, m.content.identities)
    return timeline


async def _recorded_digest(round_history: RecordedHistory, converter: DataConverter) -> str:
    """The rules' digest the round recorded when it opened (as its code computed it then)."""
    [outcome] = await replay([round_history.history], converter)
    opened = outcome.state.decisions[0] if outcome.state and outcome.state.decisions else None
    return str(opened.input.get("rules_digest", "")) if opened else ""


@dataclass
class RoundKeys:
    """What a round's own history says its messages are judged by: its rules (reporters and the
    first keys), the keys over time, and the rules' digest it recorded when it opened."""

    rules: JourneyRules
    timeline: KeyTimeline
    digest: str


async def _refused_itself(h: RecordedHistory, converter: DataConverter) -> bool:
    """Whether the journey, replayed by the current code, refused its registration (and so
    decided nothing on it)."""
    [outcome] = await replay([h.history], converter)
    return outcome.ok and outcome.state is not None and bool(registration_refusal(outcome.state))


async def check_provenance(
    histories: list[RecordedHistory],
    converter: DataConverter,
    decoded_once: DecodedMessages | None = None,
) -> ProvenanceCheck:
    """Verify every journey's start, every accepted report's and every command's signature
    against its round's keys, and that its signer may send it (the round's reporters). With
    `decoded_once`, the messages are decoded there, once for this and whatever reads them next."""
    check = ProvenanceCheck()
    decoder = decoded_once or DecodedMessages(converter)
    decoded = [(h, await decoder.of(h.history)) for h in histories]
    rounds: dict[str, RoundKeys] = {}
    # A round's runs (it may continue as new), oldest first: its key changes in the order taken.
    runs: dict[str, list[tuple[RecordedHistory, list[Message]]]] = defaultdict(list)
    for h, msgs in sorted(
        decoded, key=lambda d: d[0].start_time or datetime.min.replace(tzinfo=UTC)
    ):
        if h.kind == "round" and msgs and isinstance(msgs[0].content, RoundStart):
            runs[h.workflow_id].append((h, msgs))
    for workflow_id, chain in runs.items():
        first, first_msgs = chain[0]
        config = parse_round_config(first_msgs[0].content.config, f"{workflow_id} start input")
        if workflow_id != round_workflow_id(config.round_id):
            check.problems.append(
                f"{workflow_id}: runs the configuration of round {config.round_id}, not its own"
            )
            continue
        rules = journey_rules(config)
        timeline = key_timeline(rules, workflow_id, [m for _, msgs in chain for m in msgs])
        check.problems.extend(timeline.refused)
        check.verified += len(timeline.changes)
        rounds[config.round_id] = RoundKeys(
            rules, timeline, await _recorded_digest(first, converter)
        )
    for round_id, keys in sorted(rounds.items()):
        if not keys.timeline.initial:
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
        keys = rounds[round_id]
        timeline, digest = keys.timeline, keys.digest
        if isinstance(start, JourneyStart) and digest and start.rules.rules_digest != digest:
            check.problems.append(
                f"{h.workflow_id}: started with rules {start.rules.rules_digest[:12]}, not the round's {digest[:12]}"
            )
        if not timeline.initial:
            continue
        answered: set[str] = set()  # report ids taken before in this run: repeats
        # What keys the journey held: those in force when it was started (its admission reads
        # the round's keys then), and from each key change announced to it (inbox._change_keys).
        learned = msgs[0].at if h.kind == "journey" else None
        for m in msgs:
            if (
                learned is not None
                and isinstance(m.content, Announcement)
                and m.content.phase == Phase.KEYS_CHANGED
            ):
                learned = max(learned, m.content.at)
                continue
            if m.kind == "start" and isinstance(m.content, JourneyStart):
                # Every start, signed or not: a start without a signature is one no registrar
                # made, as the journey's admission judges it (domain/admission.py).
                problem = registrar_problem(m.content, keys.rules) or timeline.verify(
                    m.content, m.at, audience
                )
                if problem and await _refused_itself(h, converter):
                    check.refused_starts.append(f"{h.workflow_id} (run {h.run_id}): {problem}")
                    continue
            elif m.kind == "update" and isinstance(m.content, ChangeKeys):
                continue  # checked, in order, as the keys were built (key_timeline)
            elif m.kind == "update" and isinstance(m.content, Report):
                # A panellist's blind report may be signed for the candidate's code, which the
                # journey's start carries (domain/panels.py), instead of for the journey.
                code = start.candidate_code if isinstance(start, JourneyStart) else ""
                audiences = report_audiences(
                    audience, round_id, code, isinstance(m.content, BLIND_REPORTS)
                )
                # Who may send it, by the round's reporters, as the workflow that took it checked
                # (domain.sheet.sender_refusal): a real key of the round signs only what its
                # identity may send.
                problem = sender_refusal(m.content, keys.rules) or problem_for_every(
                    partial(timeline.verify, m.content, m.at, learned=learned), audiences
                )
                # Taken within its validity, as the validator checked it (a repeat is answered
                # whatever its validity). Whether one was required is not checked: histories
                # from before `valid_until` hold commands that carry none.
                if not problem and m.content.report_id not in answered:
                    problem = validity_problem(m.content, m.judged_at or m.at, required=False)
                answered.add(m.content.report_id)
            else:
                continue
            if problem:
                what = getattr(m.content, "report_id", "registration")
                check.problems.append(
                    f"{h.workflow_id} (run {h.run_id}) {m.name} {what} by "
                    f"{signer_of(m.content)} at {m.at.isoformat()}: {problem}"
                )
            else:
                check.verified += 1
    return check
