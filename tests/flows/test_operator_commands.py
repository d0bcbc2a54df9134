"""Operator commands on a live round (real dev server and PostgreSQL): extend, close early, move the TMT."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import tomli_w
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from client.api import CLOCK_MARGIN, RecruitmentApi, RefusedError
from domain.codes import Stage
from domain.messages import Ack, AdminReport, CloseWindow, ExtendWindow, JourneyState, MoveTmt
from tests.roundkit import OPERATOR, TEST_KEYRING, compressed_round, formasi, registration
from workflows.ids import journey_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _journey(client, round_id: str, applicant_id: str) -> JourneyState:
    handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
    return await handle.query("state", result_type=JourneyState)


async def _until(probe, what: str, timeout: float = 30.0):
    """Poll `probe` (async, returns a truthy value when done) until it succeeds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def _terminate_round(client, round_id: str) -> None:
    async for wf in client.list_workflows(
        f"RoundId = '{round_id}' AND ExecutionStatus = 'Running'"
    ):
        try:
            await client.get_workflow_handle(wf.id).terminate("test finished")
        except RPCError as exc:
            # Listed as running a moment ago (visibility lags), ended since: nothing to stop.
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise


async def test_operator_commands(client, keys, running_worker, tmp_path):
    settings, _pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"ops-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = compressed_round(
        round_id,
        [formasi("F1", 1), formasi("F2", 1)],
        {
            "registration": (-60, 6),
            "administration": (16, 120),
            "skd": (120, 180),
            "skb": (180, 190),
            "filing": (190, 200),
            "latsar": (200, 210),
        },
        t0=t0,
    )
    path = tmp_path / "round.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(path, OPERATOR)
    try:
        await _scenario(client, api, config, round_id, t0)
    finally:
        await _terminate_round(client, round_id)


