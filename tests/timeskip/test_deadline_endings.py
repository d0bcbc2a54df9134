"""Endings at a deadline: found as gaps by the time-skipping tests, now guards of their fixes.

- A report to a journey that ended at its deadline is refused with the ending and its reason.
- The trail records the ending at the deadline as its own decision (patch "record-every-ending").
- A journey that ended but is still running answers its formasi's close (patch "reply-after-end").
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from client.api import RefusedError
from domain.administration import DocumentFinding
from domain.codes import SkdCode, Stage, Terminal
from domain.messages import AdminReport, AppealFiling, SkdReport, Withdrawal
from tests.roundkit import compressed_round, formasi, noon_wib_after, registration

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86400  # seconds
SCHEDULE = {
    "registration": (0, 15 * DAY),
    "administration": (15 * DAY, 18 * DAY),
    "skd": (25 * DAY, 55 * DAY),
    "skb": (56 * DAY, 70 * DAY),
    "filing": (80 * DAY, 95 * DAY),
    "latsar": (95 * DAY, 460 * DAY),
}


async def _round(kit, n: int, tms: set[int]):
    t0 = noon_wib_after(await kit.now())  # the administration result is out at 12:00 WIB
    round_id = f"ts-gap-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 1)],
        SCHEDULE,
        appeal_window=3 * DAY,
        answer_within=7 * DAY,
        offer_within=2 * DAY,
        t0=t0,
    )
    await kit.create_round(config)
    await kit.advance_to(t0 + timedelta(minutes=1))
    ids = [await kit.register(config, registration(i, "F1")) for i in range(1, n + 1)]
    for i, applicant in enumerate(ids, start=1):
        await kit.journey_at(round_id, applicant, Stage.ADMIN_CHECK)
        findings = [DocumentFinding(document="ijazah", reason="not legalised")] if i in tms else []
        await kit.api.report(
            round_id,
            applicant,
            AdminReport(report_id=f"adm-{i}", reported_by="bkpsdm-verifikator", findings=findings),
        )
    return t0, round_id, ids


async def test_late_appeal_is_refused_naming_the_ended_window(kit):
    t0, round_id, (applicant,) = await _round(kit, 1, tms={1})
    # Announced on day 18 at 12:00 WIB; the window ends with its third day, at 24:00 WIB.
    await kit.advance_to(t0 + timedelta(days=21, hours=13))
    with pytest.raises(
        RefusedError, match="journey has ended .*no appeal within the appeal window"
    ):
        await kit.api.report(
            round_id,
            applicant,
            AppealFiling(report_id="late", reported_by="sscasn", reason="legalised"),
        )


async def test_trail_records_the_end_after_the_appeal_window(kit):
    t0, round_id, (applicant,) = await _round(kit, 1, tms={1})
    await kit.advance_to(t0 + timedelta(days=21, hours=13))
    s = await kit.journey_at(round_id, applicant, Stage.ENDED)
    assert s.terminal == Terminal.TMS
    last = s.decisions[-1]
    assert last.input.get("reason") == "TMS; no appeal within the appeal window", last
    assert abs(last.at - (t0 + timedelta(days=21, hours=12))) < timedelta(minutes=5), last


async def test_a_journey_ending_at_the_skd_close_still_answers_its_formasi(kit):
    t0, round_id, (leaver, sitter) = await _round(kit, 2, tms=set())
    await kit.advance_to(t0 + timedelta(days=30))
    await kit.api.report(
        round_id,
        sitter,
        SkdReport(report_id="skd-2", reported_by="cat-bkn", twk=100, tiu=120, tkp=180),
    )
    # The leaver withdraws shortly before the SKD close while the read model is slow.
    closes = t0 + timedelta(days=55)
    await kit.advance_to(closes - timedelta(seconds=2))
    release = asyncio.Event()
    kit.acts.hold_final_projection[leaver] = release
    withdraw = asyncio.create_task(
        kit.api.report(round_id, leaver, Withdrawal(report_id="aps-1", reported_by="sscasn"))
    )

    async def closed_while_held():  # the close passes in real time (no skipping) while the leaver is held
        return any(b.announcement.phase == "skd_closed" for b in kit.acts.broadcasts)

    try:
        await kit.until(closed_while_held, "the SKD close while the leaver is held", timeout=20)
        # The update's answer comes back when the SDK heartbeats the held workflow task (~8 s); the
        # announcement then reaches the journey while it is still running, ended, with its
        # projection outstanding.
        await asyncio.wait_for(withdraw, timeout=20)
        await asyncio.sleep(0.5)
    finally:
        release.set()
    await withdraw
    await kit.advance_to(closes + timedelta(hours=1))
    assert (await kit.journey_at(round_id, leaver, Stage.ENDED)).terminal == Terminal.WITHDRAWN
    s = await kit.journey_at(round_id, sitter, Stage.SKB, timeout=3)
    assert s.skd_code == SkdCode.PASSED_TO_SKB
