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

import asyncio
import io
import json
import time
import uuid
from datetime import UTC, date, datetime

import pytest
from rich.console import Console

from auditing.history import decisions_of, offers_of, replay, round_histories
from auditing.recompute import recompute, recompute_optimalisasi
from client.api import RecruitmentApi
from domain.codes import Stage
from domain.messages import Decision, MoveTmt, OfferAnswer, RoundCarry, RoundStart
from domain.protocol import SEND_OFFERS
from runtime.connection import data_converter
from scripts.record_histories import local_activities, patch_markers
from starter import Context, status
from tests.flows.test_offer_timing import _to_final_ranking
from tests.flows.test_round_end_to_end import _wait_offer, _wait_phase, _wait_stage
from tests.roundkit import (
    CLOSED_BY_COMMITTEE,
    OPERATOR,
    TEST_KEYRING,
    close_window,
    compressed_round,
    create_round_file,
    formasi,
    registration,
)
from workflows.ids import round_workflow_id
from workflows.versions import (
    CONTINUE_IN_ITS_OWN_TASK,
    OPTIMALISASI_BUDGET,
    OPTIMALISASI_CONTINUES,
    OPTIMALISASI_SHARE_PER_RUN,
)

JABATAN = "Pranata Komputer Ahli Pertama"


