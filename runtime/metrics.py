"""The application's metrics, and the /metrics page that shows them with the SDK core's.

Ours live in prometheus_client's default registry (with its process and Python collectors):

- `casn_reports_total{kind, result}`: reports and operator commands submitted to the engine
  through client.api.RecruitmentApi (the gateway's service API, starter.py), by kind and result:
  `accepted`, `refused` (the engine's refusal, or no such journey), `failed` (no answer: the
  engine unreachable);
- `casn_report_ack_seconds{kind}`: from a report's submission to the engine's answer;
- `casn_journeys{stage}` and `casn_notification_outbox`: journeys per stage (`ended` holds every
  terminal outcome) and notifications not yet delivered, read from the read model when the page
  is asked for, at most every CASN_METRICS_READ_MODEL_INTERVAL seconds (`casn_read_model_up` says
  whether that read worked). They describe the whole deployment, not the process: aggregate them
  with max(), not sum(). The count reads every applicant row (0.25-0.35 s per million rows
  measured here, an index on stage does not change it): in a large fleet let a few processes
  report them and set the interval to 0 on the others.
- `casn_deliverer_database_down` and `casn_deliverer_outages_total`: the notification deliverer
  (apps/fleet.py) waiting out an outage of the read model now (1), and how many it has met.
- `casn_payloads_refused_total{why}`: payloads a worker's codec refused on their way into a
  workflow (a signal, an update or a start that it decoded for workflow code), by why: `plain` (not
  encrypted), `unknown_key`, `truncated`, `altered` (failed authentication), `not_a_payload`. Each
  one is a message our own processes did not send: someone who reaches Temporal without the
  payload key, or a process with an old key. A burst is what a flood spending a run's 10,000
  signals looks like from the workers (docs/OPERATIONS.md 2.9). A worker that replays a history
  decodes its refused payloads again and counts them again: read the rate, not the total.
- `casn_gc_pause_seconds{generation}`: every garbage collection of a worker process, by
  generation (0, 1, 2), in seconds (runtime/gcwatch.py). A full collection (2) walks every object
  the process holds, its sticky cache's journeys among them, while every activation waits; past
  2 s the SDK fails the workflow task as a deadlock (docs/OPERATIONS.md 2.1).

The core's metrics (`temporal_*`: workflow and activity tasks, polls, requests to the server,
slots) come from the SDK's own Prometheus exporter on loopback (runtime/telemetry.py says why)
and are appended to the page as they are: the names do not overlap.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request

import asyncpg
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest

from domain.codes import Stage
from runtime.db import DATABASE_ERRORS
from runtime.logs import get_logger
from runtime.telemetry import installed

log = get_logger("metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what both halves of the page are

REPORTS = Counter(
    "casn_reports",
    "Reports and operator commands submitted to the engine, by kind and result "
    "(accepted, refused, failed: not answered)",
    ["kind", "result"],
)
ACK_SECONDS = Histogram(
    "casn_report_ack_seconds",
    "Seconds from a report's submission to the engine's acknowledgement or refusal",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BATCH_ITEMS = Histogram(
    "casn_report_batch_items",
    "Reports per batch taken by the gateway's batch route (POST /api/v1/rounds/{round}/reports); "
    "each report is counted in casn_reports_total too",
    buckets=(1, 10, 25, 50, 100, 200, 350, 500),
)
BATCH_SECONDS = Histogram(
    "casn_report_batch_seconds",
    "Seconds from a batch's arrival at the gateway to its answer (every item judged)",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
JOURNEYS = Gauge(
    "casn_journeys",
    "Journeys per stage in the read model (ended: every terminal outcome); deployment-wide",
    ["stage"],
)
OUTBOX = Gauge(
    "casn_notification_outbox",
    "Notifications written by journeys and not yet delivered; deployment-wide",
)
READ_MODEL_UP = Gauge(
    "casn_read_model_up", "1 when the last read of casn_journeys and the outbox succeeded"
)
DELIVERER_DATABASE_DOWN = Gauge(
    "casn_deliverer_database_down",
    "1 while the notification deliverer waits out an outage of the read model (its passes paused)",
)
DELIVERER_OUTAGES = Counter(
    "casn_deliverer_outages",
    "Outages of the read model the notification deliverer has waited out or is waiting out",
)

STATUS_READS = Counter(
    "casn_status_reads",
    "Applicants' status reads by where the journey's state came from: cache (its history had not "
    "grown since it was last asked: a describe, no worker) or engine (a query to the journey)",
    ["source"],
)

LOOKUPS = Counter(
    "casn_lookups",
    "Operators' applicant lookups through the gateway, by what they gave (nik, number) and the "
    "result (found, unknown, limited: over CASN_LOOKUP_RATE_PER_MINUTE); many limited lookups "
    "by NIK are a stolen operator key sweeping NIKs (the log's `rate limited` names whose)",
    ["by", "result"],
)
ANNOUNCEMENTS = Counter(
    "casn_announcements",
    "Announcements through the gateway, by stage and step (drafted, or unchanged when the stage "
    "already announces these results; published, unchanged or refused when the operator's "
    "signature came back)",
    ["stage", "step"],
)

REFUSED_PAYLOADS = Counter(
    "casn_payloads_refused",
    "Payloads the codec refused on their way into a workflow, by why (plain, unknown_key, "
    "truncated, altered, not_a_payload): messages not sent by this deployment's processes; "
    "a replay counts a history's again",
    ["why"],
)

GC_PAUSE_SECONDS = Histogram(
    "casn_gc_pause_seconds",
    "Seconds each garbage collection of this worker process held every activation, by "
    "generation (2: a full collection, which grows with the sticky cache)",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)

RESULTS = ("accepted", "refused", "failed")


def record_status_read(source: str) -> None:
    """Count one read of a journey's (or aftermath's) state through the status cache."""
    STATUS_READS.labels(source).inc()


def record_report(kind: str, result: str, seconds: float) -> None:
    """Count one submitted report or command and observe its acknowledgement latency."""
    REPORTS.labels(kind, result).inc()
    ACK_SECONDS.labels(kind).observe(seconds)


def record_lookup(by: str, result: str) -> None:
    """Count one operator's applicant lookup through the gateway."""
    LOOKUPS.labels(by, result).inc()


