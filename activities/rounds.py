"""Read a round's own answer for a journey that starts (its rules and registration window).

A round that keeps a board (patch round-view-board) writes its view to PostgreSQL before it
acknowledges any change of it; a journey reads the board, so a registration burst costs the round
nothing: its workflow task is no longer on the path of every journey's first task (issue 17
item 3). A round without a board row (started before the board, or with no database) is asked by
query, as before.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.messages import RoundBoard, RoundBoardWrite, RoundView, RoundViewRequest
from domain.protocol import PUBLISH_ROUND_BOARD, READ_ROUND, ROUND_VIEW, WORKER_STOPPING
from runtime.sealed import ColumnCipher

QUERY_TIMEOUT = timedelta(seconds=10)  # within the local activity's 15 s
# The server holds a query to a workflow whose task is in progress in a buffer of one (dynamic
# config history.MaxBufferedQueryCount) and refuses the next with RESOURCE_EXHAUSTED; the local
# activity's own retry would wait 1, 2, 4, 8 s. Asked again here after a short pause instead.
BUSY_PAUSE = 0.05  # seconds, doubled up to BUSY_PAUSE_MAX
BUSY_PAUSE_MAX = 0.5


def _row(workflow_id: str, version: int) -> str:
    # Bound to the version too: an older sealed board cannot be put back under a newer version.
    return f"round-boards/{workflow_id}/{version}"


class RoundBoards:
    """The rounds' boards in PostgreSQL (migration 011), sealed with the payload keys: a board
    holds the round's seal secret. One row per round workflow; a write only ever moves it forward."""

    def __init__(self, pool: asyncpg.Pool, cipher: ColumnCipher) -> None:
        self.pool = pool
        self.cipher = cipher
        self._opened: dict[str, tuple[int, RoundBoard]] = {}  # workflow id -> (version, board)

    async def put(self, write: RoundBoardWrite) -> None:
        body = self.cipher.seal(
            write.board.model_dump_json().encode(), _row(write.workflow_id, write.version)
        )
        await self.pool.execute(
            "INSERT INTO round_boards (workflow_id, version, body) VALUES ($1, $2, $3) "
            "ON CONFLICT (workflow_id) DO UPDATE "
            "SET version = EXCLUDED.version, body = EXCLUDED.body, written_at = now() "
            "WHERE round_boards.version < EXCLUDED.version",
            write.workflow_id,
            write.version,
            body,
        )

    async def get(self, workflow_id: str) -> RoundBoard | None:
        """The round's board as last written; None when it has none. A body that does not open
        (keys, or a row put back or moved) raises: nobody is admitted by a board that fails."""
        row = await self.pool.fetchrow(
            "SELECT version, body FROM round_boards WHERE workflow_id = $1", workflow_id
        )
        if row is None:
            return None
        version = row["version"]
        opened = self._opened.get(workflow_id)
        if opened is not None and opened[0] == version:
            return opened[1]
        plain = self.cipher.open(bytes(row["body"]), _row(workflow_id, version))
        board = RoundBoard.model_validate_json(plain)
        self._opened[workflow_id] = (version, board)
        return board


class RoundReader:
    """Reads a round's board, or asks the round workflow (by query: no event in its history), what
    a journey is judged by."""

    def __init__(self, client: Client, boards: RoundBoards | None = None) -> None:
        self.client = client
        self.boards = boards
        # (round workflow, formasi) -> the callers waiting for the next query to be sent
        self._waiting: dict[tuple[str, str], asyncio.Future[RoundView]] = {}
        self._sending: dict[str, asyncio.Lock] = {}  # round workflow -> its query in flight

    @activity.defn(name=READ_ROUND.name)
    async def read_round(self, req: RoundViewRequest) -> RoundView:
        """The round's view; `found=False` when no such round exists. Safe to repeat.

        A worker that is stopping answers at once that it cannot: it no longer takes the round's
        query either, and the SDK would retry this local activity until its budget ran out (a
        minute) before the worker could stop. The journey pauses on its durable timer instead
        and asks again on a worker that runs (workflows/calls.py)."""
        if activity.is_worker_shutdown():
            raise ApplicationError(
                "the worker is stopping; the round is asked again after a pause",
                type=WORKER_STOPPING,
                non_retryable=True,
            )
        if self.boards is not None:
            board = await self.boards.get(req.workflow_id)
            if board is not None:
                return board.view_for(req.formasi_code)
        return await self._next_answer(req)

    @activity.defn(name=PUBLISH_ROUND_BOARD.name)
    async def publish_round_board(self, write: RoundBoardWrite) -> None:
        """Write a round's board (a local activity of the round). Without a database there is no
        board to write, and journeys ask the round by query."""
        if self.boards is not None:
            await self.boards.put(write)

    async def _next_answer(self, req: RoundViewRequest) -> RoundView:
        """The answer of a query sent after this call began, shared with every caller that asked
        for the same formasi meanwhile, and one query in flight per round, however many journeys
        start at once (a registration burst of issue 17 asked the round once per journey; the
        server buffers one query while the round's task runs and refuses the others). No answer
        is older than its ask."""
        key = (req.workflow_id, req.formasi_code)
        batch = self._waiting.get(key)
        if batch is None:
            batch = asyncio.get_running_loop().create_future()
            self._waiting[key] = batch
            asyncio.ensure_future(self._send(key, req, batch))
        return await asyncio.shield(batch)

    async def _send(
        self, key: tuple[str, str], req: RoundViewRequest, batch: asyncio.Future[RoundView]
    ) -> None:
        async with self._sending.setdefault(key[0], asyncio.Lock()):  # per round workflow
            if self._waiting.get(key) is batch:
                del self._waiting[key]  # who asks from now on waits for the next query
            try:
                batch.set_result(await self._ask(req))
            except Exception as exc:  # noqa: BLE001 - every caller of this batch gets it
                batch.set_exception(exc)
                batch.exception()  # retrieved: a batch whose callers all left logs nothing

    async def _ask(self, req: RoundViewRequest) -> RoundView:
        handle = self.client.get_workflow_handle(req.workflow_id)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + QUERY_TIMEOUT.total_seconds()
        pause = BUSY_PAUSE
        while True:
            try:
                return await ROUND_VIEW.ask(handle, req.formasi_code, rpc_timeout=QUERY_TIMEOUT)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return RoundView(found=False)
                busy = exc.status == RPCStatusCode.RESOURCE_EXHAUSTED
                if not busy or loop.time() + pause > give_up:
                    raise
            await asyncio.sleep(pause)
            pause = min(2 * pause, BUSY_PAUSE_MAX)
