"""Versioned SQL migrations for the read model: runtime/migrations/NNN_name.sql, applied in order.

Each file runs in its own transaction together with its row in `schema_migrations`; a
PostgreSQL advisory lock makes concurrent starters take turns, so each file runs once.
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


async def apply_migrations(dsn: str, directory: Path | None = None) -> list[str]:
    """Apply the pending migrations in order; return the labels applied (empty if none).

    Refuses (MigrationError, nothing applied) when an applied migration's file changed or
    disappeared: the database and the code would otherwise silently disagree.
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
