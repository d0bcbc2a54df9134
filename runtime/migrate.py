"""Versioned SQL migrations for the read model: runtime/migrations/NNN_name.sql, applied in order.

Each file runs in its own transaction together with its row in `schema_migrations`; a
PostgreSQL advisory lock makes concurrent runs take turns, so each file runs once. They run as the
role that owns the schema (`casn-worker migrate`, or the embedded stack as its owner role); the
workers connect as RUNTIME_ROLE and the gateways as the narrower GATEWAY_ROLE, which own nothing,
and only check that the schema holds every migration they know (check_schema).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from runtime.logs import get_logger

log = get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed 64-bit number; it names "the CASN migration lock" among advisory locks.
ADVISORY_LOCK_ID = 0x4341_534E_4D49_4752  # "CASNMIGR"
# The role the processes connect as (or a role it is granted to): granted by the migrations
# (022_runtime_role and after) what the processes do, no more; it owns nothing.
RUNTIME_ROLE = "casn_runtime"
MIGRATE_COMMAND = "casn-worker migrate (python worker.py migrate)"
RUNTIME_GRANTS = 22  # the migration that grants RUNTIME_ROLE its privileges: 022_runtime_role
# The role the gateway connects as (or a role it is granted to): the internet-facing process may
# read what its pages show and write only its own tables (023_gateway_role), never rewrite or
# delete a projection or a decision as the workers do.
GATEWAY_ROLE = "casn_gateway"
GATEWAY_GRANTS = 23  # the migration that grants GATEWAY_ROLE its privileges: 023_gateway_role
# What each role is for, in the errors that name it.
_USED_BY = {RUNTIME_ROLE: "the workers and the operators' commands", GATEWAY_ROLE: "the gateways"}
_FILE_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations on disk and the ones recorded in the database disagree."""


class SchemaBehindError(MigrationError):
    """The read model's schema lacks migrations this code needs: its owner must apply them."""


