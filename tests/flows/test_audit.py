"""The auditor's checks: recorded histories replay, changes are caught, bundles resist tampering,
rankings recompute from the applicants' histories alone."""

from __future__ import annotations

import asyncio
import base64
import csv
import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from typer.testing import CliRunner

import audit
from activities.readmodel import panel_rows
from apps.fleet import build_worker
from auditing.bundle import MANIFEST, check_bundle, load_histories, write_bundle
from auditing.history import (
    DecodedMessages,
    RefusedSignal,
    decision_drift,
    decisions_of,
    messages,
    offers_of,
    replay,
    round_histories,
)
from auditing.provenance import check_provenance
from auditing.readmodel import projected
from auditing.recompute import NO_CODE, compare, recompute, recompute_optimalisasi
from client.api import RecruitmentApi
from domain.codes import Phase, SkdCode
from domain.columnar import CODES
from domain.config import parse_round_config
from domain.contracts import BroadcastRequest
from domain.messages import JourneyStart, JourneyState, RoundCarry, RoundStart, SkdReport
from domain.protocol import BROADCAST, OFFER_SEAT, SEND_OFFERS
from runtime.connection import connect, data_converter
from runtime.db import open_pool
from runtime.embedded import ensure_stack, isolated_settings, stop_stack
from runtime.keys import Keys, load_or_create_keys
from runtime.settings import LogFormat
from scripts.record_histories import local_activities, patch_markers, run_small_round
from tests.flows.test_sanctions import _person, _round
from tests.forked import DRIVER
from tests.roundkit import TEST_KEYRING
from workflows.applicant import ApplicantJourney
from workflows.formasi import FormasiSelection
from workflows.ids import journey_workflow_id
from workflows.round import RecruitmentRound
from workflows.versions import (
    CLAIM_LOOKS_AGAIN,
    CONTINUE_IN_ITS_OWN_TASK,
    LOCAL_ACTIVITY_BACKOFF_TIMERS,
    NOTICE_IN_ROUND_ZONE,
    OFFERS_BY_LOCAL_ACTIVITY,
    OPTIMALISASI_CONTINUES,
    PANEL_CHANGE_AFTER_CLOSE,
    SEALED_BEFORE_ADMISSION,
    SEAT_GIVEN_BACK_AT_FILING,
    SEAT_GIVEN_BACK_BEFORE_RESULT,
)

ROOT = Path(__file__).resolve().parent.parent.parent
RECORDED = ROOT / "tests" / "histories"
RECORDED_KEY = RECORDED / "payload_key.b64"
SIGNING_KEY = bytes(range(32))


# Each set was recorded by scripts/record_histories.py with the code of its day: the first before
# the patches 'project-at-rest', 'record-every-ending', 'reply-after-end', 'paged-broadcast' and
# 'continue-as-new-on-own-count', v2 after them, v3 after 'close-by-update' (closes are the
# journeys' close_stage update) with engine-2 journeys (no patch markers), v4 after the journey
# kept its facts in the applicant's sheet and took every report through one dynamic update. These
# stop once the final ranking is out. v4-full (`--full`, after the removal of the branches nothing
# reached) plays two formasi of one jabatan to the round's close: TMS with a sanggah accepted,
# rejected, unanswered and not filed; TH, T/L and P at SKD; DIS and TMS-SKB at SKB; a winner's APS
# in the final-appeal window, the seat offered by optimalisasi (declined, then accepted: P/L-2), TL;
# a window extended, a TMT move, NIPs, a missing DRH (TMS-DRH), Latsar (PNS, DIBERHENTIKAN); the
# round's optimalisasi, filing and latsar phases; the formasi's optimalisasi_closed, filing_closed
# and round_closed deliveries, its runs continuing-as-new between broadcast pages. v4-full-markers
# is the same round recorded just before the formasi's announce-to-candidates and
# announce-without-asking branches were removed: its formasi carry those patches' markers, which
# the deprecated patches must still accept. v5-full is the same round after the gateway and issue
# 14's first items: the round's optimalisasi-pool and optimalisasi-until-filing-closes patches
# (the TL wait in optimalisasi until filing closes), journeys with majors in their final entries,
# structured notices and the sanction key. v8-full is the same round with engine-3 journeys
# (issue 17 item 5): they answer the SKD and SKB closes with their read-model row and write none of
# their own at the close (patch close-answered-with-row, folded into engine 3: no marker). v7-full
# has the formasi keeping answers and rankings as pages (patch paged-ranking, engine-2 journeys);
# v9-full both (issue 17 merged); v10-full adds the round's board (patch round-view-board): the
# journeys' admissions read it instead of asking the round. v11-full: every journey started with
# its registration's confirmation (update-with-start, confirm_registration). v12-full: engine-4
# journeys, which ask the sanctions register themselves in their first task (patch
# sanctions-in-journey, folded: no marker). v13-full: the formasi fold the page references they
# carry into index pages every 2 (patch folded-page-references, local activity fold_pages) and
# tell their rankings page by page through read_leaf. v14-full: the round allocates only when a
# seat is freed and records the declines since its last allocation (patch optimalisasi-by-change).
# v15-full-cut: the full round with an optimalisasi history budget of 1 (`--history-budget 1`):
# the allocation for the withdrawn seat is cut to no offer, the round records "offers stopped"
# (patch optimalisasi-budget), and the two it would have offered the seat to end TL. v16-full:
# engine-5 journeys (patch local-activity-backoff-timers, folded: no marker), and the round and
# the formasi runs with that patch's marker. v17-full: the round sends its optimalisasi offers in
# a local activity (patch offers-by-local-activity), one for each allocation. v18-full-continued:
# the full round with a history budget of 164 (`--history-budget 164 --continued`): the second
# allocation for the withdrawn seat would not fit, so the round continues as a new run (patch
# optimalisasi-continues), which makes the offer and runs filing, the TMT move, Latsar and the close.
# v19-full-continued: the same, recorded after patch continue-in-its-own-task (the run ends the task
# that recorded its local activities on a timer before it continues). v20-full: every journey's
# start carries its candidate code (blind panel reports by code, docs/ARCHITECTURE.md). v21-panels:
# an interview panel drawn from a pool (`--panels`): a conflict declared (the change written at
# once, patch panel-change-written), a score refused, a flag struck on review.
# v23-full: the full round after the round's registration-minimum (an early close of registration
# judged against min_registration_days) and the formasi's results-name-formasi (every result
# names its formasi under its seal) patches, with their markers. v24-sealed: the small round, one
# journey of which was sent an unsealed announcement before its first workflow task (`--sealed`):
# it kept it until its admission (patch sealed-before-admission), then ignored it. v26-full: the
# full round at engine 6 (journeys judge ages on the date they started and count whole days of
# their appeal windows to 24:00 in the round's zone, patches applied-on-its-start-date and
# appeal-days-end-at-midnight; the round's optimalisasi-answer-deadline marker). v27-round-zone: the
# small round in WIT (`--zone Asia/Jayapura`), one journey TMS: every journey holds patch
# notice-in-round-zone's marker. v27-seat-before-result and v27-seat-at-filing (`--seat-given-back
# WHEN`): the small round whose winner gives the seat back, withdrawn before its final result
# reached it (patch seat-given-back-before-result) or at a filing reported incomplete while the
# window was open (patch seat-given-back-at-filing). Each v27 set's README says how it was made.
# v28-panel-after-close (`--panel-after-close`): the round of v21-panels, a conflict the committee
# recorded after the SKB closed and before the close reached B's journey, taken back at the close
# (patch panel-change-after-close); its README says how it was made. v29-full: the full round with
# the round's optimalisasi-fills-most marker (its allocation records `fill`). v30-full: the full
# round with the probation-year marker in the journey that passed Latsar.
# All must replay with the current code. (v22-national, a national round with its claims and two
# instansi rounds, v25-claim-sweep, a claim that released itself and one held by its journey, and
# v28-claim-looks-again, claims told in forged words that released themselves, hold other kinds of
# workflow: their own tests below.)
RECORDED_SETS = [
    RECORDED,
    RECORDED / "v2",
    RECORDED / "v3",
    RECORDED / "v4",
    RECORDED / "v4-full",
    RECORDED / "v5-full",
    RECORDED / "v6-full",
    RECORDED / "v7-full",
    RECORDED / "v8-full",
    RECORDED / "v9-full",
    RECORDED / "v10-full",
    RECORDED / "v11-full",
    RECORDED / "v12-full",
    RECORDED / "v13-full",
    RECORDED / "v14-full",
    RECORDED / "v15-full-cut",
    RECORDED / "v16-full",
    RECORDED / "v17-full",
    RECORDED / "v18-full-continued",
    RECORDED / "v19-full-continued",
    RECORDED / "v20-full",
    RECORDED / "v21-panels",
    RECORDED / "v23-full",
    RECORDED / "v24-sealed",
    RECORDED / "v26-full",
    RECORDED / "v27-round-zone",
    RECORDED / "v27-seat-before-result",
    RECORDED / "v27-seat-at-filing",
    RECORDED / "v28-panel-after-close",
    RECORDED / "v29-full",
    RECORDED / "v30-full",
    RECORDED / "v4-full-markers",
]


