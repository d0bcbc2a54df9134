"""Optimalisasi fills the most seats it can without passing anyone over (patch
optimalisasi-fills-most), on the real stack.

Two empty seats of one jabatan: F1 takes Hukum or Ekonomi, F2 only Hukum. The best of those who
lost on rank studied Hukum, the next Ekonomi. Taking the lowest-coded formasi of each one's pools,
the Hukum graduate took F1 and nobody could take F2: a seat stayed empty and the Ekonomi graduate,
in F1's pool, went without. Now the Hukum graduate is offered F2 and the Ekonomi graduate F1;
`recompute` allocates the same from the histories."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from auditing.history import round_histories
from auditing.recompute import recompute
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import OfferAnswer
from runtime.connection import data_converter
from scripts.record_histories import patch_markers
from tests.flows.test_round_end_to_end import _wait_offer, _wait_stage
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    TEST_KEYRING,
    compressed_round,
    create_round_file,
    formasi,
    play_to_skb_close,
    registration,
)
from workflows.ids import round_workflow_id
from workflows.versions import OPTIMALISASI_FILLS_MOST

pytestmark = pytest.mark.asyncio(loop_scope="session")

JABATAN = "Analis Hukum Ahli Pertama"
# (name, major), best final score first; everyone registers in SOURCE (quota 1).
PEOPLE = [("winner", "Hukum"), ("hukum", "Hukum"), ("ekonomi", "Ekonomi")]


async def test_the_round_seats_both_when_the_lowest_code_would_leave_one_seat_empty(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"fill-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    both = ["Hukum", "Ekonomi"]
    config = compressed_round(
        round_id,
        [
            {**formasi("SOURCE", 1, jabatan=JABATAN), "majors": both},
            {**formasi("F1", 1, jabatan=JABATAN), "majors": both},  # nobody applies to F1 or F2
            {**formasi("F2", 1, jabatan=JABATAN), "majors": ["Hukum"]},
        ],
        CLOSED_BY_COMMITTEE,
        appeal_window=3,
        answer_within=1,
        offer_within=60,
        t0=t0,
    )
    await create_round_file(api, config, tmp_path)
    ids: dict[str, str] = {}
    for serial, (name, major) in enumerate(PEOPLE, start=1):
        reg = registration(serial, "SOURCE").model_copy(update={"major": major})
        result = await api.register(config, reg, "sscasn", now=t0)
        assert result.status == "registered", result.refusals
        ids[name] = result.applicant_id
    await play_to_skb_close(api, client, round_id, [ids[name] for name, _ in PEOPLE])

    for name, seat in (("hukum", "F2"), ("ekonomi", "F1")):
        offered = await _wait_offer(client, round_id, ids[name])
        assert offered.offer is not None and offered.offer.to_formasi == seat, (name, offered)
        await api.report(
            round_id,
            ids[name],
            OfferAnswer(report_id=f"answer-{name}", reported_by="sscasn", accept=True),
        )
    for name, seat in (("hukum", "F2"), ("ekonomi", "F1")):
        placed = await _wait_stage(client, round_id, ids[name], {Stage.FILING}, timeout=30)
        assert (placed.final_code.value, placed.placed_formasi) == ("P/L-2", seat)

    round_state = await api.round_state(round_id)
    [allocation] = [
        d.input
        for d in round_state.decisions
        if (d.stage, d.outcome) == ("optimalisasi", "allocated")
    ]
    assert allocation["offers"] == [[ids["hukum"], "F2"], [ids["ekonomi"], "F1"]]
    assert allocation["fill"] == OPTIMALISASI_FILLS_MOST
    round_history = await client.get_workflow_handle(round_workflow_id(round_id)).fetch_history()
    assert OPTIMALISASI_FILLS_MOST in patch_markers(round_history)

    # The auditor allocates the same from the histories, by the rule the decision names.
    result = await recompute(await round_histories(client, round_id), data_converter(keys))
    assert (result.allocations, result.differences()) == (1, [])
