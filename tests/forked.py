"""Project commands run as processes of their own, forked from one that imported them once.

The command-line tests run `starter.py`, `audit.py`, `worker.py` and `serve.py` a hundred times
with bad arguments, settings or keys, each as an operator runs it: a process of its own, its
environment and folder, its exit status and its two streams. A fresh interpreter spends about 2 s importing
what a command imports (temporalio, pydantic, the domain's models), 4-6 s on this 2-core machine
under the suite's load: 270 s of the suite's 3,400 s of test time went to that on 12-07.

So a driver process imports the scripts' modules once (`python -c "...serve()"`, an interpreter
that has started nothing: no thread, no event loop, no Temporal runtime), and each command is a
child forked from it. The child sets its environment, folder, argv and streams, and runs the
script with `runpy` as `__main__`, exactly as `python starter.py ...` runs it (the script's
body and its `run_and_end`), its dependencies already imported. What a command reads from its
environment is read when it runs, never at import (nothing in the project reads `os.environ` at
module level), so a child sees only its own. What an interpreter settles at its start from its
environment is the driver's: PYTHONHASHSEED, PYTHONIOENCODING and the encoding of its streams. A
test that sets those runs a real interpreter (tests/flows/test_evaluate.py).

The driver speaks JSON lines on its standard input and output: one request
(`{"script", "args", "env", "cwd", "timeout", "address_space"}`, and `entry` for a console
command), one answer (`{"returncode", "stdout", "stderr"}`, or `{"timeout": true}` after the
child was killed).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"starter.py": "starter", "audit.py": "audit", "worker.py": "worker", "serve.py": "serve"}


def _child(request: dict, out: int, err: int) -> None:
    """In the forked child: become `python script args` and never return."""
    import resource
    import runpy

    from runtime.process import end_process, exit_code

    script, args, entry = request["script"], request["args"], request.get("entry")
    try:
        if request.get("address_space"):  # what a preexec_fn's setrlimit did
            limit = int(request["address_space"])
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = sys.__stdout__  # the driver points it at stderr
        sys.stderr = sys.__stderr__
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if entry:  # a console command: `sys.argv[0] = name; main()`, as pip's wrapper runs it
            module, function = entry.split(":")
            sys.argv = [script, *args]
            sys.modules.pop(module, None)  # its body run again here: its console, in this env
            getattr(importlib.import_module(module), function)()
        else:
            sys.argv = [str(ROOT / script), *args]
            runpy.run_path(str(ROOT / script), run_name="__main__")
        end_process(0)  # a script that returned (run_and_end ends the process itself)
    except SystemExit as exc:
        end_process(exit_code(exc.code))
    except BaseException:  # noqa: BLE001 - printed as the interpreter would, then status 1
        sys.excepthook(*sys.exc_info())
        end_process(1)


def _run_one(request: dict) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            _child(request, out.fileno(), err.fileno())
        deadline = time.monotonic() + float(request["timeout"])
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"timeout": True}
            time.sleep(0.005)
        out.seek(0)
        err.seek(0)
        return {
            "returncode": os.waitstatus_to_exitcode(status),
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        }


def serve() -> None:
    """The driver: import every script's module, then answer requests until stdin ends."""
    # `python -c` puts the working folder first on the path, `python ROOT/starter.py` the
    # script's folder: a child, in a folder of its own, imports what it imports late from ROOT.
    sys.path[0] = str(ROOT)
    for module in SCRIPTS.values():
        importlib.import_module(module)
    channel = sys.stdout
    sys.stdout = sys.stderr  # nothing a module prints may land in the answers
    for line in sys.stdin:
        answer = _run_one(json.loads(line))
        channel.write(json.dumps(answer) + "\n")
        channel.flush()


class Driver:
    """A driver process for this test process, started at the first command."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def _started(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-c", "from tests.forked import serve; serve()"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env={k: v for k, v in os.environ.items() if not k.startswith("CASN_")},
            )
            atexit.register(self.stop)
        return self._process

    def run(
        self,
        script: str,
        args: list[str],
        env: dict[str, str],
        cwd: Path,
        timeout: float,
        address_space: int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`python script args` in `cwd` with exactly `env`, as subprocess.run(capture_output=True,
        text=True) gives it; `address_space` bytes at most, when given (RLIMIT_AS)."""
        if script not in SCRIPTS:
            raise ValueError(f"no forked runs of {script!r}: one of {sorted(SCRIPTS)}")
        return self._ask(
            {
                "script": script,
                "args": list(args),
                "env": dict(env),
                "cwd": str(cwd),
                "timeout": timeout,
                "address_space": address_space,
            },  # fmt: skip
            [sys.executable, str(ROOT / script), *args],
        )

    def run_console(
        self, name: str, entry: str, args: list[str], env: dict[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """The console command `name` (`module:function`, as pyproject.toml names it) with `args`,
        as its installed wrapper runs it: sys.argv[0] is `name`, then `function()`."""
        if entry.split(":")[0] not in SCRIPTS.values():
            raise ValueError(f"no forked runs of {entry!r}: its module is not one of {SCRIPTS}")
        return self._ask(
            {
                "script": name,
                "entry": entry,
                "args": list(args),
                "env": dict(env),
                "cwd": str(cwd),
                "timeout": timeout,
            },  # fmt: skip
            [name, *args],
        )

    def _ask(self, request: dict, command: list[str]) -> subprocess.CompletedProcess[str]:
        timeout = request["timeout"]
        with self._lock:
            process = self._started()
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the command driver ended (status {process.poll()})")
        answer = json.loads(line)
        if answer.get("timeout"):
            raise subprocess.TimeoutExpired(command, timeout)
        return subprocess.CompletedProcess(
            command, answer["returncode"], answer["stdout"], answer["stderr"]
        )

    def stop(self) -> None:
        """End the driver (its stdin closed), if it runs."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


DRIVER = Driver()
