"""How long a notification that could not be handed over waits before its next attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.notify import retry_delay


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [
        (1, timedelta(minutes=1)),
        (2, timedelta(minutes=2)),
        (5, timedelta(minutes=16)),
        (8, timedelta(minutes=128)),
        (9, timedelta(hours=4)),
        (10, timedelta(hours=4)),
        (1000, timedelta(hours=4)),
    ],
)
def test_the_wait_doubles_from_a_minute_up_to_four_hours(attempts, wait):
    assert retry_delay(attempts) == wait
