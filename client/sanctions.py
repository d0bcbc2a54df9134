"""The sanctions register: who may not register, across rounds, keyed by a pseudonym of the NIK.

The key (the *sanction subject*) is HMAC-SHA256 of the NIK under the deployment's pseudonym key
with a fixed label. Unlike the registration number, which also keys the round, it is the same in
every round, so a sanction imposed in one round finds the person in the next. The NIK itself is
never stored: not in the register, not in the read model, not in a workflow id.

Entries come from two sources:

- **APS**: a journey that ends in a withdrawal with `sanction_rounds` > 0 (a withdrawal after
  passing; DOMAIN.md: "barred from the next 2 rounds"). RecruitmentApi.register puts the subject
  in the JourneyStart; the read-model projection writes the entry (activities/readmodel.py).
- **national_list**: a list of the national agency, imported with `starter.py sanctions import`
  (CSV: nik, barred_until or rounds, reason, source).

The rules (written down here, because DOMAIN.md is silent on them):

- "The next N rounds" are the first N rounds whose registration opens after the sanctioning
  round's registration opened, in the order of their openings. The sanctioning round itself is
  not one of them. Rounds are counted by period (the portal calls them "periode seleksi"): the
  instansi rounds that joined one national round are one round of the count, and those of the
  sanctioning round's own national round are none (migration 021); a round that joined none is
  a period of its own. A round is known to the register by its registration opening, recorded the
  first time the register checks a registration of it (`sanction_calendar`). A round whose
  registration opens before the sanctioning round's is never barred by it.
- For a national list's entry given in rounds, the rounds are counted from its import: the first
  N rounds whose registration opens after the entry was first imported.
- An entry given with an end date bars every registration made (in the round's time zone) on or
  before that date.
- A registration is refused when any entry bars it; the refusal names the sanctioning round (or
  the list) and until when, with the NIK masked.

The register is read by `activities/sanctions.py`, for this module and for the journey, which asks
it again in its first workflow task (patch sanctions-in-journey, docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import asyncpg

from activities.sanctions import Bar, Entry, entry_of, find_bars, record_round
from client.csvio import Columns, header_problems, records, semicolon_header
from domain.config import RoundConfig
from domain.registration import Refusal, mask_nik, normalise_nik
from runtime.db import open_pool
from runtime.files import read_input

SUBJECT_LABEL = b"casn-sanction-subject\x00"
MAX_ROUNDS = 10

LIST_COLUMNS = ("nik", "barred_until", "rounds", "reason", "source")
LIST_REQUIRED = ("nik", "reason", "source")


def sanction_subject(pseudonym_key: bytes, nik: str) -> str:
    """The register's key of a NIK: the same in every round of the deployment (64 hex digits)."""
    return hmac.new(pseudonym_key, SUBJECT_LABEL + nik.encode(), hashlib.sha256).hexdigest()


_IMPORT_SQL = """
INSERT INTO sanctions AS s (subject, kind, origin, imposed_by, rounds, barred_until, reason)
SELECT x.subject, 'national_list', x.source, x.source, x.rounds, x.barred_until, x.reason
FROM jsonb_to_recordset($1::jsonb) AS x(subject text, source text, rounds integer,
    barred_until date, reason text)
ON CONFLICT (kind, origin, subject) DO UPDATE SET
    rounds = EXCLUDED.rounds, barred_until = EXCLUDED.barred_until, reason = EXCLUDED.reason
WHERE (s.rounds, s.barred_until, s.reason)
    IS DISTINCT FROM (EXCLUDED.rounds, EXCLUDED.barred_until, EXCLUDED.reason)
RETURNING (xmax = 0) AS inserted
"""


