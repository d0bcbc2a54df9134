"""The sanctions register across rounds, on the real stack: an APS after passing bars the NIK from
the next 2 rounds (and from no later one), a national list bars too, a bad list is refused row by
row, and the register never holds a NIK."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from rich.console import Console
from temporalio.client import WorkflowExecutionStatus
from typer.testing import CliRunner

from activities.readmodel import ReadModel
from activities.sanctions import SanctionChecker, record_round
from auditing.readmodel import check_round
from client.api import RecruitmentApi
from client.sanctions import ListRow, SanctionRegister, sanction_subject
from domain.codes import Stage
from domain.messages import (
    AdminReport,
    CloseWindow,
    GateReport,
    JourneyState,
    SanctionCheck,
    SkbScoreReport,
    SkdReport,
    Withdrawal,
)
from domain.registration import mask_nik
from gateway.portal import indonesian
from runtime.connection import data_converter
from runtime.sealed import ColumnCipher
from starter import Context, cli, import_registrations, import_sanctions, list_sanctions
from tests.flows.test_round_end_to_end import _wait_phase, _wait_stage
from tests.roundkit import (
    OPEN_NOW,
    OPERATOR,
    TEST_KEYRING,
    compressed_round,
    formasi,
    registration,
)
from workflows.ids import journey_workflow_id


def _person(birth: date):
    """A registration whose NIK no other test uses (the register outlives a test)."""
    return registration(uuid.uuid4().int % 9000 + 1000, "F1", birth=birth)


async def _round(api: RecruitmentApi, tmp_path: Path, prefix: str, seconds=OPEN_NOW):
    round_id = f"{prefix}-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1)], seconds, appeal_window=10)
    path = tmp_path / f"{round_id}.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await api.create_round(path, OPERATOR)
    return config, path


async def _until(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, f"never {what}"
        await asyncio.sleep(0.2)
    return result


async def _win_then_withdraw(
    api: RecruitmentApi, client, tmp_path: Path, reg
) -> tuple[str, JourneyState]:
    """Round 1: the applicant wins the formasi's only seat, then withdraws (APS): the round id and
    the journey's state at its end."""
    seconds = {**OPEN_NOW, "registration": (-60, 3), "administration": (3, 600)}
    config, _ = await _round(api, tmp_path, "sanction-r1", seconds)
    round_id = config.round_id

    async def close(window):
        await _wait_phase(api, round_id, window)
        await api.command(
            round_id,
            CloseWindow(
                report_id=f"close-{window}", reported_by=OPERATOR, window=window, reason="done"
            ),
        )

    applicant = (await api.register(config, reg, "sscasn")).applicant_id
    assert applicant
    await _wait_stage(client, round_id, applicant, {Stage.ADMIN_CHECK})
    await api.report(
        round_id, applicant, AdminReport(report_id="adm", reported_by="bkpsdm-verifikator")
    )
    await close("administration")
    await _wait_stage(client, round_id, applicant, {Stage.SKD})
    await api.report(
        round_id,
        applicant,
        SkdReport(report_id="skd", reported_by="cat-bkn", twk=120, tiu=140, tkp=190),
    )
    await close("skd")
    await _wait_stage(client, round_id, applicant, {Stage.SKB})
    for comp, who, score in (("cat", "cat-bkn", 450), ("praktik", "panel-praktik", 90)):
        await api.report(
            round_id,
            applicant,
            SkbScoreReport(report_id=comp, reported_by=who, component=comp, score=score),
        )
    await api.report(
        round_id,
        applicant,
        GateReport(report_id="h", reported_by="rsud", component="health", decision="MS"),
    )
    await close("skb")
    await _wait_stage(client, round_id, applicant, {Stage.FILING})
    await api.report(
        round_id,
        applicant,
        Withdrawal(report_id="aps", reported_by="sscasn", reason="took a private-sector job"),
    )
    ended = await _wait_stage(client, round_id, applicant, {Stage.ENDED})
    assert (ended.terminal.value, ended.sanction_rounds) == ("APS", 2)
    # Its run completed: the task that wrote its last row is in its history. A query answers
    # ENDED while that task's local activity is still running, and a check of the read model
    # against the history then found the row a version ahead of it (a fresh clone's run did).
    handle = client.get_workflow_handle(journey_workflow_id(round_id, applicant))

    async def completed() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await _until(completed, "the journey's run completed")
    return round_id, ended


