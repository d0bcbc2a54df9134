"""CSV input files of starter.py: their columns, header checks and row parsing into messages.

Every problem names the file, the line, the field and the value, so an operator can fix the
export without guessing. A file-level problem (unreadable, bad header) stops the whole file
before any row is sent; a row-level problem refuses only that row, and that includes a row
that is not valid UTF-8 or not readable CSV in the middle of the file: the rows after it are
still read.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from domain.messages import (
    AdminReport,
    AppealAnswer,
    ConflictDeclaration,
    FilingReport,
    GateReport,
    LatsarReport,
    PanelReview,
    PanelScoreReport,
    Report,
    SkbScoreReport,
    SkdReport,
)
from domain.registration import Registration, mask_nik
from runtime.files import open_input


class CsvFileError(Exception):
    """A file that cannot be processed at all: names the file, line, field and problem."""

    def __init__(self, path: Path | str, line: int, field: str, value: str, reason: str) -> None:
        self.path, self.line, self.field, self.value, self.reason = (
            str(path),
            line,
            field,
            value,
            reason,
        )
        super().__init__(f"{self.path}:{line}: {field}={value!r}: {reason}")


# What a spreadsheet reads as the start of a formula (and runs when the file is opened).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """A CSV cell a spreadsheet will not run as a formula (a leading apostrophe when it could):
    for every file we write that holds text from outside (announcements, evaluations, the
    refused rows of an import or a report file)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@dataclass(frozen=True)
class RowRefusal:
    """Why one row was refused: its line, the field and value at fault, and the reason."""

    line: int
    field: str
    value: str
    reason: str
    row_id: str = ""  # the report_id, or the registration number once known

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}={self.value!r}: {self.reason}"


class RowError(Exception):
    """A row that does not parse into its message; carries every problem found in it."""

    def __init__(self, refusals: list[RowRefusal]) -> None:
        self.refusals = refusals
        super().__init__("; ".join(str(r) for r in refusals))


