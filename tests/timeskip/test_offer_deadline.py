"""The round's own deadline for optimalisasi answers (patch optimalisasi-answer-deadline), on a
round scheduled in days.

A journey answers its offer by answer_by on its own timer; one that cannot run (terminated by an
operator after the offer reached it, its workflow task failing on every attempt, its offer lost)
never answers. The round used to wait for that answer for ever: the seat stayed pending, the
next in rank was never offered it, and filing never closed. Now, a day (offer_answer_grace) after
the latest pending offer's answer_by, the round records the offer as unanswered, counts it as
declined, and offers the seat to the next in rank.

Schedule as tests/timeskip/test_final_stages.py: SKB closes on day 50, the final sanggah's
window and answer time end on day 54, when optimalisasi begins; an offer waits 2 days. F1 (quota
1) has three SKB participants; F2 (quota 1, the same jabatan and education) has none.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import pytest

from domain.codes import FinalCode, Stage
from domain.messages import (
    AdminReport,
    GateReport,
    MoveTmt,
    OfferAnswer,
    RoundStart,
    SkbScoreReport,
    SkdReport,
)
from tests.roundkit import OPERATOR, compressed_round, formasi, noon_wib_after, registration
from workflows.ids import journey_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400  # seconds
NAMES = ("X1", "X2", "X3")  # best final score first: X1 wins F1, X2 and X3 lose on rank


async def _to_optimalisasi(kit, round_id: str, target_seats: int = 1, extra: dict | None = None):
    """Create the round (F2 with `target_seats`, the round file's `extra` settings), play X1..X3
    through SKB in F1, and skip to optimalisasi's start: the applicant ids by name and when
    optimalisasi began."""
    t0 = noon_wib_after(await kit.now())  # SKB closes, and the final result is out, at 12:00 WIB
    day = timedelta(days=1)
    config = compressed_round(
        round_id,
        [formasi("F1", 1), formasi("F2", target_seats)],
        {
            "registration": (0, 15 * DAY),
            "administration": (15 * DAY, 18 * DAY),
            "skd": (21 * DAY, 35 * DAY),
            "skb": (36 * DAY, 50 * DAY),
            "filing": (60 * DAY, 75 * DAY),
            "latsar": (75 * DAY, 440 * DAY),
        },
        appeal_window=3 * DAY,
        answer_within=1 * DAY,
        offer_within=2 * DAY,
        t0=t0,
        extra=extra,
    )
    if not extra:
        assert config.offer_answer_grace == day  # the default
    await kit.create_round(config)
    await kit.advance_to(t0 + timedelta(hours=1))
    ids = {n: await kit.register(config, registration(i, "F1")) for i, n in enumerate(NAMES, 1)}
    for name in NAMES:
        await kit.journey_at(round_id, ids[name], Stage.ADMIN_CHECK)
        await kit.api.report(
            round_id,
            ids[name],
            AdminReport(report_id=f"adm-{name}", reported_by="bkpsdm-verifikator"),
        )
    await kit.advance_to(t0 + 22 * day)
    for name in NAMES:
        await kit.journey_at(round_id, ids[name], Stage.SKD)
        await kit.api.report(
            round_id,
            ids[name],
            SkdReport(report_id=f"skd-{name}", reported_by="cat-bkn", twk=120, tiu=140, tkp=190),
        )
    await kit.advance_to(t0 + 40 * day)
    for i, name in enumerate(NAMES):
        await kit.journey_at(round_id, ids[name], Stage.SKB)
        for component, who, score in (
            ("cat", "cat-bkn", 450 - 30 * i),
            ("praktik", "panel-praktik", 80),
        ):
            await kit.api.report(
                round_id,
                ids[name],
                SkbScoreReport(
                    report_id=f"{component}-{name}",
                    reported_by=who,
                    component=component,
                    score=score,
                ),
            )
        await kit.api.report(
            round_id,
            ids[name],
            GateReport(
                report_id=f"h-{name}", reported_by="rsud", component="health", decision="MS"
            ),
        )
    # The final sanggah ends at 24:00 WIB of its third day, its answers at 24:00 of the next.
    optimalisasi_at = t0 + 54 * day + timedelta(hours=12)
    await kit.advance_to(optimalisasi_at + timedelta(hours=1))
    return ids, optimalisasi_at


async def test_an_offer_whose_journey_never_answers_passes_on_after_the_rounds_deadline(kit):
    """X2 is offered F2's seat and its journey is terminated after the offer reached it: it will
    never answer. A day after answer_by the round counts the offer as declined for no answer, and
    X3 is offered the seat."""
    round_id = f"ts-deadline-{uuid.uuid4().hex[:6]}"
    ids, _ = await _to_optimalisasi(kit, round_id)
    day = timedelta(days=1)
    offer_x2 = f"{round_id}/offer/{ids['X2']}/F2"
    offer_x3 = f"{round_id}/offer/{ids['X3']}/F2"

    async def x2_holds_the_offer():
        s = await kit.journey(round_id, ids["X2"])
        return s if s.offer is not None and s.stage == Stage.OPTIMALISASI else None

    held = await kit.until(x2_holds_the_offer, "X2 holding the offer")
    assert held.offer.offer_id == offer_x2
    answer_by = held.offer.answer_by
    # An operator terminates X2's journey: nothing will answer the offer now.
    await kit.client.get_workflow_handle(journey_workflow_id(round_id, ids["X2"])).terminate(
        reason="stuck journey"
    )

    # Past answer_by, within the grace: the round still waits for X2's answer.
    await kit.advance_to(answer_by + day - timedelta(hours=1))
    state = await kit.round_state(round_id)
    assert state.offers == {offer_x2: "pending"} and state.phase == "optimalisasi"

    # Past the grace: the offer is declined for no answer, and the seat goes to X3.
    await kit.advance_to(answer_by + day + timedelta(minutes=10))

    async def offered_x3():
        s = await kit.round_state(round_id)
        return s if s.offers.get(offer_x3) == "pending" else None

    state = await kit.until(offered_x3, "the offer to X3")
    assert state.offers[offer_x2] == "declined"
    [unanswered] = [d for d in state.decisions if d.outcome == "offer unanswered"]
    assert (unanswered.stage, unanswered.actor, unanswered.input["offer_id"]) == (
        "optimalisasi",
        "round",
        offer_x2,
    )
    assert unanswered.input["deadline"] == (answer_by + day).isoformat()
    assert abs(unanswered.at - (answer_by + day)) < timedelta(minutes=5)
    # The allocation after it names X2 among the declines it passes the seat on from.
    allocations = [d for d in state.decisions if d.outcome == "allocated"]
    assert allocations[-1].input["declined_since"] == [ids["X2"]]
    assert allocations[-1].input["offers"] == [[ids["X3"], "F2"]]
    x3 = await kit.journey_at(round_id, ids["X3"], Stage.OPTIMALISASI)
    assert x3.final_code == FinalCode.NOT_PASSED


async def test_answered_offers_leave_the_round_no_unanswered_decision(kit):
    """The deadline only counts offers nobody answered: X2's own journey declines at answer_by
    (its timer), the seat goes to X3, and no offer is recorded as unanswered."""
    round_id = f"ts-answered-{uuid.uuid4().hex[:6]}"
    ids, optimalisasi_at = await _to_optimalisasi(kit, round_id)
    offer_x3 = f"{round_id}/offer/{ids['X3']}/F2"

    async def offered_x3():
        s = await kit.round_state(round_id)
        return s if s.offers.get(offer_x3) == "pending" else None

    await kit.advance_to(optimalisasi_at + timedelta(days=2, minutes=10))
    await kit.until(offered_x3, "the offer to X3")
    # Past both offers' deadlines: X3's journey declined on its own timer too.
    await kit.advance_to(optimalisasi_at + timedelta(days=8))
    state = await kit.round_state(round_id)
    assert set(state.offers.values()) == {"declined"}
    assert not [d for d in state.decisions if d.outcome == "offer unanswered"]


async def test_a_continued_run_keeps_the_deadline_of_the_offers_it_carries(kit):
    """One offer per run (optimalisasi_offers_per_run 1), F2 with two seats: the first run offers
    X2 and continues; the second offers X3. X2's journey is terminated holding its offer; X3
    declines a day later, and the round continues again before allocating. The third run
    allocates nothing (nobody is left) and carries X2's offer pending: its deadline is still X2's
    answer_by plus a day (RoundCarry.last_answer_by), not a day later than that, as it would be
    counted from the third run's start."""
    round_id = f"ts-carried-{uuid.uuid4().hex[:6]}"
    ids, optimalisasi_at = await _to_optimalisasi(
        kit, round_id, target_seats=2, extra={"optimalisasi_offers_per_run": 1}
    )
    day = timedelta(days=1)
    offer_x2 = f"{round_id}/offer/{ids['X2']}/F2"

    async def holds_offer(name):
        async def probe():
            s = await kit.journey(round_id, ids[name])
            return s if s.offer is not None and s.stage == Stage.OPTIMALISASI else None

        return await kit.until(probe, f"{name} holding an offer")

    x2 = await holds_offer("X2")
    answer_by = x2.offer.answer_by
    await kit.client.get_workflow_handle(journey_workflow_id(round_id, ids["X2"])).terminate(
        reason="stuck journey"
    )
    await holds_offer("X3")
    await kit.advance_to(optimalisasi_at + day)
    await kit.api.report(
        round_id, ids["X3"], OfferAnswer(report_id="no-X3", reported_by="sscasn", accept=False)
    )

    async def third_run():
        handle = kit.client.get_workflow_handle(round_workflow_id(round_id))
        first = await anext(aiter(handle.fetch_history_events()))
        started = first.workflow_execution_started_event_attributes
        [start] = await kit.client.data_converter.decode(started.input.payloads, [RoundStart])
        if start.carry is None or start.carry["runs"] < 2:
            # Not asked before the third run has begun: a query that reached a run as it
            # continued as new was answered by a task the test server then could not complete
            # ("Task not found when completing"), and its clock stayed locked: the next skip
            # waited in real time until its deadline (once in a fresh clone's run, 12-07).
            return None
        s = await kit.round_state(round_id)
        # The third run lists only the offer it carries pending: X2's.
        return s if list(s.offers) == [offer_x2] else None

    await kit.until(third_run, "the round's third run")
    await kit.advance_to(answer_by + day + timedelta(minutes=10))

    async def declined():
        s = await kit.round_state(round_id)
        return s if s.offers.get(offer_x2) == "declined" else None

    state = await kit.until(declined, "X2's offer declined at its deadline")
    [unanswered] = [d for d in state.decisions if d.outcome == "offer unanswered"]
    # The latest answer_by the runs handed on is X3's, made moments after X2's.
    deadline = datetime.fromisoformat(unanswered.input["deadline"])
    assert timedelta(0) <= deadline - (answer_by + day) < timedelta(minutes=5)


async def test_an_offer_accepted_while_the_read_model_is_down_holds_its_seat_alone(kit):
    """X2 accepts F2's seat before answer_by while its journey's run is held in a row write that
    keeps failing (the read model down, here for X2 alone). The reply to the round left only once
    the database was back: the round had counted the offer unanswered a day after answer_by and
    given the seat to X3, who accepted, and X2 went on P/L-2 all the same: two for one seat
    (review of 12-07). The reply now leaves in the task that takes the answer."""
    round_id = f"ts-outage-{uuid.uuid4().hex[:6]}"
    # Six hours to answer and an hour's grace (within the round file's bounds): the outage's
    # retries are skipped through in minutes, not the default days.
    short = {"offer_answer_within": "PT6H", "offer_answer_grace": "PT1H"}
    ids, optimalisasi_at = await _to_optimalisasi(kit, round_id, extra=short)
    grace = timedelta(hours=1)

    async def holds(name: str):
        async def probe():
            s = await kit.journey(round_id, ids[name])
            return s if s.offer is not None and s.stage == Stage.OPTIMALISASI else None

        return await kit.until(probe, f"{name} holding an offer")

    answer_by = (await holds("X2")).offer.answer_by
    kit.acts.read_model_down_for.add(ids["X2"])
    # A TMT move makes X2's journey write its row while it waits for the answer: the write fails,
    # and the run is held there, retrying, for as long as the outage lasts.
    await kit.api.command(
        round_id,
        MoveTmt(
            report_id="tmt-outage", reported_by=OPERATOR, new_tmt=date(2027, 7, 1), reason="SK"
        ),
    )

    async def failing():
        return kit.acts.failed_writes > 0

    await kit.until(failing, "X2's row write failing")
    await kit.advance_to(optimalisasi_at + timedelta(hours=2))
    ack = await kit.api.report(
        round_id, ids["X2"], OfferAnswer(report_id="yes-X2", reported_by="sscasn", accept=True)
    )
    assert ack.effect == "offer accepted" and ack.recorded_at < answer_by

    # The outage outlasts the round's deadline for answers (answer_by and the grace).
    await kit.advance_to(answer_by + grace + timedelta(minutes=10))
    state = await kit.round_state(round_id)
    assert state.offers == {f"{round_id}/offer/{ids['X2']}/F2": "accepted"}, state.offers
    assert not [d for d in state.decisions if d.outcome == "offer unanswered"]

    kit.acts.read_model_down_for.clear()  # the read model is back: the next retry writes
    await kit.advance_to(answer_by + grace + timedelta(hours=3))

    async def x2_placed():
        s = await kit.journey(round_id, ids["X2"])
        return s if s.placed_formasi is not None else None

    x2 = await kit.until(x2_placed, "X2 placed once its row is written")
    assert (x2.final_code, x2.placed_formasi) == (FinalCode.PASSED_OPTIMALISASI, "F2")
    x3 = await kit.journey(round_id, ids["X3"])
    assert x3.offer is None and x3.placed_formasi is None