def recorded_converter(directory: Path = RECORDED):
    key = base64.b64decode((directory / "payload_key.b64").read_text().strip())
    return data_converter(Keys(payload_key=key, pseudonym_key=b"", signing_key=b""))


@workflow.defn(name="ApplicantJourney", sandboxed=False)
class JourneyWithAnExtraStep(ApplicantJourney):
    """A careless change: a pause before the administrative check (a new timer command)."""

    @workflow.run
    async def run(self, start: JourneyStart) -> JourneyState:
        return await super().run(start)

    async def administrative_check(self) -> None:
        await workflow.sleep(timedelta(seconds=1))
        await super().administrative_check()


@workflow.defn(name="ApplicantJourney", sandboxed=False)
class JourneyWithAnotherRuleVersion(ApplicantJourney):
    """A change that alters recorded decisions but issues the same commands."""

    @workflow.run
    async def run(self, start: JourneyStart) -> JourneyState:
        return await super().run(start)

    def _decide(self, event) -> None:
        super()._decide(event)
        self.decisions[-1] = self.decisions[-1].model_copy(update={"rule_version": "2025.1"})


@pytest.mark.parametrize("recorded_set", RECORDED_SETS, ids=lambda p: p.name)
async def test_recorded_histories_replay_with_the_current_code(recorded_set):
    histories = load_histories(recorded_set)
    assert {h.kind for h in histories} == {"journey", "formasi", "round"}
    outcomes = await replay([h.history for h in histories], recorded_converter(recorded_set))
    assert [(o.workflow_id, o.failure, o.drift) for o in outcomes if not o.ok] == []
    # Every workflow re-derived its decisions; a run that continued-as-new before its first one
    # (a formasi closing SKD over pages, v7-full) has none.
    continued = {
        h.run_id
        for h in histories
        if h.history.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    }
    assert all(decisions_of([o]) or o.run_id in continued for o in outcomes)


async def test_the_recorded_national_round_replays_with_the_current_code():
    """v22-national (`record_histories.py --national`): a national round, the claims of its NIKs
    (each held, unstarted, until the national SKD closes) and two instansi rounds joined to it,
    whose journeys checked their NIK's national claim at admission. One NIK tried a second
    instansi and was refused there; one journey started after its round closed registration
    early, refused its start and released its NIK's claim (terminated). Every one replays with
    the current code."""
    directory = RECORDED / "v22-national"
    histories = load_histories(directory)
    kinds = Counter(h.kind for h in histories)
    assert kinds == {
        "NationalRound": 1,
        "NationalClaim": 4,
        "round": 2,
        "formasi": 4,
        "journey": 4,
    }, kinds
    outcomes = await replay([h.history for h in histories], recorded_converter(directory))
    assert [(o.workflow_id, o.failure, o.drift) for o in outcomes if not o.ok] == []
    assert sum(o.unstarted for o in outcomes) == 4  # the claims wait for the national SKD
    released = [
        h
        for h in histories
        if h.kind == "NationalClaim"
        and h.history.events[-1].HasField("workflow_execution_terminated_event_attributes")
    ]
    assert len(released) == 1
    journeys = [o for o in outcomes if "/applicant/" in o.workflow_id]
    outcomes_of = sorted([d.outcome for d in decisions_of([o])] for o in journeys)
    assert outcomes_of == [["not admitted", "TMS"], ["registered"], ["registered"], ["registered"]]


async def test_the_recorded_claim_sweep_replays_with_the_current_code():
    """v25-claim-sweep (`record_histories.py --claim-sweep`): a national round whose claims wait
    30 s for their journey (patch claim-swept). One NIK's registrar claimed it and died before the
    journey's start: its claim looked for the journey after the grace and released itself
    (failed, type ClaimReleased). Another NIK registered: its journey told its claim it took it,
    and the claim holds on its timer. Both replay with the current code."""
    directory = RECORDED / "v25-claim-sweep"
    histories = load_histories(directory)
    kinds = Counter(h.kind for h in histories)
    assert kinds == {"NationalRound": 1, "NationalClaim": 2, "round": 1, "formasi": 2, "journey": 1}
    outcomes = await replay([h.history for h in histories], recorded_converter(directory))
    assert [(o.workflow_id, o.failure, o.drift) for o in outcomes if not o.ok] == []
    assert not any(o.unstarted for o in outcomes)
    claims = {
        h.history.workflow_id: h.history.events for h in histories if h.kind == "NationalClaim"
    }
    ends = sorted(
        events[-1].workflow_execution_failed_event_attributes.failure.application_failure_info.type
        or EventType.Name(events[-1].event_type)
        for events in claims.values()
    )
    assert ends == ["ClaimReleased", "EVENT_TYPE_TIMER_STARTED"]
    held = next(e for e in claims.values() if e[-1].HasField("timer_started_event_attributes"))
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in [e.event_type for e in held]