@pytest.mark.asyncio(loop_scope="session")
async def test_aps_after_passing_bars_the_nik_from_the_next_two_rounds_only(
    client, keys, running_worker, tmp_path
):
    settings, pool = running_worker
    register = SanctionRegister(pool)
    api = RecruitmentApi(
        client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING, sanctions=register
    )
    reg = _person(date(1991, 3, 9))
    subject = sanction_subject(keys.pseudonym_key, reg.nik)

    r1, ended = await _win_then_withdraw(api, client, tmp_path, reg)
    [entry] = await _until(lambda: register.entries(subject), "an entry in the register")
    assert (entry.kind, entry.imposed_by, entry.rounds) == ("APS", r1, 2)
    # Imposed at the time the journey decided its withdrawal, as its history records it; and
    # check-read-model, which compares that time too, finds the register as the history says.
    [withdrew] = [d for d in ended.decisions if d.outcome == "APS"]
    assert entry.imposed_at == withdrew.at
    checked = await check_round(client, pool, r1, data_converter(keys))
    assert (checked.applicants, checked.differences) == (1, [])

    # Round 2, through starter.py's import: the row refused at field nik, exit 1.
    config2, path2 = await _round(api, tmp_path, "sanction-r2")
    rows = tmp_path / "r2.csv"
    header = "nik,name,birth_date,gender,education_level,major,gpa,formasi_code,category"
    rows.write_text(
        f"{header}\n{reg.nik},{reg.name},{reg.birth_date},L,S1,Teknik Informatika,3.2,F1,umum\n"
    )
    ctx = Context(api, "", Console(file=io.StringIO(), width=250))
    errors = tmp_path / "r2.errors.csv"
    summary = await import_registrations(ctx, path2, rows, errors)
    assert summary.exit_code == 1
    [refusal] = summary.refusals
    assert (refusal.field, refusal.value) == ("nik", mask_nik(reg.nik))
    assert refusal.reason == (
        f"barred until the 2nd round opening after round {r1} is over "
        f"(round {config2.round_id} is the 1st) by round {r1} (APS)"
    )
    assert reg.nik not in errors.read_text()

    # Round 3 is the 2nd of them: still barred. Round 4 is past the sanction: registered.
    config3, _ = await _round(api, tmp_path, "sanction-r3")
    third = await api.register(config3, reg, "sscasn")
    assert third.status == "refused"
    assert f"(round {config3.round_id} is the 2nd) by round {r1} (APS)" in third.refusals[0].reason
    assert indonesian(third.refusals[0].reason) == (  # as the portal shows it at the NIK field
        f"Anda tidak dapat mendaftar pada 2 periode seleksi setelah seleksi {r1} karena "
        "mengundurkan diri setelah dinyatakan lulus (APS) pada seleksi itu; seleksi "
        f"{config3.round_id} adalah periode ke-2"
    )
    config4, _ = await _round(api, tmp_path, "sanction-r4")
    fourth = await api.register(config4, reg, "sscasn")
    assert fourth.status == "registered", fourth.refusals
    # Admitted by its round: nothing of it still in flight when the worker stops.
    await _wait_stage(client, config4.round_id, fourth.applicant_id, {Stage.ADMIN_CHECK})

    # The register holds the NIK's keyed pseudonym, never the NIK.
    clear = await pool.fetchval(
        "SELECT count(*) FROM sanctions s WHERE s::text LIKE '%' || $1 || '%'", reg.nik
    )
    assert clear == 0

    # `sanctions list --nik` shows the entry without the NIK.
    await list_sanctions(ctx, reg.nik, as_json=True)
    printed = ctx.console.file.getvalue()
    [listed] = json.loads(printed.strip().splitlines()[-1])
    assert (listed["kind"], listed["imposed_by"], listed["rounds"]) == ("APS", r1, 2)
    assert reg.nik not in printed


