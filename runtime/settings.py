"""One settings object, read from the environment (prefix CASN_) and an optional .env file."""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "CASN_"


class LogFormat(StrEnum):
    """How log lines are written: `auto` is readable on a terminal and JSON otherwise."""

    AUTO = "auto"
    CONSOLE = "console"
    JSON = "json"


# The settings that turn TLS on for the Temporal client, and their variables.
TEMPORAL_TLS = {
    "temporal_tls_ca_file": "CASN_TEMPORAL_TLS_CA_FILE",
    "temporal_tls_cert_file": "CASN_TEMPORAL_TLS_CERT_FILE",
    "temporal_tls_key_file": "CASN_TEMPORAL_TLS_KEY_FILE",
    "temporal_tls_server_name": "CASN_TEMPORAL_TLS_SERVER_NAME",
}


class Settings(BaseSettings):
    """Everything the engine reads from its environment.

    An unset `temporal_address` or `database_url` means "embedded": the project starts its own
    Temporal dev server or PostgreSQL under `data_dir`.
    """

    model_config = SettingsConfigDict(
        env_prefix="CASN_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # pydantic's own message would repeat the value: a key's first characters among them.
        # describe_settings_error says which variable, with its value when it is no secret.
        hide_input_in_errors=True,
    )

    temporal_address: str | None = Field(
        default=None, description="host:port of a Temporal frontend; unset = embedded dev server"
    )
    # A name that is empty or has spaces at its ends reached the server as it was: an empty task
    # queue failed the first start with a traceback, an empty namespace read as an outage.
    temporal_namespace: str = Field(default="default", max_length=255)
    task_queue: str = Field(default="casn-recruitment", max_length=1000)
    database_url: str | None = Field(
        default=None,
        description="postgresql:// URL of the read model, as the runtime role (casn_runtime) "
        "that owns nothing; unset = embedded",
    )
    database_migration_url: str | None = Field(
        default=None,
        description="postgresql:// URL of the read model as the role that owns its schema, for "
        "`casn-worker migrate` only; never given to a worker or gateway",
    )
    data_dir: Path = Path(".data")
    log_format: LogFormat = LogFormat.AUTO
    log_level: str = "INFO"
    # Embedded servers: fixed ports so a second process finds the first one's servers.
    temporal_port: int = Field(default=7233, ge=1024, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=1024, le=65535)
    postgres_port: int = Field(default=55432, ge=1024, le=65535)
    # SQLite durability of the embedded Temporal server (see TEMPORAL.md).
    temporal_sqlite_synchronous: str = "normal"
    # Secrets. Unset = a key generated once under data_dir in the embedded mode (one machine);
    # with temporal_address set, an unset key is missing and a process that needs it stops with
    # an error naming the variable (runtime/keys.py): nothing is generated.
    payload_key: str | None = Field(
        default=None,
        description="base64 of 32 bytes: AES-256-GCM key for workflow payloads; "
        "required with CASN_TEMPORAL_ADDRESS",
    )
    payload_previous_keys: str = Field(
        default="",
        description="comma-separated base64 keys that payloads were encrypted with "
        "before the last rotations: decrypted, never used to encrypt",
    )
    pseudonym_key: str | None = Field(
        default=None,
        description="base64 key for the HMAC that turns a NIK into a registration number; "
        "required with CASN_TEMPORAL_ADDRESS by every client that registers or reports",
    )
    signing_key: str | None = Field(
        default=None,
        description="base64 Ed25519 private key (32 bytes) for audit bundles; "
        "required with CASN_TEMPORAL_ADDRESS by the commands that sign bundles",
    )
    # The HTTP gateway (serve.py): service API, applicant portal, public announcements.
    http_host: str = Field(default="127.0.0.1", description="address the gateway listens on")
    http_port: int = Field(default=8000, ge=1, le=65535, description="port of the gateway")
    http_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="largest request body; larger gets 413"
    )
    http_max_batch_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="largest body of a batch of reports (POST /api/v1/rounds/{round}/reports, "
        "up to 500 signed reports of a few hundred bytes each); larger gets 413",
    )
    gateway_api_keys_file: Path | None = Field(
        default=None,
        description='TOML file: identity = "sha256:<hex of the API key>" for each service '
        "that may call the service API; unset = <data_dir>/keys/api-keys.toml (embedded only)",
    )
    portal_identity: str = Field(
        default="sscasn-portal", description="the identity the portal signs its messages as"
    )
    portal_key_file: Path | None = Field(
        default=None,
        description="the portal identity's private key (starter.py keygen); unset = "
        "<data_dir>/keys/<portal_identity>.key.json (embedded only)",
    )
    portal_rate_per_minute: int = Field(
        default=20,
        ge=1,
        description="registrations and logins per client address, and a logged-in applicant's "
        "forms to the engine (sanggah, offer answers, withdrawals) per account, per minute",
    )
    gateway_trusted_proxies: str = Field(
        default="",
        description="comma-separated addresses or networks (CIDR) of the balancers in front of "
        "the gateway: from a peer among them, the client is the right-most X-Forwarded-For entry "
        "outside them; unset = trust none (the client is the TCP peer)",
    )
    lookup_rate_per_minute: int = Field(
        default=60,
        ge=1,
        le=100_000,
        description="applicant lookups per operator identity per minute and gateway process "
        "(POST /api/v1/rounds/{round}/lookups): a lookup by NIK tells whether a NIK registered",
    )
    registration_rate_per_minute: int = Field(
        default=3_000,
        ge=1,
        le=1_000_000,
        description="registrations through the service API (POST /api/v1/rounds/{round}/"
        "registrations) per API key identity per minute and gateway process, 429 beyond: "
        "the national design peak (50/s), so no legitimate caller is held back and one key "
        "that floods is",
    )
    public_lookup_rate_per_minute: int = Field(
        default=300,
        ge=1,
        le=100_000,
        description="lookups by registration number on the public pages "
        "(/pengumuman/{round}/cari?nomor=...) per client address (an IPv6 address by its /64) "
        "per minute and gateway process, 429 beyond; high, because a carrier-grade NAT puts "
        "many applicants behind one address on announcement day",
    )
    status_cache_size: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="journeys whose last state the portal keeps, answered again while their "
        "history has not grown (a describe instead of a query); 0 asks every time",
    )
    publication_cache_mb: int = Field(
        default=256,
        ge=0,
        le=65_536,
        description="MiB of public announcement answers (page, .json, .csv) each gateway process "
        "keeps, made once from the signed body and served again while it and the facts shown "
        "beside it are unchanged; 0 makes every answer again",
    )
    query_seconds: float = Field(
        default=15.0,
        ge=1.0,
        le=600.0,
        description="how long an operator command or the gateway waits for a workflow to answer "
        "a query before it says the engine did not answer (exit 3, or HTTP 503)",
    )
    notification_language: Literal["id", "en"] = Field(
        default="id",
        description="language of the notifications delivered to applicants: id (Indonesian) "
        "or en (English)",
    )
    # The decode-only codec server for the Temporal Web UI (audit.py serve-codec).
    codec_host: str = Field(default="127.0.0.1", description="address the codec server listens on")
    codec_port: int = Field(default=8088, ge=1, le=65535, description="port of the codec server")
    codec_auditors_file: Path | None = Field(
        default=None,
        description='TOML file: identity = "sha256:<hex of the token>" for each auditor who may '
        "decode payloads; unset = <data_dir>/keys/auditors.toml (embedded only)",
    )
    codec_cors_origins: str = Field(
        default="",
        description="comma-separated origins of the Temporal Web UI allowed to call the codec "
        "server (e.g. https://temporal-ui.example.go.id); unset = the embedded UI's origin",
    )
    # TLS to an external Temporal frontend (mTLS with a client certificate and its key).
    temporal_tls_ca_file: Path | None = Field(
        default=None, description="PEM of the CA that signed the Temporal frontend's certificate"
    )
    temporal_tls_cert_file: Path | None = Field(
        default=None,
        description="PEM client certificate for mTLS (with CASN_TEMPORAL_TLS_KEY_FILE)",
    )
    temporal_tls_key_file: Path | None = Field(
        default=None, description="PEM private key of CASN_TEMPORAL_TLS_CERT_FILE"
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="the name the frontend's certificate is checked against"
    )
    # The read model's connection: TLS and a password kept out of CASN_DATABASE_URL.
    database_sslmode: (
        Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = Field(default=None, description="libpq sslmode of the read model's connections")
    database_sslrootcert: Path | None = Field(
        default=None, description="PEM of the CA that signed the database server's certificate"
    )
    database_password_file: Path | None = Field(
        default=None,
        description="file holding the read model's database password (CASN_DATABASE_URL without one)",
    )
    database_migration_password_file: Path | None = Field(
        default=None,
        description="file holding the schema owner's password (CASN_DATABASE_MIGRATION_URL "
        "without one)",
    )
    worker_max_cached_workflows: int = Field(default=10_000, ge=0)
    worker_sticky_schedule_to_start_seconds: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="seconds a workflow task waits for the worker that has its workflow cached "
        "before any worker takes it (replaying the history): bounds the stall after a worker "
        "dies holding cached journeys (the SDK's default is 10)",
    )
    # Observability (runtime/metrics.py, runtime/telemetry.py).
    metrics_host: str = Field(
        default="127.0.0.1",
        description="address the worker and the notification deliverer serve /metrics, /healthz "
        "and /readyz on",
    )
    metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="port of the worker's /metrics, /healthz and /readyz; 0 = not served "
        "(the gateway serves them on CASN_HTTP_PORT)",
    )
    deliverer_metrics_port: int = Field(
        default=9465,
        ge=0,
        le=65535,
        description="port of the notification deliverer's /metrics, /healthz and /readyz "
        "(worker.py deliver-notifications, on CASN_METRICS_HOST); 0 = not served. Apart from "
        "CASN_METRICS_PORT so that a worker and a deliverer run side by side on one machine",
    )
    metrics_read_model_interval: float = Field(
        default=60.0,
        ge=0,
        description="seconds between this process's reads of casn_journeys and "
        "casn_notification_outbox from the read model (a count over every applicant row); "
        "0 = this process does not report them",
    )
    tracing: bool = Field(
        default=False,
        description="trace workflows and activities with OpenTelemetry "
        "(needs the tracing extra: opentelemetry-sdk)",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/gRPC endpoint the spans go to when tracing (needs "
        "opentelemetry-exporter-otlp-proto-grpc); unset = each span is one log line",
    )
    worker_max_concurrent_activities: int = Field(default=100, ge=1)
    # Worker tuning for registration bursts and deadline peaks (issue 17; docs/OPERATIONS.md,
    # "Worker tuning"). A new journey's first task waits on the task queue's non-sticky pollers
    # unless it starts eagerly; the SDK's 5 pollers at ratio 0.2 leave one.
    worker_workflow_task_pollers: int = Field(
        default=5,
        ge=2,
        le=1000,
        description="most long polls for workflow tasks at once (sticky and non-sticky together)",
    )
    worker_nonsticky_to_sticky_poll_ratio: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="share of the workflow-task polls that go to the shared queue, where new "
        "journeys' first tasks and evicted ones wait; the rest poll this worker's sticky queue",
    )
    worker_max_concurrent_workflow_tasks: int = Field(
        default=100, ge=2, le=10_000, description="workflow tasks processed at once"
    )
    worker_sticky_reserved_workflow_slots: int = Field(
        default=10,
        ge=1,
        description="workflow-task slots that new journeys (shared-queue polls, eager starts) "
        "may not take: kept for cached workflows, among them the round, whose query every new "
        "journey's first task waits on (runtime/slots.py); below "
        "CASN_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS",
    )
    broadcast_backlog_limit: int = Field(
        default=1_000,
        ge=0,
        le=1_000_000,
        description="workflow tasks waiting in the task queue above which an announcement's "
        "broadcast holds its signals back until the workers catch up (0: never)",
    )
    worker_max_concurrent_local_activities: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="local activities (read-model writes, the round's view) running at once",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_variable(cls, data: object) -> object:
        """A CASN_* variable that nothing reads is refused, naming it and the nearest known one:
        ignored, a misspelt payload key's variable would leave the key unset, or generated."""
        env_file = cls.model_config.get("env_file")
        problems = unknown_variables(
            os.environ, Path(env_file) if isinstance(env_file, str) else None
        )
        if problems:
            raise ValueError("\n".join(problems))
        return data

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        levels = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        if value.upper() not in levels:
            raise ValueError(f"log_level {value!r} is not one of {sorted(levels)}")
        return value.upper()

    @field_validator("temporal_namespace", "task_queue")
    @classmethod
    def _a_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty: give the name, or leave the variable unset for the default")
        if value != value.strip():
            raise ValueError("has spaces at its start or end, which the server would keep")
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        # pydantic reads "" as Path("."): keys and a database cluster made wherever the command
        # happened to run.
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty: give the folder the engine keeps its data in")
        return value

    @field_validator("data_dir")
    @classmethod
    def _a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(
                "is a file, not a folder: give the folder the engine keeps its data in"
            )
        return value

    @field_validator("temporal_address")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if not value:
            return value
        if "://" in value:
            raise ValueError(
                "give host:port, without a scheme: e.g. temporal.example.internal:7233"
            )
        if any(c.isspace() for c in value):
            raise ValueError("holds a space: give host:port, e.g. temporal.example.internal:7233")
        host, colon, port = value.rpartition(":")
        if not colon or not host or host == "[]":
            raise ValueError("give host:port, e.g. temporal.example.internal:7233")
        if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"port {port!r} is not a number 1-65535")
        return value

    @field_validator("database_url", "database_migration_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if not value:
            return value
        if any(c.isspace() for c in value):
            raise ValueError("holds a space: give postgresql://user@host:port/database")
        parts = urlsplit(value)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError(
                f"scheme {parts.scheme or '(none)'!r} is not postgresql: give "
                "postgresql://user@host:port/database"
            )
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number 0-65535
        except ValueError:
            raise ValueError(
                "the port is not a number 1-65535: give postgresql://user@host:port/database"
            ) from None
        if not parts.hostname and "host" not in parse_qs(parts.query):
            raise ValueError("names no host: give postgresql://user@host:port/database")
        if parts.port == 0:
            raise ValueError("port 0: give postgresql://user@host:port/database")
        return value

    @field_validator("gateway_trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        """Every entry an address or a network: a typo is refused by name when the settings are
        read, rather than trusting nobody (or, worse, too many) from the first request on."""
        return ",".join(str(n) for n in proxy_networks(value))

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """The balancers CASN_GATEWAY_TRUSTED_PROXIES names (gateway/clients.py)."""
        return proxy_networks(self.gateway_trusted_proxies)

    @field_validator("temporal_sqlite_synchronous")
    @classmethod
    def _known_sync(cls, value: str) -> str:
        allowed = {"off", "normal", "full"}
        if value.lower() not in allowed:
            raise ValueError(
                f"temporal_sqlite_synchronous {value!r} is not one of {sorted(allowed)}"
            )
        return value.lower()

    @model_validator(mode="after")
    def _sticky_reserve_below_total(self) -> Settings:
        """The slots kept for cached workflows leave at least one for new journeys."""
        if self.worker_sticky_reserved_workflow_slots >= self.worker_max_concurrent_workflow_tasks:
            raise ValueError(
                "CASN_WORKER_STICKY_RESERVED_WORKFLOW_SLOTS="
                f"{self.worker_sticky_reserved_workflow_slots} must be below "
                f"CASN_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS={self.worker_max_concurrent_workflow_tasks}: "
                "new journeys would get no workflow-task slot"
            )
        return self

    @model_validator(mode="after")
    def _transport_files(self) -> Settings:
        """TLS and password files exist, and a client certificate comes with its key."""
        files = {
            "CASN_TEMPORAL_TLS_CA_FILE": self.temporal_tls_ca_file,
            "CASN_TEMPORAL_TLS_CERT_FILE": self.temporal_tls_cert_file,
            "CASN_TEMPORAL_TLS_KEY_FILE": self.temporal_tls_key_file,
            "CASN_DATABASE_SSLROOTCERT": self.database_sslrootcert,
            "CASN_DATABASE_PASSWORD_FILE": self.database_password_file,
            "CASN_DATABASE_MIGRATION_PASSWORD_FILE": self.database_migration_password_file,
        }
        for variable, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{variable}={str(path)!r}: no such file")
        cert, key = self.temporal_tls_cert_file, self.temporal_tls_key_file
        if (cert is None) != (key is None):
            given, missing = (
                ("CASN_TEMPORAL_TLS_CERT_FILE", "CASN_TEMPORAL_TLS_KEY_FILE")
                if key is None
                else ("CASN_TEMPORAL_TLS_KEY_FILE", "CASN_TEMPORAL_TLS_CERT_FILE")
            )
            raise ValueError(
                f"{given}={str(cert or key)!r} is given without {missing}: mTLS needs the "
                "client certificate and its private key"
            )
        tls = [name for name in TEMPORAL_TLS if getattr(self, name) is not None]
        if tls and not self.temporal_address:
            raise ValueError(
                f"{TEMPORAL_TLS[tls[0]]}={str(getattr(self, tls[0]))!r} is for the Temporal "
                "frontend of CASN_TEMPORAL_ADDRESS, which is not set; the embedded dev server "
                "listens on 127.0.0.1 without TLS"
            )
        if self.database_password_file is not None and not self.database_url:
            raise ValueError(
                f"CASN_DATABASE_PASSWORD_FILE={str(self.database_password_file)!r} is for the "
                "database of CASN_DATABASE_URL, which is not set; the embedded PostgreSQL uses "
                "the password it generated under <data_dir>/keys"
            )
        self._migration_url_beside_database_url()
        return self

    def _migration_url_beside_database_url(self) -> None:
        """The owner's URL names the read model's database, and only with CASN_DATABASE_URL: the
        embedded PostgreSQL migrates as the owner it made itself."""
        migration, password_file = (
            self.database_migration_url,
            self.database_migration_password_file,
        )
        if password_file is not None and not migration:
            raise ValueError(
                f"CASN_DATABASE_MIGRATION_PASSWORD_FILE={str(password_file)!r} is for the owner "
                "of CASN_DATABASE_MIGRATION_URL, which is not set"
            )
        if not migration:
            return
        if not self.database_url:
            raise ValueError(
                f"CASN_DATABASE_MIGRATION_URL={_without_password(migration)!r} is for the "
                "database of CASN_DATABASE_URL, which is not set; the embedded PostgreSQL "
                "migrates as the owner role it made itself"
            )
        runtime_db = urlsplit(self.database_url).path.lstrip("/")
        owner_db = urlsplit(migration).path.lstrip("/")
        if runtime_db != owner_db:
            raise ValueError(
                f"CASN_DATABASE_MIGRATION_URL={_without_password(migration)!r} names the "
                f"database {owner_db or '(none)'!r}, but CASN_DATABASE_URL names "
                f"{runtime_db or '(none)'!r}: give the owner's URL of the read model's database"
            )
        if urlsplit(migration).username == urlsplit(self.database_url).username:
            raise ValueError(
                f"CASN_DATABASE_MIGRATION_URL={_without_password(migration)!r} names the same "
                "role as CASN_DATABASE_URL: the migrations run as the schema's owner, the "
                "processes as the runtime role (docs/OPERATIONS.md 1.1)"
            )

    @model_validator(mode="after")
    def _tracing_installed(self) -> Settings:
        """CASN_TRACING needs opentelemetry-sdk and CASN_OTLP_ENDPOINT its exporter: refused when
        the settings are read, not when the first client connects (runtime/telemetry.py)."""
        if self.tracing and not _importable("opentelemetry.sdk.trace"):
            raise ValueError(
                "CASN_TRACING=true needs opentelemetry-sdk, which is not installed: install the "
                "project's tracing extra (pip install '.[tracing]') or set CASN_TRACING=false"
            )
        exporter = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
        if self.tracing and self.otlp_endpoint and not _importable(exporter):
            raise ValueError(
                f"CASN_OTLP_ENDPOINT={self.otlp_endpoint!r} needs the package "
                "opentelemetry-exporter-otlp-proto-grpc, which is not installed: install it, or "
                "unset CASN_OTLP_ENDPOINT and the spans are logged"
            )
        return self

    @property
    def embedded_temporal(self) -> bool:
        """True when the project runs its own Temporal dev server."""
        return not self.temporal_address

    @property
    def development(self) -> bool:
        """The embedded single-machine mode: the portal's cookies may travel over plain HTTP."""
        return self.embedded_temporal

    @property
    def codec_endpoint(self) -> str:
        """The codec server's URL as the auditor's browser reaches it (the Web UI's codec
        endpoint in the embedded mode)."""
        host = "127.0.0.1" if self.codec_host in ("0.0.0.0", "::", "") else self.codec_host
        return f"http://{host}:{self.codec_port}"

    @property
    def embedded_postgres(self) -> bool:
        """True when the project runs its own PostgreSQL."""
        return not self.database_url


def proxy_networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """The networks of a comma-separated list of addresses and CIDR networks; ValueError naming
    CASN_GATEWAY_TRUSTED_PROXIES and the entry at fault. `*` is refused: trusting every peer
    would let any client choose the address its requests are counted by."""
    networks = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry, strict=True))
        except ValueError as exc:
            raise ValueError(
                f"CASN_GATEWAY_TRUSTED_PROXIES={text!r}: {entry!r} is not an IP address or a "
                f"network ({exc}); list the balancers' addresses or networks, e.g. "
                "10.0.0.5,10.1.0.0/16,fd00::/64"
            ) from None
    return tuple(networks)


