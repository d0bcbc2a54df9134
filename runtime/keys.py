"""The project's secrets: from the settings when given, else generated once under data_dir."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from runtime.logs import get_logger
from runtime.settings import Settings

log = get_logger(__name__)

KEY_BYTES = 32


class InvalidKeyError(ValueError):
    """A configured key is not valid base64 of the expected length."""


@dataclass(frozen=True)
class Keys:
    """Key material; `repr` never shows it, so a logged Keys leaks nothing."""

    payload_key: bytes = field(repr=False)
    pseudonym_key: bytes = field(repr=False)
    signing_key: bytes = field(repr=False)
    # Keys of earlier rotations: histories written under them still decrypt.
    previous_payload_keys: tuple[bytes, ...] = field(default=(), repr=False)


def load_or_create_keys(settings: Settings) -> Keys:
    """Each key from its CASN_* setting (base64) if set, else from <data_dir>/keys/ (mode 0600).

    A missing key file is generated once and reused by every later process; generated keys
    suit one machine only: a scale-out deployment must set the CASN_*_KEY variables.
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


def _key(settings: Settings, name: str) -> bytes:
    configured = getattr(settings, name)
    if configured:
        return _decode(configured, f"CASN_{name.upper()}")
    path = Path(settings.data_dir) / "keys" / f"{name}.b64"
    if not path.exists():
        _create(path)
    return _decode(path.read_text().strip(), str(path))


def _decode(text: str, source: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidKeyError(f"{source} is not valid base64: {err}") from None
    if len(raw) != KEY_BYTES:
        raise InvalidKeyError(
            f"{source} holds {len(raw)} bytes; it must be base64 of exactly {KEY_BYTES} bytes "
            f"(make one with: python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())')"
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
