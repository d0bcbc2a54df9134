"""Optimalisasi within the round's history budget (patch optimalisasi-budget), on the real stack.

Temporal terminates a run at 51,200 events, and a round's history grows with the offers it makes
(about 9 events each), so a round with thousands of empty seats stopped with every journey still
waiting for filing and Latsar. An allocation now makes only the offers whose answers fit the
round's budget; the rest, and every later one, are not made, and the round records why.

Here the budget (1 event) is already spent when optimalisasi starts: SOURCE's four losers fit
TARGET's three seats, the allocation is cut at 0 offers, the round records "offers stopped" with
the three seats it did not offer, sends no offer, and goes on to filing and its close; the four
end as lost on rank. `recompute` finds the cut where the recorded figures put it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from auditing.history import round_histories
from auditing.recompute import recompute, recompute_optimalisasi
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import Decision
from runtime.connection import data_converter
from tests.flows.test_offer_timing import _to_final_ranking
from tests.flows.test_round_end_to_end import _wait_phase, _wait_stage
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    TEST_KEYRING,
    close_window,
    compressed_round,
    create_round_file,
    formasi,
    registration,
)
from workflows.ids import round_workflow_id
from workflows.versions import OPTIMALISASI_BUDGET

JABATAN = "Pranata Komputer Ahli Pertama"


@pytest.mark.asyncio(loop_scope="session")
async def test_an_allocation_past_the_budget_makes_no_offer_and_the_round_goes_on(
    client, keys, running_worker, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"budget-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("SOURCE", 1, jabatan=JABATAN), formasi("TARGET", 3, jabatan=JABATAN)],
        CLOSED_BY_COMMITTEE,
        appeal_window=3,
        offer_within=60,
        extra={"optimalisasi_history_budget": 1},
    )
    await create_round_file(api, config, tmp_path)
    ids = await _to_final_ranking(
        api, client, config, [registration(serial, "SOURCE") for serial in range(1, 6)]
    )

    await _wait_phase(api, round_id, "filing")
    state = await api.round_state(round_id)
    optimalisasi = [d for d in state.decisions if d.stage == "optimalisasi"]
    assert [d.outcome for d in optimalisasi] == ["allocated", "offers stopped"]
    allocated, stopped = (d.input for d in optimalisasi)
    assert (allocated["vacancies"], allocated["offers"], allocated["cut_at"]) == (
        {"TARGET": 3},
        [],
        0,
    )
    assert allocated["not_offered"] == {"TARGET": 3}
    assert allocated["budget"]["history_length"] > 1
    assert (allocated["budget"]["history_budget"], allocated["budget"]["pending"]) == (1, 0)
    assert stopped["seats_not_offered"] == {"TARGET": 3}
    assert (stopped["history_budget"], stopped["offers_made"]) == (1, 0)
    assert state.offers == {}

    await close_window(api, round_id, "filing")
    for a in ids[1:]:
        ended = await _wait_stage(client, round_id, a, {Stage.ENDED}, timeout=30)
        assert ended.placed_formasi is None
        assert "no optimalisasi seat" in (ended.terminal_reason or "")

    history = await client.get_workflow_handle(round_workflow_id(round_id)).fetch_history()
    signals = [
        e.signal_external_workflow_execution_initiated_event_attributes.signal_name
        for e in history.events
        if e.HasField("signal_external_workflow_execution_initiated_event_attributes")
    ]
    assert "offer_seat" not in signals
    patches = [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    assert OPTIMALISASI_BUDGET in patches

    histories = await round_histories(client, round_id)
    result = await recompute(histories, data_converter(keys))
    assert (result.allocations, result.differences()) == (1, [])


def _decision(outcome: str, inputs: dict, config) -> Decision:
    return Decision(
        at=datetime(2027, 1, 4, tzinfo=UTC),
        stage="optimalisasi",
        outcome=outcome,
        actor="round",
        input=inputs,
        rule_version=config.rule_version,
        rules_digest=config.digest(),
    )


def test_recompute_checks_each_cut_against_its_recorded_figures():
    """An allocation cut anywhere but where its figures put it, an allocation after the stop, or
    another budget than the rules' is a difference (no stack: the decisions are written here)."""
    config = compressed_round(
        "budget-check",
        [formasi("SOURCE", 1, jabatan=JABATAN)],
        CLOSED_BY_COMMITTEE,
        extra={"optimalisasi_history_budget": 1_000},
    )
    # (1,000 - 700) // 12 - 5 pending = 20 offers fit.
    figures = {"history_budget": 1_000, "history_length": 700, "signals_received": 3, "pending": 5}

    def allocated(cut_at=None, **changed) -> Decision:
        cut = (
            {}
            if cut_at is None
            else {"cut_at": cut_at, "not_offered": {}, "budget": {**figures, **changed}}
        )
        return _decision("allocated", {"vacancies": {}, "offers": [], **cut}, config)

    def differences(*decisions: Decision) -> list[str]:
        return recompute_optimalisasi(config, list(decisions), {}, {})

    assert differences(allocated(20)) == []
    [wrong_cut] = differences(allocated(21))
    assert wrong_cut.endswith("cut at 21 offers, the budget allows 20")
    [fewer_pending] = differences(allocated(20, pending=0))  # then 25 fit
    assert fewer_pending.endswith("cut at 20 offers, the budget allows 25")
    [budget] = differences(allocated(20, history_budget=40_000))
    assert budget.endswith("history budget recorded 40000, the rules' 1000")
    claimed = allocated(20)
    claimed.input["not_offered"] = {"SOURCE": 2}  # the allocation found nobody more to offer
    [not_offered] = differences(claimed)
    assert not_offered.endswith("seats not offered recorded {'SOURCE': 2}, recomputed {}")
    spent = allocated(0, history_length=990, pending=0)  # no offer fits: the round stops
    [after] = differences(spent, _decision("offers stopped", {}, config), allocated())
    assert after.startswith("optimalisasi allocation 2: made after offers stopped")
