"""What `audit.py recompute` checks of an offer the round counted as declined for no answer
(patch optimalisasi-answer-deadline): no stack, the round's decisions are written here. The
round itself is played on the time-skipping server (tests/timeskip/test_offer_deadline.py) and
on the real stack (tests/flows/test_offer_timing.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from auditing.recompute import recompute_optimalisasi
from domain.messages import Decision
from tests.roundkit import CLOSED_BY_COMMITTEE, compressed_round, formasi

JABATAN = "Pranata Komputer Ahli Pertama"


def test_recompute_checks_an_unanswered_offer_against_its_deadline():
    """An offer recorded as unanswered must be one an allocation made, and no earlier than its
    answer_by plus the round's grace (no stack: the decisions are written here)."""
    config = compressed_round(
        "deadline-check",
        [formasi("TARGET", 1, jabatan=JABATAN)],
        CLOSED_BY_COMMITTEE,
        offer_within=60,
        extra={"offer_answer_grace": "PT30S"},
    )
    made = datetime(2027, 1, 4, 8, tzinfo=UTC)
    offer_id = "deadline-check/offer/A1/TARGET"

    def decided(outcome: str, at: datetime, inputs: dict) -> Decision:
        return Decision(
            at=at,
            stage="optimalisasi",
            outcome=outcome,
            actor="round",
            input=inputs,
            rule_version=config.rule_version,
            rules_digest=config.digest(),
        )

    allocated = decided("allocated", made, {"vacancies": {}, "offers": [["A1", "TARGET"]]})

    def unanswered(after: timedelta, offer: str = offer_id) -> Decision:
        return decided("offer unanswered", made + after, {"offer_id": offer})

    def differences(*decisions: Decision) -> list[str]:
        return recompute_optimalisasi(config, list(decisions), {}, {})

    # The allocation recomputes to no offers here (no candidates given): that difference aside,
    # only what is said of the unanswered offer counts.
    [no_candidates] = differences(allocated)
    deadline = made + timedelta(seconds=60 + 30)  # answer_by plus the grace
    assert differences(allocated, unanswered(deadline - made)) == [no_candidates]
    assert differences(allocated, unanswered(deadline - made - timedelta(seconds=1))) == [
        no_candidates,
        f"optimalisasi offer {offer_id} recorded unanswered at "
        f"{(deadline - timedelta(seconds=1)).isoformat()}: before its answer_by and the round's "
        f"grace ran out ({deadline.isoformat()})",
    ]
    [_, unknown] = differences(
        allocated, unanswered(timedelta(hours=1), "deadline-check/offer/B2/TARGET")
    )
    assert unknown.endswith("no allocation made it")
