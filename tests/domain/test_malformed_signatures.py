"""A signature or seal of the wrong shape is refused like any that does not verify: it never
raises, since a check that raised would fail its workflow task on every retry (review of 12-07)."""

from __future__ import annotations

import base64
import json

import pytest

from domain.messages import Announcement, Disqualification
from domain.seal import seal_problem, sealed
from domain.signing import Signer, verify

OPERATOR = "panitia"
JOURNEY = "R1/applicant/ABCDEFGHIJKLMNOP"
KEYS = {OPERATOR: Signer.from_seed(OPERATOR, b"k" * 32).public}
SECRET = "ab" * 32


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _with_header(header: dict[str, object]) -> Disqualification:
    compact = f"{_b64(json.dumps(header).encode())}..{_b64(bytes(64))}"
    return Disqualification(report_id="d-1", reported_by=OPERATOR, reason="joki", signature=compact)


@pytest.mark.parametrize("crit", [5, [5], "b64", {"x": 1}])
def test_a_header_whose_crit_is_not_a_list_of_names_does_not_verify(crit):
    message = _with_header({"alg": "Ed25519", "kid": OPERATOR, "crit": crit})
    problem = verify(message, KEYS, JOURNEY)
    assert problem is not None and problem.startswith(
        f"the signature does not verify under {OPERATOR}"
    )


def test_a_header_that_is_not_an_object_does_not_verify():
    compact = f"{_b64(b'[1, 2]')}..{_b64(bytes(64))}"
    message = Disqualification(
        report_id="d-1", reported_by=OPERATOR, reason="joki", signature=compact
    )
    assert "does not verify" in str(verify(message, KEYS, JOURNEY))


def _announcement(seal: str = "") -> Announcement:
    return Announcement(
        announcement_id="R1/tmt_moved/1", phase="tmt_moved", at="2027-01-01T00:00:00Z", seal=seal
    )


@pytest.mark.parametrize("seal", ["\u00e9", "\u00e9" * 64, "zz" * 32, "AB" * 32, "\x00"])
def test_a_seal_not_written_by_seal_of_does_not_verify(seal):
    assert seal_problem(_announcement(seal), SECRET) == (
        "its seal does not verify: it was not sent by the round's own workflows"
    )


def test_the_round_s_own_seal_still_verifies():
    assert seal_problem(sealed(_announcement(), SECRET), SECRET) is None
