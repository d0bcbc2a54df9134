"""structlog, configured once: readable on a terminal, JSON lines otherwise.

Every line goes through one handler on the root logger: ours (structlog), the SDK's Python side
and the SDK core's (forwarded by runtime/telemetry.py), so CASN_LOG_FORMAT=json gives JSON lines
only. The handler writes a warning or error whose cause was written less than a minute ago as a
count, not as another line (RepeatedFailures): a database outage retried by every local activity
is a handful of lines, not thousands.
"""

from __future__ import annotations

import copy
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from runtime.settings import LogFormat, Settings

_configured = False
REPEAT_WINDOW_S = 60.0


def cause_of(record: logging.LogRecord) -> tuple:
    """What makes two warnings "the same failure": the logger and the exception's type and
    message when there is one (the SDK's activity lines differ by attempt and workflow id, their
    cause does not), else the logger, level and event (the message before its arguments, or a
    structlog line's event and `error` field; numbers and UUIDs left out)."""
    exc = record.exc_info[1] if record.exc_info else None
    event = record.msg
    if isinstance(event, dict):  # a structlog line: its event dict
        given = event.get("exc_info")
        if exc is None and isinstance(given, BaseException):
            exc = given
        elif exc is None and given:
            exc = sys.exc_info()[1]  # True: the exception being handled (we run inside the call)
        event = f"{event.get('event')} {event.get('error', '')}"  # our failures name `error`
    if exc is not None:
        return (record.name, type(exc).__qualname__, str(exc)[:300])
    return (record.name, record.levelno, _IDS.sub("#", str(event)[:300]))


# Numbers and UUIDs (run ids, event ids, durations) in a message do not make another cause: the
# core's "[TMPRL1104] <run id>:17:1 Workflow task duration exceeded 5 seconds" is one cause.
_IDS = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|\d+")


@dataclass
class _Cause:
    written_at: float
    left_out: int = 0
    last: logging.LogRecord | None = None


class RepeatedFailures(logging.Filter):
    """A warning or error is written once per cause and window: repeats within `window` seconds
    of the written line are counted, and when the window has passed a summary line (the last
    repeat, without its traceback) says how many were left out (`repeated`, `repeated_over_s`).

    Summaries are written when the next line of any cause comes through, and on close. Lines
    below WARNING are never held back: each INFO line is an event of its own."""

    def __init__(
        self,
        emit: Callable[[logging.LogRecord], None],
        window: float = REPEAT_WINDOW_S,
        clock=time.monotonic,
    ) -> None:
        super().__init__()
        self._emit = emit
        self.window = window
        self._clock = clock
        self._causes: dict[tuple, _Cause] = {}
        self._lock = threading.RLock()  # the core forwards its lines from its own thread

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "casn_repeated", None) is not None:
            return True  # a summary of ours
        with self._lock:
            now = self._clock()
            self.flush(now)
            if record.levelno < logging.WARNING:
                return True
            key = cause_of(record)
            cause = self._causes.get(key)
            if cause is None:
                self._causes[key] = _Cause(written_at=now)
                return True
            cause.left_out += 1
            cause.last = record
            return False

    def flush(self, now: float | None = None) -> None:
        """Write the summaries of causes whose window has passed (all of them when `now` is
        None) and forget those causes, so their next line is written in full."""
        with self._lock:
            now_ = self._clock() if now is None else now
            for key, cause in list(self._causes.items()):
                if now is not None and now_ - cause.written_at < self.window:
                    continue
                del self._causes[key]
                if cause.left_out and cause.last is not None:
                    self._emit(_summary(cause.last, cause.left_out, now_ - cause.written_at))


def _summary(record: logging.LogRecord, left_out: int, over_s: float) -> logging.LogRecord:
    summary = copy.copy(record)
    summary.exc_info = None
    summary.exc_text = None
    summary.stack_info = None
    if isinstance(summary.msg, dict):
        summary.msg = {k: v for k, v in summary.msg.items() if k not in ("exc_info", "stack_info")}
    summary.casn_repeated = left_out  # type: ignore[attr-defined]
    summary.casn_repeated_over_s = round(over_s, 1)  # type: ignore[attr-defined]
    return summary


class _Handler(logging.StreamHandler):
    """The one stream handler; its RepeatedFailures filter's summaries are flushed on close."""

    def __init__(self, stream, window: float) -> None:
        super().__init__(stream)
        self.repeats = RepeatedFailures(self.handle, window=window)
        self.addFilter(self.repeats)

    def close(self) -> None:
        self.repeats.flush()
        super().close()


def _repeat_fields(_logger, _name, event_dict: dict) -> dict:
    record = event_dict.get("_record")
    repeated = getattr(record, "casn_repeated", None)
    if repeated is not None:
        event_dict["repeated"] = repeated
        event_dict["repeated_over_s"] = record.casn_repeated_over_s  # type: ignore[union-attr]
    return event_dict


def _core_fields(_logger, _name, event_dict: dict) -> dict:
    """A line of the SDK core (LogForwardingConfig): its target and fields as JSON fields."""
    core = getattr(event_dict.get("_record"), "temporal_log", None)
    if core is not None:
        event_dict["target"] = core.target
        for key, value in (core.fields or {}).items():
            event_dict.setdefault(str(key), value)
    return event_dict


def configure_logging(
    settings: Settings, stream=None, repeat_window: float = REPEAT_WINDOW_S
) -> None:
    """Configure structlog and the standard library logging to write to `stream` (stderr)."""
    global _configured
    stream = stream or sys.stderr
    fmt = settings.log_format
    if fmt == LogFormat.AUTO:
        fmt = LogFormat.CONSOLE if stream.isatty() else LogFormat.JSON
    renderer = (
        structlog.dev.ConsoleRenderer()
        if fmt == LogFormat.CONSOLE
        else structlog.processors.JSONRenderer()
    )
    level = getattr(logging, settings.log_level)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = _Handler(stream, window=repeat_window)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                _repeat_fields,
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[*shared, _core_fields],
        )
    )
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, _Handler):
            old.repeats.flush()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK's own loggers are chatty at INFO during shutdown; keep them at WARNING. The core's
    # lines (runtime/telemetry.py) are few at INFO (a worker starting, stopping) and kept.
    logging.getLogger("temporalio").setLevel(max(level, logging.WARNING))
    logging.getLogger("temporalio.core").setLevel(max(level, logging.INFO))
    _configured = True


def get_logger(name: str):
    """A structlog logger; never pass personal data (NIK, names, health) as fields."""
    return structlog.get_logger(name)
