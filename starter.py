#!/usr/bin/env python3
"""The operator's command line: create a round, import registrations, send reports and commands,
see a round and an applicant, and publish announcements.

    .venv/bin/python starter.py --help

Exit codes: 0 ok, everything accepted.
1 refused: some rows or the command refused by the engine, or no such round or applicant.
2 bad input: a bad file, argument or key; nothing was sent.
3 stopped: Ctrl-C, or the Temporal server or the database cannot be reached or was lost, or the engine cannot answer (no worker) (an import says how many rows were sent and where to resume).
"""

from __future__ import annotations

import asyncio
import csv
import getpass
import hashlib
import json
import math
import os
import re
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from temporalio.service import RPCError, RPCStatusCode

from activities.purges import purged_on
from client.announcements import AnnouncementStage
from client.api import (
    REGISTRATION_NUMBER,
    RecruitmentApi,
    RefusedError,
    UnknownError,
    applicant_id_for,
)
from client.csvio import (
    LINE_LIMIT,
    REGISTRATION_COLUMNS,
    REPORT_KINDS,
    BoundedLines,
    CsvFileError,
    ReportKind,
    RowError,
    RowRefusal,
    csv_cell,
    open_rows,
    parse_registration,
    parse_report,
)
from client.deadlines import with_query_deadline
from client.gateway_client import GatewayError, GatewayReports, NotTaken
from client.national import (
    InstansiFunnel,
    NationalRefusal,
    funnel_document,
    funnel_from_document,
    national_funnel,
)
from client.outstanding import STAYS_CPNS, Outstanding, formasi_checked, outstanding_view
from client.panels import CODE_PREFIX, PanelSheetRow, candidate_codes, panel_sheet, seated_codes
from client.publication import Publication, Published, publish_announcement, write_files
from client.retention import (
    DEFAULT_BATCH,
    DEFAULT_RETENTION_DAYS,
    MAX_RETENTION_DAYS,
    PERSONAL,
    PurgeRecord,
    PurgeRefused,
    PurgeRun,
    pending,
    purge,
    purge_records,
    refusal,
    round_end,
)
from client.sanctions import (
    NationalListError,
    SanctionRegister,
    read_national_list,
    sanction_subject,
)
from client.status import (
    ApplicantView,
    RoundStatus,
    RoundView,
    applicant_view,
    build_round_view,
    funnel_counts,
    round_view,
    tanggal,
    wib,
)
from client.survey import ALL as SURVEY_ALL
from client.survey import FEW_RESPONDENTS, SurveyRow, mix_answers, survey_rows
from domain.config import CODE, CODE_RULE, ConfigError, RoundConfig, load_round_config
from domain.messages import (
    Ack,
    ChangeKeys,
    CloseWindow,
    Dismissal,
    Disqualification,
    ExtendWindow,
    MoveTmt,
    Report,
    Withdrawal,
)
from domain.national import NationalState, load_national_config
from domain.protocol import DISMISS, command_update, report_update
from domain.registration import Refusal, check_registration, mask_nik, normalise_nik
from domain.signing import Keyring, Signer, SigningKeyError
from domain.signing import public_key as signing_public_key
from domain.skm import ELEMENTS as SKM_ELEMENTS
from domain.skm import STAGE_LABELS as SKM_STAGE_LABELS
from runtime.embedded import StackError
from runtime.files import open_input, open_private, read_input
from runtime.keys import InvalidKeyError
from runtime.logs import get_logger
from runtime.outage import engine_silent, unreachable
from runtime.process import run_and_end
from runtime.sealed import ColumnCipher
from runtime.settings import describe_settings_error, is_settings_error
from runtime.terminal import console as console_for
from runtime.terminal import flagged
from runtime.transport import TransportError
from runtime.writable import cannot_write, cannot_write_in
from runtime.writable import why as _why

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 3

log = get_logger("starter")


class BadInput(Exception):
    """An argument that cannot be used; nothing was sent."""


T = TypeVar("T")
KEY_FILE_LIMIT = 64 * 1024  # a signing key or an API key file: a few hundred bytes


@dataclass
class Context:
    """What every command needs: the client API, the read model's URL and a console."""

    api: RecruitmentApi
    database_url: str
    console: Console = field(default_factory=console_for)
    # Opens what the read model and the page store keep sealed (the payload keys).
    cipher: ColumnCipher | None = None


@dataclass
class Summary:
    """Counts of one file's rows by outcome, every refusal, and the rows that were in flight
    when the run stopped before the end."""

    counts: Counter = field(default_factory=Counter)
    refusals: list[RowRefusal] = field(default_factory=list)
    unfinished: list[int] = field(default_factory=list)

    def refuse(self, refusals: list[RowRefusal], errors: ErrorsFile) -> None:
        """Count a refused row, keep its reasons and write them to the errors file."""
        self.counts["refused"] += 1
        self.refusals.extend(refusals)
        errors.write(refusals)

    def fail(self, failure: RowRefusal, errors: ErrorsFile) -> None:
        """Count a row that failed with an error (no answer, rather than a refusal) and write it
        to the errors file."""
        self.counts["failed"] += 1
        self.refusals.append(failure)
        errors.write([failure])

    @property
    def exit_code(self) -> int:
        return EXIT_REFUSED if self.refusals else EXIT_OK


# --- errors files and checkpoints -------------------------------------------------------------


class ErrorsFile:
    """The refused rows of a run, one CSV line each, flushed as they happen."""

    COLUMNS = ("line", "id", "field", "value", "reason")

    def __init__(self, path: Path, append: bool = False) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not append or not path.exists() or path.stat().st_size == 0
            # A value read from bytes that were not UTF-8 is written escaped, never crashing the
            # run. It holds rejected values (birth dates among them): readable by the operator
            # alone.
            self.handle = open_private(
                path, append, encoding="utf-8", errors="backslashreplace", newline=""
            )
        except OSError as exc:
            raise BadInput(f"--errors {path}: cannot be written ({_why(exc)})") from None
        self.writer = csv.writer(self.handle)
        if fresh:
            self.writer.writerow(self.COLUMNS)

    def write(self, refusals: list[RowRefusal]) -> None:
        # The values and reasons are the input file's words (an applicant's, through SSCASN's
        # export): a spreadsheet opening this file must not run one as a formula.
        for r in refusals:
            cells = (r.row_id, r.field, r.value, r.reason)
            self.writer.writerow((r.line, *(csv_cell(c) for c in cells)))
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class NumbersFile:
    """Each registered row's registration number from an import (line, applicant_id, status),
    flushed as the rows are answered. No NIK: the line is the row's line in the input file, which
    the operator holds already, and the registration number is the NIK's keyed pseudonym. Still
    about people (who registered, who was refused), so it is readable by its owner alone: created
    with mode 0600, and a file that was there before is set to 0600 before anything is written."""

    COLUMNS = ("line", "applicant_id", "status")

    def __init__(self, path: Path, append: bool = False) -> None:
        try:
            self.handle = open_private(path, append, encoding="utf-8", newline="")
        except OSError as exc:
            raise BadInput(f"--numbers {path}: cannot be written ({_why(exc)})") from None
        self.path = path
        fresh = os.fstat(self.handle.fileno()).st_size == 0
        if not fresh and _first_line(path) != ",".join(self.COLUMNS):
            self.handle.close()
            raise BadInput(
                f"--numbers {path}: written by an older version (its rows hold NIKs, not "
                f"{', '.join(self.COLUMNS)}); move it somewhere private or delete it, then resume"
            )
        self.writer = csv.writer(self.handle)
        if fresh:
            self.writer.writerow(self.COLUMNS)

    def write(self, line: int, applicant_id: str, status: str) -> None:
        self.writer.writerow((line, applicant_id, status))
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _first_line(path: Path) -> str:
    with open_input(path, encoding="utf-8", errors="replace") as f:
        return f.readline(LINE_LIMIT).strip()


def numbers_path_for(csv_path: Path, errors_path: Path) -> Path:
    """Where an import writes the registration numbers unless told: `<input>.numbers.csv`, next
    to the errors file."""
    return errors_path.with_name(f"{csv_path.stem}.numbers.csv")


class Checkpoint:
    """The last line up to which every row is fully processed, so a resumed run skips them quickly.

    Only an optimisation: repeats are no-ops, so re-running the whole file is always safe.
    """

    def __init__(self, path: Path | None, source: Path) -> None:
        self.path = path
        self.digest = _file_sha256(source) if path else ""
        self.start_after = 0
        if path and path.exists():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
                if saved.get("file_sha256") == self.digest:
                    self.start_after = int(saved.get("line", 0))
            except (ValueError, AttributeError, TypeError) as exc:
                raise BadInput(
                    f"--checkpoint {path} is not a checkpoint file ({exc}); give another path, "
                    "or delete it to start from the top"
                ) from None
        self.pending: list[int] = []
        self.done: set[int] = set()
        self.line = self.start_after
        self.completed = 0
        # Lines after start_after that a run before this one answered already (the output files
        # say so): skipped, so that they are neither sent nor written twice (answered_lines).
        self.answered: set[int] = set()

    def started(self, line: int) -> None:
        self.pending.append(line)

    def finished(self, line: int) -> None:
        self.done.add(line)
        while self.pending and self.pending[0] in self.done:
            self.line = self.pending.pop(0)
            self.done.discard(self.line)

    def save(self) -> None:
        if self.path:
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            tmp.write_text(
                json.dumps({"file_sha256": self.digest, "line": self.line}), encoding="utf-8"
            )
            os.replace(tmp, self.path)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


NOT_PROCESSED = "not processed: "  # how _failure's reason starts: a row to try again


def answered_lines(path: Path, failures: bool = False) -> set[int]:
    """The input lines an output file of an earlier run holds (its `line` column): a numbers file,
    or an errors file without the rows that failed (`failures` False), which a resumed run tries
    again. Nothing when the file is not there or not one of ours."""
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            found = set()
            for record in csv.DictReader(f):
                line = (record.get("line") or "").strip()
                if not line.isdigit():
                    continue
                if not failures and (record.get("reason") or "").startswith(NOT_PROCESSED):
                    continue
                found.add(int(line))
            return found
    except OSError:
        return set()


def _resuming(ctx: Context, checkpoint: Checkpoint, path: Path | None) -> None:
    """Say where a resumed run takes up the file."""
    if not checkpoint.start_after:
        return
    later = sorted(line for line in checkpoint.answered if line > checkpoint.start_after)
    ctx.console.print(
        f"resuming after line {checkpoint.start_after} (checkpoint {path})"
        + (f"; {_rows(len(later))} after it answered already, skipped" if later else "")
    )


