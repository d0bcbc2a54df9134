"""Stop embedded stacks when the process that started them is gone without stopping them.

A test session or a benchmark that starts stacks of its own stops them when it finishes. Killed
on the way (`timeout`'s SIGTERM, a SIGKILL, a crash, a pytest-xdist worker torn down by its
controller) it never gets there, and its servers would run on, detached, holding their ports.

`guard_stacks` starts a small process, in a session of its own, that waits on the read end of a
pipe whose write end only the owner holds. However the owner ends, the system closes that end:
the guard then stops the servers recorded under the directory, and under each folder in it
(stop_stack: by the pids they wrote, nothing else), and with `remove` deletes the directory,
unless the owner released it first, which it does once it has stopped them itself or chosen to
leave them running.

    python -m runtime.guard DIRECTORY [--remove]   # what guard_stacks runs; stdin is the owner's pipe
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASED = b"released"  # what the owner writes when the guard has nothing left to do
REMOVE = "--remove"


@dataclass
class StackGuard:
    """The owner's side: the pipe's write end and the guard process."""

    process: subprocess.Popen
    write_end: int

    def release(self, timeout: float = 10.0) -> None:
        """The owner stopped its servers (or leaves them on purpose): the guard exits untouched."""
        if self.write_end < 0:
            return
        try:
            os.write(self.write_end, RELEASED)
        finally:
            os.close(self.write_end)
            self.write_end = -1
        self.process.wait(timeout)


def guard_stacks(directory: Path, remove: bool = False) -> StackGuard:
    """Start the guard of the stacks under `directory` (its own, and its folders'); keep the
    result and `release` it at the end. With `remove`, the guard deletes `directory` after
    stopping them."""
    directory = directory.resolve()
    if not directory.is_dir():
        raise ValueError(f"guard_stacks: {str(directory)!r} is not a directory")
    read_end, write_end = os.pipe()  # neither end is inherited by later children (PEP 446)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.guard", str(directory), *([REMOVE] if remove else [])],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # its owner, and whatever read its output, may be gone
            cwd=ROOT,
            start_new_session=True,  # neither a terminal's Ctrl-C nor a group kill reaches it
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return StackGuard(process, write_end)


def stack_dirs(directory: Path) -> list[Path]:
    """`directory` and each folder in it that holds an embedded stack's servers."""
    candidates = [directory, *sorted(p for p in directory.iterdir() if p.is_dir())]
    return [p for p in candidates if (p / "temporal").is_dir() or (p / "postgres").is_dir()]


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2 or argv[1:] not in ([], [REMOVE]):
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(argv[0])
    said = b""
    while chunk := os.read(0, 64):  # until the owner writes RELEASED and closes, or is gone
        said += chunk
    if said == RELEASED or not directory.is_dir():
        return 0
    from runtime.embedded import isolated_settings, stop_stack  # only when there is work to do

    for data_dir in stack_dirs(directory):
        try:
            stop_stack(isolated_settings(data_dir))  # stop_stack reads the data dir alone
        except Exception as exc:  # the others are still stopped
            print(f"guard: {data_dir}: {exc!r}", file=sys.stderr)
    if argv[1:] == [REMOVE]:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
