"""The tree is linted and formatted as `python3 run.py lint` asks (ruff check, ruff format)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_finds_no_problem():
    result = _ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_is_formatted():
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, "run .venv/bin/ruff format .\n" + result.stdout + result.stderr
