"""A winner's seat given back goes to optimalisasi (DOMAIN.md stage 9: seats left empty because
"the winner failed a gate or withdrew" are offered to the next in the pool).

- A winner who withdraws between the formasi's final ranking and hearing it: the formasi ranks the
  SKB answers and then tells its applicants, a page at a time (minutes at national size); a
  withdrawal that reached the winner's journey in between ended it before it knew it had won, and
  no seat was given back: the formasi's result counted the seat as filled, and it stayed empty.
- A winner whose filing is reported incomplete (TMS-DRH) while the filing window is open: the round
  refills seats given up until filing closes, but the journey ended without giving the seat back.

Schedule (days after t0): registration 0-15, administration 15-18, SKD 21-35, SKB 36-50, filing
60-75, Latsar 75-440; sanggah windows 3 days, answers within 1 day, an offer waits 2 days. F1 has
one seat; X1 wins it, X2 loses on rank.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from domain.codes import Phase, Stage, Terminal
from domain.messages import (
    AdminReport,
    FilingReport,
    GateReport,
    SkbScoreReport,
    SkdReport,
    Withdrawal,
)
from tests.roundkit import compressed_round, formasi, noon_wib_after, registration

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400  # seconds
SKD = {"X1": (120, 140, 190), "X2": (110, 130, 185)}  # twk, tiu, tkp
SKB = {"X1": 450, "X2": 400}  # cat /500; praktik 80 and health MS for both


async def _to_skb(kit, prefix: str):
    """F1's round with X1 and X2 through SKB (reported, not closed): its id, the applicants' ids
    and the moment SKB closes."""
    t0 = noon_wib_after(await kit.now())
    day = timedelta(days=1)
    round_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 1)],
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
    )
    await kit.create_round(config)
    await kit.advance_to(t0 + timedelta(hours=1))
    ids = {n: await kit.register(config, registration(i, "F1")) for i, n in enumerate(SKD, 1)}

    for name in SKD:
        await kit.journey_at(round_id, ids[name], Stage.ADMIN_CHECK)
        await kit.api.report(
            round_id,
            ids[name],
            AdminReport(report_id=f"adm-{name}", reported_by="bkpsdm-verifikator"),
        )
    await kit.advance_to(t0 + 22 * day)
    for name, (twk, tiu, tkp) in SKD.items():
        await kit.journey_at(round_id, ids[name], Stage.SKD)
        await kit.api.report(
            round_id,
            ids[name],
            SkdReport(report_id=f"skd-{name}", reported_by="cat-bkn", twk=twk, tiu=tiu, tkp=tkp),
        )
    await kit.advance_to(t0 + 40 * day)
    for name, cat in SKB.items():
        await kit.journey_at(round_id, ids[name], Stage.SKB)
        for message in (
            SkbScoreReport(
                report_id=f"cat-{name}", reported_by="cat-bkn", component="cat", score=cat
            ),
            SkbScoreReport(
                report_id=f"pr-{name}", reported_by="panel-praktik", component="praktik", score=80
            ),
            GateReport(
                report_id=f"h-{name}", reported_by="rsud", component="health", decision="MS"
            ),
        ):
            await kit.api.report(round_id, ids[name], message)

    return round_id, ids, t0 + 50 * day


async def test_a_winner_who_withdraws_before_hearing_the_result_gives_the_seat_back(kit):
    round_id, ids, skb_closes = await _to_skb(kit, "ts-early-aps")
    day = timedelta(days=1)

    async def report(name, message):
        return await kit.api.report(round_id, ids[name], message)

    # F1 ranks at the SKB close and is slow to tell its applicants: the result is held.
    release = asyncio.Event()
    kit.acts.hold_announcement[("F1", Phase.FINAL_RESULT)] = release
    await kit.advance_to(skb_closes + timedelta(seconds=1))

    async def result_ranked():
        return any(
            b.formasi_code == "F1" and b.announcement.phase == Phase.FINAL_RESULT
            for b in kit.acts.broadcasts
        )

    await kit.until(result_ranked, "F1's final ranking")
    waiting = await kit.journey_at(round_id, ids["X1"], Stage.FINAL_RANKING)
    assert waiting.final_code is None  # ranked the winner, not told yet
    await report("X1", Withdrawal(report_id="aps", reported_by="sscasn", reason="other job"))
    release.set()

    x1 = await kit.journey_at(round_id, ids["X1"], Stage.ENDED)
    # Withdrew before the result reached it: not "after passing", so no bar on later rounds.
    assert (x1.terminal, x1.sanction_rounds) == (Terminal.WITHDRAWN, 0), x1
    assert [d.outcome for d in x1.decisions][-2:] == ["seat given back", "APS"], x1.decisions
    # The final sanggah (3 days, answers within 1) is over; the seat X1 won is offered to X2.
    await kit.advance_to(skb_closes + 5 * day)

    async def past_the_sanggah():
        s = await kit.round_state(round_id)
        return s if s.phase in ("optimalisasi", "filing") else None

    state = await kit.until(past_the_sanggah, "the round past the final sanggah")
    vacated = [d.input for d in state.decisions if d.outcome == "seat vacated"]
    assert vacated == [{"applicant_id": ids["X1"], "formasi_code": "F1"}], state.decisions

    async def offered():
        s = await kit.journey(round_id, ids["X2"])
        return s if s.offer is not None else None

    x2 = await kit.until(offered, "X2's optimalisasi offer")
    assert x2.offer is not None and x2.offer.to_formasi == "F1", x2


async def test_a_winner_whose_filing_is_incomplete_gives_the_seat_back_while_filing_is_open(kit):
    round_id, ids, skb_closes = await _to_skb(kit, "ts-drh")
    filing_opens = skb_closes + timedelta(days=10)
    await kit.advance_to(filing_opens + timedelta(hours=1))
    await kit.journey_at(round_id, ids["X1"], Stage.FILING)
    await kit.api.report(
        round_id,
        ids["X1"],
        FilingReport(
            report_id="drh", reported_by="bkpsdm-verifikator", complete=False, missing=["DRH"]
        ),
    )
    x1 = await kit.journey_at(round_id, ids["X1"], Stage.ENDED)
    assert x1.terminal == Terminal.FILING_INCOMPLETE, x1

    async def offered():
        s = await kit.journey(round_id, ids["X2"])
        return s if s.offer is not None else None

    x2 = await kit.until(offered, "X2's optimalisasi offer")
    assert x2.offer is not None and x2.offer.to_formasi == "F1", x2
    state = await kit.round_state(round_id)
    vacated = [d.input for d in state.decisions if d.outcome == "seat vacated"]
    assert vacated == [{"applicant_id": ids["X1"], "formasi_code": "F1"}], vacated
