"""The gateway's API keys file on the real stack: a key taken out of the file opens nothing from
the next request on, a key added works at once, and an edit that cannot be read leaves the keys
in force and says so, all without a restart (gateway/deps.py ApiKeyFile)."""

from __future__ import annotations

import dataclasses
import os
import shutil

import httpx
import pytest
from structlog.testing import capture_logs

from gateway.app import create_app
from gateway.deps import ApiKeyFile, api_key_digest
from tests.roundkit import OPERATOR

pytestmark = pytest.mark.asyncio(loop_scope="session")

OLD, NEW = "the-operator-s-old-key", "the-operator-s-new-key"
STATUS = "/api/v1/rounds/keys-no-such-round"  # a known key gets past the door: 404


def _write(path, *keys: str) -> None:
    digests = ", ".join(f'"{api_key_digest(k)}"' for k in keys)
    path.write_text(f"{OPERATOR} = [{digests}]\n", encoding="utf-8")


async def _status(http: httpx.AsyncClient, key: str) -> int:
    return (await http.get(STATUS, headers={"Authorization": f"Bearer {key}"})).status_code


async def test_a_key_revoked_in_the_file_opens_nothing_without_a_restart(gateway_state, tmp_path):
    path = tmp_path / "api-keys.toml"
    _write(path, OLD)
    keys = ApiKeyFile(path, check_every=0)
    app = create_app(dataclasses.replace(gateway_state, api_keys=keys))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as http:
        assert (await _status(http, OLD), await _status(http, NEW)) == (404, 401)

        _write(path, OLD, NEW)  # a key being replaced: both open, from the next request on
        assert (await _status(http, OLD), await _status(http, NEW)) == (404, 404)

        _write(path, NEW)  # the old one revoked
        assert (await _status(http, OLD), await _status(http, NEW)) == (401, 404)

        # An edit that cannot be read keeps the keys in force, and the log says so.
        path.write_text(f'{OPERATOR} = "{api_key_digest(OLD)[:30]}"\n', encoding="utf-8")
        with capture_logs() as logs:
            assert (await _status(http, OLD), await _status(http, NEW)) == (401, 404)
        errors = [e for e in logs if e["log_level"] == "error"]
        assert errors and "stay in force" in errors[0]["event"], logs
        assert str(path) == errors[0]["path"]
        assert OLD not in repr(logs) and NEW not in repr(logs)


async def test_a_key_replaced_by_a_copy_that_keeps_the_file_s_time_and_size_is_revoked(
    gateway_state, tmp_path
):
    """A deployment that installs the file by copying it over the old one with its time kept
    (cp -p, install -p, shutil.copy2), from a build whose files all carry one fixed time, leaves
    the same inode, size (a digest replaced by another) and modification time: the new content is
    still read, and the old key revoked."""
    fixed = 315_532_800  # 1980-01-01: the time a reproducible build gives every file
    live, staged = tmp_path / "api-keys.toml", tmp_path / "staged.toml"
    _write(live, OLD)
    os.utime(live, (fixed, fixed))
    keys = ApiKeyFile(live, check_every=0)
    app = create_app(dataclasses.replace(gateway_state, api_keys=keys))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as http:
        assert (await _status(http, OLD), await _status(http, NEW)) == (404, 401)

        _write(staged, NEW)
        os.utime(staged, (fixed, fixed))
        inode = live.stat().st_ino
        shutil.copy2(staged, live)
        assert (live.stat().st_ino, live.stat().st_mtime) == (inode, fixed)  # as it was
        assert (await _status(http, OLD), await _status(http, NEW)) == (401, 404)
