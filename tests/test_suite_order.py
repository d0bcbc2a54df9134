"""The suite's modules go to its workers longest first (tests/order.py), from a table that
scripts/suite_durations.py writes from a run's JUnit XML."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from scripts.suite_durations import main as durations_main
from scripts.suite_durations import module_totals, render
from tests.conftest import pytest_collection_modifyitems
from tests.order import TABLE, estimate, longest_first, module_seconds

ROOT = Path(__file__).resolve().parent.parent


def test_every_module_the_table_names_is_in_the_suite():
    gone = [path for path in module_seconds() if not (ROOT / path).is_file()]
    assert not gone, f"{TABLE.name} names modules that are gone: {gone}"


def test_the_slowest_modules_come_first_each_whole_and_in_its_own_order():
    known = {"tests/flows/test_slow.py": 100.0, "tests/test_quick.py": 2.0}
    items = [
        SimpleNamespace(nodeid=nodeid)
        for nodeid in [
            "tests/test_quick.py::test_a",
            "tests/test_quick.py::test_b",
            "tests/flows/test_slow.py::test_z",
            "tests/flows/test_slow.py::test_y",
            "tests/test_other.py::test_c",  # not in the table: its folder's median, 2 s
        ]
    ]
    order = longest_first([i.nodeid.split("::")[0] for i in items], known)
    assert order == ["tests/flows/test_slow.py", "tests/test_quick.py", "tests/test_other.py"]
    assert estimate("tests/web/test_new.py", known) == 1.0  # a folder the table has no module of
    assert estimate("tests/flows/test_new.py", known) == 100.0


def test_the_collection_hook_sorts_by_the_committed_table():
    known = module_seconds()
    slow, quick = max(known, key=known.__getitem__), min(known, key=known.__getitem__)
    items = [
        SimpleNamespace(nodeid=f"{quick}::test_a"),
        SimpleNamespace(nodeid=f"{quick}::test_b"),
        SimpleNamespace(nodeid=f"{slow}::test_c[1]"),
        SimpleNamespace(nodeid=f"{slow}::test_c[2]"),
    ]
    pytest_collection_modifyitems(None, items)
    assert [i.nodeid for i in items] == [
        f"{slow}::test_c[1]",
        f"{slow}::test_c[2]",
        f"{quick}::test_a",
        f"{quick}::test_b",
    ]


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.flows.test_demo" name="test_one" time="98.2"/>
<testcase classname="tests.test_codec" name="test_a" time="0.01"/>
<testcase classname="tests.test_codec.TestKeys" name="test_b" time="0.30"/>
<testcase classname="tests.flows.test_demo" name="test_two" time="1.5"/>
</testsuite></testsuites>
"""


def test_the_table_is_written_from_junit_xml_longest_first(tmp_path, capsys):
    source = tmp_path / "suite.xml"
    source.write_text(JUNIT)
    totals = module_totals(source)
    assert totals == pytest.approx({"tests/flows/test_demo.py": 99.7, "tests/test_codec.py": 0.31})
    assert durations_main([str(source)]) == 0
    written = tmp_path / "durations.toml"
    written.write_text(capsys.readouterr().out)
    assert module_seconds(written) == {
        "tests/flows/test_demo.py": 100.0,
        "tests/test_codec.py": 1.0,
    }
    assert render(totals).index("test_demo") < render(totals).index("test_codec")


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (
            "<testsuites><testcase classname='flows.test_x' name='t' time='1'/></testsuites>",
            "'flows.test_x'",
        ),
        (
            "<testsuites><testcase classname='tests.flows' name='t' time='1'/></testsuites>",
            "'tests.flows'",
        ),
        ("not xml", "syntax error"),
    ],
)
def test_a_file_that_is_not_a_suite_s_junit_xml_is_refused_naming_what(
    tmp_path, capsys, content, named
):
    source = tmp_path / "suite.xml"
    source.write_text(content)
    assert durations_main([str(source)]) == 2
    assert named in capsys.readouterr().err


def test_a_bad_figure_in_the_table_is_named(tmp_path):
    table = tmp_path / "durations.toml"
    table.write_text('[modules]\n"tests/test_x.py" = "slow"\n')
    with pytest.raises(ValueError, match=r"tests/test_x.py = 'slow': expected seconds"):
        module_seconds(table)
