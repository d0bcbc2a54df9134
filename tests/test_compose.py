"""docker-compose.yml: every CASN_* variable it sets is a real setting, and workers find the servers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runtime.settings import Settings

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    """The parsed docker-compose.yml."""
    return yaml.safe_load(COMPOSE.read_text())


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_casn_variable_is_a_setting(compose):
    fields = {f"CASN_{name.upper()}" for name in Settings.model_fields}
    used = {
        name
        for service in compose["services"].values()
        for name in _environment(service)
        if name.startswith("CASN_")
    }

    assert used and used <= fields, f"unknown settings: {sorted(used - fields)}"


def test_worker_gets_temporal_address_and_database_url(compose):
    env = _environment(compose["services"]["worker"])

    assert env["CASN_TEMPORAL_ADDRESS"].split(":")[0] in compose["services"]
    assert "@readmodel-db:" in env["CASN_DATABASE_URL"]


def test_worker_is_replicated_and_shares_the_keys(compose):
    worker = compose["services"]["worker"]
    env = _environment(worker)

    assert worker["deploy"]["replicas"] >= 2
    for key in ("CASN_PAYLOAD_KEY", "CASN_PSEUDONYM_KEY", "CASN_SIGNING_KEY"):
        assert env[key].startswith(f"${{{key}:?"), f"{key} must be required, not defaulted"


def test_services_of_the_scale_out_deployment_are_present(compose):
    assert {"temporal", "temporal-ui", "temporal-db", "readmodel-db", "worker"} <= set(
        compose["services"]
    )


def test_gateway_runs_apart_with_its_secrets_as_files(compose):
    import subprocess
    import sys

    gateway = compose["services"]["gateway"]
    env = _environment(gateway)
    assert gateway["command"][:2] == ["python", "serve.py"]
    assert env["CASN_GATEWAY_API_KEYS_FILE"].startswith("/run/secrets/")
    assert env["CASN_PORTAL_KEY_FILE"].startswith("/run/secrets/")
    assert set(gateway["secrets"]) <= set(compose["secrets"])
    for service in ("gateway", "worker"):
        command = compose["services"][service]["command"]
        root = COMPOSE.parent
        ran = subprocess.run(
            [sys.executable, *command[1:], "--help"], cwd=root, capture_output=True, text=True
        )
        assert ran.returncode == 0, f"{service}: {command} --help: {ran.stderr[-500:]}"