# CASN_* variables that are read elsewhere than in Settings, and by what. Every other CASN_*
# variable in the environment or .env is refused (Settings._no_unknown_variable); a variable read
# anywhere in the project must be a setting or listed here (tests/test_settings_variables.py).
OTHER_VARIABLES = {
    "CASN_KEY_FILE": "starter.py: --key, the operator's signing key",
    "CASN_GATEWAY_URL": "starter.py: --gateway",
    "CASN_GATEWAY_API_KEY_FILE": "starter.py: --api-key-file, the caller's API key",
    "CASN_TEST_WORKERS": "run.py test: the number of test processes",
    "CASN_TEST_PORT_OFFSET": "tests/ports.py: the test session's port offset",
    "CASN_BENCH_PORT_OFFSET": "bench/common.py: the benchmark stack's port offset",
    "CASN_RECORD_AFTERMATH": "tests/flows/test_revocation.py, tests/timeskip/test_aftermath_keys.py"
    " and test_aftermath_continues.py: record tests/histories/aftermath-v1, "
    "aftermath-v2-keys and aftermath-v3-continues",
    "CASN_RECORD_SIGNALS_SPENT": "tests/flows/test_signal_flood.py: record "
    "tests/histories/signals-spent-v1",
    "CASN_SCREENSHOTS": "tests/web: where the browser tests write their screenshots",
}


