"""The national round's rules: instansi windows within the national ones, a bounded register."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.config import ConfigError, InstansiKind, load_round_config
from domain.digest import canonical_json
from domain.national import (
    DEFAULT_CLAIM_GRACE,
    MAX_ROUNDS,
    JoinedRound,
    NationalState,
    load_national_config,
    parse_national_config,
    schedule_disagreement,
)

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"
T0 = datetime(2027, 8, 1, 1, tzinfo=UTC)


def _window(a: int, b: int) -> dict:
    return {"opens": T0 + timedelta(days=a), "closes": T0 + timedelta(days=b)}


def _national(**windows: tuple[int, int]) -> dict:
    return {
        "national_id": "CPNS-2027",
        "name": "Seleksi CPNS Nasional 2027",
        "rule_version": "2024.1",
        "schedule": {name: _window(*span) for name, span in windows.items()},
    }


def test_the_example_rounds_lie_within_the_example_national_schedule():
    national = load_national_config(EXAMPLES / "national-2027.toml")
    for name in ("round-kabupaten.toml", "round-kementerian.toml"):
        assert (
            schedule_disagreement(national.schedule, load_round_config(EXAMPLES / name).schedule)
            == []
        )


@pytest.mark.parametrize(
    ("window", "days", "agrees"),
    [
        ("registration", (0, 19), True),  # the example's own registration window
        ("registration", (-1, 19), False),  # opens before the national registration
        ("registration", (0, 21), False),  # closes after it
        ("skd", (45, 76), True),
        ("skd", (45, 80), False),
    ],
)
def test_an_instansi_window_must_lie_within_the_national_window_of_its_name(window, days, agrees):
    national = parse_national_config(_national(registration=(0, 20), skd=(44, 80 - 1)))
    schedule = load_round_config(EXAMPLES / "round-kabupaten.toml").schedule
    moved = schedule.model_copy(
        update={window: getattr(schedule, window).model_validate(_window(*days))}
    )
    problems = schedule_disagreement(national.schedule, moved)
    assert (problems == []) is agrees
    if not agrees:
        assert problems[0].startswith(f"{window} ") and f"national {window} window" in problems[0]


def test_national_windows_out_of_order_are_refused_naming_both():
    with pytest.raises(ConfigError) as caught:
        parse_national_config(_national(registration=(0, 20), skd=(10, 40)))
    assert "skd opens" in str(caught.value) and "before registration closes" in str(caught.value)


def test_a_national_file_without_the_skd_window_is_refused_naming_it():
    with pytest.raises(ConfigError) as caught:
        parse_national_config(_national(registration=(0, 20)))
    assert "schedule.skd" in str(caught.value)


def test_a_national_file_names_its_funnel_s_readers_and_a_bad_one_is_refused_by_its_place():
    assert load_national_config(EXAMPLES / "national-2027.toml").readers == ["panselnas-pemantau"]
    assert parse_national_config(_national(registration=(0, 20), skd=(45, 80))).readers == []
    bad = {**_national(registration=(0, 20), skd=(45, 80)), "readers": ["ok", "bad id!"]}
    with pytest.raises(ConfigError) as caught:
        parse_national_config(bad)
    assert "readers.1" in str(caught.value) and "bad id!" in str(caught.value)


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("PT29S", "greater than or equal to 30 seconds"),
        ("P2D", "less than or equal to 1 day"),
        (900, 'write it like "P3D" or "PT12H"'),
    ],
)
def test_a_claim_grace_outside_30_seconds_to_24_hours_is_refused_naming_it(written, problem):
    national = _national(registration=(0, 20), skd=(45, 80))
    assert (
        parse_national_config(national).claim_grace == DEFAULT_CLAIM_GRACE == timedelta(minutes=15)
    )
    assert parse_national_config({**national, "claim_grace": "PT30S"}).claim_grace == timedelta(
        seconds=30
    )
    with pytest.raises(ConfigError) as caught:
        parse_national_config({**national, "claim_grace": written})
    assert f"claim_grace = {written!r}" in str(caught.value), str(caught.value)
    assert problem in str(caught.value)


def test_a_round_without_a_national_round_keeps_its_digest():
    config = load_round_config(EXAMPLES / "round-kabupaten.toml")
    joined = config.model_copy(update={"national_round": "CPNS-2027"})
    assert "national_round" not in config.model_dump(mode="json")
    assert joined.model_dump(mode="json")["national_round"] == "CPNS-2027"


def test_the_register_at_its_largest_stays_under_256_kib():
    national = parse_national_config(_national(registration=(0, 20), skd=(30, 60)))
    rounds = [
        JoinedRound(
            round_id=f"R{i:039d}",
            instansi="I" * 200,
            instansi_kind=InstansiKind.DAERAH,
            formasi=10_000,
            seats=100_000,
            joined_at=T0,
        )
        for i in range(MAX_ROUNDS)
    ]
    state = NationalState(
        national_id="CPNS-2027",
        name="n" * 200,
        phase="registration",
        schedule=national.schedule,
        rounds=rounds,
    )
    assert len(canonical_json(state).encode()) < 256 * 1024


def test_a_misspelt_key_in_a_national_file_is_refused_by_its_dotted_path(tmp_path):
    text = (EXAMPLES / "national-2027.toml").read_text(encoding="utf-8")
    text = text.replace("readers = ", "raeders = ")
    path = tmp_path / "national.toml"
    path.write_text(text.replace("[schedule.administration]", "[schedule.adminstration]"))
    with pytest.raises(ConfigError) as caught:
        load_national_config(path)
    fields = [field for field, _, _ in caught.value.problems]
    assert fields == ["raeders", "schedule.adminstration"]
    # The same document handed to the workflow (its recorded start input) still decodes.
    assert parse_national_config(_national(registration=(0, 20), skd=(45, 80)) | {"x": 1})


def test_a_national_file_saved_with_a_byte_order_mark_is_refused_saying_so(tmp_path):
    path = tmp_path / "national.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (EXAMPLES / "national-2027.toml").read_bytes())
    with pytest.raises(ConfigError) as caught:
        load_national_config(path)
    assert "starts with a byte-order mark" in str(caught.value)
