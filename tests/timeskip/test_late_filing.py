"""A seat taken late in filing gives its taker as long to file as every winner had (patch
late-taker-filing-time), on a round scheduled in days.

Schedule as tests/timeskip/test_offer_deadline.py: optimalisasi begins on day 54.5, filing is open
from day 60 to day 75 (15 days), an offer waits 2 days. X1 wins F1; X2 takes F2's empty seat in
optimalisasi and, on day 74.5, files incomplete: the seat is given back while filing is open and
offered to X3, whose answer the round waits for past the scheduled close. X3 accepts on day 75.5.

Until 12-07 the close, held for that answer, reached X3's journey milliseconds after it accepted,
and ended it TMS-DRH: nobody could have filed in that time, and F2's seat ended empty (review of
12-07). X3 now has the filing window's 15 days from accepting. X1, a winner who did not file by
the scheduled close, still ends TMS-DRH at the close: the time is the late taker's alone.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from client.status import build_round_view
from domain.codes import FinalCode, Stage, Terminal
from domain.messages import FilingReport, OfferAnswer
from tests.timeskip.test_offer_deadline import _to_optimalisasi

pytestmark = pytest.mark.asyncio(loop_scope="session")

FILING_DAYS = timedelta(days=15)  # the window's length in _to_optimalisasi's schedule


async def _x3_takes_the_seat_after_the_close(kit, round_id: str):
    """Play to X3's acceptance of F2's seat after the scheduled close; the ids, t0 (day 0) and
    when X3 accepted."""
    ids, optimalisasi_at = await _to_optimalisasi(kit, round_id)
    t0 = optimalisasi_at - timedelta(days=54, hours=12)
    await kit.journey_at(round_id, ids["X2"], Stage.OPTIMALISASI)

    async def offered(name: str):
        async def probe():
            s = await kit.journey(round_id, ids[name])
            return s if s.offer is not None and s.stage == Stage.OPTIMALISASI else None

        return await kit.until(probe, f"{name} holding an offer")

    await offered("X2")
    await kit.api.report(
        round_id, ids["X2"], OfferAnswer(report_id="yes-X2", reported_by="sscasn", accept=True)
    )
    await kit.advance_to(t0 + timedelta(days=74, hours=12))
    await kit.journey_at(round_id, ids["X2"], Stage.FILING)
    await kit.api.report(
        round_id,
        ids["X2"],
        FilingReport(
            report_id="drh-X2", reported_by="bkpsdm-verifikator", complete=False, missing=["SKCK"]
        ),
    )
    offer = (await offered("X3")).offer
    assert offer.to_formasi == "F2"
    assert offer.answer_by > t0 + timedelta(days=75)  # answered after the scheduled close
    # Past the scheduled close: the round holds filing's close for X3's answer.
    await kit.advance_to(t0 + timedelta(days=75, hours=12))
    state = await kit.round_state(round_id)
    assert state.phase == "filing", state.phase
    ack = await kit.api.report(
        round_id, ids["X3"], OfferAnswer(report_id="yes-X3", reported_by="sscasn", accept=True)
    )
    assert ack.effect == "offer accepted"

    async def closed():
        s = await kit.round_state(round_id)
        return s if s.phase == "latsar" else None

    state = await kit.until(closed, "filing's close, once X3 answered")
    # The round records filing's close when it took effect, after the scheduled one (patch
    # filing-close-recorded), and the status view shows that moment.
    [close] = [d for d in state.decisions if (d.stage, d.outcome) == ("filing", "window closed")]
    assert timedelta(0) <= close.at - ack.recorded_at < timedelta(minutes=5), close
    assert close.input["scheduled"] == (t0 + timedelta(days=75)).isoformat()
    view = build_round_view(await kit.api.round_config(round_id), state, await kit.now())
    [filing] = [w for w in view.windows if w.name == "filing"]
    assert (filing.state, filing.closed_at) == ("ditutup", close.at), filing
    return ids, t0, ack.recorded_at


async def test_a_seat_taken_after_filing_closed_is_filed_for_in_the_windows_time(kit):
    round_id = f"ts-late-{uuid.uuid4().hex[:6]}"
    ids, t0, accepted_at = await _x3_takes_the_seat_after_the_close(kit, round_id)

    # X1 won F1 and never filed: TMS-DRH at the close, as before.
    x1 = await kit.journey_at(round_id, ids["X1"], Stage.ENDED)
    assert x1.terminal == Terminal.FILING_INCOMPLETE, x1
    # X3 took F2 after the close and is filing, days later, within its own time.
    await kit.advance_to(accepted_at + FILING_DAYS - timedelta(days=1))
    x3 = await kit.journey(round_id, ids["X3"])
    assert (x3.stage, x3.terminal) == (Stage.FILING, None), x3
    assert (x3.final_code, x3.placed_formasi) == (FinalCode.PASSED_OPTIMALISASI, "F2")
    await kit.api.report(
        round_id,
        ids["X3"],
        FilingReport(report_id="drh-X3", reported_by="bkpsdm-verifikator", complete=True),
    )
    x3 = await kit.journey_at(round_id, ids["X3"], Stage.LATSAR)
    assert x3.nip and x3.placed_formasi == "F2"


async def test_a_late_taker_who_does_not_file_ends_when_its_own_time_is_up(kit):
    round_id = f"ts-late-none-{uuid.uuid4().hex[:6]}"
    ids, t0, accepted_at = await _x3_takes_the_seat_after_the_close(kit, round_id)
    due = accepted_at + FILING_DAYS

    await kit.advance_to(due - timedelta(hours=1))
    x3 = await kit.journey(round_id, ids["X3"])
    assert (x3.stage, x3.terminal) == (Stage.FILING, None), x3
    await kit.advance_to(due + timedelta(minutes=10))
    x3 = await kit.journey_at(round_id, ids["X3"], Stage.ENDED)
    assert x3.terminal == Terminal.FILING_INCOMPLETE, x3
    [incomplete] = [d for d in x3.decisions if (d.stage, d.outcome) == ("filing", "incomplete")]
    assert abs(incomplete.at - due) < timedelta(minutes=5), incomplete