async def test_the_recorded_claims_told_in_forged_words_released_themselves_on_replay():
    """v28-claim-looks-again (`record_histories.py --claim-sweep --forged`): v25's play after patch
    claim-looks-again, with three registrars that died. Two of their claims were told in the
    journey's words, by someone holding the payload key, that their journey took them (one by the
    signal claim_taken, one by the update take_claim): like the third, told nothing, each looked,
    found no journey and released itself. The claim whose journey took it looked, found it and
    holds on its timer. Every claim holds the patch's marker, and all replay with the current
    code."""
    directory = RECORDED / "v28-claim-looks-again"
    histories = load_histories(directory)
    kinds = Counter(h.kind for h in histories)
    assert kinds == {"NationalRound": 1, "NationalClaim": 4, "round": 1, "formasi": 2, "journey": 1}
    outcomes = await replay([h.history for h in histories], recorded_converter(directory))
    assert [(o.workflow_id, o.failure, o.drift) for o in outcomes if not o.ok] == []
    claims = [h.history for h in histories if h.kind == "NationalClaim"]
    assert all(CLAIM_LOOKS_AGAIN in patch_markers(claim) for claim in claims)

    def told_looked_ended(claim) -> tuple[str, int, str]:
        events = claim.events
        types = [e.event_type for e in events]
        told = (
            "signal"
            if EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in types
            else "update"
            if EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED in types
            else "nothing"
        )
        looked = [kind for _, kind in local_activities(claim)].count("find_claimed_journey")
        failed = events[-1].workflow_execution_failed_event_attributes.failure
        return told, looked, failed.application_failure_info.type or "held"

    assert sorted(told_looked_ended(claim) for claim in claims) == [
        ("nothing", 1, "ClaimReleased"),
        ("signal", 1, "ClaimReleased"),  # forged
        ("signal", 1, "held"),  # its journey's
        ("update", 1, "ClaimReleased"),  # forged
    ]


async def test_every_journey_of_the_wit_round_wrote_its_notice_in_the_rounds_zone():
    """v27-round-zone (`record_histories.py --zone Asia/Jayapura`): each journey of a round outside
    WIB asks patch notice-in-round-zone when it records its administrative result, MS or TMS."""
    histories = load_histories(RECORDED / "v27-round-zone")
    outcomes = await replay(
        [h.history for h in histories], recorded_converter(RECORDED / "v27-round-zone")
    )
    admin = sorted(
        next(d.outcome for d in decisions_of([o]) if d.stage == "admin_check")
        for o in outcomes
        if "/applicant/" in o.workflow_id
    )
    assert admin == ["MS", "MS", "TMS"]
    marked = {h.kind for h in histories if NOTICE_IN_ROUND_ZONE in patch_markers(h.history)}
    journeys = [h for h in histories if h.kind == "journey"]
    assert marked == {"journey"} and all(
        NOTICE_IN_ROUND_ZONE in patch_markers(h.history) for h in journeys
    )


@pytest.mark.parametrize(
    ("recorded_set", "patch", "ending"),
    [
        ("v27-seat-before-result", SEAT_GIVEN_BACK_BEFORE_RESULT, "APS"),
        ("v27-seat-at-filing", SEAT_GIVEN_BACK_AT_FILING, "TMS-DRH"),
    ],
)
async def test_a_recorded_seat_given_back_holds_its_patch_in_the_winners_journey_alone(
    recorded_set, patch, ending
):
    """v27-seat-before-result and v27-seat-at-filing (`record_histories.py --seat-given-back
    WHEN`): the winner who withdrew before its final result reached it (APS), or whose filing was
    reported incomplete while the window was open (TMS-DRH), holds its patch's marker and no other
    history does; the round recorded the seat vacated and offered it to the one who lost on rank."""
    directory = RECORDED / recorded_set
    histories = load_histories(directory)
    outcomes = {
        o.run_id: o
        for o in await replay([h.history for h in histories], recorded_converter(directory))
    }
    markers = {h.run_id: patch_markers(h.history) for h in histories}
    both = {SEAT_GIVEN_BACK_BEFORE_RESULT, SEAT_GIVEN_BACK_AT_FILING}
    marked = [
        (h.kind, held, outcomes[h.run_id].state.terminal.value)
        for h in histories
        for held in both & set(markers[h.run_id])
    ]
    assert marked == [("journey", patch, ending)]
    [round_run] = [o for o in outcomes.values() if o.workflow_id.endswith("/round")]
    assert [d.outcome for d in round_run.state.decisions].count("seat vacated") == 1
    assert offers_of([round_run]) != []


async def test_a_recorded_conflict_after_the_skb_closed_struck_no_score():
    """v28-panel-after-close (`record_histories.py --panel-after-close`): the committee recorded a
    conflict of B's first panellist after the round closed the SKB, before the close reached B's
    journey. B's journey alone holds patch panel-change-after-close's marker, recorded the conflict
    as arrived after the close, and composed its SKB with all three of its panel's scores."""
    directory = RECORDED / "v28-panel-after-close"
    histories = load_histories(directory)
    outcomes = {
        o.run_id: o
        for o in await replay([h.history for h in histories], recorded_converter(directory))
    }
    marked = [h for h in histories if PANEL_CHANGE_AFTER_CLOSE in patch_markers(h.history)]
    assert [h.kind for h in marked] == ["journey"]
    decisions = outcomes[marked[0].run_id].state.decisions
    late = [d.input["report_id"] for d in decisions if d.outcome == "arrived after the close"]
    assert late == ["coi-B-after-close"]
    [completed] = [d for d in decisions if d.stage == "skb" and d.outcome == "completed"]
    assert sorted(completed.input["components"]["panel"]["wawancara"].values()) == [70, 72, 74]


async def test_every_journey_of_v11_took_its_registration_confirmation_first_and_once():
    """v11-full: each journey's first update is the confirmation sent with its start, and the
    audit reads it as the registering client's (no report id, nothing decided by it)."""
    recorded = RECORDED / "v11-full"
    converter = recorded_converter(recorded)
    journeys = [h for h in load_histories(recorded) if h.kind == "journey"]
    assert len(journeys) == 14
    for h in journeys:
        updates = [m for m in await messages(h.history, converter) if m.kind == "update"]
        names = [m.name for m in updates]
        assert names[0] == "confirm_registration" and names.count("confirm_registration") == 1
        assert updates[0].report_id == ""


