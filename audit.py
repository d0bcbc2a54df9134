"""The auditor's tool: read trails, replay histories, export and verify signed bundles, recompute rankings.

    python audit.py trail ROUND_ID APPLICANT_ID [--json]
    python audit.py replay ROUND_ID [--kind journey|formasi|round|aftermath|national|national-claim]
    python audit.py export ROUND_ID --out BUNDLE_DIR
    python audit.py verify BUNDLE_DIR [--public-key FILE] [--payload-key-file FILE]
    python audit.py recompute ROUND_ID [--bundle DIR]
    python audit.py check-read-model ROUND_ID [--repair] [--processes N]
    python audit.py check-pages ROUND_ID [--rebuild]  # the page store against the histories
    python audit.py verify-announcements [FILE...] (--round ROUND_TOML | --round-id ROUND_ID)
    python audit.py serve-codec           # decode-only codec server for the Temporal Web UI

Every command exits 1 when it finds a problem (a divergence, a bad hash or signature, a ranking
that differs) and names what is wrong; a bad argument (an id, a file) exits 2 naming it, before
anything connects. See docs/AUDIT.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text
from temporalio.client import Client
from temporalio.converter import DataConverter

from auditing.bundle import check_bundle, load_public_key, write_bundle
from auditing.history import (
    KINDS,
    ROUND_ID,
    AuditError,
    DecodedMessages,
    RecordedHistory,
    Registered,
    ReplayOutcome,
    aftermath_histories,
    decisions_of,
    messages,
    replay,
    round_histories,
    run_histories,
)
from auditing.provenance import check_provenance, key_timeline
from auditing.recompute import recompute, write_skd_listing
from client.announcements import wib
from client.api import REGISTRATION_NUMBER
from client.publication import (
    ChainCheck,
    Publication,
    audience,
    check_publications,
    check_records,
    lookup_row_problems,
    signature_check,
    stored_documents,
)
from domain.config import CODE_RULE, ConfigError, load_round_config, parse_round_config
from domain.messages import JourneyStart, RecordPublication, RoundStart
from runtime.files import open_input, read_input
from runtime.keys import KEY_BYTES, InvalidKeyError, Keys, previous_payload_keys
from runtime.process import run_and_end
from runtime.terminal import console as console_for
from runtime.terminal import flagged
from runtime.writable import cannot_write, cannot_write_in
from runtime.writable import why as _why
from workflows.ids import aftermath_workflow_id, journey_workflow_id, round_workflow_id
from workflows.round import journey_rules

# Files handed to an auditor are read only when regular files, and only up to these sizes
# (runtime.files.read_input): a key is 44 bytes of base64; a publication's document lists one
# announcement's rows.
KEY_FILE_LIMIT = 64 * 1024
DOCUMENT_FILE_LIMIT = 256 * 1024 * 1024

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The auditor's tool: applicant trails, replay against the current code, signed bundles, "
    "recomputed rankings. Every command exits 1 on a problem and names it. See docs/AUDIT.md.",
)
console = console_for()
errors = console_for(stderr=True)


# --- wiring ---------------------------------------------------------------------------------------


async def _client() -> tuple[Client, Keys]:
    from runtime.app import open_app

    ctx = await open_app()
    return ctx.client, ctx.keys


def _payload_key(payload_key_file: Path | None) -> bytes:
    """The payload key for offline work: --payload-key-file, else CASN_PAYLOAD_KEY, else <data_dir>/keys.

    Never generates a key: a new key could not decode anything.
    """
    from runtime.settings import load_settings

    if payload_key_file is not None:
        try:
            text = read_input(payload_key_file, KEY_FILE_LIMIT).decode().strip()
            source = str(payload_key_file)
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not a text file"
            raise AuditError(
                f"--payload-key-file {payload_key_file}: cannot be read ({why})"
            ) from None
    else:
        settings = load_settings()
        path = Path(settings.data_dir) / "keys" / "payload_key.b64"
        if settings.payload_key:
            text, source = settings.payload_key, "CASN_PAYLOAD_KEY"
        elif path.is_file():
            text, source = path.read_text().strip(), str(path)
        else:
            raise AuditError(
                "no payload key: pass --payload-key-file, or set CASN_PAYLOAD_KEY to the round's key"
            )
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuditError(f"{source} is not valid base64: {exc}") from None
    if len(key) != KEY_BYTES:
        raise AuditError(f"{source} holds {len(key)} bytes, not {KEY_BYTES}")
    return key


def _offline_keys(payload_key_file: Path | None) -> Keys:
    """The payload key for offline work, and the keys of earlier rotations (CASN_PAYLOAD_PREVIOUS_KEYS)."""
    from runtime.settings import load_settings

    payload_key = _payload_key(payload_key_file)
    try:
        previous = previous_payload_keys(load_settings())
    except InvalidKeyError as exc:
        raise AuditError(str(exc)) from None
    return Keys(
        payload_key=payload_key, pseudonym_key=b"", signing_key=b"", previous_payload_keys=previous
    )


def _converter(keys: Keys) -> DataConverter:
    from runtime.connection import data_converter

    return data_converter(keys)


async def _database(opened, what: str) -> asyncpg.Pool:
    """A small pool on the deployment's read-model database (`what` names it in the error)."""
    from runtime.db import open_pool

    try:
        return await open_pool(opened.stack.database_url, max_size=2)
    except (OSError, asyncpg.PostgresError) as exc:
        raise AuditError(f"{what} cannot be reached: {exc}") from None


