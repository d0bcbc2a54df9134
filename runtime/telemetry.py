"""The SDK's runtime, made once per process: the core's logs go into our logging (so they are
JSON lines like ours) and, where the process serves /metrics, the core's metrics go to an
internal Prometheus endpoint that runtime/metrics.py merges into its page.

Why the core's own exporter and not a `MetricBuffer` translated into prometheus_client: the
exporter aggregates in Rust, so a metric update costs the worker's Python thread (the GIL-bound
workflow tasks) nothing, and its histograms keep the SDK's own buckets; a buffer would hand every
single update to Python and need a drain task. The price is one extra listener on loopback at a
port the system hands out, read by our /metrics with one local request per scrape. Application
metrics stay in prometheus_client, where the ones computed at scrape time (journeys per stage,
outbox depth) are natural and the SDK's metric meter has no equivalent.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from runtime.settings import Settings

CORE_LOGGER = "temporalio.core"
# Core's filter levels by the logging module's: Core knows ERROR, WARN, INFO, DEBUG and TRACE.
_CORE_LEVELS = {"CRITICAL": "ERROR", "ERROR": "ERROR", "WARNING": "WARN", "INFO": "INFO"}


@dataclass(frozen=True)
class Telemetry:
    """What the process's SDK runtime exports: the core's metrics page, when there is one."""

    runtime: Runtime
    core_metrics_url: str | None = None


_installed: Telemetry | None = None


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def core_logging(settings: Settings) -> LoggingConfig:
    """The core's log lines forwarded to the `temporalio.core` logger at CASN_LOG_LEVEL (DEBUG
    is kept at INFO: Core's debug output is per poll), target and fields kept apart for the JSON
    line (runtime/logs.py), instead of coloured text on stderr."""
    return LoggingConfig(
        filter=TelemetryFilter(
            core_level=_CORE_LEVELS.get(settings.log_level, "INFO"), other_level="WARN"
        ),
        forwarding=LogForwardingConfig(
            logger=logging.getLogger(CORE_LOGGER),
            append_target_to_name=False,
            prepend_target_on_message=False,
            append_log_fields_to_message=False,
        ),
    )


def install_telemetry(settings: Settings, *, core_metrics: bool = False) -> Telemetry:
    """Make the SDK runtime every later client and worker of this process uses.

    Call it before the first client connects (clients made earlier keep the default runtime).
    The core's log lines go to our logging (core_logging). With `core_metrics`, the core exports its
    metrics (temporal_*) on a free loopback port. A second call returns the first one's runtime,
    adding the metrics endpoint if the first had none.
    """
    global _installed
    if _installed is not None and (_installed.core_metrics_url or not core_metrics):
        return _installed
    config = TelemetryConfig(logging=core_logging(settings))
    url = None
    runtime = None
    if core_metrics:
        for attempt in range(3):  # another process may take the port between probe and bind
            port = _free_loopback_port()
            try:
                runtime = Runtime(
                    telemetry=TelemetryConfig(
                        logging=config.logging,
                        metrics=PrometheusConfig(
                            bind_address=f"127.0.0.1:{port}",
                            # the SDK's names as Temporal documents them (temporal_request,
                            # not temporal_request_total; one counter is already ..._total)
                            durations_as_seconds=True,
                        ),
                    )
                )
            except ValueError:  # "Failed starting Prometheus exporter: Address already in use"
                if attempt == 2:
                    raise
                continue
            url = f"http://127.0.0.1:{port}/metrics"
            break
    if runtime is None:
        runtime = Runtime(telemetry=config)
    Runtime.set_default(runtime, error_if_already_set=False)
    _installed = Telemetry(runtime=runtime, core_metrics_url=url)
    return _installed


def installed() -> Telemetry | None:
    """The telemetry `install_telemetry` made in this process, if any."""
    return _installed


class TracingConfigError(ValueError):
    """CASN_TRACING or CASN_OTLP_ENDPOINT cannot be honoured; names the setting and what to do."""


_tracer = None


def tracing_interceptors(settings: Settings) -> list:
    """With CASN_TRACING, the SDK's OpenTelemetry TracingInterceptor (on a client, it traces the
    client's calls and every worker made from it: workflow and activity spans); else none.

    Spans go to CASN_OTLP_ENDPOINT over OTLP/gRPC when set, else each finished span is one log
    line (`span`). opentelemetry-sdk (the `tracing` extra) is imported only here."""
    global _tracer
    if not settings.tracing:
        return []
    if _tracer is None:
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        except ImportError:
            raise TracingConfigError(
                "CASN_TRACING=true needs opentelemetry-sdk: install the project's tracing extra "
                "(pip install '.[tracing]') or set CASN_TRACING=false"
            ) from None
        provider = TracerProvider(resource=Resource.create({"service.name": "casn"}))
        exporter = span_exporter(settings)
        # To a collector in batches, off the event loop; to the log as each span ends.
        processor = BatchSpanProcessor if settings.otlp_endpoint else SimpleSpanProcessor
        provider.add_span_processor(processor(exporter))
        _tracer = provider.get_tracer("casn")
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(_tracer)]


def span_exporter(settings: Settings):
    """Where finished spans go: the OTLP endpoint, or the log."""
    if settings.otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise TracingConfigError(
                f"CASN_OTLP_ENDPOINT={settings.otlp_endpoint} needs the package "
                "opentelemetry-exporter-otlp-proto-grpc, which is not installed; install it or "
                "unset CASN_OTLP_ENDPOINT (spans are then logged)"
            ) from None
        return OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    return _log_span_exporter()


def _log_span_exporter():
    """A span exporter writing each finished span as one log line (`span`): its name, trace and
    span ids, parent, duration and status. Span attributes are left out (no personal data in
    logs). Made here, not at import: opentelemetry-sdk is an optional extra."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from runtime.logs import get_logger

    log = get_logger("tracing")

    class LogSpanExporter(SpanExporter):
        def export(self, spans):
            for span in spans:
                ctx = span.get_span_context()
                log.info(
                    "span",
                    name=span.name,
                    trace_id=f"{ctx.trace_id:032x}" if ctx else None,
                    span_id=f"{ctx.span_id:016x}" if ctx else None,
                    parent_id=f"{span.parent.span_id:016x}" if span.parent else None,
                    duration_ms=round(((span.end_time or 0) - (span.start_time or 0)) / 1e6, 3),
                    status=span.status.status_code.name,
                )
            return SpanExportResult.SUCCESS

    return LogSpanExporter()
