"""The embedded PostgreSQL asks everyone for a password, the read model's roles are no superusers,
the processes' role owns nothing and cannot alter the published record, a data dir of an older
version is upgraded in place, and the read model's TLS and password settings reach the connections
(a real server each time)."""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import stat
import struct
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from runtime import embedded
from runtime.db import open_pool
from runtime.embedded import (
    OWNER_ROLE,
    StackError,
    admin_database_url,
    ensure_stack,
    isolated_settings,
    migrate_read_model,
    owner_database_url,
    role_database_url,
    stop_stack,
)
from runtime.migrate import (
    GATEWAY_ROLE,
    RUNTIME_GRANTS,
    RUNTIME_ROLE,
    MigrationError,
    apply_migrations,
    load_migrations,
)
from tests.pki import issue, write_pem

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parent.parent


async def _refused(**connect) -> str:
    """The error a connection without a password gets (no ~/.pgpass or PGPASSWORD either)."""
    with pytest.raises(asyncpg.InvalidPasswordError) as caught:
        await asyncpg.connect(passfile="/nonexistent", password=None, timeout=10, **connect)
    return str(caught.value)


@pytest.mark.parametrize("user", ["postgres", OWNER_ROLE, RUNTIME_ROLE, GATEWAY_ROLE])
async def test_a_connection_without_the_password_is_refused(stack, stack_settings, user):
    port = stack_settings.postgres_port
    socket_dir = embedded._socket_dir(stack_settings.data_dir.resolve(), port)

    over_tcp = await _refused(host="127.0.0.1", port=port, user=user, database="postgres")
    over_the_socket = await _refused(
        host=str(socket_dir), port=port, user=user, database="postgres"
    )

    assert over_tcp == over_the_socket == f'password authentication failed for user "{user}"'


async def test_the_processes_role_is_no_superuser_and_the_owner_owns_the_database(stack):
    conn = await asyncpg.connect(stack.database_url)
    try:
        role = await conn.fetchrow(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname = current_user"
        )
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT rolpassword FROM pg_authid")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE ROLE intruder LOGIN SUPERUSER")
    finally:
        await conn.close()

    assert dict(role) == {
        "rolname": RUNTIME_ROLE,
        "rolsuper": False,
        "rolcreaterole": False,
        "rolcreatedb": False,
    }
    assert owner == OWNER_ROLE


# --- least privilege: the processes' role owns nothing ----------------------------------------

# What a process connecting as the runtime role must not do to the published record (or any table).
# Each runs in a transaction that is rolled back: on a role that may, nothing stays changed.
FORBIDDEN = {
    "disable the announcements' trigger and rewrite a row": [
        "ALTER TABLE publication_rows DISABLE TRIGGER USER",
        'UPDATE publication_rows SET row = row || \'{"code": "P/L"}\'',
    ],
    "drop the trigger of the record of purges": [
        "DROP TRIGGER personal_data_purges_append_only ON personal_data_purges"
    ],
    "truncate the access log": ["TRUNCATE access_log"],
    "drop the publications": ["DROP TABLE publications CASCADE"],
    "delete a published row": ["DELETE FROM publication_rows"],
    "rewrite an issued NIP": ["UPDATE nips SET nip = nip"],
    "truncate a projection": ["TRUNCATE applicants CASCADE"],
    "alter a projection": ["ALTER TABLE decisions ADD COLUMN forged text"],
    "make a table": ["CREATE TABLE intruder (id int)"],
    "forge the migrations applied": ["DELETE FROM schema_migrations"],
    "take over a table": [f"ALTER TABLE publications OWNER TO {RUNTIME_ROLE}"],
}


