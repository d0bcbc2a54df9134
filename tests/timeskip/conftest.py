"""Time-skipping fixtures: the real workflows on Temporal's test server, with real-length schedules.

Windows are measured in days (registration 15 days, appeal 3 days, answer within 7 days, SKD
weeks); the test server skips the time, so weeks of deadlines run in seconds.

Two of our own activities are substituted here, under the names the workflows call:

- ``broadcast``: the real one (activities/broadcast.py) lists a formasi's running journeys
  through Temporal's visibility (``CasnKind``/``RoundId``/``FormasiCode`` search attributes
  with ``ExecutionStatus = 'Running'``). The time-skipping test server does not implement
  ``ListWorkflowExecutions`` ("is unimplemented"), so this broadcast takes the journeys from a
  registry the test fills when it registers them, keeps those still running (describe), and
  signals ``announce`` to each exactly as the real one does. It replaces our activity's lookup
  only; signals, timers and updates are Temporal's own.
- the page store (activities/pages.py): the real ranking activities over an in-memory store
  (``MemoryPageStore``) instead of PostgreSQL; the broadcast keeps a close's answers there.
- ``project_journey``, ``project_revocations`` and ``issue_nip``: in-memory versions (the PostgreSQL versions are
  covered by the real-stack tests in tests/flows). issue_nip still issues one NIP per person.
  A test may hold an ended journey's last projection (``hold_final_projection``) to play a
  slow read model.

A skip across a round's close can stall: in about one run in three on a loaded machine the
test server locked its clock at the close (the round signals its formasi and all of them end)
and never gave the lock back, so the skip waited in real time until its deadline (12-07,
test_final_stages). Schedule a round's Latsar to close after a test's last skip; the close
itself is tested on the dev server (tests/flows/test_round_end_to_end.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest_asyncio
import tomli_w
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.journeys import JourneyReader
from activities.offers import OfferSender
from activities.pages import PageStore
from activities.rounds import RoundBoards, RoundReader
from client.api import RecruitmentApi
from domain.aftermath import RevocationRows
from domain.appointment import format_nip
from domain.codes import Stage
from domain.config import RoundConfig
from domain.contracts import (
    BroadcastRequest,
    BroadcastResult,
    CloseAnswer,
    JourneyProjection,
    NipIssued,
    NipRequest,
)
from domain.messages import (
    JourneyState,
    RoundBoard,
    RoundBoardWrite,
    RoundState,
    SanctionCheck,
    SanctionVerdict,
)
from domain.pages import REPLIES
from domain.registration import Registration
from runtime.attributes import ALL as SEARCH_ATTRIBUTES
from runtime.connection import data_converter
from tests.roundkit import (
    OPERATOR,
    SCHEDULE_IN_DAYS,
    TEST_KEYRING,
    compressed_round,
    formasi,
    registration,
)
from workflows.ids import journey_workflow_id, round_workflow_id
from workflows.registry import WORKFLOWS

# A deadline for the calls that wait on the workers (a skip of the clock, a query): long enough for
# a loaded machine, short enough that a stuck worker fails the test.
RPC_WAIT = timedelta(minutes=2)
# How long a probe (`until`, `journey_at`) asks in real time before the test fails. A round that
# continued as new took more than 15 s, the figure until 12-07, to show its third run to
# test_offer_deadline in one fresh clone's full run (load 5-7 on 2 cores), and under two CPU
# burners 12 of 12 runs of that test saw it within 2-4 s: the wait is the machine's, and a probe
# that is never true still fails.
PROBE_WAIT_S = 45.0


class MemoryPageStore(PageStore):
    """The page store's activities over a dict: the same digests, checks and rankings."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[str, bytes]] = {}

    async def keep(self, kind, owner, ref, body) -> None:
        self.bodies.setdefault(ref.digest, (kind, body))

    async def fetch(self, ref):
        if ref.digest not in self.bodies:
            raise LookupError(f"page {ref.digest} is not in the page store")
        return self.bodies[ref.digest]

    async def kinds(self, digests):
        return {d: self.bodies[d][0] for d in digests if d in self.bodies}


