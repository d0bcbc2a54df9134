"""Report files of the panel and sanggah kinds (client/csvio.py): each row as its message, and a
bad cell named."""

from __future__ import annotations

import pytest

from client.csvio import REPORT_KINDS, Row, RowError, parse_report


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