# What the workers' role may do and the gateway's may not: a gateway taken over from the internet
# cannot rewrite or delete what the journeys decided, nor read what no page of it shows.
GATEWAY_FORBIDDEN = {
    "rewrite an applicant's projection": ["UPDATE applicants SET terminal = 'P/L'"],
    "delete an applicant's projection": ["DELETE FROM applicants"],
    "forge an applicant's projection": ["INSERT INTO applicants DEFAULT VALUES"],
    "rewrite a decision": ["UPDATE decisions SET outcome = 'P/L'"],
    "delete the decisions": ["DELETE FROM decisions"],
    "read the decisions' table": ["SELECT count(*) FROM decisions"],
    "rewrite a stage report": ["UPDATE stage_reports SET report_id = report_id"],
    "delete the stage reports": ["DELETE FROM stage_reports"],
    "withdraw a revocation": ["DELETE FROM revocations"],
    "lift a sanction": ["DELETE FROM sanctions"],
    "rewrite a ranking page": ["UPDATE pages SET body = body"],
    "clear the outbox": ["DELETE FROM notifications"],
    "read the outbox's messages": ["SELECT text, sealed FROM notifications"],
    "mark the outbox delivered": ["UPDATE notifications SET delivered_at = now()"],
    "rewrite a survey answer": ["UPDATE skm_responses SET answers = answers"],
    "read the NIPs issued": ["SELECT count(*) FROM nips"],
    "move a NIP serial": ["UPDATE nip_serials SET last_serial = last_serial + 1"],
    "write a round board": ["DELETE FROM round_boards"],
    "take over a table": [f"ALTER TABLE applicants OWNER TO {GATEWAY_ROLE}"],
    "read who was barred and why": ["SELECT subject, reason FROM sanctions"],
    "read an applicant's sanction": ["SELECT sanction_rounds FROM applicants"],
    "read an applicant's TMT": ["SELECT tmt FROM applicants"],
    "read who looked up whom": ["SELECT reader, applicant_id FROM access_log"],
    "read who purged what": ["SELECT purged_by, override_reason FROM personal_data_purges"],
    "read a revocation's decree": ["SELECT decree_no FROM revocations"],
    "rewrite a session": ["UPDATE portal_sessions SET expires_at = now() + interval '1 year'"],
    "move a round on the calendar": ["UPDATE sanction_calendar SET registration_opens = now()"],
}
FORBIDDEN_TO = [
    *((RUNTIME_ROLE, what, statements) for what, statements in FORBIDDEN.items()),
    *((GATEWAY_ROLE, what, statements) for what, statements in FORBIDDEN.items()),
    *((GATEWAY_ROLE, what, statements) for what, statements in GATEWAY_FORBIDDEN.items()),
]


class _RolledBack(Exception):
    pass


@pytest.mark.parametrize(
    ("role", "statements"),
    [(role, statements) for role, _, statements in FORBIDDEN_TO],
    ids=[f"{role}: {what}" for role, what, _ in FORBIDDEN_TO],
)
async def test_a_process_role_cannot_alter_the_published_record(
    stack, stack_settings, role, statements
):
    """A worker or gateway taken over connects as its role: the append-only tables' triggers,
    and the tables themselves, are beyond both; the projections and decisions are beyond the
    gateway's, the process that answers the internet."""
    conn = await asyncpg.connect(role_database_url(stack_settings, role))
    try:
        with pytest.raises(
            asyncpg.InsufficientPrivilegeError, match="must be owner|permission denied"
        ):
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
                raise _RolledBack  # it was allowed: leave the session's read model as it was
    finally:
        await conn.close()


# What the processes do to each table (activities/, gateway/, client/, auditing/readmodel.py's
# repair, client/retention.py's purge). A table of a new migration fails here until its entry
# says what the processes need of it, and the migration grants that.
APPEND_ONLY = {"SELECT", "INSERT"}
REWRITTEN = {"SELECT", "INSERT", "UPDATE", "DELETE"}
RUNTIME_PRIVILEGES = {
    "schema_migrations": {"SELECT"},
    "publications": APPEND_ONLY,
    "publication_rows": APPEND_ONLY,
    "access_log": APPEND_ONLY,
    "personal_data_purges": APPEND_ONLY,
    "nips": APPEND_ONLY,
    "sanction_calendar": APPEND_ONLY,
    "skm_responses": {"SELECT", "INSERT", "UPDATE", "MAINTAIN"},
    **dict.fromkeys(
        ["applicants", "decisions", "stage_reports", "notifications", "nip_serials", "sanctions",
         "revocations", "pages", "round_boards", "panel_seats", "portal_accounts",
         "portal_sessions", "skm_taken"],
        REWRITTEN,
    ),
}  # fmt: skip
PRIVILEGES = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "MAINTAIN",
)


# What the gateway holds by table: DELETE (which PostgreSQL grants by table only) on the portal's
# accounts and sessions; everything else by column (GATEWAY_COLUMNS, migration 024).
GATEWAY_PRIVILEGES = {
    **dict.fromkeys(
        ["schema_migrations", "applicants", "stage_reports", "revocations", "panel_seats", "pages",
         "sanctions", "sanction_calendar", "personal_data_purges", "notifications", "publications",
         "publication_rows", "access_log", "skm_responses", "skm_taken", "decisions", "nips",
         "nip_serials", "round_boards"],
        set(),
    ),
    "portal_accounts": {"DELETE"},
    "portal_sessions": {"DELETE"},
}  # fmt: skip
# The sequences each role may use (for the tables it appends to).
SEQUENCES = {
    RUNTIME_ROLE: {"access_log_id_seq", "personal_data_purges_id_seq"},
    GATEWAY_ROLE: {"access_log_id_seq"},
}


