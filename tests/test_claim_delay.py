"""When a national claim ends (domain/national.py claim_ends_at): after its hold, spread by its id."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.national import CLAIM_END_SPREAD, claim_ends_at

CLOSE = datetime(2027, 3, 1, 17, 0, tzinfo=UTC)


def test_a_claim_holds_past_the_close_and_its_end_is_spread_by_its_id():
    ends = [claim_ends_at(CLOSE, f"nat-1/claim/{i:05d}") for i in range(2000)]
    assert all(CLOSE <= end < CLOSE + CLAIM_END_SPREAD for end in ends)
    # spread over the whole window, not bunched at the close: every quarter of it gets a share
    quarters = {int((end - CLOSE) / (CLAIM_END_SPREAD / 4)) for end in ends}
    assert quarters == {0, 1, 2, 3}
    assert claim_ends_at(CLOSE, "nat-1/claim/00007") == ends[7]  # the id decides
