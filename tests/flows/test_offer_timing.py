"""An optimalisasi offer is never lost to timing (patch offer-kept-until-optimalisasi), on the
real stack.

The round allocates as soon as every formasi's confirmed result is in, while a large formasi may
still be telling its applicants that result: `bench optimalisasi --seats 300` found 18 to 51 of
380 offers reaching journeys still in the final sanggah, which ignored them, and the round then
held each of those seats for nobody. A journey that has not yet heard its final result now keeps
the offer and answers it in optimalisasi; a journey that ends while an offer waits for its
answer declines it, so the seat passes to the next in rank; and an offer to a journey that has
already ended counts as declined. Before, that offer's failed signal failed the whole round."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from auditing.history import round_histories
from auditing.recompute import recompute
from client.api import RecruitmentApi
from client.status import build_round_view
from domain.codes import Stage, Terminal
from domain.messages import (
    OfferAnswer,
    OptimalisasiOffer,
    Withdrawal,
)
from domain.protocol import ROUND_VIEW
from domain.seal import sealed
from runtime.connection import data_converter
from tests.flows.test_round_end_to_end import _state, _wait_offer, _wait_stage
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    TEST_KEYRING,
    compressed_round,
    create_round_file,
    formasi,
    play_to_skb_close,
    registration,
)
from workflows.ids import journey_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

JABATAN = "Pranata Komputer Ahli Pertama"


async def _to_final_ranking(api, client, config, people) -> list[str]:
    """Register `people` (registrations) in SOURCE and play them through the SKB close, best
    final score first; return their applicant ids."""
    round_id = config.round_id
    ids = []
    for reg in people:
        result = await api.register(config, reg, "sscasn", now=datetime.now(UTC))
        assert result.status == "registered", result.refusals
        ids.append(result.applicant_id)
    await play_to_skb_close(api, client, round_id, ids)
    return ids


async def sealed_offer(client, round_id: str, applicant_id: str, to_formasi: str) -> dict:
    """An offer of a seat in `to_formasi` to `applicant_id`, sealed with the round's secret as the
    round seals its offers (read from the round's view), answerable within the hour."""
    view = await ROUND_VIEW.ask(client.get_workflow_handle(round_workflow_id(round_id)), to_formasi)
    return sealed(
        OptimalisasiOffer(
            offer_id=f"{round_id}/offer/{applicant_id}/{to_formasi}",
            to_formasi=to_formasi,
            answer_by=datetime.now(UTC) + timedelta(hours=1),
        ),
        view.secret,
    )


async def _handled(handle, signals: int) -> None:
    """Wait (bounded) until the journey has `signals` offer_seat signals and a workflow task
    completed after the last of them."""
    deadline = time.monotonic() + 30
    while True:
        events = [e async for e in handle.fetch_history_events()]
        at = [
            i
            for i, e in enumerate(events)
            if e.HasField("workflow_execution_signaled_event_attributes")
            and e.workflow_execution_signaled_event_attributes.signal_name == "offer_seat"
        ]
        if len(at) >= signals and any(
            e.HasField("workflow_task_completed_event_attributes") for e in events[at[-1] :]
        ):
            return
        assert time.monotonic() < deadline, f"offer_seat signals handled: {len(at)} of {signals}"
        await asyncio.sleep(0.2)


async def test_an_offer_that_comes_before_the_final_result_is_kept(
    client, keys, running_worker, tmp_path, caplog
):
    """The round's offer reaches a journey still in the final sanggah (as it does when the
    formasi is slower telling its result than the round is allocating): kept, then answered."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"early-offer-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("SOURCE", 1, jabatan=JABATAN)],
        CLOSED_BY_COMMITTEE,
        appeal_window=8,  # the final sanggah's window: the journeys wait in final_appeal
        offer_within=60,
    )
    await create_round_file(api, config, tmp_path)
    ids = await _to_final_ranking(
        api, client, config, [registration(1, "SOURCE"), registration(2, "SOURCE")]
    )
    loser = ids[1]
    await _wait_stage(client, round_id, loser, {Stage.FINAL_APPEAL}, timeout=30)

    # The offer as the round seals it, delivered before the journey is in optimalisasi.
    offer_id = f"{round_id}/offer/{loser}/SOURCE"
    early = await sealed_offer(client, round_id, loser, "SOURCE")
    journey = client.get_workflow_handle(journey_workflow_id(round_id, loser))
    await journey.signal("offer_seat", early)
    # Delivered again (send_offers retried after its worker stopped): the same offer held, no
    # warning; another offer while one is held is ignored with a warning.
    caplog.set_level(logging.WARNING, logger="temporalio.workflow")
    await journey.signal("offer_seat", early)
    await _handled(journey, 2)
    assert not [r for r in caplog.records if "already holds an offer" in r.getMessage()]
    other = await sealed_offer(client, round_id, loser, "OTHER")
    await journey.signal("offer_seat", other)
    await _handled(journey, 3)
    assert [r for r in caplog.records if "already holds an offer" in r.getMessage()]
    waiting = await _state(client, round_id, loser)
    assert waiting.stage == Stage.FINAL_APPEAL and waiting.offer is not None
    assert waiting.offer.offer_id == offer_id

    # Once the sanggah is over the journey is in optimalisasi with that offer, and can answer it.
    in_optimalisasi = await _wait_stage(client, round_id, loser, {Stage.OPTIMALISASI}, timeout=60)
    assert in_optimalisasi.offer is not None and in_optimalisasi.offer.offer_id == offer_id
    await api.report(
        round_id, loser, OfferAnswer(report_id="no-thanks", reported_by="sscasn", accept=False)
    )
    ended = await _wait_stage(client, round_id, loser, {Stage.ENDED}, timeout=30)
    assert ended.terminal.value == "TL"
    answered = [d for d in ended.decisions if d.input.get("offer_id") == offer_id]
    assert answered and answered[-1].input["answered"] is True


async def test_a_journey_that_ends_holding_an_offer_declines_it(
    client, keys, running_worker, tmp_path
):
    """Offered a seat, the applicant withdraws without answering: the seat goes to the next."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"ended-offer-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("SOURCE", 1, jabatan=JABATAN), formasi("TARGET", 1, jabatan=JABATAN)],
        CLOSED_BY_COMMITTEE,
        appeal_window=3,
        answer_within=1,  # no sanggah is filed: the final sanggah's answer time is only waited out
        offer_within=600,
    )
    await create_round_file(api, config, tmp_path)
    # The second withdraws, and the sanctions register then bars the NIK from the next rounds:
    # a NIK no other test registers.
    people = [
        registration(1, "SOURCE"),
        registration(2, "SOURCE", birth=date(1995, 11, 23)),
        registration(3, "SOURCE"),
    ]
    ids = await _to_final_ranking(api, client, config, people)
    second, third = ids[1], ids[2]
    await _wait_offer(client, round_id, second)
    await api.report(
        round_id,
        second,
        Withdrawal(report_id="aps", reported_by="sscasn", reason="took a private-sector job"),
    )
    ended = await _wait_stage(client, round_id, second, {Stage.ENDED}, timeout=30)
    assert ended.terminal == Terminal.WITHDRAWN
    declined = [d for d in ended.decisions if d.input.get("offer_id")]
    assert [(d.outcome, d.actor, d.input["answered"]) for d in declined] == [
        ("declined", "system", False)
    ]
    # Before, the round held TARGET's seat for the second until filing closed.
    offered = await _wait_offer(client, round_id, third)
    assert offered.offer is not None and offered.offer.to_formasi == "TARGET"
    state = await api.round_state(round_id)
    assert state.offers[f"{round_id}/offer/{second}/TARGET"] == "declined"