@dataclass(frozen=True)
class Columns:
    """The documented columns of one kind of file."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return self.required + self.optional


@dataclass(frozen=True)
class Row:
    """One data row: its physical line number (the header is line 1) and its cells by column."""

    line: int
    cells: dict[str, str]


# The longest physical line read whole (characters): a longer one is refused as a row, its rest
# skipped without being held, so a file of one endless line cannot fill the memory. The csv
# module itself refuses a field over its limit (131,072), but only after the line is read.
LINE_LIMIT = 1024 * 1024


class BoundedLines:
    """The lines of a text file for csv.reader, none longer than `limit` characters: a longer
    line is handed on as one field over the csv module's limit, so the reader refuses it (a row
    that cannot be read, at its own line) and the rest of it is skipped unread into memory."""

    def __init__(self, handle, limit: int = LINE_LIMIT) -> None:
        self.handle, self.limit = handle, limit
        self.overlong = False  # in the middle of an overlong line, whose rest is to be skipped

    def __iter__(self) -> BoundedLines:
        return self

    def __next__(self) -> str:
        while self.overlong:  # the rest of the overlong line, read and let go piece by piece
            rest = self.handle.readline(self.limit)
            self.overlong = bool(rest) and not rest.endswith(("\n", "\r"))
        line = self.handle.readline(self.limit)
        if not line:
            raise StopIteration
        if len(line) < self.limit or line.endswith(("\n", "\r")):
            return line
        self.overlong = True  # skipped when the next line is asked for: a header, never
        return "x" * (csv.field_size_limit() + 1) + "\n"


def open_rows(path: Path | str, columns: Columns) -> Iterator[Row]:
    """Check the header now and return the data rows lazily; raise CsvFileError for a bad file
    (not a regular file, such as a FIFO or /dev/zero, too)."""
    path = Path(path)
    try:
        # Bytes that are not UTF-8 are kept as lone surrogates, so that one bad row is refused
        # as a row (below) instead of stopping the file in the middle.
        handle = open_input(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise CsvFileError(
            path, 0, "(file)", str(path), f"cannot be read: {exc.strerror}"
        ) from None
    reader = csv.reader(BoundedLines(handle))
    try:
        header = next(reader)
        if semicolon_header(header, columns.required):
            # Saved by a spreadsheet in the Indonesian locale: the list separator is ";" (and the
            # decimal separator ",", which the numeric fields take). Read the file that way.
            handle.seek(0)
            reader = csv.reader(BoundedLines(handle), delimiter=";")
            header = next(reader)
    except StopIteration:
        handle.close()
        raise CsvFileError(
            path, 1, "(header)", "", f"the file is empty; expected columns {', '.join(columns.all)}"
        ) from None
    except (csv.Error, UnicodeDecodeError) as exc:
        handle.close()
        raise CsvFileError(path, 1, "(header)", "", f"not a readable UTF-8 CSV: {exc}") from None
    names = [h.strip() for h in header]
    if any(_not_utf8(n) for n in names):
        handle.close()
        raise CsvFileError(path, 1, "(header)", "", "not valid UTF-8: save the file as UTF-8")
    problems = header_problems(names, columns)
    if reader.line_num > 1:
        problems.append(f"the header spans lines 1–{reader.line_num}: an unclosed quote?")
    if problems:
        handle.close()
        raise CsvFileError(
            path,
            1,
            "(header)",
            ",".join(names),
            "; ".join(problems)
            + f"; expected {', '.join(columns.required)}"
            + (f" and optionally {', '.join(columns.optional)}" if columns.optional else ""),
        )
    return _rows(path, handle, reader, names)


def header_problems(names: list[str], columns: Columns) -> list[str]:
    """What is wrong with a header's column `names` (stripped) for `columns`: missing, unknown,
    repeated (a repeated column would silently take one of its cells) or unnamed ones."""
    problems = []
    missing = [c for c in columns.required if c not in names]
    unknown = [n for n in names if n and n not in columns.all]
    duplicated = sorted({n for n in names if n and names.count(n) > 1})
    unnamed = [str(i) for i, n in enumerate(names, 1) if not n]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if duplicated:
        problems.append(f"repeated column(s) {', '.join(duplicated)}")
    if unnamed:
        problems.append(
            f"a column with no name at position {', '.join(unnamed)} (a trailing comma?)"
        )
    return problems


def records(reader) -> Iterator[tuple[int, list[str] | None, str]]:
    """Each record of a csv `reader` after its header as (the physical line it starts on, its
    cells, ""), or (line, None, why) for one that cannot be read. A record spanning several lines
    is refused whole: an unclosed quote makes one record of the lines up to the next quote, and
    taken as a row it would carry one applicant's NIK with another's cells, and the rows it
    swallowed would vanish. The reader goes on with the line after it."""
    while True:
        first = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a field over the csv module's limit, a NUL byte
            yield first, None, f"not readable as CSV: {exc}"
            continue
        if reader.line_num > first:
            yield (
                first,
                None,
                f"one record spans lines {first}–{reader.line_num}: an unclosed quote? A cell "
                'holding a quote is written in quotes with the quote doubled (""); every row '
                "is one line",
            )
            continue
        yield first, cells, ""


def semicolon_header(header: list[str], required: Iterable[str]) -> bool:
    """True when a header read with commas is one cell holding every required column separated
    by ";": a file saved by a spreadsheet in the Indonesian locale, to be read with ";"."""
    if len(header) != 1 or ";" not in header[0]:
        return False
    names = {n.strip() for n in header[0].split(";")}
    return set(required) <= names


_UNREADABLE = "__unreadable__"  # the cell of a Row that could not be read: why


def _not_utf8(text: str) -> bool:
    """True when `text` holds bytes that were not UTF-8 (kept as lone surrogates)."""
    return any("\udc80" <= char <= "\udcff" for char in text)


def _rows(path: Path, handle, reader, names: list[str]) -> Iterator[Row]:
    with handle:
        for line, cells, problem in records(reader):
            if cells is None:
                yield Row(line, {_UNREADABLE: problem})
                continue
            if not cells or all(not c.strip() for c in cells):
                continue  # a blank line, common at the end of exports
            if len(cells) != len(names):
                yield Row(line, {_UNREADABLE: f"{len(cells)} cells, the header has {len(names)}"})
                continue
            bad = [n for n, c in zip(names, cells, strict=True) if _not_utf8(c)]
            if bad:
                yield Row(
                    line,
                    {_UNREADABLE: f"not valid UTF-8 (in {', '.join(bad)}): save the file as UTF-8"},
                )
                continue
            yield Row(line, {n: c.strip() for n, c in zip(names, cells, strict=True)})


def _check_readable(row: Row) -> None:
    if _UNREADABLE in row.cells:
        raise RowError([RowRefusal(row.line, "(row)", "", row.cells[_UNREADABLE])])


def _validation_refusals(line: int, exc: ValidationError, row_id: str = "") -> list[RowRefusal]:
    refusals = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(row)"
        value = "" if err["type"] == "missing" else err.get("input", "")
        value = value if isinstance(value, str) else repr(value)
        if field.split(".")[0] == "nik":
            value = mask_nik(value)
        elif field.split(".")[0] == "name":
            value = f"<{len(value)} characters>"  # names stay out of errors files
        refusals.append(RowRefusal(line, field, value, err["msg"], row_id))
    return refusals


# --- registrations (an SSCASN export) ---------------------------------------------------------

REGISTRATION_COLUMNS = Columns(
    required=(
        "nik",
        "name",
        "birth_date",
        "gender",
        "education_level",
        "major",
        "gpa",
        "formasi_code",
    ),
    # citizen: true or false, refused by the rules when false; an empty cell, or a file without
    # the column (as every file before it), is taken as a citizen's.
    optional=("category", "citizen"),
)


def parse_registration(row: Row) -> Registration:
    """A registration row as the domain's Registration; RowError names each bad field."""
    _check_readable(row)
    optional = REGISTRATION_COLUMNS.optional
    data = {k: v for k, v in row.cells.items() if not (k in optional and v == "")}
    data["gpa"] = decimal(data.get("gpa", ""))
    if _E_NOTATION.fullmatch(data.get("nik", "")):
        raise RowError(
            [
                RowRefusal(
                    row.line,
                    "nik",
                    mask_nik(data["nik"]),
                    "a spreadsheet wrote this NIK as a number in E notation, which keeps 15 of its "
                    "16 digits: format the nik column as text in the spreadsheet and export again "
                    "(a NIK it showed whole may have lost its last digit too)",
                )
            ]
        )
    try:
        return Registration.model_validate(data)
    except ValidationError as exc:
        raise RowError(_validation_refusals(row.line, exc)) from None


