"""The public announcement pages on the real stack: a small round through administration and SKD,
published with `starter.py announce`'s function, read through the gateway, checked offline.

F1 (1 seat, so 3 go on to SKB) has three applicants on SKD total 400: the TKP, then the TIU
decides their order. A T/L with the highest total stands below the P; the absent one is TH.
"""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import json
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import tomli_w
from rich.console import Console
from typer.testing import CliRunner

from client.announcements import AnnouncementNotReady, AnnouncementStage, wib
from client.api import RecruitmentApi, RefusedError
from client.publication import (
    ZERO_SHA256,
    Publication,
    audience,
    check_publications,
    check_records,
    signature_check,
    stored_documents,
)
from domain.administration import DocumentFinding
from domain.codes import Stage
from domain.messages import (
    AdminReport,
    CloseWindow,
    Disqualification,
    RecordPublication,
    SkdReport,
)
from starter import Context, announce
from tests.flows.test_round_end_to_end import _wait_phase, _wait_stage
from tests.roundkit import (
    OPERATOR,
    TEST_KEYRING,
    command_env,
    compressed_round,
    formasi,
    registration,
)
from tests.roundkit import (
    test_signer as key_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]

FORMASI_OF = {"A": "F1", "B": "F1", "C": "F1", "D": "F1", "E": "F1", "G": "F1", "H": "F2"}
FORMASI_OF["I"] = "F2"
SKD = {  # twk, tiu, tkp
    "A": (100, 120, 180),  # 400, TKP 180, TIU 120
    "B": (110, 110, 180),  # 400, TKP 180, TIU 110: after A
    "C": (105, 100, 195),  # 400, TKP 195: first
    "D": (90, 100, 170),  # 360: passed, 4th of F1: P
    "E": (60, 150, 200),  # 410, but TWK 60 < 65: T/L
    "H": (100, 100, 170),  # F2's only sitter: P/L
}  # G sits nothing: TH; I is TMS at the administrative check
F1_SKD_ORDER = [("C", "P/L"), ("A", "P/L"), ("B", "P/L"), ("D", "P"), ("E", "T/L"), ("G", "TH")]


