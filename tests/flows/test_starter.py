"""starter.py on the real stack: CSV imports and reports, resumption, status and announcements."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomli_w
from rich.console import Console
from temporalio.service import RPCError, RPCStatusCode

from client.api import RecruitmentApi, RefusedError, RegistrationResult
from client.csvio import REGISTRATION_COLUMNS, REPORT_KINDS, CsvFileError
from domain.codes import Stage
from domain.messages import Ack, JourneyState, RoundState
from starter import (
    Context,
    create_round,
    funnel,
    import_registrations,
    send_reports,
    status,
)
from tests.roundkit import OPERATOR, TEST_KEYRING, compressed_round, formasi, registration
from workflows.ids import journey_workflow_id

LATER = {
    "administration": (300, 310),
    "skd": (310, 320),
    "skb": (320, 330),
    "filing": (330, 340),
    "latsar": (340, 350),
}


def _context(client, keys, settings, stack, api: RecruitmentApi | None = None) -> Context:
    api = api or RecruitmentApi(
        client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING
    )
    return Context(api, stack.database_url, Console(file=io.StringIO(), width=200))


async def _round(ctx: Context, tmp_path: Path, seconds: dict, t0: datetime | None = None):
    round_id = f"st-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 1), formasi("F2", 1)], seconds, t0=t0)
    path = tmp_path / f"{round_id}.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    assert await create_round(ctx, path, OPERATOR) == 0
    return config, path


def _row(serial: int, formasi_code: str = "F1", **changes) -> dict:
    reg = registration(serial, formasi_code)
    row = {
        k: str(v.value if hasattr(v, "value") else v)
        for k, v in reg.model_dump().items()
        if k in REGISTRATION_COLUMNS.all
    }
    row.update(changes)
    return row


def _write_csv(path: Path, rows: list[dict], columns=None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _errors(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def test_a_file_without_a_required_column_is_refused_whole_naming_the_column(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    ctx = _context(client, keys, settings, stack)
    _, config_path = await _round(ctx, tmp_path, {"registration": (-60, 300), **LATER})
    columns = [c for c in REGISTRATION_COLUMNS.all if c != "gender"] + ["sex"]
    bad = _write_csv(tmp_path / "no-gender.csv", [_row(1)], columns)

    with pytest.raises(CsvFileError) as caught:
        await import_registrations(ctx, config_path, bad, tmp_path / "err.csv")

    message = str(caught.value)
    assert (
        "no-gender.csv:1" in message
        and "missing column(s) gender" in message
        and "unknown column(s) sex" in message
    )


async def test_malformed_rows_are_refused_with_line_field_and_value_and_nothing_is_registered(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    ctx = _context(client, keys, settings, stack)
    _, config_path = await _round(ctx, tmp_path, {"registration": (-60, 300), **LATER})
    bad = _write_csv(tmp_path / "bad.csv", [_row(1, birth_date="17/05/1998"), _row(2, gender="X")])

    summary = await import_registrations(ctx, config_path, bad, tmp_path / "err.csv")

    assert summary.counts["registered"] == 0 and summary.exit_code == 1
    assert [(e["line"], e["field"], e["value"]) for e in _errors(tmp_path / "err.csv")] == [
        ("2", "birth_date", "17/05/1998"),
        ("3", "gender", "X"),
    ]


async def test_import_registers_good_rows_refuses_bad_ones_and_a_rerun_registers_nothing(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    ctx = _context(client, keys, settings, stack)
    config, config_path = await _round(ctx, tmp_path, {"registration": (-60, 300), **LATER})
    rows = [_row(i, "F1" if i % 2 else "F2") for i in range(1, 18)]
    rows.insert(3, _row(101, gpa="tiga"))  # line 5: not a number
    rows.insert(9, _row(102, major="Sastra Jawa"))  # line 11: not a major of the formasi
    rows.insert(15, _row(103, formasi_code="F9"))  # line 17: no such formasi
    path = _write_csv(tmp_path / "sscasn.csv", rows)

    first = await import_registrations(ctx, config_path, path, tmp_path / "err.csv", concurrency=8)
    refused = _errors(tmp_path / "err.csv")
    again = await import_registrations(ctx, config_path, path, tmp_path / "err2.csv", concurrency=8)

    assert (first.counts["registered"], first.counts["refused"]) == (17, 3)
    assert [(e["line"], e["field"]) for e in sorted(refused, key=lambda e: int(e["line"]))] == [
        ("5", "gpa"),
        ("11", "major"),
        ("17", "formasi_code"),
    ]
    assert (again.counts["registered"], again.counts["repeat"], again.counts["refused"]) == (
        0,
        17,
        3,
    )


class CrashingApi(RecruitmentApi):
    """An API whose process 'dies' on the n-th registration."""

    def __init__(self, inner: RecruitmentApi, survive: int) -> None:
        # The same keys as the API it stands for: a registration it starts unsigned would be
        # refused by its journey (and a repeat of it refused again), not registered.
        super().__init__(
            inner.client,
            inner.task_queue,
            inner.pseudonym_key,
            keyring=inner.keyring,
            sanctions=inner.sanctions,
        )
        self.left = survive

    async def register(self, *args, **kwargs):
        if self.left == 0:
            raise ConnectionResetError("the operator's laptop lost power")
        self.left -= 1
        return await super().register(*args, **kwargs)


async def test_an_interrupted_import_resumes_and_ends_with_each_applicant_registered_once(
    client, keys, running_worker, stack, tmp_path
):
    settings, pool = running_worker
    ctx = _context(client, keys, settings, stack)
    config, config_path = await _round(ctx, tmp_path, {"registration": (-60, 300), **LATER})
    path = _write_csv(tmp_path / "sscasn.csv", [_row(i) for i in range(1, 21)])
    checkpoint = tmp_path / "sscasn.checkpoint"
    crashing = _context(client, keys, settings, stack, CrashingApi(ctx.api, survive=7))

    with pytest.raises(ConnectionResetError):
        await import_registrations(
            crashing,
            config_path,
            path,
            tmp_path / "err.csv",
            concurrency=1,
            checkpoint_path=checkpoint,
        )
    resumed = await import_registrations(
        ctx, config_path, path, tmp_path / "err.csv", concurrency=4, checkpoint_path=checkpoint
    )
    whole = await import_registrations(ctx, config_path, path, tmp_path / "err2.csv", concurrency=4)

    assert resumed.counts["registered"] == 13 and resumed.counts["repeat"] == 0  # lines 2-8 skipped
    assert (whole.counts["repeat"], whole.counts["registered"]) == (20, 0)
    deadline = time.monotonic() + 20
    while (
        await pool.fetchval("SELECT count(*) FROM applicants WHERE round_id=$1", config.round_id)
        < 20
    ):
        assert time.monotonic() < deadline, "the read model never showed 20 applicants"
        await asyncio.sleep(0.3)
    assert (
        await pool.fetchval("SELECT count(*) FROM applicants WHERE round_id=$1", config.round_id)
        == 20
    )


async def test_the_same_command_run_again_tries_a_failed_row_and_writes_no_line_twice(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    ctx = _context(client, keys, settings, stack)
    _, config_path = await _round(ctx, tmp_path, {"registration": (-60, 300), **LATER})
    rows = [_row(i) for i in range(1, 13)]  # lines 2 to 13
    path = _write_csv(tmp_path / "sscasn.csv", rows)
    checkpoint, errors, numbers = (tmp_path / n for n in ("cp.json", "err.csv", "numbers.csv"))
    once = FailingRowApi(ctx.api, rows[4]["nik"], times=1)
    flaky = _context(client, keys, settings, stack, once)

    def run():
        return import_registrations(
            flaky, config_path, path, errors, 4, checkpoint_path=checkpoint, numbers_path=numbers
        )

    first = await run()
    assert (first.counts["registered"], first.counts["failed"], first.exit_code) == (11, 1, 1)
    [failed] = _errors(errors)
    assert failed["line"] == "6" and failed["reason"].startswith("not processed: RPCError")

    second = await run()  # the same command: line 6 again, and only line 6

    assert (second.counts["registered"], second.counts["repeat"]) == (1, 0), second.counts
    assert second.exit_code == 0
    with numbers.open(encoding="utf-8") as f:
        lines = [r["line"] for r in csv.DictReader(f)]
    assert sorted(lines, key=int) == [str(n) for n in range(2, 14)]  # each line once


async def _wait_stage(client, round_id, applicant_id, stages, timeout=30.0) -> JourneyState:
    deadline = time.monotonic() + timeout
    while True:
        s = await client.get_workflow_handle(journey_workflow_id(round_id, applicant_id)).query(
            "state", result_type=JourneyState
        )
        if s.stage in stages:
            return s
        assert time.monotonic() < deadline, f"{applicant_id} stuck at {s.stage}"
        await asyncio.sleep(0.3)


async def test_report_files_refuse_out_of_range_scores_with_the_engines_reason_and_status_counts(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    ctx = _context(client, keys, settings, stack)
    t0 = datetime.now(UTC)
    config, _ = await _round(
        ctx,
        tmp_path,
        {
            "registration": (-60, 3),
            "administration": (3, 5),
            "skd": (6, 60),
            "skb": (60, 70),
            "filing": (70, 80),
            "latsar": (80, 90),
        },
        t0=t0,
    )
    ids = []
    for serial in (1, 2, 3):
        result = await ctx.api.register(
            config, registration(serial, "F1"), "sscasn", now=t0 + timedelta(seconds=1)
        )
        ids.append(result.applicant_id)
    for a in ids:
        await _wait_stage(client, config.round_id, a, {Stage.ADMIN_CHECK})
    admin = _write_csv(
        tmp_path / "admin.csv",
        [
            {
                "report_id": f"adm-{i}",
                "applicant_id": a,
                "findings": "ijazah:not legalised|ktp:blurred" if i == 2 else "",
            }
            for i, a in enumerate(ids)
        ],
    )
    admin_summary = await send_reports(
        ctx,
        REPORT_KINDS["admin"],
        config.round_id,
        admin,
        tmp_path / "e1.csv",
        "bkpsdm-verifikator",
    )
    assert admin_summary.counts["accepted"] == 3, admin_summary.refusals

    for a in ids[:2]:
        await _wait_stage(client, config.round_id, a, {Stage.SKD})
    skd = _write_csv(
        tmp_path / "skd.csv",
        [
            {
                "report_id": "skd-0",
                "applicant_id": ids[0],
                "twk": 120,
                "tiu": 140,
                "tkp": 190,
                "session_id": "S1",
            },
            {
                "report_id": "skd-1",
                "applicant_id": ids[1],
                "twk": 100,
                "tiu": 182,
                "tkp": 190,
                "session_id": "S1",
            },
        ],
    )
    first = await send_reports(
        ctx, REPORT_KINDS["skd"], config.round_id, skd, tmp_path / "e2.csv", "cat-bkn"
    )
    again = await send_reports(
        ctx, REPORT_KINDS["skd"], config.round_id, skd, tmp_path / "e3.csv", "cat-bkn"
    )

    assert (first.counts["accepted"], first.counts["refused"]) == (1, 1)
    [refusal] = _errors(tmp_path / "e2.csv")
    assert refusal["line"] == "3" and refusal["id"] == "skd-1" and "tiu=182" in refusal["reason"]
    assert (again.counts["repeat"], again.counts["refused"]) == (1, 1)

    deadline = time.monotonic() + 20
    while (counts := await funnel(ctx, config.round_id)) != {"F1": {"skd": 2, "TMS": 1}}:
        assert time.monotonic() < deadline, f"funnel stayed {counts}"
        await asyncio.sleep(0.3)
    await status(ctx, config.round_id)
    printed = ctx.console.file.getvalue()
    assert "phase skd" in printed and "TMS" in printed and "total" in printed


def test_an_unknown_report_kind_exits_2_naming_the_kinds(tmp_path):
    from typer.testing import CliRunner

    from starter import cli

    result = CliRunner().invoke(
        cli,
        [
            "report",
            "scores",
            "R1",
            str(tmp_path / "x.csv"),
            "--as",
            "cat-bkn",
            "--errors",
            str(tmp_path / "e.csv"),
        ],
    )

    assert (
        result.exit_code == 2 and "KIND='scores'" in result.output and "skb-score" in result.output
    )


def test_a_bad_header_exits_2_before_anything_starts(tmp_path):
    from typer.testing import CliRunner

    from starter import cli

    path = _write_csv(
        tmp_path / "skd.csv", [{"report_id": "r", "applicant_id": "A", "twk": 1, "tiu": 2}]
    )
    result = CliRunner().invoke(
        cli,
        ["report", "skd", "R1", str(path), "--as", "cat-bkn", "--errors", str(tmp_path / "e.csv")],
    )

    output = result.output.replace("\n", "")  # the console wraps a long temporary path
    assert result.exit_code == 2 and "skd.csv:1" in output and "missing column(s) tkp" in output


# --- an import never crashes mid-file, and says what it sent when it stops (issue 12) -----------


def _superscript(nik: str) -> str:
    return nik[:4] + "\u00b3" + nik[5:]  # SUPERSCRIPT THREE, which NFKC would make a '3'


def _arabic_indic(nik: str) -> str:
    return "".join(chr(0x0660 + int(d)) for d in nik[:4]) + nik[4:]


async def test_a_file_with_odd_digits_bad_dates_and_a_non_utf8_row_in_the_middle_is_processed_to_the_end(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    ctx = _context(client, keys, settings, stack)
    _, config_path = await _round(ctx, tmp_path, {"registration": (-60, 300), **LATER})
    rows = [_row(i) for i in range(1, 11)]
    rows[2]["nik"] = _superscript(rows[2]["nik"])  # line 4
    rows[4]["nik"] = _arabic_indic(rows[4]["nik"])  # line 6
    rows[6]["birth_date"] = "1998-02-30"  # line 8
    path = _write_csv(tmp_path / "sscasn.csv", rows)
    lines = path.read_bytes().split(b"\r\n")
    lines[9] = lines[9].replace(b"Peserta 9", "Peserta Ren\u00e9".encode("latin-1"))  # line 10
    path.write_bytes(b"\r\n".join(lines))

    summary = await import_registrations(ctx, config_path, path, tmp_path / "err.csv")

    refused = {e["line"]: e for e in _errors(tmp_path / "err.csv")}
    assert (summary.counts["registered"], summary.counts["refused"], summary.exit_code) == (6, 4, 1)
    assert sorted(refused, key=int) == ["4", "6", "8", "10"]
    assert "U+00B3 SUPERSCRIPT THREE" in refused["4"]["reason"]
    assert "U+0663 ARABIC-INDIC DIGIT THREE" in refused["6"]["reason"]
    assert refused["8"]["field"] == "birth_date" and refused["8"]["value"] == "1998-02-30"
    assert "not valid UTF-8 (in name)" in refused["10"]["reason"]


class FailingRowApi(RecruitmentApi):
    """The real API, but the engine fails on one NIK with an error (not a refusal)."""

    def __init__(self, inner: RecruitmentApi, nik: str, times: int | None = None) -> None:
        super().__init__(inner.client, inner.task_queue, inner.pseudonym_key, keyring=TEST_KEYRING)
        self.nik = nik
        self.left = times  # how many times it fails (None: every time)

    async def register(self, config, reg, *args, **kwargs):
        if reg.nik == self.nik and self.left != 0:
            self.left = None if self.left is None else self.left - 1
            raise RPCError("internal error while starting the journey", RPCStatusCode.INTERNAL, b"")
        return await super().register(config, reg, *args, **kwargs)


async def test_an_engine_error_for_one_row_is_written_with_its_line_and_the_rest_go_on(
    client, keys, running_worker, stack, tmp_path
):
    settings, pool = running_worker
    ctx = _context(client, keys, settings, stack)
    config, config_path = await _round(ctx, tmp_path, {"registration": (-60, 300), **LATER})
    rows = [_row(i) for i in range(1, 9)]
    failing = _context(client, keys, settings, stack, FailingRowApi(ctx.api, rows[3]["nik"]))
    path = _write_csv(tmp_path / "sscasn.csv", rows)

    summary = await import_registrations(
        failing, config_path, path, tmp_path / "err.csv", concurrency=4
    )

    [error] = _errors(tmp_path / "err.csv")
    assert (summary.counts["registered"], summary.counts["failed"], summary.exit_code) == (7, 1, 1)
    assert error["line"] == "5" and error["reason"].startswith(
        "not processed: RPCError: internal error while starting the journey"
    )
    # The seven journeys are admitted before the worker stops (a worker stopping while a journey
    # asks the round for admission waits out that local activity's retry budget).
    for _ in range(200):
        rows_written = await pool.fetchval(
            "SELECT count(*) FROM applicants WHERE round_id = $1", config.round_id
        )
        if rows_written == 7:
            break
        await asyncio.sleep(0.1)
    assert rows_written == 7


class StubApi(RecruitmentApi):
    """Our API without a server: it accepts every row until the connection 'drops' after
    `sent` rows (or, with `hang`, waits there for the operator's Ctrl-C)."""

    def __init__(self, sent: int, hang: bool = False, fail_report: str = "") -> None:
        super().__init__(None, "stub", b"k" * 32)  # type: ignore[arg-type]
        self.left, self.hang, self.fail_report = sent, hang, fail_report
        self.reached = asyncio.Event()

    async def check_round_keys(self, round_id: str) -> None:
        pass

    async def round_config(self, round_id: str):
        return self.config  # the rules the round was "created" with: the stub's own file

    async def round_state(self, round_id: str) -> RoundState:
        return RoundState(
            round_id=round_id,
            phase="registration",
            schedule=self.schedule,
            closed=[],
            formasi_results={},
            offers={},
            decisions=[],
        )

    async def _next(self) -> None:
        if self.left == 0:
            self.reached.set()
            if self.hang:
                await asyncio.Event().wait()
            raise ConnectionResetError("the connection to Temporal was lost")
        self.left -= 1

    async def register(self, config, reg, *args, **kwargs) -> RegistrationResult:
        await self._next()
        return RegistrationResult("registered", f"ID{reg.nik[-4:]}")

    async def report(self, round_id: str, applicant_id: str, message) -> Ack:
        if message.report_id == self.fail_report:
            raise ValueError("the journey answered with something unreadable")
        await self._next()
        return Ack(
            report_id=message.report_id,
            applicant_id=applicant_id,
            stage="skd",
            effect="recorded",
            recorded_at=datetime.now(UTC),
        )

    async def submit(self, round_id: str, applicant_id: str, message) -> Ack:
        return await self.report(round_id, applicant_id, message)  # never a repeat here


def _stub_context(api: StubApi, tmp_path: Path) -> tuple[Context, Path]:
    config = compressed_round("stub-1", [formasi("F1", 1)], {"registration": (-60, 300), **LATER})
    api.schedule, api.config = config.schedule, config
    path = tmp_path / "stub-1.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    return Context(api, "", Console(file=io.StringIO(), width=300)), path


def _said(ctx: Context) -> str:
    return " ".join(ctx.console.file.getvalue().split())


async def test_an_import_that_loses_its_connection_says_how_many_rows_were_sent_and_where_to_resume(
    tmp_path,
):
    ctx, config_path = _stub_context(StubApi(sent=7), tmp_path)
    path = _write_csv(tmp_path / "sscasn.csv", [_row(i) for i in range(1, 21)])
    checkpoint = tmp_path / "sscasn.checkpoint"

    with pytest.raises(ConnectionResetError):
        await import_registrations(
            ctx, config_path, path, tmp_path / "err.csv", concurrency=1, checkpoint_path=checkpoint
        )

    said = _said(ctx)
    assert (
        "stopped before the end of" in said
        and "(ConnectionResetError: the connection to Temporal was lost): 7 rows were sent "
        "before it stopped (7 registered, 0 repeat); 0 refused, 0 failed"
        in said
    )
    assert "1 row in flight (line 9) may or may not have reached the engine" in said
    assert (
        f"every row up to line 8 is done; run the same command again to go on (the checkpoint {checkpoint} resumes after line 8)"
        in said
    )
    assert json.loads(checkpoint.read_text())["line"] == 8


async def test_ctrl_c_during_an_import_says_how_many_rows_were_sent(tmp_path):
    api = StubApi(sent=12, hang=True)
    ctx, config_path = _stub_context(api, tmp_path)
    path = _write_csv(tmp_path / "sscasn.csv", [_row(i) for i in range(1, 31)])
    run = asyncio.create_task(
        import_registrations(ctx, config_path, path, tmp_path / "err.csv", concurrency=1)
    )
    await asyncio.wait_for(api.reached.wait(), 30)  # a run that fails early must not hang here

    run.cancel()  # what asyncio.run does on the first Ctrl-C
    with pytest.raises(asyncio.CancelledError):
        await run

    said = _said(ctx)
    assert "(interrupted): 12 rows were sent before it stopped (12 registered, 0 repeat)" in said
    assert "every row up to line 13 is done" in said and "--checkpoint FILE would skip" in said


async def test_a_report_row_that_fails_is_written_with_its_id_and_the_rest_are_sent(tmp_path):
    ctx, _ = _stub_context(StubApi(sent=100, fail_report="skd-3"), tmp_path)
    rows = [
        {"report_id": f"skd-{i}", "applicant_id": f"A{i}", "twk": 100, "tiu": 100, "tkp": 150}
        for i in range(1, 7)
    ]
    path = _write_csv(tmp_path / "skd.csv", rows)

    summary = await send_reports(
        ctx, REPORT_KINDS["skd"], "stub-1", path, tmp_path / "err.csv", "cat-bkn"
    )

    [error] = _errors(tmp_path / "err.csv")
    assert (summary.counts["accepted"], summary.counts["failed"], summary.exit_code) == (5, 1, 1)
    assert (error["line"], error["id"]) == ("4", "skd-3")
    assert "ValueError: the journey answered with something unreadable" in error["reason"]


def test_an_interrupted_import_exits_3_and_prints_the_rows_sent(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import runtime.app
    import starter

    api = StubApi(sent=5)
    _, config_path = _stub_context(api, tmp_path)
    app = SimpleNamespace(
        client=None,
        settings=SimpleNamespace(task_queue="stub", query_seconds=15.0),
        keys=SimpleNamespace(pseudonym_key=b"k" * 32),
        stack=SimpleNamespace(database_url=""),
    )

    async def open_app():
        return app

    monkeypatch.setattr(runtime.app, "open_app", open_app)
    monkeypatch.setattr(starter, "RecruitmentApi", lambda *args, **kwargs: api)
    monkeypatch.setattr(starter, "with_query_deadline", lambda client, _: client)  # no client
    path = _write_csv(tmp_path / "sscasn.csv", [_row(i) for i in range(1, 11)])

    result = CliRunner().invoke(
        starter.cli,
        [
            "import-registrations",
            str(config_path),
            str(path),
            "--errors",
            str(tmp_path / "e.csv"),
            "--concurrency",
            "1",
        ],
    )

    said = " ".join(result.output.split())
    assert result.exit_code == 3, result.output
    assert "5 rows were sent before it stopped (5 registered, 0 repeat)" in said
    assert "stopped: ConnectionResetError: the connection to Temporal was lost" in said


async def test_an_import_with_a_round_file_edited_since_create_round_is_refused(
    client, keys, running_worker, stack, tmp_path
):
    """Registrations are judged by the round's recorded rules: a local copy of the round file
    with a lower GPA floor must not register anyone under it."""
    settings, _ = running_worker
    ctx = _context(client, keys, settings, stack)
    config, config_path = await _round(ctx, tmp_path, {"registration": (-60, 300), **LATER})
    edited = config.model_dump(mode="json", exclude_none=True)
    edited["formasi"][0]["min_gpa"] = 2.0
    edited_path = tmp_path / "edited.toml"
    edited_path.write_text(tomli_w.dumps(edited))
    path = _write_csv(tmp_path / "sscasn.csv", [_row(1)])

    with pytest.raises(RefusedError, match="not the ones round .* was created with"):
        await import_registrations(ctx, edited_path, path, tmp_path / "err.csv")

    assert await ctx.api.round_config(config.round_id) == config
    summary = await import_registrations(ctx, config_path, path, tmp_path / "err.csv")
    assert summary.counts["registered"] == 1
