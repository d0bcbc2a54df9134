"""How a command-line process of ours ends.

A process that made a Temporal client carries the SDK's Rust runtime and its threads. When
CPython finalises, one of those threads can still hand the GIL back, and the interpreter aborts:
"Fatal Python error: PyGILState_Release: thread state ... must be current when releasing", exit
-6 (SIGABRT) instead of the command's own code, after the command has done its work and printed
its answer. It is the SDK's open issue temporalio/sdk-python#300; a fresh-clone run of the suite
met it once in `audit.py export` (exit -6 where the command said 1).

`run_and_end` runs an entry point, then does what finalisation would have done that matters to
us (the exit functions, among them logging's flush, and the standard streams' flush) and ends
the process with `os._exit`, whose code is the command's own. Finalisation has nothing else to
do in these processes: the servers a command starts are separate processes that outlive it by
design (runtime/embedded.py), and asyncio.run has already closed the loop and its executor.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from typing import NoReturn


def exit_code(code: object) -> int:
    """The process's exit status for a SystemExit's code, as the interpreter reads it: None is 0,
    an int is itself, anything else is printed on stderr and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_and_end(entry: Callable[[], object]) -> NoReturn:
    """Run `entry` (a typer app, a main function) and end the process with its exit status,
    without the interpreter's finalisation. An exception that escapes `entry` is printed as the
    interpreter would print it, and the status is 1."""
    try:
        result = entry()
        status = exit_code(result if isinstance(result, int) else None)
    except SystemExit as exc:
        status = exit_code(exc.code)
    except KeyboardInterrupt:
        status = 130
    except BaseException:  # noqa: BLE001 - printed, then the status an uncaught error gives
        sys.excepthook(*sys.exc_info())
        status = 1
    end_process(status)


def end_process(status: int) -> NoReturn:
    """Run the exit functions, flush the standard streams and end with `status`."""
    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is not None:
        run_exit_functions()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said on it
            pass
    os._exit(status)
