"""A signature names the kind of message it was made for (`typ`), and holds for that kind only."""

from __future__ import annotations

from joserfc import jws

from domain.messages import AppealFiling, Disqualification, Withdrawal
from domain.signing import ALGORITHM, Signer, signing_input, verify

OPERATOR = "panitia"
JOURNEY = "R1/applicant/ABCDEFGHIJKLMNOP"
SIGNER = Signer.from_seed(OPERATOR, b"k" * 32)
KEYS = {OPERATOR: SIGNER.public}


def _as(kind, message):
    """The same fields and signature, read as another kind of message."""
    return kind.model_validate(message.model_dump())


def test_a_signed_withdrawal_does_not_verify_as_a_dis_or_a_sanggah_of_the_same_fields():
    withdrawal = SIGNER.sign(
        Withdrawal(report_id="w-1", reported_by=OPERATOR, reason="atas permintaan sendiri"),
        JOURNEY,
    )
    assert verify(withdrawal, KEYS, JOURNEY) is None
    assert "made for kind Withdrawal, not Disqualification" in str(
        verify(_as(Disqualification, withdrawal), KEYS, JOURNEY)
    )
    assert "made for kind Withdrawal, not AppealFiling" in str(
        verify(_as(AppealFiling, withdrawal), KEYS, JOURNEY)
    )


def test_a_signature_made_without_typ_still_verifies_as_before():
    """Signatures in recorded histories, and those of clients that write no `typ`, keep holding."""
    message = Disqualification(report_id="d-1", reported_by=OPERATOR, reason="joki")
    compact = jws.serialize_compact(
        {"alg": ALGORITHM, "kid": OPERATOR},
        signing_input(message, JOURNEY),
        SIGNER.key,
        algorithms=[ALGORITHM],
    )
    untyped = message.model_copy(update={"signature": jws.detach_content(compact)})
    assert verify(untyped, KEYS, JOURNEY) is None
    assert verify(_as(Withdrawal, untyped), KEYS, JOURNEY) is None  # what typ closes
