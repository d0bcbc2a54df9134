"""Who a portal visitor is: applicant accounts (an argon2id password hash per registration
number), server-side sessions, and the tokens every form carries against cross-site requests.

Nothing here holds a NIK, a name or a password in the clear: an account is keyed by the round
and the registration number (a pseudonym), a session by the SHA-256 of its random token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD = 8
MAX_PASSWORD = 128
SESSION_TTL = timedelta(hours=8)
FORM_TOKEN_TTL = timedelta(hours=4)  # long enough to fill the registration form on a phone
CLOCK_SKEW = 60  # seconds a token may seem to come from the future (issued by another process)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class Session:
    """A logged-in applicant: whose account, until when, and the digest the session is known by."""

    round_id: str
    applicant_id: str
    expires_at: datetime
    token_sha256: bytes

    @property
    def binding(self) -> str:
        """What this session's form tokens are tied to."""
        return "session:" + self.token_sha256.hex()


@dataclass
class Accounts:
    """The portal's accounts and sessions in PostgreSQL.

    `hasher` is argon2-cffi's PasswordHasher (argon2id with the library's current parameters);
    a login re-hashes a password stored under other parameters. Hashing runs in a thread, since
    one argon2id hash takes tens of milliseconds of CPU by design."""

    pool: asyncpg.Pool
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    session_ttl: timedelta = SESSION_TTL
    _dummy: str | None = field(default=None, init=False, repr=False)

    async def hash(self, password: str) -> str:
        """The password's argon2id hash (a new salt each time)."""
        return await asyncio.to_thread(self.hasher.hash, password)

    async def create(self, round_id: str, applicant_id: str, password_hash: str) -> bool:
        """Store a new account; False (and nothing changed) when the number already has one."""
        async with self.pool.acquire() as conn:
            created = await conn.fetchval(
                "INSERT INTO portal_accounts (round_id, applicant_id, password_hash) "
                "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true",
                round_id,
                applicant_id,
                password_hash,
            )
        return bool(created)

    async def discard(self, round_id: str, applicant_id: str, password_hash: str) -> None:
        """Remove an account created a moment ago (by its own hash, so never another's) whose
        registration the engine then refused."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM portal_accounts "
                "WHERE round_id = $1 AND applicant_id = $2 AND password_hash = $3",
                round_id,
                applicant_id,
                password_hash,
            )

    async def exists(self, round_id: str, applicant_id: str) -> bool:
        """Whether the registration number has an account."""
        async with self.pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT true FROM portal_accounts WHERE round_id = $1 AND applicant_id = $2",
                    round_id,
                    applicant_id,
                )
            )

    async def check_password(self, round_id: str, applicant_id: str, password: str) -> bool:
        """Whether `password` is the account's. An unknown number costs the same hashing work
        as a wrong password, so the answer's timing does not tell which numbers have accounts.
        A hash made under other parameters than the hasher's is replaced on success."""
        async with self.pool.acquire() as conn:
            stored = await conn.fetchval(
                "SELECT password_hash FROM portal_accounts WHERE round_id = $1 AND applicant_id = $2",
                round_id,
                applicant_id,
            )
        if stored is None:
            await self._verify(await self._dummy_hash(), password)
            return False
        if not await self._verify(stored, password):
            return False
        if self.hasher.check_needs_rehash(stored):
            fresh = await self.hash(password)
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE portal_accounts SET password_hash = $4, rehashed_at = now() "
                    "WHERE round_id = $1 AND applicant_id = $2 AND password_hash = $3",
                    round_id,
                    applicant_id,
                    stored,
                    fresh,
                )
        return True

    async def _verify(self, stored: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        return self._dummy

    async def open_session(self, round_id: str, applicant_id: str) -> tuple[str, Session]:
        """A new session for the account: its token (for the cookie only) and the session.
        Expired sessions are cleared on the way."""
        token = secrets.token_urlsafe(32)
        digest = _digest(token)
        expires = datetime.now(UTC) + self.session_ttl
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM portal_sessions WHERE expires_at < now()")
            await conn.execute(
                "INSERT INTO portal_sessions (token_sha256, round_id, applicant_id, expires_at) "
                "VALUES ($1, $2, $3, $4)",
                digest,
                round_id,
                applicant_id,
                expires,
            )
        return token, Session(round_id, applicant_id, expires, digest)

    async def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token, or None (no token, unknown, or expired)."""
        if not token or len(token) > 100:
            return None
        digest = _digest(token)
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT round_id, applicant_id, expires_at FROM portal_sessions "
                "WHERE token_sha256 = $1 AND expires_at > now()",
                digest,
            )
        if row is None:
            return None
        return Session(row["round_id"], row["applicant_id"], row["expires_at"], digest)

    async def close_session(self, session: Session) -> None:
        """End a session (logout): its token opens nothing any more."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM portal_sessions WHERE token_sha256 = $1", session.token_sha256
            )


