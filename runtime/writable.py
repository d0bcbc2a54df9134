"""Whether a file a command will write can be written, found out before the command connects to
anything or sends anything: a file that cannot be written after the round was reached would
leave its work half done (numbers sent and not kept, an announcement published and not saved)."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path


def why(exc: OSError) -> str:
    """An OSError's reason without its path: "Not a directory", "Permission denied"."""
    return exc.strerror or type(exc).__name__


def cannot_write(path: Path) -> str | None:
    """Why `path` cannot be created or written (under a file, in /proc, no permission), or None
    when it can: it is created (with any missing folders) and removed again, and a file that was
    there is opened for appending, not changed."""
    made: list[Path] = []
    folder = path.parent
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    existed = path.exists()
    try:
        for missing in reversed(made):
            missing.mkdir()
        with path.open("a"):
            pass
    except OSError as exc:
        return why(exc)
    finally:
        if not existed:
            path.unlink(missing_ok=True)
        for missing in made:
            with contextlib.suppress(OSError):
                missing.rmdir()
    return None


def cannot_write_in(folder: Path) -> str | None:
    """Why files cannot be written in `folder` (a file, under a file, no permission), or None when
    they can: a file of a name no one uses is made in it (and any missing folders) and removed."""
    if folder.exists() and not folder.is_dir():
        return "it is a file: give a directory"
    return cannot_write(folder / f".casn-check-{secrets.token_hex(4)}")
