"""The worker's garbage-collection watch: long pauses are logged, short ones only measured."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from runtime.gcwatch import GcWatch
from runtime.metrics import GC_PAUSE_SECONDS


def collect_with(watch: GcWatch) -> list[dict]:
    watch.install()
    try:
        with capture_logs() as logs:
            gc.collect()
    finally:
        watch.remove()
    return logs


def test_a_pause_over_the_threshold_is_logged_with_its_length_and_generation():
    watch = GcWatch(threshold=0.0)
    logs = collect_with(watch)
    pauses = [e for e in logs if e["event"].startswith("long garbage-collection pause")]
    assert pauses and pauses[-1]["generation"] == 2 and pauses[-1]["log_level"] == "warning"
    assert (
        watch.long_pauses == len(pauses)
        and abs(watch.longest - max(p["seconds"] for p in pauses)) < 0.001
    )


def test_a_short_pause_is_measured_but_not_logged():
    watch = GcWatch(threshold=60.0)
    logs = collect_with(watch)
    assert not [e for e in logs if e["event"].startswith("long garbage-collection pause")]
    assert watch.longest > 0 and watch.long_pauses == 0


def test_removed_watch_sees_no_more_collections():
    watch = GcWatch(threshold=0.0)
    collect_with(watch)
    seen = watch.long_pauses
    gc.collect()
    assert watch.long_pauses == seen and watch not in gc.callbacks


def test_every_pause_is_observed_in_the_histogram_by_generation():
    """The worker's `casn_gc_pause_seconds`: a full collection is counted under generation 2 with
    its length, short or long, and an unwatched collection is not."""
    labels = {"generation": "2"}
    count = REGISTRY.get_sample_value("casn_gc_pause_seconds_count", labels) or 0.0
    total = REGISTRY.get_sample_value("casn_gc_pause_seconds_sum", labels) or 0.0
    watch = GcWatch(threshold=60.0, pauses=GC_PAUSE_SECONDS)
    collect_with(watch)
    gc.collect()  # after remove(): not observed
    assert REGISTRY.get_sample_value("casn_gc_pause_seconds_count", labels) == count + 1
    added = REGISTRY.get_sample_value("casn_gc_pause_seconds_sum", labels) - total
    assert 0 < added <= watch.longest + 1e-9


def test_every_collection_adds_to_the_total_and_a_reset_forgets_it():
    watch = GcWatch(threshold=60.0)
    collect_with(watch)
    collect_with(watch)
    assert watch.collections >= 2  # two full collections, and any the test's allocations made
    assert watch.total >= watch.longest > 0
    watch.reset()
    assert (watch.total, watch.collections, watch.longest) == (0.0, 0, 0.0)