def _local_activities_of_first_task(history) -> list[str]:
    """The local activities a journey ran in its first workflow task, in order (marker data is
    the SDK core's own, not a payload: readable without the key)."""
    names, tasks = [], 0
    for e in history.events:
        if e.HasField("workflow_task_completed_event_attributes"):
            tasks += 1
            if tasks == 2:
                break
        elif (
            tasks == 1
            and e.HasField("marker_recorded_event_attributes")
            and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        ):
            data = e.marker_recorded_event_attributes.details["data"].payloads[0].data
            names.append(json.loads(data)["activity_type"])
    return names


async def test_every_journey_of_v12_asked_the_sanctions_register_in_the_task_that_read_its_round():
    """v12-full (engine 4): the register's check rides in the admission's workflow task (no
    action more), right after the round's view; v11-full's journeys never asked it."""
    for name, expected in (("v11-full", []), ("v12-full", ["check_sanctions"])):
        journeys = [h for h in load_histories(RECORDED / name) if h.kind == "journey"]
        assert len(journeys) == 14
        for h in journeys:
            first = _local_activities_of_first_task(h.history)
            assert first[:1] == ["read_round"], (name, first)
            assert [n for n in first if n == "check_sanctions"] == expected, (name, first)


async def test_v16_journeys_take_the_backoff_timers_by_engine_and_the_round_by_marker():
    """v16-full: engine-5 journeys take patch local-activity-backoff-timers without a marker
    (folded); the round and every formasi run decide it when they start, by its marker. v15's
    round, recorded before the patch, holds none."""
    v16 = load_histories(RECORDED / "v16-full")
    journeys = [h for h in v16 if h.kind == "journey"]
    assert len(journeys) == 14
    for h in journeys:
        assert LOCAL_ACTIVITY_BACKOFF_TIMERS not in patch_markers(h.history), h.workflow_id
    others = [h for h in v16 if h.kind in ("round", "formasi")]
    assert others and all(
        LOCAL_ACTIVITY_BACKOFF_TIMERS in patch_markers(h.history) for h in others
    ), [h.workflow_id for h in others]
    v15_round = [h for h in load_histories(RECORDED / "v15-full-cut") if h.kind == "round"]
    assert v15_round and LOCAL_ACTIVITY_BACKOFF_TIMERS not in patch_markers(v15_round[0].history)


async def test_v17_round_sends_its_offers_in_a_local_activity_and_v16_as_signals():
    """v17-full: the round decides patch offers-by-local-activity when optimalisasi begins and
    sends each allocation's offers in one send_offers local activity, no offer_seat signal of its
    own; each offered journey holds the signal, sent by the worker's client. v16's round, recorded
    before the patch, signalled them itself."""

    def offer_signals(history) -> int:
        return sum(
            1
            for e in history.events
            if e.HasField("signal_external_workflow_execution_initiated_event_attributes")
            and e.signal_external_workflow_execution_initiated_event_attributes.signal_name
            == OFFER_SEAT.name
        )

    v17 = load_histories(RECORDED / "v17-full")
    [round_] = [h for h in v17 if h.kind == "round"]
    assert OFFERS_BY_LOCAL_ACTIVITY in patch_markers(round_.history)
    sends = [t for t, kind in local_activities(round_.history) if kind == SEND_OFFERS.name]
    result = await recompute(v17, recorded_converter(RECORDED / "v17-full"))
    assert len(sends) == result.allocations == 2
    assert offer_signals(round_.history) == 0
    offered = [
        h
        for h in v17
        if h.kind == "journey"
        and any(
            e.HasField("workflow_execution_signaled_event_attributes")
            and e.workflow_execution_signaled_event_attributes.signal_name == OFFER_SEAT.name
            for e in h.history.events
        )
    ]
    assert len(offered) == 2
    [v16_round] = [h for h in load_histories(RECORDED / "v16-full") if h.kind == "round"]
    assert OFFERS_BY_LOCAL_ACTIVITY not in patch_markers(v16_round.history)
    assert offer_signals(v16_round.history) == 2


