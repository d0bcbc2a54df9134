"""AES-256-GCM payload codec: the Temporal server and its database only ever see ciphertext.

Only payloads encrypted with a key this process holds are let in. Anything else (no encryption, an
unknown key id, a failed authentication, a truncated ciphertext) is refused:

- quietly where anyone who reaches Temporal can write: what arrives at a workflow unasked (its
  signals, updates, queries and start input: a workflow's own serialization context, outside any
  command of its own) and what a client reads from a workflow. The payload is replaced by a
  `binary/refused` payload that only names the reason; no converter turns it into a value
  (`RefusedPayloadConverter` raises `PayloadRefusedError`), so the SDK drops such a signal,
  rejects such an update, fails such a start (once, recorded), a client gets the error, and no
  workflow task ever fails over it;
- strictly (`PayloadDecryptionError`) where only our own payloads come: the result of a command a
  workflow issued (activity, local activity, child workflow, external signal), an activity's
  input, a history read outside a workflow (the auditor). A key missing from a process's
  configuration fails and retries its task there, and loses nothing.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    EncodingPayloadConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError

# Set by the SDK's worker while it decodes the payloads that answer one of the workflow's own
# commands; unset for what arrives unasked. Private to the SDK (tests/flows/test_poison.py pins it).
from temporalio.worker._command_aware_visitor import current_command_info

from runtime.metrics import REFUSED_PAYLOADS

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
TAG_BYTES = 16
REFUSED = b"binary/refused"
REFUSED_REASON = "refused-reason"
KEY_HINT = "check CASN_PAYLOAD_KEY and CASN_PAYLOAD_PREVIOUS_KEYS"


class PayloadDecryptionError(ValueError):
    """A payload is not one this process can decrypt: not encrypted, or not with its keys."""


class PayloadRefusedError(ApplicationError, PayloadDecryptionError):
    """A refused payload was asked for its value.

    An ApplicationError, so that a workflow start whose input is refused fails that workflow (once,
    recorded) instead of its workflow task; the SDK drops a signal whose argument raises it and
    rejects such an update; a validator that decodes its own arguments (`workflows.calls.decode`)
    refuses the update naming it. Retryable: an activity that meets one (a client call reading a
    result under a key its process lacks) is retried once the configuration is fixed.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"payload refused: {reason}", type="PayloadRefused")


def key_id(key: bytes) -> str:
    """A short, public fingerprint of a key, stored next to each ciphertext."""
    return hashlib.sha256(b"casn-payload-key-id:" + key).hexdigest()[:16]


def refused_payload(reason: str) -> Payload:
    """A payload that stands for one this process would not let in; it carries no data."""
    return Payload(metadata={"encoding": REFUSED, REFUSED_REASON: reason.encode()[:300]})


def is_refused(payload: Payload) -> bool:
    """True for a payload the codec refused."""
    return payload.metadata.get("encoding") == REFUSED


def refusal_reason(payload: Payload) -> str:
    """Why the codec refused a payload."""
    return payload.metadata.get(REFUSED_REASON, b"").decode(errors="replace") or "refused"


def _shown(value: bytes) -> str:
    """A value from the sender, safe to put in a log line or an error: quoted and short."""
    return repr(value.decode(errors="replace")[:40])


class AesGcmCodec(PayloadCodec, WithSerializationContext):
    """Encrypts every payload with `key`; decrypts with `key` or any of `previous_keys`.

    `previous_keys` lets a rotated deployment still read histories written under older keys.
    With `refuse_quietly=True` it refuses quietly in a workflow's own context, outside the
    workflow's commands (module docstring); it is strict everywhere else, and entirely when False.
    """

    def __init__(
        self, key: bytes, previous_keys: Sequence[bytes] = (), *, refuse_quietly: bool = False
    ) -> None:
        if len(key) != 32:
            raise ValueError(f"AES-256-GCM needs a 32-byte key, got {len(key)} bytes")
        self._key_id = key_id(key)
        self._encrypt = AESGCM(key)
        # Every encrypted payload carries the same metadata: copied from this one in C, where a
        # dict given to Payload() is added entry by entry through Python (a profile of a
        # registration burst found that at about 3% of a core).
        self._sealed_metadata = Payload(
            metadata={"encoding": ENCODING, KEY_ID: key_id(key).encode()}
        )
        self._ciphers = {key_id(k): AESGCM(k) for k in (*previous_keys, key)}
        self._quiet = False
        self._quiet_twin: AesGcmCodec | None = None
        if refuse_quietly:
            twin = copy.copy(self)  # the same ciphers
            twin._quiet = True
            self._quiet_twin = twin

    def with_context(self, context: SerializationContext) -> AesGcmCodec:
        """The quiet twin for a workflow's context when so configured (it is strict still for the
        results of the workflow's commands); this strict codec for activities and elsewhere."""
        if self._quiet_twin is not None and isinstance(context, WorkflowSerializationContext):
            return self._quiet_twin
        return self

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Wrap each payload, metadata included, into one encrypted payload."""
        return [self._encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Unwrap encrypted payloads; refuse anything else (module docstring)."""
        return [self._decode_one(p) for p in payloads]

    def decode_now(self, payload: Payload) -> Payload:
        """`decode` of one payload, outside an event loop (scripts/count_actions.py reads what a
        local activity answered)."""
        return self._decode_one(payload)

    def refuse(self, reason: str, why: str) -> Payload:
        """Refuse a payload: quietly (a `binary/refused` payload, counted by `why` in
        casn_payloads_refused_total) or by raising."""
        if self._quiet and current_command_info.get() is None:
            REFUSED_PAYLOADS.labels(why).inc()
            return refused_payload(reason)
        raise PayloadDecryptionError(f"payload refused: {reason}")

    def _encode_one(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._encrypt.encrypt(nonce, payload.SerializeToString(), None)
        out = Payload()
        out.CopyFrom(self._sealed_metadata)
        out.data = nonce + sealed
        return out

    def _decode_one(self, payload: Payload) -> Payload:
        encoding = payload.metadata.get("encoding", b"")
        if encoding != ENCODING:
            return self.refuse(f"it is not encrypted (encoding {_shown(encoding)})", "plain")
        raw_kid = payload.metadata.get(KEY_ID, b"")
        kid = raw_kid.decode(errors="replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            return self.refuse(
                f"it was encrypted with key id {_shown(raw_kid)}, which this process does not "
                f"hold: {KEY_HINT}",
                "unknown_key",
            )
        if len(payload.data) < NONCE_BYTES + TAG_BYTES:
            return self.refuse(f"its ciphertext under key id {kid!r} is truncated", "truncated")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, None)
        except InvalidTag:
            return self.refuse(
                f"its ciphertext under key id {kid!r} failed authentication: it was altered or "
                "not written with that key",
                "altered",
            )
        try:
            return Payload.FromString(plain)
        except Exception:  # noqa: BLE001 - authenticated, yet not a payload
            return self.refuse(f"what key id {kid!r} decrypts is not a payload", "not_a_payload")


class RefusedPayloadConverter(EncodingPayloadConverter):
    """Turns no value into a refused payload, and a refused payload into no value: asking for
    one raises `PayloadRefusedError` with the codec's reason."""

    @property
    def encoding(self) -> str:
        return REFUSED.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        raise PayloadRefusedError(refusal_reason(payload))
