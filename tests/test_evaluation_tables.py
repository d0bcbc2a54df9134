"""The round evaluation's tables (auditing/evaluation.py) and its files (apps/evaluation.py),
from a small round's facts written by hand; every expected figure is worked out beside it."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from markupsafe import escape

from apps.evaluation import write_report
from auditing.evaluation import (
    ALL,
    JourneyFacts,
    ReadModelFacts,
    RoundFacts,
    SkmTotals,
    evaluation,
    percentile,
)
from auditing.history import Message
from domain.codes import FinalCode, Stage, Terminal
from domain.messages import (
    AppealFiling,
    Decision,
    FormasiResult,
    JourneyState,
    PanelScoreReport,
    RoundState,
)
from domain.signing import Keyring
from tests.roundkit import REPORTERS, compressed_round, formasi
from tests.roundkit import test_signer as signer_of

T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 08.00 WIB
DAY = timedelta(days=1)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
ROUND = "eval-hand"
PANELLISTS = ["p1", "p2", "p3", "q1", "q2", "q3", "q4"]

CONFIG = compressed_round(
    ROUND,
    [formasi("F1", 2), formasi("F2", 1)],
    {
        n: (i * 100, i * 100 + 90)
        for i, n in enumerate(("registration", "administration", "skd", "skb", "filing", "latsar"))
    },
    t0=T0,
    skb=[
        {"name": "cat", "kind": "score", "weight": 90, "max_score": 500},
        {"name": "wawancara", "kind": "panel", "weight": 10, "max_score": 100},
        {"name": "health", "kind": "gate"},
    ],
    extra={
        "instansi_kind": "pusat",  # a central agency: an interview of at most 10%
        "reporters": {
            **{k: v for k, v in REPORTERS.items() if k != "praktik"},
            "wawancara": PANELLISTS,
        },
        "identities": Keyring(
            [signer_of(i) for i in sorted({i for ids in REPORTERS.values() for i in ids})]
            + [signer_of(p) for p in PANELLISTS]
        ).public_keys(),
    },
)


def d(at: datetime, stage: str, outcome: str, actor: str = "system", **inputs) -> Decision:
    return Decision(at=at, stage=stage, outcome=outcome, actor=actor, input=inputs)


def state(applicant: str, formasi_code: str, **fields) -> JourneyState:
    return JourneyState(
        round_id=ROUND,
        applicant_id=applicant,
        formasi_code=formasi_code,
        stage=Stage.ENDED,
        **fields,
    )


def panel(at: datetime, panellist: str, score: float) -> Message:
    report = PanelScoreReport(
        report_id=f"w-{panellist}",
        reported_by=panellist,
        component="wawancara",
        panellist=panellist,
        score=score,
    )
    return Message(at, "update", "report_panel_score", report, update_id=f"u-{panellist}")


def review(at: datetime, panellist: str, keep: bool) -> Message:
    # The committee's review as the journey takes it (domain.messages.PanelReview's fields).
    content = SimpleNamespace(
        report_id=f"review-{panellist}", component="wawancara", panellist=panellist, keep=keep
    )
    return Message(at, "update", "review_panel_score", content, update_id=f"r-{panellist}")


def filing(at: datetime, report_id: str) -> Message:
    content = AppealFiling(report_id=report_id, reported_by="sscasn", reason="please look again")
    return Message(at, "update", "file_appeal", content, update_id=report_id)


# A (F1): registered 08.10, MS, P/L in SKD, SKB, P/L, NIP, PNS; interviewed by p1 83, p2 71, p3 20.
# B (F1): registered 08.20, TMS, sanggah filed and accepted (MS), then T/L in SKD.
# C (F1): registered 09.10, TMS, no sanggah.
# D (F2): registered 09.15, MS, P/L in SKD, SKB, TL; final sanggah filed and rejected. Its panel
# q1 90, q2 85, q3 30: the journey flagged q3 (57.5 from 87.5), the committee struck it and q4
# scored 88.
# E: refused at registration 09.20 (counts as a refused registration only).
A = JourneyFacts(
    "A",
    "F1",
    T0 + 10 * MIN,
    [
        d(T0 + 10 * MIN, "registered", "registered", "sscasn"),
        d(T0 + DAY, "admin_check", "MS", "bkpsdm"),
        d(T0 + 3 * DAY, "skd_ranking", "P/L", "formasi"),
        d(T0 + 5 * DAY, "skb", "completed"),
        d(T0 + 6 * DAY, "final_ranking", "P/L", "formasi"),
    ],
    state(
        "A",
        "F1",
        final_code=FinalCode.PASSED,
        placed_formasi="F1",
        nip="1998",
        terminal=Terminal.PNS,
    ),
    [panel(T0 + 4 * DAY, "p1", 83), panel(T0 + 4 * DAY, "p2", 71), panel(T0 + 4 * DAY, "p3", 20)],
)
B = JourneyFacts(
    "B",
    "F1",
    T0 + 20 * MIN,
    [
        d(T0 + 20 * MIN, "registered", "registered", "sscasn"),
        d(T0 + DAY, "admin_check", "TMS", "bkpsdm"),
        d(T0 + DAY + 5 * HOUR, "admin_appeal", "MS", "bkpsdm"),
        d(T0 + 3 * DAY, "skd_ranking", "T/L", "formasi"),
    ],
    state("B", "F1", terminal=Terminal.SKD_FAILED),
    [filing(T0 + DAY + HOUR, "appeal-B")],
)
C = JourneyFacts(
    "C",
    "F1",
    T0 + 70 * MIN,
    [
        d(T0 + 70 * MIN, "registered", "registered", "sscasn"),
        d(T0 + DAY, "admin_check", "TMS", "bkpsdm"),
        d(T0 + 4 * DAY, "admin_appeal", "TMS", reason="TMS; no appeal within the appeal window"),
    ],
    state("C", "F1", terminal=Terminal.TMS),
)
D = JourneyFacts(
    "D",
    "F2",
    T0 + 75 * MIN,
    [
        d(T0 + 75 * MIN, "registered", "registered", "sscasn"),
        d(T0 + DAY, "admin_check", "MS", "bkpsdm"),
        d(T0 + 3 * DAY, "skd_ranking", "P/L", "formasi"),
        d(T0 + 4 * DAY + 2 * MIN, "skb", "score flagged", component="wawancara", panellist="q3"),
        d(
            T0 + 4 * DAY + HOUR,
            "skb",
            "panel changed",
            "panitia",
            component="wawancara",
            panellist="q3",
            struck_score=30.0,
        ),
        d(T0 + 5 * DAY, "skb", "completed"),
        d(T0 + 6 * DAY, "final_ranking", "TL", "formasi"),
        d(T0 + 6 * DAY + 2 * HOUR, "final_appeal", "rejected", "bkpsdm"),
    ],
    state("D", "F2", final_code=FinalCode.NOT_PASSED, terminal=Terminal.NOT_PASSED),
    [
        panel(T0 + 4 * DAY, "q1", 90),
        panel(T0 + 4 * DAY + MIN, "q2", 85),
        panel(T0 + 4 * DAY + 2 * MIN, "q3", 30),
        review(T0 + 4 * DAY + HOUR, "q3", keep=False),
        panel(T0 + 4 * DAY + 2 * HOUR, "q4", 88),
        filing(T0 + 6 * DAY + HOUR, "appeal-D"),
    ],
)
E = JourneyFacts(
    "E", "F2", T0 + 80 * MIN, [d(T0 + 80 * MIN, "registered", "refused")], state("E", "F2")
)

ROUND_DECISIONS = [
    d(
        T0 + 2 * HOUR,
        "registration",
        "registration extended",
        "panitia",
        window="registration",
        new_closes="2026-12-03T01:00:00+00:00",
        reason="=portal outage of two hours",  # a formula-like reason: guarded in the CSV
    ),
    d(
        T0 + 3 * DAY,
        "skd",
        "skd closed early",
        "panitia",
        window="skd",
        reason="all results are in",
    ),
]
ROUND_STATE = RoundState(
    round_id=ROUND,
    phase="closed",
    schedule=CONFIG.schedule,
    closed=[],
    formasi_results={
        "F1": FormasiResult(formasi_code="F1", vacancies=1, candidates=[], winners=["A"]),
        "F2": FormasiResult(formasi_code="F2", vacancies=1, candidates=[], winners=[]),
    },
    offers={f"{ROUND}/offer/X9/F2": "declined"},
    decisions=ROUND_DECISIONS,
)
FACTS = RoundFacts(CONFIG, ROUND_STATE, ROUND_DECISIONS, [A, B, C, D, E])
READ = ReadModelFacts(
    codes={"F1": Counter({"PNS": 1, "T/L": 1, "TMS": 1}), "F2": Counter({"TL": 1})},
    # Two answers of 4 and 3 to each of the nine elements: every NRR 3.5, IKM 3.5 * 25 = 87.5 (B).
    skm=[SkmTotals("registration", "Pemerintah Kabupaten Uji", 2, [7] * 9)],
)


@pytest.fixture(scope="module")
def report():
    return evaluation(FACTS, READ, outlier_margin=25)


def rows(report, section: str, table: int = 0) -> list[tuple]:
    return report.section(section).tables[table].rows


def test_the_funnel_counts_who_reached_each_step_per_formasi(report):
    funnel = {(r[0], r[1]): r[3] for r in rows(report, "funnel")}

    assert [funnel[("F1", s)] for s in ("registered", "admin_ms", "skd_sat", "skd_pl")] == [
        3,
        2,
        2,
        1,
    ]
    assert [funnel[("F1", s)] for s in ("skb_completed", "final_seat", "nip", "pns")] == [
        1,
        1,
        1,
        1,
    ]
    assert [funnel[("F2", s)] for s in ("registered", "skd_pl", "final_seat")] == [1, 1, 0]
    assert funnel[(ALL, "registered")] == 4  # E was refused: not registered
    assert rows(report, "funnel", 1) == [
        ("F1", "PNS", 1),
        ("F1", "T/L", 1),
        ("F1", "TMS", 1),
        ("F2", "TL", 1),
    ]


def test_nearest_rank_percentiles():
    assert (percentile([4, 1, 3, 2], 50), percentile([4, 1, 3, 2], 95)) == (2, 4)
    assert percentile([7], 95) == 7


def test_stage_durations_run_from_the_previous_decision(report):
    durations = {r[0]: r[1:] for r in rows(report, "durations")}

    # admin_check: A 1 day - 10 min = 85800 s, B 85200, C 1 day - 70 min = 82200, D 81900:
    # p50 is the 2nd of 4 sorted (82200), p95 the 4th (85800).
    assert durations["admin_check"] == (4, 82200, 85800)
    # admin_appeal: B 5 h after its TMS, C 3 days after (the window closed unanswered).
    assert durations["admin_appeal"] == (2, 5 * 3600, 3 * 86400)
    assert durations["registered"] == (5, 0, 0)  # decided at the start of each journey


def test_appeal_rates_and_outcomes(report):
    table = {(r[0], r[1]): r[2:] for r in rows(report, "appeals")}

    # could file, filed, rate, accepted, rejected, not answered, pending
    assert table[("admin sanggah", ALL)] == (2, 1, 0.5, 1, 0, 0, 0)  # B and C were TMS, B filed
    assert table[("final sanggah", ALL)] == (2, 1, 0.5, 0, 1, 0, 0)  # A and D had a result
    assert table[("final sanggah", "F1")] == (1, 0, 0.0, 0, 0, 0, 0)
    assert table[("admin sanggah", "F2")] == (0, 0, None, 0, 0, 0, 0)


def test_extensions_and_early_closes_with_their_reasons(report):
    assert [r[1:] for r in rows(report, "extensions")] == [
        (
            "registration",
            "extended",
            "panitia",
            "2026-12-03T01:00:00+00:00",
            "=portal outage of two hours",
        ),
        ("skd", "closed early", "panitia", "", "all results are in"),
    ]


def test_registration_load_per_hour_in_the_instansi_zone_with_the_peak(report):
    assert rows(report, "registration") == [
        ("2026-12-01T08:00:00+07:00", 2, 0),  # A 08.10, B 08.20
        ("2026-12-01T09:00:00+07:00", 2, 1),  # C 09.10, D 09.15; E refused 09.20
    ]
    # Two hours with 2 each: the earlier is the peak.
    assert "Peak: 2 registrations in the hour from 2026-12-01T08:00:00+07:00" in (
        report.section("registration").summary
    )


def test_panel_agreement_bias_and_the_flagged_score(report):
    # One applicant: no alpha. Values 83 71 20 around 58: deviations 25 13 -38, sum of squares
    # 2238; D_o = D_e = 2238, as for any single unit, so the formula's 0 would say nothing.
    f1, f2 = rows(report, "panels", 0)
    # formasi, component, applicants, scores, alpha, margin, flagged, reviews, conflicts, struck
    assert f1 == ("F1", "wawancara", 1, 3, None, 25.0, 1, 0, 0, 0)
    assert f2 == ("F2", "wawancara", 1, 4, None, 25.0, 1, 1, 0, 1)  # q3's struck score counts
    # p3: 20 - (83+71)/2 = -57; p1: 83 - 45.5 = 37.5; p2: 71 - 51.5 = 19.5.
    bias = {r[2]: r[4] for r in rows(report, "panels", 1) if r[0] == "F1"}
    assert bias == {"p1": 37.5, "p2": 19.5, "p3": -57.0}
    assert rows(report, "panels", 2) == [
        # A recorded no flag (a round before flags): the report applies the rule itself.
        ("F1", "wawancara", "A", "p3", 20, 77.0, 25.0, "computed", "no review recorded"),
        # D's flag as the journey recorded it, on the panel before the review (q4 came after).
        ("F2", "wawancara", "D", "q3", 30, 87.5, 25.0, "recorded", "struck, scored again"),
    ]


def test_the_margin_defaults_to_a_quarter_of_the_scale_when_neither_round_nor_operator_sets_it():
    f1, _ = rows(evaluation(FACTS, READ), "panels", 0)

    assert f1[5] == 25.0  # wawancara's max_score 100 / 4


def test_ikm_per_stage_and_instansi_from_the_survey_sums(report):
    assert [r[:6] for r in rows(report, "ikm")] == [
        ("registration", ALL, 2, 87.5, "B", "Baik"),
        ("registration", "Pemerintah Kabupaten Uji", 2, 87.5, "B", "Baik"),
    ]
    # 2 answers: figures that come close to the answers themselves are marked.
    assert {r[6] for r in rows(report, "ikm")} == {"yes: not for publication"}


def test_no_answers_yet_is_said_not_invented():
    section = evaluation(FACTS, ReadModelFacts(codes=READ.codes)).section("ikm")

    assert section.tables[0].rows == [] and section.note == "No answers yet."


def test_optimalisasi_and_seats_left_empty(report):
    table = {r[0]: r[1:] for r in rows(report, "optimalisasi")}

    # seats, winners, vacancies, offers, accepted, declined, pending, P/L-2, given up, filled, empty
    assert table["F1"] == (2, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1)
    assert table["F2"] == (1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 1)


def test_the_files_are_the_same_bytes_for_the_same_facts_and_guard_formulas(tmp_path):
    first = write_report(evaluation(FACTS, READ, 25), tmp_path / "one", "basis")
    second = write_report(evaluation(FACTS, READ, 25), tmp_path / "two", "basis")

    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), (
            name
        )
    html = first.index.read_text()
    assert (
        html.count("<svg") == 8
    )  # funnel, durations, appeals, registration, alpha, bias, IKM, seats
    assert "'=portal outage" in (tmp_path / "one" / "extensions.csv").read_text()
    assert second.index.name == "index.html"


def test_a_sanggah_left_unanswered_or_still_open_is_counted_so():
    # F: TMS, sanggah filed, not answered in time (the journey ends TMS by a system decision).
    # G: a final result, a final sanggah filed, not answered in time.
    # H: TMS, sanggah filed, the journey still waits for the answer.
    f = JourneyFacts(
        "F",
        "F1",
        T0,
        [
            d(T0, "registered", "registered", "sscasn"),
            d(T0 + DAY, "admin_check", "TMS", "bkpsdm"),
            d(T0 + 3 * DAY, "admin_appeal", "TMS", reason="the appeal was not answered"),
        ],
        state("F", "F1", terminal=Terminal.TMS),
        [filing(T0 + DAY + HOUR, "appeal-F")],
    )
    g = JourneyFacts(
        "G",
        "F2",
        T0,
        [
            d(T0, "registered", "registered", "sscasn"),
            d(T0 + 6 * DAY, "final_ranking", "TL", "formasi"),
            d(T0 + 8 * DAY, "final_appeal", "not answered", reason="not answered in its time"),
            d(T0 + 8 * DAY, "final_appeal", "TL", "formasi"),
        ],
        state("G", "F2", final_code=FinalCode.NOT_PASSED, terminal=Terminal.NOT_PASSED),
        [filing(T0 + 6 * DAY + HOUR, "appeal-G")],
    )
    h = JourneyFacts(
        "H",
        "F1",
        T0,
        [
            d(T0, "registered", "registered", "sscasn"),
            d(T0 + DAY, "admin_check", "TMS", "bkpsdm"),
        ],
        state("H", "F1").model_copy(update={"stage": Stage.ADMIN_APPEAL}),
        [filing(T0 + DAY + HOUR, "appeal-H")],
    )
    facts = RoundFacts(CONFIG, None, [], [f, g, h])

    table = {(r[0], r[1]): r[2:] for r in rows(evaluation(facts, READ), "appeals")}

    # could file, filed, rate, accepted, rejected, not answered, pending
    assert table[("admin sanggah", ALL)] == (2, 2, 1.0, 0, 0, 1, 1)
    assert table[("final sanggah", ALL)] == (1, 1, 1.0, 0, 0, 1, 0)


def test_a_formasi_over_its_quota_is_named_not_netted_against_empty_seats():
    """Two placed by optimalisasi in F2's one seat (what a seat given up offered twice made
    possible before patch optimalisasi-seat-given-up-once): said by name, and F1's empty seat is
    not cancelled by F2's extra one."""
    placed = [
        JourneyFacts(
            name,
            "F1",
            T0,
            [d(T0, "registered", "registered", "sscasn")],
            state(name, "F1", final_code=FinalCode.PASSED_OPTIMALISASI, placed_formasi="F2"),
        )
        for name in ("X1", "X2")
    ]
    section = evaluation(
        RoundFacts(CONFIG, ROUND_STATE, ROUND_DECISIONS, placed), READ, outlier_margin=25
    ).section("optimalisasi")
    table = {r[0]: r[1:] for r in section.tables[0].rows}
    assert (table["F2"][-2], table["F2"][-1]) == (2, -1)
    assert "OVER QUOTA: F2 holds 2 for 1 seats." in section.summary
    assert "Seats left empty: 2 of 3." in section.summary  # F1's two, not 2 - 1