async def test_an_offer_to_a_journey_that_has_ended_passes_on(
    client, keys, running_worker, tmp_path
):
    """A candidate withdraws before optimalisasi: the round's offer finds the journey closed.
    The round goes on, and the seat goes to the next in rank."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"closed-offer-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("SOURCE", 1, jabatan=JABATAN), formasi("TARGET", 1, jabatan=JABATAN)],
        CLOSED_BY_COMMITTEE,
        appeal_window=10,  # the final sanggah: the second withdraws meanwhile
        answer_within=1,  # no sanggah is filed: the final sanggah's answer time is only waited out
        offer_within=600,
    )
    await create_round_file(api, config, tmp_path)
    people = [
        registration(1, "SOURCE"),
        registration(2, "SOURCE", birth=date(1994, 7, 9)),
        registration(3, "SOURCE"),
    ]
    ids = await _to_final_ranking(api, client, config, people)
    second, third = ids[1], ids[2]
    await _wait_stage(client, round_id, second, {Stage.FINAL_APPEAL}, timeout=30)
    await api.report(
        round_id,
        second,
        Withdrawal(report_id="mundur", reported_by="sscasn", reason="moved abroad"),
    )
    ended = await _wait_stage(client, round_id, second, {Stage.ENDED}, timeout=30)
    assert ended.terminal == Terminal.WITHDRAWN
    offered = await _wait_offer(client, round_id, third, timeout=60)
    assert offered.offer is not None and offered.offer.to_formasi == "TARGET"
    described = await client.get_workflow_handle(round_workflow_id(round_id)).describe()
    assert described.status.name == "RUNNING"
    state = await api.round_state(round_id)
    assert state.offers[f"{round_id}/offer/{second}/TARGET"] == "declined"
    undelivered = [d for d in state.decisions if d.outcome == "offer not delivered"]
    assert [d.input["offer_id"] for d in undelivered] == [f"{round_id}/offer/{second}/TARGET"]
    # recompute allocates the same: the undelivered offer is a decline in the next allocation.
    result = await recompute(await round_histories(client, round_id), data_converter(keys))
    assert (result.allocations, result.differences()) == (2, [])


async def test_an_offer_whose_journey_was_terminated_passes_on_at_the_rounds_deadline(
    client, keys, running_worker, tmp_path
):
    """The second's journey is terminated after the offer reached it: it never answers, and
    nothing tells the round so (the offer was delivered). Before patch
    optimalisasi-answer-deadline the round waited for that answer for ever, and the third was
    never offered the seat. Now, the round's grace after answer_by, the offer is recorded as
    unanswered, counts as declined, and the seat goes to the third; the auditor agrees."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"stuck-offer-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("SOURCE", 1, jabatan=JABATAN), formasi("TARGET", 1, jabatan=JABATAN)],
        CLOSED_BY_COMMITTEE,
        appeal_window=3,
        answer_within=1,  # no sanggah is filed: the final sanggah's answer time is only waited out
        offer_within=5,
        extra={"offer_answer_grace": "PT5S"},
    )
    await create_round_file(api, config, tmp_path)
    people = [registration(n, "SOURCE", birth=date(1996, 3, 3)) for n in (1, 2, 3)]
    ids = await _to_final_ranking(api, client, config, people)
    second, third = ids[1], ids[2]
    offered = await _wait_offer(client, round_id, second, timeout=60)
    assert offered.offer is not None and offered.offer.to_formasi == "TARGET"
    await client.get_workflow_handle(journey_workflow_id(round_id, second)).terminate(
        reason="stuck journey"
    )

    third_offered = await _wait_offer(client, round_id, third, timeout=60)
    assert third_offered.offer is not None and third_offered.offer.to_formasi == "TARGET"
    state = await api.round_state(round_id)
    second_offer = f"{round_id}/offer/{second}/TARGET"
    assert state.offers[second_offer] == "declined"
    [unanswered] = [d for d in state.decisions if d.outcome == "offer unanswered"]
    assert unanswered.input["offer_id"] == second_offer
    assert unanswered.at >= offered.offer.answer_by + timedelta(seconds=5)
    # The operator's status lists it, with the deadline it was counted at.
    view = build_round_view(config, state, datetime.now(UTC))
    assert [u.offer_id for u in view.offers_unanswered] == [second_offer]
    assert view.offers_unanswered[0].deadline <= unanswered.at
    result = await recompute(await round_histories(client, round_id), data_converter(keys))
    assert (result.allocations, result.differences()) == (2, [])
