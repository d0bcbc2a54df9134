"""Interview panels without conflicts (issue 16): the draw, conflicts, blind codes, flags and the
committee's review, as the journey's validator and handler apply them (domain/panels.py,
domain/sheet.py), without Temporal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.codes import Stage
from domain.config import ConfigError
from domain.messages import ConflictDeclaration, PanelReview, PanelScoreReport
from domain.objectivity import outlier
from domain.panels import assigned_panel, candidate_code, panel_order
from domain.sheet import (
    conflict_refusal,
    flag_scores,
    panel_of,
    refusal,
    sender_refusal,
    unreviewed_flags,
    with_report,
    without_late_panel_changes,
)
from tests.domain.test_sheet import T0, sheet
from tests.roundkit import REPORTERS, compressed_round, formasi
from workflows.round import journey_rules

POOL = ["p-ani", "p-budi", "p-citra", "p-dewi", "p-eko"]
PANEL = {
    "name": "wawancara",
    "kind": "panel",
    "weight": 10,
    "max_score": 100,
    "panellists": POOL,
    "assign": 3,
    "min_panellists": 2,
    "outlier_margin": 25,
}
SKB = [
    {"name": "cat", "kind": "score", "weight": 60, "max_score": 500},
    {"name": "praktik", "kind": "score", "weight": 30, "max_score": 100},
    PANEL,
    {"name": "health", "kind": "gate"},
]
SECONDS = {
    n: (i * 60, i * 60 + 60)
    for i, n in enumerate(("registration", "administration", "skd", "skb", "filing", "latsar"))
}


def _config(**panel):
    skb = [*SKB[:2], {**PANEL, **panel}, SKB[3]]
    return compressed_round(
        "PANEL",
        [formasi("F1", 1)],
        SECONDS,
        t0=T0,
        skb=skb,
        extra={
            "instansi_kind": "pusat",
            "reporters": {**REPORTERS, "wawancara": POOL},
            "identities": {},
        },
    )


RULES = journey_rules(_config())
COMPONENT = RULES.skb.component("wawancara")
SEED = 20261202
OPERATOR = REPORTERS["operator"][0]


def _at_skb(**facts):
    return sheet(Stage.SKB, panel_seeds={"wawancara": SEED}).but(**facts)


def _score(p: str, score: float, by: str | None = None) -> PanelScoreReport:
    return PanelScoreReport(
        report_id=f"s-{p}", reported_by=by or p, component="wawancara", panellist=p, score=score
    )


def _conflict(p: str, by: str | None = None) -> ConflictDeclaration:
    return ConflictDeclaration(
        report_id=f"c-{p}", reported_by=by or p, component="wawancara", panellist=p, kind="family"
    )


def test_the_draw_is_the_seeds_order_of_the_pool_whatever_order_the_pool_is_written_in():
    assert panel_order(POOL, SEED) == panel_order(list(reversed(POOL)), SEED)
    assert assigned_panel(POOL, SEED, 3, set()) == panel_order(POOL, SEED)[:3]
    # Reproducible: anyone with the pool and the recorded seed draws the same panel.
    assert panel_of(_at_skb(), COMPONENT) == assigned_panel(POOL, SEED, 3, ())
    assert len(set(panel_order(POOL, s)[0] for s in range(40))) > 1  # the seed matters


def test_a_conflict_takes_the_next_panellist_of_the_same_order():
    order = panel_order(POOL, SEED)
    declared = with_report(_at_skb(), _conflict(order[1]))
    assert panel_of(declared, COMPONENT) == [order[0], order[2], order[3]]


def test_a_panellist_with_a_conflict_is_refused_into_the_record_and_the_score_does_not_count():
    order = panel_order(POOL, SEED)
    declared = with_report(_at_skb(), _conflict(order[0]))
    score = _score(order[0], 90)
    assert refusal(declared, score, RULES, T0) is None  # taken by the update ...
    reason = conflict_refusal(declared, score, RULES)
    assert reason is not None and "conflict of interest" in reason and "family" in reason
    assert with_report(declared, score).panel == declared.panel  # ... but not counted


@pytest.mark.parametrize(
    ("case", "report", "reason"),
    [
        ("a panellist not drawn", "outsider", "is not on this applicant's wawancara panel"),
        ("a score sent with another's key", "proxy", "scores with their own key"),
    ],
)
def test_scores_from_outside_the_panel_are_refused(case, report, reason):
    order = panel_order(POOL, SEED)
    report = _score(order[4], 80) if report == "outsider" else _score(order[0], 80, by=order[1])
    problem = refusal(_at_skb(), report, RULES, T0)
    assert problem is not None and reason in problem, (case, problem)


def test_a_conflict_is_declared_before_scoring_or_found_by_the_committee_which_strikes_the_score():
    order = panel_order(POOL, SEED)
    scored = with_report(_at_skb(), _score(order[0], 80))
    late = refusal(scored, _conflict(order[0]), RULES, T0)
    assert late is not None and "declared before scoring" in late
    found = with_report(scored, _conflict(order[0], by=OPERATOR))
    assert refusal(scored, _conflict(order[0], by=OPERATOR), RULES, T0) is None
    assert order[0] not in found.panel["wawancara"]
    assert found.struck["wawancara"][order[0]].score == 80
    other = refusal(_at_skb(), _conflict(order[0], by=order[1]), RULES, T0)
    assert other is not None and "may not declare a conflict for" in other


def test_the_journey_flags_by_the_evaluation_reports_rule():
    # One rule (domain/objectivity.py) for the journey's flags and the evaluation report: the
    # issue's panel 83, 71, 20 with a margin of 25 flags the 20 alone.
    assert outlier({"a": 83, "b": 71, "c": 20}, 25) == ["c"]


def test_a_flagged_score_waits_for_the_committee_which_keeps_it_or_has_it_scored_again():
    order = panel_order(POOL, SEED)
    s = _at_skb()
    for p, score in zip(order[:3], (83, 71, 20), strict=True):
        s = flag_scores(with_report(s, _score(p, score)), RULES)
    assert list(s.flags["wawancara"]) == [order[2]]
    assert unreviewed_flags(s) == {"wawancara": [order[2]]}
    review = PanelReview(
        report_id="r", reported_by=OPERATOR, component="wawancara", panellist=order[2], keep=False
    )
    assert refusal(s, review, RULES, T0) is None
    reviewed = with_report(s, review)
    assert unreviewed_flags(reviewed) == {}
    assert order[2] not in reviewed.panel["wawancara"]
    assert panel_of(reviewed, COMPONENT) == [order[0], order[1], order[3]]  # the next is drawn
    again = refusal(reviewed, review.model_copy(update={"report_id": "r2"}), RULES, T0)
    assert again is not None and "already reviewed" in again
    unflagged = refusal(reviewed, review.model_copy(update={"panellist": order[0]}), RULES, T0)
    assert unflagged is not None and "no flagged" in unflagged


def test_the_blind_code_is_keyed_and_stable_and_is_not_the_registration_number():
    key = b"k" * 32
    code = candidate_code(key, "R1", "A1")
    assert code == candidate_code(key, "R1", "A1") and code.startswith("K-") and "A1" not in code
    assert code != candidate_code(b"x" * 32, "R1", "A1") != candidate_code(key, "R1", "A2")


@pytest.mark.parametrize(
    ("panel", "reason"),
    [
        ({"assign": 1}, "assign 1 is below min_panellists 2"),
        ({"panellists": POOL[:3]}, "cannot give 3 to each applicant with one to spare"),
        ({"panellists": [*POOL, "p-ani"]}, "listed twice"),
    ],
)
def test_a_panel_that_cannot_be_drawn_is_refused_in_the_round_file(panel, reason):
    with pytest.raises((ConfigError, ValueError), match=reason):
        _config(**panel)


def test_every_panellist_of_the_pool_must_be_a_reporter_of_the_panel():
    with pytest.raises((ConfigError, ValueError), match="not reporters of wawancara"):
        compressed_round(
            "PANEL",
            [formasi("F1", 1)],
            SECONDS,
            t0=T0,
            skb=SKB,
            extra={
                "instansi_kind": "pusat",
                "reporters": {**REPORTERS, "wawancara": POOL[:4]},
                "identities": {},
            },
        )


def test_a_blind_report_may_be_signed_for_the_candidates_code_only_when_the_journey_knows_it():
    """The audiences a report to a journey may be signed for: the journey always; the candidate's
    code only for a panellist's report and only when the journey's start carries the code."""
    from domain.messages import BLIND_REPORTS, AdminReport
    from domain.panels import candidate_audience, report_audiences

    journey, code = "R/applicant/A", "K-0123456789"
    assert report_audiences(journey, "R", code, blind=True) == (journey, "R/candidate/" + code)
    assert candidate_audience("R", code) == "R/candidate/" + code
    assert report_audiences(journey, "R", "", blind=True) == (journey,)  # an older start
    assert report_audiences(journey, "R", code, blind=False) == (journey,)
    assert set(BLIND_REPORTS) == {PanelScoreReport, ConflictDeclaration}
    assert AdminReport not in BLIND_REPORTS and PanelReview not in BLIND_REPORTS


def test_a_start_without_a_candidate_code_dumps_as_before_so_recorded_signatures_hold():
    """A journey's start signed before the code was carried must still verify: the field is left
    out of the dump while empty, and is in it, signed, when set."""
    from datetime import date

    from domain.messages import JourneyStart
    from domain.signing import verify
    from tests.roundkit import OPERATOR, REGISTRATION_OPEN, TEST_KEYRING, registration
    from workflows.round import journey_rules

    config = compressed_round("R1", [formasi("F1", 1)], REGISTRATION_OPEN)
    start = JourneyStart(
        round_id="R1",
        applicant_id="A1",
        registration=registration(1, "F1"),
        formasi=config.formasi_by_code("F1"),
        rules=journey_rules(config),
        registered_by=OPERATOR,
        tmt=date(2027, 3, 1),
    )
    assert "candidate_code" not in start.model_dump(mode="json")
    coded = start.model_copy(update={"candidate_code": "K-0123456789"})
    assert coded.model_dump(mode="json")["candidate_code"] == "K-0123456789"
    signed = TEST_KEYRING.sign(coded, "R1/applicant/A1")
    keys = TEST_KEYRING.public_keys()
    assert verify(signed, keys, "R1/applicant/A1") is None
    tampered = signed.model_copy(update={"candidate_code": "K-9999999999"})
    assert verify(tampered, keys, "R1/applicant/A1") is not None


def test_a_signature_is_tried_for_each_audience_in_turn_until_one_holds():
    """The journey's own id first: a report signed for it is checked once; the code only when the
    id failed; the first failure is the one named."""
    from domain.signing import problem_for_every

    asked: list[str] = []

    def check(audience: str) -> str | None:
        asked.append(audience)
        return None if audience == "holds" else f"not for {audience}"

    assert problem_for_every(check, ["holds", "never asked"]) is None
    assert asked == ["holds"]
    assert problem_for_every(check, ["first", "holds"]) is None
    assert problem_for_every(check, ["first", "second"]) == "not for first"


def test_a_score_exactly_the_margin_from_the_rest_of_its_panel_is_not_flagged():
    # 7.2 and 32.2 are 25 apart, the margin, as written; in binary floating point they came out
    # 25.000000000000004 apart, and journeys recorded before patch panel-margin-decimal flagged
    # both (they still do on replay: exact=False).
    order = panel_order(POOL, SEED)
    s = _at_skb()
    for p, score in zip(order[:2], (7.2, 32.2), strict=True):
        s = with_report(s, _score(p, score))

    assert flag_scores(s, RULES).flags == {}
    assert sorted(flag_scores(s, RULES, exact=False).flags["wawancara"]) == sorted(order[:2])


def _received(s, report, at):
    """`s` with `report` taken at `at`, as the journey records when it accepted a report."""
    return with_report(s, report).but(received_at={**s.received_at, report.report_id: at})


def test_a_conflict_or_review_taken_after_the_skb_closed_strikes_no_score():
    order = panel_order(POOL, SEED)
    closed = T0 + timedelta(minutes=10)
    before, after = closed - timedelta(seconds=1), closed + timedelta(seconds=1)
    s = _at_skb()
    for p, score in zip(order[:3], (83, 71, 20), strict=True):
        s = flag_scores(_received(s, _score(p, score), before), RULES)
    review = PanelReview(
        report_id="r", reported_by=OPERATOR, component="wawancara", panellist=order[2], keep=False
    )
    late = _received(_received(s, _conflict(order[0], by=OPERATOR), after), review, after)
    assert set(late.struck["wawancara"]) == {order[0], order[2]}  # as taken, before the close
    undone, changes = without_late_panel_changes(late, closed)
    assert [c.report_id for c in changes] == [f"c-{order[0]}", "r"]
    assert {p: r.score for p, r in undone.panel["wawancara"].items()} == {
        order[0]: 83,
        order[1]: 71,
        order[2]: 20,
    }
    assert (undone.conflicts, undone.reviews, undone.struck) == ({}, {}, {})
    assert unreviewed_flags(undone) == {"wawancara": [order[2]]}  # the flag waits, unreviewed


def test_a_score_struck_before_the_close_stays_struck_whatever_comes_after_it():
    order = panel_order(POOL, SEED)
    closed = T0 + timedelta(minutes=10)
    s = _received(_at_skb(), _score(order[0], 80), closed - timedelta(seconds=2))
    s = _received(s, _conflict(order[0], by=OPERATOR), closed - timedelta(seconds=1))
    assert without_late_panel_changes(s, closed) == (s, [])
    s = _received(s, _conflict(order[1]), closed + timedelta(seconds=1))
    undone, changes = without_late_panel_changes(s, closed)
    assert [c.panellist for c in changes] == [order[1]]
    assert order[0] not in undone.panel["wawancara"]
    assert undone.struck["wawancara"][order[0]].score == 80


@pytest.mark.parametrize(
    ("case", "panellist", "by", "reason"),
    [
        ("a name of the sender's choosing", "ghost", "p-ani", "scores with their own key"),
        ("another of the pool", "p-budi", "p-ani", "scores with their own key"),
        ("the sender's own score", "p-ani", "p-ani", None),
    ],
)
def test_a_pool_without_a_draw_takes_each_score_from_its_own_panellist(case, panellist, by, reason):
    # A pool whose `assign` was left out: one key of the pool made a panel of two, scoring as
    # "ghost-1" and "ghost-2", and the mean of at least two panellists was one person's.
    rules = journey_rules(_config(assign=0))
    report = _score(panellist, 90, by=by)
    problem = refusal(_at_skb(), report, rules, T0)
    if reason is None:
        assert problem is None and sender_refusal(report, rules) is None, case
    else:
        assert problem is not None and reason in problem, (case, problem)
        assert sender_refusal(report, rules) is not None, case


@pytest.mark.parametrize("assign", [0, 3])
def test_another_pool_member_cannot_learn_whether_a_panellist_has_scored(assign):
    """The refusal of a score in another panellist's name is the same whether that panellist
    has scored or not: "already scored" came first and answered the question (review of 12-07)."""
    rules = journey_rules(_config(assign=assign))
    order = panel_order(POOL, SEED)
    scorer, prober = order[0], next(p for p in POOL if p != order[0])
    scored = with_report(_at_skb(), _score(scorer, 80))
    probe = _score(scorer, 90, by=prober)
    refusals = {refusal(s, probe, rules, T0) for s in (_at_skb(), scored)}
    assert refusals == {f"panellist {scorer} scores with their own key, not {prober}'s"}, refusals