@contextmanager
def _counting(label: str) -> Iterator[Callable[[int], None]]:
    """A transient counter on stderr; yields the callback that advances it."""
    with Progress(
        TextColumn(label, markup=False), MofNCompleteColumn(), console=errors, transient=True
    ) as bar:
        task = bar.add_task("", total=None)
        yield lambda n: bar.update(task, advance=n)


def _run(coro) -> Any:
    """Run a command; an AuditError, a key missing or malformed, or a stack that cannot be reached
    securely, is printed and exits 1; a bad setting exits 2, and a server that does not answer
    (the Temporal server, the database, the engine) stops it with one line and exit 3."""
    from runtime.embedded import StackError
    from runtime.keys import InvalidKeyError
    from runtime.outage import read_settings_or_none, stopped_line
    from runtime.settings import describe_settings_error, is_settings_error
    from runtime.transport import TransportError

    try:
        return asyncio.run(coro)
    except (AuditError, StackError, TransportError, InvalidKeyError, ConfigError) as exc:
        # ConfigError: a round's recorded start input that is not a round's configuration.
        errors.print(flagged("error:", f" {exc}"))
        raise typer.Exit(1) from None
    except Exception as exc:
        if is_settings_error(exc):
            errors.print(flagged("bad configuration:", f" {describe_settings_error(exc)}"))
            raise typer.Exit(2) from None
        settings = read_settings_or_none()
        stopped = stopped_line(exc, settings)
        if stopped is None:
            raise
        errors.print(flagged("stopped:", f" {stopped}"), soft_wrap=True)
        raise typer.Exit(3) from None


class BadArgument(Exception):
    """An argument that cannot be used, found before anything connects: exit 2."""


def _before_connecting(check: Callable[[], object], label: str = "bad arguments") -> None:
    """Judge the command's arguments (`label` "bad input" for its files) before it connects to
    anything, which in the embedded mode starts the servers: a bad one exits 2 naming it."""
    try:
        check()
    except BadArgument as exc:
        errors.print(flagged(f"{label}:", f" {exc}"), highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _public_key(name: str, path: Path | None) -> None:
    """The signer's published key, read before the bundle: a key file that is not one is the
    auditor's to mend (exit 2), not a fault of the bundle's signature."""
    if path is None:
        return
    _readable(name, path)
    try:
        load_public_key(path)
    except (OSError, ValueError) as exc:
        raise BadArgument(
            f"{name} {path}: not an Ed25519 public key (PEM, or base64 of 32 bytes): {exc}"
        ) from None


def _bundle_only(name: str, value: object, bundle: Path | None) -> None:
    if value is not None and bundle is None:
        raise BadArgument(f"{name}: only with --bundle (the server's histories carry no manifest)")


def _round_id(value: str, name: str = "ROUND_ID") -> None:
    if not ROUND_ID.fullmatch(value):
        raise BadArgument(f"{name}={value!r}: not a round or national id ({CODE_RULE})")


def _registration_number(value: str | None, name: str = "APPLICANT_ID") -> None:
    if value is not None and not REGISTRATION_NUMBER.fullmatch(value):
        raise BadArgument(
            f"{name}={value!r}: not a registration number (16 capital letters A-Z and digits 2-7)"
        )


def _readable(name: str, path: Path | None) -> None:
    """A file the command reads: there, a file, and readable."""
    if path is None:
        return
    try:
        open_input(path, "rb").close()  # a FIFO or a device is refused here, never read
    except FileNotFoundError:
        raise BadArgument(f"{name} {path}: no such file") from None
    except IsADirectoryError:
        raise BadArgument(f"{name} {path}: a directory; give the file") from None
    except OSError as exc:
        raise BadArgument(f"{name} {path}: cannot be read ({_why(exc)})") from None


def _bundle_folder(name: str, path: Path | None) -> None:
    if path is not None and not path.is_dir():
        why = "not a folder" if path.exists() else "no such folder"
        raise BadArgument(f"{name} {path}: {why}; give the bundle's folder (audit.py export)")


def _short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


async def _replay_with_progress(
    histories: list[RecordedHistory], converter: DataConverter
) -> list[ReplayOutcome]:
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}", markup=False),
        console=errors,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=len(histories))
        return await replay(
            [h.history for h in histories],
            converter,
            on_result=lambda o: progress.update(task, advance=1, description=o.workflow_id),
        )


def _report_open_runs(histories: list[RecordedHistory]) -> None:
    """Say which runs had not ended when exported: what they decided after their last event is
    not in the bundle, and a history cut short by whoever signed the bundle looks the same. Only
    a run that ended (completed, continued as new, failed, timed out, terminated) is whole."""
    open_runs = [h for h in histories if not _ended(h)]
    if not open_runs:
        return
    shown = ", ".join(
        f"{h.workflow_id} (run {h.run_id}, {len(h.history.events)} events)" for h in open_runs[:5]
    )
    more = f" and {len(open_runs) - 5} more" if len(open_runs) > 5 else ""
    console.print(
        flagged(
            "!",
            f" {len(open_runs)} of {len(histories)} runs had not ended when exported; what they "
            f"decided after their last event is not in the bundle: {shown}{more}",
            "yellow",
        ),
        highlight=False,
    )


