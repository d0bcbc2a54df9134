"""Tables written to a file or a pipe keep every cell whole (runtime/terminal.py); a terminal and
`COLUMNS` keep their widths."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from rich.table import Table

from runtime.terminal import FILE_WIDTH, console, flagged

ROOT = Path(__file__).resolve().parent.parent
CODES = ["PK-AP-DINAS-KOMINFO-PRANATA-KOMPUTER", "ANKEU-CUTI-BERSAMA-KEUANGAN-DAERAH"]


def _table() -> Table:
    table = Table(title="outcomes")
    for name in ("formasi", "APS", "DIBERHENTIKAN", "DIS", "P", "PNS", "T/L", "TH", "TL", "TMS"):
        table.add_column(name)
    for code in CODES:
        table.add_row(code, *[str(n) for n in range(9)])
    return table


def test_a_table_written_to_a_file_keeps_its_cells_whole(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    out = console(file=io.StringIO())
    assert out.width == FILE_WIDTH
    out.print(_table())
    text = out.file.getvalue()
    assert "…" not in text
    for word in (*CODES, "DIBERHENTIKAN"):
        assert word in text


def test_rich_alone_would_cut_them(monkeypatch):
    """The control: the same table through rich's own console, at its 80 columns for a file."""
    monkeypatch.delenv("COLUMNS", raising=False)
    from rich.console import Console

    plain = Console(file=io.StringIO())
    plain.print(_table())
    assert "…" in plain.file.getvalue()


def test_columns_and_an_explicit_width_still_win(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert console(file=io.StringIO()).width == 100
    monkeypatch.delenv("COLUMNS")
    assert console(file=io.StringIO(), width=90).width == 90


def test_a_terminal_keeps_its_own_width(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert console(file=io.StringIO(), force_terminal=True).width != FILE_WIDTH


def test_the_command_lines_print_whole_tables_into_a_pipe():
    """The consoles of starter.py (its module's and each command's context) and audit.py, in a
    process whose output is a pipe and with no COLUMNS: FILE_WIDTH wide."""
    env = {"PATH": "/usr/bin:/bin", "CASN_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-c", "import starter, audit; print(starter.console.width, "
         "audit.console.width, starter.Context.__dataclass_fields__['console']"
         ".default_factory().width)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.split() == [str(FILE_WIDTH)] * 3


# A value recorded with terminal controls: an OSC that retitles the window, a clear screen, a
# carriage return that writes over what was shown, a C1 CSI, a bidi override.
HOSTILE = "ijazah\x1b]0;pwned\x07\x1b[2J\rpalsu\x9b31m\u202ebenar"


def test_a_value_s_control_characters_never_reach_the_terminal():
    out = console(file=io.StringIO(), force_terminal=True, width=120)
    table = Table(title="decisions")
    table.add_column("reason")
    table.add_row(HOSTILE)
    out.print(table)
    out.print(flagged("refused", f": {HOSTILE}"))
    out.print(HOSTILE)

    text = out.file.getvalue()
    for control in ("\x1b]", "\x07", "\x1b[2J", "\r", "\x9b", "\u202e"):
        assert control not in text, repr(control)
    assert "ijazah\ufffd]0;pwned\ufffd\ufffd[2J\ufffdpalsu\ufffd31m\ufffdbenar" in text  # the cell
    assert text.count("pwned") == 3 and text.count("benar") == 3  # nothing of a value is lost
    assert "\x1b[31mrefused\x1b[0m" in text  # our own styles are still written


def test_rich_alone_writes_them_as_they_are():
    """The control: the same table through rich's own console."""
    from rich.console import Console

    out = Console(file=io.StringIO(), force_terminal=True, width=120, markup=False)
    table = Table(title="decisions")
    table.add_column("reason")
    table.add_row(HOSTILE)
    out.print(table)

    assert "\x1b]0;pwned" in out.file.getvalue() and "\x1b[2J" in out.file.getvalue()
