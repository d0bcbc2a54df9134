"""Keys are given in a deployment and generated only in the embedded mode (issue 12)."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from runtime.app import open_app
from runtime.keys import MissingKeyError, load_or_create_keys, payload_key_id, pseudonym_key_id
from runtime.settings import LogFormat, describe_settings_error, load_settings
from tests.forked import DRIVER

DEPLOYMENT = "temporal.example.internal:7233"
KEY_VARIABLES = {
    "payload_key": "CASN_PAYLOAD_KEY",
    "pseudonym_key": "CASN_PSEUDONYM_KEY",
    "signing_key": "CASN_SIGNING_KEY",
}


def _settings(tmp_path, **values):
    given = {
        "temporal_address": None,
        "payload_key": None,
        "pseudonym_key": None,
        "signing_key": None,
        "payload_previous_keys": "",
        **values,
    }
    return load_settings(data_dir=tmp_path, log_format=LogFormat.JSON, **given)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_the_embedded_mode_generates_each_key_once_under_the_data_dir(tmp_path):
    keys = load_or_create_keys(_settings(tmp_path))

    assert len({keys.payload_key, keys.pseudonym_key, keys.signing_key}) == 3
    assert sorted(f.name for f in (tmp_path / "keys").iterdir()) == [
        "payload_key.b64",
        "pseudonym_key.b64",
        "signing_key.b64",
    ]


@pytest.mark.parametrize("name", list(KEY_VARIABLES))
def test_a_deployment_without_a_key_is_refused_naming_the_variable_and_how_to_make_one(
    tmp_path, name
):
    keys = load_or_create_keys(_settings(tmp_path, temporal_address=DEPLOYMENT))

    with pytest.raises(MissingKeyError) as missing:
        getattr(keys, name)

    message = str(missing.value)
    assert message.startswith(f"{KEY_VARIABLES[name]} is not set")
    assert "keys are never generated" in message and "os.urandom(32)" in message
    assert not (tmp_path / "keys").exists()


def test_a_deployment_never_reads_a_key_an_embedded_run_left_in_the_data_dir(tmp_path):
    embedded = load_or_create_keys(_settings(tmp_path))
    assert embedded.pseudonym_key  # generated under data_dir/keys

    deployed = load_or_create_keys(_settings(tmp_path, temporal_address=DEPLOYMENT))

    with pytest.raises(MissingKeyError, match="CASN_PSEUDONYM_KEY is not set"):
        deployed.pseudonym_key  # noqa: B018


def test_a_deployment_uses_the_keys_it_is_given(tmp_path):
    payload, pseudonym = os.urandom(32), os.urandom(32)
    settings = _settings(
        tmp_path,
        temporal_address=DEPLOYMENT,
        payload_key=_b64(payload),
        pseudonym_key=_b64(pseudonym),
    )

    keys = load_or_create_keys(settings)

    assert (keys.payload_key, keys.pseudonym_key) == (payload, pseudonym)
    with pytest.raises(MissingKeyError, match="CASN_SIGNING_KEY"):  # only bundle export needs it
        keys.signing_key  # noqa: B018


async def test_a_deployment_without_its_payload_key_stops_before_connecting_anywhere(tmp_path):
    settings = _settings(
        tmp_path,
        temporal_address="127.0.0.1:9",  # nothing listens there: reaching it would fail otherwise
        database_url="postgresql://nobody@127.0.0.1:9/none",
    )

    with pytest.raises(MissingKeyError, match="CASN_PAYLOAD_KEY is not set"):
        await open_app(settings)


def test_key_ids_are_fingerprints_that_differ_by_purpose_and_hide_the_key():
    key = os.urandom(32)

    assert payload_key_id(key) != pseudonym_key_id(key)
    assert pseudonym_key_id(key) == pseudonym_key_id(key) != pseudonym_key_id(os.urandom(32))
    assert key.hex()[:16] not in (payload_key_id(key), pseudonym_key_id(key))


def test_a_logged_keys_object_shows_no_key_material(tmp_path):
    keys = load_or_create_keys(_settings(tmp_path))

    shown = repr(keys)

    material = (keys.payload_key, keys.pseudonym_key, keys.signing_key)
    assert not any(_b64(key) in shown or key.hex() in shown for key in material)


# --- settings read from the environment: named, never a key's value -----------------------------

ROOT = Path(__file__).resolve().parent.parent
KEY = base64.b64encode(bytes(range(32))).decode()


def _command(tmp_path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """One command of `script` against a cluster nobody answers at (port 1), with `env` added."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CASN_")},
        "CASN_DATA_DIR": str(tmp_path / "data"),
        "CASN_TEMPORAL_ADDRESS": "127.0.0.1:1",
        "CASN_DATABASE_URL": "postgresql://casn:hunter2@127.0.0.1:1/casn",
        "CASN_PAYLOAD_KEY": KEY,
        "CASN_PSEUDONYM_KEY": KEY,
        "CASN_SIGNING_KEY": KEY,
        "CASN_METRICS_PORT": "0",
        **env,
    }
    # A process of its own, forked from one that imported the scripts once (tests/forked.py).
    return DRIVER.run(script, list(args), environment, tmp_path, timeout=120)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("CASN_TEMPORAL_ADDRESS", "http://temporal:7233", "without a scheme"),
        ("CASN_TEMPORAL_ADDRESS", "temporal", "give host:port"),
        ("CASN_TEMPORAL_ADDRESS", "temporal:70000", "port '70000' is not a number 1-65535"),
        ("CASN_TEMPORAL_ADDRESS", "temporal: 7233", "holds a space"),
        ("CASN_DATABASE_URL", "mysql://casn@db:5432/casn", "scheme 'mysql' is not postgresql"),
        ("CASN_DATABASE_URL", "postgresql://casn@db:port/casn", "the port is not a number"),
        ("CASN_DATABASE_URL", "postgresql://casn@:5432/casn", "names no host"),
    ],
)
def test_a_server_address_that_cannot_be_one_is_refused_naming_the_variable(variable, value, said):
    with pytest.raises(ValidationError) as caught:
        load_settings(**{variable.removeprefix("CASN_").lower(): value})
    described = describe_settings_error(caught.value)
    assert described.startswith(f"{variable}=") and said in described, described


