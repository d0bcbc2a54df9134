"""Versioned migrations: in order, once, never over a changed file, as the schema's owner; the
processes, as the runtime role, only check that the schema holds them."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from runtime.embedded import OWNER_ROLE, admin_database_url, owner_database_url, role_database_url
from runtime.migrate import (
    GATEWAY_ROLE,
    MIGRATIONS_DIR,
    RUNTIME_GRANTS,
    RUNTIME_ROLE,
    MigrationError,
    SchemaBehindError,
    apply_migrations,
    check_schema,
    load_migrations,
)

pytestmark = pytest.mark.stack


@pytest.fixture
async def scratch_dsn(stack, stack_settings):
    """A throw-away database on the session's PostgreSQL, owned by the read model's owner as the
    read model's is, dropped after the test; its DSN is the owner's, who migrates."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_database_url(stack_settings))
    await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
    try:
        yield urlunsplit(urlsplit(owner_database_url(stack_settings))._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


async def test_migrations_apply_in_version_order(scratch_dsn, tmp_path):
    folder = _write(
        tmp_path / "m",
        {
            "010_add_column.sql": "ALTER TABLE things ADD COLUMN label text;",
            "002_create_table.sql": "CREATE TABLE things (id int primary key);",
        },
    )

    applied = await apply_migrations(scratch_dsn, folder)

    assert applied == ["002_create_table", "010_add_column"]


async def test_second_run_applies_nothing(scratch_dsn, tmp_path):
    folder = _write(tmp_path / "m", {"001_t.sql": "CREATE TABLE t (id int);"})
    await apply_migrations(scratch_dsn, folder)

    assert await apply_migrations(scratch_dsn, folder) == []


async def test_new_file_is_applied_after_the_old_ones(scratch_dsn, tmp_path):
    folder = _write(tmp_path / "m", {"001_t.sql": "CREATE TABLE t (id int);"})
    await apply_migrations(scratch_dsn, folder)
    _write(folder, {"002_u.sql": "CREATE TABLE u (id int);"})

    assert await apply_migrations(scratch_dsn, folder) == ["002_u"]


async def test_changed_applied_migration_is_refused(scratch_dsn, tmp_path):
    folder = _write(tmp_path / "m", {"001_t.sql": "CREATE TABLE t (id int);"})
    await apply_migrations(scratch_dsn, folder)
    _write(folder, {"001_t.sql": "CREATE TABLE t (id bigint);", "002_u.sql": "SELECT 1;"})

    with pytest.raises(MigrationError, match="001_t was changed after it was applied"):
        await apply_migrations(scratch_dsn, folder)
    conn = await asyncpg.connect(scratch_dsn)
    versions = await conn.fetch("SELECT version FROM schema_migrations")
    await conn.close()
    assert [r["version"] for r in versions] == [1]


async def test_failing_migration_leaves_no_trace(scratch_dsn, tmp_path):
    folder = _write(
        tmp_path / "m",
        {"001_t.sql": "CREATE TABLE t (id int); SELECT * FROM no_such_table;"},
    )

    with pytest.raises(asyncpg.UndefinedTableError):
        await apply_migrations(scratch_dsn, folder)
    conn = await asyncpg.connect(scratch_dsn)
    exists = await conn.fetchval("SELECT to_regclass('t') IS NOT NULL")
    await conn.close()
    assert exists is False


async def test_concurrent_runs_apply_each_file_once(scratch_dsn, tmp_path):
    import asyncio

    folder = _write(tmp_path / "m", {"001_t.sql": "CREATE TABLE t (id int);"})

    results = await asyncio.gather(*(apply_migrations(scratch_dsn, folder) for _ in range(4)))

    assert sorted(len(r) for r in results) == [0, 0, 0, 1]


def test_badly_named_file_is_an_error(tmp_path):
    folder = _write(tmp_path / "m", {"1-init.sql": "SELECT 1;"})

    with pytest.raises(MigrationError, match="NNN_lowercase_name.sql"):
        load_migrations(folder)


def test_project_migrations_start_at_001():
    assert load_migrations(MIGRATIONS_DIR)[0].label == "001_schema_migrations"


# --- who migrates: the owner; the processes only check -----------------------------------------


def _project_migrations(folder: Path, below: int | None = None, **extra: str) -> Path:
    """The project's migration files (those below version `below`) and `extra` ones."""
    folder.mkdir()
    for migration in load_migrations(MIGRATIONS_DIR):
        if below is None or migration.version < below:
            (folder / f"{migration.label}.sql").write_text(migration.sql)
    return _write(folder, extra)


def _as_runtime(stack, owner_dsn: str) -> str:
    """The runtime role's DSN of the scratch database `owner_dsn` names."""
    return urlunsplit(urlsplit(stack.database_url)._replace(path=urlsplit(owner_dsn).path))


async def test_a_table_the_runtime_role_cannot_read_stops_the_migrations(scratch_dsn, tmp_path):
    folder = _project_migrations(
        tmp_path / "m",
        **{
            "900_hidden.sql": f"CREATE TABLE hidden (id int); REVOKE ALL ON hidden FROM {RUNTIME_ROLE};"
        },
    )

    with pytest.raises(MigrationError, match=f"hidden cannot be read by {RUNTIME_ROLE}"):
        await apply_migrations(scratch_dsn, folder, check_grants=True)


async def test_a_table_made_by_a_later_migration_is_granted_reading_and_appending_only(
    stack, scratch_dsn, tmp_path
):
    folder = _project_migrations(
        tmp_path / "m", **{"900_later.sql": "CREATE TABLE later (id int);"}
    )
    await apply_migrations(scratch_dsn, folder, check_grants=True)

    conn = await asyncpg.connect(_as_runtime(stack, scratch_dsn))
    try:
        await conn.execute("INSERT INTO later VALUES (1)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE later SET id = 2")
    finally:
        await conn.close()


async def test_the_current_schema_passes_the_runtime_roles_check(stack, scratch_dsn):
    await apply_migrations(scratch_dsn)

    await check_schema(_as_runtime(stack, scratch_dsn))


async def test_a_schema_behind_the_code_is_refused_naming_the_migration_and_the_command(
    stack, scratch_dsn, tmp_path
):
    await apply_migrations(scratch_dsn)
    ahead = _project_migrations(tmp_path / "m", **{"900_next.sql": "SELECT 1;"})

    with pytest.raises(SchemaBehindError) as refused:
        await check_schema(_as_runtime(stack, scratch_dsn), ahead)

    assert "lacks migration 900_next" in str(refused.value)
    assert "casn-worker migrate" in str(refused.value)


async def test_a_schema_from_before_the_runtime_role_is_refused_naming_its_migration(
    stack, scratch_dsn, tmp_path
):
    """A read model of the versions where every process owned it: its runtime role cannot even
    read which migrations it holds until 022_runtime_role grants it."""
    await apply_migrations(scratch_dsn, _project_migrations(tmp_path / "m", below=RUNTIME_GRANTS))

    with pytest.raises(SchemaBehindError, match="lacks migration 022_runtime_role"):
        await check_schema(_as_runtime(stack, scratch_dsn))


async def test_a_role_that_does_not_hold_the_runtime_roles_grants_is_refused(
    stack, stack_settings, scratch_dsn
):
    """The migrations grant casn_runtime alone: another login role would fail at its first write,
    not at its start."""
    await apply_migrations(scratch_dsn)
    password = uuid.uuid4().hex
    stranger = f"stranger_{password[:8]}"
    admin = await asyncpg.connect(admin_database_url(stack_settings))
    await admin.execute(f"CREATE ROLE {stranger} LOGIN PASSWORD '{password}'")
    try:
        owner = urlsplit(scratch_dsn)
        dsn = urlunsplit(
            owner._replace(
                netloc=f"{stranger}:{password}@{owner.hostname}:{owner.port}",
                query="sslmode=disable",
            )
        )
        with pytest.raises(MigrationError) as refused:
            await check_schema(dsn)
    finally:
        await admin.execute(f"DROP ROLE {stranger}")
        await admin.close()

    assert f"'{stranger}' (CASN_DATABASE_URL) is not {RUNTIME_ROLE}" in str(refused.value)
    assert f"GRANT {RUNTIME_ROLE} TO {stranger}" in str(refused.value)


# --- the gateway's columns (024_gateway_columns) on a read model of 023 ------------------------

GATEWAY_COLUMNS = next(m for m in load_migrations(MIGRATIONS_DIR) if m.name == "gateway_columns")
TOKEN = bytes(range(32))  # a session token's digest


def _as_gateway(stack_settings, owner_dsn: str) -> str:
    """The gateway role's DSN of the scratch database `owner_dsn` names."""
    url = role_database_url(stack_settings, GATEWAY_ROLE)
    return urlunsplit(urlsplit(url)._replace(path=urlsplit(owner_dsn).path))


async def test_a_read_model_of_023_is_narrowed_to_the_gateways_columns_its_sessions_kept(
    stack, stack_settings, scratch_dsn, tmp_path
):
    """A read model migrated by the versions whose gateway read whole tables: a gateway of this
    code refuses it until its owner migrates; then the portal's sessions and the projection's
    published columns still answer the gateway, an applicant's sanction no longer does."""
    await apply_migrations(
        scratch_dsn, _project_migrations(tmp_path / "m", below=GATEWAY_COLUMNS.version)
    )
    gateway = _as_gateway(stack_settings, scratch_dsn)
    runtime = await asyncpg.connect(_as_runtime(stack, scratch_dsn))
    try:
        await runtime.execute(
            "INSERT INTO applicants (round_id, applicant_id, formasi_code, name, stage, version, "
            "sanction_rounds) VALUES ('R', '0001', 'F1', 'Siti', 'ended', 1, 2)"
        )
        await runtime.execute(
            "INSERT INTO portal_accounts (round_id, applicant_id, password_hash) "
            "VALUES ('R', '0001', '$argon2id$v=19$stored')"
        )
        await runtime.execute(
            "INSERT INTO portal_sessions (token_sha256, round_id, applicant_id, expires_at) "
            "VALUES ($1, 'R', '0001', now() + interval '1 hour')",
            TOKEN,
        )
    finally:
        await runtime.close()
    conn = await asyncpg.connect(gateway)
    try:
        before = await conn.fetchval("SELECT sanction_rounds FROM applicants")
    finally:
        await conn.close()
    with pytest.raises(SchemaBehindError, match=f"lacks migration {GATEWAY_COLUMNS.label}"):
        await check_schema(gateway, role=GATEWAY_ROLE)

    assert await apply_migrations(scratch_dsn) == [
        m.label for m in load_migrations(MIGRATIONS_DIR) if m.version >= GATEWAY_COLUMNS.version
    ]
    await check_schema(gateway, role=GATEWAY_ROLE)
    conn = await asyncpg.connect(gateway)
    try:
        session = await conn.fetchrow(
            "SELECT round_id, applicant_id FROM portal_sessions "
            "WHERE token_sha256 = $1 AND expires_at > now()",
            TOKEN,
        )
        name = await conn.fetchval("SELECT name FROM applicants")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT sanction_rounds FROM applicants")
    finally:
        await conn.close()

    assert before == 2  # the whole table, before
    assert tuple(session) == ("R", "0001") and name == "Siti"
