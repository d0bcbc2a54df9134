"""What every request of the gateway needs, built once per process and kept on `app.state`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from fastapi import Request
from fastapi.templating import Jinja2Templates

from client.api import RecruitmentApi
from domain.config import RoundConfig
from domain.messages import RoundState
from domain.signing import Signer
from runtime.settings import Settings

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
API_KEY_PREFIX = "sha256:"


class GatewayConfigError(ValueError):
    """A gateway setting or file that cannot be used; names the setting and the value."""


def api_key_digest(api_key: str) -> str:
    """How an API key is stored: only its SHA-256 (the key itself stays with the service)."""
    return API_KEY_PREFIX + hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeys:
    """Which identity each API key belongs to, known by the keys' digests only."""

    by_digest: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ApiKeys:
        """The TOML table `identity = "sha256:<hex>"`; a malformed line names itself."""
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GatewayConfigError(f"gateway_api_keys_file {path}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise GatewayConfigError(f"gateway_api_keys_file {path}: not TOML ({exc})") from None
        by_digest: dict[str, str] = {}
        for identity, digests in doc.items():
            for digest in [digests] if isinstance(digests, str) else digests:
                hexpart = str(digest).removeprefix(API_KEY_PREFIX)
                if not str(digest).startswith(API_KEY_PREFIX) or len(hexpart) != 64:
                    raise GatewayConfigError(
                        f"gateway_api_keys_file {path}: {identity} = {str(digest)[:20]!r} is not "
                        '"sha256:<64 hex digits>"'
                    )
                by_digest[str(digest)] = identity
        return cls(by_digest)

    def identity_of(self, api_key: str) -> str | None:
        """The identity holding `api_key`, or None. Compared by digest in constant time."""
        wanted = api_key_digest(api_key)
        found = None
        for digest, identity in self.by_digest.items():
            if hmac.compare_digest(digest, wanted):
                found = identity
        return found


@dataclass
class RoundDirectory:
    """The rounds the gateway serves: their rules (fixed at creation) and their state (cached
    for a few seconds, so a busy portal does not query the round on every page)."""

    api: RecruitmentApi
    state_ttl: float = 5.0
    _configs: dict[str, RoundConfig] = field(default_factory=dict)
    _states: dict[str, tuple[float, RoundState]] = field(default_factory=dict)
    _ids: tuple[float, list[str]] = (0.0, [])
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def config(self, round_id: str) -> RoundConfig:
        """The round's rules; RefusedError (client.api) when there is no such round."""
        if round_id not in self._configs:
            self._configs[round_id] = await self.api.round_config(round_id)
        return self._configs[round_id]

    async def state(self, round_id: str) -> RoundState:
        """The round's phase and schedule with its extensions, at most `state_ttl` seconds old."""
        cached = self._states.get(round_id)
        if cached and time.monotonic() - cached[0] < self.state_ttl:
            return cached[1]
        state = await self.api.round_state(round_id)
        self._states[round_id] = (time.monotonic(), state)
        return state

    async def round_ids(self) -> list[str]:
        """Every round on the namespace, newest first (from Temporal's visibility store)."""
        at, ids = self._ids
        if time.monotonic() - at < 30 and ids:
            return ids
        async with self._lock:
            found: list[tuple[str, str]] = []
            async for wf in self.api.client.list_workflows("CasnKind = 'round'"):
                found.append((wf.start_time.isoformat(), wf.id))
            ids = [wid.removesuffix("/round") for _, wid in sorted(found, reverse=True)]
            self._ids = (time.monotonic(), ids)
            return ids


@dataclass
class Gateway:
    """The gateway's connections and configuration."""

    settings: Settings
    api: RecruitmentApi  # signs with the portal's key only
    pool: asyncpg.Pool
    api_keys: ApiKeys
    portal: Signer | None
    rounds: RoundDirectory
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=str(TEMPLATES))
    )


async def gateway(request: Request) -> Gateway:
    """The gateway of the app serving `request` (FastAPI dependency; async, because FastAPI
    runs a plain function dependency in a thread pool, a thread hop on every request)."""
    return request.app.state.gateway
