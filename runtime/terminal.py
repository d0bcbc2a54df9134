"""Consoles for the command lines: a table written to a file or a pipe keeps every cell whole.

rich lays a table out for 80 columns when it does not write to a terminal (and `COLUMNS` is not
set), and cuts what does not fit: an auditor's `audit.py recompute ROUND > out.txt`, or a CI log,
got formasi codes and reasons ending in "…". Written to a file or a pipe, these consoles are
FILE_WIDTH columns wide instead; a terminal keeps its own width, and `COLUMNS` still wins.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console

FILE_WIDTH = 200  # columns of a table written to a file or a pipe


def console(*, stderr: bool = False, **options: Any) -> Console:
    """A rich Console on stdout (or stderr), FILE_WIDTH wide when it does not write to a terminal
    and `COLUMNS` is not set."""
    out = Console(stderr=stderr, **options)
    if not out.is_terminal and "width" not in options and not os.environ.get("COLUMNS"):
        out.width = FILE_WIDTH
    return out
