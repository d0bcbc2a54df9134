"""Long garbage-collection pauses of the worker process, measured and logged.

A full collection walks every object of the process while holding the GIL, so every workflow
activation waits for it. With tens of thousands of journeys in the sticky cache the heap holds
millions of objects and a full collection takes seconds: long enough for the SDK's deadlock
detector (2 s per activation) to fail workflow tasks, which the server then retries
(BENCHMARKS.md, the 50,000-applicant formasi). A warning names the pause so an operator can
size CASN_WORKER_MAX_CACHED_WORKFLOWS or run more, smaller workers. Given a histogram (the worker
gives `casn_gc_pause_seconds`, runtime/metrics.py), every collection's pause is observed in it by
generation, so a dashboard shows the pauses growing with the cache before one reaches 2 s.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

from runtime.logs import get_logger

PAUSE_WARNING_SECONDS = 0.5


@dataclass
class GcWatch:
    """A gc callback that keeps the longest pause and logs every pause over the threshold."""

    threshold: float = PAUSE_WARNING_SECONDS
    longest: float = 0.0
    long_pauses: int = 0
    total: float = 0.0  # seconds spent in collections since the last reset
    collections: int = 0
    # A prometheus_client Histogram with one label, the generation; None: pauses are not observed.
    pauses: Any = None
    _started: float = field(default=0.0, repr=False)

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.longest = max(self.longest, took)
        self.total += took
        self.collections += 1
        if self.pauses is not None:
            self.pauses.labels(generation=str(info.get("generation"))).observe(took)
        if took >= self.threshold:
            self.long_pauses += 1
            get_logger("worker.gc").warning(
                "long garbage-collection pause: every workflow activation waited",
                seconds=round(took, 3),
                generation=info.get("generation"),
                collected=info.get("collected"),
            )

    def reset(self) -> None:
        """Forget the pauses seen so far (a benchmark measures each run on its own)."""
        self.longest = 0.0
        self.long_pauses = 0
        self.total = 0.0
        self.collections = 0

    def install(self) -> GcWatch:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
