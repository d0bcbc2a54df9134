"""A late optimalisasi taker's edges (patch late-taker-filing-time and what follows it), found by a
review on 12-08, each failing before its mend. Played on tests/timeskip/test_late_filing.py's
round (filing day 60-75, 15 days; X3 takes F2's seat given up by X2, accepting on day 75.5, after
the scheduled close).

- The round closed (Latsar closed early) while X3 still files: its withdrawal, DIS or incomplete
  filing gave the seat back to the completed round, the signal failed, and the journey failed
  with it (patch seat-back-to-ended-round: the seat is simply not refilled).
- A taker who accepted before filing opened had the winners' window and more: its offer gave it
  the window's length from accepting, past an early close (offers made while filing is open only).
- The status page showed the round's close, not the taker's own time (JourneyState.file_until).
- An acceptance and a withdrawal taken together ended TL with no bar, or P/L-2 with two rounds,
  as the run happened to wake (patch accepted-before-ending).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from client.status import build_applicant_view, build_round_view
from domain.codes import FinalCode, Stage, Terminal
from domain.messages import (
    CloseWindow,
    Disqualification,
    FilingReport,
    OfferAnswer,
    Withdrawal,
)
from tests.roundkit import OPERATOR
from tests.timeskip.test_late_filing import FILING_DAYS, _x3_takes_the_seat_after_the_close
from tests.timeskip.test_offer_deadline import _to_optimalisasi
from workflows.ids import journey_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _round_closed_while_x3_files(kit, round_id):
    """X3 takes F2 after filing's close; two days later the operator closes Latsar early (the round
    ends: ROUND_CLOSED, its workflow completes) while X3 is still within its own time to file."""
    ids, t0, accepted_at = await _x3_takes_the_seat_after_the_close(kit, round_id)
    await kit.advance_to(accepted_at + timedelta(days=2))
    await kit.api.command(
        round_id,
        CloseWindow(
            report_id="close-latsar", reported_by=OPERATOR, window="latsar", reason="all reported"
        ),
    )

    async def closed():
        s = await kit.round_state(round_id)
        return s if s.phase == "closed" else None

    await kit.until(closed, "the round closed")
    x3 = await kit.journey(round_id, ids["X3"])
    assert (x3.stage, x3.terminal) == (Stage.FILING, None), x3
    # No skip of the clock after the round's close: the test server may keep its clock locked
    # there (tests/timeskip/conftest.py), and X3's report needs none.
    return ids


async def _settled(kit, round_id, applicant_id):
    """The journey's workflow status once it left RUNNING, and its failure, if it failed."""
    handle = kit.client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
    for _ in range(50):
        status = (await handle.describe()).status
        if status.name != "RUNNING":
            break
        await asyncio.sleep(0.2)
    failure = ""
    for e in (await handle.fetch_history()).events:
        if e.HasField("workflow_execution_failed_event_attributes"):
            f = e.workflow_execution_failed_event_attributes.failure
            failure = f"{f.message} ({f.application_failure_info.type})"
    return status.name, failure


@pytest.mark.parametrize("ending", ["withdrawal", "dis", "incomplete"])
async def test_a_late_taker_ending_after_the_round_closed_ends_with_its_outcome(kit, ending):
    """The journey gives its seat back (SEAT_VACATED) to a round workflow that has completed: the
    signal fails (ExternalWorkflowExecutionNotFound). The journey used to fail with it: no
    terminal, no APS sanction, no DIS. It now ends with its outcome."""
    round_id = f"lt-rc-{ending[:3]}-{uuid.uuid4().hex[:6]}"
    ids = await _round_closed_while_x3_files(kit, round_id)
    report = {
        "withdrawal": Withdrawal(report_id="wd-X3", reported_by="sscasn", reason="lain"),
        "dis": Disqualification(report_id="dis-X3", reported_by=OPERATOR, reason="joki"),
        "incomplete": FilingReport(
            report_id="drh-X3", reported_by="bkpsdm-verifikator", complete=False, missing=["SKCK"]
        ),
    }[ending]
    await kit.api.report(round_id, ids["X3"], report)
    status, failure = await _settled(kit, round_id, ids["X3"])
    assert (status, failure) == ("COMPLETED", "")
    x3 = await kit.journey(round_id, ids["X3"])
    expected = {
        "withdrawal": (Terminal.WITHDRAWN, 2),  # after passing (P/L-2): barred 2 rounds
        "dis": (Terminal.DISQUALIFIED, 0),
        "incomplete": (Terminal.FILING_INCOMPLETE, 0),
    }[ending]
    assert (x3.terminal, x3.sanction_rounds) == expected, x3


