"""The read model checked against the histories, and repaired from them (auditing/readmodel.py,
`audit.py check-read-model`), on the session's real stack: a small round played to its final
ranking, its read model damaged in every way the check names, then made good."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from activities.readmodel import ReadModel
from auditing.history import round_histories
from auditing.readmodel import check, check_round, projected, repair
from runtime.connection import data_converter
from runtime.sealed import ColumnCipher
from scripts.record_histories import run_small_round
from tests.roundkit import command_env

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]

# Every column the round's rows hold, but for the write times (updated_at, created_at,
# delivered_at) and the sealed notification, whose nonce differs at each write.
TABLES = {
    "applicants": "SELECT * FROM applicants WHERE round_id = $1 ORDER BY applicant_id",
    "decisions": "SELECT * FROM decisions WHERE round_id = $1 ORDER BY applicant_id, seq",
    "stage_reports": "SELECT * FROM stage_reports WHERE round_id = $1 "
    "ORDER BY applicant_id, report_id",
    "notifications": "SELECT applicant_id, key, delivered_at IS NULL AS pending FROM notifications "
    "WHERE round_id = $1 ORDER BY applicant_id, key",
}
WRITE_TIMES = {"updated_at", "created_at", "delivered_at"}


async def snapshot(pool, round_id: str) -> dict[str, list[dict]]:
    return {
        table: [
            {k: v for k, v in r.items() if k not in WRITE_TIMES}
            for r in await pool.fetch(sql, round_id)
        ]
        for table, sql in TABLES.items()
    }


async def derived(client, keys, round_id: str):
    histories = await round_histories(client, round_id, "journey")
    return await projected(round_id, histories, data_converter(keys))


async def test_a_damaged_read_model_is_named_difference_by_difference_and_made_good(
    client, keys, running_worker, stack, tmp_path
):
    settings, pool = running_worker
    round_id, ids = await run_small_round(
        client, settings.task_queue, keys.pseudonym_key, answer_within=1
    )
    await asyncio.sleep(1.0)  # visibility lists the last starts

    # As the journeys wrote it, the read model is what replaying their histories derives:
    # every projection (the local activities' and the rows handed over with the closes) found.
    found = await derived(client, keys, round_id)
    assert sorted(found.projections) == sorted(ids.values())
    clean = await check(pool, found)
    assert clean.replay_failures == [] and clean.differences == [], clean.differences
    assert clean.applicants == 3
    before = await snapshot(pool, round_id)
    assert before["decisions"] and before["stage_reports"] and before["notifications"]

    c1, c2, c3 = ids["C1"], ids["C2"], ids["C3"]
    top = {
        a: max(r["seq"] for r in before["decisions"] if r["applicant_id"] == a) for a in (c2, c3)
    }
    report = next(r["report_id"] for r in before["stage_reports"] if r["applicant_id"] == c3)
    skd = next(r["report_id"] for r in before["stage_reports"] if r["report_id"].startswith("skd"))
    skd_of = next(r["applicant_id"] for r in before["stage_reports"] if r["report_id"] == skd)
    note = next(r for r in before["notifications"] if r["applicant_id"] == c1)
    version = {r["applicant_id"]: r["version"] for r in before["applicants"]}
    async with pool.acquire() as conn, conn.transaction():
        # c1: its row and one notification lost
        await conn.execute("DELETE FROM applicants WHERE round_id = $1 AND applicant_id = $2", round_id, c1)  # fmt: skip
        await conn.execute("DELETE FROM notifications WHERE round_id = $1 AND applicant_id = $2 AND key = $3", round_id, c1, note["key"])  # fmt: skip
        # c2: its row altered in place, its last decision lost, its first one altered
        await conn.execute("UPDATE applicants SET stage = 'pns', skd_total = 999 WHERE round_id = $1 AND applicant_id = $2", round_id, c2)  # fmt: skip
        await conn.execute("DELETE FROM decisions WHERE round_id = $1 AND applicant_id = $2 AND seq = $3", round_id, c2, top[c2])  # fmt: skip
        await conn.execute("UPDATE decisions SET outcome = 'ALTERED' WHERE round_id = $1 AND applicant_id = $2 AND seq = 0", round_id, c2)  # fmt: skip
        # c3: its row one version behind, a report lost, a decision the histories never made
        await conn.execute("UPDATE applicants SET version = version - 1 WHERE round_id = $1 AND applicant_id = $2", round_id, c3)  # fmt: skip
        await conn.execute("DELETE FROM stage_reports WHERE round_id = $1 AND applicant_id = $2 AND report_id = $3", round_id, c3, report)  # fmt: skip
        await conn.execute("INSERT INTO decisions SELECT round_id, applicant_id, $3, at, stage, 'P', actor, rule_version, rules_digest FROM decisions WHERE round_id = $1 AND applicant_id = $2 AND seq = 0", round_id, c3, top[c3] + 50)  # fmt: skip
        # an SKD report's published scores changed
        await conn.execute("""UPDATE stage_reports SET content = jsonb_set(content, '{twk}', '1') WHERE round_id = $1 AND report_id = $2""", round_id, skd)  # fmt: skip
        # a row no journey wrote
        await conn.execute("INSERT INTO applicants (round_id, applicant_id, formasi_code, name, stage, version) VALUES ($1, 'R-FORGED', 'F1', '', 'pns', 1)", round_id)  # fmt: skip
        # Rows no history wrote beside a journey's own (review of 12-07): an SKD report the
        # announcement would print first (it takes the first by report id), an APS sanction for
        # an applicant who never withdrew, and a decision and a report of nobody's journey.
        await conn.execute("INSERT INTO stage_reports (round_id, applicant_id, report_id, kind, content) SELECT round_id, $3, '0-forged', kind, content FROM stage_reports WHERE round_id = $1 AND report_id = $2", round_id, skd, c1)  # fmt: skip
        await conn.execute("INSERT INTO sanctions (subject, kind, origin, imposed_by, rounds, reason) VALUES ($1, 'APS', $2, $3, 2, 'forged')", "ab" * 32, f"{round_id}/{c2}", round_id)  # fmt: skip
        await conn.execute("INSERT INTO decisions SELECT round_id, 'R-FORGED', 0, at, stage, 'P', actor, rule_version, rules_digest FROM decisions WHERE round_id = $1 AND applicant_id = $2 AND seq = 0", round_id, c3)  # fmt: skip
        await conn.execute("INSERT INTO stage_reports (round_id, applicant_id, report_id, kind, content) VALUES ($1, 'R-FORGED', 'r-forged', 'skd', '{}')", round_id)  # fmt: skip

    damaged = await check(pool, found)
    named = sorted((d.kind, d.applicant_id, d.detail) for d in damaged.differences)
    assert named == sorted(
        [
            ("row missing", c1, f"version {version[c1]}"),
            ("notification missing", c1, note["key"]),
            ("row altered", c2, "stage, skd_total"),
            ("decision missing", c2, f"seq {top[c2]}"),
            ("decision altered", c2, "seq 0: outcome"),
            ("row behind", c3, f"version {version[c3] - 1}, the histories' {version[c3]}"),
            ("report missing", c3, report),
            ("decision without history", c3, f"seq {top[c3] + 50}"),
            ("report altered", skd_of, skd),
            ("row without history", "R-FORGED", ""),
            ("report without history", c1, "0-forged"),
            ("sanction without history", c2, "APS"),
            ("decision without history", "R-FORGED", "seq 0"),
            ("report without history", "R-FORGED", "r-forged"),
        ]
    ), named
    assert not damaged.ok
    # The same, a round at a time in chunks (what the command runs: nothing held grows with it).
    streamed = await check_round(client, pool, round_id, data_converter(keys), chunk=2)
    assert sorted((d.kind, d.applicant_id, d.detail) for d in streamed.differences) == named
    assert streamed.applicants == 3

    # The auditor's command says the same, and exits 1; it changes nothing.
    data = tmp_path / "data"
    env = command_env(stack.temporal_address, stack.database_url, keys, data, COLUMNS="200")

    def audit(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "audit.py"), "check-read-model", round_id, *arguments],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    shown = await asyncio.to_thread(audit)
    assert shown.returncode == 1, shown.stderr
    for kind in ("row missing", "row altered", "row behind", "decision without history"):
        assert kind in shown.stdout, shown.stdout
    assert "R-FORGED" in shown.stdout and c1 in shown.stdout
    # In two processes, a journey a chunk: the same differences, listed in the same order.
    shared = await asyncio.to_thread(audit, "--processes", "2", "--chunk", "1")
    assert shared.returncode == 1, shared.stderr
    assert shared.stdout == shown.stdout
    assert len((await check(pool, found)).differences) == len(damaged.differences)

    # Repaired: every difference the histories explain is made good, through the read model's
    # own write; what they do not explain stays, named.
    fixed = await repair(pool, ReadModel(pool, ColumnCipher.from_keys(keys)), found)
    assert sorted((d.kind, d.applicant_id) for d in fixed.differences) == sorted(
        [
            ("decision without history", c3),
            ("row without history", "R-FORGED"),
            ("report without history", c1),
            ("sanction without history", c2),
            ("decision without history", "R-FORGED"),
            ("report without history", "R-FORGED"),
        ]
    )
    assert fixed.repaired == len(damaged.differences) - 6
    # What is left is for a person: the forged rows go by hand (the row and c3's decision below).
    await pool.execute("DELETE FROM stage_reports WHERE round_id = $1 AND report_id IN ('0-forged', 'r-forged')", round_id)  # fmt: skip
    await pool.execute("DELETE FROM sanctions WHERE kind = 'APS' AND origin = $1", f"{round_id}/{c2}")  # fmt: skip
    await pool.execute("DELETE FROM decisions WHERE round_id = $1 AND applicant_id = 'R-FORGED'", round_id)  # fmt: skip
    after = await snapshot(pool, round_id)
    after["applicants"] = [r for r in after["applicants"] if r["applicant_id"] != "R-FORGED"]
    after["decisions"] = [
        r for r in after["decisions"] if (r["applicant_id"], r["seq"]) != (c3, top[c3] + 50)
    ]
    # The lost notification is back, to be delivered; everything else as the journeys wrote it.
    assert after == before

    # What is left is for a person; once they removed it, the command finds nothing, exit 0.
    await pool.execute("DELETE FROM applicants WHERE round_id = $1 AND applicant_id = 'R-FORGED'", round_id)  # fmt: skip
    await pool.execute("DELETE FROM decisions WHERE round_id = $1 AND applicant_id = $2 AND seq = $3", round_id, c3, top[c3] + 50)  # fmt: skip
    good = await asyncio.to_thread(audit, "--repair")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "0 differences made good" in good.stdout
    assert "holds what the histories of its 3 applicants wrote" in " ".join(good.stdout.split())


async def test_a_row_behind_with_its_formasi_altered_is_made_good_in_one_repair(
    client, keys, running_worker
):
    """The read model's write brings a row behind to the histories' version but never rewrites
    its formasi_code (a journey's formasi does not change): the repair overwrites the content of
    a row that was behind too, so one pass leaves it clean (review of 12-07: it took two)."""
    settings, pool = running_worker
    round_id, ids = await run_small_round(
        client, settings.task_queue, keys.pseudonym_key, answer_within=1
    )
    found = await derived(client, keys, round_id)
    assert (await check(pool, found)).differences == []
    before = await snapshot(pool, round_id)
    c1 = ids["C1"]
    await pool.execute("UPDATE applicants SET version = version - 1, formasi_code = 'F-OTHER' WHERE round_id = $1 AND applicant_id = $2", round_id, c1)  # fmt: skip
    damaged = await check(pool, found)
    assert [d.kind for d in damaged.differences] == ["row behind"], damaged.differences

    fixed = await repair(pool, ReadModel(pool, ColumnCipher.from_keys(keys)), found)
    assert fixed.differences == [] and fixed.repaired == 1, fixed.differences
    assert (await check(pool, found)).differences == []
    assert await snapshot(pool, round_id) == before


async def test_a_notification_rewritten_is_named_and_sealed_again_from_the_histories(
    client, keys, running_worker, stack, tmp_path
):
    """A notification's stored content is held to what its journey wrote: one rewritten in clear
    text (the deliverer sends a clear row's text as it stands) and one whose sealed value no
    longer opens are each 'notification altered', without their text in the output; the repair
    seals the histories' text again, to be delivered (review of 12-07: only the key was
    compared)."""
    settings, pool = running_worker
    round_id, ids = await run_small_round(
        client, settings.task_queue, keys.pseudonym_key, answer_within=1
    )
    cipher = ColumnCipher.from_keys(keys)
    found = await derived(client, keys, round_id)
    assert (await check(pool, found, cipher=cipher)).differences == []
    before = await snapshot(pool, round_id)
    c1, c2 = ids["C1"], ids["C2"]
    clear = next(r["key"] for r in before["notifications"] if r["applicant_id"] == c1)
    sealed = next(r["key"] for r in before["notifications"] if r["applicant_id"] == c2)
    forged = "Selamat, Anda dinyatakan LULUS (P/L)"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE notifications SET sealed = NULL, text = $4 WHERE round_id = $1 AND applicant_id = $2 AND key = $3", round_id, c1, clear, forged)  # fmt: skip
        await conn.execute("UPDATE notifications SET sealed = overlay(sealed placing '\\x00'::bytea from 40 for 1) WHERE round_id = $1 AND applicant_id = $2 AND key = $3", round_id, c2, sealed)  # fmt: skip

    named = [
        (d.kind, d.applicant_id) for d in (await check(pool, found, cipher=cipher)).differences
    ]
    assert named == sorted([("notification altered", c1), ("notification altered", c2)]), named
    # Without the payload keys, the clear text is named still.
    blind = await check(pool, found)
    assert [(d.kind, d.applicant_id) for d in blind.differences] == [("notification altered", c1)]

    data = tmp_path / "data"
    env = command_env(stack.temporal_address, stack.database_url, keys, data, COLUMNS="200")
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(ROOT / "audit.py"), "check-read-model", round_id],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 1, shown.stderr
    assert shown.stdout.count("notification altered") == 3, shown.stdout  # the count, and each
    assert "LULUS" not in shown.stdout + shown.stderr

    fixed = await repair(pool, ReadModel(pool, cipher), found)
    assert fixed.differences == [] and fixed.repaired == 2, fixed.differences
    assert (await check(pool, found, cipher=cipher)).differences == []
    after = await snapshot(pool, round_id)
    rewritten = {(c1, clear), (c2, sealed)}
    assert all(
        r["pending"] for r in after["notifications"] if (r["applicant_id"], r["key"]) in rewritten
    )
    stored = await pool.fetch("SELECT text, notice, sealed FROM notifications WHERE round_id = $1", round_id)  # fmt: skip
    assert all(r["text"] == "" and r["notice"] is None and r["sealed"] for r in stored)


async def test_a_notification_no_history_wrote_is_named_and_left_for_a_person(
    client, keys, running_worker
):
    """A notification row beside a journey's own, or of an applicant no journey has, is one the
    deliverer would send: 'notification without history', left for a person (review of 12-07:
    only the histories' keys were looked up, so a forged message in the queue passed)."""
    settings, pool = running_worker
    round_id, ids = await run_small_round(
        client, settings.task_queue, keys.pseudonym_key, answer_within=1
    )
    cipher = ColumnCipher.from_keys(keys)
    found = await derived(client, keys, round_id)
    assert (await check(pool, found, cipher=cipher)).differences == []
    c1 = ids["C1"]
    await pool.execute("INSERT INTO notifications (round_id, applicant_id, key, text) VALUES ($1, $2, 'forged', 'Anda LULUS'), ($1, 'R-NOBODY', 'forged', 'Anda LULUS')", round_id, c1)  # fmt: skip

    damaged = await check(pool, found, cipher=cipher)
    assert [(d.kind, d.applicant_id, d.detail) for d in damaged.differences] == sorted(
        [
            ("notification without history", c1, "forged"),
            ("notification without history", "R-NOBODY", "forged"),
        ]
    ), damaged.differences
    fixed = await repair(pool, ReadModel(pool, cipher), found)
    assert [d.kind for d in fixed.differences] == ["notification without history"] * 2
    assert fixed.repaired == 0
