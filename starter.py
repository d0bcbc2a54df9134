#!/usr/bin/env python3
"""The operator's command line: create a round, import registrations, send reports and commands,
see the funnel and publish announcements.

    .venv/bin/python starter.py --help

Exit codes: 0 everything accepted; 1 some rows or the command refused by the engine;
2 a bad input file, bad arguments or a missing key (nothing was sent); 3 stopped before the end
(Ctrl-C, the connection lost): the summary says how many rows were sent and where to resume.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.service import RPCError, RPCStatusCode

from client.announcements import AnnouncementStage, write_announcement
from client.api import RecruitmentApi, RefusedError
from client.csvio import (
    REGISTRATION_COLUMNS,
    REPORT_KINDS,
    CsvFileError,
    ReportKind,
    RowError,
    RowRefusal,
    open_rows,
    parse_registration,
    parse_report,
)
from domain.config import ConfigError, RoundConfig, load_round_config
from domain.messages import (
    Ack,
    ChangeKeys,
    CloseWindow,
    Disqualification,
    ExtendWindow,
    MoveTmt,
    Report,
    Withdrawal,
)
from domain.protocol import command_update, report_update
from domain.signing import Keyring, Signer, SigningKeyError
from runtime.keys import InvalidKeyError
from runtime.logs import get_logger

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 3

log = get_logger("starter")


class BadInput(Exception):
    """An argument that cannot be used; nothing was sent."""


@dataclass
class Context:
    """What every command needs: the client API, the read model's URL and a console."""

    api: RecruitmentApi
    database_url: str
    console: Console = field(default_factory=lambda: Console(stderr=False))


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
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not append or not path.exists() or path.stat().st_size == 0
        # A value read from bytes that were not UTF-8 is written escaped, never crashing the run.
        self.handle = path.open(
            "a" if append else "w", encoding="utf-8", errors="backslashreplace", newline=""
        )
        self.writer = csv.writer(self.handle)
        if fresh:
            self.writer.writerow(self.COLUMNS)

    def write(self, refusals: list[RowRefusal]) -> None:
        for r in refusals:
            self.writer.writerow((r.line, r.row_id, r.field, r.value, r.reason))
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class Checkpoint:
    """The last line up to which every row is fully processed, so a resumed run skips them quickly.

    Only an optimisation: repeats are no-ops, so re-running the whole file is always safe.
    """

    def __init__(self, path: Path | None, source: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256(source.read_bytes()).hexdigest() if path else ""
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
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _count_rows(path: Path) -> int:
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        return max(0, sum(1 for line in f if line.strip()) - 1)


def stops_the_run(exc: BaseException) -> bool:
    """True for what ends a whole run rather than one row: Ctrl-C (the task cancelled), the
    connection to Temporal lost, a file that can no longer be written."""
    if isinstance(exc, RPCError):
        return exc.status == RPCStatusCode.UNAVAILABLE
    return isinstance(exc, OSError) or not isinstance(exc, Exception)


def _failure(row, exc: Exception) -> RowRefusal:
    """A row that failed with an error, as a line of the errors file."""
    text = " ".join(str(exc).split())[:300] or "no message"
    return RowRefusal(
        row.line,
        "(row)",
        "",
        f"not processed: {type(exc).__name__}: {text}; it may or may not have reached the "
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

    A row that fails with an error is written to the errors file and the next rows go on. What
    stops the whole run (stops_the_run) starts no further row; it is raised once the rows in
    flight have ended, with the checkpoint saved and the lines never finished in
    `summary.unfinished`.
    """
    gate = asyncio.Semaphore(max(1, concurrency))
    tasks: set[asyncio.Task] = set()
    in_flight: set[int] = set()
    stopped: list[BaseException] = []
    with _progress(ctx.console) as progress:
        bar = progress.add_task(description, total=_count_rows(path))

        async def one(row) -> None:
            try:
                await handle_row(row)
            except Exception as exc:  # noqa: BLE001 - one row's failure is that row's, not the run's
                if stops_the_run(exc):
                    stopped.append(exc)
                    return
                summary.fail(_failure(row, exc), errors)
            finally:
                gate.release()
            in_flight.discard(row.line)
            checkpoint.finished(row.line)
            progress.advance(bar)
            checkpoint.completed += 1
            if checkpoint.completed % 50 == 0:
                checkpoint.save()

        try:
            for row in rows:
                if stopped:
                    break
                if row.line <= checkpoint.start_after:
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


def _show_refusals(ctx: Context, path: Path, summary: Summary, errors: Path) -> None:
    for r in summary.refusals[:10]:
        ctx.console.print(
            f"[red]refused[/] {path}:{r.line}: {r.field}={r.value!r}: {r.reason}", highlight=False
        )
    if len(summary.refusals) > 10:
        ctx.console.print(f"... and {len(summary.refusals) - 10} more")
    if summary.refusals:
        ctx.console.print(f"every refused row is in {errors}")


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
        f"[red]stopped[/] before the end of {path} ({why}): "
        f"{_rows(count)} {'was' if count == 1 else 'were'} sent before it stopped "
        f"({', '.join(f'{summary.counts[k]} {k}' for k in sent)}); "
        f"{summary.counts['refused']} refused, {summary.counts['failed']} failed",
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
    except Exception as exc:  # noqa: BLE001 - the round does not exist or the server is unreachable
        raise RefusedError(
            f"round {config.round_id} cannot be read ({exc}); run create-round first"
        ) from None
    return state.schedule.registration.closes


async def import_registrations(
    ctx: Context,
    config_path: Path,
    csv_path: Path,
    errors_path: Path,
    concurrency: int = 16,
    registered_by: str = "sscasn",
    checkpoint_path: Path | None = None,
) -> Summary:
    """Register every row of an SSCASN export; refused and failed rows go to the errors file.

    Nothing is registered by a client whose keys are not the round's (RefusedError)."""
    config = load_round_config(config_path)
    await ctx.api.check_round_keys(config.round_id)
    closes = await _registration_closes(ctx, config)
    rows = open_rows(csv_path, REGISTRATION_COLUMNS)
    checkpoint = Checkpoint(checkpoint_path, csv_path)
    errors = ErrorsFile(errors_path, append=checkpoint.start_after > 0)
    summary = Summary()
    if checkpoint.start_after:
        ctx.console.print(
            f"resuming after line {checkpoint.start_after} (checkpoint {checkpoint_path})"
        )

    async def handle(row) -> None:
        try:
            reg = parse_registration(row)
        except RowError as exc:
            summary.refuse(exc.refusals, errors)
            return
        result = await ctx.api.register(
            config, reg, registered_by, now=datetime.now(UTC), schedule_closes=closes
        )
        if result.status == "refused":
            summary.refuse(
                [
                    RowRefusal(
                        row.line,
                        r.field,
                        r.value if r.field != "name" else "",
                        r.reason,
                        result.applicant_id or "",
                    )
                    for r in result.refusals
                ],
                errors,
            )
        else:
            summary.counts[result.status] += 1

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
        _show_refusals(ctx, csv_path, summary, errors_path)
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
    _show_refusals(ctx, csv_path, summary, errors_path)


def _is_repeat(ack: Ack, sent_at: datetime) -> bool:
    """A repeat is answered with the original Ack, recorded before this run sent the report."""
    return ack.recorded_at < sent_at


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
    errors = ErrorsFile(errors_path, append=checkpoint.start_after > 0)
    summary = Summary()
    locks: dict[str, asyncio.Lock] = {}

    async def handle(row) -> None:
        try:
            parsed = parse_report(kind, row, reported_by)
        except RowError as exc:
            summary.refuse(exc.refusals, errors)
            return
        # One report at a time per journey: a workflow takes at most 10 updates in flight.
        lock = locks.setdefault(parsed.applicant_id, asyncio.Lock())
        try:
            async with lock:
                sent_at = datetime.now(UTC)
                ack = await ctx.api.report(round_id, parsed.applicant_id, parsed.message)
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
        summary.counts["repeat" if _is_repeat(ack, sent_at) else "accepted"] += 1

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
    """Send one operator or portal command to an applicant's journey and print its Ack."""
    update = report_update(message).name
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
    conn = await asyncpg.connect(ctx.database_url)
    try:
        rows = await conn.fetch(
            """SELECT formasi_code, coalesce(terminal, stage) AS code, count(*) AS n FROM applicants
               WHERE round_id = $1 GROUP BY 1, 2""",
            round_id,
        )
    finally:
        await conn.close()
    result: dict[str, Counter] = {}
    for r in rows:
        result.setdefault(r["formasi_code"], Counter())[r["code"]] = r["n"]
    return result


async def status(ctx: Context, round_id: str) -> dict[str, Counter]:
    """Print the round's phase and its funnel per formasi; return the funnel."""
    try:
        state = await ctx.api.round_state(round_id)
        ctx.console.print(
            f"round {round_id}: phase [bold]{state.phase}[/], closed windows: "
            f"{', '.join(state.closed) or 'none'}"
        )
    except Exception as exc:  # noqa: BLE001 - show the read model even when the round is gone
        ctx.console.print(f"round {round_id}: phase unknown ({exc})")
    counts = await funnel(ctx, round_id)
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
        "[bold]total[/]",
        *(str(totals.get(c, 0)) for c in codes),
        str(sum(totals.values())),
        end_section=True,
    )
    ctx.console.print(table)
    return counts


async def announce(
    ctx: Context, round_id: str, stage: AnnouncementStage, out_dir: Path
) -> tuple[Path, Path]:
    """Write the stage's announcement as CSV and printable HTML, from the read model."""
    csv_path, html_path, count = await write_announcement(
        ctx.database_url, round_id, stage, out_dir
    )
    ctx.console.print(f"{count} rows: {csv_path} and {html_path}")
    log.info("announcement written", round_id=round_id, stage=stage.value, rows=count)
    return csv_path, html_path


# --- the command line -------------------------------------------------------------------------

cli = typer.Typer(
    help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
console = Console()
err_console = Console(stderr=True)


def load_signer(path: Path, identity: str) -> Signer:
    """The signing key in `path` (made by `starter.py keygen`), which must be `identity`'s."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        signer = Signer.from_jwk(document)
    except FileNotFoundError:
        raise BadInput(f"--key {path}: no such file") from None
    except (ValueError, TypeError, SigningKeyError) as exc:
        raise BadInput(f"--key {path}: not a key file made by starter.py keygen ({exc})") from None
    if signer.identity != identity:
        raise BadInput(f"--key {path} is {signer.identity}'s key, but --as says {identity}")
    return signer


def _run(body: Callable[[Context], Awaitable[object]], signer: Signer | None = None) -> None:
    """Open the app, run one command's core, and turn its outcome into an exit code."""

    async def main() -> int:
        from runtime.app import open_app

        app = await open_app()
        ctx = Context(
            RecruitmentApi(
                app.client,
                app.settings.task_queue,
                app.keys.pseudonym_key,
                keyring=Keyring([signer] if signer else []),
            ),
            app.stack.database_url,
            console,
        )
        result = await body(ctx)
        return result.exit_code if isinstance(result, Summary) else EXIT_OK

    try:
        code = asyncio.run(main())
    except (ConfigError, CsvFileError, BadInput) as exc:
        err_console.print(f"[red]bad input[/]: {exc}", highlight=False)
        code = EXIT_BAD_INPUT
    except ValidationError as exc:
        err_console.print(f"[red]bad arguments[/]: {exc}", highlight=False)
        code = EXIT_BAD_INPUT
    except RefusedError as exc:
        err_console.print(f"[red]refused[/]: {exc}", highlight=False)
        code = EXIT_REFUSED
    except InvalidKeyError as exc:  # a key missing in a deployment, or not a key
        err_console.print(f"[red]bad configuration[/]: {exc}", highlight=False)
        code = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        err_console.print("[red]stopped[/]: interrupted", highlight=False)
        code = EXIT_STOPPED
    except Exception as exc:
        if not stops_the_run(exc):
            raise
        err_console.print(f"[red]stopped[/]: {type(exc).__name__}: {exc}", highlight=False)
        code = EXIT_STOPPED
    raise typer.Exit(code)


def _precheck(check: Callable[[], object]) -> None:
    """Check the input files before starting anything: a bad file exits 2 without a stack."""
    try:
        check()
    except (ConfigError, CsvFileError, BadInput) as exc:
        err_console.print(f"[red]bad input[/]: {exc}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _header_ok(path: Path, columns) -> None:
    open_rows(path, columns).close()


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
CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="File recording the last fully processed line; a re-run skips up to it.",
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
    registered_by: Annotated[str, typer.Option("--as", help="The registering portal.")] = "sscasn",
    checkpoint: CheckpointOpt = None,
    key: KeyFile = None,
):
    """Register every row of a CSV export. Idempotent and resumable: re-run the same file.
    In a round with identities, sign with the registering identity's --key."""
    _precheck(lambda: (load_round_config(round_config), _header_ok(file, REGISTRATION_COLUMNS)))
    _run(
        lambda ctx: import_registrations(
            ctx, round_config, file, errors, concurrency, registered_by, checkpoint
        ),
        _signer(key, registered_by),
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
):
    """Send a file of reports (one per row) to the applicants' journeys."""
    if kind not in REPORT_KINDS:
        err_console.print(
            f"[red]bad arguments[/]: KIND={kind!r}: expected one of {', '.join(REPORT_KINDS)}"
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    _precheck(lambda: _header_ok(file, REPORT_KINDS[kind].columns))
    _run(
        lambda ctx: send_reports(
            ctx, REPORT_KINDS[kind], round_id, file, errors, reporter, concurrency, checkpoint
        ),
        _signer(key, reporter),
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


@cli.command("extend-window")
def extend_window_cmd(
    round_id: str,
    window: str,
    new_closes: str,
    reason: Reason,
    operator: As,
    report_id: ReportId = None,
    key: KeyFile = None,
):
    """Extend an open window (registration, administration, skd, skb, filing, latsar)."""

    async def body(ctx: Context):
        closes = _datetime(new_closes, "NEW_CLOSES")
        rid = report_id or derived_report_id("extend", round_id, window, closes.isoformat(), reason)
        return await round_command(
            ctx,
            round_id,
            ExtendWindow(
                report_id=rid, reported_by=operator, window=window, new_closes=closes, reason=reason
            ),
        )

    _run(body, _signer(key, operator))


@cli.command("close-window")
def close_window_cmd(
    round_id: str,
    window: str,
    reason: Reason,
    operator: As,
    report_id: ReportId = None,
    key: KeyFile = None,
):
    """Close an open window early, with a recorded reason."""
    rid = report_id or derived_report_id("close", round_id, window, reason)
    _run(
        lambda ctx: round_command(
            ctx,
            round_id,
            CloseWindow(report_id=rid, reported_by=operator, window=window, reason=reason),
        ),
        _signer(key, operator),
    )


@cli.command("move-tmt")
def move_tmt_cmd(
    round_id: str,
    new_tmt: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
    reason: Reason,
    operator: As,
    report_id: ReportId = None,
    key: KeyFile = None,
):
    """Move the TMT of the SK CPNS (a government decision)."""

    async def body(ctx: Context):
        try:
            tmt = date.fromisoformat(new_tmt)
        except ValueError:
            raise BadInput(f"NEW_TMT={new_tmt!r}: not a date YYYY-MM-DD") from None
        rid = report_id or derived_report_id("tmt", round_id, tmt.isoformat(), reason)
        return await round_command(
            ctx, round_id, MoveTmt(report_id=rid, reported_by=operator, new_tmt=tmt, reason=reason)
        )

    _run(body, _signer(key, operator))


@cli.command("disqualify")
def disqualify_cmd(
    round_id: str,
    applicant_id: str,
    reason: Reason,
    operator: As,
    report_id: ReportId = None,
    key: KeyFile = None,
):
    """Disqualify (DIS) an applicant at any stage, even after the NIP."""
    rid = report_id or derived_report_id("dis", round_id, applicant_id, reason)
    _run(
        lambda ctx: journey_command(
            ctx,
            round_id,
            applicant_id,
            Disqualification(report_id=rid, reported_by=operator, reason=reason),
        ),
        _signer(key, operator),
    )


@cli.command("withdraw")
def withdraw_cmd(
    round_id: str,
    applicant_id: str,
    portal: As,
    reason: Annotated[str, typer.Option("--reason")] = "",
    report_id: ReportId = None,
    key: KeyFile = None,
):
    """Record an applicant's withdrawal (mengundurkan diri), sent by the portal."""
    rid = report_id or derived_report_id("withdraw", round_id, applicant_id, reason)
    _run(
        lambda ctx: journey_command(
            ctx,
            round_id,
            applicant_id,
            Withdrawal(report_id=rid, reported_by=portal, reason=reason),
        ),
        _signer(key, portal),
    )


def _signer(key: Path | None, identity: str) -> Signer | None:
    if key is None:
        return None
    try:
        return load_signer(key, identity)
    except BadInput as exc:
        err_console.print(f"[red]bad input[/]: {exc}", highlight=False)
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
    line for the round file's [identities] table."""
    if not 1 <= len(identity) <= 100 or not identity.isprintable() or "/" in identity:
        err_console.print(
            f"[red]bad arguments[/]: IDENTITY={identity!r}: 1-100 printable characters, no /"
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    path = out / f"{identity}.key.json"
    if path.exists():
        err_console.print(f"[red]refused[/]: {path} exists; keys are never overwritten")
        raise typer.Exit(EXIT_REFUSED)
    out.mkdir(parents=True, exist_ok=True)
    signer = Signer.generate(identity)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(signer.jwk(), f)
    console.print(f"private key: {path} (keep it secret; sign with --key {path})")
    console.print("add to the round file:")
    console.print(
        f"[identities]\n{json.dumps(identity)} = {json.dumps(signer.public)}",
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
):
    """Give an identity of the round a new public key (a lost or retired key); signatures made
    before stay valid, reports signed with the old key are refused from then on."""
    rid = report_id or derived_report_id("keys", round_id, identity, public_key, reason)
    _run(
        lambda ctx: round_command(
            ctx,
            round_id,
            ChangeKeys(
                report_id=rid,
                reported_by=operator,
                identities={identity: public_key},
                reason=reason,
            ),
        ),
        _signer(key, operator),
    )


@cli.command("status")
def status_cmd(round_id: str):
    """The round's phase and the funnel per formasi (stage or result code counts)."""
    _run(lambda ctx: status(ctx, round_id))


@cli.command("announce")
def announce_cmd(
    round_id: str,
    stage: AnnouncementStage,
    out: Annotated[Path, typer.Option("--out", help="Directory for the CSV and HTML.")] = Path("."),
):
    """Write an announcement (admin, skd or final) as CSV and printable HTML."""
    _run(lambda ctx: announce(ctx, round_id, stage, out))


@cli.command("demo")
def demo_cmd(size: Annotated[int | None, typer.Option("--size", min=1, help="Applicants.")] = None):
    """Run a sample round end to end on the embedded stack (left running; stop it with run.py stop)."""
    from apps.demo import run_demo

    kwargs: dict = {} if size is None else {"size": size}
    raise typer.Exit(asyncio.run(run_demo(**kwargs)))


if __name__ == "__main__":
    cli()
