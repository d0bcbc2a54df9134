"""Consoles for the command lines: what they print is shown as it is, and a table written to a
file or a pipe keeps every cell whole.

Markup is off: a value from a file, a service, the engine or an exception is printed whole, never
read as rich's markup. With it on, a row whose value was `[/b]` stopped the import's summary with
a MarkupError, and a reason such as "ijazah [tidak] dilegalisir" lost its "[tidak]" in the
auditor's trail. The styled words of our own lines are `flagged` (or rich's Text).

rich lays a table out for 80 columns when it does not write to a terminal (and `COLUMNS` is not
set), and cuts what does not fit: an auditor's `audit.py recompute ROUND > out.txt`, or a CI log,
got formasi codes and reasons ending in "…". Written to a file or a pipe, these consoles are
FILE_WIDTH columns wide instead; a terminal keeps its own width, and `COLUMNS` still wins.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.text import Text

FILE_WIDTH = 200  # columns of a table written to a file or a pipe


def console(*, stderr: bool = False, **options: Any) -> Console:
    """A rich Console on stdout (or stderr), markup off unless asked, FILE_WIDTH wide when it does
    not write to a terminal and `COLUMNS` is not set."""
    options.setdefault("markup", False)
    out = Console(stderr=stderr, **options)
    if not out.is_terminal and "width" not in options and not os.environ.get("COLUMNS"):
        out.width = FILE_WIDTH
    return out


def flagged(label: str, rest: str = "", style: str = "red") -> Text:
    """`label` in `style`, then `rest` as it is: "refused: <reason>", whatever the reason holds."""
    return Text.assemble((label, style), rest)
