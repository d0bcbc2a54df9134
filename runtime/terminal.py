"""Consoles for the command lines: what they print is shown as it is, and a table written to a
file or a pipe keeps every cell whole.

Markup is off: a value from a file, a service, the engine or an exception is printed whole, never
read as rich's markup. With it on, a row whose value was `[/b]` stopped the import's summary with
a MarkupError, and a reason such as "ijazah [tidak] dilegalisir" lost its "[tidak]" in the
auditor's trail. The styled words of our own lines are `flagged` (or rich's Text).

Control characters are not passed to the terminal: rich writes an ESC, a carriage return or a
C1 code in a value as it is, so a reason, a note or a finding recorded with one (a DIS reason
such as "\x1b]0;...\x07\x1b[2J", which every model takes) would retitle, clear or rewrite the
operator's or the auditor's terminal when `status`, `lookup` or `audit.py trail` printed it.
Each is shown as U+FFFD (one column, so tables keep their layout), and so are the bidi controls
that reorder what is shown (U+202A-U+202E, U+2066-U+2069); `--json` keeps the text as recorded.

rich lays a table out for 80 columns when it does not write to a terminal (and `COLUMNS` is not
set), and cuts what does not fit: an auditor's `audit.py recompute ROUND > out.txt`, or a CI log,
got formasi codes and reasons ending in "…". Written to a file or a pipe, these consoles are
FILE_WIDTH columns wide instead; a terminal keeps its own width, and `COLUMNS` still wins.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.segment import Segment
from rich.text import Text

FILE_WIDTH = 200  # columns of a table written to a file or a pipe


# What is never written to a terminal from a value: C0 controls but the line feed and the tab,
# DEL and C1 controls, and the bidi embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
SHOWN_FOR_CONTROL = "\ufffd"


class _Console(Console):
    """rich's Console, with every control character of what it prints shown as U+FFFD: in a str
    (a table's cell too) before it is measured, in a Text (a flagged line) before it is laid
    out (one character for one, so its styles stay where they were), then in any other segment. Its
    own styling codes are written apart from the segments' text, and control segments are left
    as they are."""

    def render_str(self, text: str, **options: Any) -> Text:
        # A str (a table's cell too) is measured and laid out as it will be shown.
        return super().render_str(_CONTROL.sub(SHOWN_FOR_CONTROL, text), **options)

    def render(self, renderable, options=None) -> Iterable[Segment]:
        if isinstance(renderable, Text) and _CONTROL.search(renderable.plain):
            renderable = renderable.copy()
            renderable.plain = _CONTROL.sub(SHOWN_FOR_CONTROL, renderable.plain)
        for segment in super().render(renderable, options):
            if segment.control is None and _CONTROL.search(segment.text):
                yield Segment(_CONTROL.sub(SHOWN_FOR_CONTROL, segment.text), segment.style)
            else:
                yield segment


def console(*, stderr: bool = False, **options: Any) -> Console:
    """A rich Console on stdout (or stderr), markup off unless asked, FILE_WIDTH wide when it does
    not write to a terminal and `COLUMNS` is not set, control characters shown as U+FFFD."""
    options.setdefault("markup", False)
    out = _Console(stderr=stderr, **options)
    if not out.is_terminal and "width" not in options and not os.environ.get("COLUMNS"):
        out.width = FILE_WIDTH
    return out


def flagged(label: str, rest: str = "", style: str = "red") -> Text:
    """`label` in `style`, then `rest` as it is: "refused: <reason>", whatever the reason holds."""
    return Text.assemble((label, style), rest)
