"""run.py: how many pytest processes the test command runs, each one's ports (tests/ports.py), and
the virtual environment it makes on a fresh machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import run
from tests.ports import STEP, session_offset


def test_the_suite_runs_in_four_processes_unless_told():
    assert run.suite_command(run.suite_workers({}))[-5:] == [
        "-n",
        "4",
        "--dist",
        "loadscope",
        "--no-loadscope-reorder",
    ]
    assert "-n" not in run.suite_command(run.suite_workers({"CASN_TEST_WORKERS": "1"}))


def test_workers_run_modules_whole():
    command = run.suite_command(run.suite_workers({"CASN_TEST_WORKERS": "3"}))
    assert command[-5:-3] == ["-n", "3"]
    assert command[-3:-1] == ["--dist", "loadscope"]  # a module goes whole to one process
    assert run.suite_command(run.suite_workers({"CASN_TEST_WORKERS": " 5 "}))[-5:-3] == ["-n", "5"]


@pytest.mark.parametrize("given", ["0", "9", "-2", "three", "2.5", "²", "３", "٣"])
def test_a_bad_worker_count_stops_naming_the_setting_and_value(given):
    with pytest.raises(SystemExit) as stopped:
        run.suite_workers({"CASN_TEST_WORKERS": given})
    assert str(stopped.value) == (
        f"CASN_TEST_WORKERS: expected a whole number from 1 to 8, got {given!r}"
    )


def test_each_worker_has_ports_of_its_own():
    offsets = [session_offset({"PYTEST_XDIST_WORKER": f"gw{i}"}) for i in range(8)]
    assert offsets == [STEP * i for i in range(8)]
    assert session_offset({}) == 0
    assert session_offset({"CASN_TEST_PORT_OFFSET": "7", "PYTEST_XDIST_WORKER": "gw2"}) == 207
    # No worker's fixed port is another's: the session stack's Temporal, UI, PostgreSQL and codec
    # ports (tests/conftest.py), test_embedded_stack's and test_formasi_continue_as_new's.
    bases = (17233, 18233, 15432, 20088, 27233, 28233, 25432, 29233)
    ports = [base + o for o in offsets for base in bases]
    assert len(ports) == len(set(ports))
    # Nor another session's, whatever offset from 0 to 99 each was given.
    for other in range(1, 100):
        theirs = {
            base
            + session_offset({"CASN_TEST_PORT_OFFSET": str(other), "PYTEST_XDIST_WORKER": f"gw{i}"})
            for i in range(8)
            for base in bases
        }
        assert not theirs & set(ports), other


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        (
            {"CASN_TEST_PORT_OFFSET": "ten"},
            "CASN_TEST_PORT_OFFSET: expected a whole number from 0 to 99, got 'ten'",
        ),
        (
            {"CASN_TEST_PORT_OFFSET": "1000"},
            "CASN_TEST_PORT_OFFSET: expected a whole number from 0 to 99, got '1000'",
        ),
        (
            {"CASN_TEST_PORT_OFFSET": "²"},
            "CASN_TEST_PORT_OFFSET: expected a whole number from 0 to 99, got '²'",
        ),
        (
            {"PYTEST_XDIST_WORKER": "gw²"},
            "PYTEST_XDIST_WORKER: expected gw<number>, got 'gw²'",
        ),
        (
            {"PYTEST_XDIST_WORKER": "worker-1"},
            "PYTEST_XDIST_WORKER: expected gw<number>, got 'worker-1'",
        ),
    ],
)
def test_a_bad_offset_setting_is_named(environ, named):
    with pytest.raises(ValueError) as refused:
        session_offset(environ)
    assert str(refused.value) == named


def test_a_virtual_environment_without_pip_is_not_taken_as_made(tmp_path):
    """What a python3 without ensurepip leaves behind (Debian's without python3-venv) is made
    again by the next command, where before every command stopped on `No module named pip`."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path)], check=True)

    assert not run.has_pip(tmp_path / "bin" / "python")
    assert not run.has_pip(tmp_path / "no-such-python")
    assert run.has_pip(Path(sys.executable))
