"""Signed reports and commands: Ed25519 over the message's canonical JSON, as a detached JWS.

Every report and operator command carries `signature`: a JWS in compact serialization (RFC 7515)
with its payload detached (`header..signature`, RFC 7515 appendix F). The payload is the canonical
JSON (domain/digest.py) of `{"to": <the workflow id it is for>, "message": <the message without
its signature>}`, so a signature holds for one journey (or the round) only; the protected header is
`{"alg": "Ed25519", "kid": <identity>, "typ": "casn.<kind>"}` (the fully specified algorithm of
RFC 9864 for RFC 8037's Ed25519 signatures; `typ` the kind of message signed, its class name:
"casn.Withdrawal"). The payload does not say which kind of message it is, and a Withdrawal, a
Disqualification and an AppealFiling carry the same fields: without `typ`, an operator's signed
withdrawal that was refused could be sent again as a DIS by anyone who saw it, and verified. A
signature with `typ` holds for that kind only (RFC 8725 3.11, explicit typing); one without it,
made before `typ` was written or by a client that does not write it, still holds for any kind. The round's configuration lists each identity's public key (the JWK `x`
value, base64url of the 32 raw bytes) under `identities`; a journey or the round checks the
signature against the key of the message's `reported_by` before anything is recorded, and the
signed message stays in the history, so an auditor can check it offline years later.

Pure computation (no I/O, no clock but the `Keyring`'s, which only clients use): the same code
checks inside a workflow, in a test, and in the auditor's offline `verify`. A signed message may
say until when it may be acted on (`valid_until`, signed with the rest; `validity_problem`). JOSE handling is joserfc's, the curve arithmetic cryptography's.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jws
from joserfc.jwk import OKPKey
from pydantic import BaseModel

from domain.digest import canonical_json

ALGORITHM = "Ed25519"
SIGNATURE_FIELD = "signature"
TYPE_PREFIX = "casn."  # a signature's `typ`: "casn." and the kind of message (message_type)

M = TypeVar("M", bound=BaseModel)


class SigningKeyError(ValueError):
    """A key that cannot be used: names the identity and what is wrong."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signing_input(message: BaseModel, audience: str) -> bytes:
    """The bytes a signature covers: the canonical JSON of `{"to": audience, "message": ...}`,
    the message without its signature. The audience is the workflow the message is for (the
    journey's or the round's id), so a signed report copied to another applicant does not verify."""
    data = message.model_dump(mode="json")
    data.pop(SIGNATURE_FIELD, None)
    return canonical_json({"to": audience, "message": data}).encode()


def public_key(text: str, identity: str = "") -> OKPKey:
    """An Ed25519 public key from its JWK `x` value (base64url of 32 bytes)."""
    who = f"identity {identity}: " if identity else ""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise SigningKeyError(f"{who}public key {text[:12]!r}… is not base64url") from None
    if len(raw) != 32:
        raise SigningKeyError(f"{who}an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": text.rstrip("=")})


def verify(message: BaseModel, keys: dict[str, str], audience: str) -> str | None:
    """Why `message`'s signature, for the workflow `audience`, does not hold under the round's
    keys, or None when it does."""
    identity = signer_of(message)
    signature = getattr(message, SIGNATURE_FIELD, "")
    if identity not in keys:
        return f"{identity} has no public key in this round's identities"
    if not signature:
        return f"unsigned: every report and command must be signed by {identity}'s key"
    try:
        key = public_key(keys[identity], identity)
        signed = jws.deserialize_compact(
            signature, key, payload=signing_input(message, audience), algorithms=[ALGORITHM]
        )
    except Exception as exc:  # noqa: BLE001 - any failure to verify is the sender's
        # joserfc raises TypeError, not a JoseError, for some malformed headers ("crit": 5); a
        # check that raised would fail the workflow task on every retry (a poison start).
        return (
            f"the signature does not verify under {identity}'s key for {audience} "
            f"({type(exc).__name__})"
        )
    headers = signed.headers()
    kid = headers.get("kid")
    if kid != identity:
        return f"the signature names {kid!r}, not {identity}"
    typ = headers.get("typ")
    if typ is not None and typ != message_type(message):
        made_for = str(typ).removeprefix(TYPE_PREFIX)[:60]
        return (
            f"the signature was made for kind {made_for}, not {type(message).__name__}: "
            f"{identity} signed another kind of message with these fields"
        )
    return None


def message_type(message: BaseModel) -> str:
    """The `typ` a signature of `message` names: its kind, as its class is called."""
    return TYPE_PREFIX + type(message).__name__


def signer_of(message: BaseModel) -> str:
    """The identity that must have signed a message: who reported it, or who registered it."""
    return str(getattr(message, "reported_by", None) or getattr(message, "registered_by", "") or "")


def signature_problem(message: BaseModel, identities: dict[str, str], audience: str) -> str | None:
    """Why a message for `audience` cannot count in a round with these keys (None in a round
    without keys)."""
    return verify(message, identities, audience) if identities else None


# The longest a signature may be acted on: a message whose `valid_until` is further from the
# receiver's clock than this is refused (a key's holder cannot hand out an order for a month).
# Long enough for a message signed on one machine and sent from another the same day, and for
# a sender's clock some hours off.
LONGEST_VALIDITY = timedelta(days=1)
# What a client gives the messages it signs: an operator's command, retried after a time-out or
# an outage, is still good for this long; sent again later, it is signed again.
CLIENT_VALIDITY = timedelta(hours=1)