_CLOSING = (
    "workflow_execution_completed_event_attributes",
    "workflow_execution_continued_as_new_event_attributes",
    "workflow_execution_failed_event_attributes",
    "workflow_execution_timed_out_event_attributes",
    "workflow_execution_terminated_event_attributes",
    "workflow_execution_canceled_event_attributes",
)


def _ended(h: RecordedHistory) -> bool:
    events = h.history.events
    return bool(events) and any(events[-1].HasField(name) for name in _CLOSING)


def _report_replay(outcomes: list[ReplayOutcome]) -> bool:
    failures = [o for o in outcomes if not o.ok]
    waiting = sum(o.unstarted for o in outcomes)
    if waiting:
        console.print(
            f"{waiting} of {len(outcomes)} histories have run no workflow task (a delayed start, "
            "or a history cut after its start): nothing of theirs to replay"
        )
    if not failures:
        console.print(
            Text(
                f"{len(outcomes) - waiting} histories replayed against the current code: "
                "no divergence",
                "green",
            )
        )
        return True
    table = Table(
        title=f"{len(failures)} of {len(outcomes)} histories diverge from the current code"
    )
    for col in ("workflow id", "run id", "failure"):
        table.add_column(col, overflow="fold")
    for o in failures:
        problem = (
            f"{type(o.failure).__name__}: {o.failure}"
            if o.failure
            else f"decisions drift: {o.drift}"
        )
        table.add_row(o.workflow_id, o.run_id, problem)
    console.print(table)
    return False


# --- commands -------------------------------------------------------------------------------------


