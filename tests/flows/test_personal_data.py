"""Less personal data in clear (issue 14, item 8): the read model keeps a name only where an
announcement lists it, and migration 007 takes the rest out of a read model already written.

The read model after a real round is checked in tests/flows/test_notifications.py (its round);
the numbers file in tests/flows/test_cli_gaps.py."""

from __future__ import annotations

import shutil
import uuid
from datetime import date

import asyncpg
import pytest

from activities.readmodel import ReadModel
from domain.codes import AdminDecision, Stage, Terminal
from domain.contracts import JourneyProjection
from domain.messages import JourneyState
from runtime.db import open_pool
from runtime.migrate import MIGRATIONS_DIR, apply_migrations
from runtime.sealed import ColumnCipher
from tests.test_migrate import scratch_dsn  # noqa: F401 - a fixture

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]


def ended(round_id: str, applicant: str, **state) -> JourneyProjection:
    """The last projection of a journey that ended as `state` says."""
    return JourneyProjection(
        version=3,
        state=JourneyState(
            round_id=round_id,
            applicant_id=applicant,
            formasi_code="F1",
            stage=Stage.ENDED,
            tmt=date(2027, 3, 1),
            **state,
        ),
        registration_no=applicant,
        name=f"Nama {applicant}",
        category="umum",
        first_seq=0,
    )


async def test_a_name_is_kept_only_for_applicants_an_announcement_lists(stack):
    round_id = f"names-{uuid.uuid4().hex[:6]}"
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        model = ReadModel(pool, ColumnCipher(b"n" * 32))
        # Refused at registration: no administrative result, so no announcement lists it.
        await model.project_journey(ended(round_id, "REFUSED", terminal=Terminal.TMS))
        await model.project_journey(
            ended(round_id, "TMS", terminal=Terminal.TMS, admin=AdminDecision.TMS)
        )
        # DIS before the administrative result: the admin announcement lists it with DIS.
        await model.project_journey(ended(round_id, "DIS", terminal=Terminal.DISQUALIFIED))
        names = {
            r["applicant_id"]: r["name"]
            for r in await pool.fetch(
                "SELECT applicant_id, name FROM applicants WHERE round_id = $1", round_id
            )
        }
    finally:
        await pool.close()
    assert names == {"REFUSED": "", "TMS": "Nama TMS", "DIS": "Nama DIS"}


# --- migration 007 over a read model written before it --------------------------------------------

BEFORE = """
INSERT INTO applicants (round_id, applicant_id, formasi_code, name, category, stage, admin,
    skd_total, terminal, terminal_reason, version)
VALUES ('R', 'A1', 'F1', 'Siti Aminah', 'disabilitas', 'ended', 'MS', 455, 'DIS',
    'DIS: joki terbukti', 7);
INSERT INTO decisions (round_id, applicant_id, seq, at, stage, outcome, actor, input,
    rule_version, rules_digest)
VALUES ('R', 'A1', 0, '2027-01-02T00:00:00Z', 'admin_check', 'TMS', 'bkpsdm',
    '{"findings": [{"document": "ijazah", "reason": "belum dilegalisasi"}]}', '2024.1', 'd');
INSERT INTO stage_reports (round_id, applicant_id, report_id, kind, content) VALUES
    ('R', 'A1', 'skd-1', 'skd',
        '{"report_id": "skd-1", "reported_by": "cat-bkn", "twk": 120, "tiu": 140, "tkp": 195,
          "session_id": "S-9"}'),
    ('R', 'A1', 'h-1', 'skb:health',
        '{"report_id": "h-1", "component": "health", "decision": "TMS", "note": "hipertensi"}');
INSERT INTO notifications (round_id, applicant_id, key, text, notice, delivered_at) VALUES
    ('R', 'A1', 'admin-TMS', 'TMS: ijazah belum dilegalisasi', '{"kind": "admin_result"}', now()),
    ('R', 'A1', 'end-DIS', 'DIS: joki terbukti', '{"kind": "ended"}', NULL);
INSERT INTO nips (round_id, applicant_id, nip) VALUES ('R', 'A1', '199805172027031001');
INSERT INTO sanctions (subject, kind, origin, imposed_by, rounds, reason)
VALUES (repeat('a', 64), 'APS', 'R/A1', 'R', 2, 'APS: withdrew');
"""