def _count_rows(path: Path) -> int:
    with open_input(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        return max(0, sum(1 for line in BoundedLines(f) if line.strip()) - 1)


def _file_sha256(path: Path) -> str:
    """A file's SHA-256, read a block at a time (an input file may be gigabytes)."""
    digest = hashlib.sha256()
    with open_input(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def stops_the_run(exc: BaseException) -> bool:
    """True for what ends a whole run rather than one row: Ctrl-C (the task cancelled), the
    connection to Temporal lost, a file that can no longer be written, a batch the gateway
    refused whole (the next would be too) or a gateway not reached."""
    if isinstance(exc, RPCError):
        return exc.status == RPCStatusCode.UNAVAILABLE
    return isinstance(exc, OSError | GatewayError) or not isinstance(exc, Exception)


def _failure(row, exc: Exception) -> RowRefusal:
    """A row that failed with an error, as a line of the errors file."""
    text = " ".join(str(exc).split())[:300] or "no message"
    return RowRefusal(
        row.line,
        "(row)",
        "",
        f"{NOT_PROCESSED}{type(exc).__name__}: {text}; it may or may not have reached the "
        "engine: run the same file again to retry it (a row already recorded comes back as a "
        "repeat)",
        row.cells.get("report_id", ""),
    )


async def _process_rows(
    ctx: Context,
    path: Path,
    rows,
    handle_row: Callable[[object], Awaitable[None]],
    concurrency: int,
    checkpoint: Checkpoint,
    description: str,
    summary: Summary,
    errors: ErrorsFile,
) -> None:
    """Run handle_row over the rows with at most `concurrency` in flight, tracking the checkpoint.

    A row that fails with an error is written to the errors file and the next rows go on; the
    checkpoint stays before it, so that the same command run again tries it again (before, the
    checkpoint went past it, and a second run skipped it and exited 0). What stops the whole run
    (stops_the_run) starts no further row; it is raised once the rows in flight have ended, with
    the checkpoint saved and the lines never finished in `summary.unfinished`. Lines a run before
    answered already (`checkpoint.answered`) are skipped.
    """
    gate = asyncio.Semaphore(max(1, concurrency))
    tasks: set[asyncio.Task] = set()
    in_flight: set[int] = set()
    stopped: list[BaseException] = []
    with _progress(ctx.console) as progress:
        bar = progress.add_task(description, total=_count_rows(path))

        async def one(row) -> None:
            failed = False
            try:
                await handle_row(row)
            except Exception as exc:  # noqa: BLE001 - one row's failure is that row's, not the run's
                if stops_the_run(exc):
                    stopped.append(exc)
                    return
                summary.fail(_failure(row, exc), errors)
                failed = True
            finally:
                gate.release()
            in_flight.discard(row.line)
            if not failed:  # a failed row holds the checkpoint before it: run again, it is retried
                checkpoint.finished(row.line)
            progress.advance(bar)
            checkpoint.completed += 1
            if checkpoint.completed % 50 == 0:
                checkpoint.save()

        try:
            for row in rows:
                if stopped:
                    break
                if row.line <= checkpoint.start_after or row.line in checkpoint.answered:
                    progress.advance(bar)
                    continue
                await gate.acquire()
                if stopped:
                    gate.release()
                    break
                checkpoint.started(row.line)
                in_flight.add(row.line)
                task = asyncio.create_task(one(row))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            checkpoint.save()
            summary.unfinished = sorted(in_flight)
    if stopped:
        raise stopped[0]


def _summary_table(title: str, summary: Summary, columns: tuple[str, ...]) -> Table:
    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="right")
    table.add_row(*(str(summary.counts[c]) for c in columns))
    return table


def _show_refusals(console: Console, path: Path, summary: Summary, errors: Path) -> None:
    for r in summary.refusals[:10]:
        console.print(
            flagged("refused", f" {path}:{r.line}: {r.field}={r.value!r}: {r.reason}"),
            highlight=False,
        )
    if len(summary.refusals) > 10:
        console.print(f"... and {len(summary.refusals) - 10} more")
    if summary.refusals:
        console.print(f"every refused row is in {errors}")


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _show_stopped(
    ctx: Context,
    path: Path,
    summary: Summary,
    checkpoint: Checkpoint,
    exc: BaseException,
    sent: tuple[str, ...],
) -> None:
    """Say what a run that stopped before the end did: the rows sent, those in flight, and
    where a second run resumes."""
    why = f"{type(exc).__name__}: {exc}" if isinstance(exc, Exception) else "interrupted"
    count = sum(summary.counts[k] for k in sent)
    ctx.console.print(
        flagged(
            "stopped",
            f" before the end of {path} ({why}): "
            f"{_rows(count)} {'was' if count == 1 else 'were'} sent before it stopped "
            f"({', '.join(f'{summary.counts[k]} {k}' for k in sent)}); "
            f"{summary.counts['refused']} refused, {summary.counts['failed']} failed",
        ),
        highlight=False,
    )
    if summary.unfinished:
        lines = ", ".join(str(line) for line in summary.unfinished[:10])
        more = ", ..." if len(summary.unfinished) > 10 else ""
        ctx.console.print(
            f"{_rows(len(summary.unfinished))} in flight (line {lines}{more}) may or may not "
            "have reached the engine",
            highlight=False,
        )
    done = (
        f"every row up to line {checkpoint.line} is done"
        if checkpoint.line > 1
        else "no row is known to be done"
    )
    resume = (
        f"the checkpoint {checkpoint.path} resumes after line {checkpoint.line}"
        if checkpoint.path
        else "--checkpoint FILE would skip the done rows"
    )
    ctx.console.print(
        f"{done}; run the same command again to go on ({resume}); rows already sent come back "
        "as repeats",
        highlight=False,
    )


# --- commands ---------------------------------------------------------------------------------


async def create_round(ctx: Context, config_path: Path, operator: str) -> int:
    """Start the round described by the file; a second run with the same file creates nothing."""
    config, created = await ctx.api.create_round(config_path, operator)
    if created:
        ctx.console.print(
            f"round {config.round_id} created ({len(config.formasi)} formasi, rules {config.rule_version})"
        )
    else:
        ctx.console.print(f"round {config.round_id} already exists, same rules")
    log.info(
        "round created" if created else "round exists", round_id=config.round_id, operator=operator
    )
    return EXIT_OK


async def _registration_closes(ctx: Context, config: RoundConfig) -> datetime:
    try:
        state = await ctx.api.round_state(config.round_id)
    except Exception as exc:  # noqa: BLE001 - the round does not exist or cannot be read
        if unreachable(exc):
            raise
        raise RefusedError(
            f"round {config.round_id} cannot be read ({exc}); run create-round first"
        ) from None
    return state.schedule.registration.closes


async def _rules_of_the_round(ctx: Context, local: RoundConfig, path: Path) -> RoundConfig:
    """The rules registrations are judged by: the round's, as recorded when it was created, not
    the operator's copy of the file. A copy edited since (another GPA floor, another formasi) is
    refused before anything is sent, naming both digests. Through the gateway, which gives the
    recorded rules' digest only, a copy that digests the same is the round's rules."""
    if isinstance(ctx.api, GatewayReports):
        recorded, digest = local, await ctx.api.rules_digest(local.round_id)
    else:
        await ctx.api.check_round_keys(local.round_id)
        recorded = await ctx.api.round_config(local.round_id)
        digest = recorded.digest()
    if digest != local.digest():
        raise RefusedError(
            f"{path}: its rules (digest {local.digest()[:12]}) are not the ones round "
            f"{local.round_id} was created with (digest {digest[:12]}); the round's "
            "rules apply. Use the file create-round took; a rule changes only through a new "
            "rule_version"
        )
    return recorded


def _row_refusals(
    line: int, refusals: list[Refusal], applicant_id: str | None = None
) -> list[RowRefusal]:
    """A registration's refusals as its row's, for the errors file: a name's value is left out
    (names stay out of errors files; a NIK's value comes masked already)."""
    return [
        RowRefusal(
            line, r.field, r.value if r.field != "name" else "", r.reason, applicant_id or ""
        )
        for r in refusals
    ]


def check_registrations(
    console: Console, config_path: Path, csv_path: Path, errors_path: Path
) -> Summary:
    """`import-registrations --dry-run`: judge every row of an export by the round file's rules,
    here, sending nothing and needing nothing of the cluster: what the engine would refuse by the
    rules (a malformed row, an ineligible one, a formasi the round does not have) and a NIK the
    file holds twice, written to the errors file as an import writes them. Ages are judged as of
    today in the round's time zone. What only the engine knows is not judged: the window as it
    stands, the sanctions register, a NIK registered already or claimed in the national round."""
    config = load_round_config(config_path)
    applied_on = datetime.now(UTC).astimezone(ZoneInfo(config.timezone)).date()
    errors = ErrorsFile(errors_path)
    summary = Summary()
    first_line: dict[str, int] = {}  # NIK -> the line it first came on
    try:
        for row in open_rows(csv_path, REGISTRATION_COLUMNS):
            try:
                reg = parse_registration(row)
            except RowError as exc:
                summary.refuse(exc.refusals, errors)
                continue
            refusals = check_registration(reg, config.formasi_by_code(reg.formasi_code), applied_on)
            if reg.nik in first_line:
                refusals.append(
                    Refusal(
                        field="nik",
                        value=mask_nik(reg.nik),
                        reason=f"the same NIK as line {first_line[reg.nik]}: one NIK registers "
                        "once per round",
                    )
                )
            first_line.setdefault(reg.nik, row.line)
            if refusals:
                summary.refuse(_row_refusals(row.line, refusals), errors)
            else:
                summary.counts["would register"] += 1
    finally:
        errors.close()
    console.print(
        _summary_table(f"{csv_path.name}, dry run", summary, ("would register", "refused"))
    )
    console.print(
        f"judged by the rules of {config_path} as of {applied_on.isoformat()}; nothing was sent. "
        "Not judged here: the window as it stands, the sanctions register, a NIK registered "
        "already or claimed nationally.",
        highlight=False,
    )
    _show_refusals(console, csv_path, summary, errors_path)
    return summary


async def import_registrations(
    ctx: Context,
    config_path: Path,
    csv_path: Path,
    errors_path: Path,
    concurrency: int = 16,
    registered_by: str = "sscasn",
    checkpoint_path: Path | None = None,
    numbers_path: Path | None = None,
) -> Summary:
    """Register every row of an SSCASN export; refused and failed rows go to the errors file, and
    each row's registration number, by its line, to the numbers file (no NIK; readable by the
    operator alone; `numbers_path_for` unless given).

    Nothing is registered by a client whose keys are not the round's (RefusedError). Through the
    gateway (ctx.api a GatewayReports) the gateway judges each row against the round's windows as
    they stand, and its portal key signs the start on the caller's request."""
    config = await _rules_of_the_round(ctx, load_round_config(config_path), config_path)
    through_gateway = isinstance(ctx.api, GatewayReports)
    closes = None if through_gateway else await _registration_closes(ctx, config)
    rows = open_rows(csv_path, REGISTRATION_COLUMNS)
    checkpoint = Checkpoint(checkpoint_path, csv_path)
    numbers_path = numbers_path or numbers_path_for(csv_path, errors_path)
    if checkpoint.start_after:
        checkpoint.answered = answered_lines(numbers_path) | answered_lines(errors_path)
    numbers = NumbersFile(numbers_path, append=checkpoint.start_after > 0)
    errors = ErrorsFile(errors_path, append=checkpoint.start_after > 0)
    summary = Summary()
    _resuming(ctx, checkpoint, checkpoint_path)

    async def handle(row) -> None:
        try:
            reg = parse_registration(row)
        except RowError as exc:
            summary.refuse(exc.refusals, errors)
            return
        result = await ctx.api.register(
            config, reg, registered_by, now=datetime.now(UTC), schedule_closes=closes
        )
        if result.applicant_id:
            numbers.write(row.line, result.applicant_id, result.status)
        if result.status == "refused":
            summary.refuse(_row_refusals(row.line, result.refusals, result.applicant_id), errors)
        else:
            summary.counts[result.status] += 1

    try:
        await _send_file(
            ctx,
            csv_path,
            _process_rows(
                ctx,
                csv_path,
                rows,
                handle,
                concurrency,
                checkpoint,
                f"registering {csv_path.name}",
                summary,
                errors,
            ),
            summary,
            checkpoint,
            errors,
            errors_path,
            f"{csv_path.name} → round {config.round_id}",
            ("registered", "repeat"),
        )
    finally:
        numbers.close()
        ctx.console.print(
            f"registration numbers (line, applicant_id, status): {numbers_path}; readable by you "
            "alone (mode 0600), keep it so",
            highlight=False,
        )
    log.info("registrations imported", round_id=config.round_id, **dict(summary.counts))
    return summary


async def _send_file(
    ctx: Context,
    csv_path: Path,
    processing: Awaitable[None],
    summary: Summary,
    checkpoint: Checkpoint,
    errors: ErrorsFile,
    errors_path: Path,
    title: str,
    sent: tuple[str, ...],
) -> None:
    """Await the processing of a file's rows, then print its summary; a run that stopped before
    the end prints it too, with the rows sent and where to resume, and the error goes on up."""
    columns = (*sent, "refused", "failed")
    try:
        await processing
    except BaseException as exc:
        errors.close()
        ctx.console.print(_summary_table(title, summary, columns))
        _show_refusals(ctx.console, csv_path, summary, errors_path)
        _show_stopped(ctx, csv_path, summary, checkpoint, exc, sent)
        log.warning(
            "file stopped before the end",
            file=str(csv_path),
            resume_after_line=checkpoint.line,
            in_flight=len(summary.unfinished),
            **dict(summary.counts),
        )
        raise
    errors.close()
    ctx.console.print(_summary_table(title, summary, columns))
    _show_refusals(ctx.console, csv_path, summary, errors_path)


async def send_reports(
    ctx: Context,
    kind: ReportKind,
    round_id: str,
    csv_path: Path,
    errors_path: Path,
    reported_by: str,
    concurrency: int = 16,
    checkpoint_path: Path | None = None,
) -> Summary:
    """Send every row of a report file to its applicant's journey; refused and failed rows go to
    the errors file. Nothing is sent by a client whose keys are not the round's (RefusedError)."""
    await ctx.api.check_round_keys(round_id)
    rows = open_rows(csv_path, kind.columns)
    checkpoint = Checkpoint(checkpoint_path, csv_path)
    if checkpoint.start_after:
        checkpoint.answered = answered_lines(errors_path)
    errors = ErrorsFile(errors_path, append=checkpoint.start_after > 0)
    summary = Summary()
    _resuming(ctx, checkpoint, checkpoint_path)
    locks: dict[str, asyncio.Lock] = {}
    codes: dict[str, str] = {}  # a panel sheet's candidate codes (client/panels.py), when used
    looked: set[str] = set()  # where codes were looked for: "seated", then "every journey"
    looking = asyncio.Lock()

    async def applicant_of(code: str) -> str | None:
        """The applicant a candidate code stands for: first among the applicants with a panel
        (the read model's panel_seats, one read), then, for a code not there (a panel the read
        model does not show yet, or the read model out of reach), among every journey of the
        round, listed once."""
        async with looking:
            if code not in codes and "seated" not in looked:
                looked.add("seated")
                try:
                    conn = await asyncpg.connect(ctx.database_url)
                    try:
                        codes.update(await seated_codes(conn, ctx.api.pseudonym_key, round_id))
                    finally:
                        await conn.close()
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning(
                        "panel_seats not read; listing the round's journeys", error=str(exc)
                    )
            if code not in codes and "every journey" not in looked:
                looked.add("every journey")
                codes.update(await candidate_codes(ctx.api, round_id))
        return codes.get(code)

    async def handle(row) -> None:
        try:
            parsed = parse_report(kind, row, reported_by)
        except RowError as exc:
            summary.refuse(exc.refusals, errors)
            return
        if parsed.applicant_id.startswith(CODE_PREFIX) and isinstance(ctx.api, RecruitmentApi):
            # A blind panel sheet names candidates by code: the committee's key resolves them.
            # (Through the gateway the code travels as it is, signed for the code, and the
            # gateway's key finds the journey.)
            applicant = await applicant_of(parsed.applicant_id)
            if applicant is None:
                refusal = RowRefusal(
                    row.line,
                    "applicant_id",
                    parsed.applicant_id,
                    "no such candidate code",
                    parsed.message.report_id,
                )
                summary.refuse([refusal], errors)
                return
            parsed = replace(parsed, applicant_id=applicant)
        # One report at a time per journey: a workflow takes at most 10 updates in flight.
        lock = locks.setdefault(parsed.applicant_id, asyncio.Lock())
        try:
            async with lock:
                ack = await ctx.api.submit(round_id, parsed.applicant_id, parsed.message)
        except RefusedError as exc:
            summary.refuse(
                [
                    RowRefusal(
                        row.line,
                        "(report)",
                        parsed.applicant_id,
                        str(exc),
                        parsed.message.report_id,
                    )
                ],
                errors,
            )
            return
        # Told by what the engine holds (submit), never by comparing this machine's clock with
        # the server's: minutes apart, that made every new report a "repeat" or the reverse.
        summary.counts["repeat" if ack.repeat else "accepted"] += 1

    await _send_file(
        ctx,
        csv_path,
        _process_rows(
            ctx,
            csv_path,
            rows,
            handle,
            concurrency,
            checkpoint,
            f"{kind.name} {csv_path.name}",
            summary,
            errors,
        ),
        summary,
        checkpoint,
        errors,
        errors_path,
        f"{kind.name} reports {csv_path.name} → round {round_id}",
        ("accepted", "repeat"),
    )
    log.info("reports sent", round_id=round_id, kind=kind.name, **dict(summary.counts))
    return summary


def derived_report_id(command: str, *args: object) -> str:
    """A deterministic id from a command's arguments: re-running the same command is idempotent."""
    body = json.dumps([command, *[str(a) for a in args]], separators=(",", ":"))
    return f"{command}-{hashlib.sha256(body.encode()).hexdigest()[:16]}"


async def round_command(ctx: Context, round_id: str, message: Report) -> Ack:
    """Send one operator command to the round and print its Ack."""
    update = command_update(message).name
    ack = await ctx.api.command(round_id, message)
    ctx.console.print(
        f"{update}: {ack.effect} (report {ack.report_id}, recorded {ack.recorded_at.isoformat()})"
    )
    log.info("command accepted", round_id=round_id, update=update, report_id=ack.report_id)
    return ack


async def journey_command(ctx: Context, round_id: str, applicant_id: str, message: Report) -> Ack:
    """Send one operator or portal command to an applicant's journey (or, after it ended, to its
    aftermath) and print its Ack."""
    update = DISMISS.name if isinstance(message, Dismissal) else report_update(message).name
    ack = await ctx.api.report(round_id, applicant_id, message)
    ctx.console.print(f"{update} {applicant_id}: {ack.effect} (report {ack.report_id})")
    log.info(
        "command accepted",
        round_id=round_id,
        applicant_id=applicant_id,
        update=update,
        report_id=ack.report_id,
    )
    return ack


async def funnel(ctx: Context, round_id: str) -> dict[str, Counter]:
    """Counts per formasi of each applicant's stage, or terminal code once the journey ended."""
    return (await _funnel_and_purge(ctx, round_id))[0]


async def _funnel_and_purge(
    ctx: Context, round_id: str
) -> tuple[dict[str, Counter], datetime | None]:
    """The funnel, and when the round's personal data was purged (None: it was not)."""
    conn = await asyncpg.connect(ctx.database_url)
    try:
        return await funnel_counts(conn, round_id), await purged_on(conn, round_id)
    finally:
        await conn.close()


def _print_json(ctx: Context, document: object) -> None:
    """One JSON document on stdout, never wrapped or marked up."""
    ctx.console.print(
        json.dumps(document, ensure_ascii=False, sort_keys=True),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _windows_table(view: RoundView) -> Table:
    table = Table(title=f"Windows of round {view.round_id} (WIB)")
    for column in ("window", "opens", "closes", "as created", "state", "extensions"):
        table.add_column(column)
    for w in view.windows:
        state = w.state_text()
        if w.closed_early_reason:
            state += f": {w.closed_early_reason}"
        table.add_row(
            f"{w.name} ({w.label})",
            wib(w.opens),
            wib(w.closes),
            wib(w.original_closes) if w.original_closes != w.closes else "same",
            state,
            "\n".join(
                f"{wib(e.at)} by {e.by}: to {wib(e.new_closes)} ({e.reason})" for e in w.extensions
            )
            or "none",
        )
    return table


def _show_round(ctx: Context, view: RoundView) -> None:
    closed = [w.name for w in view.windows if w.state == "ditutup"]
    ctx.console.print(
        Text.assemble(
            f"round {view.round_id} ({view.instansi}): phase ",
            (view.phase, "bold"),
            f" ({view.phase_label}), closed windows: {', '.join(closed) or 'none'}",
        ),
        highlight=False,
    )
    ctx.console.print(_windows_table(view))
    moved = f", as created {tanggal(view.original_tmt)}" if view.tmt_moves else ""
    ctx.console.print(f"TMT {tanggal(view.tmt)}{moved}", highlight=False)
    ctx.console.print(f"rules digest {view.rules_digest}", highlight=False)
    for m in view.tmt_moves:
        ctx.console.print(
            f"  moved {tanggal(m.from_tmt)} → {tanggal(m.to_tmt)} on {wib(m.at)} by {m.by}: "
            f"{m.reason}",
            highlight=False,
        )
    if view.offers_unanswered:
        ctx.console.print(
            flagged(
                "optimalisasi offers unanswered",
                f" {len(view.offers_unanswered)} counted as declined at the round's deadline "
                f"(latest answer_by plus offer_answer_grace), their seats passed on: "
                + ", ".join(f"{u.offer_id} ({wib(u.deadline)})" for u in view.offers_unanswered)
                + " (docs/OPERATIONS.md 2.6)",
                "bold yellow",
            ),
            highlight=False,
        )
    if (stop := view.offers_stopped) is not None:
        left = ", ".join(f"{code} {n}" for code, n in stop.seats_not_offered.items())
        ctx.console.print(
            flagged(
                "optimalisasi stopped",
                f" {wib(stop.at)} at {stop.history_length:,} history events (budget "
                f"{stop.history_budget:,}) after {stop.offers_made:,} offers; seats not offered, "
                f"empty in this round: {left or 'none'} (docs/OPERATIONS.md 6.10)",
                "bold red",
            ),
            highlight=False,
        )


async def status(ctx: Context, round_id: str, as_json: bool = False) -> dict[str, Counter]:
    """Print the round (every window with its extensions and early close, the TMT and its moves)
    and its funnel per formasi, as tables or one JSON document; return the funnel. An unknown
    round still shows what the read model holds of it.

    The round comes from its workflow, the funnel from the read model. With the read model down
    the round is still shown, with why the funnel is not (`funnel_problem` in JSON); then the
    database's error is raised again, so that the command exits 3 ("stopped"). With no worker to
    answer for the round, the funnel is shown and why the round is not (`round_problem`), and the
    command exits 3 too. Through the gateway the gateway reads both halves and says the same."""
    if isinstance(ctx.api, GatewayReports):
        return await _status_through_gateway(ctx, round_id, as_json)
    view: RoundView | None = None
    problem = None
    silent: Exception | None = None
    try:
        await ctx.api.check_round_keys(round_id)
        view = await round_view(ctx.api, round_id)
    except RefusedError as exc:  # show the read model even when the round is gone
        problem = str(exc)
    except Exception as exc:
        # The round cannot answer now (no worker): the read model is shown all the same, then
        # the error goes on, so that the command stops with exit 3 and says why.
        problem = engine_silent(exc)
        if problem is None:
            raise
        silent = exc
    counts: dict[str, Counter] = {}
    purged_at = None
    funnel_problem = None
    down: Exception | None = None
    try:
        counts, purged_at = await _funnel_and_purge(ctx, round_id)
    except Exception as exc:
        funnel_problem = unreachable(exc)
        if funnel_problem is None:
            raise
        down = exc
    shown = RoundStatus.of(
        round_id, view, problem, None if down else counts, funnel_problem, purged_at
    )
    _show_status(ctx, shown, as_json)
    if down is not None:
        raise down
    if silent is not None:
        raise silent
    if view is None and problem is not None:
        raise RefusedError(problem)  # shown above with the read model's rows; exits 1
    return counts


async def _status_through_gateway(ctx: Context, round_id: str, as_json: bool) -> dict[str, Counter]:
    """`status --gateway`: the gateway reads the round and the funnel (`GET /api/v1/rounds/...`,
    for the round's operators); shown as without it. A half it could not read exits 3."""
    shown = RoundStatus.model_validate(await ctx.api.round_status(round_id))
    _show_status(ctx, shown, as_json)
    problems = [p for p in (shown.round_problem, shown.funnel_problem) if p]
    if problems:
        raise GatewayError(503, "; ".join(problems))
    return {f: Counter(per) for f, per in (shown.funnel or {}).items()}


def _show_status(ctx: Context, shown: RoundStatus, as_json: bool) -> None:
    """The round and its funnel as tables, or as one JSON document; a half that could not be
    read is said with its problem."""
    if as_json:
        _print_json(ctx, shown.model_dump(mode="json"))
        return
    round_id = shown.round_id
    if shown.round is not None:
        _show_round(ctx, shown.round)
    else:
        ctx.console.print(
            f"round {round_id}: phase unknown ({shown.round_problem})", highlight=False
        )
    if shown.funnel is not None:
        _show_funnel(ctx, round_id, shown.funnel)
    else:
        ctx.console.print(
            f"funnel of round {round_id}: not shown: {shown.funnel_problem}", highlight=False
        )
    if shown.personal_data_purged_at is not None:
        ctx.console.print(
            flagged(
                "personal data purged",
                f": round {round_id}'s personal data was purged from the read model on "
                f"{wib(shown.personal_data_purged_at)}; the funnel and the record of the "
                "selection are kept (docs/OPERATIONS.md 8)",
                "bold yellow",
            ),
            highlight=False,
            soft_wrap=True,
        )


def _show_funnel(ctx: Context, round_id: str, counts: Mapping[str, Mapping[str, int]]) -> None:
    """The funnel per formasi: stage or result code counts, with a total row."""
    codes = sorted({c for per in counts.values() for c in per})
    table = Table(title=f"Funnel of round {round_id}")
    table.add_column("formasi")
    for c in codes:
        table.add_column(c, justify="right")
    table.add_column("total", justify="right")
    totals: Counter = Counter()
    for code_, per in sorted(counts.items()):
        totals.update(per)
        table.add_row(code_, *(str(per.get(c, 0)) for c in codes), str(sum(per.values())))
    table.add_row(
        Text("total", "bold"),
        *(str(totals.get(c, 0)) for c in codes),
        str(sum(totals.values())),
        end_section=True,
    )
    ctx.console.print(table)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _show_applicant(ctx: Context, view: ApplicantView, nik: str | None) -> None:
    who = f" (NIK {mask_nik(nik)})" if nik else ""
    table = Table(
        title=f"Applicant {view.applicant_id}{who} in round {view.round_id}", show_header=False
    )
    table.add_column("", style="bold")
    table.add_column("")
    jabatan = f" ({view.jabatan})" if view.jabatan else ""
    rows = [
        ("formasi", f"{view.formasi_code}{jabatan}"),
        ("stage", f"{view.stage} ({view.stage_label})"),
        ("admin", view.admin or "-"),
        (
            "SKD",
            f"{view.skd_code or '-'}" + (f", total {view.skd_total}" if view.skd_total else ""),
        ),
        ("SKB score", view.skb_score or "-"),
        (
            "final",
            f"{view.final_code or '-'}"
            + (f", score {view.final_score}" if view.final_score else ""),
        ),
        ("placed in", view.placed_formasi or "-"),
        ("NIP, TMT", f"{view.nip or '-'}, {tanggal(view.tmt)}"),
        ("outcome", f"{view.terminal_label}: {view.terminal_text}" if view.terminal else "running"),
        (
            "after the end",
            "\n".join(
                f"{r.label} since {wib(r.at)}"
                + (f", decree {r.decree_no}" if r.decree_no else "")
                + f": {r.reason}"
                for r in view.revocations
            )
            or "-",
        ),
        ("deadlines", "\n".join(f"{d.label}: {wib(d.at)}" for d in view.deadlines) or "none"),
        ("may appeal", _yes(view.can_appeal)),
        (
            "offer",
            f"{view.pending_offer.to_formasi} ({view.pending_offer.to_jabatan}), answer by "
            f"{wib(view.pending_offer.answer_by)}"
            if view.pending_offer
            else "none",
        ),
        (
            "may withdraw",
            _yes(view.can_withdraw)
            + (
                f" (barred from the next {view.withdrawal_sanction_rounds} rounds)"
                if view.withdrawal_sanction_rounds
                else ""
            ),
        ),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    ctx.console.print(table)
    trail = Table(title="Decisions (WIB)")
    for column in ("at", "stage", "outcome", "reason", "by"):
        trail.add_column(column)
    for d in view.decisions:
        reason = "\n".join([d.reason, *(f"- {x.item}: {x.reason}" for x in d.details)])
        trail.add_row(wib(d.at), d.stage_label, d.outcome, reason, d.actor)
    ctx.console.print(trail)


async def lookup(
    ctx: Context,
    round_id: str,
    applicant_id: str | None = None,
    nik: str | None = None,
    as_json: bool = False,
) -> ApplicantView:
    """Print one applicant's status (stage, codes, every decision with its reason, deadlines,
    what they may do now) as tables or one JSON document. By NIK, the registration number is the
    pseudonym the round's key gives it; the NIK is never printed whole. UnknownError (exit 1)
    for an unknown round or applicant."""
    if isinstance(ctx.api, GatewayReports):  # the gateway holds the round's pseudonym key
        view = ApplicantView.model_validate(await ctx.api.lookup(round_id, applicant_id, nik))
    else:
        try:
            await ctx.api.check_round_keys(round_id)  # another key would look up another number
            if nik is not None:
                applicant_id = applicant_id_for(ctx.api.pseudonym_key, round_id, nik)
            assert applicant_id is not None
            view = await applicant_view(ctx.api, round_id, applicant_id)
        except UnknownError as exc:
            await _said_purged(ctx, round_id, exc)
            raise
    if as_json:
        _print_json(ctx, view.model_dump(mode="json"))
    else:
        _show_applicant(ctx, view, nik)
    return view


async def _said_purged(ctx: Context, round_id: str, unknown: UnknownError) -> None:
    """An unknown round or applicant of a round whose personal data was purged (and whose
    histories the namespace may have deleted since): UnknownError saying so, with what is kept."""
    conn = await asyncpg.connect(ctx.database_url)
    try:
        purged = await purged_on(conn, round_id)
    finally:
        await conn.close()
    if purged is not None:
        raise UnknownError(
            f"round {round_id}'s personal data was purged from the read model on {wib(purged)} "
            f"(docs/OPERATIONS.md 8), and the engine does not know it now ({unknown}); its "
            f"results are kept in the announcements and the funnel of `starter.py status "
            f"{round_id}`"
        ) from None


async def announce(
    ctx: Context,
    round_id: str,
    stage: AnnouncementStage,
    out_dir: Path,
    signer: Signer,
    corrects: int | None = None,
) -> Published:
    """Publish the stage's announcement from the read model: signed by `signer` (an operator of
    the round), chained to the round's earlier publications and stored for the public pages;
    then written to `out_dir` as CSV, printable HTML and the signed JSON document. Refused
    (RefusedError: exit 1, naming what is missing) while the stage has no result for everyone.
    Through the gateway, the gateway drafts it and the signature is made here."""
    if isinstance(ctx.api, GatewayReports):
        published = await ctx.api.announce(
            round_id, stage.value, signer.identity, corrects, lambda d: _show_draft(ctx, d)
        )
    else:
        conn = await asyncpg.connect(ctx.database_url)
        try:
            published = await publish_announcement(
                ctx.api, conn, round_id, stage, signer, corrects, ctx.cipher
            )
        finally:
            await conn.close()
    p, new = published.publication, published.new
    csv_path, html_path, json_path = write_files(
        p, published.cut_multiplier, out_dir, published.timezone
    )
    rows = sum(len(f.rows) for f in p.formasi)
    if new:
        ctx.console.print(
            f"publication {p.seq} of round {round_id} ({stage.value}, {rows} rows) signed by "
            f"{p.reported_by}, sha256 {p.body_sha256()}"
        )
    else:
        ctx.console.print(
            f"unchanged: publication {p.seq} of round {round_id} already announces this "
            f"({stage.value}, {rows} rows); nothing new published"
        )
    ctx.console.print(f"files: {csv_path}, {html_path} and {json_path}")
    log.info(
        "announcement published" if new else "announcement unchanged",
        round_id=round_id,
        stage=stage.value,
        seq=p.seq,
        rows=rows,
    )
    return published


def _show_draft(ctx: Context, draft: Publication) -> None:
    """What the operator's key is about to sign, drafted by the gateway: per formasi, how many
    rows carry each code (the files written after it hold every row)."""
    ctx.console.print(
        f"Signing publication {draft.seq} of round {draft.round_id} ({draft.stage.value}), "
        "drafted by the gateway:",
        highlight=False,
    )
    table = Table()
    codes = sorted({r.code for _, r in draft.rows()})
    for column in ("formasi", *codes, "rows"):
        table.add_column(column, justify="left" if column == "formasi" else "right")
    for f in draft.formasi:
        tally = Counter(r.code for r in f.rows)
        table.add_row(f.code, *(str(tally.get(c, 0)) for c in codes), str(len(f.rows)))
    ctx.console.print(table)


# --- the national round (issue 17) --------------------------------------------------------------


async def create_national(ctx: Context, config_path: Path, operator: str) -> int:
    """Start the national round described by the file; a second run with the same file creates nothing."""
    try:
        config, created = await ctx.api.national.create(config_path, operator)
    except NationalRefusal as exc:
        raise RefusedError(str(exc)) from None
    windows = ", ".join(config.schedule.windows())
    ctx.console.print(
        f"national round {config.national_id} ({config.name}) "
        + (f"created; national windows: {windows}" if created else "already exists, same file"),
        highlight=False,
    )
    log.info(
        "national round created" if created else "national round exists",
        national_id=config.national_id,
        operator=operator,
    )
    return EXIT_OK


async def show_national_funnel(
    ctx: Context, national_id: str, as_json: bool = False
) -> tuple[NationalState, list[InstansiFunnel]]:
    """Print the national round's schedule and, per instansi round in the order they joined, its
    applicants by stage or result code, the registrations its journeys refused (apart) and its
    announcements (from the read model). Through the gateway, for an identity its file names among
    its `readers`."""
    if isinstance(ctx.api, GatewayReports):
        document = await ctx.api.national_funnel(national_id)
        try:
            state, lines = funnel_from_document(document)
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayError(
                200, f"the gateway's answer holds no national funnel: {exc}"
            ) from None
    else:
        conn = await asyncpg.connect(ctx.database_url)
        try:
            state, lines = await national_funnel(ctx.api.national, conn, national_id)
        except NationalRefusal as exc:
            raise RefusedError(str(exc)) from None
        finally:
            await conn.close()
    if as_json:
        _print_json(ctx, funnel_document(national_id, state, lines))
        return state, lines
    ctx.console.print(
        f"national round {national_id} ({state.name}): {state.phase}, "
        f"{len(state.rounds)} instansi rounds joined",
        highlight=False,
    )
    windows = Table(title=f"National windows of {national_id} (WIB)")
    for column in ("window", "opens", "closes"):
        windows.add_column(column)
    for name, w in state.schedule.windows().items():
        windows.add_row(name, wib(w.opens), wib(w.closes))
    ctx.console.print(windows)
    codes = sorted({c for f in lines for c in f.codes})
    table = Table(title=f"Funnel of national round {national_id}, per instansi")
    for column in ("instansi", "round", "formasi", "seats"):
        table.add_column(column, justify="right" if column in ("formasi", "seats") else "left")
    for c in codes:
        table.add_column(c, justify="right")
    table.add_column("total", justify="right")
    # Registrations their journeys refused: no applicants, so not in the total (client/national.py).
    table.add_column("refused", justify="right")
    table.add_column("announced")
    totals: Counter = Counter()
    for f in lines:
        totals.update(f.codes)
        table.add_row(
            f.instansi,
            f.round_id,
            str(f.formasi),
            str(f.seats),
            *(str(f.codes.get(c, 0)) for c in codes),
            str(sum(f.codes.values())),
            str(f.refused),
            ", ".join(f"{stage} {n}" for stage, n in sorted(f.publications.items())) or "none",
        )
    table.add_row(
        Text("all", "bold"),
        f"{len(lines)} rounds",
        str(sum(f.formasi for f in lines)),
        str(sum(f.seats for f in lines)),
        *(str(totals.get(c, 0)) for c in codes),
        str(sum(totals.values())),
        str(sum(f.refused for f in lines)),
        "",
        end_section=True,
    )
    ctx.console.print(table)
    return state, lines


# --- the command line -------------------------------------------------------------------------

cli = typer.Typer(
    help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
console = console_for()
err_console = console_for(stderr=True)


def load_signer(path: Path, identity: str) -> Signer:
    """The signing key in `path` (made by `starter.py keygen`), which must be `identity`'s."""
    signer = read_signer(path)
    if signer.identity != identity:
        raise BadInput(f"--key {path} is {signer.identity}'s key, but --as says {identity}")
    return signer


def read_signer(path: Path) -> Signer:
    """The signing key in `path` (made by `starter.py keygen`), whoever's it is."""
    try:
        document = json.loads(read_input(path, KEY_FILE_LIMIT).decode("utf-8"))
        signer = Signer.from_jwk(document)
    except FileNotFoundError:
        raise BadInput(f"--key {path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"--key {path}: a directory; give the key file made by keygen") from None
    except OSError as exc:
        raise BadInput(f"--key {path}: cannot be read ({_why(exc)})") from None
    except (ValueError, TypeError, SigningKeyError) as exc:
        raise BadInput(f"--key {path}: not a key file made by starter.py keygen ({exc})") from None
    return signer


def _exit_code(result: object) -> int:
    """A command core's outcome as its exit code: a file's summary says, anything else is ok."""
    return result.exit_code if isinstance(result, Summary) else EXIT_OK


def _run(
    body: Callable[[Context], Awaitable[object]],
    signer: Signer | None = None,
    gateway: tuple[str, str] | None = None,
) -> None:
    """Open the app (or, given `gateway` as (URL, API key), only a client of the HTTP gateway:
    no Temporal, no payload key), run one command's core, and turn its outcome into an exit
    code."""
    opened: dict = {}  # the settings, once read: to say which server cannot be reached

    async def through_gateway(url: str, api_key: str) -> int:
        async with GatewayReports(url, api_key, Keyring([signer] if signer else [])) as api:
            result = await body(Context(api, "", console))  # type: ignore[arg-type]
        return _exit_code(result)

    async def main() -> int:
        from runtime.app import open_app
        from runtime.logs import configure_logging
        from runtime.settings import load_settings

        opened["settings"] = load_settings()
        if gateway is not None:
            configure_logging(opened["settings"])  # to stderr, as open_app does
            return await through_gateway(*gateway)
        app = await open_app()
        sanctions = SanctionRegister(database_url=app.stack.database_url)  # connects when used
        ctx = Context(
            RecruitmentApi(
                with_query_deadline(app.client, timedelta(seconds=app.settings.query_seconds)),
                app.settings.task_queue,
                app.keys.pseudonym_key,
                keyring=Keyring([signer] if signer else []),
                sanctions=sanctions,
            ),
            app.stack.database_url,
            console,
            # Without the payload keys nothing kept sealed can be read; a command that needs it says so.
            ColumnCipher.from_keys(app.keys) if getattr(app.keys, "payload_key", None) else None,
        )
        try:
            result = await body(ctx)
        finally:
            await sanctions.close()
        return _exit_code(result)

    try:
        code = asyncio.run(main())
    except (ConfigError, CsvFileError, BadInput, NationalListError) as exc:
        err_console.print(flagged("bad input", f": {exc}"), highlight=False)
        code = EXIT_BAD_INPUT
    except ValidationError as exc:
        if is_settings_error(exc):  # a CASN_ variable, not an argument
            err_console.print(
                flagged("bad configuration", f": {describe_settings_error(exc)}"), highlight=False
            )
        else:
            err_console.print(flagged("bad arguments", f": {exc}"), highlight=False)
        code = EXIT_BAD_INPUT
    except RefusedError as exc:
        err_console.print(flagged("refused", f": {exc}"), highlight=False)
        code = EXIT_REFUSED
    except (InvalidKeyError, TransportError) as exc:  # a key, TLS or password file not usable
        err_console.print(flagged("bad configuration", f": {exc}"), highlight=False)
        code = EXIT_BAD_INPUT
    except StackError as exc:  # a server that cannot be started, or refuses TLS or the login
        err_console.print(flagged("stopped", f": {exc}"), highlight=False, soft_wrap=True)
        code = EXIT_STOPPED
    except GatewayError as exc:  # a whole batch refused, or the gateway not reached
        kind, code = _gateway_outcome(exc)
        err_console.print(flagged(kind, f": {exc}"), highlight=False, soft_wrap=True)
    except NotTaken as exc:  # a command the engine did not take in time, through the gateway
        err_console.print(
            flagged("stopped", f": {exc}; send the same command again (a repeat is safe)"),
            highlight=False,
            soft_wrap=True,
        )
        code = EXIT_STOPPED
    except KeyboardInterrupt:
        err_console.print(flagged("stopped", ": interrupted"), highlight=False)
        code = EXIT_STOPPED
    except Exception as exc:
        down = unreachable(exc, opened.get("settings"))
        if down:
            err_console.print(
                flagged(
                    "stopped",
                    f": {down}; start it or fix the setting, then run the same command again",
                ),
                highlight=False,
                soft_wrap=True,
            )
            code = EXIT_STOPPED
        elif silent := engine_silent(exc):
            err_console.print(
                flagged("stopped", f": {silent}; run the same command again once it answers"),
                highlight=False,
                soft_wrap=True,
            )
            code = EXIT_STOPPED
        elif stops_the_run(exc):
            err_console.print(flagged("stopped", f": {type(exc).__name__}: {exc}"), highlight=False)
            code = EXIT_STOPPED
        else:
            raise
    raise typer.Exit(code)


def _gateway_outcome(exc: GatewayError) -> tuple[str, int]:
    """What a batch the gateway refused whole says about the run, and its exit code."""
    if exc.status in (401, 403, 409, 413, 422):  # the API key, --as, --key or the file
        return "bad input", EXIT_BAD_INPUT
    if exc.status == 404:
        return "refused", EXIT_REFUSED
    return "stopped", EXIT_STOPPED


def gateway_target(url: str | None, api_key_file: Path | None) -> tuple[str, str] | None:
    """--gateway and --api-key-file, checked: None without --gateway. The key travels in every
    request, so only https, or http to this machine."""
    if url is None:
        if api_key_file is not None:
            raise BadInput("--api-key-file is for --gateway: give the gateway's URL too")
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BadInput(f"--gateway {url!r}: not an http(s) URL such as https://gateway.example")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise BadInput(
            f"--gateway {url!r}: plain http would send the API key in the clear; use https "
            "(http only to this machine)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadInput(f"--gateway {url!r}: give the gateway's base URL, without a path")
    if api_key_file is None:
        raise BadInput("--gateway needs --api-key-file: the file holding your API key")
    try:
        mode = api_key_file.stat().st_mode
        key = read_input(api_key_file, KEY_FILE_LIMIT).decode("utf-8").strip()
    except FileNotFoundError:
        raise BadInput(f"--api-key-file {api_key_file}: no such file") from None
    except OSError as exc:
        raise BadInput(f"--api-key-file {api_key_file}: cannot be read ({_why(exc)})") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"--api-key-file {api_key_file}: cannot be read ({exc})") from None
    if mode & 0o077:
        raise BadInput(
            f"--api-key-file {api_key_file}: others can read it (mode {mode & 0o777:o}); "
            f"chmod 600 {api_key_file}"
        )
    if not key or any(c.isspace() or not c.isprintable() for c in key) or len(key) > 512:
        raise BadInput(
            f"--api-key-file {api_key_file}: not one API key (one line, no spaces, at most 512 "
            "characters)"
        )
    return url.rstrip("/"), key


def _through(url: str | None, api_key_file: Path | None) -> tuple[str, str] | None:
    """--gateway and --api-key-file as `_run` takes them; a bad one exits 2 before anything."""
    return _precheck(lambda: gateway_target(url, api_key_file))


def _precheck(check: Callable[[], T]) -> T:
    """Check the input files (or arguments) before starting anything, and give what the check
    read: a bad one exits 2 without a stack."""
    try:
        return check()
    except (ConfigError, CsvFileError, BadInput) as exc:
        err_console.print(flagged("bad input", f": {exc}"), highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _header_ok(path: Path, columns) -> None:
    open_rows(path, columns).close()


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _separate_files(inputs: dict[str, Path | None], outputs: dict[str, Path | None]) -> None:
    """BadInput when a file the command writes is a file it reads, or another it writes: an
    errors file given the export's name would have emptied the export (written from its first
    byte), a checkpoint given the round file's would have replaced the round file."""
    seen = [(name, path) for name, path in inputs.items() if path is not None]
    for name, path in outputs.items():
        if path is None:
            continue
        if path.is_dir():
            raise BadInput(f"{name} {path} is a directory: give the file to write")
        for other, known in seen:
            if _same_file(path, known):
                raise BadInput(
                    f"{name} {path} is the file of {other}: writing it would overwrite that "
                    f"file; give {name} a file of its own"
                )
        seen.append((name, path))
    for name, path in outputs.items():
        if path is not None:
            _can_write(name, path)


def _can_write(name: str, path: Path) -> None:
    """BadInput when `path` cannot be created or written (under a file, in /proc, no permission),
    found out before anything connects or is sent (runtime/writable.py)."""
    if problem := cannot_write(path):
        raise BadInput(f"{name} {path}: cannot be written ({problem})")


def _can_write_in(name: str, folder: Path) -> None:
    """BadInput when files cannot be written in `folder`, found out before anything connects or
    is sent: the announcement's or the report's files, written after the round was reached."""
    if problem := cannot_write_in(folder):
        raise BadInput(f"{name} {folder}: cannot be written ({problem})")


As = Annotated[
    str, typer.Option("--as", help="Your identity, as listed in the round's reporters table.")
]
Reason = Annotated[str, typer.Option("--reason", help="Why; recorded in the round's history.")]
ReportId = Annotated[
    str | None,
    typer.Option(
        "--report-id",
        help="Idempotency key; default derived from the arguments, so a re-run is a repeat.",
    ),
]
Errors = Annotated[Path, typer.Option("--errors", help="CSV to write every refused row to.")]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="CASN_KEY_FILE",
        help="Your signing key (starter.py keygen); a round with identities takes only signed "
        "reports and commands.",
    ),
]
Concurrency = Annotated[
    int, typer.Option("--concurrency", min=1, max=512, help="Rows in flight at once.")
]
GatewayUrl = Annotated[
    str | None,
    typer.Option(
        "--gateway",
        envvar="CASN_GATEWAY_URL",
        help="Send (status: read) through the HTTP gateway at this base URL (https://...) "
        "instead of to Temporal (a report file in batches): for an operator with an API key and "
        "a signing key but no access to the cluster (docs/GATEWAY.md).",
    ),
]
ApiKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--api-key-file",
        envvar="CASN_GATEWAY_API_KEY_FILE",
        help="With --gateway: the file holding your API key (one line, mode 600).",
    ),
]
CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="File recording the last line up to which every row is answered (a failed row "
        "holds it); a re-run skips up to it, and past lines the numbers or errors file answers.",
    ),
]