async def test_v19_round_continues_in_a_task_of_its_own():
    """v19-full-continued: the round's first run ends the task that recorded its local activities
    on a timer, and continues in the next task, which records none (patch
    continue-in-its-own-task); both runs replay without drift and recompute finds no difference."""
    recorded = RECORDED / "v19-full-continued"
    histories = load_histories(recorded)
    first, second = [h for h in histories if h.kind == "round"]
    assert CONTINUE_IN_ITS_OWN_TASK in patch_markers(first.history)
    events = first.history.events
    assert events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    fired = max(i for i, e in enumerate(events) if e.HasField("timer_fired_event_attributes"))
    assert not [
        e
        for e in events[fired:]
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    outcomes = await replay([first.history, second.history], recorded_converter(recorded))
    assert [(o.failure, o.drift) for o in outcomes] == [(None, "")] * 2


async def test_v18_round_continues_in_optimalisasi_and_hands_on_what_the_next_run_reads():
    """v18-full-continued: the round's first run makes the first offer for the withdrawn seat;
    after its decline the next would not fit the budget, so the run continues as new. Its carry
    holds who was offered, the decline and the seat given up as state, not the allocation or the
    offer's answer, which stay in the first run; the second run offers
    the seat, takes the TMT move and closes the round. The auditor reads both runs' allocations,
    and a carry that does not match what the run's replay hands on is drift."""
    recorded = RECORDED / "v18-full-continued"
    converter = recorded_converter(recorded)
    histories = load_histories(recorded)
    first, second = [h for h in histories if h.kind == "round"]
    assert OPTIMALISASI_CONTINUES in patch_markers(first.history)
    end = first.history.events[-1]
    assert end.HasField("workflow_execution_continued_as_new_event_attributes")
    [start] = await converter.decode(
        end.workflow_execution_continued_as_new_event_attributes.input.payloads, [RoundStart]
    )
    carry = RoundCarry.model_validate(start.carry)
    [declined] = carry.declined_since
    assert carry.offered_tail == [declined] and not carry.offered_pages and not carry.pending
    assert carry.accepted_by_formasi == {} and carry.offers_declined == 1
    assert len(carry.vacated) == 1 and carry.given_up_since == []
    assert carry.decisions_left == 2  # the seat given up and the first allocation
    assert {d.outcome for d in carry.decisions}.isdisjoint({"allocated", "seat vacated"})

    outcomes = await replay([first.history, second.history], converter)
    assert [(o.failure, o.drift) for o in outcomes] == [(None, "")] * 2
    # The answers: the decline in the first run's state, the acceptance in the second's.
    assert sorted(offers_of(outcomes).values()) == ["accepted", "declined"]
    assert list(offers_of(outcomes[:1]).values()) == ["declined"]
    allocations = [
        d.input["offers"]
        for d in decisions_of(outcomes)
        if (d.stage, d.outcome) == ("optimalisasi", "allocated")
    ]
    assert len(allocations) == 2 and allocations[0][0][0] == declined
    assert allocations[1][0][0] != declined
    result = await recompute(histories, converter)
    assert result.allocations == 2 and result.differences() == []

    # A carry that lost a decision the run hands on is drift, named as such.
    lost = RoundCarry.model_validate(start.carry).model_copy(
        update={"decisions": carry.decisions[:-1]}
    )
    edited = RoundStart.model_validate(start.model_dump()).model_copy(
        update={"carry": lost.model_dump(mode="json")}
    )
    tampered = WorkflowHistory.from_json(first.workflow_id, first.history.to_json())
    payloads = await converter.encode([edited])
    attrs = tampered.events[-1].workflow_execution_continued_as_new_event_attributes
    del attrs.input.payloads[:]
    attrs.input.payloads.extend(payloads)
    [drifted] = await replay([tampered], converter)
    assert drifted.failure is None and "decisions recorded" in drifted.drift


async def test_a_new_command_in_the_journey_is_caught_as_non_determinism():
    journeys = [h.history for h in load_histories(RECORDED) if h.kind == "journey"]
    outcomes = await replay(journeys, recorded_converter(), workflows=[JourneyWithAnExtraStep])
    assert outcomes and all(o.failure is not None for o in outcomes)
    assert "nondetermin" in str(outcomes[0].failure).lower()


async def test_a_changed_decision_with_the_same_commands_is_caught_as_drift():
    journeys = [h.history for h in load_histories(RECORDED) if h.kind == "journey"]
    outcomes = await replay(
        journeys, recorded_converter(), workflows=[JourneyWithAnotherRuleVersion]
    )
    assert all(o.failure is None for o in outcomes)
    drifted = [o for o in outcomes if o.drift]
    assert drifted, (
        "the journey that ended (T/L) recorded its decisions; the variant must differ from them"
    )
    assert "rules 2025.1" in drifted[0].drift


@pytest.mark.parametrize(
    "recorded_set",
    [
        RECORDED / "v3",
        RECORDED / "v4",
        RECORDED / "v4-full",
        RECORDED / "v5-full",
        RECORDED / "v7-full",
        RECORDED / "v9-full",
        RECORDED / "v10-full",
        RECORDED / "v11-full",
        RECORDED / "v12-full",
        RECORDED / "v13-full",
        RECORDED / "v14-full",
        RECORDED / "v15-full-cut",
        RECORDED / "v16-full",
        RECORDED / "v17-full",
        RECORDED / "v18-full-continued",
        RECORDED / "v19-full-continued",
        RECORDED / "v20-full",
        RECORDED / "v21-panels",
        RECORDED / "v23-full",
        RECORDED / "v24-sealed",
        RECORDED / "v26-full",
        RECORDED / "v27-round-zone",
        RECORDED / "v27-seat-before-result",
        RECORDED / "v27-seat-at-filing",
        RECORDED / "v28-panel-after-close",
        RECORDED / "v29-full",
        RECORDED / "v30-full",
    ],
    ids=lambda p: p.name,
)
async def test_recompute_of_a_round_closed_by_update_matches(recorded_set):
    result = await recompute(load_histories(recorded_set), recorded_converter(recorded_set))
    assert result.differences() == []
    announced, recomputed = result.pairs[0]
    assert announced.ranked and announced.cut_key == recomputed.cut_key
    if announced.winner_pages is None:
        assert announced.winners == recomputed.winners
    else:  # v7-full: recorded as pages, equal by digest (differences() compared them)
        assert announced.winners_count == len(recomputed.winners) > 0


async def test_the_recorded_cut_replays_and_a_moved_cut_is_named():
    """v15-full-cut was recorded with a history budget of 1: the one allocation is cut to no offer
    and the round stops offering. Recompute agrees with the cut the code of its day recorded, and
    names a cut moved by one offer."""
    directory = RECORDED / "v15-full-cut"
    histories = load_histories(directory)
    converter = recorded_converter(directory)
    result = await recompute(histories, converter)
    assert result.differences() == [] and result.allocations == 1
    [round_history] = [h for h in histories if h.kind == "round"]
    [outcome] = await replay([round_history.history], converter)
    decisions = outcome.state.decisions
    [allocated] = [d for d in decisions if d.outcome == "allocated"]
    assert allocated.input["cut_at"] == 0 and allocated.input["offers"] == []
    assert allocated.input["not_offered"] == {"F2": 1}
    assert allocated.input["budget"]["history_budget"] == 1
    assert [d.outcome for d in decisions].count("offers stopped") == 1
    start = (await messages(round_history.history, converter))[0].content
    moved = allocated.model_copy(update={"input": {**allocated.input, "cut_at": 1}})
    recomputed = {r.formasi_code: r for _, r in result.pairs}
    differences = recompute_optimalisasi(
        parse_round_config(start.config, "round configuration"),
        [moved if d is allocated else d for d in decisions],
        recomputed,
        result.profiles,
    )
    found = [d.split("): ", 1)[1] for d in differences]
    assert found[:2] == [
        "cut at 1 offers, the budget allows 0",
        "seats not offered recorded {'F2': 1}, recomputed {}",
    ], differences
    assert len(found) == 3 and found[2].startswith("offers recorded [], recomputed [['"), found


async def test_recompute_of_the_recorded_round_matches_and_a_planted_difference_is_named():
    result = await recompute(load_histories(RECORDED), recorded_converter())
    assert result.differences() == []
    announced, recomputed = result.pairs[0]
    assert announced.ranked and announced.winners
    swapped = dataclasses.replace(announced, winners=announced.others, others=announced.winners)
    assert any("winners announced" in d for d in compare(swapped, recomputed))
    other_cut = dataclasses.replace(announced, cut_key=(1, 1, 1, 1))
    assert compare(other_cut, recomputed) == [
        f"formasi F1: SKD cut announced (1, 1, 1, 1), recomputed {recomputed.cut_key}"
    ]


async def test_each_applicants_recorded_skd_code_is_checked_against_the_recomputed_listing():
    result = await recompute(
        load_histories(RECORDED / "v5-full"), recorded_converter(RECORDED / "v5-full")
    )
    assert result.differences() == []
    announced, recomputed = result.pairs[0]
    listing, columns = recomputed.skd_listing, recomputed.skd_columns
    assert listing is not None and columns is not None and recomputed.skd_recorded is not None
    assert (recomputed.skd_recorded != NO_CODE).all()  # every journey recorded its code
    first = int(listing.order[0])  # the best: P/L; plant a P in its record
    recomputed.skd_recorded[first] = CODES.index(SkdCode.PASSED)
    applicant = listing.listed_ids(columns.ids)[0]
    assert compare(announced, recomputed) == [
        f"formasi F1: applicant {applicant} recorded SKD code P, recomputed P/L"
    ]


def _bundle(tmp_path: Path, recorded_set: Path = RECORDED / "v4") -> Path:
    bundle = tmp_path / "bundle"
    write_bundle(load_histories(recorded_set), "recorded", bundle, SIGNING_KEY)
    return bundle


def test_verify_accepts_an_intact_bundle_and_names_a_file_with_one_byte_changed(tmp_path):
    bundle = _bundle(tmp_path)
    key_file = str(RECORDED / "v4" / "payload_key.b64")
    runner = CliRunner()
    ok = runner.invoke(audit.app, ["verify", str(bundle), "--payload-key-file", key_file])
    assert ok.exit_code == 0, ok.output
    assert "took unsigned reports" in ok.output.replace("\n", " ")  # v4 predates signing
    victim = sorted((bundle / "histories").glob("*formasi*"))[0]
    data = bytearray(victim.read_bytes())
    at = data.index(b'"eventId"') + 1
    data[at] ^= 0x20  # one byte
    victim.write_bytes(bytes(data))
    bad = runner.invoke(audit.app, ["verify", str(bundle), "--payload-key-file", key_file])
    assert bad.exit_code == 1
    assert victim.name in bad.output.replace("\n", "")


def test_recompute_writes_the_whole_skd_listing_with_each_recorded_code(tmp_path):
    bundle = _bundle(tmp_path, RECORDED / "v5-full")
    key_file = str(RECORDED / "v5-full" / "payload_key.b64")
    listing = tmp_path / "skd.csv"
    args = ["recompute", "recorded", "--bundle", str(bundle), "--payload-key-file", key_file]
    done = CliRunner().invoke(audit.app, [*args, "--skd-listing", str(listing)])
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(listing.open()))
    assert "10 SKD listing lines written" in " ".join(done.output.split())
    assert [(r["formasi"], r["line"]) for r in rows] == [
        (f, str(line)) for f in ("F1", "F2") for line in range(1, 6)
    ]
    assert all(r["code"] == r["recorded_code"] for r in rows)
    assert rows[0]["rank"] == "1" and rows[0]["code"] == "P/L"
    nowhere = CliRunner().invoke(
        audit.app, [*args, "--skd-listing", str(tmp_path / "no" / "x.csv")]
    )
    # Found before the histories are read: no folder to write it in.
    assert nowhere.exit_code == 2 and "--skd-listing" in nowhere.output


