"""A round's board (patch round-view-board) on the real dev server and PostgreSQL.

The round writes the view its journeys are judged by before it acknowledges any change of it;
a starting journey reads that board instead of asking the round. These tests hold the board to
the round's own query after every kind of change, with no wait between the acknowledgement and
the read, show that journeys are judged by the board (a board that says registration closed
refuses a start the round would let in), that a round without a board row is asked by query,
and that a sealed board moved to another version does not open.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import tomli_w
from temporalio.api.enums.v1 import EventType

from activities.rounds import RoundBoards
from apps.fleet import build_worker
from auditing.history import replay
from client.api import RecruitmentApi
from domain.messages import (
    CloseWindow,
    ExtendWindow,
    FormasiState,
    JourneyState,
    MoveTmt,
    RoundBoard,
    RoundBoardWrite,
    RoundState,
)
from domain.protocol import ROUND_VIEW
from runtime.codec import PayloadDecryptionError
from runtime.connection import data_converter
from runtime.db import open_pool
from runtime.sealed import ColumnCipher
from scripts.record_histories import patch_markers
from tests.flows.test_operator_commands import _terminate_round, _until
from tests.roundkit import (
    OPERATOR,
    REGISTRATION_OPEN,
    TEST_KEYRING,
    compressed_round,
    formasi,
    registration,
)
from workflows.ids import formasi_workflow_id, journey_workflow_id, round_workflow_id
from workflows.versions import COMMANDS_AFTER_RUN_BEGINS, FORMASI_STARTED_TOGETHER

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _decided(client, round_id: str, applicant_id: str) -> JourneyState | None:
    """The journey's state once its admission is decided (registered or not admitted)."""
    handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
    state = await handle.query("state", result_type=JourneyState)
    outcomes = {d.outcome for d in state.decisions}
    return state if outcomes & {"registered", "not admitted"} else None


