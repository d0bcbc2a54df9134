"""A winner who withdraws before the NIP gives the seat back: optimalisasi offers it to the next."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import pytest

from auditing.history import round_histories
from auditing.recompute import recompute
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import (
    OfferAnswer,
    Withdrawal,
)
from runtime.connection import data_converter
from tests.flows.test_round_end_to_end import _state, _wait_offer, _wait_stage
from tests.roundkit import (
    TEST_KEYRING,
    compressed_round,
    create_round_file,
    formasi,
    play_to_skb_close,
    registration,
)
from workflows.ids import round_workflow_id
from workflows.versions import OPTIMALISASI_SEAT_GIVEN_UP_ONCE

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _f1_round(api, tmp_path, round_id: str, seats: int, t0: datetime):
    """A round with formasi F1 of `seats` seats, windows long enough that filing stays open while
    winners withdraw in it; created, its configuration returned."""
    config = compressed_round(
        round_id,
        [formasi("F1", seats)],
        {
            "registration": (-60, 3),
            "administration": (3, 600),
            "skd": (600, 1200),
            "skb": (1200, 1800),
            "filing": (1800, 2400),
            "latsar": (2400, 3000),
        },
        answer_within=1,  # no sanggah is filed: the final sanggah's answer time is only waited out
        t0=t0,
    )
    await create_round_file(api, config, tmp_path)
    return config


async def test_withdrawn_winner_seat_goes_to_next_in_rank(client, keys, running_worker, tmp_path):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"vacated-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = await _f1_round(api, tmp_path, round_id, 1, t0)

    # The winner withdraws after passing: the sanctions register bars the NIK from the next rounds,
    # so it is a NIK no other test registers (every journey asks the register).
    winner = registration(1, "F1", birth=date(1996, 8, 14))
    runner_up = registration(2, "F1")
    ids = [
        (await api.register(config, r, "sscasn", now=t0)).applicant_id for r in (winner, runner_up)
    ]

    await play_to_skb_close(
        api, client, round_id, ids, twk=lambda i: 120 - 10 * i, cat=lambda i: 450 - 50 * i
    )
    await _wait_stage(client, round_id, ids[0], {Stage.FILING}, timeout=30)
    await api.report(
        round_id,
        ids[0],
        Withdrawal(report_id="aps", reported_by="sscasn", reason="took a private-sector job"),
    )
    await _wait_offer(client, round_id, ids[1])
    await api.report(
        round_id, ids[1], OfferAnswer(report_id="yes", reported_by="sscasn", accept=True)
    )
    await _wait_stage(client, round_id, ids[1], {Stage.FILING}, timeout=30)

    first, second = await _state(client, round_id, ids[0]), await _state(client, round_id, ids[1])
    assert (first.terminal.value, first.sanction_rounds) == ("APS", 2)
    assert (second.final_code.value, second.placed_formasi) == ("P/L-2", "F1")

    # The allocation ran over the candidates' pages in an activity (patch allocation-over-pages):
    # no candidate entered the round's history.
    history = await client.get_workflow_handle(round_workflow_id(round_id)).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "allocate_pages" in scheduled
    local = [
        json.loads(e.marker_recorded_event_attributes.details["data"].payloads[0].data)
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    assert "read_page" not in {m.get("activity_type") for m in local}


async def test_a_seat_given_up_by_its_optimalisasi_taker_is_offered_once(
    client, keys, running_worker, tmp_path
):
    """F1 has two seats. A winner withdraws in filing and the seat goes to the best who lost on
    rank (P/L-2), who withdraws too: the seat goes to the next in rank, and to nobody else. The
    seat given up is counted once (patch optimalisasi-seat-given-up-once): before it, the seat
    counted as vacated and as no longer held, and two candidates were offered the one seat."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"given-up-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = await _f1_round(api, tmp_path, round_id, 2, t0)
    # Both who withdraw are barred from later rounds by NIK: NIKs no other test registers.
    people = [
        registration(1, "F1", birth=date(1995, 3, 21)),
        registration(2, "F1"),
        registration(3, "F1", birth=date(1995, 7, 9)),
        *(registration(n, "F1") for n in (4, 5, 6)),
    ]
    ids = [(await api.register(config, r, "sscasn", now=t0)).applicant_id for r in people]
    await play_to_skb_close(
        api, client, round_id, ids, twk=lambda i: 120 - 5 * i, cat=lambda i: 450 - 40 * i
    )
    await _wait_stage(client, round_id, ids[0], {Stage.FILING}, timeout=30)
    await api.report(
        round_id, ids[0], Withdrawal(report_id="aps-1", reported_by="sscasn", reason="other job")
    )
    await _wait_offer(client, round_id, ids[2])
    await api.report(
        round_id, ids[2], OfferAnswer(report_id="yes-1", reported_by="sscasn", accept=True)
    )
    await _wait_stage(client, round_id, ids[2], {Stage.FILING}, timeout=30)
    await api.report(
        round_id, ids[2], Withdrawal(report_id="aps-2", reported_by="sscasn", reason="moved")
    )
    await _wait_offer(client, round_id, ids[3])
    state = await api.round_state(round_id)
    assert state.offers == {
        f"{round_id}/offer/{ids[2]}/F1": "accepted",
        f"{round_id}/offer/{ids[3]}/F1": "pending",
    }, "the seat given up is offered to the next in rank alone"
    allocations = [d.input for d in state.decisions if d.outcome == "allocated"]
    assert allocations[-1]["vacancies"] == {"F1": 1}
    assert allocations[-1]["seat_given_up"] == OPTIMALISASI_SEAT_GIVEN_UP_ONCE
    assert "seat_given_up" not in allocations[0]  # decided when a taker first gave a seat up

    # The auditor allocates again by the rule each allocation recorded.
    result = await recompute(await round_histories(client, round_id), data_converter(keys))
    assert (result.allocations, result.differences()) == (len(allocations), [])