def new_browser_id() -> str:
    """The random value of the pre-session cookie that anonymous forms' tokens are tied to."""
    return secrets.token_urlsafe(24)


def browser_binding(browser_id: str) -> str:
    """What an anonymous visitor's form tokens are tied to: their pre-session cookie."""
    return "browser:" + _digest(browser_id).hex()


@dataclass(frozen=True)
class FormTokens:
    """Tokens against cross-site request forgery, one per rendered form.

    A token is `<issued>.<nonce>.<mac>`: the MAC (HMAC-SHA256 under `key`) covers the form's
    purpose, the time it was issued, a random nonce and the binding (the visitor's pre-session
    cookie, or their session), so a token made for one visitor or one form is worth nothing
    for another, and a page from another site cannot make one. The nonce names what the form
    sends (`report_id`), so submitting the same form twice is one report, not two."""

    key: bytes
    ttl: timedelta = FORM_TOKEN_TTL

    @classmethod
    def derived_from(cls, secret: bytes) -> FormTokens:
        """Tokens keyed by a key derived (HMAC with a fixed label) from a secret every gateway
        process of the deployment holds, so any process accepts another's tokens."""
        return cls(hmac.new(secret, b"casn portal form tokens v1", hashlib.sha256).digest())

    def _mac(self, binding: str, purpose: str, issued: str, nonce: str) -> str:
        message = "\x00".join((binding, purpose, issued, nonce)).encode()
        return _b64(hmac.new(self.key, message, hashlib.sha256).digest())

    def issue(self, binding: str, purpose: str, now: float | None = None) -> str:
        """A new token for one form of `purpose`, tied to `binding`."""
        issued = format(int(now if now is not None else time.time()), "x")
        nonce = _b64(secrets.token_bytes(16))
        return f"{issued}.{nonce}.{self._mac(binding, purpose, issued, nonce)}"

    def nonce(self, token: str, binding: str, purpose: str, now: float | None = None) -> str | None:
        """The token's nonce when it is valid for `binding` and `purpose` and not expired,
        else None."""
        parts = (token or "").split(".")
        if len(parts) != 3 or len(token) > 200:
            return None
        issued, nonce, mac = parts
        # As bytes: compare_digest of str raises TypeError on a non-ASCII character (a 500).
        if not hmac.compare_digest(
            mac.encode(), self._mac(binding, purpose, issued, nonce).encode()
        ):
            return None
        try:
            age = (now if now is not None else time.time()) - int(issued, 16)
        except ValueError:
            return None
        if not -CLOCK_SKEW <= age <= self.ttl.total_seconds():  # another process's clock
            return None
        return nonce


def report_id_for(kind: str, nonce: str) -> str:
    """The report_id of what a form sends: the same form submitted twice sends one report."""
    return f"portal-{kind}-{hashlib.sha256(nonce.encode()).hexdigest()[:24]}"
