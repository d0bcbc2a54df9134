"""A score is a number wherever a report is read: true and false are refused, not read as 1 and 0.

The journey reads its updates strictly (tests/timeskip/test_strict_messages.py); the gateway's
JSON and the operator's report files are read by the same models in pydantic's lax mode, where
`true` was a TKP of 1 and an SKB score of 1.0.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from domain.messages import AppealAnswer, PanelScoreReport, SkbScoreReport, SkdReport

IDS = {"report_id": "r-1", "reported_by": "cat-bkn"}
CASES = [
    ("SKD tkp", SkdReport, {"twk": 65, "tiu": 80, "tkp": True}, "tkp"),
    ("SKD twk", SkdReport, {"twk": False, "tiu": 80, "tkp": 166}, "twk"),
    ("SKB score", SkbScoreReport, {"component": "cat", "score": True}, "score"),
    (
        "panel score",
        PanelScoreReport,
        {"component": "w", "panellist": "p1", "score": False},
        "score",
    ),
    (
        "a sanggah's correction",
        AppealAnswer,
        {"accepted": True, "corrected_scores": {"cat": True}},
        "corrected_scores.cat",
    ),
]


@pytest.mark.parametrize(
    ("model", "fields", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("read", ["python", "json"])
def test_true_or_false_is_not_a_score(model, fields, field, read):
    data = {**IDS, **fields}
    with pytest.raises(ValidationError) as err:
        if read == "json":
            model.model_validate_json(json.dumps(data))
        else:
            model.model_validate(data)
    (problem,) = err.value.errors()
    assert ".".join(map(str, problem["loc"])) == field
    assert "is not a score: send the number" in problem["msg"]


def test_a_score_written_as_text_in_a_report_file_is_still_read():
    skd = SkdReport.model_validate({**IDS, "twk": "65", "tiu": "80", "tkp": "166"})
    assert (skd.twk, skd.tiu, skd.tkp) == (65, 80, 166)
    assert SkbScoreReport.model_validate({**IDS, "component": "cat", "score": "80.5"}).score == 80.5


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "nan", "Infinity"])
@pytest.mark.parametrize(
    ("model", "fields", "field"),
    [
        (SkbScoreReport, {"component": "cat"}, "score"),
        (PanelScoreReport, {"component": "w", "panellist": "p1"}, "score"),
        (
            AppealAnswer,
            {"accepted": True, "corrected_scores": {"cat": None}},
            "corrected_scores.cat",
        ),
    ],
    ids=["SKB score", "panel score", "a sanggah's correction"],
)
def test_nan_or_an_infinity_is_not_a_score(model, fields, field, value):
    data = {**IDS, **fields}
    if "corrected_scores" in data:
        data["corrected_scores"] = {"cat": value}
    else:
        data["score"] = value
    with pytest.raises(ValidationError) as err:
        model.model_validate(data)
    (problem,) = err.value.errors()
    assert ".".join(map(str, problem["loc"])) == field
    assert "finite number" in problem["msg"]