@pytest.mark.parametrize(
    ("role", "expected"),
    [(RUNTIME_ROLE, RUNTIME_PRIVILEGES), (GATEWAY_ROLE, GATEWAY_PRIVILEGES)],
    ids=[RUNTIME_ROLE, GATEWAY_ROLE],
)
async def test_each_process_role_holds_what_its_processes_do_and_no_more(
    stack, stack_settings, role, expected
):
    conn = await asyncpg.connect(owner_database_url(stack_settings))
    try:
        rows = await conn.fetch(
            "SELECT c.relname, p.privilege FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN unnest($2::text[]) "
            "AS p(privilege) WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
            "AND has_table_privilege($1, c.oid, p.privilege)",
            role,
            list(PRIVILEGES),
        )
        tables = await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
        )
        sequences = await conn.fetch(
            "SELECT c.relname, has_sequence_privilege($1, c.oid, 'USAGE') AS usable, "
            "pg_has_role($1, c.relowner, 'USAGE') AS owned FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'S'",
            role,
        )
    finally:
        await conn.close()
    held: dict[str, set[str]] = {row["relname"]: set() for row in tables}
    for row in rows:
        held[row["relname"]].add(row["privilege"])

    assert held == expected
    assert {s["relname"] for s in sequences if s["usable"]} == SEQUENCES[role]
    assert not any(s["owned"] for s in sequences)


# The columns the gateway's queries name, by privilege (gateway/, and what it calls: client/,
# activities/sanctions.py and pages.py, activities/purges.py, runtime/metrics.py and migrate.py).
# A column the gateway's code starts to read fails the web tests (they connect as the gateway's
# role) until a migration grants it and its entry here says so; a grant without an entry fails here.
GATEWAY_COLUMNS: dict[str, dict[str, set[str]]] = {
    "schema_migrations": {"SELECT": {"version", "name", "checksum"}},  # check_schema
    "applicants": {  # announcements' rows, funnels, a panellist's sheet, late endings, /metrics
        "SELECT": {"round_id", "applicant_id", "formasi_code", "name", "stage", "admin",
                   "skd_code", "skd_total", "skb_score", "final_score", "final_code",
                   "placed_formasi", "terminal"},
    },
    "stage_reports": {  # an SKD announcement's subtest scores
        "SELECT": {"round_id", "applicant_id", "report_id", "kind", "content"},
    },
    "revocations": {"SELECT": {"round_id", "applicant_id", "seq", "code", "at"}},
    "panel_seats": {"SELECT": {"round_id", "applicant_id", "component", "panellists"}},
    "pages": {"SELECT": {"digest", "kind", "body"}},  # PageStore.get
    "personal_data_purges": {"SELECT": {"round_id", "purged_at"}},  # purged_on
    "notifications": {"SELECT": {"delivered_at"}},  # the outbox gauge
    "sanction_calendar": {  # record_round, find_bars
        "SELECT": {"round_id", "registration_opens", "period"},
        "INSERT": {"round_id", "registration_opens", "period"},
        "UPDATE": {"period"},
    },
    "publications": {  # draft_announcement, publish_signed, the public pages
        "SELECT": {"round_id", "seq", "stage", "instansi", "body", "body_sha256", "signature",
                   "signed_by", "published_at", "corrects", "row_count"},
        "INSERT": {"round_id", "seq", "stage", "instansi", "body", "body_sha256", "prev_sha256",
                   "signature", "signed_by", "published_at", "corrects", "row_count"},
    },
    "publication_rows": {
        "SELECT": {"round_id", "seq", "applicant_id", "formasi_code", "row"},
        "INSERT": {"round_id", "seq", "applicant_id", "formasi_code", "row"},
    },
    "access_log": {  # record_access: written, never read back
        "INSERT": {"round_id", "applicant_id", "reader", "what", "by_nik", "found", "request_id"},
    },
    "skm_taken": {
        "SELECT": {"round_id", "applicant_id", "stage"},
        "INSERT": {"round_id", "applicant_id", "stage"},
    },
    "skm_responses": {
        "SELECT": {"round_id", "instansi", "stage", "answers"},
        "INSERT": {"round_id", "instansi", "stage", "answers", "submitted_on"},
    },
    "portal_accounts": {
        "SELECT": {"round_id", "applicant_id", "password_hash"},
        "INSERT": {"round_id", "applicant_id", "password_hash"},
        "UPDATE": {"password_hash", "rehashed_at"},
    },
    "portal_sessions": {
        "SELECT": {"token_sha256", "round_id", "applicant_id", "expires_at"},
        "INSERT": {"token_sha256", "round_id", "applicant_id", "expires_at"},
    },
}  # fmt: skip
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")