def record_announcement(stage: str, step: str) -> None:
    """Count one step of an announcement through the gateway."""
    ANNOUNCEMENTS.labels(stage, step).inc()


def record_batch(items: int, seconds: float) -> None:
    """Observe one batch of reports the gateway answered: its size and how long it took."""
    BATCH_ITEMS.observe(items)
    BATCH_SECONDS.observe(seconds)


class ReadModelGauges:
    """casn_journeys and casn_notification_outbox, read from the read model when a scrape
    comes, at most every `ttl` seconds, within `timeout` seconds (a slow database delays a
    scrape by that much at most: the last values stay and casn_read_model_up goes to 0)."""

    def __init__(self, pool: asyncpg.Pool, ttl: float = 60.0, timeout: float = 5.0) -> None:
        self.pool = pool
        self.ttl = ttl
        self.timeout = timeout
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the counts unless they were read less than `ttl` seconds ago."""
        async with self._lock:
            if time.monotonic() - self._read_at < self.ttl:
                return
            self._read_at = time.monotonic()
            try:
                async with asyncio.timeout(self.timeout):
                    async with self.pool.acquire() as conn:
                        stages = await conn.fetch(
                            "SELECT stage, count(*) AS n FROM applicants GROUP BY stage"
                        )
                        outbox = await conn.fetchval(
                            "SELECT count(*) FROM notifications WHERE delivered_at IS NULL"
                        )
            except (TimeoutError, *DATABASE_ERRORS) as exc:
                READ_MODEL_UP.set(0)
                log.warning("read-model metrics not read", error=f"{type(exc).__name__}: {exc}")
                return
            counts = {str(r["stage"]): int(r["n"]) for r in stages}
            for stage in {*(s.value for s in Stage), *counts}:
                JOURNEYS.labels(stage).set(counts.get(stage, 0))
            OUTBOX.set(int(outbox or 0))
            READ_MODEL_UP.set(1)


def _fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our loopback URL
        return response.read()


def read_model_gauges(pool: asyncpg.Pool, interval: float) -> ReadModelGauges | None:
    """The read-model gauges of a process serving /metrics, or None when its setting
    (CASN_METRICS_READ_MODEL_INTERVAL) is 0."""
    return ReadModelGauges(pool, ttl=interval) if interval > 0 else None


async def metrics_page(gauges: ReadModelGauges | None = None, timeout: float = 2.0) -> bytes:
    """The Prometheus text page: the application's metrics, then the SDK core's (when this
    process exports them, runtime/telemetry.py)."""
    if gauges is not None:
        await gauges.refresh()
    page = generate_latest(REGISTRY)
    telemetry = installed()
    if telemetry is not None and telemetry.core_metrics_url:
        try:
            core = await asyncio.to_thread(_fetch, telemetry.core_metrics_url, timeout)
        except OSError as exc:
            log.warning("SDK core metrics not read", error=f"{type(exc).__name__}: {exc}")
        else:
            page += core if core.endswith(b"\n") or not core else core + b"\n"
    return page