# --- reports from services --------------------------------------------------------------------


@dataclass(frozen=True)
class ReportKind:
    """One kind of report file: its columns and the message each row becomes (the message's type
    names the journey update it travels by, domain/protocol.py)."""

    name: str
    message: type[Report]
    columns: Columns
    fields: Callable[[dict[str, str]], dict]  # row cells (without ids) -> message fields


def _findings(text: str) -> list[dict]:
    findings = []
    for item in filter(None, (part.strip() for part in text.split("|"))):
        document, sep, reason = item.partition(":")
        if not sep or not document.strip() or not reason.strip():
            raise ValueError(f"{item!r} is not document:reason")
        findings.append({"document": document.strip(), "reason": reason.strip()})
    return findings


def _list(text: str) -> list[str]:
    return [p.strip() for p in text.split("|") if p.strip()]


_E_NOTATION = re.compile(r"\d[.,]\d+[eE]\+?\d+")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


def decimal(text: str) -> str:
    """A number as Python reads it: "3,45", as a spreadsheet in the Indonesian locale writes it
    (and the portal's form takes it), is 3.45. Anything else is left for the field's own check."""
    return text.replace(",", ".") if _DECIMAL_COMMA.fullmatch(text) else text


def _scores(text: str) -> dict[str, str]:
    """`component:score|component:score` (a final sanggah's corrections) as a dict."""
    scores = {}
    for item in _list(text):
        component, sep, score = item.partition(":")
        if not sep or not component.strip() or not score.strip():
            raise ValueError(f"corrected_scores: {item!r} is not component:score")
        if component.strip() in scores:  # the last would have won, the other dropped unsaid
            raise ValueError(f"corrected_scores: {component.strip()!r} is given twice")
        scores[component.strip()] = decimal(score.strip())
    return scores


