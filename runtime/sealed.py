"""Encrypted read-model columns: AES-256-GCM under the payload key set, bound to their row.

The read model keeps some personal data because a reader needs it later (a notification's text
until the deliverer hands it over); in the database it is ciphertext. The keys are the payload
codec's (runtime/codec.py: `CASN_PAYLOAD_KEY`, and `CASN_PAYLOAD_PREVIOUS_KEYS` after a rotation),
so whoever may read the histories may read these columns, and nobody else. Each value is sealed
with its row's identity as associated data, so a value copied into another row does not open.

Layout of a sealed value: the key id (16 ASCII hex digits, runtime/codec.py `key_id`), a 12-byte
nonce, then the ciphertext with its 16-byte tag.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runtime.codec import KEY_HINT, NONCE_BYTES, TAG_BYTES, PayloadDecryptionError, key_id
from runtime.keys import Keys

KEY_ID_BYTES = 16


class ColumnCipher:
    """Seals and opens read-model values; seals with `key`, opens with it or a previous key."""

    def __init__(self, key: bytes, previous_keys: Sequence[bytes] = ()) -> None:
        if len(key) != 32:
            raise ValueError(f"AES-256-GCM needs a 32-byte key, got {len(key)} bytes")
        self._key_id = key_id(key).encode()
        self._seal = AESGCM(key)
        self._ciphers = {key_id(k).encode(): AESGCM(k) for k in (*previous_keys, key)}

    @classmethod
    def from_keys(cls, keys: Keys) -> ColumnCipher:
        """The cipher of the deployment's payload keys."""
        return cls(keys.payload_key, keys.previous_payload_keys)

    def seal(self, plain: bytes, row: str) -> bytes:
        """`plain` encrypted for the row named `row` (e.g. `notifications/<round>/<id>/<key>`)."""
        nonce = os.urandom(NONCE_BYTES)
        return self._key_id + nonce + self._seal.encrypt(nonce, plain, row.encode())

    def open(self, sealed: bytes, row: str) -> bytes:
        """The plain value of `sealed`, which must have been sealed for `row`; otherwise
        PayloadDecryptionError naming why (an unknown key, another row, altered bytes)."""
        kid = bytes(sealed[:KEY_ID_BYTES])
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise PayloadDecryptionError(
                f"the value of {row} was sealed with key id {kid.decode(errors='replace')!r}, "
                f"which this process does not hold: {KEY_HINT}"
            )
        body = bytes(sealed[KEY_ID_BYTES:])
        if len(body) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptionError(f"the value of {row} is truncated")
        try:
            return cipher.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], row.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"the value of {row} failed authentication: altered, or sealed for another row"
            ) from None