class MemoryRoundBoards(RoundBoards):
    """The rounds' boards over a dict: the same forward-only versions, no sealing."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, RoundBoard]] = {}

    async def put(self, write: RoundBoardWrite) -> None:
        held = self.rows.get(write.workflow_id)
        if held is None or held[0] < write.version:
            self.rows[write.workflow_id] = (write.version, write.board)

    async def get(self, workflow_id: str) -> RoundBoard | None:
        held = self.rows.get(workflow_id)
        return None if held is None else held[1]


class StandInActivities:
    """The registry-backed broadcast and in-memory read model (see the module docstring)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.journeys: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.projections: dict[tuple[str, str], JourneyProjection] = {}
        self.nips: dict[tuple[str, str], str] = {}
        self.serials: dict[str, int] = defaultdict(int)
        self.broadcasts: list[BroadcastRequest] = []
        self.close_rows: list[JourneyProjection] = []  # rows journeys answered a close with
        self.hold_final_projection: dict[str, asyncio.Event] = {}  # applicant id -> release
        # Applicants whose row writes fail, as with the read model down (for them alone: fast).
        self.read_model_down_for: set[str] = set()
        self.failed_writes = 0
        self.pages = MemoryPageStore()
        self.boards = MemoryRoundBoards()
        self.sanctions: dict[str, list[str]] = {}  # register key -> the reasons it is barred for
        # (formasi, phase) -> release: that formasi's announcement of that phase waits for it
        self.hold_announcement: dict[tuple[str, str], asyncio.Event] = {}
        self.sanction_checks: list[SanctionCheck] = []
        self.revocation_rows: list[RevocationRows] = []  # what aftermaths wrote, in order

    def add_journey(self, round_id: str, formasi_code: str, applicant_id: str) -> None:
        self.journeys[(round_id, formasi_code)].append(journey_workflow_id(round_id, applicant_id))

    @activity.defn(name="broadcast")
    async def broadcast(self, req: BroadcastRequest) -> BroadcastResult:
        """Signal `announce` to the formasi's running journeys (from the registry, not visibility)."""
        self.broadcasts.append(req)
        release = self.hold_announcement.get((req.formasi_code, req.announcement.phase))
        if release is not None:
            await release.wait()  # a formasi slow to tell its applicants
        delivered = 0
        replies = []
        for workflow_id in req.workflow_ids or self.journeys[(req.round_id, req.formasi_code)]:
            handle = self.client.get_workflow_handle(workflow_id)
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                continue
            try:
                if req.mode == "close":
                    answer = await handle.execute_update(
                        "close_stage", req.announcement, result_type=CloseAnswer
                    )
                    if answer.row is not None:  # as the real broadcast writes it
                        self.close_rows.append(answer.row)
                        await self.project_journey(answer.row)
                    replies.append(answer.reply())
                else:
                    await handle.signal("announce", req.announcement)
                delivered += 1
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        if req.keep_replies:
            ranking = [r for r in replies if r.key is not None or r.entry is not None]
            kept = await self.pages.put(REPLIES, req.formasi_code, ranking) if ranking else None
            return BroadcastResult(delivered=delivered, kept=kept, replied=len(replies))
        return BroadcastResult(delivered=delivered, replies=replies)

    @activity.defn(name="project_journey")
    async def project_journey(self, p: JourneyProjection) -> None:
        """Keep the newest projection per applicant (a newer version wins, as in PostgreSQL)."""
        key = (p.state.round_id, p.state.applicant_id)
        if p.state.applicant_id in self.read_model_down_for:
            self.failed_writes += 1
            raise RuntimeError("the read model cannot be reached (a test's outage)")
        release = self.hold_final_projection.get(p.state.applicant_id)
        if release is not None and p.state.terminal is not None:
            await release.wait()  # a slow read model: the ended journey stays running meanwhile
        old = self.projections.get(key)
        if old is None or old.version < p.version:
            self.projections[key] = p

    @activity.defn(name="project_revocations")
    async def project_revocations(self, rows: RevocationRows) -> None:
        """Keep every write (the PostgreSQL version's keys are tested in tests/flows)."""
        self.revocation_rows.append(rows)

    @activity.defn(name="check_sanctions")
    async def check_sanctions(self, check: SanctionCheck) -> SanctionVerdict:
        """The register as a dict (its rules are tested on PostgreSQL in tests/flows)."""
        self.sanction_checks.append(check)
        return SanctionVerdict(reasons=self.sanctions.get(check.subject, []))

    @activity.defn(name="issue_nip")
    async def issue_nip(self, req: NipRequest) -> NipIssued:
        """One NIP per person: a retry gets the same number back."""
        key = (req.round_id, req.applicant_id)
        if key in self.nips:
            return NipIssued(nip=self.nips[key], newly_issued=False)
        prefix = format_nip(req.birth_date, req.tmt, req.gender, 1)[:15]
        self.serials[prefix] += 1
        self.nips[key] = format_nip(req.birth_date, req.tmt, req.gender, self.serials[prefix])
        return NipIssued(nip=self.nips[key], newly_issued=True)