async def test_a_taker_who_accepted_before_filing_opened_ends_at_an_early_close_as_winners_do(kit):
    """Ordinary optimalisasi (before filing opens): X2 takes F2's empty seat on day ~55. Filing
    opens on day 60; the operator closes it early on day 61. X1 (P/L, not filed) ends TMS-DRH at
    the close, and so does X2 (P/L-2, accepted before filing opened: it had the winners' window).
    Its offer used to carry the window's length, and X2 was still filing on day 65."""
    round_id = f"lt-early-{uuid.uuid4().hex[:6]}"
    ids, optimalisasi_at = await _to_optimalisasi(kit, round_id)
    t0 = optimalisasi_at - timedelta(days=54, hours=12)

    async def offered():
        s = await kit.journey(round_id, ids["X2"])
        return s if s.offer is not None and s.stage == Stage.OPTIMALISASI else None

    await kit.until(offered, "X2 holding an offer")
    await kit.api.report(
        round_id, ids["X2"], OfferAnswer(report_id="yes-X2", reported_by="sscasn", accept=True)
    )
    await kit.advance_to(t0 + timedelta(days=61))
    await kit.api.command(
        round_id,
        CloseWindow(report_id="close-filing", reported_by=OPERATOR, window="filing", reason="x"),
    )
    x1 = await kit.journey_at(round_id, ids["X1"], Stage.ENDED)
    await kit.advance_to(t0 + timedelta(days=65))
    x2 = await kit.journey(round_id, ids["X2"])
    assert x1.terminal == Terminal.FILING_INCOMPLETE
    assert x2.terminal == Terminal.FILING_INCOMPLETE, (x2.stage, x2.terminal)


async def test_the_status_page_shows_a_late_takers_own_time_to_file(kit):
    """X3 accepts F2's seat on day 74.5, before filing's close on day 75: its own time runs to day
    89.5 (the P/L-2 notice says so), and its status page says so before the close and after it.
    It used to show the round's close (day 75), and after it no filing deadline at all."""
    round_id = f"lt-portal-{uuid.uuid4().hex[:6]}"
    ids, optimalisasi_at = await _to_optimalisasi(kit, round_id)
    t0 = optimalisasi_at - timedelta(days=54, hours=12)

    async def offered(name):
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
    await offered("X3")
    ack = await kit.api.report(
        round_id, ids["X3"], OfferAnswer(report_id="yes-X3", reported_by="sscasn", accept=True)
    )
    due = ack.recorded_at + FILING_DAYS
    await kit.journey_at(round_id, ids["X3"], Stage.FILING)
    config = await kit.api.round_config(round_id)

    async def page():
        state = await kit.round_state(round_id)
        now = await kit.now()
        journey = await kit.journey(round_id, ids["X3"])
        return state.phase, build_applicant_view(
            journey, config, build_round_view(config, state, now), now
        )

    phase, before = await page()
    await kit.advance_to(t0 + timedelta(days=80))
    phase, after = await page()
    assert after.stage == Stage.FILING
    assert [d.at for d in before.deadlines] == [due], before.deadlines
    assert [d.at for d in after.deadlines] == [due], after.deadlines


async def test_an_acceptance_and_a_withdrawal_taken_together_bar_the_applicant(kit):
    """X2 accepts F2's seat (P/L-2) and withdraws at once (two tabs, a double click): a withdrawal
    after passing bars the next 2 rounds (DOMAIN.md stage 11). When both updates were taken
    before the run resumed, the journey ended APS with 0 rounds, final code TL, placed in F2 (seen
    in 1 of 3 to 1 of 6 tries). The order depends on timing: tried in 8 rounds, any
    unsanctioned acceptance fails."""
    for attempt in range(8):
        round_id = f"lt-race-{attempt}-{uuid.uuid4().hex[:6]}"
        ids, _ = await _to_optimalisasi(kit, round_id)

        async def offered(round_id=round_id, ids=ids):
            s = await kit.journey(round_id, ids["X2"])
            return s if s.offer is not None and s.stage == Stage.OPTIMALISASI else None

        await kit.until(offered, "X2 holding an offer")
        await asyncio.gather(
            kit.api.report(
                round_id,
                ids["X2"],
                OfferAnswer(report_id="yes-X2", reported_by="sscasn", accept=True),
            ),
            kit.api.report(
                round_id,
                ids["X2"],
                Withdrawal(report_id="wd-X2", reported_by="sscasn", reason="x"),
            ),
            return_exceptions=True,  # the withdrawal may come first: the answer is then refused
        )
        x2 = await kit.journey_at(round_id, ids["X2"], Stage.ENDED)
        accepted = [d for d in x2.decisions if (d.stage, d.outcome) == ("optimalisasi", "accepted")]
        assert x2.terminal == Terminal.WITHDRAWN
        if not accepted:
            continue  # the withdrawal came first: nothing was passed
        assert (x2.final_code, x2.sanction_rounds) == (FinalCode.PASSED_OPTIMALISASI, 2), attempt
