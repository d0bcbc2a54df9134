"""Keys are given in a deployment and generated only in the embedded mode (issue 12)."""

from __future__ import annotations

import base64
import os

import pytest

from runtime.app import open_app
from runtime.keys import MissingKeyError, load_or_create_keys, payload_key_id, pseudonym_key_id
from runtime.settings import LogFormat, load_settings

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
