"""How our command-line processes end (runtime/process.py): the command's own exit status, its
output flushed and the exit functions run, without the interpreter's finalisation (where the
Temporal SDK's threads can abort the process: temporalio/sdk-python#300).

The abort itself is a race this suite cannot make happen on demand. Measured by hand on this
machine under load: a script that connects a client and exits 1 ended 7 times in 80 with
SIGABRT or SIGSEGV; the same script under run_and_end, 0 in 80."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "command.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from runtime.process import run_and_end\n" + textwrap.dedent(body)
    )
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        ("sys.exit(None)", 0),
        ("sys.exit(0)", 0),
        ("sys.exit(3)", 3),
        ("sys.exit(258)", 2),  # as the interpreter: the low byte
        ("return 4", 4),
        ("return None", 0),
        ("return 'not a status'", 0),
    ],
)
def test_the_status_is_the_command_s_own(ending, status, tmp_path):
    ran = _run(
        f"""
        def entry():
            print("answer")
            {ending}
        run_and_end(entry)
        """,
        tmp_path,
    )

    assert ran.returncode == status, ran.stderr
    assert ran.stdout == "answer\n"


def test_a_message_given_to_exit_is_printed_and_is_status_1(tmp_path):
    ran = _run(
        """
        def entry():
            sys.exit("error: no such round")
        run_and_end(entry)
        """,
        tmp_path,
    )

    assert ran.returncode == 1
    assert ran.stderr == "error: no such round\n"


def test_an_escaped_error_is_printed_with_its_traceback_and_is_status_1(tmp_path):
    ran = _run(
        """
        def entry():
            raise ValueError("the value 7 is not a round")
        run_and_end(entry)
        """,
        tmp_path,
    )

    assert ran.returncode == 1
    assert "Traceback" in ran.stderr
    assert "ValueError: the value 7 is not a round" in ran.stderr


def test_buffered_output_and_the_exit_functions_are_not_lost(tmp_path):
    # A pipe makes stdout block-buffered: os._exit alone would drop what was printed, and the
    # exit functions (logging's flush among them) would never run.
    ran = _run(
        """
        import atexit, logging
        logging.basicConfig(filename="command.log", level=logging.INFO)
        atexit.register(lambda: print("exit function ran", file=sys.stderr))
        def entry():
            for n in range(2000):
                print(f"line {n}")
            logging.getLogger("command").info("logged before the end")
            return 5
        run_and_end(entry)
        """,
        tmp_path,
    )

    assert ran.returncode == 5
    lines = ran.stdout.splitlines()
    assert len(lines) == 2000 and lines[-1] == "line 1999"
    assert ran.stderr == "exit function ran\n"
    assert "logged before the end" in (tmp_path / "command.log").read_text()


def _entry_points() -> list[str]:
    """Every file of ours with a `__main__` block."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {".venv", "tests", "out"} or relative.parts[0].startswith("."):
            continue
        if 'if __name__ == "__main__":' in path.read_text():
            found.append(str(relative))
    return found


def _imports_the_temporal_client(entry_point: str) -> bool:
    """Whether importing the file (its `__main__` block not run) loads the SDK's client."""
    probe = (
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"spec = importlib.util.spec_from_file_location('probe', {str(ROOT / entry_point)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['probe'] = module\n"
        "spec.loader.exec_module(module)\n"
        "print('temporalio.client' in sys.modules)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip() == "True"


def test_the_entry_points_are_found():
    found = _entry_points()
    for expected in ("audit.py", "starter.py", "worker.py", "serve.py", "bench.py", "run.py"):
        assert expected in found


@pytest.mark.parametrize("entry_point", _entry_points())
def test_every_entry_point_that_loads_the_temporal_client_ends_through_run_and_end(entry_point):
    main_block = (ROOT / entry_point).read_text().split('if __name__ == "__main__":', 1)[1]

    if "run_and_end(" not in main_block:
        assert not _imports_the_temporal_client(entry_point), (
            f"{entry_point} loads temporalio.client: its __main__ must end through run_and_end"
        )
