"""Report files of the panel and sanggah kinds (client/csvio.py): each row as its message, and a
bad cell named."""

from __future__ import annotations

import pytest

from client.csvio import REPORT_KINDS, Row, RowError, parse_registration, parse_report


def _row(**cells: str) -> Row:
    return Row(2, {"report_id": "r1", "applicant_id": "A1", **cells})


def test_an_answer_to_a_final_sanggah_carries_its_corrections():
    kind = REPORT_KINDS["appeal-answer"]
    message = parse_report(kind, _row(accepted="true", corrected_scores="cat:490|praktik:85"), "v")
    assert message.message.corrected_scores == {"cat": 490.0, "praktik": 85.0}
    plain = parse_report(kind, _row(accepted="false"), "v").message
    assert plain.corrected_scores == {} and "corrected_scores" not in plain.model_dump()


def test_a_bad_correction_is_named_with_its_row():
    with pytest.raises(RowError) as caught:
        parse_report(
            REPORT_KINDS["appeal-answer"], _row(accepted="true", corrected_scores="cat=4"), "v"
        )
    [refusal] = caught.value.refusals
    assert (refusal.line, refusal.row_id) == (2, "r1")
    assert "corrected_scores: 'cat=4' is not component:score" in refusal.reason


def test_conflicts_and_reviews_read_as_their_messages():
    conflict = parse_report(
        REPORT_KINDS["conflict"],
        _row(component="wawancara", panellist="pw-ani", kind="family", note="sepupu"),
        "pw-ani",
    ).message
    assert (conflict.kind.value, conflict.reported_by) == ("family", "pw-ani")
    review = parse_report(
        REPORT_KINDS["panel-review"],
        _row(component="wawancara", panellist="pw-eko", keep="no"),
        "panitia",
    ).message
    assert review.keep is False
    with pytest.raises(RowError) as caught:
        parse_report(
            REPORT_KINDS["conflict"], _row(component="wawancara", panellist="x", kind="cousin"), "x"
        )
    assert [r.field for r in caught.value.refusals] == ["kind"]


def _saved_by_indonesian_excel(path, header: list[str], rows: list[list[str]]):
    """A file as a spreadsheet in the Indonesian locale saves it: a byte-order mark, ";" between
    cells, "," in decimals."""
    text = "\r\n".join(";".join(cells) for cells in [header, *rows]) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    return path


def test_a_file_saved_with_semicolons_and_decimal_commas_is_read_as_the_commas_one(tmp_path):
    from client.csvio import REGISTRATION_COLUMNS, open_rows, parse_registration

    path = _saved_by_indonesian_excel(
        tmp_path / "sscasn.csv",
        list(REGISTRATION_COLUMNS.required),
        [
            ["3273011705980001", "Budi, S.Kom", "1998-05-17", "L", "S1", "Teknik Informatika",
             "3,45", "F1"],
            ["3273011705980002", "Ani", "1998-05-17", "L", "S1", "Teknik Informatika",
             "3,4,5", "F1"],
        ],
    )  # fmt: skip
    first, second = list(open_rows(path, REGISTRATION_COLUMNS))
    reg = parse_registration(first)
    assert (reg.name, reg.gpa, reg.formasi_code) == ("Budi, S.Kom", 3.45, "F1")
    with pytest.raises(RowError) as caught:
        parse_registration(second)  # not a number either way: named, as before
    assert [(r.line, r.field, r.value) for r in caught.value.refusals] == [(3, "gpa", "3,4,5")]

    scores = _saved_by_indonesian_excel(
        tmp_path / "panel.csv",
        ["report_id", "applicant_id", "component", "panellist", "score"],
        [["p1", "A1", "wawancara", "pw-ani", "82,5"]],
    )
    [row] = list(open_rows(scores, REPORT_KINDS["panel"].columns))
    assert parse_report(REPORT_KINDS["panel"], row, "pw-ani").message.score == 82.5


def test_a_semicolon_header_without_the_columns_is_still_named_whole(tmp_path):
    from client.csvio import REGISTRATION_COLUMNS, CsvFileError, open_rows

    path = _saved_by_indonesian_excel(tmp_path / "x.csv", ["nik", "nama"], [["1", "2"]])
    with pytest.raises(CsvFileError) as caught:
        open_rows(path, REGISTRATION_COLUMNS)
    assert "missing column(s) nik, name" in str(caught.value)


def test_a_nik_a_spreadsheet_turned_into_e_notation_is_refused_saying_so():
    from client.csvio import parse_registration

    row = Row(
        4,
        {
            "nik": "3,27301E+15",
            "name": "Ani",
            "birth_date": "1998-05-17",
            "gender": "P",
            "education_level": "S1",
            "major": "Teknik Informatika",
            "gpa": "3.2",
            "formasi_code": "F1",
        },
    )
    with pytest.raises(RowError) as caught:
        parse_registration(row)
    [refusal] = caught.value.refusals
    assert (refusal.line, refusal.field) == (4, "nik")
    assert "E notation" in refusal.reason and "format the nik column as text" in refusal.reason
    assert refusal.value != "3,27301E+15"  # masked, as every NIK in a refusal


