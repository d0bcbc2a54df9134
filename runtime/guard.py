"""Stop an embedded stack when the process that started it is gone without stopping it.

A test session or a benchmark that starts a stack of its own stops it when it finishes. Killed
on the way (`timeout`'s SIGTERM, a SIGKILL, a crash, a pytest-xdist worker torn down by its
controller) it never gets there, and its servers would run on, detached, holding their ports.

`guard_stack` starts a small process, in a session of its own, that waits on the read end of a
pipe whose write end only the owner holds. However the owner ends, the system closes that end:
the guard then stops the servers recorded under the data dir (stop_stack: by the pids they
wrote, nothing else) unless the owner released it first, which it does once it has stopped them
itself or chosen to leave them running.

    python -m runtime.guard DATA_DIR     # what guard_stack runs; stdin is the owner's pipe
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASED = b"released"  # what the owner writes when the guard has nothing left to do


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


def guard_stack(data_dir: Path) -> StackGuard:
    """Start the guard of the stack under `data_dir`; keep the result and `release` it at the end."""
    data_dir = data_dir.resolve()
    if not data_dir.is_dir():
        raise ValueError(f"guard_stack: data_dir {str(data_dir)!r} is not a directory")
    read_end, write_end = os.pipe()  # neither end is inherited by later children (PEP 446)
    try:
        with open(data_dir / "guard.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "runtime.guard", str(data_dir)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=ROOT,
                start_new_session=True,  # neither a terminal's Ctrl-C nor a group kill reaches it
            )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return StackGuard(process, write_end)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    data_dir = Path(argv[0])
    said = b""
    while chunk := os.read(0, 64):  # until the owner writes RELEASED and closes, or is gone
        said += chunk
    if said == RELEASED:
        return 0
    from runtime.embedded import isolated_settings, stop_stack  # only when there is work to do

    if data_dir.is_dir():
        stop_stack(isolated_settings(data_dir))  # stop_stack reads the data dir alone
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