def test_verify_catches_an_altered_manifest_and_a_foreign_public_key(tmp_path):
    bundle = _bundle(tmp_path)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["round_id"] = "another"
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    assert any("signature does not match" in p for p in check_bundle(bundle).problems)
    fresh = _bundle(tmp_path / "fresh")
    other = tmp_path / "other"
    write_bundle([], "x", other, bytes(32))
    assert any("signature" in p for p in check_bundle(fresh, other / "public_key.pem").problems)


def test_an_unlisted_history_in_a_bundle_is_named(tmp_path):
    bundle = _bundle(tmp_path)
    extra = next((bundle / "histories").glob("*.json"))
    shutil.copy(extra, bundle / "histories" / "smuggled.json")
    assert check_bundle(bundle).problems == [
        f"{bundle / 'histories' / 'smuggled.json'}: not listed in the manifest"
    ]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def audit_stack(server_dir):
    """A stack of this module's own on ports of its own, with a worker: (client, keys, task queue).

    Apart from the session stack, on ports the system hands out free, so that a concurrent test
    session or another module's workflows cannot change what this audit sees.
    """
    settings = isolated_settings(
        server_dir("audit-stack"), task_queue="audit-test", log_format=LogFormat.JSON
    )
    info = await ensure_stack(settings)
    try:
        keys = load_or_create_keys(settings)
        client = await connect(settings, info, keys)
        pool = await open_pool(info.database_url, max_size=8)
        try:
            async with await build_worker(client, settings, pool):
                yield client, keys, settings
        finally:
            await pool.close()
    finally:
        stop_stack(settings)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live_round(audit_stack):
    """A small round driven to its final ranking on the audit stack: (round id, applicant ids)."""
    client, keys, settings = audit_stack
    round_id, ids = await run_small_round(
        client, settings.task_queue, keys.pseudonym_key, answer_within=1
    )
    await asyncio.sleep(1.0)  # visibility catches up with the last starts
    return round_id, ids


async def test_audit_of_a_live_round(audit_stack, live_round, tmp_path):
    client, keys, _ = audit_stack
    round_id, ids = live_round
    converter = data_converter(keys)
    histories = await round_histories(client, round_id)
    assert sorted(h.kind for h in histories) == [
        "formasi",
        "journey",
        "journey",
        "journey",
        "round",
    ]

    outcomes = await replay(
        [h.history for h in histories],
        converter,
        workflows=[ApplicantJourney, FormasiSelection, RecruitmentRound],
    )
    assert [o for o in outcomes if not o.ok] == []

    c1 = next(h for h in histories if h.workflow_id.endswith(ids["C1"]))
    inputs = [m for m in await messages(c1.history, converter) if m.kind == "update"]
    # The registration's confirmation (update-with-start, by the registering client) comes
    # first, then the services' reports.
    assert [(m.name, m.reporter, m.report_id) for m in inputs][:3] == [
        ("confirm_registration", client.identity, ""),
        ("report_admin", "bkpsdm-verifikator", "adm-C1"),
        ("report_skd", "cat-bkn", "skd-C1"),
    ]
    trail = decisions_of([o for o in outcomes if o.run_id == c1.run_id])
    queried = await client.get_workflow_handle(c1.workflow_id).query(ApplicantJourney.state)
    live = [d.model_dump(mode="json") for d in queried.decisions[: len(trail)]]
    assert decision_drift(live, trail) == ""  # the replayed trail is the live one

    result = await recompute(histories, converter)
    assert result.differences() == []
    # The formasi recorded its ranking as pages (patch paged-ranking): the recompute built the
    # same pages from its own ranking; swapping the announced pages is a difference it names.
    announced, recomputed = result.pairs[0]
    assert announced.winner_pages and recomputed.winners[0][0] == ids["C1"]
    swapped = dataclasses.replace(
        announced, winner_pages=announced.other_pages, other_pages=announced.winner_pages
    )
    assert any("winners announced as" in d for d in compare(swapped, recomputed))

    bundle = tmp_path / "bundle"
    write_bundle(histories, round_id, bundle, keys.signing_key)
    assert check_bundle(bundle).ok