class SanctionRegister:
    """The register in PostgreSQL: given a pool, or a database URL it connects to when first used."""

    def __init__(self, pool: asyncpg.Pool | None = None, database_url: str | None = None) -> None:
        self._given = pool
        self._pool = pool
        self._url = database_url
        self._calendar: set[str] = set()  # rounds whose opening this process has recorded

    async def pool(self) -> asyncpg.Pool:
        """The pool; opened on first use when only a URL was given."""
        if self._pool is None:
            if not self._url:
                raise ValueError("the sanctions register needs a pool or a database URL")
            self._pool = await open_pool(self._url, max_size=4)
        return self._pool

    async def close(self) -> None:
        """Close the pool this register opened (a given pool belongs to its giver)."""
        if self._pool is not None and self._pool is not self._given:
            await self._pool.close()
        self._pool = self._given

    async def record_round(self, config: RoundConfig) -> None:
        """Put the round on the calendar the next N rounds are counted over (once per process)."""
        if config.round_id in self._calendar:
            return
        await record_round(
            await self.pool(),
            config.round_id,
            config.schedule.registration.opens,
            config.national_round,
        )
        self._calendar.add(config.round_id)

    async def bars(self, config: RoundConfig, subject: str, applied_on: date) -> list[Bar]:
        """The entries that bar `subject` from registering in round `config` on `applied_on`."""
        await self.record_round(config)
        return await find_bars(
            await self.pool(),
            config.round_id,
            config.schedule.registration.opens,
            subject,
            applied_on,
        )

    async def refusal(
        self, config: RoundConfig, subject: str, nik: str, applied_on: date
    ) -> Refusal | None:
        """The registration's refusal at field nik (the NIK masked) when an entry bars it."""
        bars = await self.bars(config, subject, applied_on)
        if not bars:
            return None
        return Refusal(
            field="nik",
            value=mask_nik(nik),
            reason="; ".join(bar.reason(config.round_id) for bar in bars),
        )

    async def entries(self, subject: str | None = None) -> list[Entry]:
        """Every entry (or one subject's), oldest first."""
        rows = await (await self.pool()).fetch(
            "SELECT subject, kind, origin, imposed_by, imposed_at, rounds, barred_until, reason "
            "FROM sanctions WHERE $1::text IS NULL OR subject = $1 "
            "ORDER BY imposed_at, kind, origin, subject",
            subject,
        )
        return [entry_of(row) for row in rows]

    async def import_list(self, rows: list[ListRow], pseudonym_key: bytes) -> dict[str, int]:
        """Write a national list's rows (validated by `read_national_list`) in one transaction;
        a row imported before with the same content is unchanged, with other content updated."""
        documents = [
            {
                "subject": sanction_subject(pseudonym_key, r.nik),
                "source": r.source,
                "rounds": r.rounds,
                "barred_until": r.barred_until.isoformat() if r.barred_until else None,
                "reason": r.reason,
            }
            for r in rows
        ]
        written = await (await self.pool()).fetch(_IMPORT_SQL, json.dumps(documents))
        new = sum(1 for w in written if w["inserted"])
        return {"new": new, "updated": len(written) - new, "unchanged": len(rows) - len(written)}


# --- a national list --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListRow:
    """One valid row of a national list."""

    line: int
    nik: str
    rounds: int | None
    barred_until: date | None
    reason: str
    source: str


@dataclass(frozen=True)
class ListProblem:
    """Why one row of a national list cannot be imported: its line, field and value (a NIK masked)."""

    line: int
    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: field {self.field}: value {self.value!r}: {self.reason}"


@dataclass
class NationalListError(Exception):
    """A national list that cannot be imported; nothing of it was written."""

    path: Path
    problems: list[ListProblem] = field(default_factory=list)

    def __str__(self) -> str:
        shown = "\n".join(f"  {p}" for p in self.problems[:50])
        more = len(self.problems) - 50
        return (
            f"{self.path}: {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}, "
            f"nothing imported:\n{shown}" + (f"\n  ... and {more} more" if more > 0 else "")
        )


