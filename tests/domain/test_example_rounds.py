"""The ministry's example round (examples/round-kementerian.toml, the demo's interviewed round) is
a valid central round whose interview is a panel drawn from a pool with a spare, within the
central limits; made regional, the same SKB is refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from domain.config import ComponentKind, InstansiKind, load_round_config, parse_round_config

CENTRAL = Path(__file__).resolve().parents[2] / "examples" / "round-kementerian.toml"


def test_the_ministry_round_interviews_with_a_pool_of_signed_panellists():
    config = load_round_config(CENTRAL)
    [panel] = [c for c in config.skb.components if c.kind == ComponentKind.PANEL]
    assert config.instansi_kind == InstansiKind.PUSAT
    assert (panel.assign, panel.outlier_margin, panel.weight) == (3, 20, 10)
    assert len(panel.panellists) >= panel.assign + 1
    assert set(panel.panellists) <= set(config.reporters[panel.name])


def test_the_same_interview_is_refused_in_a_regional_round():
    doc = tomllib.loads(CENTRAL.read_text(encoding="utf-8"))
    doc["instansi_kind"] = "daerah"
    with pytest.raises(ValueError, match="no interview"):
        parse_round_config(doc, "regional copy")
