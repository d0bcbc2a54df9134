"""starter.py's CLI gaps on the real stack: the registration numbers file, lookup, status with
every window, --json, and a clear exit 3 when the server or the database cannot be reached."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import socket
import stat
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from rich.console import Console
from typer.testing import CliRunner

from client.api import RecruitmentApi, RefusedError, UnknownError, applicant_id_for
from client.csvio import REGISTRATION_COLUMNS
from domain.administration import DocumentFinding
from domain.codes import Stage
from domain.messages import (
    AdminReport,
    AppealFiling,
    CloseWindow,
    ExtendWindow,
    JourneyState,
    MoveTmt,
)
from starter import Context, cli, import_registrations, lookup, status
from tests.forked import DRIVER
from tests.roundkit import (
    OPERATOR,
    TEST_KEYRING,
    command_env,
    compressed_round,
    formasi,
    registration,
)
from workflows.ids import journey_workflow_id

ROOT = Path(__file__).resolve().parents[2]
# Registration open now; the later windows far enough away that only the committee closes them.
OPEN_NOW = {
    "registration": (-60, 300),
    "administration": (320, 900),
    "skd": (900, 1200),
    "skb": (1200, 1500),
    "filing": (1500, 1800),
    "latsar": (1800, 2100),
}


def _context(client, keys, settings, stack) -> Context:
    api = RecruitmentApi(client, settings.task_queue, keys.pseudonym_key, keyring=TEST_KEYRING)
    return Context(api, stack.database_url, Console(file=io.StringIO(), width=250))


def _printed(ctx: Context) -> str:
    return ctx.console.file.getvalue()


async def _create(ctx: Context, tmp_path: Path, **options):
    round_id = f"cli-{uuid.uuid4().hex[:6]}"
    config = compressed_round(round_id, [formasi("F1", 2)], OPEN_NOW, **options)
    path = tmp_path / f"{round_id}.toml"
    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    await ctx.api.create_round(path, OPERATOR)
    return config, path


async def _until(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, f"never {what}"
        await asyncio.sleep(0.2)
    return result


async def _close(ctx: Context, round_id: str, window: str, reason: str) -> None:
    async def in_phase():
        return (await ctx.api.round_state(round_id)).phase == window

    await _until(in_phase, f"in phase {window}")
    await ctx.api.command(
        round_id,
        CloseWindow(
            report_id=f"close-{window}", reported_by=OPERATOR, window=window, reason=reason
        ),
    )


async def _journey(ctx: Context, round_id: str, applicant_id: str, stage: Stage) -> JourneyState:
    handle = ctx.api.client.get_workflow_handle(journey_workflow_id(round_id, applicant_id))

    async def at_stage():
        state = await handle.query("state", result_type=JourneyState)
        return state if state.stage == stage else None

    return await _until(at_stage, f"{applicant_id} at {stage}")


# --- the registration numbers file --------------------------------------------------------------


def _row(serial: int, **changes) -> dict:
    reg = registration(serial, "F1")
    row = {
        k: str(v.value if hasattr(v, "value") else v)
        for k, v in reg.model_dump().items()
        if k in REGISTRATION_COLUMNS.all
    }
    return {**row, **changes}


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def test_import_writes_each_rows_registration_number_without_the_nik_for_the_operator_alone(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    ctx = _context(client, keys, settings, stack)
    config, config_path = await _create(ctx, tmp_path)
    rows = [_row(1), _row(2), _row(3, major="Sastra Jawa"), _row(4, gpa="tiga")]
    source = tmp_path / "sscasn.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    errors = tmp_path / "out" / "sscasn.errors.csv"

    await import_registrations(ctx, config_path, source, errors)
    numbers = tmp_path / "out" / "sscasn.numbers.csv"
    first = _read(numbers)
    numbers.chmod(0o644)  # loosened by someone: the next run writes it for the operator alone
    await import_registrations(ctx, config_path, source, errors)

    def number(serial: int) -> str:
        return applicant_id_for(keys.pseudonym_key, config.round_id, registration(serial, "F1").nik)

    assert sorted((r["line"], r["applicant_id"], r["status"]) for r in first) == sorted(
        [
            ("2", number(1), "registered"),  # each row by its line in sscasn.csv
            ("3", number(2), "registered"),
            ("4", number(3), "refused"),  # not a major of the formasi
        ]
    )  # line 5 (gpa "tiga") has no number: it is only in the errors file
    assert sorted(r["status"] for r in _read(numbers)) == ["refused", "repeat", "repeat"]
    assert stat.S_IMODE(numbers.stat().st_mode) == 0o600
    written = numbers.read_text(encoding="utf-8")
    assert not [n for n in range(1, 5) if registration(n, "F1").nik in written]  # no NIK (issue 14)
    assert f"registration numbers (line, applicant_id, status): {numbers}" in _printed(ctx)


# --- status: every window, its extensions and early close, the TMT's moves -----------------------


async def test_status_shows_every_window_with_its_extension_early_close_and_the_tmt_moves(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    ctx = _context(client, keys, settings, stack)
    config, _ = await _create(ctx, tmp_path)
    round_id = config.round_id
    extended_to = config.schedule.registration.closes + timedelta(seconds=15)
    await ctx.api.command(
        round_id,
        ExtendWindow(
            report_id="ext-1",
            reported_by=OPERATOR,
            window="registration",
            new_closes=extended_to,
            reason="gangguan server BKN",
        ),
    )
    await _close(ctx, round_id, "registration", "kuota pendaftar terpenuhi")
    await _close(ctx, round_id, "administration", "verifikasi selesai")
    await ctx.api.command(
        round_id,
        MoveTmt(
            report_id="tmt-1",
            reported_by=OPERATOR,
            new_tmt=config.schedule.tmt + timedelta(days=31),
            reason="keputusan MenPANRB",
        ),
    )

    async def in_skd():
        return (await ctx.api.round_state(round_id)).phase == "skd"

    await _until(in_skd, "in phase skd")
    await status(ctx, round_id, as_json=True)
    document = json.loads(_printed(ctx))
    windows = {w["name"]: w for w in document["round"]["windows"]}

    registration_ = windows["registration"]
    assert [(e["reason"], e["by"]) for e in registration_["extensions"]] == [
        ("gangguan server BKN", OPERATOR)
    ]
    assert datetime.fromisoformat(registration_["closes"]) == extended_to
    assert datetime.fromisoformat(registration_["original_closes"]) == (
        config.schedule.registration.closes
    )
    assert (registration_["state"], registration_["closed_early"]) == ("ditutup", True)
    assert windows["administration"]["closed_early_reason"] == "verifikasi selesai"
    assert [windows[w]["state"] for w in ("skd", "skb", "filing", "latsar")] == [
        "dibuka",
        "belum dibuka",
        "belum dibuka",
        "belum dibuka",
    ]
    assert [(m["from_tmt"], m["to_tmt"], m["reason"]) for m in document["round"]["tmt_moves"]] == [
        ("2027-03-01", "2027-04-01", "keputusan MenPANRB")
    ]
    assert document["round"]["tmt"] == "2027-04-01" and document["funnel"] == {}

    table = _context(client, keys, settings, stack)
    await status(table, round_id)
    shown = _printed(table)
    assert "gangguan server BKN" in shown and "ditutup lebih awal" in shown
    assert "1 Apr 2027, as created 1 Mar 2027" in shown


async def test_status_of_an_unknown_round_says_why_in_json_and_still_shows_the_read_model(
    client, keys, stack
):
    api = RecruitmentApi(client, "unused", keys.pseudonym_key)
    ctx = Context(api, stack.database_url, Console(file=io.StringIO(), width=250))

    with pytest.raises(RefusedError, match="round nowhere-7 does not exist"):  # exits 1
        await status(ctx, "nowhere-7", as_json=True)
    document = json.loads(_printed(ctx))

    assert document["round"] is None and document["funnel"] == {}
    assert "round nowhere-7 does not exist" in document["round_problem"]


# --- lookup: an applicant's reasons, deadlines and what they may do now -----------------------------


async def test_lookup_by_nik_shows_each_failing_document_and_the_sanggah_deadline_until_filed(
    client, keys, running_worker, stack, tmp_path
):
    settings, _ = running_worker
    ctx = _context(client, keys, settings, stack)
    # The instansi's answer time outlasts the test: the sanggah is filed, then the command's own
    # process looks it up (its start took over 5 s, the default answer time, in a loaded run, and
    # found the journey ended TMS).
    config, _ = await _create(ctx, tmp_path, appeal_window=120, answer_within=120)
    round_id = config.round_id
    reg = registration(7, "F1")
    registered = await ctx.api.register(config, reg, "sscasn")
    applicant_id = registered.applicant_id
    await _journey(ctx, round_id, applicant_id, Stage.ADMIN_CHECK)
    findings = [
        DocumentFinding(document="ijazah", reason="belum dilegalisir"),
        DocumentFinding(document="surat lamaran", reason="tidak ditandatangani"),
    ]
    await ctx.api.report(
        round_id,
        applicant_id,
        AdminReport(report_id="adm-7", reported_by="bkpsdm-verifikator", findings=findings),
    )
    await _close(ctx, round_id, "registration", "pendaftaran selesai")
    await _close(ctx, round_id, "administration", "verifikasi selesai")
    journey = await _journey(ctx, round_id, applicant_id, Stage.ADMIN_APPEAL)

    view = await lookup(ctx, round_id, nik=reg.nik)
    [tms] = [d for d in view.decisions if d.outcome == "TMS"]
    assert [(x.item, x.reason) for x in tms.details] == [
        ("ijazah", "belum dilegalisir"),
        ("surat lamaran", "tidak ditandatangani"),
    ]
    assert view.applicant_id == applicant_id and view.can_appeal and view.can_withdraw
    assert ("Batas pengajuan sanggah", journey.admin_announced_at + timedelta(seconds=120)) in [
        (d.label, d.at) for d in view.deadlines
    ]
    shown = _printed(ctx)
    assert reg.nik not in shown and "belum dilegalisir" in shown

    await ctx.api.report(
        round_id,
        applicant_id,
        AppealFiling(report_id="appeal-7", reported_by="sscasn", reason="sudah dilegalisir"),
    )
    after = await lookup(ctx, round_id, applicant_id=applicant_id, as_json=True)
    assert not after.can_appeal
    assert "Batas jawaban sanggah oleh instansi" in [d.label for d in after.deadlines]

    with pytest.raises(UnknownError, match="no applicant NOPE"):
        await lookup(ctx, round_id, applicant_id="NOPE")

    # The command itself, as an operator runs it: JSON on stdout, the NIK never printed whole.
    env = command_env(stack.temporal_address, stack.database_url, keys, tmp_path / "data")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        "lookup",
        round_id,
        "--nik",
        reg.nik,
        "--json",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    document = json.loads(out)
    assert (document["applicant_id"], document["stage"], document["can_appeal"]) == (
        applicant_id,
        "admin_appeal",
        False,
    )
    assert reg.nik not in out.decode() + err.decode()


# --- arguments and exit codes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [["lookup", "R1"], ["lookup", "R1", "--applicant", "A", "--nik", "3273011705980001"]],
)
def test_lookup_needs_exactly_one_of_applicant_and_nik(arguments):
    result = CliRunner().invoke(cli, arguments)

    assert result.exit_code == 2 and "exactly one of --applicant and --nik" in result.output


def test_lookup_refuses_a_nik_that_is_not_16_digits_without_printing_it():
    result = CliRunner().invoke(cli, ["lookup", "R1", "--nik", "32730117059800"])

    assert result.exit_code == 2 and "a NIK is 16 digits" in result.output
    assert "32730117059800" not in result.output


def test_every_commands_help_states_the_exit_codes():
    for command in ("status", "lookup", "import-registrations", "report", "announce"):
        shown = " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())
        assert "Exit codes: 0 ok; 1 refused" in shown and "3 stopped" in shown, command


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _starter(tmp_path: Path, keys, temporal: str, database: str, *arguments: str):
    env = command_env(temporal, database, keys, tmp_path / "data")
    return DRIVER.run("starter.py", list(arguments), env, tmp_path, timeout=60)


def test_an_unreachable_database_stops_with_one_line_and_exit_3(keys, tmp_path):
    port = _closed_port()
    url = f"postgresql://casn:rahasia@127.0.0.1:{port}/casn"

    result = _starter(tmp_path, keys, f"127.0.0.1:{_closed_port()}", url, "status", "R1")

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    [line] = [x for x in result.stderr.splitlines() if x.startswith("stopped")]
    assert line == (
        f"stopped: the database at postgresql://casn:***@127.0.0.1:{port}/casn "
        "(CASN_DATABASE_URL) cannot be reached: Connection refused; start it or fix the setting, "
        "then run the same command again"
    )
    assert "rahasia" not in result.stderr


def test_an_unreachable_temporal_server_stops_with_one_line_and_exit_3(stack, keys, tmp_path):
    address = f"127.0.0.1:{_closed_port()}"

    result = _starter(
        tmp_path, keys, address, stack.database_url, "lookup", "R1", "--applicant", "A" * 16
    )

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    [line] = [x for x in result.stderr.splitlines() if x.startswith("stopped")]
    assert line == (
        f"stopped: the Temporal server at {address} (CASN_TEMPORAL_ADDRESS) cannot be reached: "
        "Connection refused; start it or fix the setting, then run the same command again"
    )


async def test_status_of_a_round_no_worker_answers_for_shows_the_read_model_and_stops_with_exit_3(
    client, keys, stack, tmp_path
):
    """The operator asks while no worker polls the round's task queue: the server says "no poller
    seen" after its wait. The command printed a traceback; it shows the funnel, says why the round
    is not shown and what to do, and exits 3 ("stopped")."""
    from tests.roundkit import open_registration_round
    from workflows.ids import round_workflow_id

    nobody = RecruitmentApi(
        client, f"nobody-{uuid.uuid4().hex[:6]}", keys.pseudonym_key, keyring=TEST_KEYRING
    )
    config = await open_registration_round(nobody, tmp_path, "cli-no-worker")
    try:
        result = await asyncio.to_thread(
            _starter,
            tmp_path,
            keys,
            stack.temporal_address,
            stack.database_url,
            "status",
            config.round_id,
        )
    finally:
        await client.get_workflow_handle(round_workflow_id(config.round_id)).terminate("test")

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    [line] = [x for x in result.stderr.splitlines() if x.startswith("stopped")]
    # The command's own deadline on queries (CASN_QUERY_SECONDS, 15 s) ends the wait before
    # the server's "no poller seen" (about 20 s) or a long poll cut by the connection (both seen
    # before the deadline): whichever, the operator is told to look at the worker.
    assert line.startswith("stopped: the engine "), line
    assert line.endswith(
        "(is a worker running? python3 worker.py run); run the same command again once it answers"
    ), line
    shown = " ".join(result.stdout.split())
    assert f"round {config.round_id}: phase unknown (the engine " in shown
    assert "Funnel of round" in shown and "formasi" in shown  # the title wraps at 80 columns


async def test_the_cli_gives_a_query_without_a_deadline_its_own_and_leaves_one_that_has_one(client):
    """client.deadlines.with_query_deadline: the operator's (and the gateway's) client on the same
    connection, whose queries end after the deadline unless the caller set one of its own;
    nothing else changes."""
    from datetime import timedelta

    from temporalio.client import OutboundInterceptor, QueryWorkflowInput

    from client.deadlines import QueryDeadline, with_query_deadline

    deadline = timedelta(seconds=15)

    seen: list[timedelta | None] = []

    class Last(OutboundInterceptor):
        def __init__(self) -> None:  # the end of the chain: records what would be sent
            pass

        async def query_workflow(self, input: QueryWorkflowInput):
            seen.append(input.rpc_timeout)
            return "answer"

    outbound = QueryDeadline(deadline).intercept_client(Last())

    def asked(rpc_timeout):
        return QueryWorkflowInput(
            id="w",
            run_id=None,
            query="state",
            args=[],
            reject_condition=None,
            headers={},
            ret_type=None,
            rpc_metadata={},
            rpc_timeout=rpc_timeout,
        )

    assert await outbound.query_workflow(asked(None)) == "answer"
    assert await outbound.query_workflow(asked(timedelta(seconds=2))) == "answer"
    assert seen == [deadline, timedelta(seconds=2)]

    cli = with_query_deadline(client, deadline)
    assert cli.service_client is client.service_client
    assert cli.namespace == client.namespace and cli.data_converter is client.data_converter
    mine = cli.config()["interceptors"]
    assert mine[:-1] == client.config()["interceptors"]
    assert isinstance(mine[-1], QueryDeadline) and mine[-1].deadline == deadline
