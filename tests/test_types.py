"""The rules in domain/ type-check (mypy with the pydantic plugin, configured in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def test_domain_type_checks():
    stdout, stderr, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), str(ROOT / "domain")]
    )
    assert status == 0, stdout + stderr
