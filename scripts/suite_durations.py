"""Write tests/durations.toml, the seconds each test module took, from a run's JUnit XML.

    .venv/bin/python -m pytest -n 4 --dist loadscope --no-loadscope-reorder --junitxml=/tmp/suite.xml
    .venv/bin/python scripts/suite_durations.py /tmp/suite.xml > tests/durations.toml

The suite hands its slowest modules to its workers first (tests/order.py); this table is how it
knows which those are. Each module's figure is the sum of its test cases' times (setup, call and
teardown, as pytest reports them), rounded up to a whole second.
"""

from __future__ import annotations

import math
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def module_totals(junit_xml: Path) -> dict[str, float]:
    """Seconds per module path, from the test cases of a JUnit XML file."""
    totals: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        classname = case.get("classname", "")
        if not classname.startswith("tests."):
            raise ValueError(f"{junit_xml}: test case classname {classname!r} is not under tests/")
        parts = classname.split(".")
        # `tests.flows.test_demo` or `tests.flows.test_demo.TestClass`: the module is the part
        # that starts with test_.
        upto = next((i for i, p in enumerate(parts) if p.startswith("test_")), None)
        if upto is None:
            raise ValueError(f"{junit_xml}: no module in classname {classname!r}")
        path = "/".join(parts[: upto + 1]) + ".py"
        totals[path] += float(case.get("time", "0"))
    return dict(totals)


def render(totals: dict[str, float]) -> str:
    lines = [
        "# Seconds each test module took in one run, longest first: the suite hands the longest to",
        "# its workers first (tests/order.py). Written by scripts/suite_durations.py; a stale",
        "# figure only makes a run slower, and a module not listed gets its folder's median.",
        "[modules]",
    ]
    for path, seconds in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f'"{path}" = {max(1, math.ceil(seconds))}')
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    source = Path(argv[0])
    if not source.is_file():
        print(f"no such JUnit XML file: {source}", file=sys.stderr)
        return 2
    try:
        totals = module_totals(source)
    except (ET.ParseError, ValueError) as exc:
        print(f"cannot read {source}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(totals))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
