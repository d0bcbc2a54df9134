"""The benches' measuring helpers: a step's CPU is the difference of two snapshots, process by
process; a history's largest event is named by its kind and number."""

from __future__ import annotations

import time

from temporalio.client import WorkflowHistory

from bench.common import ROOT, CpuMeter, largest_event
from runtime.settings import Settings


def test_a_backend_that_ends_between_two_snapshots_takes_nothing_away() -> None:
    # PostgreSQL's backends come and go: one that used 280 s and ended before the second
    # snapshot must not turn the step's PostgreSQL CPU negative. The 100,000 run's first sitting
    # recorded -280 s for SKD when the totals were summed before they were subtracted (and the
    # postmaster's reaped children were not counted yet); summed totals still drop whenever one
    # sample misses the postmaster.
    start = {"self": 10.0, "temporal": 50.0, "postgres": {100: 5.0, 200: 280.0}}
    end = {"self": 12.5, "temporal": 53.0, "postgres": {100: 7.0, 300: 1.5}}
    spent = CpuMeter.between(start, end)
    assert spent == {"worker": 2.5, "temporal": 3.0, "postgres": 3.5}


def test_a_server_that_cannot_be_read_counts_as_none_spent() -> None:
    start = {"self": 1.0, "temporal": None, "postgres": {}}
    end = {"self": 1.0, "temporal": None, "postgres": {}}
    assert CpuMeter.between(start, end) == {"worker": 0.0, "temporal": 0.0, "postgres": 0.0}


def test_snapshots_of_this_process_see_its_work(tmp_path) -> None:
    meter = CpuMeter(Settings(data_dir=tmp_path))
    before = meter.snapshot()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    spent = CpuMeter.between(before, meter.snapshot())
    assert spent["worker"] >= 0.15
    assert spent["temporal"] == 0.0 and spent["postgres"] == 0.0  # no servers in tmp_path


def test_the_largest_event_of_a_recorded_history_is_named_by_kind_and_number() -> None:
    # A recorded formasi history (tests/histories): its largest event is found among all, and
    # named the way `bench history-sizes` prints it.
    path = next((ROOT / "tests" / "histories" / "v11-full").glob("recorded__formasi__*.json"))
    history = WorkflowHistory.from_json("formasi", path.read_text())
    size, kind = largest_event(history)
    assert size == max(e.ByteSize() for e in history.events) > 0
    biggest = next(e for e in history.events if e.ByteSize() == size)
    assert kind.endswith(f", event {biggest.event_id:,}")
    assert kind.split(",")[0] in {
        "workflow execution started",
        "activity task completed",
        "activity task scheduled",
        "workflow execution signaled",
        "workflow execution update accepted",
        "workflow execution update completed",
        "marker recorded",
        "workflow execution completed",
        "workflow execution continued as new",
    }


def test_the_c_allocator_sees_large_python_objects_and_their_release() -> None:
    # cache-memory parts a cached journey's bytes into CPython's and the SDK core's by what glibc's
    # allocator holds: objects over 512 B come from it, so 2,000 of 4 KiB must show in `in_use`
    # (about 8 MiB), and be gone from it once freed.
    from bench.fleet import malloc_figures

    before = malloc_figures()
    assert before is not None, "glibc's mallinfo2 is missing: cache-memory cannot part its figures"
    held = [bytearray(4096) for _ in range(2000)]
    during = malloc_figures()
    assert during is not None
    assert during["in_use"] - before["in_use"] >= 2000 * 4096
    del held
    after = malloc_figures()
    assert after is not None
    assert during["in_use"] - after["in_use"] >= 2000 * 4096


def test_traced_python_allocations_are_parted_at_512_bytes() -> None:
    import tracemalloc

    from bench.fleet import traced_split

    tracemalloc.start()
    try:
        small = [bytes(100 + i % 7) for i in range(1000)]  # about 133 B each: CPython's arenas
        large = [bytes(2000 + i % 7) for i in range(100)]  # about 2 KiB each: the C allocator
        snap = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    over = traced_split(snap)
    assert 100 * 2000 <= over < 100 * 2000 + 100 * 2000 // 2  # the large ones, not the small
    assert small and large
