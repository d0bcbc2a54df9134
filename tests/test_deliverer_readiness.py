"""When the notification deliverer says it is ready: a pass finished, or the transport answered
for a notification, within the last minute (its /readyz, the compose file's healthcheck)."""

from __future__ import annotations

import asyncio

import pytest

from apps.fleet import DELIVERER_STALE_AFTER_S, DeliveryProgress, WatchedTransport


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_deliverer_is_not_ready_before_its_first_pass_finishes():
    assert DeliveryProgress(clock=Clock()).state() == "no pass finished yet"


def test_a_deliverer_is_ready_for_a_minute_after_a_pass_and_then_says_how_long_it_has_been():
    clock = Clock()
    progress = DeliveryProgress(clock=clock)
    progress.moved()

    clock.now += DELIVERER_STALE_AFTER_S
    assert progress.state() == "ok"
    clock.now += 15
    assert progress.state() == "no pass finished and no notification handed over for 75 s"


class Refusing:
    """A transport that answers, by refusing."""

    async def send(self, round_id: str, applicant_id: str, key: str, text: str) -> None:
        raise ConnectionRefusedError("the SMS gateway refused")


def test_a_long_pass_stays_ready_while_the_transport_answers_even_with_a_refusal():
    clock = Clock()
    progress = DeliveryProgress(clock=clock)
    progress.moved()
    clock.now += DELIVERER_STALE_AFTER_S + 1

    with pytest.raises(ConnectionRefusedError):
        asyncio.run(WatchedTransport(Refusing(), progress).send("R", "A0001", "registered", "t"))

    assert progress.state() == "ok"
