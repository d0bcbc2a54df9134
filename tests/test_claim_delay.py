"""The national claim's delayed start (client/national.py claim_start_delay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from client.national import CLAIM_END_SPREAD, claim_start_delay

CLOSE = datetime(2027, 3, 1, 17, 0, tzinfo=UTC)
NOW = CLOSE - timedelta(days=20)


def test_a_claim_holds_past_the_close_and_its_end_is_spread_by_its_id():
    delays = [claim_start_delay(CLOSE, f"nat-1/claim/{i:05d}", NOW) for i in range(2000)]
    assert all(d is not None for d in delays)
    ends = [NOW + d for d in delays if d is not None]
    assert all(CLOSE <= end < CLOSE + CLAIM_END_SPREAD for end in ends)
    # spread over the whole window, not bunched at the close: every quarter of it gets a share
    quarters = {int((end - CLOSE) / (CLAIM_END_SPREAD / 4)) for end in ends}
    assert quarters == {0, 1, 2, 3}
    assert claim_start_delay(CLOSE, "nat-1/claim/00007", NOW) == delays[7]  # the id decides


def test_a_claim_started_after_its_hold_is_not_delayed():
    assert claim_start_delay(CLOSE, "nat-1/claim/x", CLOSE + CLAIM_END_SPREAD) is None
