"""What the command lines print is shown as it is: a value from a file, a service or the engine
that looks like rich's markup (`[/b]`, `[tidak]`) is printed whole, never read as markup, which
either stopped the command with a MarkupError or dropped the bracketed words without a trace."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from typer.testing import CliRunner

from client.csvio import RowRefusal
from runtime.terminal import console, flagged
from starter import Context, Summary, _show_refusals, cli


def _recording():
    return console(record=True, width=200)


def test_refused_rows_are_listed_with_their_values_and_reasons_whole():
    out = _recording()
    summary = Summary()
    summary.refusals = [
        RowRefusal(2, "gpa", "[/b]", "Input should be a valid number"),
        RowRefusal(3, "major", "Teknik [Sipil]", "formasi F1 accepts [Teknik Informatika]"),
    ]

    _show_refusals(Context(None, "", out), Path("sscasn.csv"), summary, Path("refused.csv"))  # type: ignore[arg-type]

    text = out.export_text()
    assert "sscasn.csv:2: gpa='[/b]': Input should be a valid number" in text
    assert "sscasn.csv:3: major='Teknik [Sipil]': formasi F1 accepts [Teknik Informatika]" in text


def test_a_table_cell_and_a_flagged_line_keep_their_brackets():
    out = _recording()
    table = Table(title="Accepted updates [round R1]")
    table.add_column("content")
    table.add_row('{"findings": "ijazah [tidak] dilegalisir"}')
    out.print(table)
    out.print(flagged("refused", ": reason [/x] as sent"))

    text = out.export_text()
    assert "Accepted updates [round R1]" in text
    assert '"ijazah [tidak] dilegalisir"' in text
    assert "refused: reason [/x] as sent" in text


def test_a_bad_argument_that_looks_like_markup_is_named_not_a_crash(tmp_path):
    rows = tmp_path / "r.csv"
    rows.write_text("report_id,applicant_id\n", encoding="utf-8")
    args = ["report", "[/b]", "R1", str(rows), "--as", "x", "--errors", str(tmp_path / "e.csv")]

    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 2, result.output
    assert "KIND='[/b]': expected one of" in " ".join(result.output.split())