def test_an_unclosed_quote_refuses_the_record_it_makes_at_its_first_line_and_the_rest_is_read(
    tmp_path,
):
    """A stray quote made one record of lines 2 and 3: one applicant's NIK with the next one's
    cells, the second applicant gone. Refused, naming both lines; the rows after it are read,
    each at its own line (the numbers file is joined to the export by line)."""
    from client.csvio import REGISTRATION_COLUMNS, open_rows

    row = "32730117059800{:02d},{},1998-05-17,L,S1,Teknik Informatika,3.2,F1\n"
    path = tmp_path / "sscasn.csv"
    path.write_text(
        ",".join(REGISTRATION_COLUMNS.required)
        + "\n"
        + row.format(1, '"Ucok Satu')
        + row.format(2, 'Dua"')
        + row.format(3, "Tiga")
        + row.format(4, "Empat"),
        encoding="utf-8",
    )
    merged, third, fourth = list(open_rows(path, REGISTRATION_COLUMNS))
    with pytest.raises(RowError) as caught:
        parse_registration(merged)
    [refusal] = caught.value.refusals
    assert refusal.line == 2 and "spans lines 2–3: an unclosed quote?" in refusal.reason
    assert (third.line, third.cells["name"]) == (4, "Tiga")
    assert (fourth.line, fourth.cells["name"]) == (5, "Empat")


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("report_id,applicant_id,findings,findings", "repeated column(s) findings"),
        ("report_id,applicant_id,findings,", "a column with no name at position 4"),
    ],
)
def test_a_header_with_a_column_twice_or_unnamed_stops_the_file(tmp_path, header, problem):
    from client.csvio import CsvFileError, open_rows

    path = tmp_path / "admin.csv"
    path.write_text(header + "\nr1,A1,ijazah:buram,\n", encoding="utf-8")
    with pytest.raises(CsvFileError) as caught:
        open_rows(path, REPORT_KINDS["admin"].columns)
    assert problem in str(caught.value)


def _national_list(tmp_path, text: str):
    from client.sanctions import NationalListError, read_national_list

    path = tmp_path / "list.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(NationalListError) as caught:
        read_national_list(path)
    return [(p.line, p.reason) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "nik,rounds,reason,source,nik\n3273011705980001,2,r,BKN,3273011705980002\n",
            [(1, "repeated column(s) nik")],
        ),
        (
            "nik,rounds,reason,source,\n3273011705980001,2,r,BKN,\n",
            [(1, "a column with no name at position 5 (a trailing comma?)")],
        ),
        (
            'nik,rounds,reason,source\n3273011705980001,2,"r,BKN\n3273011705980002,2,r",BKN\n'
            "3273011705980003,2,r,BKN\n",
            [(2, "one record spans lines 2–3: an unclosed quote?")],
        ),
        (
            "nik,rounds,reason,source\n3273011705980001,2," + "x" * 140_000 + ",BKN\n",
            [(2, "not readable as CSV: field larger than field limit (131072)")],
        ),
    ],
    ids=["repeated", "unnamed", "unclosed-quote", "huge-field"],
)
def test_a_national_list_s_bad_header_or_record_is_named_and_nothing_imported(
    tmp_path, text, expected
):
    problems = _national_list(tmp_path, text)
    assert len(problems) == len(expected)
    for (line, reason), (expected_line, why) in zip(problems, expected, strict=True):
        assert line == expected_line and reason.startswith(why), reason


def test_a_latsar_file_states_the_health_finding_on_every_row(tmp_path):
    """DOMAIN.md stage 12: passing Latsar and being healthy makes a PNS. A file without the
    `healthy` column, or a row leaving it empty, counted as healthy before; now neither is read."""
    from client.csvio import CsvFileError, open_rows

    kind = REPORT_KINDS["latsar"]
    path = tmp_path / "latsar.csv"
    path.write_text("report_id,applicant_id,passed\nl1,A1,true\n", encoding="utf-8")
    with pytest.raises(CsvFileError, match=r"missing column\(s\) healthy"):
        list(open_rows(path, kind.columns))
    with pytest.raises(RowError) as empty:
        parse_report(kind, _row(passed="true", healthy=""), "lan")
    assert "healthy" in str(empty.value)
    stated = parse_report(kind, _row(passed="true", healthy="false"), "lan").message
    assert (stated.passed, stated.healthy) == (True, False)


def test_a_registration_row_may_say_the_applicant_is_no_citizen_and_is_refused_for_it(tmp_path):
    """The citizen column is optional (files without it are taken as citizens', as before); a row
    that says false is read as such and refused by the rules, naming the field. Before, a file
    with the column was refused whole ("unknown column(s) citizen")."""
    from datetime import date

    from client.csvio import REGISTRATION_COLUMNS, open_rows
    from domain.config import Formasi
    from domain.registration import check_registration

    person = "3201015708980001,Ani,1998-08-17,P,S1,Teknik Informatika,3.4,F1"
    path = tmp_path / "sscasn.csv"
    path.write_text(
        "nik,name,birth_date,gender,education_level,major,gpa,formasi_code,citizen\n"
        + "".join(f"{person},{cell}\n" for cell in ("false", "", "true", "mungkin")),
        encoding="utf-8",
    )
    formasi = Formasi(
        code="F1",
        jabatan="Pranata Komputer Ahli Pertama",
        unit="Dinas",
        education_level="S1",
        majors=["Teknik Informatika"],
        quota=1,
    )
    applied = date(2027, 8, 10)
    foreign, unsaid, citizen, unclear = list(open_rows(path, REGISTRATION_COLUMNS))
    refused = check_registration(parse_registration(foreign), formasi, applied)
    assert [(r.field, r.value) for r in refused] == [("citizen", "false")]
    for row in (unsaid, citizen):
        assert check_registration(parse_registration(row), formasi, applied) == []
    with pytest.raises(RowError, match="citizen"):
        parse_registration(unclear)


def test_a_component_corrected_twice_is_refused_not_read_as_the_last():
    with pytest.raises(RowError) as caught:
        parse_report(
            REPORT_KINDS["appeal-answer"],
            _row(accepted="true", corrected_scores="cat:490|praktik:85|cat:400"),
            "v",
        )
    [refusal] = caught.value.refusals
    assert "corrected_scores: 'cat' is given twice" in refusal.reason