class TimeSkipKit:
    """One test's environment: the clock, the round, the journeys and the stand-in activities."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        acts: StandInActivities,
        task_queue: str,
        keys,
        tmp: Path,
        activities: list,
    ) -> None:
        self.env = env
        self.activities = activities
        self.client = env.client
        self.acts = acts
        # Signed messages' validity runs from the test server's clock, which skips ahead of
        # this machine's.
        self.api = RecruitmentApi(
            env.client,
            task_queue,
            keys.pseudonym_key,
            keyring=TEST_KEYRING,
            clock=env.get_current_time,
        )
        self.task_queue = task_queue
        self.tmp = tmp

    def worker_on(self, task_queue: str) -> Worker:
        """Another worker of the same workflows and activities, on a queue of its own: for a test
        that queues messages for a workflow before any worker has taken its first task."""
        return Worker(
            self.client, task_queue=task_queue, workflows=WORKFLOWS, activities=self.activities
        )

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def advance_to(self, when: datetime) -> None:
        """Skip the test server's clock forward to `when` (timers due on the way fire in order).
        The call returns once every workflow woken on the way is at rest: under a loaded machine
        that outlasted the client's default deadline ("Timeout expired", once, in a run beside a
        full suite), so it is given RPC_WAIT. (A skip across a round's close can stall until then:
        the module's docstring says why.)"""
        gap = when - await self.now()
        if gap > timedelta(0):
            request = SleepRequest()
            request.duration.FromTimedelta(gap)
            await self.client.test_service.unlock_time_skipping_with_sleep(
                request, timeout=RPC_WAIT
            )

    async def create_round(self, config: RoundConfig) -> None:
        path = self.tmp / f"{config.round_id}.toml"
        path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
        _, created = await self.api.create_round(path, OPERATOR)
        assert created

    async def register(
        self, config: RoundConfig, reg: Registration, schedule_closes: datetime | None = None
    ) -> str:
        """Register through the engine's API and enter the journey in the broadcast registry."""
        result = await self.api.register(
            config, reg, "sscasn", now=await self.now(), schedule_closes=schedule_closes
        )
        assert result.status == "registered", result.refusals
        assert result.applicant_id is not None
        self.acts.add_journey(config.round_id, reg.formasi_code, result.applicant_id)
        return result.applicant_id

    async def journey(self, round_id: str, applicant_id: str) -> JourneyState:
        handle = self.client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))
        return await handle.query("state", result_type=JourneyState, rpc_timeout=RPC_WAIT)

    async def round_state(self, round_id: str) -> RoundState:
        return await self.client.get_workflow_handle(round_workflow_id(round_id)).query(
            "state", result_type=RoundState
        )

    async def until(self, probe: Callable[[], Awaitable], what: str, timeout: float = PROBE_WAIT_S):
        """Poll `probe` in real time (the test clock is not skipping meanwhile) until it is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = await probe()
            except RPCError as exc:
                # A query the test server let time out is not an answer yet: under a load of 5 on
                # 2 cores, one to a round that had just continued as new did (12-07). Asked again
                # until the deadline; any other failure is the test's.
                if exc.status not in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
                    raise
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def journey_at(
        self, round_id: str, applicant_id: str, *stages, timeout: float = PROBE_WAIT_S
    ) -> JourneyState:
        async def probe():
            s = await self.journey(round_id, applicant_id)
            return s if s.stage in stages else None

        return await self.until(probe, f"{applicant_id} at {stages}", timeout)

    async def one_at_admin_check(self, prefix: str) -> tuple[datetime, str, str]:
        """A new round `prefix-xxxxxx` (SCHEDULE_IN_DAYS from now, formasi F1 of one seat) with one
        applicant at the administrative check: the round's start, its id and the applicant's."""
        t0 = await self.now()
        round_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
        config = compressed_round(round_id, [formasi("F1", 1)], SCHEDULE_IN_DAYS, t0=t0)
        await self.create_round(config)
        applicant = await self.register(config, registration(1, "F1"))
        await self.journey_at(round_id, applicant, Stage.ADMIN_CHECK)
        return t0, round_id, applicant


@pytest_asyncio.fixture
async def kit(test_server_path, keys, tmp_path):
    """A fresh time-skipping server per test (each test owns its clock) with a worker of the real workflows."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_path), data_converter=data_converter(keys)
    )
    async with env:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES
                },
            )
        )
        acts = StandInActivities(env.client)
        rounds = RoundReader(env.client, acts.boards)
        task_queue = f"timeskip-{uuid.uuid4().hex[:8]}"
        activities = [
            acts.broadcast,
            acts.project_journey,
            acts.project_revocations,
            JourneyReader(env.client).read_journey_end,
            acts.issue_nip,
            rounds.read_round,
            rounds.publish_round_board,
            OfferSender(env.client).send_offers,
            acts.check_sanctions,
            acts.pages.read_page,
            acts.pages.fold_pages,
            acts.pages.read_leaf,
            acts.pages.rank_skd_pages,
            acts.pages.rank_final_pages,
            acts.pages.allocate_pages,
            acts.pages.keep_page,
        ]
        async with Worker(
            env.client, task_queue=task_queue, workflows=WORKFLOWS, activities=activities
        ):
            yield TimeSkipKit(env, acts, task_queue, keys, tmp_path, activities)
