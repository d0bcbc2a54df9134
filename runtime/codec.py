"""AES-256-GCM payload codec: the Temporal server and its database only ever see ciphertext."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PayloadDecryptionError(ValueError):
    """An encrypted payload could not be decrypted with the keys this process holds."""


def key_id(key: bytes) -> str:
    """A short, public fingerprint of a key, stored next to each ciphertext."""
    return hashlib.sha256(b"casn-payload-key-id:" + key).hexdigest()[:16]


class AesGcmCodec(PayloadCodec):
    """Encrypts every payload with `key`; decrypts with `key` or any of `previous_keys`.

    `previous_keys` lets a rotated deployment still read histories written under older keys.
    """

    def __init__(self, key: bytes, previous_keys: Sequence[bytes] = ()) -> None:
        if len(key) != 32:
            raise ValueError(f"AES-256-GCM needs a 32-byte key, got {len(key)} bytes")
        self._key_id = key_id(key)
        self._encrypt = AESGCM(key)
        self._ciphers = {key_id(k): AESGCM(k) for k in (*previous_keys, key)}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Wrap each payload, metadata included, into one encrypted payload."""
        return [self._encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Unwrap encrypted payloads; anything not marked encrypted passes through unchanged."""
        return [self._decode_one(p) for p in payloads]

    def _encode_one(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._encrypt.encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self._key_id.encode()},
            data=nonce + sealed,
        )

    def _decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload was encrypted with key id {kid!r}, which this process does not hold "
                f"(it holds {sorted(self._ciphers)}): check CASN_PAYLOAD_KEY and "
                "CASN_PAYLOAD_PREVIOUS_KEYS"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            return Payload.FromString(cipher.decrypt(nonce, sealed, None))
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload with key id {kid!r} failed authentication: it was altered or the key "
                "is wrong"
            ) from None