async def test_the_board_is_the_round_view_and_journeys_are_judged_by_it(
    client, keys, running_worker, tmp_path
):
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"board-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    config = compressed_round(
        round_id,
        [formasi("F1", 1), formasi("F2", 1)],
        REGISTRATION_OPEN,
        t0=t0,
    )
    path = tmp_path / "round.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(path, OPERATOR)
    wf = round_workflow_id(round_id)
    handle = client.get_workflow_handle(wf)
    boards = RoundBoards(pool, ColumnCipher.from_keys(keys))

    async def board_now() -> RoundBoard:
        """The board as stored now, read fresh (no cache), and held to the round's query."""
        board = await RoundBoards(pool, boards.cipher).get(wf)
        assert board is not None
        for code in ("F1", "F2", "F9"):
            asked = await ROUND_VIEW.ask(handle, code)
            assert board.view_for(code) == asked.model_copy(update={"from_board": True}), code
        return board

    try:
        await _until(lambda: RoundBoards(pool, boards.cipher).get(wf), "the round's first board")
        board = await board_now()
        assert board.view.secret and board.view.registration_closed_at is None
        assert board.view_for("F9").formasi is None
        row = await pool.fetchrow(
            "SELECT version, body FROM round_boards WHERE workflow_id = $1", wf
        )
        # sealed: neither the seal secret nor the formasi's text is readable in the row
        assert board.view.secret.encode() not in bytes(row["body"])
        assert b"Pranata Komputer" not in bytes(row["body"])

        first = await api.register(config, registration(1, "F1"), "sscasn")
        assert first.status == "registered", first.refusals
        state = await _until(lambda: _decided(client, round_id, first.applicant_id), "admission")
        assert state.terminal is None

        # --- every acknowledged change is on the board when its acknowledgement arrives -------
        new_closes = t0 + timedelta(seconds=650)
        await api.command(
            round_id,
            ExtendWindow(
                report_id="ext-1",
                reported_by=OPERATOR,
                window="registration",
                new_closes=new_closes,
                reason="portal outage",
            ),
        )
        assert (await board_now()).view.registration_closes == new_closes
        await api.command(
            round_id,
            MoveTmt(
                report_id="tmt-1", reported_by=OPERATOR, new_tmt=date(2027, 9, 1), reason="moved"
            ),
        )
        board = await board_now()
        assert board.view.tmt == date(2027, 9, 1)
        version = (
            await pool.fetchrow("SELECT version FROM round_boards WHERE workflow_id = $1", wf)
        )[0]
        assert version > row["version"]

        # --- a write of an older version changes nothing ----------------------------------------
        stale = board.view.model_copy(update={"tmt": date(2030, 1, 1)})
        await boards.put(
            RoundBoardWrite(
                workflow_id=wf, version=version - 1, board=board.model_copy(update={"view": stale})
            )
        )
        assert (await board_now()).view.tmt == date(2027, 9, 1)

        # --- journeys are judged by the board: one that says registration closed an hour ago
        # refuses a start that the round itself (still open) would let in --------------------
        closed_view = board.view.model_copy(
            update={"registration_closed_at": datetime.now(UTC) - timedelta(hours=1)}
        )
        await boards.put(
            RoundBoardWrite(
                workflow_id=wf,
                version=version + 1,
                board=board.model_copy(update={"view": closed_view}),
            )
        )
        second = await api.register(config, registration(2, "F1"), "sscasn")
        # The client does not read boards: the journey refuses, and its answer to the start's
        # confirmation (update-with-start) carries the refusal back to the registration.
        assert second.status == "refused", second
        assert "after registration closed" in second.refusals[0].reason
        again = await api.register(config, registration(2, "F1"), "sscasn")
        assert again.status == "refused", again  # a repeat of it is refused again, not a repeat
        assert again.refusals == second.refusals
        state = await _until(lambda: _decided(client, round_id, second.applicant_id), "admission")
        refused = [d for d in state.decisions if d.outcome == "not admitted"]
        assert refused and "after registration closed" in refused[0].input["reason"]
        assert state.terminal is not None

        # --- a round with no board row is asked by query --------------------------------------
        await pool.execute("DELETE FROM round_boards WHERE workflow_id = $1", wf)
        third = await api.register(config, registration(3, "F2"), "sscasn")
        assert third.status == "registered", third.refusals
        state = await _until(lambda: _decided(client, round_id, third.applicant_id), "admission")
        assert state.terminal is None, [d.input for d in state.decisions]

        # --- registration closed early: on the board, closed_at set, before the ack returns ----
        await api.command(
            round_id,
            CloseWindow(
                report_id="close-1", reported_by=OPERATOR, window="registration", reason="quota met"
            ),
        )
        board = await board_now()
        assert board.view.registration_closed_at is not None
        assert board.view.registration_closed_at <= datetime.now(UTC)

        # --- a sealed board does not open under another version (or another round's id) -------
        await pool.execute(
            "UPDATE round_boards SET version = version + 1 WHERE workflow_id = $1", wf
        )
        with pytest.raises(PayloadDecryptionError, match="failed authentication"):
            await RoundBoards(pool, boards.cipher).get(wf)
        await pool.execute(
            "UPDATE round_boards SET version = version - 1, workflow_id = $2 WHERE workflow_id = $1",
            wf,
            wf + "-other",
        )
        with pytest.raises(PayloadDecryptionError, match="failed authentication"):
            await RoundBoards(pool, boards.cipher).get(wf + "-other")
    finally:
        await pool.execute("DELETE FROM round_boards WHERE workflow_id LIKE $1", wf + "%")
        await _terminate_round(client, round_id)