@cli.command("create-round")
def create_round_cmd(
    config: Annotated[Path, typer.Argument(help="The round's TOML file.")],
    operator: Annotated[str, typer.Option("--operator", help="Who creates it.")] = "operator",
):
    """Create a round from its TOML file (validated). Running it again creates nothing."""
    _precheck(lambda: load_round_config(config))
    _run(lambda ctx: create_round(ctx, config, operator))


@cli.command("import-registrations")
def import_cmd(
    round_config: Annotated[Path, typer.Argument(help="The round's TOML file.")],
    file: Annotated[
        Path, typer.Argument(help="SSCASN export: " + ",".join(REGISTRATION_COLUMNS.all))
    ],
    errors: Errors,
    concurrency: Concurrency = 16,
    registered_by: Annotated[
        str | None,
        typer.Option("--as", help="The registering portal (default sscasn); not with --gateway."),
    ] = None,
    checkpoint: CheckpointOpt = None,
    key: KeyFile = None,
    numbers: Annotated[
        Path | None,
        typer.Option(
            "--numbers",
            help="CSV to write each row's registration number to (line, applicant_id, status), "
            "readable by you alone; default <input>.numbers.csv next to --errors.",
        ),
    ] = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Judge every row by the round file's rules here and send nothing (no cluster, no "
            "gateway): the refusals go to --errors.",
        ),
    ] = False,
):
    """Register every row of a CSV export. Idempotent and resumable: re-run the same file.
    In a round with identities, sign with the registering identity's --key. Each NIK's
    registration number goes to a file readable by you alone (--numbers). With --gateway, an
    operator of the round with no access to the cluster registers them through the HTTP gateway:
    the gateway's portal key signs each start, naming the API key's identity as the one who
    asked, so neither --as nor --key is taken (docs/GATEWAY.md)."""

    def checked() -> None:
        load_round_config(round_config)
        _header_ok(file, REGISTRATION_COLUMNS)
        _separate_files(
            {
                "ROUND_CONFIG": round_config,
                "FILE": file,
                "--key": key,
                "--api-key-file": api_key_file,
            },
            {
                "--errors": errors,
                "--numbers": numbers or numbers_path_for(file, errors),
                "--checkpoint": checkpoint,
            },
        )
        if gateway is not None and (key is not None or registered_by is not None):
            raise BadInput(
                "--gateway: the gateway's portal key signs registrations sent through it, on "
                "your API key's request; leave out --key and --as"
            )

    _precheck(checked)
    if dry_run:
        summary = _precheck(lambda: check_registrations(console, round_config, file, errors))
        raise typer.Exit(summary.exit_code)
    registrar = registered_by or "sscasn"
    _run(
        lambda ctx: import_registrations(
            ctx, round_config, file, errors, concurrency, registrar, checkpoint, numbers
        ),
        _signer(key, registrar),
        _through(gateway, api_key_file),
    )