def validity_problem(message: BaseModel, now: datetime, *, required: bool) -> str | None:
    """Why a signed message may not be acted on at `now` (the receiving workflow's time), or
    None. A `valid_until` that has passed, or that lies more than LONGEST_VALIDITY ahead, is
    refused; a message without one only when `required` (messages whose kind TIME_BOUND names,
    in a round with keys)."""
    until = getattr(message, "valid_until", None)
    if until is None:
        if required:
            return (
                f"valid_until is missing: a signed {type(message).__name__} says until when it "
                f"may be acted on, at most {_hours(LONGEST_VALIDITY)} after it is signed"
            )
        return None
    if until < now:
        return (
            f"valid_until {until.isoformat()} has passed (it is now {now.isoformat()}): sign "
            "the message again to send it, on a machine whose clock is right"
        )
    if until > now + LONGEST_VALIDITY:
        return (
            f"valid_until {until.isoformat()} is more than {_hours(LONGEST_VALIDITY)} after now "
            f"({now.isoformat()}): check the sender's clock"
        )
    return None


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"


def problem_for_every(check: Callable[[str], str | None], audiences: Iterable[str]) -> str | None:
    """None as soon as a signature holds for one of `audiences` (`check` gives why it does not
    for one), tried in order, each only when those before failed; else why it failed for the
    first. A message may be signed for more than one audience (domain/panels.py
    report_audiences), never for none."""
    first = None
    for audience in audiences:
        problem = check(audience)
        if problem is None:
            return None
        first = first or problem
    return first


@dataclass(frozen=True)
class Signer:
    """One identity's private key: signs the messages that identity sends."""

    identity: str
    key: OKPKey

    @classmethod
    def generate(cls, identity: str) -> Signer:
        """A new key pair for `identity`."""
        return cls(identity, OKPKey.generate_key("Ed25519", private=True))

    @classmethod
    def from_seed(cls, identity: str, seed: bytes) -> Signer:
        """A key pair from a 32-byte seed (tests and demos that need the same key every run)."""
        if len(seed) != 32:
            raise SigningKeyError(
                f"identity {identity}: an Ed25519 seed is 32 bytes, not {len(seed)}"
            )
        private = Ed25519PrivateKey.from_private_bytes(seed)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(
            identity,
            OKPKey.import_key(
                {"kty": "OKP", "crv": "Ed25519", "d": _b64url(seed), "x": _b64url(public)}
            ),
        )

    @classmethod
    def from_jwk(cls, document: dict) -> Signer:
        """A signer from its key file's JSON (a private OKP JWK with `kid` naming the identity)."""
        identity = document.get("kid")
        if not identity or document.get("crv") != "Ed25519" or "d" not in document:
            raise SigningKeyError(
                "a key file is a private Ed25519 JWK with a kid naming its identity"
            )
        return cls(identity, OKPKey.import_key(document))

    def jwk(self) -> dict:
        """The private key file's JSON."""
        return {**self.key.as_dict(private=True), "kid": self.identity}

    @property
    def public(self) -> str:
        """The public key as the round's configuration lists it (JWK `x`)."""
        return str(self.key.as_dict(private=False)["x"])

    def sign(self, message: M, audience: str) -> M:
        """The message, for the workflow `audience`, with its detached signature (`reported_by`
        must be this identity)."""
        who = signer_of(message)
        if who != self.identity:
            raise SigningKeyError(f"{self.identity}'s key cannot sign a message reported by {who}")
        header = {"alg": ALGORITHM, "kid": self.identity, "typ": message_type(message)}
        compact = jws.serialize_compact(
            header, signing_input(message, audience), self.key, algorithms=[ALGORITHM]
        )
        return message.model_copy(update={SIGNATURE_FIELD: jws.detach_content(compact)})


class Keyring:
    """The signers a client holds (a service holds one; the demo and the tests hold several).

    A message that can carry `valid_until` and has none gets `now() + validity` before it is
    signed (None: left as it is). `now` is the client's clock: a client never runs in a
    workflow."""

    def __init__(
        self,
        signers: list[Signer] | None = None,
        *,
        validity: timedelta | None = CLIENT_VALIDITY,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.signers = {s.identity: s for s in signers or []}
        self.validity = validity
        self.now = now

    def sign(self, message: M, audience: str, now: datetime | None = None) -> M:
        """Sign for `audience` with the key of the message's `reported_by`, if this keyring holds
        it; a message already signed is sent as it was signed. `now`: the moment its validity
        runs from, when the caller knows the receiver's clock better than `self.now`."""
        if getattr(message, SIGNATURE_FIELD, ""):
            return message
        signer = self.signers.get(signer_of(message))
        if signer is None:
            return message
        if self.validity is not None and _unbounded(message):
            start = now or self.now()
            message = message.model_copy(update={"valid_until": start + self.validity})
        return signer.sign(message, audience)

    def public_keys(self) -> dict[str, str]:
        """identity -> public key, for a round's `identities`."""
        return {i: s.public for i, s in self.signers.items()}


def _unbounded(message: BaseModel) -> bool:
    """True for a message that can carry `valid_until` and carries none."""
    return "valid_until" in type(message).model_fields and message.valid_until is None  # type: ignore[attr-defined]


def _prime_exception_types() -> None:
    """Make cryptography fetch its InvalidSignature type now, in an ordinary import.

    cryptography's Rust core imports `cryptography.exceptions` the first time it raises
    InvalidSignature. Inside Temporal's workflow sandbox that import meets the sandbox's module
    table and the interpreter aborts the whole worker process (pyo3 panics): a forged signature
    would kill the worker. Once fetched, the type is cached for the process, so one failed
    verification here, at import (workflow modules import this module before any sandbox runs),
    keeps every later one an ordinary exception.
    """
    key = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    try:
        key.verify(bytes(64), b"")
    except Exception:  # InvalidSignature: the point of the exercise
        pass


_prime_exception_types()
