"""TMT moves that were lost on their way to the applicant (review of 12-07).

Two operator commands of one kind taken by the round in one workflow task: sent while the round's
workers are down (a deploy), two TMT moves are both waiting when a worker comes back, and the
round takes them in one task. Each announcement to the formasi was numbered by the round's
decisions when it left, after the board write each command awaits, by when both decisions were in:
both left under one id, and the formasi and the journeys, which take an announcement once, dropped
the second move. The round said TMT Y, the journeys kept X (review of 12-07; patch announcement-
numbered-at-command). And a TMT moved back to a date it had before, whose notification was taken
for a repeat of the first move's (patch tmt-notice-per-move).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import pytest
import tomli_w

from apps.fleet import build_worker
from client.api import RecruitmentApi
from domain.messages import FormasiState, MoveTmt
from runtime.db import open_pool
from tests.flows.test_operator_commands import _journey, _terminate_round, _until
from tests.roundkit import (
    OPERATOR,
    REGISTRATION_OPEN,
    TEST_KEYRING,
    compressed_round,
    formasi,
    registration,
)
from workflows.ids import formasi_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

X, Y = date(2027, 9, 1), date(2027, 10, 1)


async def test_two_tmt_moves_taken_together_are_both_told_and_the_journey_ends_at_the_last(
    client, keys, stack, stack_settings, tmp_path
):
    pool = await open_pool(stack.database_url, max_size=8)
    # A task queue of this test's own: its worker is stopped and started again, as in a deploy.
    settings = stack_settings.model_copy(update={"task_queue": f"test-{uuid.uuid4().hex[:8]}"})
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"tmt2-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], REGISTRATION_OPEN, t0=datetime.now(UTC))
    path = tmp_path / "round.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    try:
        async with await build_worker(client, settings, pool):
            await api.create_round(path, OPERATOR)
            started = await api.register(config, registration(1, "F1"), "sscasn")
            assert started.status == "registered", started.refusals
            applicant = started.applicant_id
            assert applicant is not None

            async def admitted():
                s = await _journey(client, round_id, applicant)
                return s if any(d.outcome == "registered" for d in s.decisions) else None

            await _until(admitted, "the journey admitted")
            await api.check_round_keys(round_id)  # asked now: the sends below need no worker
        # The workers are down: the operator moves the TMT twice.
        sends = [
            asyncio.ensure_future(
                api.command(
                    round_id,
                    MoveTmt(report_id=f"tmt-{n}", reported_by=OPERATOR, new_tmt=t, reason="SK"),
                )
            )
            for n, t in ((1, X), (2, Y))
        ]
        await asyncio.sleep(3)  # both admitted by the server, waiting for a worker
        assert not any(s.done() for s in sends)
        async with await build_worker(client, settings, pool):
            acks = await asyncio.gather(*sends)
            assert sorted(a.effect for a in acks) == [
                f"TMT moved to {X.isoformat()}",
                f"TMT moved to {Y.isoformat()}",
            ]
            state = await api.round_state(round_id)
            last = state.schedule.tmt
            assert last in (X, Y)  # the order the server gave them

            async def both_told():
                f = await client.get_workflow_handle(formasi_workflow_id(round_id, "F1")).query(
                    "state", result_type=FormasiState
                )
                told = [p for p in f.processed if "/tmt_moved/" in p]
                return told if len(told) == 2 else None

            told = await _until(both_told, "both moves told to the formasi", timeout=120)
            assert len(set(told)) == 2, told

            async def journey_at_last():
                s = await _journey(client, round_id, applicant)
                return s if s.tmt == last else None

            # Each announcement carries the round's TMT when it was told: the journey ends at the
            # last, one move or two (the first may already name it), whichever it heard first.
            journey = await _until(journey_at_last, f"the journey at TMT {last}", timeout=120)
            moves = [d for d in journey.decisions if d.outcome == "TMT moved"]
            assert 1 <= len(moves) <= 2, [d.outcome for d in journey.decisions]
            assert moves[-1].input["to"] == last.isoformat(), moves[-1].input
    finally:
        await _terminate_round(client, round_id)
        await pool.close()


async def test_a_tmt_moved_back_to_an_earlier_date_is_notified_again(
    client, keys, running_worker, tmp_path
):
    """X, then Y, then X again: three moves, three notifications. The third was keyed as the
    first (`tmt-moved-<date>`), which the read model keeps once, so the applicant's last message
    said Y while the record said X (review of 12-07; patch tmt-notice-per-move)."""
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"tmtback-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], REGISTRATION_OPEN, t0=datetime.now(UTC))
    path = tmp_path / "round.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(path, OPERATOR)
    try:
        started = await api.register(config, registration(1, "F1"), "sscasn")
        assert started.status == "registered", started.refusals
        applicant = started.applicant_id
        assert applicant is not None
        for n, tmt in enumerate((X, Y, X), start=1):
            await api.command(
                round_id,
                MoveTmt(report_id=f"tmt-{n}", reported_by=OPERATOR, new_tmt=tmt, reason="SK"),
            )

            async def moved(n=n):
                s = await _journey(client, round_id, applicant)
                return s if len([d for d in s.decisions if d.outcome == "TMT moved"]) == n else None

            await _until(moved, f"move {n} recorded")

        async def three_notices():
            rows = await pool.fetch(
                "SELECT key FROM notifications WHERE round_id = $1 AND applicant_id = $2 "
                "AND key LIKE 'tmt-moved-%' ORDER BY created_at, key",
                round_id,
                applicant,
            )
            return rows if len(rows) == 3 else None

        rows = await _until(three_notices, "a notification of each of the three moves", 60)
        keys_written = [r["key"] for r in rows]
        assert len(set(keys_written)) == 3, keys_written
        assert [k.rsplit("-", 1)[0] for k in keys_written] == [
            f"tmt-moved-{X}",
            f"tmt-moved-{Y}",
            f"tmt-moved-{X}",
        ]
    finally:
        await _terminate_round(client, round_id)