@cli.command("report")
def report_cmd(
    kind: Annotated[str, typer.Argument(help="One of: " + ", ".join(REPORT_KINDS))],
    round_id: str,
    file: Path,
    reporter: As,
    errors: Errors,
    concurrency: Concurrency = 16,
    checkpoint: CheckpointOpt = None,
    key: KeyFile = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """Send a file of reports (one per row) to the applicants' journeys; with --gateway, through
    the HTTP gateway in batches, needing no access to Temporal."""
    if kind not in REPORT_KINDS:
        err_console.print(
            flagged("bad arguments", f": KIND={kind!r}: expected one of {', '.join(REPORT_KINDS)}"),
            highlight=False,
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    _arguments(lambda: _code(round_id))
    _precheck(
        lambda: (
            _header_ok(file, REPORT_KINDS[kind].columns),
            _separate_files(
                {"FILE": file, "--key": key, "--api-key-file": api_key_file},
                {"--errors": errors, "--checkpoint": checkpoint},
            ),
        )
    )
    _run(
        lambda ctx: send_reports(
            ctx, REPORT_KINDS[kind], round_id, file, errors, reporter, concurrency, checkpoint
        ),
        _signer(key, reporter),
        _through(gateway, api_key_file),
    )


def _datetime(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(
            f"{name}={text!r}: not an ISO date-time such as 2027-08-24T23:59:59+07:00"
        ) from None
    if value.tzinfo is None:
        raise BadInput(f"{name}={text!r}: give the time zone, e.g. +07:00 for WIB")
    return value


# The windows of a round's schedule an operator may extend or close (domain/config.py, Schedule).
WINDOWS = ("registration", "administration", "skd", "skb", "filing", "latsar")


def _window_name(window: str) -> None:
    if window not in WINDOWS:
        raise BadInput(f"WINDOW={window!r}: not a window; the windows are {', '.join(WINDOWS)}")


def _code(value: str, name: str = "ROUND_ID", what: str = "a round id") -> str:
    """A round id, national id or formasi code given on the command line (domain.config.Code):
    one that cannot be one names no round, and is refused before anything is asked."""
    if not CODE.fullmatch(value):
        raise BadInput(f"{name}={value!r}: not {what} ({CODE_RULE})")
    return value


def _registration_number(value: str, name: str = "APPLICANT_ID") -> str:
    """A registration number given on the command line (client.api.applicant_id_for's form)."""
    if not REGISTRATION_NUMBER.fullmatch(value):
        raise BadInput(
            f"{name}={value!r}: not a registration number (16 capital letters A-Z and digits "
            "2-7, as import-registrations wrote it to its numbers file)"
        )
    return value


def _arguments(build: Callable[[], T]) -> T:
    """The command's message built from its arguments before anything connects: a bad argument
    exits 2 naming it, with nothing sent."""
    try:
        return build()
    except BadInput as exc:
        err_console.print(flagged("bad arguments", f": {exc}"), highlight=False)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        err_console.print(flagged("bad arguments", f": {problems}"), highlight=False)
    raise typer.Exit(EXIT_BAD_INPUT)


@cli.command("extend-window")
def extend_window_cmd(
    round_id: str,
    window: str,
    new_closes: str,
    reason: Reason,
    operator: As,
    report_id: ReportId = None,
    key: KeyFile = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
    shift_later: Annotated[
        bool,
        typer.Option(
            "--shift-later",
            help="Move every later window, opening and close, by as much as this one's close "
            "(the TMT stays). Refused in a round of a national round.",
        ),
    ] = False,
):
    """Extend an open window (registration, administration, skd, skb, filing, latsar)."""

    def message() -> ExtendWindow:
        _code(round_id)
        _window_name(window)
        closes = _datetime(new_closes, "NEW_CLOSES")
        parts = [window, closes.isoformat(), reason] + (["shift-later"] if shift_later else [])
        rid = report_id or derived_report_id("extend", round_id, *parts)
        return ExtendWindow(
            report_id=rid,
            reported_by=operator,
            window=window,
            new_closes=closes,
            reason=reason,
            shift_later=shift_later,
        )

    extend = _arguments(message)
    _run(
        lambda ctx: round_command(ctx, round_id, extend),
        _signer(key, operator),
        _through(gateway, api_key_file),
    )


@cli.command("close-window")
def close_window_cmd(
    round_id: str,
    window: str,
    reason: Reason,
    operator: As,
    report_id: ReportId = None,
    key: KeyFile = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """Close an open window early, with a recorded reason."""

    def message() -> CloseWindow:
        _code(round_id)
        _window_name(window)
        rid = report_id or derived_report_id("close", round_id, window, reason)
        return CloseWindow(report_id=rid, reported_by=operator, window=window, reason=reason)

    close = _arguments(message)
    _run(
        lambda ctx: round_command(ctx, round_id, close),
        _signer(key, operator),
        _through(gateway, api_key_file),
    )


@cli.command("move-tmt")
def move_tmt_cmd(
    round_id: str,
    new_tmt: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
    reason: Reason,
    operator: As,
    report_id: ReportId = None,
    key: KeyFile = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """Move the TMT of the SK CPNS (a government decision)."""

    def message() -> MoveTmt:
        _code(round_id)
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", new_tmt):
                raise ValueError
            tmt = date.fromisoformat(new_tmt)
        except ValueError:
            raise BadInput(f"NEW_TMT={new_tmt!r}: not a date YYYY-MM-DD") from None
        rid = report_id or derived_report_id("tmt", round_id, tmt.isoformat(), reason)
        return MoveTmt(report_id=rid, reported_by=operator, new_tmt=tmt, reason=reason)

    move = _arguments(message)
    _run(
        lambda ctx: round_command(ctx, round_id, move),
        _signer(key, operator),
        _through(gateway, api_key_file),
    )


@cli.command("disqualify")
def disqualify_cmd(
    round_id: str,
    applicant_id: str,
    reason: Reason,
    operator: As,
    report_id: ReportId = None,
    key: KeyFile = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """Disqualify (DIS) an applicant at any stage, even after the NIP."""

    def message() -> Disqualification:
        _code(round_id)
        _registration_number(applicant_id)
        rid = report_id or derived_report_id("dis", round_id, applicant_id, reason)
        return Disqualification(report_id=rid, reported_by=operator, reason=reason)

    dis = _arguments(message)
    _run(
        lambda ctx: journey_command(ctx, round_id, applicant_id, dis),
        _signer(key, operator),
        _through(gateway, api_key_file),
    )


@cli.command("dismiss")
def dismiss_cmd(
    round_id: str,
    applicant_id: str,
    decree: Annotated[
        str, typer.Option("--decree", help="The decree's number (nomor surat keputusan).")
    ],
    reason: Reason,
    operator: As,
    report_id: ReportId = None,
    key: KeyFile = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """Dismiss (DIBERHENTIKAN) a PNS by decree, after the journey ended as PNS (recorded in the
    applicant's aftermath)."""

    def message() -> Dismissal:
        _code(round_id)
        _registration_number(applicant_id)
        rid = report_id or derived_report_id("dismiss", round_id, applicant_id, decree, reason)
        return Dismissal(report_id=rid, reported_by=operator, decree_no=decree, reason=reason)

    dismissal = _arguments(message)
    _run(
        lambda ctx: journey_command(ctx, round_id, applicant_id, dismissal),
        _signer(key, operator),
        _through(gateway, api_key_file),
    )


@cli.command("withdraw")
def withdraw_cmd(
    round_id: str,
    applicant_id: str,
    portal: As,
    reason: Annotated[str, typer.Option("--reason")] = "",
    report_id: ReportId = None,
    key: KeyFile = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """Record an applicant's withdrawal (mengundurkan diri), sent by the portal."""

    def message() -> Withdrawal:
        _code(round_id)
        _registration_number(applicant_id)
        rid = report_id or derived_report_id("withdraw", round_id, applicant_id, reason)
        return Withdrawal(report_id=rid, reported_by=portal, reason=reason)

    withdrawal = _arguments(message)
    _run(
        lambda ctx: journey_command(ctx, round_id, applicant_id, withdrawal),
        _signer(key, portal),
        _through(gateway, api_key_file),
    )


def _signer(key: Path | None, identity: str) -> Signer | None:
    if key is None:
        return None
    try:
        return load_signer(key, identity)
    except BadInput as exc:
        err_console.print(flagged("bad input", f": {exc}"), highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


@cli.command("keygen")
def keygen_cmd(
    identity: Annotated[
        str, typer.Argument(help="The identity, as the round's reporters list it.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory for the private key file.")] = Path(
        "."
    ),
):
    """Make an Ed25519 key pair: the private key file (readable by you alone) and the public key
    line for the round file's identities table."""
    signer = Signer.generate(_identity(identity))
    path = _new_secret_file(out / f"{identity}.key.json", json.dumps(signer.jwk()))
    console.print(f"private key: {path} (keep it secret; sign with --key {path})")
    console.print("add to the round file:")
    console.print(
        f"[identities]\n{json.dumps(identity)} = {json.dumps(signer.public)}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _identity(identity: str) -> str:
    """IDENTITY as a file name and a reporter's name take it; a bad one exits 2."""
    if not 1 <= len(identity) <= 100 or not identity.isprintable() or "/" in identity:
        err_console.print(
            flagged("bad arguments", f": IDENTITY={identity!r}: 1-100 printable characters, no /"),
            highlight=False,
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    return identity


def _new_secret_file(path: Path, text: str) -> Path:
    """Write a new secret, readable by its owner alone from its first byte (never over a file
    that exists: exit 1)."""
    if path.exists():
        err_console.print(flagged("refused", f": {path} exists; keys are never overwritten"))
        raise typer.Exit(EXIT_REFUSED)
    if path.parent.exists() and not path.parent.is_dir():
        err_console.print(
            flagged("bad input", f": --out {path.parent} is a file; give a directory"),
            highlight=False,
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        err_console.print(
            flagged("bad input", f": --out {path.parent}: cannot be written ({_why(exc)})"),
            highlight=False,
        )
        raise typer.Exit(EXIT_BAD_INPUT) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path


@cli.command("api-key")
def api_key_cmd(
    identity: Annotated[
        str, typer.Argument(help="The identity, as the round's reporters list it.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory for the API key file.")] = Path("."),
):
    """Make an API key for the gateway: the key file (readable by you alone; give it to the
    service or operator, who uses it with --api-key-file) and the line of its digest for the
    gateway's api-keys file (CASN_GATEWAY_API_KEYS_FILE), which never holds the key itself."""
    from gateway.deps import api_key_digest  # the gateway's form; imported only for this

    key = secrets.token_urlsafe(32)
    path = _new_secret_file(out / f"{_identity(identity)}.api-key", key + "\n")
    console.print(f"API key: {path} (keep it secret; send with --api-key-file {path})")
    console.print(
        "add to the gateways' api-keys file (CASN_GATEWAY_API_KEYS_FILE; each gateway reads it "
        "again within a second of the change, no restart):"
    )
    # Never wrapped, whatever the terminal's width: the line is pasted into a TOML file whole.
    console.print(
        f"{json.dumps(identity)} = {json.dumps(api_key_digest(key))}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        "(while a key is replaced, list both digests: "
        f'{json.dumps(identity)} = ["sha256:<old>", "sha256:<new>"])',
        markup=False,
        highlight=False,
    )


@cli.command("change-keys")
def change_keys_cmd(
    round_id: str,
    identity: Annotated[str, typer.Argument(help="The identity whose key changes.")],
    public_key: Annotated[str, typer.Argument(help="Its new public key (printed by keygen).")],
    reason: Reason,
    operator: As,
    report_id: ReportId = None,
    key: KeyFile = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """Give an identity of the round a new public key (a lost or retired key); signatures made
    before stay valid, reports signed with the old key are refused from then on."""

    def message() -> ChangeKeys:
        _code(round_id)
        try:
            signing_public_key(public_key)
        except SigningKeyError as exc:
            raise BadInput(
                f"PUBLIC_KEY={public_key!r}: not a public key as keygen prints it ({exc})"
            ) from None
        rid = report_id or derived_report_id("keys", round_id, identity, public_key, reason)
        return ChangeKeys(
            report_id=rid, reported_by=operator, identities={identity: public_key}, reason=reason
        )

    change = _arguments(message)
    _run(
        lambda ctx: round_command(ctx, round_id, change),
        _signer(key, operator),
        _through(gateway, api_key_file),
    )


JsonOpt = Annotated[
    bool, typer.Option("--json", help="One JSON document on stdout, with stable keys.")
]


@cli.command("create-national")
def create_national_cmd(
    config: Annotated[Path, typer.Argument(help="The national round's TOML file.")],
    operator: Annotated[str, typer.Option("--operator", help="Who creates it.")] = "operator",
):
    """Create a national round (the schedule instansi rounds join) from its TOML file. Running it
    again creates nothing. An instansi round joins it by naming it in national_round."""
    _precheck(lambda: load_national_config(config))
    _run(lambda ctx: create_national(ctx, config, operator))


@cli.command("national-funnel")
def national_funnel_cmd(
    national_id: str,
    as_json: JsonOpt = False,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """The national round: its windows and, per instansi round that joined, the applicants by
    stage or result code and the announcements published (each instansi announces its own round
    with starter.py announce ROUND_ID). With --gateway, read through the HTTP gateway by one of
    the `readers` the national file names."""
    _arguments(lambda: _code(national_id, "NATIONAL_ID", "a national id"))
    _run(
        lambda ctx: show_national_funnel(ctx, national_id, as_json),
        gateway=_through(gateway, api_key_file),
    )


@cli.command("status")
def status_cmd(
    round_id: str,
    as_json: JsonOpt = False,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """The round: its phase, every window (closed ones too) with its extensions and early close,
    the TMT and its moves, and the funnel per formasi (stage or result code counts). With
    --gateway, read through the HTTP gateway by an operator of the round."""
    _arguments(lambda: _code(round_id))
    _run(lambda ctx: status(ctx, round_id, as_json), gateway=_through(gateway, api_key_file))


async def survey_results(ctx: Context, round_id: str, as_json: bool = False) -> list[SurveyRow]:
    """Print the satisfaction survey's results of a round: per instansi and stage, and over every
    stage, the respondents, each element's NRR and the IKM with its band; as a table or one JSON
    document. The answers are anonymous: only these sums are read."""
    if isinstance(ctx.api, GatewayReports):  # the gateway reads the same sums
        rows = await ctx.api.survey(round_id)
    else:
        conn = await asyncpg.connect(ctx.database_url)
        try:
            rows = await survey_rows(conn, round_id)
        finally:
            await conn.close()
    if as_json:
        _print_json(
            ctx,
            {
                "round_id": round_id,
                "elements": [{"code": e.code, "name": e.name} for e in SKM_ELEMENTS],
                "results": [
                    {
                        "instansi": r.instansi,
                        "stage": r.stage,
                        "few_respondents": r.few,
                        **r.result.model_dump(mode="json"),
                    }
                    for r in rows
                ],
            },
        )
        return rows
    if not rows and isinstance(ctx.api, RecruitmentApi):
        await ctx.api.round_config(round_id)  # no answers, or no such round: refused, exit 1
    if not rows:
        ctx.console.print(f"round {round_id}: no survey answers yet", highlight=False)
        return rows
    for instansi in dict.fromkeys(r.instansi for r in rows):
        mine = [r for r in rows if r.instansi == instansi]
        table = Table(title=f"Survei Kepuasan Masyarakat of round {round_id}: {instansi}")
        table.add_column("element (NRR, 1..4)")
        for r in mine:
            name = "all stages" if r.stage == SURVEY_ALL else r.stage
            table.add_column(f"{name} *" if r.few else name, justify="right")
        table.add_row("respondents", *(str(r.result.respondents) for r in mine), end_section=True)
        for i, e in enumerate(SKM_ELEMENTS):
            table.add_row(
                f"{e.code} {e.name}",
                *(f"{r.result.per_element[i]:.2f}" for r in mine),
                end_section=i == len(SKM_ELEMENTS) - 1,
            )
        table.add_row(
            Text.assemble(("IKM", "bold"), " (mean NRR x 25)"),
            *(Text(f"{r.result.value:.2f}", "bold") for r in mine),
        )
        table.add_row("band", *(f"{r.result.band} {r.result.label}" for r in mine))
        ctx.console.print(table)
    if any(r.few for r in rows):
        ctx.console.print(
            f"* fewer than {FEW_RESPONDENTS} respondents: these figures come close to the answers "
            "themselves, and who answered a stage is recorded; do not publish them.",
            highlight=False,
        )
    ctx.console.print(
        "Stages: "
        + "; ".join(f"{stage} = {label}" for stage, label in SKM_STAGE_LABELS.items())
        + ". Bands (PermenPANRB 14/2017): A 88.31-100, B 76.61-88.30, C 65.00-76.60, "
        "D 25.00-64.99, read after rounding the IKM to 2 decimals.",
        highlight=False,
    )
    return rows


@cli.command("survey-results")
def survey_results_cmd(
    round_id: str,
    as_json: JsonOpt = False,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """The satisfaction survey (SKM) of a round: respondents, each element's NRR and the IKM with
    its band, per instansi and stage (after registration, after SKD, at the end) and overall.
    With --gateway, read through the HTTP gateway by an operator of the round."""
    _arguments(lambda: _code(round_id))
    _run(
        lambda ctx: survey_results(ctx, round_id, as_json), gateway=_through(gateway, api_key_file)
    )


async def survey_mix(ctx: Context) -> int:
    """Rewrite the stored survey answers so that the database's hidden row order and
    transaction ids no longer pair an answer with the applicant who gave it."""
    conn = await asyncpg.connect(ctx.database_url)
    try:
        mixed = await mix_answers(conn)
    finally:
        await conn.close()
    ctx.console.print(f"{mixed} survey answers rewritten (one transaction, random-id order)")
    return mixed


@cli.command("survey-mix")
def survey_mix_cmd():
    """Rewrite the survey's answers (all rounds) so that nothing in the database pairs one with
    its applicant: run it when a survey stage has closed, or daily (README, the SKM section)."""
    _run(survey_mix)


async def panel_sheet_cmd_core(
    ctx: Context, round_id: str, panellist: str, formasi: str | None, out: Path | None
) -> list[PanelSheetRow]:
    """A panellist's blind sheet: candidate codes only; with --out, a score file to fill in.
    Through the gateway, the sheet of the API key's panellist."""
    if isinstance(ctx.api, GatewayReports):
        rows = await ctx.api.panel_sheet(round_id, panellist, formasi)
    else:
        conn = await asyncpg.connect(ctx.database_url)
        try:
            rows = await panel_sheet(conn, ctx.api.pseudonym_key, round_id, panellist, formasi)
        finally:
            await conn.close()
    table = Table(title=f"Lembar penilaian {panellist}, {round_id} (kode peserta, tanpa nama)")
    for column in ("kode peserta", "formasi", "komponen"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.candidate, r.formasi_code, r.component)
    ctx.console.print(table)
    if not rows:
        # A panellist's name mistyped, a round that does not exist, or nobody assigned yet: no
        # score file with a header alone, whose "fill in the score column" would be answered by
        # an empty upload.
        raise RefusedError(
            f"no candidate on {panellist}'s sheet in round {round_id}"
            + (f", formasi {formasi}" if formasi else "")
            + ": not a panellist of the round's pools, or none assigned yet"
            + ("; no score file written" if out is not None else "")
        )
    if out is not None:
        with open_private(out) as f:
            f.write("report_id,applicant_id,component,panellist,score\n")
            for r in rows:
                f.write(
                    f"{r.component}-{panellist}-{r.candidate},{r.candidate},{r.component},{panellist},\n"
                )
        ctx.console.print(f"score file for {panellist}: {out} (fill in the score column)")
    return rows


@cli.command("panel-sheet")
def panel_sheet_cmd(
    round_id: str,
    panellist: Annotated[str, typer.Option("--panellist", help="The panellist's identity.")],
    formasi: Annotated[str | None, typer.Option("--formasi", help="One formasi only.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write a score file to fill in (mode 0600).")
    ] = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """A panellist's blind sheet: the applicants they are drawn for, by candidate code (never a
    name or registration number). `report panel` takes the filled-in file as it is: the
    codes are resolved with the committee's key, or, with --gateway, by the gateway (the
    panellist's own API key: the sheet is theirs, and they sign each score for its code)."""

    def arguments() -> None:
        _code(round_id)
        if formasi is not None:
            _code(formasi, "--formasi", "a formasi code")

    _arguments(arguments)
    _precheck(lambda: _separate_files({"--api-key-file": api_key_file}, {"--out": out}))
    _run(
        lambda ctx: panel_sheet_cmd_core(ctx, round_id, panellist, formasi, out),
        gateway=_through(gateway, api_key_file),
    )


async def outstanding(
    ctx: Context, round_id: str, formasi: str | None = None, as_json: bool = False
) -> Outstanding:
    """Print what the journeys at the administrative check, SKD, SKB and Latsar still await before
    their window closes, per formasi and report, with the applicants lacking each
    (client/outstanding.py), as a table or one JSON document. Through the gateway, the gateway reads the same."""
    if isinstance(ctx.api, GatewayReports):
        shown = await ctx.api.outstanding(round_id, formasi)
    else:
        config = await ctx.api.round_config(round_id)
        formasi_checked(config, formasi)  # before the round and the read model are asked
        now = datetime.now(UTC)
        view = build_round_view(config, await ctx.api.round_state(round_id), now)
        conn = await asyncpg.connect(ctx.database_url)
        try:
            shown = await outstanding_view(ctx.api, conn, config, view, formasi, now)
        finally:
            await conn.close()
    if as_json:
        _print_json(ctx, shown.model_dump(mode="json"))
    else:
        _show_outstanding(ctx, shown)
    log.info(
        "outstanding read",
        round_id=round_id,
        formasi=formasi,
        applicants_missing=shown.applicants_missing,
    )
    return shown


def _left(closes: datetime, now: datetime) -> str:
    """How long until `closes`, in days, hours and minutes (rounded down)."""
    minutes = int((closes - now).total_seconds() // 60)
    if minutes < 0:
        return "past"
    days, rest = divmod(minutes, 24 * 60)
    return (f"{days} d " if days else "") + f"{rest // 60} h {rest % 60} min"


def _show_outstanding(ctx: Context, shown: Outstanding) -> None:
    """The windows' closes, then one table: per formasi and awaited report, how many applicants
    lack it and which (a panel's: how many scored, and who of the drawn panel has not)."""
    for w in shown.windows:
        when = (
            f"closed ({wib(w.closes)})"
            if w.state == "ditutup"
            else f"closes {wib(w.closes)}, {_left(w.closes, shown.read_at)} from now"
            + (" (not open yet)" if w.state == "belum dibuka" else "")
        )
        ctx.console.print(f"{w.name.upper()} window: {when}", highlight=False)
    table = Table(
        title=f"Reports outstanding in round {shown.round_id}, read {wib(shown.read_at)} "
        "(stages from the read model, reports from the journeys' histories)"
    )
    for column in ("formasi", "stage", "report", "missing", "applicants (registration no.)"):
        table.add_column(column, justify="right" if column == "missing" else "left")
    for f in shown.formasi:
        at = ", ".join(f"{n} at {s.upper()}" for s, n in f.at_stage.items() if n)
        if not f.reports:
            cell = f"{f.formasi_code}\n{at}" if at else f.formasi_code
            table.add_row(cell, "", "nothing outstanding", "0", "", end_section=True)
            continue
        for i, r in enumerate(f.reports):
            what = f"{r.component} ({r.kind}; missing at the close: {r.ends_as})"
            if r.ends_as == STAYS_CPNS:
                what = f"{r.component} (the close ends nobody: the CPNS stays at Latsar)"
            elif r.kind == "panel":
                what = (
                    f"{r.component} (panel of {r.needed} scores at least; missing at the close: "
                    f"{r.ends_as})"
                )
            who = []
            for a in r.applicants:
                if a.scored is None:
                    who.append(a.applicant_id)
                    continue
                line = f"{a.applicant_id}: {a.scored} of {r.needed} scored"
                if a.not_scored:
                    line += f"; not yet: {', '.join(a.not_scored)}"
                who.append(line)
            table.add_row(
                (f"{f.formasi_code}\n{at}" if at else f.formasi_code) if i == 0 else "",
                r.stage.upper(),
                what,
                str(r.missing),
                "\n".join(who),
                end_section=i == len(f.reports) - 1,
            )
    ctx.console.print(table)
    ctx.console.print(
        f"{shown.applicants_missing} applicants lack a report. The journeys are the authority: "
        "a report accepted after this read shows at the next run (docs/OPERATIONS.md 2.8).",
        highlight=False,
    )


@cli.command("outstanding")
def outstanding_cmd(
    round_id: str,
    formasi: Annotated[str | None, typer.Option("--formasi", help="One formasi only.")] = None,
    as_json: JsonOpt = False,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """What the applicants at the administrative check, SKD, SKB and Latsar still lack before the
    window closes: per formasi, each awaited report (the administration and SKD results; each SKB
    score, gate and panel component; the Latsar result) with how many lack it and which, by
    registration number, and when the window closes. Run it before each close: a report missing
    then ends the journey TMS, TH or TMS-SKB (at Latsar nobody: the CPNS stays CPNS, to chase).
    With --gateway, read through the HTTP gateway by an operator of the round."""

    def arguments() -> None:
        _code(round_id)
        if formasi is not None:
            _code(formasi, "--formasi", "a formasi code")

    _arguments(arguments)
    _run(
        lambda ctx: outstanding(ctx, round_id, formasi, as_json),
        gateway=_through(gateway, api_key_file),
    )


@cli.command("lookup")
def lookup_cmd(
    round_id: str,
    applicant: Annotated[
        str | None, typer.Option("--applicant", help="The registration number.")
    ] = None,
    nik: Annotated[
        str | None,
        typer.Option("--nik", help="The NIK: its registration number in this round is looked up."),
    ] = None,
    as_json: JsonOpt = False,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """One applicant: stage, codes, every decision with its reason, the deadlines that apply now
    and what they may do now. Give --applicant or --nik (never printed whole). With --gateway,
    read through the HTTP gateway by an operator of the round."""
    if (applicant is None) == (nik is None):
        err_console.print(flagged("bad arguments", ": give exactly one of --applicant and --nik"))
        raise typer.Exit(EXIT_BAD_INPUT)
    if nik is not None:
        try:
            nik = normalise_nik(nik)
        except ValueError as exc:
            err_console.print(flagged("bad arguments", f": --nik: {exc}"), highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None

    def arguments() -> None:
        _code(round_id)
        if applicant is not None:
            _registration_number(applicant, "--applicant")

    _arguments(arguments)
    _run(
        lambda ctx: lookup(ctx, round_id, applicant, nik, as_json),
        gateway=_through(gateway, api_key_file),
    )


@cli.command("announce")
def announce_cmd(
    round_id: str,
    stage: AnnouncementStage,
    key: Annotated[
        Path,
        typer.Option(
            "--key",
            envvar="CASN_KEY_FILE",
            help="The signing key (starter.py keygen) of an operator of the round.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Directory for the CSV, HTML and JSON.")
    ] = Path("."),
    corrects: Annotated[
        int | None,
        typer.Option("--corrects", min=1, help="The number of the publication this corrects."),
    ] = None,
    gateway: GatewayUrl = None,
    api_key_file: ApiKeyFile = None,
):
    """Publish an announcement (admin, skd or final): signed with --key, chained to the round's
    earlier ones, shown on the public pages, and written as CSV, printable HTML and JSON. With
    --gateway, the gateway drafts it and the key signs it here (docs/GATEWAY.md)."""
    _arguments(lambda: _code(round_id))
    signer = _precheck(lambda: read_signer(key))
    _precheck(lambda: _can_write_in("--out", out))
    through = _through(gateway, api_key_file)
    # Through the gateway the client signs the draft with the operator's key (its keyring).
    _run(
        lambda ctx: announce(ctx, round_id, stage, out, signer, corrects),
        signer if through else None,
        through,
    )


async def evaluate_round(
    ctx: Context, round_id: str, out_dir: Path, outlier_margin: float | None
) -> Path:
    """Write the round's evaluation report (apps/evaluation.py) into `out_dir` and print each
    section's summary; RefusedError (exit 1) when the server holds no history of the round."""
    from apps.evaluation import evaluate
    from auditing.history import AuditError

    try:
        written = await evaluate(
            ctx.api.client, ctx.database_url, round_id, out_dir, outlier_margin
        )
    except (AuditError, LookupError) as exc:
        raise RefusedError(str(exc)) from None
    for section in written.evaluation.sections:
        ctx.console.print(f"{section.heading}: {section.note or section.summary}", highlight=False)
    ctx.console.print(
        f"report: {written.index} and {len(written.csvs)} CSV files in {out_dir}", highlight=False
    )
    log.info("round evaluated", round_id=round_id, files=len(written.csvs) + 1)
    return written.index


@cli.command("evaluate")
def evaluate_cmd(
    round_id: str,
    out: Annotated[
        Path, typer.Option("--out", help="Directory for index.html and one CSV per table.")
    ] = Path("evaluation"),
    outlier_margin: Annotated[
        float | None,
        typer.Option(
            "--outlier-margin",
            min=0,
            help="Flag a panel score more than this far from the mean of the rest of its panel, for panel "
            "components whose round sets no outlier_margin (default: a quarter of the scale).",
        ),
    ] = None,
):
    """The round's evaluation report, from its histories (replayed) and the read model: the funnel
    per formasi, stage durations (p50/p95), sanggah rates and outcomes, window extensions and
    their reasons, registrations per hour with the peak, panel agreement and flags, the IKM per
    stage, optimalisasi and seats left empty. Writes OUT/index.html (SVG charts) and CSVs; the
    same round gives the same bytes."""

    def arguments() -> None:
        _code(round_id)
        if outlier_margin is not None and not math.isfinite(outlier_margin):
            raise BadInput(f"--outlier-margin={outlier_margin!r}: give a number of points")

    _arguments(arguments)
    _precheck(lambda: _can_write_in("--out", out))
    _run(lambda ctx: evaluate_round(ctx, round_id, out, outlier_margin))


# --- the sanctions register -------------------------------------------------------------------

sanctions_cli = typer.Typer(
    help="The sanctions register across rounds (client/sanctions.py): import a national list, "
    "list the entries (never a NIK).",
    no_args_is_help=True,
)
cli.add_typer(sanctions_cli, name="sanctions")


async def import_sanctions(ctx: Context, path: Path) -> int:
    """Import a national list (validated first: nothing is written from a list with a bad row)."""
    rows = read_national_list(path)
    register = ctx.api.sanctions
    assert register is not None
    counts = await register.import_list(rows, ctx.api.pseudonym_key)
    ctx.console.print(
        f"{path.name}: {len(rows)} rows: {counts['new']} new, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged",
        highlight=False,
    )
    log.info("sanctions imported", rows=len(rows), **counts)
    return EXIT_OK


async def list_sanctions(ctx: Context, nik: str | None, as_json: bool) -> int:
    """Every entry of the register (or one NIK's), without NIKs: the subject shortened."""
    register = ctx.api.sanctions
    assert register is not None
    subject = sanction_subject(ctx.api.pseudonym_key, nik) if nik else None
    entries = await register.entries(subject)
    documents = [
        {
            "subject": e.subject[:16],
            "kind": e.kind,
            "imposed_by": e.imposed_by,
            "imposed_at": e.imposed_at.isoformat(),
            "rounds": e.rounds,
            "barred_until": e.barred_until.isoformat() if e.barred_until else None,
            "reason": e.reason,
        }
        for e in entries
    ]
    if as_json:
        _print_json(ctx, documents)
        return EXIT_OK
    table = Table(title=f"sanctions register: {len(entries)} entries")
    for column in ("subject", "kind", "imposed by", "imposed at (WIB)", "term", "reason"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.subject[:16], e.kind, e.imposed_by, wib(e.imposed_at), e.term, e.reason)
    ctx.console.print(table)
    return EXIT_OK


@sanctions_cli.command("import")
def sanctions_import_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with columns nik, barred_until or rounds (one of them per row), reason, "
            "source."
        ),
    ],
):
    """Import a national list of barred NIKs. Every row is checked first; a list with a bad row
    imports nothing and names each bad row (exit 2). Re-importing is idempotent."""
    try:
        read_national_list(file)  # a bad list exits 2 before anything is started
    except NationalListError as exc:
        err_console.print(flagged("bad input", f": {exc}"), highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    _run(lambda ctx: import_sanctions(ctx, file))


@sanctions_cli.command("list")
def sanctions_list_cmd(
    nik: Annotated[
        str | None, typer.Option("--nik", help="Only this NIK's entries (never printed).")
    ] = None,
    as_json: JsonOpt = False,
):
    """The register's entries: kind (APS or national_list), by which round or list, when, for how
    long and why. No NIK is shown; the subject is the start of the NIK's keyed pseudonym."""
    if nik is not None:
        try:
            nik = normalise_nik(nik)
        except ValueError as exc:
            err_console.print(flagged("bad arguments", f": --nik: {exc}"), highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
    _run(lambda ctx: list_sanctions(ctx, nik, as_json))


# --- personal data after a round (UU 27/2022; docs/OPERATIONS.md 8) -----------------------------


def _purge_table(title: str, counts: Mapping[str, int], heading: str) -> Table:
    """Per table of the inventory: what is done to it, and how many rows."""
    table = Table(title=title)
    for column, justify in (("table", "left"), ("what", "left"), (heading, "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for c in PERSONAL:
        what = f"clear {', '.join(c.columns)}" if c.action == "cleared" else "delete rows"
        table.add_row(c.table, what, f"{counts.get(c.table, 0):,}")
    table.add_row(Text("total", "bold"), "", f"{sum(counts.values()):,}", end_section=True)
    return table


def _show_purges(ctx: Context, round_id: str, records: list[PurgeRecord]) -> None:
    if not records:
        return
    first = min(r.first_at for r in records)
    who = ", ".join(sorted({w for r in records for w in r.purged_by}))
    ctx.console.print(
        flagged(
            "personal data purged",
            f": round {round_id}'s personal data was purged on {wib(first)} by {who} "
            f"({', '.join(f'{r.table} {r.rows:,}' for r in records)} rows); the record of the "
            "selection is kept (docs/OPERATIONS.md 8)",
            "bold yellow",
        ),
        highlight=False,
        soft_wrap=True,
    )


def _os_user() -> str:
    """The operating-system user running the command, as the purge's record names it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        return f"uid {os.getuid()}"


async def purge_personal_data(
    ctx: Context,
    round_id: str,
    purged_by: str,
    retention_days: int,
    override: str | None = None,
    dry_run: bool = False,
    batch: int = DEFAULT_BATCH,
) -> dict[str, int]:
    """Clear the round's personal data from the read model (client/retention.py PERSONAL) once
    the round has ended and `retention_days` have passed since; with `override`, before they
    have, the reason logged and recorded. A dry run counts what would be cleared, and says
    whether a run would be refused. RefusedError (exit 1) for a round that runs or is within its
    retention. Returns the rows cleared (or, dry, to clear) per table."""
    os_user = _os_user()
    conn = await asyncpg.connect(ctx.database_url)
    try:
        try:
            end = await round_end(ctx.api.client, conn, round_id)
        except PurgeRefused as exc:
            raise UnknownError(str(exc)) from None
        refused = refusal(end, timedelta(days=retention_days), datetime.now(UTC), override)
        counts = await pending(conn, round_id)
        records = await purge_records(conn, round_id)
    finally:
        await conn.close()
    if dry_run:
        ctx.console.print(
            _purge_table(
                f"Personal data of round {round_id} a purge would clear (dry run)",
                counts,
                "rows",
            )
        )
        _show_purges(ctx, round_id, records)
        ctx.console.print(
            f"a purge now would be refused: {refused}" if refused else "a purge now would run",
            highlight=False,
            soft_wrap=True,
        )
        return counts
    if refused:
        log.info("personal data purge refused", round_id=round_id, reason=refused)
        raise RefusedError(refused)
    if override is not None:
        allowed = end.ended_at + timedelta(days=retention_days)  # type: ignore[operator]
        if datetime.now(UTC) >= allowed:
            override = None  # not needed: the retention has passed, nothing is overridden
        else:
            log.warning(
                "personal data purged before the retention ends",
                round_id=round_id,
                purged_by=purged_by,
                os_user=os_user,
                round_ended_at=end.ended_at.isoformat() if end.ended_at else None,
                retention_days=retention_days,
                reason=override,
            )
    run = PurgeRun(round_id, purged_by, os_user, retention_days, end.ended_at, override)
    from runtime.db import open_pool

    pool = await open_pool(ctx.database_url, max_size=2)
    try:
        with _progress(ctx.console) as progress:
            task = progress.add_task(f"purging {round_id}", total=sum(counts.values()) or None)
            done = await purge(
                pool, run, batch, on_batch=lambda _, rows: progress.update(task, advance=rows)
            )
    finally:
        await pool.close()
    log.info(
        "personal data purged",
        round_id=round_id,
        run_id=str(run.run_id),
        purged_by=purged_by,
        os_user=os_user,
        rows=done,
        override=override is not None,
    )
    if not any(done.values()):
        ctx.console.print(
            f"round {round_id}: no personal data left to purge; nothing changed, nothing recorded",
            highlight=False,
        )
        _show_purges(ctx, round_id, records)
        return done
    ctx.console.print(_purge_table(f"Personal data of round {round_id} purged", done, "rows"))
    ctx.console.print(
        f"recorded in personal_data_purges as run {run.run_id} (by {purged_by}, OS user {os_user})",
        highlight=False,
    )
    return done


@cli.command("purge-personal-data")
def purge_personal_data_cmd(
    round_id: str,
    purged_by: Annotated[
        str | None,
        typer.Option(
            "--as", help="Your identity, recorded with the purge (default: your OS user name)."
        ),
    ] = None,
    retention_days: Annotated[
        int,
        typer.Option(
            "--retention-days",
            help="Days after the round's end before its personal data may be purged "
            f"(default {DEFAULT_RETENTION_DAYS}: the Temporal namespace's retention, after which "
            "its histories are gone too).",
        ),
    ] = DEFAULT_RETENTION_DAYS,
    before_retention_ends: Annotated[
        str | None,
        typer.Option(
            "--before-retention-ends",
            help="Purge before the retention has passed, for this reason (at least 10 "
            "characters, e.g. a decree's number); logged and recorded with the purge.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show per table how many rows would be cleared; change nothing."
        ),
    ] = False,
    batch: Annotated[
        int,
        typer.Option("--batch", help="Rows cleared per transaction (1-100,000)."),
    ] = DEFAULT_BATCH,
):
    """Delete or clear a round's personal data from the read model once the round has ended and
    its retention has passed (UU 27/2022): names, notification texts, reports' scores, portal
    accounts and sessions, panel seats, who answered the survey, the round's pages. The record of
    the selection stays (codes, NIPs, announcements, sanctions, revocations, decisions' outline,
    the access log). Refused while the round runs; each batch is recorded, append-only, in
    personal_data_purges; running it again changes nothing (docs/OPERATIONS.md 8)."""

    def arguments() -> str:
        _code(round_id)
        if not 1 <= retention_days <= MAX_RETENTION_DAYS:
            raise BadInput(
                f"--retention-days={retention_days}: give a number of days from 1 to "
                f"{MAX_RETENTION_DAYS} (default {DEFAULT_RETENTION_DAYS}, the namespace's retention)"
            )
        if not 1 <= batch <= 100_000:
            raise BadInput(f"--batch={batch}: give a number of rows from 1 to 100,000")
        identity = purged_by if purged_by is not None else _os_user()
        if (
            not 1 <= len(identity) <= 100
            or not identity.isprintable()
            or identity.strip() != identity
        ):
            raise BadInput(
                f"--as={identity!r}: 1-100 printable characters, no leading or trailing space"
            )
        if before_retention_ends is not None:
            reason = before_retention_ends.strip()
            if len(reason) < 10 or len(reason) > 500 or not reason.isprintable():
                raise BadInput(
                    f"--before-retention-ends={before_retention_ends!r}: give the reason, 10-500 "
                    "printable characters (a decree's number, a request's reference)"
                )
        return identity

    identity = _arguments(arguments)
    reason = before_retention_ends.strip() if before_retention_ends is not None else None
    _run(
        lambda ctx: purge_personal_data(
            ctx, round_id, identity, retention_days, reason, dry_run, batch
        )
    )


@cli.command("demo")
def demo_cmd(size: Annotated[int | None, typer.Option("--size", min=1, help="Applicants.")] = None):
    """Run the sample rounds end to end at once, a regency's and a ministry's with an interview
    panel, and write their evaluation reports, on the embedded stack (left running: run.py stop)."""
    from apps.demo import run_demo

    kwargs: dict = {} if size is None else {"size": size}
    raise typer.Exit(asyncio.run(run_demo(**kwargs)))


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 refused by the engine (some rows, the command, no such round or "
    "applicant); 2 bad input (a file, an argument or a key: nothing was sent); 3 stopped (Ctrl-C, "
    "or the Temporal server or the database cannot be reached or was lost, or the engine "
    "cannot answer: no worker)."
)
for _command in [*cli.registered_commands, *sanctions_cli.registered_commands]:
    _command.epilog = _command.epilog or EXIT_CODES_HELP  # every command's --help ends with them
for _group in cli.registered_groups:  # and every group's (`sanctions --help`)
    _group.epilog = _group.epilog or EXIT_CODES_HELP


if __name__ == "__main__":
    run_and_end(cli)