async def test_the_gateway_role_holds_the_columns_its_queries_name_and_no_more(stack_settings):
    """Every column of every table of the read model, by privilege: what casn_gateway may do with
    it (by a column's grant or the table's) is what GATEWAY_COLUMNS says the gateway's code does."""
    conn = await asyncpg.connect(owner_database_url(stack_settings))
    try:
        rows = await conn.fetch(
            "SELECT c.relname, a.attname, p.privilege FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "CROSS JOIN unnest($2::text[]) AS p(privilege) "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
            "AND has_column_privilege($1, c.oid, a.attnum, p.privilege)",
            GATEWAY_ROLE,
            list(COLUMN_PRIVILEGES),
        )
    finally:
        await conn.close()
    held: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        held.setdefault(row["relname"], {}).setdefault(row["privilege"], set()).add(row["attname"])

    assert held == GATEWAY_COLUMNS


async def test_the_gateway_role_reads_one_subjects_sanctions_not_the_register(stack_settings):
    """A registration checked at the gateway (client/sanctions.py, as gateway/app.py gives it the
    gateway's pool) records its round on the calendar and finds the entries barring its subject;
    the register itself, whole, is beyond the gateway's role."""
    from datetime import UTC, date, datetime

    from activities.sanctions import find_bars, record_round

    subject, other = "a" * 64, "b" * 64
    owner = await asyncpg.connect(owner_database_url(stack_settings))
    pool = await open_pool(role_database_url(stack_settings, GATEWAY_ROLE), max_size=1)
    try:
        for who in (subject, other):
            await owner.execute(
                "INSERT INTO sanctions (subject, kind, origin, imposed_by, barred_until, reason) "
                "VALUES ($1, 'national_list', 'test-list', 'test-list', '2099-12-31', 'fraud') "
                "ON CONFLICT DO NOTHING",
                who,
            )
        opens = datetime(2031, 1, 5, tzinfo=UTC)
        await record_round(pool, "gw-sanctions-R1", opens, "gw-sanctions-N1")
        bars = await find_bars(pool, "gw-sanctions-R1", None, subject, date(2031, 1, 6))
        calendar = await owner.fetchrow(
            "SELECT registration_opens, period FROM sanction_calendar WHERE round_id = $1",
            "gw-sanctions-R1",
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.fetch("SELECT subject, reason FROM sanctions")
    finally:
        await owner.execute("DELETE FROM sanctions WHERE origin = 'test-list'")
        await owner.execute("DELETE FROM sanction_calendar WHERE round_id = 'gw-sanctions-R1'")
        await owner.close()
        await pool.close()

    assert [(b.entry.subject, b.entry.reason) for b in bars] == [(subject, "fraud")]
    assert tuple(calendar) == (opens, "gw-sanctions-N1")


async def test_the_gateways_metrics_read_the_read_model_as_the_gateway_role(stack_settings):
    """/metrics' read-model gauges (the journeys per stage, the outbox's backlog) are read as the
    gateway's role: the outbox through its delivered_at column alone."""
    from runtime.metrics import READ_MODEL_UP, ReadModelGauges

    pool = await open_pool(role_database_url(stack_settings, GATEWAY_ROLE), max_size=1)
    try:
        READ_MODEL_UP.set(0)
        await ReadModelGauges(pool, ttl=0.0).refresh()
    finally:
        await pool.close()

    assert READ_MODEL_UP._value.get() == 1


async def test_a_gateway_connects_as_the_gateway_role_and_a_worker_does_not(
    stack, stack_settings, tmp_path
):
    """CASN_DATABASE_URL names the gateway's role for a gateway: the gateway starts on it, a worker
    (which the gateway's grants would fail at its first projection) refuses it at start."""
    pgpass = stack_settings.data_dir.resolve() / "keys" / f"postgres-{GATEWAY_ROLE}.pgpass"
    settings = _external(
        stack, stack_settings, tmp_path, user=GATEWAY_ROLE,
        password=pgpass.read_text().strip().split(":")[-1],
    )  # fmt: skip

    info = await ensure_stack(settings, role=GATEWAY_ROLE)
    with pytest.raises(StackError) as caught:
        await ensure_stack(settings)

    assert info.database_url.startswith(f"postgresql://{GATEWAY_ROLE}@")
    assert f"'{GATEWAY_ROLE}' (CASN_DATABASE_URL) is not {RUNTIME_ROLE}" in str(caught.value)


async def test_a_gateway_refuses_the_workers_role(stack, stack_settings, tmp_path):
    """The workers' role may rewrite every projection: a gateway given it (a deployment from before
    the gateway's role) stops at start, naming the role to connect as."""
    settings = _external(stack, stack_settings, tmp_path)  # casn_runtime

    with pytest.raises(StackError) as caught:
        await ensure_stack(settings, role=GATEWAY_ROLE)

    message = str(caught.value)
    assert f"'{RUNTIME_ROLE}' (CASN_DATABASE_URL) of this gateway holds {RUNTIME_ROLE}'s" in message
    assert f"connects as {GATEWAY_ROLE} alone" in message


async def test_a_gateway_refuses_a_role_granted_the_workers_role_beside_its_own(
    stack, stack_settings, tmp_path
):
    """A login role an administrator granted both roles passes the gateway's membership check,
    and would still hold every UPDATE and DELETE the workers hold."""
    admin = await asyncpg.connect(admin_database_url(stack_settings))
    try:
        await admin.execute(
            "CREATE ROLE gateway_and_worker LOGIN PASSWORD 'both-roles' "
            f"IN ROLE {GATEWAY_ROLE}, {RUNTIME_ROLE}"
        )
        settings = _external(
            stack, stack_settings, tmp_path, user="gateway_and_worker", password="both-roles"
        )
        with pytest.raises(StackError) as caught:
            await ensure_stack(settings, role=GATEWAY_ROLE)
    finally:
        await admin.execute("DROP ROLE gateway_and_worker")
        await admin.close()

    assert f"'gateway_and_worker' (CASN_DATABASE_URL) of this gateway holds {RUNTIME_ROLE}'s" in (
        str(caught.value)
    )


async def test_a_process_refuses_to_connect_as_the_owner(stack, stack_settings, tmp_path):
    """As the versions before the runtime role made every process connect: the owner can disable
    the triggers the published record relies on."""
    owner = stack_settings.data_dir.resolve() / "keys" / f"postgres-{OWNER_ROLE}.pgpass"
    settings = _external(
        stack, stack_settings, tmp_path, user=OWNER_ROLE,
        password=owner.read_text().strip().split(":")[-1],
    )  # fmt: skip

    with pytest.raises(StackError) as caught:
        await ensure_stack(settings)

    message = str(caught.value)
    assert f"the read model's role '{OWNER_ROLE}' at postgresql://{OWNER_ROLE}@" in message
    assert "owns database casn" in message and f"connect as {RUNTIME_ROLE}" in message


async def test_the_migrate_command_migrates_as_the_owner_of_the_migration_url(
    stack, stack_settings, tmp_path
):
    owner = stack_settings.data_dir.resolve() / "keys" / f"postgres-{OWNER_ROLE}.pgpass"
    owner_password = tmp_path / "owner-password"
    owner_password.write_text(owner.read_text().strip().split(":")[-1] + "\n")
    port = stack_settings.postgres_port
    settings = _external(
        stack, stack_settings, tmp_path,
        database_migration_url=f"postgresql://{OWNER_ROLE}@127.0.0.1:{port}/casn",
        database_migration_password_file=owner_password,
    )  # fmt: skip
    without = _external(stack, stack_settings, tmp_path)

    assert await migrate_read_model(settings) == []  # the session's read model is up to date
    with pytest.raises(StackError, match="CASN_DATABASE_MIGRATION_URL is not set"):
        await migrate_read_model(without)


async def test_the_passwords_and_the_history_store_are_for_their_owner_alone(stack, stack_settings):
    keys = stack_settings.data_dir.resolve() / "keys"
    files = sorted(keys.glob("postgres-*.pgpass"))

    assert [f.name for f in files] == [
        "postgres-casn.pgpass",
        "postgres-casn_gateway.pgpass",
        "postgres-casn_runtime.pgpass",
        "postgres-postgres.pgpass",
    ]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    temporal = stack_settings.data_dir.resolve() / "temporal"  # the history store's folder
    assert stat.S_IMODE(temporal.stat().st_mode) == 0o700
    url = urlsplit(stack.database_url)
    assert url.password is None and "password" not in parse_qs(url.query)  # only the file's name


async def test_privileges_granted_to_the_read_model_role_by_hand_are_taken_back(
    stack, stack_settings
):
    admin = await asyncpg.connect(admin_database_url(stack_settings))
    try:
        await admin.execute(f"ALTER ROLE {RUNTIME_ROLE} SUPERUSER CREATEROLE")
        await ensure_stack(stack_settings)  # any process's next start
        privileged = await admin.fetchval(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = $1", RUNTIME_ROLE
        )
    finally:
        await admin.execute(f"ALTER ROLE {RUNTIME_ROLE} NOSUPERUSER NOCREATEROLE")
        await admin.close()

    assert privileged is False


# --- a data dir made by an older version --------------------------------------------------------


def _legacy_cluster(data_dir: Path, port: int) -> None:
    """A cluster as the versions before issue 15 made and left it: trust for every local user,
    the read model created by the superuser (_legacy_read_model)."""
    pgdata = data_dir / "postgres"
    pgdata.mkdir(mode=0o700)
    user = embedded._pg_user()
    if user is not None:
        embedded._prepare_root_permissions(pgdata, user)
    log = data_dir / "legacy.log"
    embedded._pg_run(
        ["initdb", "-D", str(pgdata), "--auth=trust", "-U", "postgres", "--no-instructions"],
        user,
        log,
        120,
    )
    embedded._pg_run(
        ["pg_ctl", "-D", str(pgdata), "-w", "-o", f"-p {port} -h 127.0.0.1 -k ''", "start"],
        user,
        log,
        60,
    )


# The project's migrations from 022_runtime_role on: what a data dir of an older version lacks.
SINCE_THE_RUNTIME_ROLE = [m.label for m in load_migrations() if m.version >= RUNTIME_GRANTS]


def _legacy_migrations(folder: Path) -> Path:
    """The migrations of the versions before the runtime role (022_runtime_role)."""
    folder.mkdir()
    for migration in load_migrations():
        if migration.version < RUNTIME_GRANTS:
            (folder / f"{migration.label}.sql").write_text(migration.sql)
    return folder


async def _legacy_read_model(port: int, migrations: Path) -> None:
    admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    await admin.execute(f'CREATE DATABASE "{embedded.DATABASE}"')
    await admin.close()
    url = f"postgresql://postgres@127.0.0.1:{port}/{embedded.DATABASE}"
    await apply_migrations(url, migrations)
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE legacy_probe (id serial PRIMARY KEY, note text)")
    await conn.execute("INSERT INTO legacy_probe (note) VALUES ('written as superuser')")
    await conn.close()


def _stop_legacy(data_dir: Path) -> None:
    embedded._pg_run(
        ["pg_ctl", "-D", str(data_dir / "postgres"), "-m", "fast", "-w", "stop"],
        embedded._pg_user(),
        data_dir / "legacy.log",
        60,
    )


@pytest.mark.parametrize("left", ["stopped", "running"])
async def test_a_data_dir_of_an_older_version_is_upgraded_in_place(
    stack, server_dir, left, tmp_path
):
    """Whether the older version stopped its server or left it running, the next start secures it."""
    settings = isolated_settings(server_dir("legacy"), temporal_address=stack.temporal_address)
    data_dir = settings.data_dir.resolve()
    _legacy_cluster(data_dir, settings.postgres_port)
    try:
        await _legacy_read_model(settings.postgres_port, _legacy_migrations(tmp_path / "m"))
    finally:
        if left == "stopped":
            _stop_legacy(data_dir)

    try:
        info = await ensure_stack(settings)
        refusal = await _refused(
            host="127.0.0.1", port=settings.postgres_port, user="postgres", database="postgres"
        )
        await (await asyncpg.connect(admin_database_url(settings))).close()  # its new password
        conn = await asyncpg.connect(info.database_url)
        try:
            note = await conn.fetchval("SELECT note FROM legacy_probe")
            await conn.execute("INSERT INTO legacy_probe (note) VALUES ('written by the role')")
            superuser = await conn.fetchval(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            )
        finally:
            await conn.close()
        conn = await asyncpg.connect(owner_database_url(settings))
        try:
            foreign = await conn.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> current_user "
                "UNION ALL SELECT p.proname FROM pg_proc p JOIN pg_namespace n "
                "ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
                "AND pg_get_userbyid(p.proowner) <> current_user"
            )
        finally:
            await conn.close()
    finally:
        stop_stack(settings)

    assert info.started_postgres == (left == "stopped")
    # nothing applied twice
    assert info.migrations_applied == SINCE_THE_RUNTIME_ROLE
    assert refusal == 'password authentication failed for user "postgres"'
    assert note == "written as superuser" and superuser is False
    assert [r["relname"] for r in foreign] == []  # tables, sequences and functions handed over
    rules = [
        line.split()
        for line in (data_dir / "postgres" / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert rules and {rule[-1] for rule in rules} == {"scram-sha-256"}


async def _as_before_the_runtime_role(settings) -> None:
    """Take a stack back to the layout of the versions where every process connected as the
    owner: no casn_runtime, no grants to it, 022_runtime_role not applied, no password file."""
    admin = await asyncpg.connect(admin_database_url(settings, embedded.DATABASE))
    try:
        await admin.execute(f"DROP OWNED BY {RUNTIME_ROLE}")  # its grants, default ones too
        await admin.execute(f"DROP ROLE {RUNTIME_ROLE}")
        await admin.execute("DELETE FROM schema_migrations WHERE version >= $1", RUNTIME_GRANTS)
    finally:
        await admin.close()
    (settings.data_dir.resolve() / "keys" / f"postgres-{RUNTIME_ROLE}.pgpass").unlink()


async def test_a_data_dir_where_every_process_was_the_owner_is_upgraded_in_place(stack, server_dir):
    """The layout every developer's .data had before the runtime role: its next start makes the
    role, migrates as the owner, and connects the processes as the role, the data kept."""
    settings = isolated_settings(server_dir("owner-era"), temporal_address=stack.temporal_address)
    try:
        first = await ensure_stack(settings)
        conn = await asyncpg.connect(owner_database_url(settings))
        try:
            await conn.execute(
                "INSERT INTO sanction_calendar (round_id, registration_opens) VALUES ('R', now())"
            )
        finally:
            await conn.close()
        await _as_before_the_runtime_role(settings)
        stop_stack(settings, first)

        info = await ensure_stack(settings)
        conn = await asyncpg.connect(info.database_url)
        try:
            user = await conn.fetchval("SELECT current_user")
            kept = await conn.fetchval("SELECT round_id FROM sanction_calendar")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("TRUNCATE sanction_calendar")
        finally:
            await conn.close()
    finally:
        stop_stack(settings)

    assert info.started_postgres
    assert info.migrations_applied == SINCE_THE_RUNTIME_ROLE
    assert (user, kept) == (RUNTIME_ROLE, "R")


async def test_a_failing_migration_leaves_no_server_that_start_started(
    stack, server_dir, monkeypatch
):
    """The caller gets the error only: no PostgreSQL left running, with a data dir a test's
    clean-up removes under it."""
    settings = isolated_settings(server_dir("failing"), temporal_address=stack.temporal_address)

    async def failing(dsn: str) -> list[str]:
        raise MigrationError("migration 999_broken failed")

    monkeypatch.setattr(embedded, "apply_migrations", failing)
    try:
        with pytest.raises(MigrationError):
            await ensure_stack(settings)
        pid, _ = embedded._postmaster(settings.data_dir.resolve() / "postgres")
        running = embedded._alive(pid, "postgres")
    finally:
        stop_stack(settings)

    assert not running


# --- the read model's TLS and password settings, against the real server --------------------------


def _external(stack, stack_settings, tmp_path, **values):
    """Settings that use the session's PostgreSQL as an external database, with the read model
    role's password in a file of its own."""
    password = tmp_path / "db-password"
    pgpass = stack_settings.data_dir.resolve() / "keys" / f"postgres-{RUNTIME_ROLE}.pgpass"
    password.write_text(values.pop("password", pgpass.read_text().strip().split(":")[-1]) + "\n")
    port = values.pop("port", stack_settings.postgres_port)
    user = values.pop("user", RUNTIME_ROLE)
    return isolated_settings(
        tmp_path / "data",
        temporal_address=stack.temporal_address,
        database_url=f"postgresql://{user}@127.0.0.1:{port}/casn",
        database_password_file=password,
        **values,
    )


async def test_a_read_model_role_that_is_a_superuser_is_refused(stack, stack_settings, tmp_path):
    """As PostgreSQL's container image makes its POSTGRES_USER: every worker and gateway would
    connect holding the whole server."""
    admin = stack_settings.data_dir.resolve() / "keys" / "postgres-postgres.pgpass"
    password = tmp_path / "db-password"
    password.write_text(admin.read_text().strip().split(":")[-1] + "\n")
    settings = isolated_settings(
        tmp_path / "data",
        temporal_address=stack.temporal_address,
        database_url=f"postgresql://postgres@127.0.0.1:{stack_settings.postgres_port}/casn",
        database_password_file=password,
    )

    with pytest.raises(StackError) as caught:
        await ensure_stack(settings)

    message = str(caught.value)
    assert message.startswith("the read model's role 'postgres' at postgresql://postgres@")
    assert "(CASN_DATABASE_URL) is a superuser" in message


async def test_sslmode_disable_and_the_password_file_reach_the_pool(
    stack, stack_settings, tmp_path
):
    settings = _external(stack, stack_settings, tmp_path, database_sslmode="disable")

    info = await ensure_stack(settings)
    pool = await open_pool(info.database_url, max_size=2)
    try:
        user, encrypted = await pool.fetchrow(
            "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
    finally:
        await pool.close()

    assert (user, encrypted) == (RUNTIME_ROLE, False)


async def test_sslmode_require_against_a_server_without_tls_is_a_clear_error(
    stack, stack_settings, tmp_path
):
    settings = _external(stack, stack_settings, tmp_path, database_sslmode="require")

    with pytest.raises(StackError) as caught:
        await ensure_stack(settings)

    message = str(caught.value)
    assert message.startswith("no TLS connection to the read model's database at postgresql://")
    assert "CASN_DATABASE_SSLMODE='require'" in message and "rejected SSL upgrade" in message


async def test_a_wrong_password_file_is_named(stack, stack_settings, tmp_path):
    settings = _external(stack, stack_settings, tmp_path, password="not-the-password")

    with pytest.raises(StackError) as caught:
        await ensure_stack(settings)

    message = str(caught.value)
    assert "refused the login" in message
    assert f"CASN_DATABASE_PASSWORD_FILE='{settings.database_password_file}'" in message
    assert "not-the-password" not in message


async def test_the_superuser_dsn_is_for_maintenance_and_every_password_is_scram(
    stack, stack_settings
):
    conn = await asyncpg.connect(admin_database_url(stack_settings))
    try:
        superuser = await conn.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        stored = await conn.fetch(
            "SELECT rolname, split_part(rolpassword, ':', 1) AS method FROM pg_authid "
            "WHERE rolname IN ('postgres', $1, $2, $3) ORDER BY rolname",
            OWNER_ROLE,
            RUNTIME_ROLE,
            GATEWAY_ROLE,
        )
    finally:
        await conn.close()

    assert superuser is True
    assert [tuple(r) for r in stored] == [
        (OWNER_ROLE, "SCRAM-SHA-256$4096"),
        (GATEWAY_ROLE, "SCRAM-SHA-256$4096"),
        (RUNTIME_ROLE, "SCRAM-SHA-256$4096"),
        ("postgres", "SCRAM-SHA-256$4096"),
    ]


SSL_REQUEST = struct.pack("!ii", 8, 80877103)


class _TlsFront:
    """PostgreSQL's TLS in front of the real server (the embedded build has none of its own):
    answers the client's SSLRequest, completes the handshake with a certificate from a throw-away
    CA, then passes the plain protocol on to the server, which asks for the password as always."""

    def __init__(self, server_port: int, folder: Path) -> None:
        ca_key, ca_cert = issue("casn test CA", ca=True)
        key, cert = issue("read model", ca_key, "casn test CA", names=("127.0.0.1", "localhost"))
        key_path, cert_path = write_pem(folder, "server", key, cert)
        _, self.ca = write_pem(folder, "ca", ca_key, ca_cert)
        other_key, other_cert = issue("another CA", ca=True)
        _, self.other_ca = write_pem(folder, "other-ca", other_key, other_cert)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_path, key_path)
        self.server_port = server_port
        self.handshakes = 0

    async def __aenter__(self) -> _TlsFront:
        self.listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_) -> None:
        self.listener.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if await reader.readexactly(8) != SSL_REQUEST:
                return
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(self.context)
            self.handshakes += 1
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.server_port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass  # a refused handshake, or a side that went away
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def test_verify_full_checks_the_server_against_the_sslrootcert(
    stack, stack_settings, tmp_path
):
    async with _TlsFront(stack_settings.postgres_port, tmp_path) as front:
        verified = _external(stack, stack_settings, tmp_path, database_sslmode="verify-full",
                             database_sslrootcert=front.ca, port=front.port)  # fmt: skip
        info = await ensure_stack(verified)
        pool = await open_pool(info.database_url, max_size=1)
        try:
            user = await pool.fetchval("SELECT current_user")
        finally:
            await pool.close()
        handshakes = front.handshakes
        wrong = _external(stack, stack_settings, tmp_path, database_sslmode="verify-full",
                          database_sslrootcert=front.other_ca, port=front.port)  # fmt: skip
        with pytest.raises(StackError) as caught:
            await ensure_stack(wrong)

    assert user == RUNTIME_ROLE and handshakes >= 2  # the start's check, then the pool
    message = str(caught.value)
    assert f"CASN_DATABASE_SSLROOTCERT='{front.other_ca}'" in message
    assert "certificate verify failed" in message


def test_the_operators_command_line_stops_naming_the_refused_tls_setting(stack, keys, tmp_path):
    env = {
        **os.environ,
        "CASN_TEMPORAL_ADDRESS": stack.temporal_address,
        "CASN_DATABASE_URL": stack.database_url,
        "CASN_DATABASE_SSLMODE": "require",
        "CASN_DATA_DIR": str(tmp_path / "data"),
        "CASN_LOG_FORMAT": "json",
        "CASN_PAYLOAD_KEY": base64.b64encode(keys.payload_key).decode(),
        "CASN_PSEUDONYM_KEY": base64.b64encode(keys.pseudonym_key).decode(),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), "status", "R1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    [line] = [x for x in result.stderr.splitlines() if x.startswith("stopped")]
    assert line.startswith("stopped: no TLS connection to the read model's database at")
    assert "CASN_DATABASE_SSLMODE='require'" in line


async def test_verify_full_without_a_root_certificate_is_named(
    stack, stack_settings, tmp_path, monkeypatch
):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql/root.crt to fall back on
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    async with _TlsFront(stack_settings.postgres_port, tmp_path) as front:
        settings = _external(stack, stack_settings, tmp_path, database_sslmode="verify-full",
                             port=front.port)  # fmt: skip
        with pytest.raises(StackError) as caught:
            await ensure_stack(settings)

    message = str(caught.value)
    assert "CASN_DATABASE_SSLMODE='verify-full', CASN_DATABASE_SSLROOTCERT=None" in message
    assert "root.crt" in message
