"""The audit tools' visibility query (auditing.history.round_query): what it asks for, and the ids
and kinds it refuses before anything is sent to Temporal."""

from __future__ import annotations

import pytest

from auditing.history import AuditError, round_query


def test_the_query_names_the_round_and_the_kind():
    assert round_query("KAB-BDG-2024") == "RoundId = 'KAB-BDG-2024'"
    assert round_query("KAB-BDG-2024", "formasi") == (
        "RoundId = 'KAB-BDG-2024' AND CasnKind = 'formasi'"
    )
    # A national round's own workflows carry its national id as their RoundId.
    assert round_query("CASN-2026", "national-claim") == (
        "RoundId = 'CASN-2026' AND CasnKind = 'national-claim'"
    )


@pytest.mark.parametrize(
    "round_id",
    ["x' OR RoundId != '", "", "-leading-dash", "a" * 41, "KAB BDG", "kab/round"],
)
def test_a_round_id_that_is_not_one_is_refused_by_its_value(round_id):
    with pytest.raises(AuditError, match="is not a round or national id") as refused:
        round_query(round_id)
    assert repr(round_id) in str(refused.value)


def test_an_unknown_kind_is_refused_naming_the_kinds():
    with pytest.raises(AuditError, match=r"kind 'claims' is not one of .*national-claim"):
        round_query("KAB-BDG-2024", "claims")