@app.command()
def trail(
    round_id: str,
    applicant_id: str,
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """An applicant's decision trail, re-derived from its history (every run) by replay, and its inputs;
    then what was decided after the journey ended (its aftermath: a DIS or a dismissal)."""
    _before_connecting(lambda: (_round_id(round_id), _registration_number(applicant_id)))

    async def main() -> None:
        client, keys = await _client()
        converter = _converter(keys)
        runs = await run_histories(client, journey_workflow_id(round_id, applicant_id))
        runs += await aftermath_histories(client, aftermath_workflow_id(round_id, applicant_id))
        outcomes = await replay([r.history for r in runs], converter)
        diverged = [o for o in outcomes if not o.ok]
        decisions = decisions_of(outcomes)
        recorded = [m for r in runs for m in await messages(r.history, converter)]
        inputs = [m for m in recorded if m.kind != "start"]
        # Who registered the applicant, and who asked them to (the gateway's caller, when its
        # portal key signed the start): from the signed start, without its personal data.
        start = next(
            (m for m in recorded if m.kind == "start" and isinstance(m.content, JourneyStart)), None
        )
        registered = Registered.of(start.content, start.at) if start else None
        if as_json:
            print(
                json.dumps(
                    {
                        "workflow_id": journey_workflow_id(round_id, applicant_id),
                        "runs": [r.run_id for r in runs],
                        "registered": None
                        if registered is None
                        else {
                            "at": registered.at.isoformat(),
                            "registered_by": registered.registered_by,
                            "submitted_by": registered.submitted_by or None,
                        },
                        "decisions": [d.model_dump(mode="json") for d in decisions],
                        "inputs": [
                            {
                                "at": m.at.isoformat(),
                                "kind": m.kind,
                                "name": m.name,
                                "reporter": m.reporter,
                                "report_id": m.report_id,
                                "content": m.content_json(),
                            }
                            for m in inputs
                        ],
                        "divergences": [f"{o.run_id}: {o.failure or o.drift}" for o in diverged],
                    },
                    indent=2,
                    default=str,
                    ensure_ascii=False,
                )
            )
        else:
            table = Table(title=f"Decisions of {applicant_id} in {round_id} ({len(runs)} run(s))")
            for col in ("time", "stage", "outcome", "actor", "rule version", "input"):
                table.add_column(col, overflow="fold")
            for d in decisions:
                table.add_row(
                    d.at.isoformat(timespec="seconds"),
                    d.stage,
                    d.outcome,
                    d.actor,
                    d.rule_version,
                    _short(d.input),
                )
            console.print(table)
            if registered is not None:
                asked = registered.submitted_by
                console.print(
                    f"registered {registered.at.isoformat()} by {registered.registered_by}"
                    + (f", on the request of {asked} (through the gateway)" if asked else ""),
                    highlight=False,
                )
            table = Table(title="Accepted updates and signals, decoded from the history")
            for col in ("time", "kind", "name", "reporter", "report id", "content"):
                table.add_column(col, overflow="fold")
            for m in inputs:
                table.add_row(
                    m.at.isoformat(timespec="seconds"),
                    m.kind,
                    m.name,
                    m.reporter,
                    m.report_id,
                    _short(m.content_json()),
                )
            console.print(table)
        if diverged:
            _report_replay(outcomes)
            raise typer.Exit(1)

    _run(main())


@app.command("replay")
def replay_command(
    round_id: str,
    kind: str = typer.Option(
        None,
        help="only this kind of workflow: journey, formasi, round, aftermath, national or "
        "national-claim",
    ),
) -> None:
    """Replay every history of the round against the current code; exit 1 on any divergence."""

    def arguments() -> None:
        _round_id(round_id)
        if kind is not None and kind not in KINDS:
            raise BadArgument(f"--kind={kind!r}: not one of {', '.join(KINDS)}")

    _before_connecting(arguments)

    async def main() -> bool:
        client, keys = await _client()
        histories = await round_histories(client, round_id, kind)
        return _report_replay(await _replay_with_progress(histories, _converter(keys)))

    if not _run(main()):
        raise typer.Exit(1)


@app.command()
def export(
    round_id: str,
    out: Path = typer.Option(..., "--out", help="bundle directory to write (created if missing)"),
) -> None:
    """Every history of the round as JSON, a SHA-256 manifest, signed with the signing key."""
    _before_connecting(lambda: _round_id(round_id))
    _before_connecting(lambda: _writable_in("--out", out), "bad input")

    async def main() -> None:
        if (out / "histories").is_dir() and any((out / "histories").iterdir()):
            raise AuditError(f"{out} already holds a bundle: export into a new directory")
        client, keys = await _client()
        keys.require("signing_key")  # before fetching thousands of histories, not after
        histories = await round_histories(client, round_id)
        manifest = write_bundle(histories, round_id, out, keys.signing_key)
        console.print(f"{len(histories)} histories exported; manifest {manifest} signed")

    _run(main())


@app.command()
def verify(
    bundle: Path,
    public_key: Path = typer.Option(
        None, "--public-key", help="the signer's published Ed25519 key (PEM)"
    ),
    payload_key_file: Path = typer.Option(
        None, help="base64 payload key (default: CASN_PAYLOAD_KEY)"
    ),
) -> None:
    """Offline: the manifest's signature, every file's hash, every report's signature under the
    round's keys, and a replay of every history."""
    _before_connecting(
        lambda: (
            _bundle_folder("BUNDLE", bundle),
            _public_key("--public-key", public_key),
            _readable("--payload-key-file", payload_key_file),
        ),
        "bad input",
    )

    async def main() -> bool:
        check = check_bundle(bundle, public_key)
        for problem in check.problems:
            console.print(flagged("✗", f" {problem}"))
        if check.problems:
            return False
        console.print(flagged("✓", f" signature and {len(check.histories)} hashes match", "green"))
        converter = _converter(_offline_keys(payload_key_file))
        signed = await _provenance(check.histories, converter)
        _report_open_runs(check.histories)
        outcomes = await _replay_with_progress(check.histories, converter)
        return _report_replay(outcomes) and signed

    if not _run(main()):
        raise typer.Exit(1)


async def _provenance(
    histories: list[RecordedHistory], converter, decoded: DecodedMessages | None = None
) -> bool:
    """Every start's, report's and command's signature under its round's keys, and its sender's
    right to send it (DESIGN.md invariant 7), printed; False when any fails."""
    provenance = await check_provenance(histories, converter, decoded)
    for problem in provenance.problems:
        console.print(flagged("✗", f" {problem}"), highlight=False)
    for round_id in provenance.unsigned_rounds:
        console.print(
            flagged(
                "!",
                f" round {round_id} lists no identities: it took unsigned reports, whose "
                "authorship rests on who could reach Temporal",
                "yellow",
            ),
            highlight=False,
        )
    for refused in provenance.refused_starts:
        console.print(
            flagged(
                "!",
                f" a start no registrar signed, which the journey refused: {refused}",
                "yellow",
            ),
            highlight=False,
        )
    if provenance.verified:
        console.print(
            flagged(
                "✓",
                f" {provenance.verified} report and command signatures verify under the "
                "round's keys",
                "green",
            )
        )
    return not provenance.problems


@app.command("recompute")
def recompute_command(
    round_id: str,
    bundle: Path = typer.Option(
        None, help="take the histories from this bundle instead of the server"
    ),
    payload_key_file: Path = typer.Option(None, help="with --bundle: base64 payload key"),
    public_key: Path = typer.Option(
        None,
        "--public-key",
        help="with --bundle: the signer's published Ed25519 key (PEM), which the bundle's "
        "manifest must verify under",
    ),
    skd_listing: Path = typer.Option(
        None,
        help="also write every formasi's recomputed SKD listing (rank, id, code, total and the "
        "code each journey recorded) to this CSV file",
    ),
) -> None:
    """Each formasi's SKD cut and final ranking recomputed from its applicants' histories, and
    each applicant's SKD code checked against the recomputed listing, counting only inputs whose
    signature and sender hold (each that fails is named); exit 1 on a difference or a failure."""
    _before_connecting(lambda: _round_id(round_id))
    _before_connecting(
        lambda: (
            _bundle_folder("--bundle", bundle),
            _readable("--payload-key-file", payload_key_file),
            _public_key("--public-key", public_key),
            _writable("--skd-listing", skd_listing),
        ),
        "bad input",
    )
    _before_connecting(lambda: _bundle_only("--public-key", public_key, bundle))

    async def main() -> bool:
        if bundle is not None:
            check = check_bundle(bundle, public_key)
            if check.problems:
                for problem in check.problems:
                    console.print(flagged("✗", f" {problem}"))
                return False
            if check.round_id != round_id:
                console.print(
                    flagged(
                        "✗",
                        f" {bundle / 'manifest.json'}: the bundle is of round "
                        f"{check.round_id!r}, not {round_id!r}",
                    )
                )
                return False
            histories = check.histories
            converter = _converter(_offline_keys(payload_key_file))
        else:
            client, keys = await _client()
            histories = await round_histories(client, round_id)
            converter = _converter(keys)
        decoded = DecodedMessages(converter)  # each history decoded once, for both checks
        signed = await _provenance(histories, converter, decoded)
        result = await recompute(histories, converter, decoded)
        if skd_listing is not None:
            try:
                lines = write_skd_listing([r for _, r in result.pairs], skd_listing)
            except OSError as exc:
                console.print(flagged("✗", f" --skd-listing {skd_listing}: {exc.strerror or exc}"))
                return False
            console.print(f"{lines:,} SKD listing lines written to {skd_listing}")
        table = Table(title=f"Round {round_id}: announced against recomputed")
        for col in (
            "formasi",
            "SKD cut (announced)",
            "SKD cut (recomputed)",
            "winners (announced)",
            "winners (recomputed)",
        ):
            table.add_column(col, overflow="fold")
        for a, r in result.pairs:
            announced = (
                f"{a.winners_count} in {len(a.winner_pages)} page(s), by digest"
                if a.winner_pages is not None and a.fold_at is None
                else f"{a.winners_count} under {len(a.winner_pages)} reference(s) folded at "
                f"{a.fold_at}, by digest"
                if a.winner_pages is not None
                else _short(a.winners)
            )
            table.add_row(
                a.formasi_code, str(a.cut_key), str(r.cut_key), announced, _short(r.winners)
            )
        console.print(table)
        differences = result.differences()
        for d in differences:
            console.print(flagged("✗", f" {d}"))
        if not differences:
            console.print(Text("every formasi's announcement matches its recomputation", "green"))
        return not differences and signed

    if not _run(main()):
        raise typer.Exit(1)


@app.command("check-read-model")
def check_read_model_command(
    round_id: str,
    repair: bool = typer.Option(
        False,
        "--repair",
        help="make good what can be: write what is missing or behind, overwrite what was altered "
        "(needs write access to the read model); what no history explains is only listed",
    ),
    show: int = typer.Option(50, min=0, help="list at most this many differences"),
    processes: int = typer.Option(
        1,
        min=1,
        max=64,
        help="replay in this many processes, a chunk at a time each (a round of many "
        "thousands on a machine with cores to spare)",
    ),
    chunk: int = typer.Option(
        500,
        min=1,
        max=10_000,
        help="journeys fetched and replayed at a time (memory grows with it)",
    ),
) -> None:
    """The round's read model (applicant rows, decisions, reports, notifications, APS sanctions)
    against what its journeys' histories say they wrote, derived by replaying them; exit 1 on a
    difference, and with --repair on one left."""
    from activities.readmodel import ReadModel
    from auditing.readmodel import KINDS, check_round, check_round_in_processes
    from runtime.sealed import ColumnCipher

    _before_connecting(lambda: _round_id(round_id))

    async def main() -> bool:
        from runtime.app import open_app

        opened = await open_app()
        pool = await _database(opened, "the read model")
        try:
            with Progress(
                TextColumn("replaying"),
                BarColumn(),
                MofNCompleteColumn(),
                console=errors,
                transient=True,
            ) as progress:
                task = progress.add_task("", total=None)
                if processes > 1:
                    result = await check_round_in_processes(
                        opened.client,
                        pool,
                        round_id,
                        processes,
                        repair,
                        on_chunk=lambda n: progress.update(task, advance=n),
                        on_listed=lambda n: progress.update(task, total=n),
                        chunk=chunk,
                    )
                else:
                    cipher = ColumnCipher.from_keys(opened.keys)  # opens the notifications
                    result = await check_round(
                        opened.client,
                        pool,
                        round_id,
                        _converter(opened.keys),
                        ReadModel(pool, cipher) if repair else None,
                        on_result=lambda _: progress.update(task, advance=1),
                        on_listed=lambda n: progress.update(task, total=n),
                        chunk=chunk,
                        cipher=cipher,
                    )
        finally:
            await pool.close()
        for o in result.replay_failures:
            console.print(
                flagged(
                    "✗",
                    f" {o.workflow_id} (run {o.run_id}) does not replay, so what it wrote is not "
                    f"checked: {type(o.failure).__name__}: {o.failure}",
                ),
                highlight=False,
            )
        if repair:
            console.print(f"{result.repaired} differences made good from the histories")
        if not result.differences:
            if not result.replay_failures:
                console.print(
                    Text(
                        f"the read model of round {round_id} holds what the histories of its "
                        f"{result.applicants} applicants wrote",
                        "green",
                    )
                )
            return result.ok
        counts = Table(title=f"Round {round_id}: read model against {result.applicants} histories")
        for col in ("difference", "count", "--repair"):
            counts.add_column(col, overflow="fold")
        for kind, n in result.counts().items():
            counts.add_row(kind, str(n), KINDS[kind])
        console.print(counts)
        listed = Table(title=f"the first {min(show, len(result.differences))}")
        for col in ("applicant", "difference", "detail"):
            listed.add_column(col, overflow="fold")
        for d in result.differences[:show]:
            listed.add_row(d.applicant_id, d.kind, d.detail)
        if show:
            console.print(listed)
        return False

    if not _run(main()):
        raise typer.Exit(1)


@app.command("check-pages")
def check_pages_command(
    round_id: str,
    rebuild: bool = typer.Option(
        False,
        "--rebuild",
        help="make every page that is missing or altered and that the histories can give again "
        "(pages of answers from the journeys' histories; index, ranking, offered and offer pages "
        "by running again the calls that kept them), and check again (needs write access)",
    ),
    show: int = typer.Option(50, min=0, help="list at most this many problems"),
) -> None:
    """The page store against the round's formasi and round histories: every page they reference
    (and every page under an index page among them) is there, opens with the payload keys and
    matches its digest and count. Exit 1 on a page missing or altered: the formasi's next ranking
    would stop on it. Without --rebuild nothing is written."""
    from auditing.pagestore import check_pages
    from auditing.pagestore import rebuild as rebuild_pages
    from runtime.sealed import ColumnCipher

    _before_connecting(lambda: _round_id(round_id))

    async def main() -> bool:
        from runtime.app import open_app

        opened = await open_app()
        # The formasi first: a page is named with its owner's event that references it.
        histories: list[RecordedHistory] = []
        for kind in ("formasi", "round"):
            try:
                histories += await round_histories(opened.client, round_id, kind)
            except AuditError:
                if kind == "round":
                    raise
        pool = await _database(opened, "the page store")
        cipher, converter = ColumnCipher.from_keys(opened.keys), _converter(opened.keys)
        try:
            with _counting("reading pages") as advance:
                result = await check_pages(
                    pool, cipher, round_id, histories, converter, on_read=advance
                )
            if rebuild and result.problems:
                with _counting("reading the journeys' answers") as advance:
                    rebuilt = await rebuild_pages(
                        opened.client,
                        pool,
                        cipher,
                        round_id,
                        histories,
                        converter,
                        result,
                        on_journeys=advance,
                    )
                for failure in rebuilt.replay_failures:
                    console.print(
                        flagged(
                            "✗",
                            f" does not replay, so the pages it kept are not made again: {failure}",
                        ),
                        highlight=False,
                    )
                console.print(
                    f"{len(rebuilt.made)} pages made again from the histories (the answers' "
                    f"from those of {rebuilt.journey_runs} journey runs)",
                    highlight=False,
                )
                result = rebuilt.check
        finally:
            await pool.close()
        for where in result.undecodable:
            console.print(flagged("✗", f" not decoded, so not searched for pages: {where}"))
        if result.purged_on is not None:
            console.print(
                f"round {round_id}'s personal data was purged on "
                f"{result.purged_on:%Y-%m-%d %H:%M} UTC (personal_data_purges): "
                f"{result.purged} pages the histories reference went with it, deleted, not "
                "missing; they are not made again",
                highlight=False,
            )
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(result.kinds.items())) or "none"
        summary = (
            f"{result.referenced} pages referenced by {result.histories} histories, "
            f"{result.under_indexes} more under their index pages; {result.read} read back whole "
            f"({kinds}); {result.unreferenced} kept by the round's workflows and referenced by "
            "no history (left alone)"
        )
        if not result.problems:
            if result.ok:
                console.print(Text(f"round {round_id}'s pages are whole: {summary}", "green"))
            return result.ok
        console.print(summary, highlight=False)
        advice = (
            "what is left cannot be made from the histories: restore the database to an instant "
            "when it was whole"
            if rebuild
            else "--rebuild makes again what the histories can give; for the rest, restore the "
            "database to an instant when it was whole"
        )
        listed = Table(
            title=f"Round {round_id}: {len(result.problems)} pages not as their histories say "
            f"({advice}: docs/OPERATIONS.md, 4)"
        )
        for col in ("page", "problem", "detail", "referenced by"):
            listed.add_column(col, overflow="fold")
        for p in result.problems[:show]:
            listed.add_row(p.digest, p.problem, p.detail, p.where)
        if show:
            console.print(listed)
        return False

    if not _run(main()):
        raise typer.Exit(1)


