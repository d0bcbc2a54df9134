"""The order in which the suite's modules are handed to its xdist workers: the slowest first.

`run.py test` runs the suite in 4 processes with `--dist loadscope`: each module goes whole to
one process, the next module to whichever process is almost out of work. pytest-xdist's default
orders the modules by how many tests they hold, most first, so the domain's modules of a hundred
quick tests went first and the modules of one long test (a worker stopped with the read model
down, the demo, servers killed mid-round: 90-110 s each) last, where one process ran them on
alone while the others had nothing left: 973 s in all on 12-07, the last minutes on one process.
Longest first is the classic rule for this (the longest-processing-time schedule): the long
modules start at once, side by side, and the quick ones fill in behind them.

How long a module takes is read from `tests/durations.toml`, which `scripts/suite_durations.py`
writes from a run's JUnit XML. A module not in it (a new one) is given its folder's median, so it
is neither first nor last for want of a figure. The table only orders; a stale figure makes the
run slower, never wrong, and tests/test_suite_order.py names a module the table lists that is gone.
"""

from __future__ import annotations

import statistics
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

TABLE = Path(__file__).with_name("durations.toml")
DEFAULT_SECONDS = 1.0  # a folder with no module in the table


def module_seconds(table: Path = TABLE) -> dict[str, float]:
    """Seconds per module path (`tests/flows/test_demo.py`), as the table gives them."""
    with table.open("rb") as f:
        data = tomllib.load(f)
    modules = data.get("modules", {})
    if not isinstance(modules, dict):
        raise ValueError(f"{table}: [modules] must be a table of path = seconds")
    out: dict[str, float] = {}
    for path, seconds in modules.items():
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError(f"{table}: {path} = {seconds!r}: expected seconds, 0 or more")
        out[path] = float(seconds)
    return out


def estimate(path: str, known: Mapping[str, float]) -> float:
    """The table's seconds for a module, or the median of its folder's modules in the table."""
    if path in known:
        return known[path]
    folder = path.rsplit("/", 1)[0]
    peers = [s for p, s in known.items() if p.rsplit("/", 1)[0] == folder]
    return statistics.median(peers) if peers else DEFAULT_SECONDS


def longest_first(paths: Iterable[str], known: Mapping[str, float]) -> list[str]:
    """The module paths, longest first; equal ones keep their order (the sort is stable)."""
    listed = list(dict.fromkeys(paths))
    return sorted(listed, key=lambda p: -estimate(p, known))
