"""What an operator's files and terminal get from the command lines.

Text from outside stays text: a value from a file, a service or the engine that looks like rich's
markup (`[/b]`, `[tidak]`) is printed whole, never read as markup, which either stopped the
command with a MarkupError or dropped the bracketed words without a trace; in the refused rows'
file, a value that a spreadsheet would run as a formula is written as text. And a file the
command writes is never a file it reads."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from rich.table import Table
from typer.testing import CliRunner

from client.csvio import REGISTRATION_COLUMNS, RowRefusal
from runtime.terminal import console, flagged
from starter import ErrorsFile, Summary, _show_refusals, cli


def _recording():
    return console(record=True, width=200)


def test_refused_rows_are_listed_with_their_values_and_reasons_whole():
    out = _recording()
    summary = Summary()
    summary.refusals = [
        RowRefusal(2, "gpa", "[/b]", "Input should be a valid number"),
        RowRefusal(3, "major", "Teknik [Sipil]", "formasi F1 accepts [Teknik Informatika]"),
    ]

    _show_refusals(out, Path("sscasn.csv"), summary, Path("refused.csv"))

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


def test_the_refused_rows_file_runs_no_formula_in_a_spreadsheet(tmp_path):
    """An applicant's major of "=HYPERLINK(...)" is refused, and written to the operator's
    errors file as text: a spreadsheet opening it must not run it."""
    path = tmp_path / "refused.csv"
    errors = ErrorsFile(path)
    errors.write(
        [
            RowRefusal(2, "major", '=HYPERLINK("http://x.example","klik")', "not a major", "@r2"),
            RowRefusal(3, "gpa", "-1", "=must be 0 to 4"),
            RowRefusal(4, "birth_date", "17/05/1998", "not a date"),
        ]
    )
    errors.close()

    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["value"], r["reason"]) for r in rows] == [
        ("'@r2", '\'=HYPERLINK("http://x.example","klik")', "not a major"),
        ("", "'-1", "'=must be 0 to 4"),
        ("", "17/05/1998", "not a date"),
    ]


def test_an_output_given_an_input_files_name_is_refused_and_the_input_kept(tmp_path):
    """--errors, --numbers or --checkpoint naming the export, the round file or one another
    would have overwritten it from its first byte: refused before anything, every file as it was."""
    export = tmp_path / "sscasn.csv"
    export.write_text(",".join(REGISTRATION_COLUMNS.all) + "\n", encoding="utf-8")
    before = export.read_bytes()
    base = ["import-registrations", "examples/round-kabupaten.toml", str(export)]
    runner = CliRunner()

    overwrite = "would overwrite that file"
    cases = [
        (["--errors", str(export)], "--errors", overwrite),
        (["--errors", str(tmp_path / "e.csv"), "--numbers", str(export)], "--numbers", overwrite),
        (
            ["--errors", str(tmp_path / "e.csv"), "--checkpoint", str(tmp_path / "e.csv")],
            "--checkpoint",
            overwrite,
        ),
        (["--errors", "examples/round-kabupaten.toml"], "--errors", overwrite),
        (["--errors", str(tmp_path)], "--errors", "is a directory"),
    ]
    for extra, named, why in cases:
        result = runner.invoke(cli, [*base, *extra])
        said = " ".join(result.output.split())
        assert result.exit_code == 2, (extra, said)
        assert f"{named} " in said and why in said, said
    assert export.read_bytes() == before
    assert not (tmp_path / "e.csv").exists()

    reports = tmp_path / "admin.csv"
    reports.write_text("report_id,applicant_id,findings\n", encoding="utf-8")
    result = runner.invoke(
        cli, ["report", "admin", "R1", str(reports), "--as", "v", "--errors", str(reports)]
    )
    assert result.exit_code == 2 and "is the file of FILE" in " ".join(result.output.split())
    assert reports.read_text(encoding="utf-8") == "report_id,applicant_id,findings\n"


def _export_row(serial: int, formasi: str = "PK-AP-DISKOMINFO", **changes: str) -> dict[str, str]:
    from tests.roundkit import registration

    data = registration(serial, formasi).model_dump(mode="json")
    return {**{c: str(data[c]) for c in REGISTRATION_COLUMNS.all}, **changes}


def test_a_dry_run_judges_the_export_by_the_round_files_rules_and_sends_nothing(tmp_path):
    rows = [
        _export_row(1),
        _export_row(2, gpa="2,50"),  # line 3: below the formasi's 2.75 (a decimal comma)
        _export_row(3, formasi_code="NO-SUCH"),  # line 4
        _export_row(1),  # line 5: line 2's NIK again
        _export_row(4, birth_date="17/05/1998"),  # line 6: not a date
        _export_row(
            5, formasi="ANKEU-CUMLAUDE", major="Akuntansi", gpa="3.80", category="cumlaude"
        ),
    ]
    export = tmp_path / "sscasn.csv"
    with export.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(REGISTRATION_COLUMNS.all))
        writer.writeheader()
        writer.writerows(rows)
    errors = tmp_path / "out" / "refused.csv"
    data_dir = tmp_path / "data"
    args = ["import-registrations", "examples/round-kabupaten.toml", str(export)]
    args += ["--errors", str(errors), "--dry-run"]

    result = CliRunner(env={"CASN_DATA_DIR": str(data_dir)}).invoke(cli, args)

    said = " ".join(result.output.split())
    assert result.exit_code == 1, said  # some rows would be refused
    assert "nothing was sent" in said
    with errors.open(encoding="utf-8", newline="") as f:
        refused = [(r["line"], r["field"]) for r in csv.DictReader(f)]
    assert sorted(refused) == [
        ("3", "gpa"),
        ("4", "formasi_code"),
        ("5", "nik"),
        ("6", "birth_date"),
    ]
    assert "the same NIK as line 2" in said
    assert not data_dir.exists()  # no stack was started, no key made
    for row in rows:
        assert row["nik"] not in said


def test_an_output_that_cannot_be_written_is_refused_before_anything_is_sent(tmp_path):
    """--errors or --numbers under a file, or where nothing can be created, and a --key that is a
    directory: exit 2 naming the option, before anything connects; no file or folder left."""
    export = tmp_path / "sscasn.csv"
    export.write_text(",".join(REGISTRATION_COLUMNS.all) + "\n", encoding="utf-8")
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    base = ["import-registrations", "examples/round-kabupaten.toml", str(export)]
    fine = str(tmp_path / "new" / "errors.csv")
    cases = [
        (["--errors", str(a_file / "e.csv")], "--errors", "is a file, not a folder"),
        (["--errors", "/proc/casn-errors.csv"], "--errors", "cannot be written"),
        (
            ["--errors", fine, "--numbers", "/proc/casn-numbers.csv"],
            "--numbers",
            "cannot be written",
        ),
        (["--errors", fine, "--key", str(tmp_path)], "--key", "a directory"),
    ]
    runner = CliRunner(env={"CASN_TEMPORAL_ADDRESS": "127.0.0.1:1"})
    for extra, named, why in cases:
        result = runner.invoke(cli, [*base, *extra])
        said = " ".join(result.output.split())
        assert result.exit_code == 2, (extra, said)
        assert said.startswith(f"bad input: {named} ") and why in said, said
        assert "cannot be reached" not in said
    assert not (tmp_path / "new").exists()


def test_keygen_into_a_file_or_where_nothing_can_be_made_is_refused_naming_out(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    for out, why in (
        (a_file, "is a file; give a directory"),
        ("/proc/casn-keys", "cannot be written"),
    ):
        result = CliRunner().invoke(cli, ["keygen", "sscasn", "--out", str(out)])
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and said.startswith("bad input: --out ") and why in said, said
    assert a_file.read_text(encoding="utf-8") == "x"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["extend-window", "R1", "registration", "notadate"], "NEW_CLOSES='notadate': not an ISO"),
        (
            ["extend-window", "R1", "registration", "2027-08-30T10:00:00"],
            "NEW_CLOSES='2027-08-30T10:00:00': give the time zone",
        ),
        (
            ["extend-window", "R1", "registraton", "2027-08-30T10:00:00+07:00"],
            "WINDOW='registraton': not a window; the windows are registration,",
        ),
        (["close-window", "R1", "tmt"], "WINDOW='tmt': not a window"),
        (["move-tmt", "R1", "2028-13-01"], "NEW_TMT='2028-13-01': not a date YYYY-MM-DD"),
        (["move-tmt", "R1", "20280301"], "NEW_TMT='20280301': not a date YYYY-MM-DD"),
    ],
)
def test_an_operator_command_s_bad_argument_is_named_before_anything_connects(tmp_path, args, said):
    env = {"CASN_TEMPORAL_ADDRESS": "127.0.0.1:1", "CASN_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner(env=env).invoke(cli, [*args, "--reason", "surat 12", "--as", "panitia"])
    out = " ".join(result.output.split())
    assert result.exit_code == 2, out
    assert out.startswith("bad arguments: ") and said in out, out
    assert not (tmp_path / "data").exists()  # nothing started, no key made