@app.command("verify-announcements")
def verify_announcements(
    files: list[Path] = typer.Argument(
        None, help="publication documents (.json) downloaded from the public pages"
    ),
    round_file: Path = typer.Option(
        None, "--round", help="the round's TOML file: its operators and their public keys"
    ),
    round_id: str = typer.Option(
        None,
        "--round-id",
        help="check against the round on the server (its recorded keys, with every change); "
        "without FILEs, every publication the server stores for it",
    ),
) -> None:
    """Published announcements: each one's body hash and operator signature, and the chain they
    make (numbers from 1, each prev_sha256 the hash of the one before); exit 1 on any problem."""

    def arguments() -> None:
        if (round_file is None) == (round_id is None):
            raise BadArgument("give the round: --round ROUND_TOML or --round-id ROUND_ID (one)")
        if round_id is not None:
            _round_id(round_id, "--round-id")

    def inputs() -> None:
        _readable("--round", round_file)
        for file in files or []:
            _readable("FILE", file)

    _before_connecting(arguments)
    _before_connecting(inputs, "bad input")

    async def main() -> bool:
        documents = [(str(f), _json_file(f)) for f in files or []]
        complete = False
        lookup_problems: list[str] = []
        if round_file is not None:
            try:
                config = load_round_config(round_file)
            except ConfigError as exc:
                raise AuditError(str(exc)) from None
            check = signature_check(config)
        else:
            from runtime.app import open_app

            ctx = await open_app()
            config, timeline, recorded = await _round_record(
                ctx.client, _converter(ctx.keys), round_id
            )
            check = signature_check(
                config, lambda p: timeline.verify(p, p.published_at, audience(p.round_id))
            )
            if not documents:
                conn = await asyncpg.connect(ctx.stack.database_url)
                try:
                    documents = await stored_documents(conn, round_id)
                    # What the public lookup shows of them (publication_rows), row by row.
                    lookup_problems = await lookup_row_problems(conn, round_id)
                finally:
                    await conn.close()
                complete = True
        if not documents:
            raise AuditError(
                "no publication to check: give the .json files"
                + ("" if round_file is not None else f" (the server stores none for {round_id})")
            )
        result = check_publications(documents, config.round_id, check, complete=complete)
        if round_id is not None:
            check_records(result, recorded, stored=complete)
        if complete:
            result.problems.extend(lookup_problems)
        _report_announcements(result, config.round_id)
        return result.ok

    if not _run(main()):
        raise typer.Exit(1)