@pytest.mark.asyncio(loop_scope="session")
async def test_an_aps_entry_turned_into_a_last_day_is_named_and_made_good_by_the_repair(
    client, keys, running_worker, tmp_path
):
    """An APS entry bars a number of rounds, never to a date: one rewritten to bar until a last
    day (rounds emptied, barred_until set) is 'sanction altered' naming both, and the repair
    puts the rounds back and the date away (review of 12-07: barred_until was not compared, and
    the repair set the rounds beside the date, which the table's CHECK refuses, and failed)."""
    settings, pool = running_worker
    register = SanctionRegister(pool)
    api = RecruitmentApi(
        client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING, sanctions=register
    )
    reg = _person(date(1993, 5, 17))
    r1, ended = await _win_then_withdraw(api, client, tmp_path, reg)
    subject = sanction_subject(keys.pseudonym_key, reg.nik)
    await _until(lambda: register.entries(subject), "an entry in the register")
    origin = f"{r1}/{ended.applicant_id}"
    await pool.execute("UPDATE sanctions SET rounds = NULL, barred_until = '2099-12-31' WHERE kind = 'APS' AND origin = $1", origin)  # fmt: skip

    checked = await check_round(client, pool, r1, data_converter(keys))
    assert [(d.kind, d.detail) for d in checked.differences] == [
        ("sanction altered", "APS: rounds, barred_until")
    ]
    read_model = ReadModel(pool, ColumnCipher.from_keys(keys))
    fixed = await check_round(client, pool, r1, data_converter(keys), read_model)
    assert (fixed.differences, fixed.repaired) == ([], 1)
    entry = await pool.fetchrow("SELECT rounds, barred_until FROM sanctions WHERE kind = 'APS' AND origin = $1", origin)  # fmt: skip
    assert (entry["rounds"], entry["barred_until"]) == (2, None)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_national_list_bars_by_date_and_by_rounds_counted_from_its_import(
    client, keys, running_worker, tmp_path
):
    settings, pool = running_worker
    register = SanctionRegister(pool)
    api = RecruitmentApi(
        client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING, sanctions=register
    )
    by_date, by_rounds = _person(date(1992, 4, 10)), _person(date(1993, 5, 11))
    source = f"BKN-{uuid.uuid4().hex[:6]}"
    listed = tmp_path / "national.csv"
    listed.write_text(
        "nik,barred_until,rounds,reason,source\n"
        f"{by_date.nik},2099-12-31,,pemalsuan ijazah,{source}\n"
        f"{by_rounds.nik},,1,mengundurkan diri,{source}\n"
    )
    ctx = Context(api, "", Console(file=io.StringIO(), width=250))
    await import_sanctions(ctx, listed)
    await import_sanctions(ctx, listed)  # a re-import changes nothing
    assert "2 rows: 0 new, 0 updated, 2 unchanged" in ctx.console.file.getvalue()

    # The first round whose registration opens after the import (the rounds are counted from it).
    config, _ = await _round(api, tmp_path, "sanction-list", {**OPEN_NOW, "registration": (1, 300)})
    applying = datetime.now(UTC) + timedelta(seconds=2)
    first = await api.register(config, by_date, "sscasn", now=applying)
    second = await api.register(config, by_rounds, "sscasn", now=applying)
    assert first.status == second.status == "refused"
    assert first.refusals[0].reason == (
        f"barred until 2099-12-31 by national list {source} (pemalsuan ijazah)"
    )
    assert second.refusals[0].reason.endswith(
        f"(round {config.round_id} is the 1st) by national list {source} (mengundurkan diri)"
    )
    assert second.refusals[0].value == mask_nik(by_rounds.nik)
    assert indonesian(first.refusals[0].reason) == (
        f"Anda tidak dapat mendaftar sampai 31 Des 2099 menurut daftar sanksi nasional {source} "
        "(pemalsuan ijazah)"
    )
    # A registrar that never asks the register (given none here) gets no further: each journey
    # asks it itself and refuses, with the same reason, which the portal shows in Indonesian.
    unchecked = RecruitmentApi(
        client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING
    )
    for person, by_api in ((by_date, first), (by_rounds, second)):
        result = await unchecked.register(config, person, "sscasn", now=applying)
        assert result.status == "refused", result
        [refusal] = result.refusals
        assert refusal.field == "registration"
        assert refusal.reason == (
            f"registration refused: nik={mask_nik(person.nik)!r}: {by_api.refusals[0].reason}"
        )
    assert indonesian(refusal.reason) == indonesian(second.refusals[0].reason)
    clear = await pool.fetchval(
        "SELECT count(*) FROM sanctions s WHERE s::text LIKE '%' || $1 || '%' "
        "OR s::text LIKE '%' || $2 || '%'",
        by_date.nik,
        by_rounds.nik,
    )
    assert clear == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_the_journey_s_check_counts_rounds_by_the_calendar_when_the_view_has_no_opening(
    keys, running_worker
):
    """A board written before `registration_opens` existed gives the journey's check no opening:
    the register then counts the round by its opening on the calendar, and a round on neither is
    no counted round (an entry with an end date still bars)."""
    _, pool = running_worker
    register = SanctionRegister(pool)
    by_rounds, by_date = _person(date(1994, 6, 12)), _person(date(1995, 7, 13))
    source = f"BKN-{uuid.uuid4().hex[:6]}"
    await register.import_list(
        [ListRow(3, by_date.nik, None, date(2099, 12, 31), "pemalsuan", source)],
        keys.pseudonym_key,
    )
    # An entry imposed far ahead, so that no other test's round opens between it and the round
    # put on the calendar just after it.
    imposed = datetime(2090, 1, 1, tzinfo=UTC)
    await pool.execute(
        "INSERT INTO sanctions (subject, kind, origin, imposed_by, imposed_at, rounds, reason) "
        "VALUES ($1, 'national_list', $2, $2, $3, 1, 'mengundurkan diri')",
        sanction_subject(keys.pseudonym_key, by_rounds.nik),
        source,
        imposed,
    )
    on_calendar, unknown = f"cal-{uuid.uuid4().hex[:6]}", f"unk-{uuid.uuid4().hex[:6]}"
    await record_round(pool, on_calendar, imposed + timedelta(days=1))
    checker = SanctionChecker(pool)

    async def reasons(round_id: str, reg) -> list[str]:
        check = SanctionCheck(
            round_id=round_id,
            registration_opens=None,
            subject=sanction_subject(keys.pseudonym_key, reg.nik),
            applied_on=date.today(),
        )
        return (await checker.check_sanctions(check)).reasons

    assert await reasons(on_calendar, by_rounds) == [
        f"barred until the 1st round opening after 2090-01-01 (the list's import) is over "
        f"(round {on_calendar} is the 1st) by national list {source} (mengundurkan diri)"
    ]
    assert await reasons(unknown, by_rounds) == []
    assert await reasons(unknown, by_date) == [
        f"barred until 2099-12-31 by national list {source} (pemalsuan)"
    ]
    # Nothing about the unknown round was written to the calendar (no opening to write).
    assert (
        await pool.fetchval("SELECT count(*) FROM sanction_calendar WHERE round_id = $1", unknown)
        == 0
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_the_instansi_rounds_of_one_national_round_count_as_one_round_of_a_sanction(
    keys, running_worker
):
    """DOMAIN.md stage 11: barred from the next 2 rounds, the portal's "2 periode seleksi". The
    instansi rounds of one national recruitment open on days of their own: counted one by one,
    two rounds of the sanctioning year opened after its round used the sanction up, and the next
    year's rounds took the NIK. Counted by period, the two next years' rounds are barred and the
    third year's is not."""
    _, pool = running_worker
    subject = sanction_subject(keys.pseudonym_key, _person(date(1993, 4, 5)).nik)
    tag = uuid.uuid4().hex[:6]
    base = datetime(2095, 8, 20, 1, tzinfo=UTC)  # far ahead: no other test's round in between
    rounds = {  # round -> (days after base, the national round it joined)
        f"kab-a-95-{tag}": (0, f"N95-{tag}"),
        f"kab-b-95-{tag}": (1, f"N95-{tag}"),
        f"kab-c-95-{tag}": (2, f"N95-{tag}"),
        f"kab-a-96-{tag}": (365, f"N96-{tag}"),
        f"kab-b-96-{tag}": (366, f"N96-{tag}"),
        f"kab-a-97-{tag}": (730, f"N97-{tag}"),
        f"kab-a-98-{tag}": (1095, f"N98-{tag}"),
    }
    for round_id, (days, national) in rounds.items():
        await record_round(pool, round_id, base + timedelta(days=days), national)
    sanctioning = f"kab-a-95-{tag}"
    await pool.execute(
        "INSERT INTO sanctions (subject, kind, origin, imposed_by, imposed_at, rounds, reason) "
        "VALUES ($1, 'APS', $2, $3, $4, 2, 'mengundurkan diri')",
        subject,
        f"{sanctioning}/REGNO",
        sanctioning,
        base + timedelta(days=120),
    )
    checker = SanctionChecker(pool)

    async def reasons(round_id: str) -> list[str]:
        check = SanctionCheck(
            round_id=round_id, registration_opens=None, subject=subject, applied_on=date.today()
        )
        return (await checker.check_sanctions(check)).reasons

    def barred(round_id: str, nth: str) -> list[str]:
        return [
            f"barred until the 2nd round opening after round {sanctioning} is over "
            f"(round {round_id} is the {nth}) by round {sanctioning} (APS)"
        ]

    assert await reasons(f"kab-a-96-{tag}") == barred(f"kab-a-96-{tag}", "1st")
    assert await reasons(f"kab-b-96-{tag}") == barred(f"kab-b-96-{tag}", "1st")
    assert await reasons(f"kab-a-97-{tag}") == barred(f"kab-a-97-{tag}", "2nd")
    assert await reasons(f"kab-a-98-{tag}") == []


def test_a_national_list_with_bad_rows_names_each_and_imports_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "nik,barred_until,rounds,reason,source\n"
        "3273011705980001,2027-02-30,,pemalsuan,BKN-1\n"  # no such date
        "3273011705980002,,0,mengundurkan diri,BKN-1\n"  # rounds outside 1-10
        "32730117059800,,2,mengundurkan diri,BKN-1\n"  # 14 digits
        "3273011705980004,2027-01-01,2,dua-duanya,BKN-1\n"  # both terms
        "3273011705980005,2027-01-01,,,BKN-1\n"  # no reason
        "3273011705980006,2027-01-01,,ok,BKN-1\n"
        "3273011705980006,2028-01-01,,again,BKN-1\n"  # listed twice for one source
    )

    result = CliRunner().invoke(cli, ["sanctions", "import", str(bad)])

    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    for expected in (
        "line 2: field barred_until: value '2027-02-30': not a date YYYY-MM-DD",
        "line 3: field rounds: value '0': outside 1-10",
        "line 4: field nik: value '3273******9800': a NIK is 16 digits",
        "line 5: field barred_until: value '2027-01-01|2': give exactly one of barred_until",
        "line 6: field reason: value '': missing: every row needs a reason",
        "line 8: field nik: value '3273********0006': listed again for source BKN-1 (first on line 7)",
        "6 problems, nothing imported",
    ):
        assert expected in out, expected
    assert "3273011705980006" not in out


def test_a_national_list_saved_with_semicolons_is_read_as_the_commas_one(tmp_path):
    from client.sanctions import read_national_list

    commas = tmp_path / "commas.csv"
    commas.write_text(
        "nik,barred_until,rounds,reason,source\n"
        "3273011705980001,2027-06-30,,pemalsuan dokumen,BKN-1\n"
        "3273011705980002,,2,mengundurkan diri,BKN-1\n"
    )
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_bytes(
        b"\xef\xbb\xbf" + commas.read_text().replace(",", ";").replace("\n", "\r\n").encode("utf-8")
    )
    assert read_national_list(semicolons) == read_national_list(commas)
    assert len(read_national_list(commas)) == 2