async def _lost_on_rank(
    api, client, tmp_path, round_id: str, budget: int | None, **engine
) -> list[str]:
    """SOURCE (quota 1) and TARGET (three seats, same jabatan), five applicants in SOURCE played
    to the SKB close with `budget` as the round's history budget; their ids, best first."""
    config = compressed_round(
        round_id,
        [formasi("SOURCE", 1, jabatan=JABATAN), formasi("TARGET", 3, jabatan=JABATAN)],
        CLOSED_BY_COMMITTEE,
        appeal_window=3,
        answer_within=1,  # no sanggah is filed: the final sanggah's answer time is only waited out
        offer_within=60,
        extra={
            **({} if budget is None else {"optimalisasi_history_budget": budget}),
            **engine,
        },
    )
    await create_round_file(api, config, tmp_path)
    return await _to_final_ranking(
        api, client, config, [registration(serial, "SOURCE") for serial in range(1, 6)]
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_an_allocation_past_the_budget_makes_no_offer_and_the_round_goes_on(
    client, keys, stack, running_worker, tmp_path
):
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"budget-{uuid.uuid4().hex[:6]}"
    ids = await _lost_on_rank(api, client, tmp_path, round_id, 1)

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

    # The committee's status shows the stop and the seats it leaves (starter.py status).
    ctx = Context(api, stack.database_url, Console(file=io.StringIO(), width=250))
    await status(ctx, round_id)
    shown = ctx.console.file.getvalue()
    assert "optimalisasi stopped" in shown
    assert "seats not offered, empty in this round: TARGET 3" in shown

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
    assert SEND_OFFERS.name not in {kind for _, kind in local_activities(history)}
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


# A budget that, at the history a round of this shape has when optimalisasi starts (107 events
# here, more or fewer with the batching of its workflow tasks), leaves room for one or two of the
# three offers at the costs of offers sent by a local activity (11 an offer, 20 an allocation):
# (148 - 107 - 20) // 11 = 1, from 117 events down to 107, and 2 from 106 down to 96. A continued
# run starts with a few dozen events, room for all.
WAVE_BUDGET = 148


async def _answer_offers(api, client, round_id: str, answers: dict[str, bool]) -> None:
    """Answer each offer as it comes (`answers`: applicant -> accept), until every applicant named
    has answered and no offer is pending."""
    answered: set[str] = set()
    deadline = time.monotonic() + 90
    while True:
        state = await api.round_state(round_id)
        pending = [o for o, status in state.offers.items() if status == "pending"]
        if not pending and answered == set(answers):
            return
        assert time.monotonic() < deadline, f"optimalisasi never settled: {state.offers}"
        for offer_id in pending:
            applicant = offer_id.split("/offer/")[1].split("/")[0]
            if applicant not in answered:
                await _wait_offer(client, round_id, applicant)
                await api.report(
                    round_id,
                    applicant,
                    OfferAnswer(
                        report_id=f"answer-{applicant}",
                        reported_by="sscasn",
                        accept=answers[applicant],
                    ),
                )
                answered.add(applicant)
        await asyncio.sleep(0.3)


def _allocations(outcomes) -> list[dict]:
    """The inputs of every optimalisasi allocation the round's runs recorded, in order."""
    return [
        d.input
        for d in decisions_of(outcomes)
        if (d.stage, d.outcome) == ("optimalisasi", "allocated")
    ]


async def _round_runs(client, round_id: str, at_least: int) -> list:
    """The round's runs as visibility lists them, once it lists `at_least`."""
    deadline = time.monotonic() + 30
    while True:
        runs = await round_histories(client, round_id, "round")
        if len(runs) >= at_least or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.5)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_round_past_its_budget_continues_as_new_and_offers_every_seat(
    client, keys, running_worker, tmp_path
):
    """TARGET's three seats, four candidates, room for one or two offers: the first allocation
    is cut. The best declines; the next allocation would be cut again, so the round continues as
    a new run (patch optimalisasi-continues) carrying its offers, its commands and the decline,
    and the new run offers every seat left. No seat with a candidate stays empty, nothing is
    offered twice, a command repeated after the continuation gets its first answer, and the
    auditor finds every allocation, of both runs, where the rules put it."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"waves-{uuid.uuid4().hex[:6]}"
    ids = await _lost_on_rank(api, client, tmp_path, round_id, WAVE_BUDGET)
    await _wait_phase(api, round_id, "optimalisasi")
    move = MoveTmt(
        report_id="tmt-before",
        reported_by=OPERATOR,
        new_tmt=date(2027, 4, 1),
        reason="keputusan pemerintah",
    )
    first_ack = await api.command(round_id, move)

    await _answer_offers(api, client, round_id, {ids[1]: False} | dict.fromkeys(ids[2:5], True))
    runs = await _round_runs(client, round_id, 2)
    assert len(runs) == 2, f"the round should have continued once: {len(runs)} runs"
    first_run, second_run = (r.history for r in runs)
    assert OPTIMALISASI_CONTINUES in patch_markers(first_run)
    ended = first_run.events[-1]
    assert ended.HasField("workflow_execution_continued_as_new_event_attributes")
    [start] = await data_converter(keys).decode(
        ended.workflow_execution_continued_as_new_event_attributes.input.payloads,
        [RoundStart],
    )
    carry = RoundCarry.model_validate(start.carry)
    # What the first run decided stays in it: the carry holds the decline as state, no allocation.
    assert carry.runs == 1 and carry.phase == "optimalisasi"
    # Who was offered (never offered again), the decline no allocation has recorded, the offers
    # pending; the accepted ones only as seats held in TARGET.
    assert carry.declined_since == [ids[1]] and carry.offers_declined == 1
    assert carry.offered_tail == ids[1 : 1 + len(carry.offered_tail)] and not carry.offered_pages
    assert len(carry.offered_tail) == 1 + carry.accepted_by_formasi.get("TARGET", 0) + len(
        carry.pending
    )
    assert not any(d.outcome == "allocated" for d in carry.decisions)
    assert carry.decisions_left >= 1
    assert "tmt-before" in carry.commands

    # The repeated command gets the first run's answer, and the TMT moved once.
    assert await api.command(round_id, move) == first_ack
    state = await api.round_state(round_id)
    assert state.schedule.tmt == date(2027, 4, 1)
    assert "offers stopped" not in [d.outcome for d in state.decisions]
    assert [d.outcome for d in state.decisions].count("TMT moved to 2027-04-01") == 1

    # Every offer and allocation of both runs, read from their replays.
    runs = await _round_runs(client, round_id, 2)
    outcomes = await replay([r.history for r in runs], data_converter(keys))
    assert [(o.failure, o.drift) for o in outcomes] == [(None, "")] * 2
    assert offers_of(outcomes) == {
        f"{round_id}/offer/{ids[1]}/TARGET": "declined",
        **{f"{round_id}/offer/{a}/TARGET": "accepted" for a in ids[2:5]},
    }
    allocations = _allocations(outcomes)
    first = allocations[0]
    # Counted at the costs of offers sent by a local activity (patch offers-by-local-activity).
    assert (first["budget"]["events_per_offer"], first["budget"]["allocation_events"]) == (11, 20)
    assert "cut_at" in first and 1 <= first["cut_at"] <= 2, (
        f"the first allocation should be cut to 1 or 2 of 3 offers; the history was at "
        f"{first.get('budget', {}).get('history_length')} events: {first}"
    )
    assert not any("cut_at" in a for a in allocations[1:]), "the new run had room for every offer"
    assert [o for a in allocations for o in a["offers"]] == [[a, "TARGET"] for a in ids[1:5]], (
        "offers best first, each once"
    )
    # The second run's first allocation names the decline the first run took after its last.
    assert allocations[-1]["declined_since"] == [ids[1]]

    histories = await round_histories(client, round_id)
    result = await recompute(histories, data_converter(keys))
    assert (result.allocations, result.differences()) == (len(allocations), [])

    await _wait_phase(api, round_id, "filing")
    for a in ids[2:5]:
        placed = await _wait_stage(client, round_id, a, {Stage.FILING}, timeout=30)
        assert (placed.final_code.value, placed.placed_formasi) == ("P/L-2", "TARGET")


@pytest.mark.asyncio(loop_scope="session")
async def test_a_run_past_its_share_of_offers_continues_as_new(
    client, keys, running_worker, tmp_path
):
    """`optimalisasi_offers_per_run` 3 at the default budget: the first run offers TARGET's three
    seats in one allocation, its whole share; after the best declines, the next allocation would
    be that run's second, so the round continues and the new run offers the seat declined. A
    run's state lists its own offers, so none grows with the round's."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"per-run-{uuid.uuid4().hex[:6]}"
    ids = await _lost_on_rank(api, client, tmp_path, round_id, None, optimalisasi_offers_per_run=3)
    await _answer_offers(api, client, round_id, {ids[1]: False} | dict.fromkeys(ids[2:5], True))

    runs = await _round_runs(client, round_id, 2)
    assert len(runs) == 2, f"the round should have continued once: {len(runs)} runs"
    outcomes = await replay([r.history for r in runs], data_converter(keys))
    assert [(o.failure, o.drift) for o in outcomes] == [(None, "")] * 2
    first, second = (o.state.offers for o in outcomes)
    assert len(first) == 3 and set(second) == {
        f"{round_id}/offer/{ids[4]}/TARGET",
        # pending when the first run continued, answered in the second
        *(o for o, status in first.items() if status == "pending"),
    }
    allocations = _allocations(outcomes)
    assert [a["offers"] for a in allocations] == [
        [[a, "TARGET"] for a in ids[1:4]],
        [[ids[4], "TARGET"]],
    ]
    assert not any("cut_at" in a for a in allocations)  # the default budget holds every offer
    result = await recompute(await round_histories(client, round_id), data_converter(keys))
    assert (result.allocations, result.differences()) == (2, [])


