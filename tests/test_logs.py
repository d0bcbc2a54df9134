"""Log lines: JSON when asked, and one failure's repeats written as a count, not line by line."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator

import asyncpg
import pytest
import structlog

from runtime.db import tell_pool_outages
from runtime.logs import REPEAT_WINDOW_S, RepeatedFailures, configure_logging, get_logger
from runtime.settings import LogFormat, Settings


@contextlib.contextmanager
def captured_logs(settings: Settings, window: float = REPEAT_WINDOW_S) -> Iterator[io.StringIO]:
    """The process's logging configured as a worker's (JSON lines) into a buffer, and put back
    as it was afterwards."""
    root = logging.getLogger()
    names = ("temporalio", "temporalio.core")
    saved = (root.handlers[:], root.level, [logging.getLogger(n).level for n in names])
    config = structlog.get_config()
    buffer = io.StringIO()
    configure_logging(
        settings.model_copy(update={"log_format": LogFormat.JSON}), buffer, repeat_window=window
    )
    try:
        yield buffer
    finally:
        for handler in root.handlers:
            handler.close()  # writes what is still counted
        root.handlers[:], level, levels = saved[0], saved[1], saved[2]
        root.setLevel(level)
        for name, old in zip(names, levels, strict=True):
            logging.getLogger(name).setLevel(old)
        structlog.configure(**config)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _failure(logger: logging.Logger, error: Exception, attempt: int) -> None:
    try:
        raise error
    except Exception:
        # The SDK's activity lines differ by attempt; their cause does not.
        logger.warning("Completing activity as failed (attempt %d)", attempt, exc_info=True)


def test_one_cause_repeated_is_one_line_then_a_count():
    written: list[logging.LogRecord] = []
    clock = Clock()
    repeats = RepeatedFailures(written.append, window=60, clock=clock)
    logger = logging.getLogger("test.repeats")
    logger.propagate = False
    handler = logging.Handler()
    handler.emit = written.append  # type: ignore[method-assign]
    handler.addFilter(repeats)
    logger.addHandler(handler)
    try:
        for attempt in range(500):  # a minute of retries against a database that is down
            clock.now = attempt * 0.1
            _failure(logger, ConnectionRefusedError(111, "Connect call failed"), attempt)
        assert len(written) == 1
        clock.now = 61
        _failure(logger, ConnectionRefusedError(111, "Connect call failed"), 500)
    finally:
        logger.removeHandler(handler)
    summary, again = written[1], written[2]
    assert summary.casn_repeated == 499 and summary.exc_info is None  # type: ignore[attr-defined]
    assert again.exc_info is not None  # a new window: written in full


def test_another_cause_and_info_lines_are_never_held_back():
    written: list[logging.LogRecord] = []
    repeats = RepeatedFailures(written.append, window=60, clock=Clock())
    logger = logging.getLogger("test.causes")
    for error in (ConnectionRefusedError(111, "refused"), TimeoutError("timed out")) * 3:
        record = logger.makeRecord(
            logger.name, logging.WARNING, "x", 1, "failed", (), (type(error), error, None)
        )
        if repeats.filter(record):
            written.append(record)
    for _ in range(3):
        record = logger.makeRecord(logger.name, logging.INFO, "x", 1, "accepted", (), None)
        assert repeats.filter(record)
    assert [r.exc_info[1].__class__.__name__ for r in written] == [  # type: ignore[index]
        "ConnectionRefusedError",
        "TimeoutError",
    ]


def test_the_count_is_a_json_field_written_at_the_latest_on_close():
    with captured_logs(Settings()) as buffer:
        log = get_logger("test.json")
        for _ in range(5):
            log.warning("read-model metrics not read", error="OSError: refused")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [(line["event"], line.get("repeated")) for line in lines] == [
        ("read-model metrics not read", None),
        ("read-model metrics not read", 4),
    ]


@pytest.mark.parametrize(
    ("error", "written"),
    [
        (
            asyncpg.ConnectionDoesNotExistError("connection was closed"),
            ("warning", "database down: the pool reconnects until it answers", False),
        ),
        (
            asyncpg.InvalidPasswordError('password authentication failed for user "casn"'),
            ("warning", "Failed to restore the pool connection floor; retrying", True),
        ),
    ],
    ids=["outage", "password-refused"],
)
def test_a_pool_that_cannot_reconnect_tells_an_outage_in_one_line_and_anything_else_in_full(
    error, written
):
    """asyncpg's warning for a pool's failed reconnection (asyncpg/pool.py) is one line without a
    traceback for an outage (tests/flows/test_database_outage.py has the real one); any other
    cause is written as asyncpg wrote it, traceback included."""
    tell_pool_outages()
    with captured_logs(Settings()) as buffer:
        try:
            raise error
        except asyncpg.PostgresError:
            logging.getLogger("asyncpg.pool").warning(
                "Failed to restore the pool connection floor; retrying", exc_info=True
            )
    (line,) = [json.loads(text) for text in buffer.getvalue().splitlines()]
    assert (line["level"], line["event"], "exception" in line) == written, line
