"""Worker tuning of issue 17: the slots kept for cached workflows, the settings that size them,
and the round's view asked once for a crowd of starting journeys."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from pydantic import ValidationError
from temporalio.worker import SlotPermit

from activities.rounds import RoundReader
from domain.messages import RoundView, RoundViewRequest
from runtime.settings import Settings
from runtime.slots import StickyReserveSlots


@dataclass
class Ask:
    """What the slot supplier reads of a reservation."""

    is_sticky: bool
    slot_type: str = "workflow"
    task_queue: str = "q"
    worker_identity: str = "w"
    worker_build_id: str = ""
    worker_deployment_version: None = None


@dataclass
class Release:
    permit: SlotPermit
    slot_info: None = None


async def _reserved(slots: StickyReserveSlots, sticky: bool) -> bool:
    """Whether a poll of that kind gets a slot without waiting."""
    task = asyncio.ensure_future(slots.reserve_slot(Ask(is_sticky=sticky)))
    await asyncio.sleep(0)
    if task.done():
        return True
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return False


async def test_new_journeys_cannot_take_the_slots_kept_for_cached_workflows():
    slots = StickyReserveSlots(total=4, reserved=2)
    assert await _reserved(slots, sticky=False)
    assert await _reserved(slots, sticky=False)
    assert not await _reserved(slots, sticky=False)  # the shared queue's share is used up
    assert slots.try_reserve_slot(Ask(is_sticky=False)) is None  # and no eager start either
    assert await _reserved(slots, sticky=True)  # the round's query still finds a slot
    assert await _reserved(slots, sticky=True)
    assert not await _reserved(slots, sticky=True)
    assert slots.held == 4


async def test_a_released_slot_goes_to_a_waiting_sticky_poll_before_a_shared_one():
    slots = StickyReserveSlots(total=2, reserved=1)
    shared_permit = await slots.reserve_slot(Ask(is_sticky=False))
    sticky_permit = await slots.reserve_slot(Ask(is_sticky=True))
    shared = asyncio.ensure_future(slots.reserve_slot(Ask(is_sticky=False)))
    sticky = asyncio.ensure_future(slots.reserve_slot(Ask(is_sticky=True)))
    await asyncio.sleep(0)
    assert not shared.done() and not sticky.done()
    slots.release_slot(Release(shared_permit))
    await asyncio.sleep(0)
    assert sticky.done() and not shared.done()
    slots.release_slot(Release(sticky_permit))
    slots.release_slot(Release(sticky.result()))
    await asyncio.sleep(0)
    assert shared.done()
    assert slots.held == 1


async def test_a_cancelled_wait_leaves_no_slot_counted():
    slots = StickyReserveSlots(total=2, reserved=1)
    permit = await slots.reserve_slot(Ask(is_sticky=False))
    waiting = asyncio.ensure_future(slots.reserve_slot(Ask(is_sticky=False)))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    slots.release_slot(Release(permit))
    assert slots.held == 0


def test_a_reserve_as_large_as_the_slots_is_refused_naming_both_variables():
    with pytest.raises(ValidationError) as refused:
        Settings(worker_max_concurrent_workflow_tasks=10, worker_sticky_reserved_workflow_slots=10)
    assert "CASN_WORKER_STICKY_RESERVED_WORKFLOW_SLOTS=10" in str(refused.value)
    assert "CASN_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS=10" in str(refused.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("worker_workflow_task_pollers", 1),
        ("worker_nonsticky_to_sticky_poll_ratio", 0),
        ("worker_nonsticky_to_sticky_poll_ratio", 1.5),
        ("worker_max_concurrent_local_activities", 0),
    ],
)
def test_worker_tuning_out_of_range_is_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


class CountingReader(RoundReader):
    """A RoundReader whose query is counted and held until released."""

    def __init__(self) -> None:
        super().__init__(client=None)  # type: ignore[arg-type]
        self.sent: list[str] = []
        self.gate = asyncio.Event()

    async def _ask(self, req: RoundViewRequest) -> RoundView:
        self.sent.append(req.formasi_code)
        await self.gate.wait()
        self.gate.clear()
        return RoundView(found=False)


async def _settle() -> None:
    """Let every ready task run until it waits."""
    for _ in range(10):
        await asyncio.sleep(0)


def _req(formasi: str) -> RoundViewRequest:
    return RoundViewRequest(round_id="R", workflow_id="round-R", formasi_code=formasi)


async def test_journeys_starting_together_share_the_next_query_of_the_round():
    reader = CountingReader()
    first = asyncio.ensure_future(reader._next_answer(_req("F1")))
    await _settle()
    # Asked while the first query is out: they wait for one query sent after it, not for its
    # answer, which may predate them.
    later = [asyncio.ensure_future(reader._next_answer(_req("F1"))) for _ in range(5)]
    await _settle()
    assert reader.sent == ["F1"]
    reader.gate.set()
    await first
    await _settle()
    assert not any(t.done() for t in later) and reader.sent == ["F1", "F1"]
    reader.gate.set()
    await asyncio.gather(*later)
    assert reader.sent == ["F1", "F1"]  # six journeys, two queries


async def test_each_formasi_gets_its_own_query_but_never_two_out_at_once():
    reader = CountingReader()
    tasks = [asyncio.ensure_future(reader._next_answer(_req(f))) for f in ("F1", "F2")]
    await _settle()
    assert reader.sent == ["F1"]  # the server would refuse a second query while one is buffered
    reader.gate.set()
    await _settle()
    assert reader.sent == ["F1", "F2"]
    reader.gate.set()
    await asyncio.gather(*tasks)


class BusyRound:
    """A round handle whose first queries are refused as the server refuses a full buffer."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.calls = 0

    async def query(self, *args, **kwargs):
        from temporalio.service import RPCError, RPCStatusCode

        self.calls += 1
        if self.calls <= self.refusals:
            raise RPCError("consistent query buffer is full", RPCStatusCode.RESOURCE_EXHAUSTED, b"")
        return RoundView(found=False)


async def test_a_round_too_busy_for_the_query_is_asked_again_shortly():
    handle = BusyRound(refusals=2)

    class Client:
        def get_workflow_handle(self, workflow_id):
            return handle

    reader = RoundReader(Client())  # type: ignore[arg-type]
    view = await asyncio.wait_for(reader._ask(_req("F1")), timeout=2)
    assert view == RoundView(found=False) and handle.calls == 3


class SlowUpdate:
    """An update whose answer takes a while; counts how many wait at once."""

    def __init__(self) -> None:
        self.waiting = 0
        self.most = 0

    async def execute(self, handle, message, **options):
        self.waiting += 1
        self.most = max(self.most, self.waiting)
        await asyncio.sleep(0.01)
        self.waiting -= 1
        return type("Answer", (), {"refused": False})()


async def test_a_client_waits_on_no_more_updates_at_once_than_its_limit():
    from client.api import RecruitmentApi
    from domain.messages import AdminReport

    api = RecruitmentApi(client=None, task_queue="q", pseudonym_key=b"k", max_updates_in_flight=3)  # type: ignore[arg-type]
    update = SlowUpdate()
    reports = [AdminReport(report_id=f"r-{i}", reported_by="bkpsdm-verifikator") for i in range(10)]
    await asyncio.gather(
        *(api._update(None, update, r, journey=True, subject="r") for r in reports)  # type: ignore[arg-type]
    )
    assert update.most == 3