def known_variables() -> frozenset[str]:
    """Every CASN_* variable the project reads: the settings' and OTHER_VARIABLES."""
    return frozenset(f"{PREFIX}{name.upper()}" for name in Settings.model_fields) | frozenset(
        OTHER_VARIABLES
    )


def unknown_variables(environ: Mapping[str, str], env_file: Path | None = None) -> list[str]:
    """One line per CASN_* variable of `environ` (and of `env_file`, a .env file, when it exists)
    that the project does not read, in the settings' error style: `CASN_<NAME>=<value>: <message>`, the
    value hidden when it may be a secret, and the nearest known variable when one is near.
    Names are compared without regard to case, as the settings read them."""
    given = [(name, value, "") for name, value in environ.items()]
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        given += [
            (name, value or "", f" (in {env_file})")
            for name, value in dotenv_values(env_file).items()
        ]
    known = known_variables()
    lines = []
    for name, value, where in sorted(given):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known:
            continue
        near = difflib.get_close_matches(
            upper.removeprefix(PREFIX), [k.removeprefix(PREFIX) for k in known], n=1, cutoff=0.6
        )
        suggestion = f"{PREFIX}{near[0]}" if near else None
        # A name near no known one says nothing of what its value is (a database password under a
        # name of its own): hidden too.
        secret = suggestion is None or any(_MAY_BE_SECRET.search(n) for n in (upper, suggestion))
        shown = "<hidden>" if secret else repr(_without_password(value))
        advice = (
            f"did you mean {suggestion}?"
            if suggestion
            else 'see README.md, "Configuration", for the variables'
        )
        lines.append(f"{name}={shown}{where}: not a variable this engine reads; {advice}")
    return lines