def _panel_journey(name: str, scores: dict[str, float], flags: list[str] = ()) -> JourneyFacts:
    at = T0 + 4 * DAY
    return JourneyFacts(
        name,
        "F1",
        T0,
        [d(T0, "registered", "registered", "sscasn")]
        + [d(at + MIN, "skb", "score flagged", component="wawancara", panellist=p) for p in flags],
        state(name, "F1"),
        [panel(at, p, score) for p, score in scores.items()],
    )


@pytest.mark.parametrize("flags", [[], ["p3", "p4"]], ids=["computed", "recorded"])
def test_a_flag_shows_the_mean_it_was_judged_against(flags):
    # 0 is flagged first, 78.33 from the mean of 100, 95 and 40; then 40, 57.5 from 97.5 (the
    # mean of 100 and 95). From 65, the mean of all three others, 40 is only the margin away.
    facts = RoundFacts(
        CONFIG, None, [], [_panel_journey("A", {"p1": 100, "p2": 95, "p3": 40, "p4": 0}, flags)]
    )

    flagged = {r[3]: r[5] for r in rows(evaluation(facts, READ, 25), "panels", 2)}

    assert flagged == {"p3": 97.5, "p4": 78.333}


def test_panel_figures_of_two_applicants_and_no_negative_zero():
    # a1: 80, 70; a2: 60, 50 (alpha 0.7 by hand in tests/domain/test_objectivity.py). Two
    # panellists: no z-score (it would be +-0.71 whatever the biases).
    # a3 adds R beside P and Q: R's bias -0.0002 is 0.0 at 3 decimals, never "-0.0".
    two = RoundFacts(
        CONFIG,
        None,
        [],
        [_panel_journey("A", {"p1": 80, "p2": 70}), _panel_journey("B", {"p1": 60, "p2": 50})],
    )
    e = evaluation(two, READ, 25)
    assert rows(e, "panels", 0)[0][4] == 0.7
    assert [(r[2], r[4], r[5]) for r in rows(e, "panels", 1)] == [
        ("p1", 10.0, None),
        ("p2", -10.0, None),
    ]
    near_zero = RoundFacts(
        CONFIG,
        None,
        [],
        [
            _panel_journey("A", {"p1": 80, "p2": 70, "p3": 74.9998}),
            _panel_journey("B", {"p1": 60, "p2": 50}),
        ],
    )
    bias = {r[2]: r[4] for r in rows(evaluation(near_zero, READ, 25), "panels", 1)}
    assert str(bias["p3"]) == "0.0"