@pytest.mark.asyncio(loop_scope="session")
async def test_a_first_allocation_past_the_runs_share_is_cut_to_it_and_the_round_continues(
    client, keys, running_worker, tmp_path
):
    """`optimalisasi_offers_per_run` 2: the first allocation finds TARGET's three seats, more
    than the run's share. It offers the best two, records the cut at its share, and the round
    continues at once (patch optimalisasi-share-per-run): the new run offers the third seat
    without waiting for an answer, then the seat the best declines. No run holds more than its
    share of offers, and the auditor finds the cut where the rules put it."""
    settings, _ = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"share-{uuid.uuid4().hex[:6]}"
    ids = await _lost_on_rank(api, client, tmp_path, round_id, None, optimalisasi_offers_per_run=2)
    await _answer_offers(api, client, round_id, {ids[1]: False} | dict.fromkeys(ids[2:5], True))

    runs = await _round_runs(client, round_id, 2)
    assert len(runs) == 2, f"the round should have continued once: {len(runs)} runs"
    assert OPTIMALISASI_SHARE_PER_RUN in patch_markers(runs[0].history)
    # The run continued in a task of its own (patch continue-in-its-own-task): the offers' local
    # activities were recorded in a task that ended on a timer, and the task that continued ran
    # none, so a signal arriving while it ran could not make them run again.
    first_run = runs[0].history.events
    assert CONTINUE_IN_ITS_OWN_TASK in patch_markers(runs[0].history)
    fired = max(i for i, e in enumerate(first_run) if e.HasField("timer_fired_event_attributes"))
    assert first_run[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    assert not [
        e
        for e in first_run[fired:]
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    sent = [i for i, kind in local_activities(runs[0].history) if kind == SEND_OFFERS.name]
    assert sent, "the first run sent its offers by a local activity"
    outcomes = await replay([r.history for r in runs], data_converter(keys))
    assert [(o.failure, o.drift) for o in outcomes] == [(None, "")] * 2
    first_offers = outcomes[0].state.offers
    assert sorted(first_offers) == sorted(f"{round_id}/offer/{a}/TARGET" for a in ids[1:3])
    allocations = _allocations(outcomes)
    first = allocations[0]
    assert first["offers"] == [[a, "TARGET"] for a in ids[1:3]]
    assert (first["cut_at"], first["not_offered"]) == (2, {"TARGET": 1})
    assert first["share"] == {"offers_per_run": 2, "offers_in_run": 0}
    # The new run offers the third seat, then the declined one (in one allocation or two, as the
    # decline reaches it): every seat, best first, each candidate once.
    assert [o for a in allocations[1:] for o in a["offers"]] == [[a, "TARGET"] for a in ids[3:5]]
    assert not any("cut_at" in a for a in allocations[1:])
    assert offers_of(outcomes) == {
        f"{round_id}/offer/{ids[1]}/TARGET": "declined",
        **{f"{round_id}/offer/{a}/TARGET": "accepted" for a in ids[2:5]},
    }
    result = await recompute(await round_histories(client, round_id), data_converter(keys))
    assert (result.allocations, result.differences()) == (len(allocations), [])


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
    # (1,000 - 700 - 6) // 15 - 5 pending = 14 offers fit.
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

    assert differences(allocated(14)) == []
    # Offers sent by a local activity (patch offers-by-local-activity), recorded with their costs:
    # (1,000 - 700 - 20) // 11 - 5 = 20.
    local = {"events_per_offer": 11, "allocation_events": 20}
    assert differences(allocated(20, **local)) == []
    [at_signal_costs] = differences(allocated(14, **local))
    assert at_signal_costs.endswith("cut at 14 offers, the budget allows 20")
    [unknown_costs] = differences(allocated(14, events_per_offer=1, allocation_events=20))
    assert "not those of any way the round sends offers" in unknown_costs
    [wrong_cut] = differences(allocated(15))
    assert wrong_cut.endswith("cut at 15 offers, the budget allows 14")
    [fewer_pending] = differences(allocated(14, pending=0))  # then 19 fit
    assert fewer_pending.endswith("cut at 14 offers, the budget allows 19")
    [budget] = differences(allocated(14, history_budget=40_000))
    assert budget.endswith("history budget recorded 40000, the rules' 1000")
    claimed = allocated(14)
    claimed.input["not_offered"] = {"SOURCE": 2}  # the allocation found nobody more to offer
    [not_offered] = differences(claimed)
    assert not_offered.endswith("seats not offered recorded {'SOURCE': 2}, recomputed {}")
    spent = allocated(0, history_length=990, pending=0)  # no offer fits: the round stops
    [after] = differences(spent, _decision("offers stopped", {}, config), allocated())
    assert after.startswith("optimalisasi allocation 2: made after offers stopped")


def test_recompute_checks_a_cut_at_the_runs_share():
    """A cut at the run's share left (patch optimalisasi-share-per-run) is where the smaller of
    the share and the budget's room puts it; another share than the rules', or a cut elsewhere,
    is a difference (no stack: the decisions are written here)."""
    config = compressed_round(
        "share-check",
        [formasi("SOURCE", 1, jabatan=JABATAN)],
        CLOSED_BY_COMMITTEE,
        extra={"optimalisasi_history_budget": 1_000, "optimalisasi_offers_per_run": 10},
    )
    # (1,000 - 700 - 6) // 15 - 5 pending = 14 offers fit the budget.
    figures = {"history_budget": 1_000, "history_length": 700, "signals_received": 3, "pending": 5}

    def allocated(cut_at: int, share, **changed) -> Decision:
        inputs = {
            "vacancies": {},
            "offers": [],
            "cut_at": cut_at,
            "not_offered": {},
            "budget": {**figures, **changed},
            "share": share,
        }
        return _decision("allocated", inputs, config)

    def differences(d: Decision) -> list[str]:
        return recompute_optimalisasi(config, [d], {}, {})

    assert differences(allocated(10, {"offers_per_run": 10, "offers_in_run": 0})) == []
    assert differences(allocated(4, {"offers_per_run": 10, "offers_in_run": 6})) == []
    # The budget's room (14 - 10 pending = 4) is the smaller: the cut is there.
    assert differences(allocated(4, {"offers_per_run": 10, "offers_in_run": 0}, pending=15)) == []
    [past_share] = differences(allocated(14, {"offers_per_run": 10, "offers_in_run": 0}))
    assert past_share.endswith("cut at 14 offers, the budget allows 14 and the run's share 10")
    [other_rules] = differences(allocated(10, {"offers_per_run": 20, "offers_in_run": 10}))
    assert other_rules.endswith("offers per run recorded 20, the rules' 10")
    [unreadable] = differences(allocated(10, {"offers_per_run": "ten", "offers_in_run": 0}))
    assert "the run's share recorded cannot be read" in unreadable
    [negative] = differences(allocated(10, {"offers_per_run": 10, "offers_in_run": -1}))
    assert negative.endswith("offers made in the run recorded -1")
