"""The round configuration file: the example loads, and every kind of bad file is named precisely."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from domain.config import (
    Category,
    ComponentKind,
    ConfigError,
    InstansiKind,
    load_round_config,
    parse_round_config,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "round-kabupaten.toml"


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    """The example file with one exact snippet replaced: a realistic bad file."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"snippet {old!r} must occur exactly once in the example"
    path = tmp_path / "round-bad.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_example_round_loads_with_its_formasi_and_skb_composition():
    config = load_round_config(EXAMPLE)

    assert config.instansi == "Pemerintah Kabupaten Contoh"
    assert config.instansi_kind == InstansiKind.DAERAH
    assert config.rule_version == "2024.1"
    assert {f.category for f in config.formasi} >= {
        Category.UMUM,
        Category.CUMLAUDE,
        Category.DISABILITAS,
    }
    cat = config.skb.component("cat")
    assert cat is not None and 60 <= cat.weight <= 100 and cat.max_score == 500
    assert any(c.kind == ComponentKind.GATE for c in config.skb.components)


def test_example_round_has_two_formasi_sharing_jabatan_and_education_for_optimalisasi():
    config = load_round_config(EXAMPLE)
    groups = {(f.jabatan, f.education_level) for f in config.formasi}
    assert len(groups) < len(config.formasi)


def test_example_round_schedule_is_in_2027_with_jakarta_offset():
    config = load_round_config(EXAMPLE)
    registration = config.schedule.registration
    assert registration.opens.year == 2027
    assert registration.opens.utcoffset() == timedelta(hours=7)
    assert registration.closes - registration.opens >= timedelta(days=15)


@pytest.mark.parametrize(
    "kind",
    [
        "admin",
        "appeal_answer",
        "skd",
        "cat",
        "praktik",
        "health",
        "filing",
        "nip",
        "latsar",
        "operator",
    ],
)
def test_example_round_names_a_reporter_for_every_kind(kind):
    config = load_round_config(EXAMPLE)
    assert config.reporters.get(kind), f"no reporter for {kind}"


def test_example_round_keeps_the_national_defaults_it_does_not_set():
    config = load_round_config(EXAMPLE)
    assert config.appeal.window == timedelta(days=3)
    assert config.skd.cut_multiplier == 3
    assert (config.integration.skd_weight, config.integration.skb_weight) == (40, 60)


def test_unreadable_file_is_named():
    missing = Path("/nonexistent/round-missing.toml")
    with pytest.raises(ConfigError) as err:
        load_round_config(missing)
    assert str(missing) in str(err.value)
    assert "cannot be read" in str(err.value)


def test_toml_syntax_error_names_the_file_and_the_line(tmp_path):
    path = write_variant(tmp_path, 'round_id = "CPNS-2027-KAB-CONTOH"', "round_id = CPNS-2027")
    with pytest.raises(ConfigError) as err:
        load_round_config(path)
    message = str(err.value)
    assert str(path) in message
    assert "(syntax)" in message and "line 5" in message


# (case, snippet in the example, replacement, dotted field, value as it appears in the message)
BAD_FILES = [
    (
        "missing field",
        'instansi = "Pemerintah Kabupaten Contoh"\n',
        "",
        "instansi",
        "'<missing>'",
    ),
    ("negative quota", "quota = 3", "quota = -1", "formasi.0.quota", "-1"),
    ("quota not a number", "quota = 3", 'quota = "tiga"', "formasi.0.quota", "'tiga'"),
    (
        "weights not summing to 100",
        "weight = 60\nmax_score = 500",
        "weight = 50\nmax_score = 500",
        "skb",
        "90",
    ),
    ("SKB without cat", 'name = "cat"', 'name = "cbt"', "skb", "'cat'"),
    (
        "regional instansi with an interview",
        'name = "praktik"\nkind = "score"',
        'name = "wawancara"\nkind = "panel"',
        "skb",
        "wawancara",
    ),
    (
        "duplicate formasi codes",
        'code = "PK-AP-BAPPEDA"',
        'code = "PK-AP-DISKOMINFO"',
        "formasi",
        "PK-AP-DISKOMINFO",
    ),
    (
        "window closes before it opens",
        "closes = 2027-08-20T23:59:59+07:00",
        "closes = 2027-07-20T23:59:59+07:00",
        "schedule.registration",
        "2027-07-20T23:59:59+07:00",
    ),
    (
        "naive datetime",
        "opens = 2027-08-01T08:00:00+07:00",
        "opens = 2027-08-01T08:00:00",
        "schedule.registration.opens",
        "2027, 8, 1, 8, 0",
    ),
    ("unknown reporter kind", "operator = [", "wawancara = [", "reporters", "wawancara"),
    ("appeal window of zero", 'window = "P3D"', 'window = "PT0S"', "appeal.window", "greater than 0"),
]


@pytest.mark.parametrize(
    ("old", "new", "field", "value"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_bad_file_error_names_file_field_and_value(tmp_path, old, new, field, value):
    path = write_variant(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        load_round_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert field in message
    assert value in message


def test_every_problem_of_a_file_is_reported_not_only_the_first(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "round-bad.toml"
    path.write_text(
        text.replace("quota = 3", "quota = -1").replace("quota = 2", "quota = -2"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_round_config(path)
    fields = [field for field, _, _ in err.value.problems]
    assert fields == ["formasi.0.quota", "formasi.1.quota"]


def test_digest_is_stable_across_loads():
    assert load_round_config(EXAMPLE).digest() == load_round_config(EXAMPLE).digest()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("min_gpa = 3.50", "min_gpa = 3.25"),
        ("quota = 3", "quota = 4"),
        ("cut_multiplier = 3", "cut_multiplier = 2"),
        ('window = "P3D"', 'window = "P4D"'),
        ("floor = 40", "floor = 30"),
    ],
)
def test_digest_changes_when_a_rule_changes(tmp_path, old, new):
    original = load_round_config(EXAMPLE).digest()
    changed = load_round_config(write_variant(tmp_path, old, new)).digest()
    assert changed != original


def test_parse_names_the_source_given():
    with pytest.raises(ConfigError) as err:
        parse_round_config({}, "from-api")
    assert str(err.value).startswith("from-api: ")