def test_a_survey_stage_without_answers_is_named():
    section = evaluation(FACTS, READ).section("ikm")

    assert section.note == (
        "No answers yet at skd (Setelah SKD), end (Akhir seleksi): no IKM for them."
    )


def test_every_section_says_what_its_figures_are(tmp_path):
    written = write_report(evaluation(FACTS, READ, 25), tmp_path, "basis")
    html = written.index.read_text()

    assert all(s.explains and str(escape(s.explains)) in html for s in written.evaluation.sections)
    assert "Krippendorff&#39;s alpha with the interval metric" in html
    assert "nearest-rank" in html and "25 x the mean of the nine NRRs" in html


def test_nearest_rank_percentiles_of_one_two_and_a_hundred_values():
    assert (percentile([7], 50), percentile([7], 95)) == (7, 7)
    assert (percentile([9, 3], 50), percentile([9, 3], 95)) == (3, 9)
    # ceil(7/100 x 100) = 7 exactly; in floating point it was 7.000000000000001, giving 8.
    assert percentile(list(range(1, 101)), 7) == 7
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_registration_hours_are_counted_as_instants_across_a_summer_time_change():
    # Europe/Amsterdam falls back on 2026-10-25 at 01:00 UTC: 02:00-03:00 local happens twice.
    config = CONFIG.model_copy(update={"timezone": "Europe/Amsterdam"})
    fall = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 +02:00
    journeys = [
        JourneyFacts(n, "F1", at, [d(at, "registered", "registered", "sscasn")], state(n, "F1"))
        for n, at in (("A", fall), ("B", fall + HOUR), ("C", fall + 2 * HOUR))
    ]
    facts = RoundFacts(config, None, [], journeys)

    assert rows(evaluation(facts, READ), "registration") == [
        ("2026-10-25T02:00:00+02:00", 1, 0),
        ("2026-10-25T02:00:00+01:00", 1, 0),
        ("2026-10-25T03:00:00+01:00", 1, 0),
    ]