@dataclass(frozen=True)
class Migration:
    """One SQL file: its version, name, text and sha256 checksum."""

    version: int
    name: str
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        """`001_schema_migrations`, as the file is named."""
        return f"{self.version:03d}_{self.name}"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files of `directory`, sorted by version; a malformed name is an error."""
    directory = directory or MIGRATIONS_DIR
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"migration file {path} is not named NNN_lowercase_name.sql; rename it"
            )
        data = path.read_bytes()
        migration = Migration(
            version=int(match.group(1)),
            name=match.group(2),
            sql=data.decode("utf-8"),
            checksum=hashlib.sha256(data).hexdigest(),
        )
        if migration.version in found:
            raise MigrationError(
                f"two migration files share version {migration.version}: "
                f"{found[migration.version].label}.sql and {path.name}; renumber one"
            )
        found[migration.version] = migration
    return [found[v] for v in sorted(found)]


async def apply_migrations(
    dsn: str, directory: Path | None = None, *, check_grants: bool | None = None
) -> list[str]:
    """Apply the pending migrations in order, as the schema's owner; return the labels applied
    (empty if none).

    Refuses (MigrationError, nothing applied) when an applied migration's file changed or
    disappeared: the database and the code would otherwise silently disagree. With the project's
    own migrations (no `directory`; or `check_grants`), refuses too when a table is left that
    RUNTIME_ROLE cannot read: the processes would fail on it at their first read, not at start.
    """
    migrations = load_migrations(directory)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_ID)
        try:
            await conn.execute(_CREATE_TABLE)
            applied = {
                row["version"]: row
                for row in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
            }
            _check_applied(migrations, applied)
            done: list[str] = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                log.info("migration applied", migration=migration.label)
                done.append(migration.label)
            if directory is None if check_grants is None else check_grants:
                await _check_grants(conn)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_ID)
    finally:
        await conn.close()


def _check_applied(migrations: list[Migration], applied: dict[int, asyncpg.Record]) -> None:
    on_disk = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        label = f"{version:03d}_{row['name']}"
        migration = on_disk.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {label} applied but there is no such file: this "
                "code is older than the database schema; deploy the code that added it"
            )
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {label} was changed after it was applied (checksum "
                f"{row['checksum'][:12]}… in the database, {migration.checksum[:12]}… on disk): "
                "restore the file and put the change in a new migration"
            )


async def check_schema(
    dsn: str, directory: Path | None = None, *, role: str = RUNTIME_ROLE
) -> None:
    """Refuse (SchemaBehindError, MigrationError) a read model whose schema lacks a migration of
    this code, holds one it does not know or a changed one, or has a table RUNTIME_ROLE cannot
    read; and a connection whose role is not `role` (the process's: RUNTIME_ROLE, or GATEWAY_ROLE
    for a gateway) nor granted it. Run by every process at its start, as the role it connects as:
    no DDL, reads only."""
    migrations = load_migrations(directory)
    conn = await asyncpg.connect(dsn)
    try:
        applied: dict[int, asyncpg.Record] = {}
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is not None:
            try:
                rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
            except asyncpg.InsufficientPrivilegeError:
                # A schema from before the process's role (022_runtime_role, 023_gateway_role
                # grant it this read), or a role that is not the process's role.
                await _check_member(conn, role)
                grants = GATEWAY_GRANTS if role == GATEWAY_ROLE else RUNTIME_GRANTS
                raise SchemaBehindError(
                    _behind([m.label for m in migrations if m.version >= grants])
                ) from None
            applied = {row["version"]: row for row in rows}
        _check_applied(migrations, applied)
        missing = [m.label for m in migrations if m.version not in applied]
        if missing:
            raise SchemaBehindError(_behind(missing))
        if directory is None:
            await _check_grants(conn)
            await _check_member(conn, role)
    finally:
        await conn.close()


def _behind(missing: list[str]) -> str:
    more = f" and {len(missing) - 1} more ({', '.join(missing[1:])})" if len(missing) > 1 else ""
    return (
        f"the read model's schema lacks migration {missing[0]}{more}, which this code needs: "
        f"apply it as the schema's owner with {MIGRATE_COMMAND}, CASN_DATABASE_MIGRATION_URL "
        "naming the owner (docs/OPERATIONS.md 1.1), then start this process again"
    )


async def ungranted_tables(conn: asyncpg.Connection) -> list[str]:
    """The read model's tables RUNTIME_ROLE cannot read, and its sequences it cannot use."""
    rows = await conn.fetch(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND (
            (c.relkind IN ('r', 'p', 'v', 'm') AND NOT has_table_privilege($1, c.oid, 'SELECT'))
            OR (c.relkind = 'S' AND NOT has_sequence_privilege($1, c.oid, 'USAGE')))
        ORDER BY c.relname
        """,
        RUNTIME_ROLE,
    )
    return [row["relname"] for row in rows]


async def _check_member(conn: asyncpg.Connection, role: str) -> None:
    """The connected role is `role` or holds its privileges: the migrations grant only it. A
    gateway's role holding the workers' privileges too is refused: the gateway answers the
    internet, and its role is what a gateway taken over could do."""
    user, exists = await conn.fetchrow(
        "SELECT current_user, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role
    )
    used_by = _USED_BY.get(role, "the processes")
    if not exists:
        raise MigrationError(
            f"the role {role} does not exist: {used_by} connect as it (or a role granted it); "
            "have the database's administrator create it (docs/OPERATIONS.md 1.1), then apply "
            f"the migrations with {MIGRATE_COMMAND}"
        )
    if role == GATEWAY_ROLE and await conn.fetchval(
        "SELECT pg_has_role(current_user, oid, 'USAGE') FROM pg_roles WHERE rolname = $1",
        RUNTIME_ROLE,
    ):
        raise MigrationError(
            f"the read model's role {user!r} (CASN_DATABASE_URL) of this gateway holds "
            f"{RUNTIME_ROLE}'s privileges (it is {RUNTIME_ROLE} or granted it): a gateway "
            "answers the internet and connects as "
            f"{GATEWAY_ROLE} alone, which may not rewrite or delete the projections; give it "
            f"{GATEWAY_ROLE}'s URL and password (docs/OPERATIONS.md 1.1)"
        )
    member = await conn.fetchval("SELECT pg_has_role(current_user, $1, 'USAGE')", role)
    if not member:
        raise MigrationError(
            f"the read model's role {user!r} (CASN_DATABASE_URL) is not {role} and is not "
            f"granted it: the migrations grant the privileges of {used_by} to {role} only; "
            f"connect as it, or have the database's administrator GRANT {role} TO {user}"
        )


async def _check_grants(conn: asyncpg.Connection) -> None:
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", RUNTIME_ROLE) is None:
        raise MigrationError(
            f"the role {RUNTIME_ROLE} does not exist: the workers and gateways connect as it; "
            "create it as the database's administrator (docs/OPERATIONS.md 1.1)"
        )
    ungranted = await ungranted_tables(conn)
    if ungranted:
        raise MigrationError(
            f"the read model's {', '.join(ungranted)} cannot be read by {RUNTIME_ROLE}: a "
            "migration made it without the grants the processes need (or not as the schema's "
            f"owner, whose default privileges grant them); grant them in a new migration"
        )