async def _until(what: str, probe, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := await probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        await asyncio.sleep(0.3)
    return value


def _rows_of(page: str, formasi_code: str) -> list[tuple[str, str]]:
    """(registration number, the code cell's text) of each row under a formasi, in page order."""
    section = page.split(f'id="formasi-{formasi_code}"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r'<tr id="peserta-([A-Z2-7]{16})">(.*?)</tr>', section, re.S)
    out = []
    for applicant_id, cells in rows:
        code = re.search(r'<td class="code">(.*?)</td>', cells, re.S)
        assert code, cells
        out.append((applicant_id, re.sub(r"<[^>]+>", " ", code.group(1)).split()))
    return out


async def test_public_announcements_in_official_order_signed_and_chained(
    http, gateway_state, client, keys, running_worker, stack, tmp_path
):
    settings, pool = running_worker
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    ctx = Context(api, stack.database_url, Console(file=io.StringIO(), width=200))
    round_id = f"pub-{uuid.uuid4().hex[:6]}"
    config = compressed_round(
        round_id,
        [formasi("F1", 1), formasi("F2", 1, jabatan="Arsiparis Ahli Pertama")],
        {
            "registration": (-60, 300),
            "administration": (300, 600),
            "skd": (600, 900),
            "skb": (900, 1200),
            "filing": (1200, 1500),
            "latsar": (1500, 1800),
        },
        t0=datetime.now(UTC),
    )
    round_file = tmp_path / "round.toml"
    round_file.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(round_file, OPERATOR)
    operator = key_of(OPERATOR)

    async def close(window: str) -> None:
        await _wait_phase(api, round_id, window)
        await api.command(
            round_id,
            CloseWindow(
                report_id=f"close-{window}", reported_by=OPERATOR, window=window, reason="all in"
            ),
        )

    people = {n: registration(i, f) for i, (n, f) in enumerate(sorted(FORMASI_OF.items()), 1)}
    ids = {}
    for name, reg in people.items():
        result = await api.register(config, reg, "sscasn")
        assert result.status == "registered", result.refusals
        ids[name] = result.applicant_id
    name_of = {v: k for k, v in ids.items()}
    await close("registration")

    for name in ids:
        await _wait_stage(client, round_id, ids[name], {Stage.ADMIN_CHECK})
        tms = [DocumentFinding(document="ijazah", reason="not legalised")] if name == "I" else []
        await api.report(
            round_id,
            ids[name],
            AdminReport(report_id=f"adm-{name}", reported_by="bkpsdm-verifikator", findings=tms),
        )
    with pytest.raises(AnnouncementNotReady, match="has no admin result yet"):
        await announce(ctx, round_id, AnnouncementStage.ADMIN, tmp_path, operator)
    await close("administration")

    async def admin_written():
        return not await pool.fetchval(
            "SELECT count(*) FROM applicants WHERE round_id = $1 AND admin IS NULL", round_id
        )

    await _until("every administrative result in the read model", admin_written)
    with pytest.raises(AnnouncementNotReady, match="has no skd result yet"):
        await announce(ctx, round_id, AnnouncementStage.SKD, tmp_path, operator)
    with pytest.raises(RefusedError, match="cat-bkn is not an operator"):
        await announce(ctx, round_id, AnnouncementStage.ADMIN, tmp_path, key_of("cat-bkn"))
    admin = await announce(ctx, round_id, AnnouncementStage.ADMIN, tmp_path / "out", operator)
    assert (admin.publication.seq, admin.publication.prev_sha256) == (1, ZERO_SHA256)

    for name, (twk, tiu, tkp) in SKD.items():
        await _wait_stage(client, round_id, ids[name], {Stage.SKD})
        await api.report(
            round_id,
            ids[name],
            SkdReport(report_id=f"skd-{name}", reported_by="cat-bkn", twk=twk, tiu=tiu, tkp=tkp),
        )
    await close("skd")

    async def skd_written():
        return not await pool.fetchval(
            "SELECT count(*) FROM applicants WHERE round_id = $1 AND admin = 'MS' "
            "AND skd_code IS NULL AND terminal IS NULL",
            round_id,
        )

    await _until("every SKD result in the read model", skd_written)
    skd = await announce(ctx, round_id, AnnouncementStage.SKD, tmp_path / "out", operator)
    published = skd.publication
    assert skd.new and published.seq == 2
    assert published.prev_sha256 == admin.publication.body_sha256()
    again = await announce(ctx, round_id, AnnouncementStage.SKD, tmp_path / "out", operator)
    assert not again.new and again.publication.seq == 2  # nothing changed: nothing published

    # --- the pages -------------------------------------------------------------------------------
    index = await http.get("/pengumuman")
    assert index.status_code == 200
    assert f'href="/pengumuman/{round_id}/2"' in index.text and "<script" not in index.text

    round_page = await http.get(f"/pengumuman/{round_id}")
    assert round_page.status_code == 200
    assert (
        config.instansi in round_page.text and f"/pengumuman/{round_id}/1.json" in round_page.text
    )

    page = (await http.get(f"/pengumuman/{round_id}/2")).text
    assert [(name_of[a], code[0]) for a, code in _rows_of(page, "F1")] == F1_SKD_ORDER
    assert [(name_of[a], code[0]) for a, code in _rows_of(page, "F2")] == [("H", "P/L")]
    for header in ("Peringkat", "Nomor Peserta", "Nama", "TWK", "TIU", "TKP", "Total SKD", "Kode"):
        assert f'<th scope="col">{header}</th>' in page
    for code, meaning in (("T/L", "Tidak Lulus"), ("TH", "Tidak Hadir"), ("DIS", "Diskualifikasi")):
        assert f"<dt>{code}</dt><dd>{meaning}" in page
    assert config.instansi in page and "Arsiparis Ahli Pertama" in page
    assert wib(published.published_at) in page and "WIB" in page
    assert '<div class="table-wrap" role="region" tabindex="0"' in page and "<script" not in page
    assert "Peserta 3" in page and people["C"].nik not in page  # the name, never the NIK
    assert f"verify-announcements {round_id}-2.json --round" in page

    table = list(csv.reader(io.StringIO((await http.get(f"/pengumuman/{round_id}/2.csv")).text)))
    assert table[0][:4] == ["Kode Formasi", "Jabatan", "Unit Kerja", "No"]
    assert [(name_of[r[5]], r[-2]) for r in table[1:] if r[0] == "F1"] == F1_SKD_ORDER
    c_row = next(r for r in table if r[5] == ids["C"])
    assert c_row[7:11] == ["105", "100", "195", "400"]  # TWK, TIU, TKP, total

    # --- the signed documents verify offline, and a changed one does not --------------------------
    documents = [
        (f"{n}.json", (await http.get(f"/pengumuman/{round_id}/{n}.json")).json()) for n in (1, 2)
    ]
    check = signature_check(config)
    result = check_publications(documents, round_id, check)
    assert result.ok, result.problems
    assert [c.chain for c in result.documents] == ["ok", "ok"]

    changed = copy.deepcopy(documents[1][1])
    changed["formasi"][0]["rows"][3]["tkp"] += 20  # D's TKP, as if D had passed higher
    problems = check_publications([documents[0], ("2.json", changed)], round_id, check).problems
    assert any("changed after publication" in p for p in problems), problems
    changed["body_sha256"] = Publication.model_validate_json(
        json.dumps({k: v for k, v in changed.items() if k != "body_sha256"})
    ).body_sha256()
    problems = check_publications([documents[0], ("2.json", changed)], round_id, check).problems
    assert problems and all("signature" in p for p in problems), problems

    swapped = [(s, {**d, "seq": 3 - d["seq"]}) for s, d in documents]  # 1 and 2 reordered
    assert not check_publications(swapped, round_id, check).ok
    # Validly signed, but not linked to the publication before it: the chain breaks.
    body = {k: v for k, v in documents[1][1].items() if k not in ("signature", "body_sha256")}
    stray = Publication.model_validate_json(
        json.dumps({**body, "seq": 3, "prev_sha256": "ab" * 32})
    )
    stray = operator.sign(stray, audience(round_id))
    linked = check_publications([*documents, ("3.json", stray.document())], round_id, check)
    assert [c.chain for c in linked.documents] == ["ok", "ok", "broken"]
    assert linked.documents[2].signature_ok and not linked.ok

    files = []
    for name, doc in [*documents, ("tampered.json", changed)]:
        path = tmp_path / name
        path.write_text(json.dumps(doc))
        files.append(str(path))
    from audit import app as audit_app

    runner = CliRunner()
    # audit.py runs its own event loop: a thread of its own, as on an auditor's machine.
    good = await asyncio.to_thread(
        runner.invoke, audit_app, ["verify-announcements", *files[:2], "--round", str(round_file)]
    )
    assert good.exit_code == 0, good.output
    bad = await asyncio.to_thread(
        runner.invoke,
        audit_app,
        ["verify-announcements", files[0], files[2], "--round", str(round_file)],
    )
    assert bad.exit_code == 1 and "signature" in bad.output

    # --- the lookup ------------------------------------------------------------------------------
    found = await http.get(f"/pengumuman/{round_id}/cari", params={"nomor": ids["C"].lower()})
    assert found.status_code == 200
    assert "TWK 105, TIU 100, TKP 195, total 400" in found.text and ">MS<" in found.text
    others = [a for n, a in ids.items() if n != "C"]
    assert not any(a in found.text for a in others) and "Peserta 3" not in found.text
    malformed = await http.get(f"/pengumuman/{round_id}/cari", params={"nomor": "12<b>x"})
    assert malformed.status_code == 422 and "tidak valid" in malformed.text
    assert "<b>x" not in malformed.text
    # A NIK typed where the number goes (the login form takes one): not shown back whole.
    nik = await http.get(f"/pengumuman/{round_id}/cari", params={"nomor": "3273014501950001"})
    assert nik.status_code == 422 and "tidak valid" in nik.text
    assert "3273014501950001" not in nik.text and "3273********0001" in nik.text
    unknown = await http.get(f"/pengumuman/{round_id}/cari", params={"nomor": "A" * 16})
    assert unknown.status_code == 404 and "tidak ditemukan" in unknown.text
    assert (await http.get(f"/pengumuman/{round_id}/9")).status_code == 404

    # --- DIS after publication: shown as such, and a correction is a new publication --------------
    await api.report(
        round_id,
        ids["B"],
        Disqualification(report_id="dis-B", reported_by=OPERATOR, reason="joki found in CAT log"),
    )

    async def b_disqualified():
        return await pool.fetchval(
            "SELECT terminal = 'DIS' FROM applicants WHERE round_id = $1 AND applicant_id = $2",
            round_id,
            ids["B"],
        )

    await _until("B's DIS in the read model", b_disqualified)
    page = (await http.get(f"/pengumuman/{round_id}/2")).text
    b_code = dict(_rows_of(page, "F1"))[ids["B"]]
    assert b_code == ["P/L", "DIS", "setelah", "pengumuman"]
    table = list(csv.reader(io.StringIO((await http.get(f"/pengumuman/{round_id}/2.csv")).text)))
    assert next(r for r in table if r[5] == ids["B"])[-1] == "DIS setelah pengumuman"

    with pytest.raises(RefusedError, match="--corrects 2"):
        await announce(ctx, round_id, AnnouncementStage.SKD, tmp_path / "out", operator)
    fix = await announce(
        ctx, round_id, AnnouncementStage.SKD, tmp_path / "out", operator, corrects=2
    )
    assert (fix.publication.seq, fix.publication.corrects) == (3, 2)
    assert "dikoreksi oleh" in (await http.get(f"/pengumuman/{round_id}/2")).text
    third = (await http.get(f"/pengumuman/{round_id}/3.json")).json()
    assert check_publications([*documents, ("3.json", third)], round_id, check).ok
    # Against the round on the server: its keys from its history, every stored publication.
    from audit import _round_record
    from runtime.connection import data_converter

    config_on_server, timeline, on_record = await _round_record(
        client, data_converter(keys), round_id
    )
    on_server = signature_check(
        config_on_server, lambda p: timeline.verify(p, p.published_at, audience(p.round_id))
    )
    stored_docs = await stored_documents(pool, round_id)
    stored = check_publications(stored_docs, round_id, on_server, complete=True)
    assert stored.ok and [c.chain for c in stored.documents] == ["ok", "ok", "ok"]
    # Each publication is on record in the round's history, with its hash.
    assert {seq: sha for seq, (sha, _, _) in on_record.items()} == {
        c.publication.seq: c.computed_sha256 for c in stored.documents if c.publication
    }
    check_records(stored, on_record, stored=True)
    assert stored.ok and not stored.notes
    # The chain's tail removed from the database (its owner can): the chain alone still holds,
    # the round's record names what is gone.
    cut = check_publications(stored_docs[:2], round_id, on_server, complete=True)
    assert cut.ok
    check_records(cut, on_record, stored=True)
    assert not cut.ok and "publication 3" in cut.problems[0] and "removed" in cut.problems[0]
    # The round takes one hash per number, each after the hash of the one before on record.
    third_sha = on_record[3][0]

    def record(seq: int, body: str, prev: str) -> RecordPublication:
        return RecordPublication(
            report_id=f"publication-{seq}-x",
            reported_by=OPERATOR,
            seq=seq,
            stage="skd",
            body_sha256=body,
            prev_sha256=prev,
        )

    with pytest.raises(RefusedError, match="publication 3 is on record with another hash"):
        await api.command(round_id, record(3, "ab" * 32, on_record[2][0]))
    with pytest.raises(RefusedError, match="does not follow publication 3 on record"):
        await api.command(round_id, record(4, "ab" * 32, "cd" * 32))
    assert third_sha == stored.documents[2].computed_sha256

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await pool.execute("UPDATE publications SET instansi = 'x' WHERE round_id = $1", round_id)

    # The lookup's rows: the table takes an INSERT into a publication already stored, and the
    # lookup shows it beside the publication's number. The auditor's check of the round on the
    # server holds every row to its signed body, and names it.
    env = command_env(stack.temporal_address, stack.database_url, keys, tmp_path / "data")

    def verify() -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                str(ROOT / "audit.py"),
                "verify-announcements",
                "--round-id",
                round_id,
            ],
            env={**env, "COLUMNS": "300"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    clean = await asyncio.to_thread(verify)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    stranger = "A" * 16  # no applicant of the round
    forged = dict(json.loads(await pool.fetchval(
        "SELECT row FROM publication_rows WHERE round_id = $1 AND seq = 2 AND applicant_id = $2",
        round_id, ids["C"],
    )), applicant_id=stranger)  # fmt: skip
    await pool.execute(
        "INSERT INTO publication_rows (round_id, seq, applicant_id, formasi_code, row) "
        "VALUES ($1, 2, $2, 'F1', $3::jsonb)",
        round_id,
        stranger,
        json.dumps(forged),
    )
    shown = await http.get(f"/pengumuman/{round_id}/cari", params={"nomor": stranger})
    assert shown.status_code == 200  # what the lookup reads, until the publication is checked
    caught = await asyncio.to_thread(verify)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    said = " ".join(caught.stdout.split())
    assert f"publication 2: the lookup shows a row for {stranger} (formasi F1, code 'P/L')" in said
