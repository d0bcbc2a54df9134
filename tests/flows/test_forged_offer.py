"""An optimalisasi offer the round never made, found by the auditor, on the real stack.

A journey takes an offer sealed with its round's secret. Whoever holds that secret (a leak from
the engine, or a bug in the round) can place an applicant in a formasi whose seats are taken.
`audit.py recompute` names both what that leaves: the formasi holding more than its quota, and
the journey placed by an offer its round never made."""

from __future__ import annotations

import uuid

import pytest

from auditing.history import round_histories
from auditing.recompute import recompute
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import OfferAnswer
from runtime.connection import data_converter
from tests.flows.test_offer_timing import _to_final_ranking, sealed_offer
from tests.flows.test_round_end_to_end import _wait_offer, _wait_phase, _wait_stage
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    TEST_KEYRING,
    compressed_round,
    create_round_file,
    formasi,
    registration,
)
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

JABATAN = "Pranata Komputer Ahli Pertama"


async def test_a_seat_taken_by_an_offer_the_round_never_made_is_named_by_recompute(
    client, keys, running_worker, tmp_path
):
    """SOURCE (quota 1) and TARGET (one seat); three applicants in SOURCE. The round offers
    TARGET's seat to the best who lost on rank, who accepts. An offer to the third, sealed with
    the round's secret but never made by the round, is accepted too: TARGET holds two for one
    seat, and recompute names the formasi and the journey."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"forged-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("SOURCE", 1, jabatan=JABATAN), formasi("TARGET", 1, jabatan=JABATAN)],
        CLOSED_BY_COMMITTEE,
        appeal_window=3,
        answer_within=1,  # no sanggah is filed: the final sanggah's answer time is only waited out
        offer_within=600,
    )
    await create_round_file(api, config, tmp_path)
    ids = await _to_final_ranking(
        api, client, config, [registration(serial, "SOURCE") for serial in (41, 42, 43)]
    )
    offered, third = ids[1], ids[2]
    await _wait_offer(client, round_id, offered)
    await api.report(
        round_id, offered, OfferAnswer(report_id="yes", reported_by="sscasn", accept=True)
    )
    await _wait_stage(client, round_id, third, {Stage.OPTIMALISASI}, timeout=60)

    # Sealed as the round seals its offers, sent straight to the journey.
    forged_id = f"{round_id}/offer/{third}/TARGET"
    forged = await sealed_offer(client, round_id, third, "TARGET")
    await client.get_workflow_handle(journey_workflow_id(round_id, third)).signal(
        "offer_seat", forged
    )
    await _wait_offer(client, round_id, third)
    await api.report(
        round_id, third, OfferAnswer(report_id="yes-too", reported_by="sscasn", accept=True)
    )
    for applicant in (offered, third):
        placed = await _wait_stage(client, round_id, applicant, {Stage.FILING}, timeout=60)
        assert placed.placed_formasi == "TARGET"
    state = await api.round_state(round_id)
    assert forged_id not in state.offers  # the round never made it, and ignored its answer
    await _wait_phase(api, round_id, "filing")

    result = await recompute(await round_histories(client, round_id), data_converter(keys))
    assert result.seats == [
        f"round {round_id}: formasi TARGET holds 2 for 1 seats (journeys placed there, running "
        "or PNS)",
        f"round {round_id}: applicant {third} accepted optimalisasi offer {forged_id} (TARGET), "
        "which the round never made",
    ]
    # Nothing else differs: the round's own allocation and the rankings are as recorded.
    assert result.differences() == result.seats