def _parse_row(line: int, row: dict[str, str], problems: list[ListProblem]) -> ListRow | None:
    before = len(problems)

    def problem(name: str, value: str, reason: str) -> None:
        problems.append(ListProblem(line, name, value, reason))

    raw_nik = (row.get("nik") or "").strip()
    nik = ""
    try:
        nik = normalise_nik(raw_nik)
    except ValueError as exc:
        problem("nik", mask_nik(raw_nik), str(exc) if raw_nik else "missing: every row needs a NIK")
    until_text = (row.get("barred_until") or "").strip()
    rounds_text = (row.get("rounds") or "").strip()
    barred_until: date | None = None
    rounds: int | None = None
    if bool(until_text) == bool(rounds_text):
        problem(
            "barred_until" if until_text else "rounds",
            f"{until_text}|{rounds_text}" if until_text else "",
            f"give exactly one of barred_until (a date YYYY-MM-DD) and rounds (1-{MAX_ROUNDS})",
        )
    elif until_text:
        try:
            if len(until_text) != 10:
                raise ValueError
            barred_until = date.fromisoformat(until_text)
        except ValueError:
            problem("barred_until", until_text, "not a date YYYY-MM-DD")
    else:
        if not rounds_text.isascii() or not rounds_text.isdigit():
            problem("rounds", rounds_text, f"not a whole number 1-{MAX_ROUNDS}")
        elif not 1 <= int(rounds_text) <= MAX_ROUNDS:
            problem("rounds", rounds_text, f"outside 1-{MAX_ROUNDS}")
        else:
            rounds = int(rounds_text)
    for name, limit in (("reason", 500), ("source", 200)):
        text = (row.get(name) or "").strip()
        if not text:
            problem(name, text, f"missing: every row needs a {name}")
        elif len(text) > limit or not text.isprintable():
            problem(name, text[:40], f"at most {limit} printable characters")
    if len(problems) > before:
        return None
    return ListRow(
        line=line,
        nik=nik,
        rounds=rounds,
        barred_until=barred_until,
        reason=(row.get("reason") or "").strip(),
        source=(row.get("source") or "").strip(),
    )


# A national list is read whole: a million rows take about 100 MB. A larger file (or a device,
# a FIFO: runtime.files.read_input) is refused before it fills the memory.
LIST_FILE_LIMIT = 256 * 1024 * 1024


def read_national_list(path: Path) -> list[ListRow]:
    """Every row of a national list, or NationalListError naming every bad row (and nothing is
    imported): the header needs nik, reason, source and barred_until or rounds, each once; each
    row exactly one of barred_until and rounds, on one line; a NIK at most once per source."""
    try:
        text = read_input(path, LIST_FILE_LIMIT).decode("utf-8-sig")
    except FileNotFoundError:
        raise NationalListError(path, [ListProblem(0, "file", str(path), "no such file")]) from None
    except IsADirectoryError:
        raise NationalListError(
            path, [ListProblem(0, "file", str(path), "a directory, not the list's CSV file")]
        ) from None
    except OSError as exc:
        raise NationalListError(
            path, [ListProblem(0, "file", str(path), f"cannot be read: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise NationalListError(
            path, [ListProblem(0, "file", str(path), f"not UTF-8 text ({exc.reason})")]
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        first = next(reader, [])
        if semicolon_header(first, LIST_REQUIRED):
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
            first = next(reader, [])
    except csv.Error as exc:
        raise NationalListError(
            path, [ListProblem(1, "header", "", f"not readable as CSV: {exc}")]
        ) from None
    header = [h.strip() for h in first]
    problems_of_header = header_problems(header, Columns(LIST_REQUIRED, ("barred_until", "rounds")))
    if not {"barred_until", "rounds"} & set(header):
        problems_of_header.append("missing column(s) barred_until or rounds")
    if reader.line_num > 1:
        problems_of_header.append(f"the header spans lines 1–{reader.line_num}: an unclosed quote?")
    if problems_of_header:
        raise NationalListError(
            path, [ListProblem(1, "header", ",".join(header), p) for p in problems_of_header]
        )
    problems: list[ListProblem] = []
    rows: list[ListRow] = []
    seen: dict[tuple[str, str], int] = {}
    for line, cells, why in records(reader):
        if cells is None:
            problems.append(ListProblem(line, "row", "", why))
            continue
        if not cells or all(not c.strip() for c in cells):
            continue  # a blank line
        if len(cells) != len(header):
            problems.append(
                ListProblem(line, "row", "", f"{len(cells)} cells, the header has {len(header)}")
            )
            continue
        parsed = _parse_row(line, dict(zip(header, cells, strict=True)), problems)
        if parsed is None:
            continue
        first_line = seen.setdefault((parsed.source, parsed.nik), line)
        if first_line != line:
            problems.append(
                ListProblem(
                    line,
                    "nik",
                    mask_nik(parsed.nik),
                    f"listed again for source {parsed.source} (first on line {first_line})",
                )
            )
            continue
        rows.append(parsed)
    if not rows and not problems:
        problems.append(ListProblem(2, "row", "", "the list has no rows"))
    if problems:
        raise NationalListError(path, problems)
    return rows