@app.command("registrations")
def registrations_command(
    round_id: str,
    submitted_by: str = typer.Option(
        None, "--submitted-by", help="only those registered on this identity's request"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON document instead of tables"),
    show: int = typer.Option(50, min=0, help="list at most this many applicants of each table"),
) -> None:
    """Who registered the round's applicants, and on whose request, from each journey's signed
    start: counts per registering identity and gateway caller, and the applicants an operator
    had the gateway register (import-registrations --gateway). No NIK and no name: registration
    numbers only."""
    from auditing.history import registrations

    _before_connecting(lambda: _round_id(round_id))

    async def main() -> None:
        client, keys = await _client()
        with _counting("reading the journeys' starts") as advance:
            found = await registrations(client, _converter(keys), round_id, on_read=advance)
        if submitted_by is not None:
            found = [r for r in found if r.submitted_by == submitted_by]
        groups: dict[tuple[str, str], list[str]] = {}
        for r in found:
            groups.setdefault((r.registered_by, r.submitted_by), []).append(r.applicant_id)
        if as_json:
            document = {
                "round_id": round_id,
                "groups": [
                    {
                        "registered_by": by,
                        "submitted_by": asked or None,
                        "count": len(ids),
                        "applicants": ids,
                    }
                    for (by, asked), ids in sorted(groups.items())
                ],
            }
            print(json.dumps(document, ensure_ascii=False))
            return
        table = Table(title=f"Registrations of round {round_id}, by who registered them")
        for column in ("registered by", "on the request of", "applicants"):
            table.add_column(column)
        for (by, asked), ids in sorted(groups.items()):
            table.add_row(by, asked or "(themselves: SSCASN or the portal)", f"{len(ids):,}")
        console.print(table)
        asked_for = [r for r in found if r.submitted_by]
        if asked_for:
            listed = Table(title="Registered on an operator's request through the gateway")
            for column in ("registration", "at (WIB)", "registered by", "on the request of"):
                listed.add_column(column)
            for r in asked_for[:show]:
                listed.add_row(r.applicant_id, wib(r.at), r.registered_by, r.submitted_by)
            console.print(listed)
            if len(asked_for) > show:
                console.print(f"... and {len(asked_for) - show} more (--show, or --json)")

    _run(main())


@app.command("access-log")
def access_log_command(
    round_id: str,
    applicant: str = typer.Option(None, "--applicant", help="one applicant's registration number"),
    reader: str = typer.Option(None, "--reader", help="one reader's identity"),
    limit: int = typer.Option(1000, min=1, max=1_000_000, help="at most this many, newest first"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document instead of a table"),
) -> None:
    """Who read an applicant's record through the gateway, and how: each operator's lookup (by
    registration number or by NIK, found or not), newest first, from the read model's access log.
    The NIK is never kept; a lookup by NIK is listed under the number the round's key gives it."""
    from client.access_log import accesses

    _before_connecting(
        lambda: (_round_id(round_id), _registration_number(applicant, "--applicant"))
    )

    async def main() -> None:
        from runtime.app import open_app

        opened = await open_app()
        pool = await _database(opened, "the read model")
        try:
            found = await accesses(pool, round_id, applicant, reader, limit)
        finally:
            await pool.close()
        if as_json:
            print(json.dumps([a.model_dump(mode="json") for a in found], ensure_ascii=False))
            return
        table = Table(title=f"Access log of round {round_id} (newest first)")
        for column in ("at (WIB)", "reader", "applicant", "by", "found", "request"):
            table.add_column(column)
        for a in found:
            table.add_row(
                wib(a.at),
                a.reader,
                a.applicant_id,
                "NIK" if a.by_nik else "number",
                "yes" if a.found else "no",
                a.request_id,
            )
        console.print(table)
        console.print(
            f"{len(found)} entries" + (f" (at most {limit})" if len(found) == limit else "")
        )

    _run(main())


def _writable(name: str, path: Path | None) -> None:
    """A file the command writes once it has done its work: its folder there, and the file can
    be made (tried, and removed again: runtime/writable.py)."""
    if path is None:
        return
    if not path.parent.is_dir():
        raise BadArgument(f"{name} {path}: cannot be written (no folder {path.parent})")
    if problem := cannot_write(path):
        raise BadArgument(f"{name} {path}: cannot be written ({problem})")


def _writable_in(name: str, folder: Path) -> None:
    """A folder the command writes files into (made if missing)."""
    if problem := cannot_write_in(folder):
        raise BadArgument(f"{name} {folder}: cannot be written ({problem})")


def _json_file(path: Path) -> Any:
    try:
        return json.loads(read_input(path, DOCUMENT_FILE_LIMIT).decode("utf-8"))
    except FileNotFoundError:
        raise AuditError(f"{path}: no such file") from None
    except OSError as exc:
        raise AuditError(f"{path}: cannot be read ({_why(exc)})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditError(f"{path}: not a JSON document ({exc})") from None


async def _round_record(client: Client, converter: DataConverter, round_id: str):
    """The round's configuration, the keys its identities held over time (each change taken
    only if an operator signed it under the keys before it), and the publications of its
    announcements it has on record (seq -> body hash, by, when), from its history."""
    workflow_id = round_workflow_id(round_id)
    recorded = [
        m
        for run in await run_histories(client, workflow_id)
        for m in await messages(run.history, converter)
    ]
    start = next(
        (m for m in recorded if m.kind == "start" and isinstance(m.content, RoundStart)), None
    )
    if start is None:
        raise AuditError(f"round {round_id}: its history holds no start input to take keys from")
    config = parse_round_config(start.content.config, f"{round_id} start input")
    timeline = key_timeline(journey_rules(config), workflow_id, recorded)
    if timeline.refused:
        raise AuditError("; ".join(timeline.refused))
    published = {
        m.content.seq: (m.content.body_sha256, m.content.reported_by, m.at)
        for m in recorded
        if m.kind == "update" and isinstance(m.content, RecordPublication)
    }
    return config, timeline, published


def _report_announcements(result: ChainCheck, round_id: str) -> None:
    table = Table(title=f"Announcements of round {round_id}")
    for col in (
        "file",
        "no.",
        "stage",
        "published",
        "signed by",
        "sha256",
        "hash",
        "signature",
        "chain",
    ):
        table.add_column(col, overflow="fold")
    mark = {True: Text("✓", "green"), False: Text("✗", "red")}
    for c in sorted(result.documents, key=lambda c: c.publication.seq if c.publication else 0):
        p: Publication | None = c.publication
        table.add_row(
            c.source,
            str(p.seq) if p else "?",
            p.stage.value if p else "?",
            wib(p.published_at) if p else "?",
            p.reported_by if p else "?",
            c.computed_sha256[:16] + "…" if c.computed_sha256 else "",
            mark[c.hash_ok] if p else mark[False],
            mark[c.signature_ok] if p else mark[False],
            c.chain,
        )
    console.print(table)
    for note in result.notes:
        console.print(flagged("!", f" {note}", "yellow"), highlight=False)
    for problem in result.problems:
        console.print(flagged("✗", f" {problem}"), highlight=False)
    if result.ok:
        console.print(
            flagged(
                "✓",
                f" {len(result.documents)} announcements: every signature, hash and link holds",
                "green",
            ),
            highlight=False,
        )


@app.command("serve-codec")
def serve_codec() -> None:
    """Run the decode-only codec server for the Temporal Web UI until Ctrl-C or SIGTERM.

    Listens on CASN_CODEC_HOST:CASN_CODEC_PORT (127.0.0.1:8088); answers auditors listed in
    CASN_CODEC_AUDITORS_FILE (embedded mode: one generated under <data_dir>/keys) and the Web UI
    origins in CASN_CODEC_CORS_ORIGINS. Exit 2 on a bad configuration.
    """
    import signal

    from pydantic import ValidationError

    from gateway.codec_server import build_codec_server, create_codec_app, usage, uvicorn_server
    from gateway.deps import GatewayConfigError
    from runtime.keys import load_or_create_keys
    from runtime.logs import configure_logging
    from runtime.settings import describe_settings_error, is_settings_error, load_settings

    try:
        settings = load_settings()
    except ValidationError as exc:
        if not is_settings_error(exc):
            raise
        errors.print(flagged("bad configuration:", f" {describe_settings_error(exc)}"))
        raise typer.Exit(2) from None
    configure_logging(settings)
    try:
        keys = load_or_create_keys(settings)
        keys.require("payload_key")
        codec = build_codec_server(settings, keys)
    except (GatewayConfigError, InvalidKeyError) as exc:
        errors.print(flagged("bad configuration:", f" {exc}"))
        raise typer.Exit(2) from None
    server = uvicorn_server(create_codec_app(codec), settings.codec_host, settings.codec_port)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.05)
        if server.started:
            console.print(usage(settings, codec) + "\nStop with Ctrl-C.", highlight=False)
        await serving
        if not server.started:
            raise typer.Exit(3)

    asyncio.run(main())


if __name__ == "__main__":
    run_and_end(app)