def _migrations_up_to(version: int, folder) -> None:
    folder.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name.split("_", 1)[0]) <= version:
            shutil.copy(path, folder / path.name)


async def test_migration_007_takes_personal_data_out_and_keeps_every_row(scratch_dsn, tmp_path):  # noqa: F811
    _migrations_up_to(6, tmp_path / "before")
    await apply_migrations(scratch_dsn, tmp_path / "before")
    conn = await asyncpg.connect(scratch_dsn)
    try:
        await conn.execute(BEFORE)
        _migrations_up_to(7, tmp_path / "after")
        assert await apply_migrations(scratch_dsn, tmp_path / "after") == ["007_less_personal_data"]
        columns = {
            (r["table_name"], r["column_name"])
            for r in await conn.fetch(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public'"
            )
        }
        applicant = dict(await conn.fetchrow("SELECT * FROM applicants"))
        decision = dict(await conn.fetchrow("SELECT * FROM decisions"))
        reports = {
            r["report_id"]: r["content"]
            for r in await conn.fetch("SELECT report_id, content FROM stage_reports")
        }
        notes = {
            r["key"]: (r["text"], r["notice"], r["delivered_at"] is not None)
            for r in await conn.fetch("SELECT key, text, notice, delivered_at FROM notifications")
        }
        kept = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in ("nips", "sanctions")]
        with pytest.raises(asyncpg.CheckViolationError):  # a whole report is refused from now on
            await conn.execute(
                "INSERT INTO stage_reports VALUES ('R', 'A1', 'h-2', 'skb:health', "
                """'{"note": "hipertensi"}')"""
            )
    finally:
        await conn.close()

    dropped = {
        ("applicants", "category"),
        ("applicants", "terminal_reason"),
        ("decisions", "input"),
    }
    assert dropped & columns == set()
    assert ("notifications", "sealed") in columns
    assert (applicant["name"], applicant["admin"], applicant["skd_total"]) == (
        "Siti Aminah",
        "MS",
        455,
    )  # the announcements' columns as they were
    assert (applicant["terminal"], applicant["version"]) == ("DIS", 7)
    assert (decision["outcome"], decision["actor"]) == ("TMS", "bkpsdm")
    assert reports == {"skd-1": '{"tiu": 140, "tkp": 195, "twk": 120}', "h-1": "{}"}
    assert notes == {
        "admin-TMS": ("", None, True),  # delivered: its text goes
        "end-DIS": ("DIS: joki terbukti", '{"kind": "ended"}', False),  # still to be delivered
    }
    assert kept == [1, 1]


async def test_a_sealed_notification_opens_only_in_its_own_row():
    cipher = ColumnCipher(b"s" * 32)
    sealed = cipher.seal(b"TMS: ijazah belum dilegalisasi", "notifications/R/A1/admin-TMS")

    assert cipher.open(sealed, "notifications/R/A1/admin-TMS") == b"TMS: ijazah belum dilegalisasi"
    with pytest.raises(ValueError, match="sealed for another row"):
        cipher.open(sealed, "notifications/R/A2/admin-TMS")
    with pytest.raises(ValueError, match="does not hold"):
        ColumnCipher(b"t" * 32).open(sealed, "notifications/R/A1/admin-TMS")
    rotated = ColumnCipher(b"t" * 32, previous_keys=[b"s" * 32])
    assert rotated.open(sealed, "notifications/R/A1/admin-TMS").startswith(b"TMS")
