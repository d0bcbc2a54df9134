"""structlog, configured once: readable on a terminal, JSON lines otherwise."""

from __future__ import annotations

import logging
import sys

import structlog

from runtime.settings import LogFormat, Settings

_configured = False


def configure_logging(settings: Settings, stream=None) -> None:
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
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK's own loggers are chatty at INFO during shutdown; keep them at WARNING.
    logging.getLogger("temporalio").setLevel(max(level, logging.WARNING))
    _configured = True


def get_logger(name: str):
    """A structlog logger; never pass personal data (NIK, names, health) as fields."""
    return structlog.get_logger(name)
