"""Versioned migrations: in order, once, and never over a changed file."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from runtime.embedded import READ_MODEL_ROLE, admin_database_url
from runtime.migrate import MIGRATIONS_DIR, MigrationError, apply_migrations, load_migrations

pytestmark = pytest.mark.stack


@pytest.fixture
async def scratch_dsn(stack, stack_settings):
    """A throw-away database on the session's PostgreSQL, owned by the read model's role as the
    read model's is, dropped after the test."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_database_url(stack_settings))
    await admin.execute(f'CREATE DATABASE "{name}" OWNER {READ_MODEL_ROLE}')
    try:
        yield urlunsplit(urlsplit(stack.database_url)._replace(path=f"/{name}"))
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
