"""Optimalisasi allocates again only when a seat is declined or given up (patch
optimalisasi-by-change), on the real stack.

SOURCE (quota 1) has five applicants, so four lose on rank; TARGET (same jabatan, three seats)
has none, and ELSEWHERE (another jabatan, one seat) has none that fit, as a real round has seats
nobody qualifies for. The first allocation offers TARGET's three seats to the three best; two
accept and one declines, which passes that seat to the fourth, who accepts. An acceptance changes
nothing an allocation reads, so the round allocates twice in all (before the patch: once per
answer while ELSEWHERE stayed empty, each reading every candidate's page and recording an empty
decision), sends an allocation's offers in one workflow task, and records only the declines new
since the allocation before. `recompute` allocates the same again from the histories."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from auditing.history import round_histories
from auditing.recompute import recompute
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import OfferAnswer
from domain.protocol import SEND_OFFERS
from runtime.connection import data_converter
from scripts.record_histories import local_activities, patch_markers
from tests.flows.test_offer_timing import _to_final_ranking
from tests.flows.test_round_end_to_end import _wait_offer, _wait_phase, _wait_stage
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    TEST_KEYRING,
    compressed_round,
    create_round_file,
    formasi,
    registration,
)
from workflows.ids import round_workflow_id
from workflows.versions import OFFERS_BY_LOCAL_ACTIVITY

pytestmark = pytest.mark.asyncio(loop_scope="session")

JABATAN = "Pranata Komputer Ahli Pertama"


async def test_allocations_follow_declines_not_answers(client, keys, running_worker, tmp_path):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"bychange-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = compressed_round(
        round_id,
        [
            formasi("SOURCE", 1, jabatan=JABATAN),
            formasi("TARGET", 3, jabatan=JABATAN),
            formasi("ELSEWHERE", 1, jabatan="Analis Keuangan Ahli Pertama"),
        ],
        CLOSED_BY_COMMITTEE,
        appeal_window=3,
        answer_within=1,  # no sanggah is filed: the final sanggah's answer time is only waited out
        offer_within=60,
        t0=t0,
    )
    await create_round_file(api, config, tmp_path)

    # Best final score first.
    ids = await _to_final_ranking(
        api, client, config, [registration(serial, "SOURCE") for serial in range(1, 6)]
    )

    # ids[0] wins SOURCE; ids[1..3] are offered TARGET; ids[2] declines, so ids[4] gets its seat.
    for a, accept in ((ids[1], True), (ids[2], False), (ids[3], True), (ids[4], True)):
        await _wait_offer(client, round_id, a)
        await api.report(
            round_id, a, OfferAnswer(report_id=f"answer-{a}", reported_by="sscasn", accept=accept)
        )
    await _wait_phase(api, round_id, "filing")
    for a in (ids[1], ids[3], ids[4]):
        placed = await _wait_stage(client, round_id, a, {Stage.FILING}, timeout=30)
        assert (placed.final_code.value, placed.placed_formasi) == ("P/L-2", "TARGET")

    state = await api.round_state(round_id)
    allocations = [
        d.input for d in state.decisions if (d.stage, d.outcome) == ("optimalisasi", "allocated")
    ]
    assert [a["offers"] for a in allocations] == [
        [[ids[1], "TARGET"], [ids[2], "TARGET"], [ids[3], "TARGET"]],
        [[ids[4], "TARGET"]],
    ]
    assert [a["declined_since"] for a in allocations] == [[], [ids[2]]]
    assert [a["vacancies"] for a in allocations] == [
        {"ELSEWHERE": 1, "TARGET": 3},
        {"ELSEWHERE": 1, "TARGET": 1},
    ]
    assert sorted(state.offers.values()) == ["accepted"] * 3 + ["declined"]

    history = await client.get_workflow_handle(round_workflow_id(round_id)).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    # Four answers and an empty seat the whole time: one allocation for the start, one for the
    # decline, none for the three acceptances.
    assert scheduled.count("allocate_pages") == 2
    # The offers leave in a local activity, one for each allocation (patch
    # offers-by-local-activity): no signal of the round's own, no task to take its completion.
    assert not any(
        e.HasField("signal_external_workflow_execution_initiated_event_attributes")
        and e.signal_external_workflow_execution_initiated_event_attributes.signal_name
        == "offer_seat"
        for e in history.events
    )
    sent_in = [task for task, kind in local_activities(history) if kind == SEND_OFFERS.name]
    assert len(sent_in) == 2, "one local activity for each allocation's offers"
    assert OFFERS_BY_LOCAL_ACTIVITY in patch_markers(history)

    histories = await round_histories(client, round_id)
    result = await recompute(histories, data_converter(keys))
    assert (result.allocations, result.differences()) == (2, [])