def test_addresses_of_every_usual_form_are_taken():
    settings = load_settings(
        temporal_address="[::1]:7233", database_url="postgresql:///casn?host=/run/postgresql"
    )
    assert settings.temporal_address == "[::1]:7233"
    assert load_settings(database_url="postgres://casn:pw@db.internal:5432/casn").database_url


@pytest.mark.parametrize("script", ["starter.py", "audit.py", "worker.py"])
def test_a_bad_setting_is_one_line_naming_it_never_a_key_and_exits_2(tmp_path, script):
    args = {
        "starter.py": ["status", "R1"],
        "audit.py": ["trail", "R1", "A" * 16],
        "worker.py": ["deliver-notifications", "--once"],
    }[script]
    result = _command(
        tmp_path,
        script,
        *args,
        CASN_QUERY_SECONDS="often",
        CASN_DATABASE_URL="mysql://casn:hunter2@db/casn",
        CASN_WORKER_STICKY_RESERVED_WORKFLOW_SLOTS="500",
    )
    said = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert "bad configuration" in said and "Traceback" not in said
    assert "CASN_QUERY_SECONDS='often': Input should be a valid number" in said
    assert "CASN_DATABASE_URL='mysql://casn:***@db/casn': scheme 'mysql'" in said
    assert "hunter2" not in said and KEY[:8] not in said


def test_a_key_s_value_is_never_shown_in_a_settings_error():
    with pytest.raises(ValidationError) as caught:
        load_settings(payload_key=12345678, pseudonym_key=None, signing_key=None)
    assert str(caught.value).count("12345678") == 0
    assert describe_settings_error(caught.value) == (
        "CASN_PAYLOAD_KEY=<hidden>: Input should be a valid string"
    )


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("audit.py", ["trail", "R1", "A" * 16]),
        ("audit.py", ["check-read-model", "R1"]),
        ("worker.py", ["deliver-notifications", "--once"]),
    ],
)
def test_a_cluster_that_does_not_answer_stops_the_command_in_one_line(tmp_path, script, args):
    result = _command(tmp_path, script, *args)
    said = " ".join(result.stderr.split())
    assert result.returncode == 3, result.stderr
    assert said.startswith("stopped: ") and "cannot be reached" in said, said
    assert "Traceback" not in said and "hunter2" not in said


def test_a_check_across_settings_shows_its_own_message_not_every_setting(tmp_path):
    result = _command(
        tmp_path, "starter.py", "status", "R1", CASN_WORKER_STICKY_RESERVED_WORKFLOW_SLOTS="500"
    )
    said = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert said.startswith("bad configuration: CASN_WORKER_STICKY_RESERVED_WORKFLOW_SLOTS=500")
    assert KEY[:8] not in said and "hunter2" not in said


def test_a_data_dir_that_is_a_file_is_refused_naming_it(tmp_path):
    a_file = tmp_path / "data"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        load_settings(data_dir=a_file)
    assert describe_settings_error(caught.value) == (
        f"CASN_DATA_DIR={str(a_file)!r}: is a file, not a folder: give the folder the engine "
        "keeps its data in"
    )


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("CASN_TASK_QUEUE", "", "is empty: give the name, or leave the variable unset"),
        ("CASN_TASK_QUEUE", " casn ", "has spaces at its start or end"),
        ("CASN_TEMPORAL_NAMESPACE", "", "is empty: give the name, or leave the variable unset"),
        ("CASN_DATA_DIR", "", "is empty: give the folder the engine keeps its data in"),
        ("CASN_DATA_DIR", "  ", "is empty: give the folder the engine keeps its data in"),
    ],
)
def test_an_empty_name_or_folder_is_refused_naming_the_variable(variable, value, said):
    """An empty task queue reached the server (a traceback at the first start), an empty
    namespace read as an outage, an empty data folder meant wherever the command ran."""
    with pytest.raises(ValidationError) as caught:
        load_settings(**{variable.removeprefix("CASN_").lower(): value})
    described = describe_settings_error(caught.value)
    assert described.startswith(f"{variable}={value!r}: ") and said in described, described
