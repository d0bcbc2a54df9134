"""The notification deliverer waits out an outage of the database and stops on anything else:
which errors are an outage, the pauses between its tries, what it logs and what /readyz says."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from structlog.testing import capture_logs

from activities.notify import DeliveryPass
from apps.fleet import (
    OUTAGE_LONGEST_PAUSE_S,
    DeliveryProgress,
    deliver_until_stopped,
    outage_pause,
)
from runtime.db import database_unavailable
from runtime.metrics import DELIVERER_DATABASE_DOWN


def _lost_in_a_transaction() -> BaseException:
    """What asyncpg raises when a transaction's connection is lost: "the underlying connection is
    closed", raised while handling the lost connection."""
    try:
        try:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of it")
        except asyncpg.ConnectionDoesNotExistError:
            raise asyncpg.InterfaceError("cannot call Transaction.__aexit__(): closed")  # noqa: B904
    except asyncpg.InterfaceError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.CrashShutdownError("terminating connection because of crash"), True),
        (asyncpg.ConnectionFailureError("connection failure"), True),
        (_lost_in_a_transaction(), True),
        (asyncpg.InsufficientPrivilegeError("permission denied for table notifications"), False),
        (asyncpg.UndefinedColumnError('column "next_attempt_at" does not exist'), False),
        (asyncpg.InterfaceError("cannot perform operation: another operation in progress"), False),
        (ConnectionRefusedError(111, "Connection refused"), False),  # not raised in asyncpg
        (KeyError("sealed"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_only_a_database_that_cannot_be_reached_is_an_outage(error, outage):
    assert database_unavailable(error) is outage


def test_the_pause_between_tries_doubles_from_one_second_to_thirty():
    assert [outage_pause(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert outage_pause(10_000) == OUTAGE_LONGEST_PAUSE_S


class Passes:
    """Passes that raise the given errors, one a pass, then finish; the deliverer's /readyz state
    seen at the start of each, and the stop once `last` passes finished."""

    def __init__(self, errors: list[BaseException], stop: asyncio.Event, progress, last: int = 1):
        self.errors, self.stop, self.progress, self.left = list(errors), stop, progress, last
        self.states: list[str] = []

    async def __call__(self) -> DeliveryPass:
        self.states.append(self.progress.state())
        if self.errors:
            raise self.errors.pop(0)
        self.left -= 1
        if self.left == 0:
            self.stop.set()
        return DeliveryPass(delivered=1)


def _run(errors: list[BaseException], last: int = 1) -> tuple[Passes, list, list[float]]:
    stop, progress = asyncio.Event(), DeliveryProgress()
    passes = Passes(errors, stop, progress, last)
    pauses: list[float] = []

    def pause_for(tries: int) -> float:
        pauses.append(outage_pause(tries))
        return 0.0

    with capture_logs() as logs:
        asyncio.run(deliver_until_stopped(passes, stop, progress, pause_for=pause_for))
    return passes, logs, pauses


def _events(logs: list, level: str) -> list[str]:
    return [e["event"] for e in logs if e["log_level"] == level]


def test_an_outage_is_waited_out_with_one_warning_and_one_line_when_it_ends():
    errors = [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.CannotConnectNowError("the database system is not yet accepting connections"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ]

    passes, logs, pauses = _run(errors)

    assert len(passes.states) == 5  # the deliverer tried until a pass finished, then went on
    assert _events(logs, "warning") == [
        "database down: notification delivery paused until it answers"
    ]
    back = [e for e in logs if e["event"] == "database back: notification delivery resumed"]
    assert [e["tries"] for e in back] == [4]
    assert pauses == [1, 2, 4, 8]
    # Not ready while it waited; the gauge back to 0 once a pass finished.
    assert all(s.startswith("database down for ") for s in passes.states[1:])
    assert DELIVERER_DATABASE_DOWN._value.get() == 0


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InsufficientPrivilegeError("permission denied for table notifications"),
        asyncpg.UndefinedColumnError('column "given_up_at" does not exist'),
        ZeroDivisionError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_that_is_not_an_outage_stops_the_deliverer_with_one_line_naming_it(error):
    with capture_logs() as logs, pytest.raises(type(error)):
        stop, progress = asyncio.Event(), DeliveryProgress()
        asyncio.run(deliver_until_stopped(Passes([error], stop, progress), stop, progress))
    stopped = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in stopped] == [
        "notification deliverer stopped: not an outage of the database"
    ]
    assert type(error).__name__ in stopped[0]["error"]


def test_a_single_pass_does_not_wait_for_the_database():
    stop, progress = asyncio.Event(), DeliveryProgress()
    passes = Passes([asyncpg.ConnectionDoesNotExistError("lost")], stop, progress)
    with pytest.raises(asyncpg.ConnectionDoesNotExistError):
        asyncio.run(deliver_until_stopped(passes, stop, progress, once=True))
    assert len(passes.states) == 1


class _Pool:
    """A pool whose pass fails with `error` as asyncpg raises it (deliver_pass asks nothing else)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def acquire(self):
        raise self.error


def _closed_while_timing_out() -> BaseException:
    """What a pass met when a statement outlasted the pool's timeout and asyncpg closed the
    connection that did not answer its cancel: the transaction's rollback then found the
    connection closed (InterfaceError, the TimeoutError as its context), which the pass says as
    a lost connection (ConnectionDoesNotExistError, from it)."""
    try:
        try:
            try:
                raise TimeoutError
            except TimeoutError:
                raise asyncpg.InterfaceError("cannot perform operation: connection is closed")  # noqa: B904 - as asyncpg does
        except asyncpg.InterfaceError as exc:
            raise asyncpg.ConnectionDoesNotExistError("lost during the pass") from exc
    except asyncpg.ConnectionDoesNotExistError as exc:
        return exc


@pytest.mark.parametrize(
    "error, silent",
    [
        (TimeoutError(), True),
        (_closed_while_timing_out(), True),  # the fresh clone's run of 2026-12-06 met this one
        (asyncpg.ConnectionDoesNotExistError("the server closed it"), False),
        (ValueError("a bug"), False),
    ],
)
def test_a_pass_that_timed_out_is_the_database_gone_silent_however_asyncpg_said_it(error, silent):
    """A pass cut by the pool's timeout is told as DatabaseSilentError whether asyncpg raised the
    TimeoutError itself or what closing the connection then caused; anything else as it was."""
    from activities.notify import deliver_pass
    from runtime.db import DatabaseSilentError

    with pytest.raises(BaseException) as raised:
        asyncio.run(deliver_pass(_Pool(error), transport=None, batch=1))  # type: ignore[arg-type]
    assert isinstance(raised.value, DatabaseSilentError) is silent, raised.value
    if not silent:
        assert raised.value is error


class _Connection:
    """A pass's connection whose first statement meets `error`; `closed` is what asyncpg's
    `is_closed()` then says."""

    def __init__(self, error: BaseException, closed: bool) -> None:
        self.error, self.closed = error, closed

    async def fetch(self, *_args):
        raise self.error

    def is_closed(self) -> bool:
        return self.closed


class _PoolOf:
    """A pool that lends `connection`, as `pool.acquire()` does."""

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection

    def acquire(self):
        connection = self.connection

        class _Lent:
            async def __aenter__(self):
                return connection

            async def __aexit__(self, *_exc):
                return None

        return _Lent()


# What asyncpg 0.32 raised in a pass whose server was SIGKILLed as a server message was being read
# (a random-kill run against the embedded PostgreSQL found it; the fresh clone's CI run of
# 2026-12-07 stopped its deliverer on it, and /readyz then refused connections).
_MID_MESSAGE = "cannot switch to state 15; another operation (2) is in progress"


@pytest.mark.parametrize("closed", [True, False], ids=["connection-lost", "connection-open"])
def test_a_protocol_left_mid_message_by_a_lost_connection_is_an_outage_and_on_an_open_one_a_bug(
    closed,
):
    from activities.notify import deliver_pass

    error = asyncpg.InternalClientError(_MID_MESSAGE)
    with pytest.raises(BaseException) as raised:
        asyncio.run(deliver_pass(_PoolOf(_Connection(error, closed)), transport=None, batch=1))  # type: ignore[arg-type]
    assert database_unavailable(raised.value) is closed, raised.value
    if not closed:
        assert raised.value is error  # a bug of ours or asyncpg's: the deliverer stops on it