async def test_commands_that_reach_the_round_before_it_has_begun_are_on_the_board_and_told(
    client, keys, stack, stack_settings, tmp_path
):
    """An early close of registration and a TMT move sent before any worker has run the round's
    first task are handled in that task, before `run` has decided that the round keeps a board or
    started its formasi. The close is still on the board when acknowledged, so a registration
    started right after is refused, and every formasi hears of the move (patch
    commands-after-run-begins; before it, the close was acknowledged at once and the start was
    admitted: found 12-05 under load, stop 36's CI failure)."""
    pool = await open_pool(stack.database_url, max_size=4)
    settings = stack_settings.model_copy(update={"task_queue": f"test-{uuid.uuid4().hex[:8]}"})
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    round_id = f"first-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1), formasi("F2", 1)], REGISTRATION_OPEN)
    path = tmp_path / "round.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    handle = client.get_workflow_handle(round_workflow_id(round_id))
    boards = RoundBoards(pool, ColumnCipher.from_keys(keys))  # each get reads the row
    new_tmt = date(2027, 9, 1)
    assert config.schedule.tmt != new_tmt
    try:
        # No worker polls the round's task queue yet: its first task waits, and the commands reach
        # the server before any worker takes that task.
        await api.create_round(path, OPERATOR)
        close = asyncio.create_task(
            api.command(
                round_id,
                CloseWindow(
                    report_id="close-at-once",
                    reported_by=OPERATOR,
                    window="registration",
                    reason="kuota",
                ),
            )
        )
        move = asyncio.create_task(
            api.command(
                round_id,
                MoveTmt(report_id="tmt-at-once", reported_by=OPERATOR, new_tmt=new_tmt, reason="x"),
            )
        )
        await asyncio.sleep(2)
        assert not close.done() and not move.done(), (close, move)
        async with await build_worker(client, settings, pool):
            ack = await asyncio.wait_for(close, 60)
            assert ack.effect == "registration closed early"
            # On the board when acknowledged, with no wait between the two.
            board = await boards.get(handle.id)
            assert board is not None and board.view.registration_closed_at is not None, board
            started = await api.register(config, registration(1, "F1"), "sscasn")
            assert started.status == "refused", started
            assert "after registration closed" in started.refusals[0].reason
            assert (await asyncio.wait_for(move, 60)).effect == f"TMT moved to {new_tmt}"
            board = await boards.get(handle.id)
            assert board is not None and board.view.tmt == new_tmt

            async def told() -> bool:
                for code in ("F1", "F2"):
                    f = client.get_workflow_handle(formasi_workflow_id(round_id, code))
                    state = await f.query("state", result_type=FormasiState)
                    if not any("/tmt_moved/" in a for a in state.processed):
                        return False
                return True

            await _until(told, "every formasi told of the TMT move")

            # The premise: the close was taken in the round's first workflow task, and answered
            # only in a later one, after the round had closed registration (without the patch, the
            # first task answered it; whether the start was then admitted was a race).
            history = await handle.fetch_history()
            kinds = [EventType.Name(e.event_type) for e in history.events]
            first_done = kinds.index("EVENT_TYPE_WORKFLOW_TASK_COMPLETED")
            accepted = [i for i, k in enumerate(kinds) if k.endswith("_UPDATE_ACCEPTED")]
            answered = [i for i, k in enumerate(kinds) if k.endswith("_UPDATE_COMPLETED")]
            assert len(accepted) == len(answered) == 2, kinds
            assert "EVENT_TYPE_WORKFLOW_TASK_STARTED" not in kinds[first_done : accepted[1]], kinds
            assert "EVENT_TYPE_WORKFLOW_TASK_COMPLETED" in kinds[accepted[1] : answered[0]], kinds
            assert COMMANDS_AFTER_RUN_BEGINS in patch_markers(history)
            # Both formasi started in the round's first task (patch formasi-started-together).
            assert FORMASI_STARTED_TOGETHER in patch_markers(history)
            starts = [
                i for i, k in enumerate(kinds) if k.endswith("CHILD_WORKFLOW_EXECUTION_INITIATED")
            ]
            assert len(starts) == 2 and starts[1] < kinds.index(
                "EVENT_TYPE_WORKFLOW_TASK_STARTED", first_done
            ), kinds
            [replayed] = await replay([history], data_converter(keys))
            assert (replayed.failure, replayed.drift) == (None, ""), replayed
            # The round opened before it took the commands, whatever order they arrived in.
            state = await handle.query("state", result_type=RoundState)
            outcomes = [d.outcome for d in state.decisions]
            assert outcomes[0] == "round opened", outcomes
            assert set(outcomes[1:3]) == {"registration closed early", f"TMT moved to {new_tmt}"}
            assert outcomes[3] == "window closed", outcomes
            await handle.terminate("test finished")
    finally:
        await pool.execute("DELETE FROM round_boards WHERE workflow_id = $1", handle.id)
        await _terminate_round(client, round_id)
        await pool.close()
