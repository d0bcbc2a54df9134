"""Files that hold personal data (NIKs, birth dates, reasons about one applicant): readable by
their owner alone, whatever the umask. Files handed to us: read only when they are regular
files, small ones only up to a limit."""

from __future__ import annotations

import errno
import os
import stat
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


def _not_a_file(mode: int) -> str | None:
    """What a file handed to us is when it is not a regular file, or None."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), which would be read for ever"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device (such as /dev/zero), which may never end"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_input(path: Path | str, mode: str = "r", **text_options) -> IO:
    """Open a file handed to us (a CSV, a round file, a key, a bundle's file) for reading: an
    OSError naming what it is unless it is a regular file (a link to one is followed). A FIFO
    would block the command for ever and a device such as /dev/zero would fill the memory: they
    are refused before a byte is read (opened without blocking, then judged by fstat)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st_mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(st_mode):  # as open() says it: IsADirectoryError, which callers name
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        kind = _not_a_file(st_mode)
        if kind is not None:
            raise OSError(errno.EINVAL, f"not a regular file but {kind}", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, mode, **text_options)
    except BaseException:
        os.close(fd)
        raise


def read_input(path: Path | str, limit: int) -> bytes:
    """The bytes of a small file handed to us (a key, a signature, a manifest), read through
    `open_input`; an OSError when it holds more than `limit` bytes, so that a huge or sparse
    file cannot fill the memory."""
    with open_input(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"it is larger than {limit:,} bytes", str(path))
    return data
