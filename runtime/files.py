"""Files that hold personal data (NIKs, birth dates, reasons about one applicant): readable by
their owner alone, whatever the umask."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO


def open_private(path: Path, append: bool = False, **text_options) -> IO[str]:
    """Open `path` for writing as text with mode 0600: created so, and a file that was there
    before set to 0600 before anything is written to it. Symbolic links are not followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "w", **text_options)
    except BaseException:
        os.close(fd)
        raise