async def test_the_commands_exit_0_on_a_sound_round_and_1_on_a_problem(audit_stack, live_round):
    _, _, settings = audit_stack
    round_id, ids = live_round
    env = {
        **os.environ,
        "CASN_DATA_DIR": str(settings.data_dir),
        "CASN_TEMPORAL_PORT": str(settings.temporal_port),
        "CASN_TEMPORAL_UI_PORT": str(settings.temporal_ui_port),
        "CASN_POSTGRES_PORT": str(settings.postgres_port),
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        return DRIVER.run("audit.py", list(args), env, ROOT, timeout=60)

    trail = await asyncio.to_thread(run, "trail", round_id, ids["C1"], "--json")
    assert trail.returncode == 0, trail.stderr
    assert json.loads(trail.stdout)["decisions"][0]["outcome"] == "registered"
    replayed = await asyncio.to_thread(run, "replay", round_id, "--kind", "journey")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    recomputed = await asyncio.to_thread(run, "recompute", round_id)
    assert recomputed.returncode == 0, recomputed.stdout + recomputed.stderr
    unknown = await asyncio.to_thread(run, "trail", round_id, "A" * 16)
    assert unknown.returncode == 1 and "A" * 16 in unknown.stderr


async def test_every_report_of_a_signed_round_verifies_under_the_rounds_keys(
    audit_stack, live_round
):
    client, keys, _ = audit_stack
    round_id, _ = live_round
    histories = await round_histories(client, round_id)

    check = await check_provenance(histories, data_converter(keys))

    assert check.problems == [] and check.unsigned_rounds == []
    assert check.verified >= 9  # 3 admin + 3 SKD + the SKB reports of the two who went on


async def test_a_report_changed_in_the_history_is_named_by_its_signature(audit_stack, live_round):
    client, keys, _ = audit_stack
    round_id, ids = live_round
    converter = data_converter(keys)
    histories = await round_histories(client, round_id)
    c3 = next(h for h in histories if h.workflow_id.endswith(ids["C3"]))
    for event in c3.history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.input.name == "report_skd":
                # An insider with the payload key re-encrypts better scores into the history.
                [report] = await converter.decode(request.input.args.payloads, [SkdReport])
                better = report.model_copy(update={"twk": 150, "tiu": 175, "tkp": 225})
                [payload] = await converter.encode([better])
                request.input.args.payloads[0].CopyFrom(payload)

    check = await check_provenance(histories, converter)

    assert len(check.problems) == 1
    assert "report_skd skd-C3 by cat-bkn" in check.problems[0]
    assert "does not verify under cat-bkn's key" in check.problems[0]


def test_verify_names_journeys_started_with_other_rules_than_their_round(tmp_path):
    # The first recorded set: its journeys carry the digest of the rules the API built from the
    # operator's file, which is not the digest the round recorded when it opened.
    bundle = _bundle(tmp_path, RECORDED)
    result = CliRunner().invoke(
        audit.app, ["verify", str(bundle), "--payload-key-file", str(RECORDED_KEY)]
    )
    out = result.output.replace("\n", "")
    assert result.exit_code == 1
    assert out.count("started with rules 26a26b562642, not the round's 071cd2bfe390") == 3


async def test_starts_that_carry_their_candidate_code_keep_their_signatures():
    """v20-full's journeys were registered with their candidate codes in their starts, which the
    registrar signed: each code is the applicant's (a keyed code, never the number), and every
    start and report of the set verifies under the round's keys."""
    directory = RECORDED / "v20-full"
    histories, converter = load_histories(directory), recorded_converter(directory)
    codes = []
    for h in histories:
        if h.kind == "journey":
            [start] = await converter.decode(
                h.history.events[0].workflow_execution_started_event_attributes.input.payloads,
                [JourneyStart],
            )
            codes.append(start.candidate_code)
            assert start.applicant_id not in start.candidate_code
    assert len(codes) == 14 and all(re.fullmatch(r"K-[0-9A-F]{10}", c) for c in codes), codes
    assert len(set(codes)) == len(codes)
    check = await check_provenance(histories, converter)
    assert check.problems == [] and check.verified > 14


async def test_the_recorded_panels_reach_the_read_model_when_they_change():
    """v21-panels, replayed: what each journey handed the read model's panel_seats (panel_rows of
    its projections). A's panel is written when drawn, again by the task that took the conflict
    declaration (before the score its panellist sent anyway was refused: patch
    panel-change-written), and again after the review; the last is the panel whose scores the
    SKB counted. B's, drawn once, is written once."""
    directory = RECORDED / "v21-panels"
    histories = load_histories(directory)
    found = await projected("recorded", histories, recorded_converter(directory))
    written = {
        a: [(p, x["panellists"]) for p in ps for x in panel_rows(p)]
        for a, ps in found.projections.items()
    }
    changed, once = sorted(written.values(), key=len, reverse=True)
    assert [len(changed), len(once)] == [3, 1]
    (drawn_at, drawn), (conflict_at, after_conflict), (_, after_review) = changed
    assert [d.outcome for d in drawn_at.new_decisions if d.stage == "skb"] == ["panel assigned"]
    assert [d.outcome for d in conflict_at.new_decisions] == ["panel changed"]
    assert len(set(drawn) - set(after_conflict)) == len(set(after_conflict) - set(drawn)) == 1
    assert len(set(after_conflict) - set(after_review)) == 1
    completed = [
        d
        for p in found.projections[next(a for a, w in written.items() if len(w) == 3)]
        for d in p.new_decisions
        if d.outcome == "completed"
    ]
    assert sorted(completed[-1].input["components"]["panel"]["wawancara"]) == sorted(after_review)
    assert len(once[0][1]) == 3


@workflow.defn(name="ApplicantJourney", sandboxed=False)
class JourneyJudgingBeforeAdmission(ApplicantJourney):
    """Patch sealed-before-admission's branch taken out, its marker still written: an announcement
    that arrives before the journey's admission is judged at once, without its round's secret."""

    @workflow.run
    async def run(self, start: JourneyStart) -> JourneyState:
        return await super().run(start)

    def _patched(self, patch: str) -> bool:
        return super()._patched(patch) and patch != SEALED_BEFORE_ADMISSION


async def test_an_announcement_held_until_admission_is_caught_when_judged_at_once():
    """v24-sealed (`record_histories.py --sealed`): one journey was sent an unsealed administration
    result 30 days old before its first workflow task (started on a queue no worker polled yet).
    It kept it until its round had admitted it (patch sealed-before-admission), ignored it then,
    and went on to its own administration and SKD (MS, then T/L). Replayed with the branch taken
    out, that journey takes the forgery (TMS, and it ends): non-determinism; the others replay."""
    directory = RECORDED / "v24-sealed"
    histories, converter = load_histories(directory), recorded_converter(directory)
    [early] = [h for h in histories if SEALED_BEFORE_ADMISSION in patch_markers(h.history)]
    kinds = [e.WhichOneof("attributes") for e in early.history.events]
    assert kinds.index("workflow_execution_signaled_event_attributes") < kinds.index(
        "workflow_task_started_event_attributes"
    )
    # The forgery, then the round's own administration result (sealed), which the journey took.
    forged, told = [m for m in await messages(early.history, converter) if m.kind == "signal"][:2]
    assert forged.name == told.name == "announce"
    assert forged.content.phase == told.content.phase == "administration"
    assert not forged.content.seal and told.content.seal
    [outcome] = await replay([early.history], converter)
    assert outcome.ok, (outcome.failure, outcome.drift)
    trail = [(d.stage, d.outcome) for d in outcome.state.decisions if d.stage != "registered"]
    assert trail == [("admin_check", "MS"), ("skd_ranking", "T/L")]
    journeys = [h for h in histories if h.kind == "journey"]
    assert len(journeys) == 3
    outcomes = await replay(
        [h.history for h in journeys], converter, workflows=[JourneyJudgingBeforeAdmission]
    )
    assert [o.workflow_id for o in outcomes if o.failure is not None] == [early.workflow_id]
    assert all(o.ok for o in outcomes if o.workflow_id != early.workflow_id)
    [failed] = [o for o in outcomes if o.failure is not None]
    assert "nondetermin" in str(failed.failure).lower()


class _Broadcasts(Interceptor):
    """Keeps, by run, the broadcast requests the replayed code schedules: replay compares an
    activity's type with the history's, never its input."""

    def __init__(self) -> None:
        self.by_run: dict[str, list[BroadcastRequest]] = defaultdict(list)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        by_run = self.by_run

        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input: StartActivityInput):
                if input.activity == BROADCAST.name:
                    by_run[workflow.info().run_id].append(input.args[0])
                return super().start_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound


@pytest.mark.parametrize(
    "recorded_set", [RECORDED / "v20-full", RECORDED / "v23-full"], ids=lambda p: p.name
)
async def test_the_formasi_broadcast_what_they_recorded(recorded_set):
    """Each formasi run, replayed, schedules the broadcasts its history scheduled, announcement
    for announcement. v23-full's results name their formasi under the seal (patch
    results-name-formasi), v20-full's do not: a branch whose only effect is what it sends."""
    histories, converter = load_histories(recorded_set), recorded_converter(recorded_set)
    runs = [h for h in histories if h.kind == "formasi"]
    capture = _Broadcasts()
    outcomes = await replay([h.history for h in runs], converter, interceptors=[capture])
    assert all(o.ok for o in outcomes)
    named, compared = set(), 0
    for h in runs:
        recorded = [
            (await converter.decode(attrs.input.payloads, [BroadcastRequest]))[0]
            for e in h.history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and (attrs := e.activity_task_scheduled_event_attributes).activity_type.name
            == BROADCAST.name
        ]
        # An open run's last broadcast may be scheduled by replay and not yet by its history.
        replayed = capture.by_run[h.run_id][: len(recorded)]
        assert replayed == recorded, h.workflow_id
        compared += len(recorded)
        named |= {
            r.announcement.formasi_code
            for r in recorded
            if r.announcement.phase in (Phase.SKD_RESULT, Phase.FINAL_RESULT, Phase.FINAL_CONFIRMED)
        }
    assert compared > 20
    assert named == ({"F1", "F2"} if recorded_set.name == "v23-full" else {""}), named


async def test_a_round_recorded_before_signing_is_named_as_unsigned():
    check = await check_provenance(
        load_histories(RECORDED / "v4"), recorded_converter(RECORDED / "v4")
    )

    assert check.unsigned_rounds == ["recorded"] and check.problems == [] and check.verified == 0


async def test_a_forged_signal_in_a_history_is_listed_as_refused_not_a_stop(audit_stack, tmp_path):
    client, keys, settings = audit_stack
    # A journey of a round of its own, registration open for minutes: running whenever this test
    # comes (the live round's winner ends at its filing's close, 90 s after the round began,
    # which a loaded machine's run of this module had passed by the time it came here).
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    config, _ = await _round(api, tmp_path, "forged-signal")
    applicant = (await api.register(config, _person(date(1995, 5, 5)), "sscasn")).applicant_id
    # A client without the payload key (no codec): its signal is recorded in plaintext.
    outsider = await Client.connect(
        client.service_client.config.target_host, data_converter=pydantic_data_converter
    )
    journey = journey_workflow_id(config.round_id, applicant)
    await outsider.get_workflow_handle(journey).signal("announce", {"phase": "final_result"})
    history = await client.get_workflow_handle(journey).fetch_history()

    listed = await messages(history, data_converter(keys))

    refused = [m for m in listed if isinstance(m.content, RefusedSignal)]
    assert [m.name for m in refused] == ["announce"]
    assert "cannot decode" in refused[0].content.reason


def test_export_without_the_signing_key_stops_before_fetching_and_names_the_setting(
    stack, keys, tmp_path
):
    # A deployment (CASN_TEMPORAL_ADDRESS set) never generates keys; this one has no signing key.
    env = {k: v for k, v in os.environ.items() if k != "CASN_SIGNING_KEY"}
    env.update(
        CASN_TEMPORAL_ADDRESS=stack.temporal_address,
        CASN_DATABASE_URL=stack.database_url,
        CASN_DATA_DIR=str(tmp_path / "data"),
        CASN_PAYLOAD_KEY=base64.b64encode(keys.payload_key).decode(),
        CASN_PSEUDONYM_KEY=base64.b64encode(keys.pseudonym_key).decode(),
    )
    bundle = tmp_path / "bundle"
    result = DRIVER.run(
        "audit.py", ["export", "NO-SUCH-ROUND", "--out", str(bundle)], env, ROOT, 60
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # The key is asked for first: fetched first, the unknown round would have been the error.
    assert "CASN_SIGNING_KEY is not set" in result.stderr
    assert "no workflows found" not in result.stderr
    assert not bundle.exists()


async def test_recompute_decodes_each_history_once_for_its_provenance_check_and_itself(
    monkeypatch,
):
    """audit.py recompute runs the provenance check, then the recompute: each history's messages
    are decoded once for both, and both find what each finds alone."""
    import auditing.history as history_module

    histories = load_histories(RECORDED / "v5-full")
    converter = recorded_converter(RECORDED / "v5-full")
    alone = await check_provenance(histories, converter)
    alone_result = await recompute(histories, converter)
    decoded: list[str] = []
    decode = history_module.messages

    async def counted(history, conv):
        decoded.append(history.run_id)
        return await decode(history, conv)

    monkeypatch.setattr(history_module, "messages", counted)
    shared = DecodedMessages(converter)
    provenance = await check_provenance(histories, converter, shared)
    result = await recompute(histories, converter, shared)
    assert sorted(decoded) == sorted(h.history.run_id for h in histories)  # once each
    assert (provenance.verified, provenance.problems) == (alone.verified, alone.problems)
    assert result.differences() == alone_result.differences() == []
    assert [(a.winners, r.winners) for a, r in result.pairs] == [
        (a.winners, r.winners) for a, r in alone_result.pairs
    ]