IDS = ("report_id", "applicant_id")

REPORT_KINDS: dict[str, ReportKind] = {
    k.name: k
    for k in (
        ReportKind(
            "admin",
            AdminReport,
            Columns(IDS, ("findings",)),
            lambda c: {"findings": _findings(c.get("findings", ""))},
        ),
        ReportKind(
            "appeal-answer",
            AppealAnswer,
            Columns((*IDS, "accepted"), ("note", "corrected_scores")),
            lambda c: {**c, "corrected_scores": _scores(c.get("corrected_scores", ""))},
        ),
        ReportKind(
            "skd", SkdReport, Columns((*IDS, "twk", "tiu", "tkp"), ("session_id",)), lambda c: c
        ),
        ReportKind(
            "skb-score",
            SkbScoreReport,
            Columns((*IDS, "component", "score")),
            lambda c: {**c, "score": decimal(c["score"])},
        ),
        ReportKind(
            "panel",
            PanelScoreReport,
            Columns((*IDS, "component", "panellist", "score")),
            lambda c: {**c, "score": decimal(c["score"])},
        ),
        ReportKind(
            "conflict",
            ConflictDeclaration,
            Columns((*IDS, "component", "panellist", "kind"), ("note",)),
            lambda c: c,
        ),
        ReportKind(
            "panel-review",
            PanelReview,
            Columns((*IDS, "component", "panellist", "keep"), ("note",)),
            lambda c: c,
        ),
        ReportKind(
            "gate",
            GateReport,
            Columns((*IDS, "component", "decision"), ("note",)),
            lambda c: {**c, "decision": c.get("decision", "").upper()},
        ),
        ReportKind(
            "filing",
            FilingReport,
            Columns((*IDS, "complete"), ("missing",)),
            lambda c: {**c, "missing": _list(c.get("missing", ""))},
        ),
        ReportKind(
            "latsar",
            LatsarReport,
            # healthy is stated on every row: the probation's health finding is never assumed.
            Columns((*IDS, "passed", "healthy")),
            lambda c: c,
        ),
    )
}


@dataclass(frozen=True)
class ParsedReport:
    """A report row ready to send: to whom, and the message."""

    line: int
    applicant_id: str
    message: Report


def parse_report(kind: ReportKind, row: Row, reported_by: str) -> ParsedReport:
    """A report row as its message; RowError names each bad field."""
    _check_readable(row)
    cells = dict(row.cells)
    report_id = cells.pop("report_id", "")
    applicant_id = cells.pop("applicant_id", "")
    problems = []
    if not applicant_id:
        problems.append(RowRefusal(row.line, "applicant_id", "", "is empty", report_id))
    try:
        fields = kind.fields(cells)
    except ValueError as exc:
        column = "findings" if kind.name == "admin" else "(row)"
        raise RowError(
            [*problems, RowRefusal(row.line, column, cells.get(column, ""), str(exc), report_id)]
        ) from None
    try:
        message = kind.message.model_validate(
            {**fields, "report_id": report_id, "reported_by": reported_by}
        )
    except ValidationError as exc:
        problems.extend(_validation_refusals(row.line, exc, report_id))
    if problems:
        raise RowError(problems)
    return ParsedReport(row.line, applicant_id, message)