async def _scenario(client, api: RecruitmentApi, config, round_id: str, t0: datetime) -> None:
    ids = {}
    for serial, code in ((1, "F1"), (2, "F2")):
        result = await api.register(config, registration(serial, code), "sscasn")
        assert result.status == "registered", result.refusals
        ids[serial] = result.applicant_id

    # --- extension while open: recorded, moves the close ------------------------------------
    new_closes = t0 + timedelta(seconds=14)
    extend = ExtendWindow(
        report_id="ext-1",
        reported_by=OPERATOR,
        window="registration",
        new_closes=new_closes,
        reason="portal outage on the last day (surat BKN)",
    )
    ack = await api.command(round_id, extend)
    assert ack.effect == "registration extended"
    state = await api.round_state(round_id)
    assert state.schedule.registration.closes == new_closes
    recorded = [d for d in state.decisions if d.outcome == "registration extended"]
    assert len(recorded) == 1
    assert recorded[0].actor == OPERATOR
    assert recorded[0].input["reason"] == extend.reason
    assert datetime.fromisoformat(recorded[0].input["new_closes"]) == new_closes

    # a repeat (same id, same content) returns the same Ack and records nothing more
    assert await api.command(round_id, extend) == ack
    with pytest.raises(
        RefusedError, match="ext-1: this command id was already used with different content"
    ):
        await api.command(
            round_id, extend.model_copy(update={"new_closes": new_closes + timedelta(seconds=1)})
        )
    with pytest.raises(RefusedError, match="cat-bkn is not an operator"):
        await api.command(
            round_id,
            ExtendWindow(
                report_id="ext-x",
                reported_by="cat-bkn",
                window="registration",
                new_closes=new_closes,
                reason="x",
            ),
        )
    with pytest.raises(RefusedError, match="after the next window opens"):
        await api.command(
            round_id,
            ExtendWindow(
                report_id="ext-late",
                reported_by=OPERATOR,
                window="registration",
                new_closes=t0 + timedelta(seconds=30),
                reason="too long",
            ),
        )
    state = await api.round_state(round_id)
    assert [d.outcome for d in state.decisions].count("registration extended") == 1
    assert state.schedule.registration.closes == new_closes

    # --- a registration after the original close, before the extended close -----------------
    await _until(lambda: _past(t0 + timedelta(seconds=6.5)), "the original registration close")
    late = registration(3, "F1")
    # Judged by the file's original schedule when further past its close than a clock may be off
    # (client.api.CLOCK_MARGIN); nearer, the round would judge it, by the schedule in force.
    beyond = datetime.now(UTC) + CLOCK_MARGIN
    refused = await api.register(config, late, "sscasn", now=beyond)
    assert refused.status == "refused" and refused.refusals[0].field == "registered_at"
    state = await api.round_state(round_id)
    assert state.phase == "registration"  # the round did not close at the original time
    accepted = await api.register(
        config, late, "sscasn", schedule_closes=state.schedule.registration.closes
    )
    assert accepted.status == "registered", accepted.refusals
    ids[3] = accepted.applicant_id

    # --- the extended close is kept; then an extension of the closed window is refused ---------
    async def administration_open():
        s = await api.round_state(round_id)
        return s if s.phase == "administration" else None

    state = await _until(administration_open, "the registration window to close", timeout=20)
    assert datetime.now(UTC) >= new_closes
    assert "registration" in state.closed
    with pytest.raises(RefusedError, match="the registration window is already closed"):
        await api.command(
            round_id,
            ExtendWindow(
                report_id="ext-2",
                reported_by=OPERATOR,
                window="registration",
                new_closes=t0 + timedelta(seconds=15),
                reason="again",
            ),
        )
    # a repeat of the first extension is still answered from the record
    assert await api.command(round_id, extend) == ack

    for serial, applicant_id in ids.items():
        await api.report(
            round_id,
            applicant_id,
            AdminReport(report_id=f"adm-{serial}", reported_by="bkpsdm-verifikator"),
        )

    # --- close early: only with a reason ------------------------------------------------------
    handle = client.get_workflow_handle(round_workflow_id(round_id))
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            "close_window",
            {
                "report_id": "close-empty",
                "reported_by": OPERATOR,
                "window": "administration",
                "reason": "",
            },
            result_type=Ack,
        )
    with pytest.raises(RefusedError, match="cat-bkn is not an operator"):
        await api.command(
            round_id,
            CloseWindow(
                report_id="close-x", reported_by="cat-bkn", window="administration", reason="x"
            ),
        )
    state = await api.round_state(round_id)
    assert state.phase == "administration" and "administration" not in state.closed
    assert not [d for d in state.decisions if d.outcome == "administration closed early"]
    close = CloseWindow(
        report_id="close-1",
        reported_by=OPERATOR,
        window="administration",
        reason="verification finished ahead of schedule",
    )
    close_ack = await api.command(round_id, close)
    assert close_ack.effect == "administration closed early"
    assert await api.command(round_id, close) == close_ack

    async def administration_closed():
        s = await api.round_state(round_id)
        return s if "administration" in s.closed else None

    state = await _until(administration_closed, "the early close of administration", timeout=10)
    closed = [
        d for d in state.decisions if d.stage == "administration" and d.outcome == "window closed"
    ]
    assert len(closed) == 1 and closed[0].input["early"] == close.reason
    with pytest.raises(RefusedError, match="the administration window is already closed"):
        await api.command(
            round_id,
            CloseWindow(
                report_id="close-2", reported_by=OPERATOR, window="administration", reason="again"
            ),
        )
    with pytest.raises(RefusedError, match="the skb window is not open yet"):
        await api.command(
            round_id,
            CloseWindow(report_id="close-3", reported_by=OPERATOR, window="skb", reason="early"),
        )

    # --- move the TMT: every running journey of every formasi records it -------------------------
    for applicant_id in ids.values():
        await _until(
            lambda a=applicant_id: _at_stage(client, round_id, a, Stage.SKD), "journeys in SKD", 20
        )

    for n, new_tmt in enumerate((date(2027, 6, 1), date(2027, 7, 1)), start=1):
        move = MoveTmt(
            report_id=f"tmt-{n}",
            reported_by=OPERATOR,
            new_tmt=new_tmt,
            reason="TMT moved by government decision",
        )
        move_ack = await api.command(round_id, move)
        assert move_ack.effect == f"TMT moved to {new_tmt.isoformat()}"
        assert await api.command(round_id, move) == move_ack
        state = await api.round_state(round_id)
        assert state.schedule.tmt == new_tmt
        assert len([d for d in state.decisions if d.outcome == move_ack.effect]) == 1
        for applicant_id in ids.values():
            s = await _until(
                lambda a=applicant_id, t=new_tmt: _with_tmt(client, round_id, a, t),
                f"journey {applicant_id} to record TMT {new_tmt}",
                20,
            )
            moves = [d for d in s.decisions if d.outcome == "TMT moved"]
            assert len(moves) == n, [d.input for d in moves]
            assert moves[-1].input["to"] == new_tmt.isoformat()
    with pytest.raises(RefusedError, match="the TMT is already 2027-07-01"):
        await api.command(
            round_id,
            MoveTmt(
                report_id="tmt-3", reported_by=OPERATOR, new_tmt=date(2027, 7, 1), reason="same"
            ),
        )
    with pytest.raises(RefusedError, match="stranger has no public key in this round"):
        await api.command(
            round_id,
            MoveTmt(
                report_id="tmt-4", reported_by="stranger", new_tmt=date(2027, 8, 1), reason="x"
            ),
        )
    # Before the round began (a typo's year 0207): refused in the round, nothing recorded.
    with pytest.raises(RefusedError, match="before the day the round's registration opened"):
        await api.command(
            round_id,
            MoveTmt(
                report_id="tmt-5", reported_by=OPERATOR, new_tmt=date(207, 7, 1), reason="typo"
            ),
        )
    # the journeys recorded each move exactly once, even with the repeated commands
    await asyncio.sleep(1)
    for applicant_id in ids.values():
        s = await _journey(client, round_id, applicant_id)
        assert s.tmt == date(2027, 7, 1)
        assert len([d for d in s.decisions if d.outcome == "TMT moved"]) == 2


async def _past(moment: datetime) -> bool:
    return datetime.now(UTC) >= moment


async def _at_stage(client, round_id: str, applicant_id: str, stage: Stage) -> JourneyState | None:
    s = await _journey(client, round_id, applicant_id)
    return s if s.stage == stage else None


async def _with_tmt(client, round_id: str, applicant_id: str, tmt: date) -> JourneyState | None:
    s = await _journey(client, round_id, applicant_id)
    return s if s.tmt == tmt else None
