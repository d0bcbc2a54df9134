"""From SKB to PNS on a round scheduled in days: the final appeal wait, the optimalisasi offer
deadline, filing, the NIP, a TMT move reaching journeys at Latsar, the Latsar result, and the
year of probation from the TMT (moved again during it) before PNS, or a DIS during it.

Schedule (days after t0): registration 0-15, administration 15-18, SKD 21-35, SKB 36-50,
filing 60-75, Latsar 75-700; final appeal window 3 days, answers within 1 day; an optimalisasi
offer waits 2 days. Latsar closes after the test's last skip (2028-08-01, about day 602). Closed
at day 440, as it was until 12-07, the round's close (its signals to the formasi, which then
end) left the time-skipping test server's clock locked in about one run of three on a loaded
machine: the skip across it stopped at that very instant and waited in real time until the
client's deadline, with no task or activity pending on any open workflow. That is the test
server's, not the engine's (the round closes on the dev server in tests/flows); this test is
about what happens before the close.
F1 (quota 1) has three SKB participants; F2 (quota 1, same jabatan and education) has none,
so its seat goes to optimalisasi. Expectations are written from DOMAIN.md, stages 8-12.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from auditing.recompute import probation_differences
from client.api import RefusedError
from client.standings import full_result
from domain.codes import FinalCode, SkdCode, Stage, Terminal
from domain.messages import (
    AdminReport,
    Disqualification,
    FilingReport,
    GateReport,
    LatsarReport,
    MoveTmt,
    OfferAnswer,
    SkbScoreReport,
    SkdReport,
)
from tests.roundkit import OPERATOR, compressed_round, formasi, noon_wib_after, registration
from workflows.ids import journey_workflow_id
from workflows.round import journey_rules

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400  # seconds
SKD = {"X1": (120, 140, 190), "X2": (110, 130, 185), "X3": (100, 120, 180)}  # twk, tiu, tkp
SKB = {"X1": (450, 90), "X2": (400, 80), "X3": (380, 80)}  # cat /500, praktik /100
# X1 wins F1's seat; X2 is offered F2's empty seat first, never answers (declined after 2 days);
# X3 is offered it next and accepts (P/L-2). Both appointed pass Latsar and serve the year of
# probation from the TMT (moved twice): X1 to PNS; X3 is disqualified during it (finals below).
EXPECTED = {"X1": ("PNS", "P/L", "F1"), "X2": ("TL", "TL", None), "X3": ("PNS", "P/L-2", "F2")}


def near(moment, expected) -> bool:
    return abs(moment - expected) < timedelta(minutes=5)


async def test_final_appeal_optimalisasi_deadline_and_tmt_move(kit):
    t0 = noon_wib_after(await kit.now())  # SKB closes, and the final result is out, at 12:00 WIB
    day = timedelta(days=1)
    round_id = f"ts-final-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 1), formasi("F2", 1)],
        {
            "registration": (0, 15 * DAY),
            "administration": (15 * DAY, 18 * DAY),
            "skd": (21 * DAY, 35 * DAY),
            "skb": (36 * DAY, 50 * DAY),
            "filing": (60 * DAY, 75 * DAY),
            "latsar": (75 * DAY, 700 * DAY),
        },
        appeal_window=3 * DAY,
        answer_within=1 * DAY,
        offer_within=2 * DAY,
        t0=t0,
    )
    await kit.create_round(config)
    await kit.advance_to(t0 + timedelta(hours=1))
    ids = {
        n: await kit.register(config, registration(i, "F1"))
        for i, n in enumerate(EXPECTED, start=1)
    }
    names = list(EXPECTED)

    async def report(name, message):
        return await kit.api.report(round_id, ids[name], message)

    for name in names:
        await kit.journey_at(round_id, ids[name], Stage.ADMIN_CHECK)
        await report(
            name,
            AdminReport(report_id=f"adm-{name}", reported_by="bkpsdm-verifikator"),
        )

    await kit.advance_to(t0 + 22 * day)
    for name, (twk, tiu, tkp) in SKD.items():
        await kit.journey_at(round_id, ids[name], Stage.SKD)
        await report(
            name,
            SkdReport(report_id=f"skd-{name}", reported_by="cat-bkn", twk=twk, tiu=tiu, tkp=tkp),
        )

    await kit.advance_to(t0 + 40 * day)
    for name, (cat, praktik) in SKB.items():
        s = await kit.journey_at(round_id, ids[name], Stage.SKB)
        assert s.skd_code == SkdCode.PASSED_TO_SKB
        await report(
            name,
            SkbScoreReport(
                report_id=f"cat-{name}", reported_by="cat-bkn", component="cat", score=cat
            ),
        )
        await report(
            name,
            SkbScoreReport(
                report_id=f"pr-{name}",
                reported_by="panel-praktik",
                component="praktik",
                score=praktik,
            ),
        )
        await report(
            name,
            GateReport(
                report_id=f"h-{name}", reported_by="rsud", component="health", decision="MS"
            ),
        )

    # --- the final sanggah: SKB closes on day 50; nobody moves on before the window (3 days) and
    # the time to answer (1 day) have passed and the formasi confirmed its ranking -------------
    skb_closes = t0 + 50 * day
    await kit.advance_to(skb_closes + timedelta(hours=1))

    async def all_results():
        s = await kit.round_state(round_id)
        return s if len(s.formasi_results) == 2 else None

    state = await kit.until(all_results, "both formasi results")
    assert state.phase == "final_appeal" and state.offers == {}
    # The formasi keep their rankings as pages (patch paged-ranking): the round holds references.
    f1 = await full_result(kit.acts.pages, state.formasi_results["F1"])
    assert state.formasi_results["F1"].paged and f1.winners == [ids["X1"]]
    assert state.formasi_results["F2"].vacancies == 1
    x1 = await kit.journey_at(round_id, ids["X1"], Stage.FINAL_APPEAL)
    assert x1.final_code == FinalCode.PASSED
    for name in ("X2", "X3"):
        s = await kit.journey_at(round_id, ids[name], Stage.FINAL_APPEAL)
        assert s.final_code == FinalCode.NOT_PASSED
    await kit.advance_to(skb_closes + 4 * day - timedelta(hours=1))
    state = await kit.round_state(round_id)
    assert state.phase == "final_appeal" and state.offers == {}  # the sanggah is not over yet

    # --- optimalisasi: the offer to X2 goes unanswered and counts as declined after 2 days ------
    # The window ends at 24:00 WIB of its third day and a sanggah filed on it is answered by 24:00
    # of the next: 4 days and 12 hours after the final result (docs/ARCHITECTURE.md, "Time and
    # calendars").
    optimalisasi_at = skb_closes + 4 * day + timedelta(hours=12)
    await kit.advance_to(optimalisasi_at + timedelta(hours=1))
    offer_x2 = f"{round_id}/offer/{ids['X2']}/F2"
    offer_x3 = f"{round_id}/offer/{ids['X3']}/F2"

    async def offered(offer_id):
        async def probe():
            s = await kit.round_state(round_id)
            return s if s.offers.get(offer_id) == "pending" else None

        return probe

    state = await kit.until(await offered(offer_x2), "the offer to X2")
    assert (await kit.journey_at(round_id, ids["X1"], Stage.FILING)).final_code == FinalCode.PASSED
    assert state.phase == "optimalisasi" and offer_x3 not in state.offers
    allocated = next(d for d in state.decisions if d.outcome == "allocated")
    assert near(allocated.at, optimalisasi_at), allocated
    with pytest.raises(RefusedError, match="no optimalisasi offer"):
        await report(
            "X3",
            OfferAnswer(report_id="offer-X3-early", reported_by="sscasn", accept=True),
        )

    await kit.advance_to(optimalisasi_at + 2 * day - timedelta(hours=1))
    assert (await kit.journey(round_id, ids["X2"])).stage == Stage.OPTIMALISASI
    assert (await kit.round_state(round_id)).offers == {offer_x2: "pending"}

    await kit.advance_to(optimalisasi_at + 2 * day + timedelta(minutes=10))
    x2 = await kit.journey_at(round_id, ids["X2"], Stage.ENDED)
    declined = next(d for d in x2.decisions if d.stage == Stage.OPTIMALISASI)
    assert (declined.outcome, declined.actor, declined.input["answered"]) == (
        "declined",
        "system",
        False,
    )
    assert near(declined.at, optimalisasi_at + 2 * day), declined
    assert (
        x2.terminal == Terminal.NOT_PASSED
        and "declined the optimalisasi offer" in x2.terminal_reason
    )

    # The seat goes to the next in rank: X3 is offered it and accepts.
    state = await kit.until(await offered(offer_x3), "the offer to X3")
    assert state.offers[offer_x2] == "declined"

    async def accept_x3():
        try:
            return await report(
                "X3",
                OfferAnswer(report_id="offer-X3", reported_by="sscasn", accept=True),
            )
        except RefusedError as exc:  # the offer signal may still be on its way to the journey
            assert "no optimalisasi offer" in str(exc)
            return None

    await kit.until(accept_x3, "X3's acceptance")
    x3 = await kit.journey_at(round_id, ids["X3"], Stage.FILING)
    assert (x3.final_code, x3.placed_formasi) == (FinalCode.PASSED_OPTIMALISASI, "F2")

    # --- filing, NIP and appointment; then the TMT moves while both are at Latsar ----------------
    await kit.advance_to(t0 + 61 * day)
    assert (await kit.round_state(round_id)).phase == "filing"
    for name in ("X1", "X3"):
        await report(
            name,
            FilingReport(report_id=f"drh-{name}", reported_by="bkpsdm-verifikator", complete=True),
        )
    appointed = {}
    for name in ("X1", "X3"):
        s = await kit.journey_at(round_id, ids[name], Stage.LATSAR)
        assert s.tmt == date(2027, 3, 1) and s.nip and s.nip[8:14] == "202703"
        appointed[name] = s
    assert appointed["X1"].nip != appointed["X3"].nip

    await kit.advance_to(t0 + 62 * day)
    new_tmt = date(2027, 7, 1)
    move = MoveTmt(
        report_id="tmt-1",
        reported_by=OPERATOR,
        new_tmt=new_tmt,
        reason="TMT moved by government decision",
    )
    ack = await kit.api.command(round_id, move)
    assert ack.effect == "TMT moved to 2027-07-01"
    assert await kit.api.command(round_id, move) == ack  # a repeat: no second move
    state = await kit.round_state(round_id)
    assert state.schedule.tmt == new_tmt
    assert [d.input["reason"] for d in state.decisions if d.outcome.startswith("TMT moved")] == [
        move.reason
    ]

    for name in ("X1", "X3"):

        async def moved(name=name):
            s = await kit.journey(round_id, ids[name])
            return s if s.tmt == new_tmt else None

        s = await kit.until(moved, f"the TMT move at {name}")
        assert s.stage == Stage.LATSAR
        moves = [d for d in s.decisions if d.outcome == "TMT moved"]
        assert (
            len(moves) == 1
            and moves[0].input["from"] == "2027-03-01"
            and moves[0].input["to"] == "2027-07-01"
        )
    tmt_broadcasts = {
        b.formasi_code for b in kit.acts.broadcasts if b.announcement.phase == "tmt_moved"
    }
    assert tmt_broadcasts == {"F1", "F2"}

    # --- Latsar: both pass, and serve their year of probation from the TMT ---------------------------
    await kit.advance_to(t0 + 200 * day)
    for name in ("X1", "X3"):
        await report(
            name,
            LatsarReport(report_id=f"latsar-{name}", reported_by="lan", passed=True, healthy=True),
        )
    for name in ("X1", "X3"):

        async def judged(name=name):
            s = await kit.journey(round_id, ids[name])
            return s if any(d.outcome == "PNS" for d in s.decisions) else None

        s = await kit.until(judged, f"the Latsar judgement of {name}")
        # Judged, still a CPNS at Latsar: PNS only once the year from the TMT (2027-07-01) ends.
        assert (s.stage, s.terminal) == (Stage.LATSAR, None)

    # The TMT moves again during the probation: the year follows it.
    await kit.advance_to(t0 + 210 * day)
    later_tmt = date(2027, 8, 1)
    ack = await kit.api.command(
        round_id,
        MoveTmt(
            report_id="tmt-2", reported_by=OPERATOR, new_tmt=later_tmt, reason="TMT moved again"
        ),
    )
    assert ack.effect == "TMT moved to 2027-08-01"
    for name in ("X1", "X3"):

        async def moved_again(name=name):
            s = await kit.journey(round_id, ids[name])
            return s if s.tmt == later_tmt else None

        await kit.until(moved_again, f"the second TMT move at {name}")
    wib = timezone(timedelta(hours=7))
    await kit.advance_to(datetime(2028, 7, 1, 1, 0, tzinfo=wib))  # a year after the old TMT
    for name in ("X1", "X3"):
        s = await kit.journey(round_id, ids[name])
        assert (s.stage, s.terminal) == (Stage.LATSAR, None), (name, s.stage, s.terminal)
    # A DIS during the probation (cheating found after the NIP) ends X3's wait at once.
    dis = await report(
        "X3", Disqualification(report_id="dis-X3", reported_by=OPERATOR, reason="joki terbukti")
    )
    assert (dis.effect, dis.stage) == ("disqualified", Stage.LATSAR)
    x3 = await kit.journey_at(round_id, ids["X3"], Stage.ENDED)
    assert (x3.terminal, x3.terminal_reason) == (Terminal.DISQUALIFIED, "DIS: joki terbukti")
    await kit.advance_to(datetime(2028, 8, 1, 0, 1, tzinfo=wib))  # a year after the TMT
    finals = {}
    for name in names:
        s = await kit.journey_at(round_id, ids[name], Stage.ENDED)
        finals[name] = (s.terminal.value, s.final_code.value, s.placed_formasi)
        projected = kit.acts.projections[(round_id, ids[name])].state
        assert (projected.stage, projected.terminal, projected.tmt) == (s.stage, s.terminal, s.tmt)
    assert finals == {**EXPECTED, "X3": ("DIS", "P/L-2", "F2")}
    rules = journey_rules(config)
    for name in ("X1",):
        s = await kit.journey(round_id, ids[name])
        assert s.terminal_reason == "PNS: passed Latsar; probation served to 2028-08-01"
        ended = [d for d in s.decisions if d.outcome == "PNS"][-1]
        assert ended.at >= datetime(2028, 8, 1, tzinfo=wib), ended
        # The auditor's check (audit.py recompute) finds the year served; a PNS made a day
        # early, or a reason naming another day, it names.
        assert probation_differences(ids[name], rules, s) == []
        early = ended.model_copy(update={"at": ended.at - timedelta(days=1)})
        forged = s.model_copy(update={"decisions": [*s.decisions[:-1], early]})
        assert s.decisions[-1] is ended
        found = probation_differences(ids[name], rules, forged)
        assert found == [
            f"applicant {ids[name]}: PNS at {early.at.isoformat()}, before the year of probation "
            "from TMT 2027-08-01 ended (2028-08-01T00:00:00+07:00)"
        ]
        misdated = s.model_copy(
            update={"terminal_reason": "PNS: passed Latsar; probation served to 2028-07-01"}
        )
        assert "ended on 2028-08-01" in " ".join(probation_differences(ids[name], rules, misdated))
    # The journeys at Latsar were told of the filing close too (a signal costs less than asking
    # each one whether it still waits) and went on to PNS regardless.
    closes = [
        b.mode
        for b in kit.acts.broadcasts
        if b.announcement.phase in ("optimalisasi_closed", "filing_closed")
    ]
    assert closes and set(closes) == {"signal"}
    # The optimalisasi close went only to F1's two who lost on rank; F2 ranked nobody, so none of
    # its journeys could be waiting for it.
    told = {
        (b.formasi_code, tuple(b.workflow_ids))
        for b in kit.acts.broadcasts
        if b.announcement.phase == "optimalisasi_closed"
    }
    assert told == {("F1", tuple(journey_workflow_id(round_id, ids[n]) for n in ("X2", "X3")))}
