"""The project's secrets: given in the settings, or generated once under data_dir in the embedded
mode only.

A deployment (CASN_TEMPORAL_ADDRESS set) never makes a key up. A client that generated its own
pseudonym key would give every applicant it registers another registration number (a second
person per NIK), and one that generated its own payload key would write what nobody else can
read. So there a key that is not given is missing, and asking for it raises MissingKeyError
naming the variable and how to make one: a process fails only if it needs that key (a worker
never asks for the pseudonym key; only a command that signs audit bundles asks for the signing
key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path

from runtime.codec import key_id
from runtime.logs import get_logger
from runtime.settings import Settings

log = get_logger(__name__)

KEY_BYTES = 32
MAKE_ONE = "python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'"

# The variable of each key, and what it is for (in the error that says it is missing).
VARIABLES = {
    "payload_key": "CASN_PAYLOAD_KEY",
    "pseudonym_key": "CASN_PSEUDONYM_KEY",
    "signing_key": "CASN_SIGNING_KEY",
}
PURPOSES = {
    "payload_key": "the AES-256-GCM key of every workflow payload; every worker and client of "
    "the deployment must hold the same one",
    "pseudonym_key": "the HMAC key that turns a NIK into the registration number; every client "
    "that registers applicants or reports to a round must hold the key the round was created with",
    "signing_key": "the Ed25519 seed that signs exported audit bundles (the instansi's key)",
}


class InvalidKeyError(ValueError):
    """A configured key is not valid base64 of the expected length."""


class MissingKeyError(InvalidKeyError):
    """A deployment was not given a key that this process needs; none is generated for it."""

    def __init__(self, name: str) -> None:
        self.variable = VARIABLES[name]
        super().__init__(
            f"{self.variable} is not set. With CASN_TEMPORAL_ADDRESS set (a deployment), keys are "
            f"never generated: {self.variable} is {PURPOSES[name]}. Set {self.variable} to the "
            f"deployment's key (base64 of {KEY_BYTES} bytes); for a new deployment, make one once "
            f"with {MAKE_ONE} and give the same value to every process that needs it"
        )


def payload_key_id(key: bytes) -> str:
    """The payload key's public fingerprint: the id the codec stores next to each ciphertext."""
    return key_id(key)


def pseudonym_key_id(key: bytes) -> str:
    """The pseudonym key's public fingerprint (SHA-256 under its own label, so it never equals a
    payload key id, and tells nothing of the key)."""
    return hashlib.sha256(b"casn-pseudonym-key-id:" + key).hexdigest()[:16]


class Keys:
    """Key material; `repr` never shows it, so a logged Keys leaks nothing.

    A key given as None was not given (a deployment without its variable): reading it raises
    MissingKeyError.
    """

    __slots__ = ("_held", "previous_payload_keys")

    def __init__(
        self,
        payload_key: bytes | None,
        pseudonym_key: bytes | None,
        signing_key: bytes | None,
        previous_payload_keys: tuple[bytes, ...] = (),
    ) -> None:
        self._held = {
            "payload_key": payload_key,
            "pseudonym_key": pseudonym_key,
            "signing_key": signing_key,
        }
        # Keys of earlier rotations: histories written under them still decrypt.
        self.previous_payload_keys = tuple(previous_payload_keys)

    @property
    def payload_key(self) -> bytes:
        """The AES-256-GCM key that encrypts every payload."""
        return self._get("payload_key")

    @property
    def pseudonym_key(self) -> bytes:
        """The HMAC key that turns a NIK into the registration number."""
        return self._get("pseudonym_key")

    @property
    def signing_key(self) -> bytes:
        """The Ed25519 seed that signs audit bundles."""
        return self._get("signing_key")

    def require(self, *names: str) -> None:
        """Raise MissingKeyError for the first of these keys (`payload_key`, ...) not given."""
        for name in names:
            self._get(name)

    def _get(self, name: str) -> bytes:
        key = self._held[name]
        if key is None:
            raise MissingKeyError(name)
        return key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Keys):
            return NotImplemented
        return (self._held, self.previous_payload_keys) == (
            other._held,
            other.previous_payload_keys,
        )

    def __hash__(self) -> int:
        return hash((tuple(self._held.values()), self.previous_payload_keys))

    def __repr__(self) -> str:
        held = [name for name, key in self._held.items() if key is not None]
        return f"Keys(held={held}, previous_payload_keys={len(self.previous_payload_keys)})"


def load_or_create_keys(settings: Settings) -> Keys:
    """Each key from its CASN_* setting (base64) if set; if not, in the embedded mode only, from
    <data_dir>/keys/ (mode 0600, a wider one narrowed), generated there once and reused by every
    later process.

    With CASN_TEMPORAL_ADDRESS set a key that is not set is missing (module docstring): never
    generated, and never read from data_dir either, where an earlier embedded run may have left
    a key of its own.
    """
    return Keys(
        payload_key=_key(settings, "payload_key"),
        pseudonym_key=_key(settings, "pseudonym_key"),
        signing_key=_key(settings, "signing_key"),
        previous_payload_keys=previous_payload_keys(settings),
    )


def previous_payload_keys(settings: Settings) -> tuple[bytes, ...]:
    """The payload keys of earlier rotations, from CASN_PAYLOAD_PREVIOUS_KEYS (comma-separated base64)."""
    entries = settings.payload_previous_keys.split(",")
    return tuple(
        _decode(entry.strip(), f"CASN_PAYLOAD_PREVIOUS_KEYS entry {number} of {len(entries)}")
        for number, entry in enumerate(entries, start=1)
        if entry.strip()
    )


def _key(settings: Settings, name: str) -> bytes | None:
    configured = getattr(settings, name)
    if configured:
        return _decode(configured, VARIABLES[name])
    if not settings.embedded_temporal:
        return None
    path = Path(settings.data_dir) / "keys" / f"{name}.b64"
    if not path.exists():
        _create(path)
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)  # copied or restored with a wider mode: the key is for its owner alone
        log.warning("key file narrowed to mode 0600", key_file=str(path))
    return _decode(path.read_text().strip(), str(path))


def _decode(text: str, source: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidKeyError(f"{source} is not valid base64: {err}") from None
    if len(raw) != KEY_BYTES:
        raise InvalidKeyError(
            f"{source} holds {len(raw)} bytes; it must be base64 of exactly {KEY_BYTES} bytes "
            f"(make one with: {MAKE_ONE})"
        )
    return raw


def _create(path: Path) -> None:
    """Write a fresh key atomically; if another process won the race, keep its key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
            log.info("key generated", key_file=str(path))
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