# Names of an unknown variable, or of the known one it is near, whose value is not shown.
_MAY_BE_SECRET = re.compile(r"KEY|PASS|SECRET|TOKEN|PWD|CREDENTIAL|PRIVATE|AUTH")
# A URL's query parameter that holds a password (libpq and asyncpg take `password=` there).
_PASSWORD_PARAMETER = re.compile(r"([?&][^=&#]*pass[^=&#]*=)[^&#]*", re.IGNORECASE)


def _without_password(text: str) -> str:
    """A URL's passwords replaced by ***: whatever stands between the user's name and the last @
    (a password may hold an unescaped / or @), and every query parameter named like a password
    (`?password=`, `sslpassword=`)."""
    scheme, sep, rest = text.partition("://")
    if sep:
        at = rest.rfind("@")
        user, colon, _ = rest[:at].partition(":") if at >= 0 else ("", "", "")
        if colon:
            rest = f"{user}:***{rest[at:]}"
        text = f"{scheme}{sep}{rest}"
    return _PASSWORD_PARAMETER.sub(r"\1***", text)


def _importable(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


# Settings whose values are secrets: their errors name the variable, never the value.
_SECRET = re.compile(r"(_key|_keys|password)$")


def _shown(field: str, value: object) -> str:
    """A setting's value as an error may show it: a key or password not at all, a database URL
    without its password."""
    if _SECRET.search(field):
        return "<hidden>"
    text = str(value)
    if field in ("database_url", "database_migration_url"):
        text = _without_password(text)  # user:password@host -> user:***@host
    return repr(text)


def describe_settings_error(exc: ValidationError) -> str:
    """A settings ValidationError as one line per problem, `CASN_<FIELD>=<value>: <message>`,
    never the value of a key or password (for every entry point: starter.py, audit.py,
    worker.py, serve.py)."""
    lines = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a check across settings: its message names them
            lines.append(message)
            continue
        field = str(err["loc"][0])
        variable = f"CASN_{field.upper()}"
        if err["type"] == "missing":
            lines.append(f"{variable}: {message}")
        else:
            lines.append(f"{variable}={_shown(field, err.get('input'))}: {message}")
    return "\n".join(lines)


def is_settings_error(exc: BaseException) -> bool:
    """Whether `exc` is the settings' ValidationError (not a message's)."""
    return isinstance(exc, ValidationError) and exc.title == Settings.__name__


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a bad value raises a ValidationError naming the variable and value."""
    return Settings(**overrides)  # type: ignore[arg-type]
