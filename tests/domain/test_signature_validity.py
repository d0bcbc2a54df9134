"""Until when a signed message may be acted on (`valid_until`), and what stays the same message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from domain.digest import canonical_digest
from domain.messages import (
    TIME_BOUND,
    Ack,
    AdminReport,
    CloseWindow,
    Disqualification,
    JourneyStart,
    SkdReport,
    validity_refusal,
)
from domain.sheet import SENDERS
from domain.signing import (
    CLIENT_VALIDITY,
    LONGEST_VALIDITY,
    Keyring,
    Signer,
    validity_problem,
    verify,
)
from workflows.ledger import Ledger

OPERATOR = "panitia"
JOURNEY = "R1/applicant/ABCDEFGHIJKLMNOP"
SIGNER = Signer.from_seed(OPERATOR, b"k" * 32)
KEYS = {OPERATOR: SIGNER.public}
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def _dis(**fields) -> Disqualification:
    return Disqualification(report_id="d-1", reported_by=OPERATOR, reason="joki", **fields)


def test_a_message_is_refused_once_its_valid_until_has_passed():
    message = _dis(valid_until=NOW - timedelta(seconds=1))
    assert "valid_until 2027-03-01T07:59:59+00:00 has passed" in str(
        validity_problem(message, NOW, required=True)
    )
    assert validity_problem(_dis(valid_until=NOW), NOW, required=True) is None


def test_a_valid_until_further_than_a_day_ahead_is_refused_naming_the_clock():
    assert validity_problem(_dis(valid_until=NOW + LONGEST_VALIDITY), NOW, required=True) is None
    far = _dis(valid_until=NOW + LONGEST_VALIDITY + timedelta(seconds=1))
    assert "more than 24 h after now" in str(validity_problem(far, NOW, required=True))


def test_a_message_without_valid_until_is_refused_only_where_one_is_required():
    assert "valid_until is missing: a signed Disqualification" in str(
        validity_problem(_dis(), NOW, required=True)
    )
    assert validity_problem(_dis(), NOW, required=False) is None


def test_operators_and_the_portals_messages_need_one_in_a_round_with_keys_services_do_not():
    assert validity_refusal(_dis(), KEYS, NOW) is not None
    assert validity_refusal(_dis(), {}, NOW) is None  # a round without keys: unsigned anyway
    report = SkdReport(report_id="s-1", reported_by="cat", twk=60, tiu=70, tkp=150)
    assert validity_refusal(report, KEYS, NOW) is None
    stale = report.model_copy(update={"valid_until": NOW - timedelta(minutes=1)})
    assert validity_refusal(stale, KEYS, NOW) is not None  # carried, so held to it


def test_every_kind_an_operator_or_the_portal_sends_is_time_bound():
    """TIME_BOUND is the kinds whose senders are OPERATOR or PORTAL (domain.sheet.SENDERS), so
    that a kind added later for them cannot be left out unnoticed."""

    class Rules:
        reporters: dict[str, list[str]] = {"operator": ["op"], "portal": ["portal"]}

    def sent_by_operator_or_portal(kind) -> bool:
        check = SENDERS[kind]
        fields = {name: None for name in kind.model_fields}
        message = kind.model_construct(**{**fields, "report_id": "x", "reported_by": "op"})
        by_portal = message.model_copy(update={"reported_by": "portal"})
        try:
            return check(message, Rules()) is None or check(by_portal, Rules()) is None
        except (AttributeError, TypeError):  # needs fields a component check reads: a service's
            return False

    assert {k for k in SENDERS if sent_by_operator_or_portal(k)} == set(TIME_BOUND)


def test_a_valid_until_without_a_zone_is_refused_naming_the_field():
    with pytest.raises(ValidationError, match="valid_until") as refused:
        _dis(valid_until=datetime(2027, 3, 1, 8, 0))
    assert "time zone offset" in str(refused.value)


def test_the_keyring_stamps_what_it_signs_and_the_signature_covers_it():
    keyring = Keyring([SIGNER], now=lambda: NOW)
    signed = keyring.sign(_dis(), JOURNEY)
    assert signed.valid_until == NOW + CLIENT_VALIDITY
    assert verify(signed, KEYS, JOURNEY) is None
    stretched = signed.model_copy(update={"valid_until": NOW + timedelta(hours=20)})
    assert "does not verify" in str(verify(stretched, KEYS, JOURNEY))
    # The receiver's clock, when the caller knows it better (a time-skipping test server).
    later = NOW + timedelta(days=30)
    assert keyring.sign(_dis(), JOURNEY, later).valid_until == later + CLIENT_VALIDITY
    # One already set is kept; a keyring without validity stamps nothing.
    assert keyring.sign(_dis(valid_until=NOW), JOURNEY).valid_until == NOW
    assert Keyring([SIGNER], validity=None).sign(_dis(), JOURNEY).valid_until is None


def test_a_message_signed_before_valid_until_dumps_and_verifies_as_it_was_signed():
    old = SIGNER.sign(_dis(), JOURNEY)
    assert "valid_until" not in old.model_dump(mode="json")
    assert verify(old, KEYS, JOURNEY) is None


def test_a_registration_start_is_not_stamped():
    assert "valid_until" not in JourneyStart.model_fields


def test_signed_again_with_a_later_validity_is_the_same_content():
    first = Keyring([SIGNER], now=lambda: NOW).sign(_dis(), JOURNEY)
    again = Keyring([SIGNER], now=lambda: NOW + timedelta(days=2)).sign(_dis(), JOURNEY)
    assert first.signature != again.signature
    assert first.content_digest() == again.content_digest()
    assert first.record() == again.record() == _dis().record()
    assert "valid_until" not in first.record()
    other = _dis().model_copy(update={"reason": "ijazah palsu"})
    assert other.content_digest() != first.content_digest()


def _ack() -> Ack:
    return Ack(report_id="d-1", applicant_id="A", stage="skd", effect="DIS", recorded_at=NOW)


def test_a_ledger_carried_from_before_valid_until_still_knows_its_repeats():
    """A round or aftermath continued as new carries its ledger: digests made before were over
    the content and the signature (Report.legacy_digest)."""
    old = SIGNER.sign(_dis(), JOURNEY)
    ledger = Ledger("command", "", "Refused")
    ledger.answers = {"d-1": (canonical_digest(old), _ack())}

    assert ledger.is_repeat(old)
    with pytest.raises(ApplicationError, match="already used with different content"):
        ledger.is_repeat(old.model_copy(update={"reason": "ijazah palsu", "signature": ""}))


def test_a_close_command_of_the_round_is_time_bound_and_a_result_report_is_not():
    assert CloseWindow in TIME_BOUND and AdminReport not in TIME_BOUND
