"""tests/forked.py runs a project command as a process forked from one that imported the
commands once: each run sees its own environment, folder, arguments and streams, as
`python starter.py ...` would."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.forked import DRIVER, ROOT
from tests.test_keys_settings import KEY

BASE = {k: v for k, v in os.environ.items() if not k.startswith("CASN_")}
MISSPELT = "CASN_" + "PAYLOAD_KYE"  # spelt apart: test_settings_variables reads the suite for names


def test_each_run_has_its_own_streams_status_and_environment(tmp_path):
    helped = DRIVER.run("audit.py", ["--help"], BASE, ROOT, timeout=60)
    assert (helped.returncode, helped.stderr) == (0, "")
    assert "Usage: audit.py" in helped.stdout

    refused = DRIVER.run("starter.py", ["status", "R 1"], BASE, tmp_path, timeout=60)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("bad arguments: ROUND_ID='R 1'")

    # The variable is read by this run alone: the next run, without it, is not refused for it.
    misspelt = DRIVER.run("starter.py", ["status", "R1"], {**BASE, MISSPELT: "x"}, tmp_path, 60)
    assert misspelt.returncode == 2 and MISSPELT in misspelt.stderr
    again = DRIVER.run("starter.py", ["status", "R 1"], BASE, tmp_path, timeout=60)
    assert MISSPELT not in again.stderr


def test_a_script_s_own_body_runs_in_the_child_with_its_environment():
    """The script's module-level console is made in the run, so COLUMNS given to it holds."""
    narrow = DRIVER.run("audit.py", ["--help"], {**BASE, "COLUMNS": "60"}, ROOT, timeout=60)
    wide = DRIVER.run("audit.py", ["--help"], {**BASE, "COLUMNS": "250"}, ROOT, timeout=60)
    assert max(map(len, narrow.stdout.splitlines())) <= 60
    assert max(map(len, wide.stdout.splitlines())) > 60


def test_a_run_past_its_timeout_is_killed_and_said_so(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**BASE, "CASN_DATA_DIR": str(tmp_path / "data"), "CASN_CODEC_PORT": str(port),
           "CASN_PAYLOAD_KEY": KEY, "CASN_PSEUDONYM_KEY": KEY}  # fmt: skip
    with pytest.raises(subprocess.TimeoutExpired):
        DRIVER.run("audit.py", ["serve-codec"], env, tmp_path, timeout=3)  # serves until stopped
    with socket.socket() as s:  # the child was killed: its port is free again
        s.bind(("127.0.0.1", port))
    assert DRIVER.run("audit.py", ["--help"], BASE, ROOT, timeout=60).returncode == 0


def test_only_the_project_s_commands_are_run():
    with pytest.raises(ValueError, match="no forked runs of 'run.py'"):
        DRIVER.run("run.py", [], BASE, ROOT, timeout=5)
