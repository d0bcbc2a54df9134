"""What every request of the gateway needs, built once per process and kept on `app.state`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
from fastapi import Request
from fastapi.templating import Jinja2Templates
from temporalio.client import WorkflowExecutionStatus

from client.api import RecruitmentApi
from client.panels import CandidateDirectory
from client.status import ApplicantView, StateCache, applicant_view
from domain.config import RoundConfig
from domain.messages import RoundState
from domain.signing import Signer
from gateway.limits import RateLimiter
from gateway.public_cache import AnswerCache
from runtime.attributes import RECRUITMENT_STAGE
from runtime.logs import get_logger
from runtime.sealed import ColumnCipher
from runtime.settings import Settings

log = get_logger("gateway")

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
API_KEY_PREFIX = "sha256:"
SHEETS_PER_MINUTE = 30  # panel sheets per panellist and gateway process
# What the journeys still await (client/outstanding.py: a history read per applicant at the stage),
# per operator and gateway process: the committee reads it before each close, not in a loop.
OUTSTANDING_PER_MINUTE = 6


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
    def load(cls, path: Path, setting: str = "gateway_api_keys_file") -> ApiKeys:
        """The TOML table `identity = "sha256:<hex>"`; a malformed line names itself, and the
        error names `setting` (the codec server's auditors file has the same form)."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise GatewayConfigError(f"{setting} {path}: no such file") from None
        return cls.parse(raw, path, setting)

    @classmethod
    def parse(cls, raw: bytes, path: Path, setting: str = "gateway_api_keys_file") -> ApiKeys:
        """The keys of the file `path` whose content is `raw` (ApiKeys.load)."""
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise GatewayConfigError(f"{setting} {path}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise GatewayConfigError(f"{setting} {path}: not TOML ({exc})") from None
        by_digest: dict[str, str] = {}
        for identity, digests in doc.items():
            for digest in [digests] if isinstance(digests, str) else digests:
                hexpart = str(digest).removeprefix(API_KEY_PREFIX)
                if not str(digest).startswith(API_KEY_PREFIX) or len(hexpart) != 64:
                    raise GatewayConfigError(
                        f"{setting} {path}: {identity} = {str(digest)[:20]!r} is not "
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


KEYS_CHECK_SECONDS = 1.0  # how often a gateway process looks whether its API keys file changed


@dataclass
class ApiKeyFile:
    """The API keys of `CASN_GATEWAY_API_KEYS_FILE`, read again whenever the file changes: a key
    taken out of the file (revoked: lost, stolen, its holder gone) opens nothing from the next
    request on, and a key added works at once, with no restart of the gateways.

    The file is read at most every `check_every` seconds per process, and its keys taken again
    when its content changed (its SHA-256: the file is a few hundred lines at most). Not by its
    modification time, size and inode: a copy over it that keeps the time (cp -p, install -p) of a
    file whose time a build fixed, with one digest replaced by another, changes none of the three,
    and the revoked key stayed good. An edit that cannot be read (not TOML, a line that is not a
    digest, the file gone) leaves the keys read before in force and is logged as an error, naming
    the file and the line, until the file is mended: a typo must not shut every service out at a
    deadline, and the error says the revocation has not been made."""

    path: Path
    check_every: float = KEYS_CHECK_SECONDS
    _keys: ApiKeys = field(default_factory=ApiKeys, init=False, repr=False)
    _seen: bytes = field(default=b"", init=False, repr=False)  # the SHA-256 of the content read
    _checked: float = field(default=float("-inf"), init=False, repr=False)

    def __post_init__(self) -> None:
        # The first read is the start's: a file that cannot be read stops the gateway.
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise GatewayConfigError(f"gateway_api_keys_file {self.path}: no such file") from None
        self._keys = ApiKeys.parse(raw, self.path)
        self._seen = hashlib.sha256(raw).digest()
        self._checked = time.monotonic()

    def current(self) -> ApiKeys:
        """The keys in force now (the file read again first, if it changed)."""
        now = time.monotonic()
        if now - self._checked < self.check_every:
            return self._keys
        self._checked = now
        try:
            raw = self.path.read_bytes()
            seen = hashlib.sha256(raw).digest()
            if seen == self._seen:
                return self._keys
            keys = ApiKeys.parse(raw, self.path)
        except (OSError, GatewayConfigError) as exc:
            log.error(
                "API keys file not read again: the keys read before stay in force",
                path=str(self.path),
                error=str(exc),
            )
            return self._keys
        self._keys, self._seen = keys, seen
        log.info(
            "API keys file read again",
            path=str(self.path),
            identities=len(set(keys.by_digest.values())),
            keys=len(keys.by_digest),
        )
        return keys

    @property
    def by_digest(self) -> dict[str, str]:
        """The digests in force now, with their identities."""
        return self.current().by_digest

    def identity_of(self, api_key: str) -> str | None:
        """The identity holding `api_key` now, or None (ApiKeys.identity_of)."""
        return self.current().identity_of(api_key)


@dataclass(frozen=True)
class RoundListing:
    """A round as the visibility store lists it."""

    round_id: str
    phase: str
    running: bool
    started: datetime


def _retrieved(future: asyncio.Future) -> None:
    """Mark a shared query's failure as seen: its waiters may all have stopped waiting."""
    if not future.cancelled():
        future.exception()


@dataclass
class RoundDirectory:
    """The rounds the gateway serves: their rules (fixed at creation) and their state (cached
    for a few seconds, so a busy portal does not query the round on every page)."""

    api: RecruitmentApi
    state_ttl: float = 5.0
    unknown_ttl: float = 60.0
    relist_after: float = 1.0
    _configs: dict[str, RoundConfig] = field(default_factory=dict)
    _unknown: dict[str, float] = field(default_factory=dict)  # round id -> when it failed
    _states: dict[str, tuple[float, RoundState]] = field(default_factory=dict)
    _asking: dict[str, asyncio.Future[RoundState]] = field(default_factory=dict)  # in flight
    _listing: tuple[float, list[RoundListing]] = (0.0, [])
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def config(self, round_id: str) -> RoundConfig:
        """The round's rules; RefusedError (client.api) when there is no such round."""
        if round_id not in self._configs:
            self._configs[round_id] = await self.api.round_config(round_id)
        return self._configs[round_id]

    async def config_if_known(self, round_id: str) -> RoundConfig | None:
        """The round's rules for a page anyone may open, or None when they cannot be read (no
        such round, or the engine unreachable); a round that could not be read is not asked for
        again for `unknown_ttl` seconds, so that anonymous requests cannot make the gateway ask
        the Temporal server for the same missing round at their own rate. Only rounds with
        publications are asked for (gateway/public.py), so this holds no more than they are."""
        if round_id in self._configs:
            return self._configs[round_id]
        failed_at = self._unknown.get(round_id)
        if failed_at is not None and time.monotonic() - failed_at < self.unknown_ttl:
            return None
        try:
            config = await self.config(round_id)
        except Exception as exc:  # noqa: BLE001 - no such round, or the engine is unreachable
            self._unknown[round_id] = time.monotonic()
            log.info("round config unavailable", round_id=round_id, error=type(exc).__name__)
            return None
        self._unknown.pop(round_id, None)
        return config

    async def state(self, round_id: str, timeout: float | None = None) -> RoundState:
        """The round's phase and schedule with its extensions, at most `state_ttl` seconds old.

        A query is answered by a worker: with `timeout`, a round no worker answers for raises
        TimeoutError after that many seconds instead of holding the page."""
        cached = self._states.get(round_id)
        if cached and time.monotonic() - cached[0] < self.state_ttl:
            return cached[1]
        # One query per round at a time: the pages that find the state stale while it is being
        # asked for wait for that answer (or its failure), instead of each asking the round's
        # worker again, at the page rate, at the moment registration opens. A caller's timeout
        # ends its own wait, not the query the others wait on.
        asking = self._asking.get(round_id)
        if asking is None or asking.done():
            asking = asyncio.ensure_future(self._ask_state(round_id))
            asking.add_done_callback(_retrieved)
            self._asking[round_id] = asking
        return await asyncio.wait_for(asyncio.shield(asking), timeout)

    async def _ask_state(self, round_id: str) -> RoundState:
        try:
            state = await self.api.round_state(round_id)
            self._states[round_id] = (time.monotonic(), state)
            return state
        finally:
            self._asking.pop(round_id, None)

    async def listing(self, max_age: float = 30.0) -> list[RoundListing]:
        """Every round on the namespace, newest first, with its phase as the round last set it
        (its RecruitmentStage search attribute): read from Temporal's visibility store, so
        listing asks no worker anything. Kept for `max_age` seconds; callers waiting while one
        reads it take what that one read."""
        at, rounds = self._listing
        if time.monotonic() - at < max_age and rounds:
            return rounds
        async with self._lock:
            if self._listing[0] > at:  # read by another caller meanwhile
                return self._listing[1]
            found = []
            async for wf in self.api.client.list_workflows("CasnKind = 'round'"):
                stage = wf.typed_search_attributes.get(RECRUITMENT_STAGE)
                found.append(
                    RoundListing(
                        round_id=wf.id.removesuffix("/round"),
                        phase=stage or "",
                        running=wf.status == WorkflowExecutionStatus.RUNNING,
                        started=wf.start_time,
                    )
                )
            rounds = sorted(found, key=lambda r: r.started, reverse=True)
            self._listing = (time.monotonic(), rounds)
            return rounds

    async def is_listed(self, round_id: str) -> bool:
        """Whether `round_id` is a round on the namespace, for a page anyone may open with any id:
        a round whose rules are held, or one on the listing. For an id not on it the listing is
        read again once it is `relist_after` seconds old, the request waiting until then, and every
        request waiting meanwhile takes that one reading: made-up ids, however many and however
        fast, cost the Temporal server one listing per `relist_after` seconds and no question about
        any of them, and a round created since the last reading is found within that time."""
        if round_id in self._configs:
            return True
        if any(r.round_id == round_id for r in await self.listing()):
            return True
        wait = self.relist_after - (time.monotonic() - self._listing[0])
        if wait > 0:
            await asyncio.sleep(wait)
        rounds = await self.listing(max_age=self.relist_after)
        return any(r.round_id == round_id for r in rounds)

    async def round_ids(self) -> list[str]:
        """Every round on the namespace, newest first."""
        return [r.round_id for r in await self.listing()]


@dataclass
class Gateway:
    """The gateway's connections and configuration."""

    settings: Settings
    api: RecruitmentApi  # signs with the portal's key only
    pool: asyncpg.Pool
    api_keys: ApiKeys | ApiKeyFile  # the file's, read again when it changes (ApiKeyFile)
    portal: Signer | None
    rounds: RoundDirectory
    # The journeys' last states, for the status page (client/status.py); none kept by default.
    states: StateCache = field(default_factory=lambda: StateCache(0))
    # The payload keys' cipher, to read results kept as pages when an announcement is drafted
    # (client/standings.py); None: a round whose results are pages cannot be announced here.
    cipher: ColumnCipher | None = None
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=str(TEMPLATES))
    )
    # Made from the rest (__post_init__): applicant lookups per operator identity
    # (CASN_LOOKUP_RATE_PER_MINUTE), registrations through the service API per API key identity
    # (CASN_REGISTRATION_RATE_PER_MINUTE), panel sheets per panellist, the public lookups per client
    # address (CASN_PUBLIC_LOOKUP_RATE_PER_MINUTE), and the candidate codes of blind
    # panel reports, resolved with this gateway's pseudonym key from the read model's panels
    # (client/panels.py); and the public announcements' answers (CASN_PUBLICATION_CACHE_MB).
    lookup_limit: RateLimiter = field(init=False)
    registration_limit: RateLimiter = field(init=False)
    sheet_limit: RateLimiter = field(init=False)
    outstanding_limit: RateLimiter = field(init=False)
    public_lookup_limit: RateLimiter = field(init=False)
    candidates: CandidateDirectory = field(init=False)
    publications: AnswerCache = field(init=False)

    def __post_init__(self) -> None:
        self.lookup_limit = RateLimiter(self.settings.lookup_rate_per_minute)
        self.registration_limit = RateLimiter(self.settings.registration_rate_per_minute)
        self.sheet_limit = RateLimiter(SHEETS_PER_MINUTE)
        self.outstanding_limit = RateLimiter(OUTSTANDING_PER_MINUTE)
        self.public_lookup_limit = RateLimiter(self.settings.public_lookup_rate_per_minute)
        self.candidates = CandidateDirectory(self.pool, self.api)
        self.publications = AnswerCache(self.settings.publication_cache_mb * 1024 * 1024)

    async def applicant_status(
        self, round_id: str, applicant_id: str, config: RoundConfig
    ) -> ApplicantView:
        """An applicant's status, as the portal shows it and an operator looks it up: the round
        from the directory, the journey through the status cache (a journey unchanged since it was
        last read costs a describe, no query). UnknownError for no such applicant."""
        return await applicant_view(
            self.api,
            round_id,
            applicant_id,
            config=config,
            state=await self.rounds.state(round_id),
            cache=self.states,
        )


async def gateway(request: Request) -> Gateway:
    """The gateway of the app serving `request` (FastAPI dependency; async, because FastAPI
    runs a plain function dependency in a thread pool, a thread hop on every request)."""
    return request.app.state.gateway
