"""Files the project writes with personal data are readable by their owner alone (mode 0600),
whatever the umask, and a file that was there before is narrowed before it is written."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from activities.notify import FileTransport
from auditing.bundle import check_bundle, load_histories, write_bundle
from client.csvio import RowRefusal
from runtime.files import open_private
from runtime.keys import load_or_create_keys
from runtime.settings import load_settings
from starter import ErrorsFile


@pytest.fixture
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_errors_file_is_private(tmp_path, open_umask):
    fresh = tmp_path / "errors.csv"
    errors = ErrorsFile(fresh)
    errors.write([RowRefusal(2, "birth_date", "1990-01-31", "too old", "r2")])
    errors.close()
    assert _mode(fresh) == 0o600

    older = tmp_path / "older.csv"
    older.write_text("line,id,field,value,reason\n")
    older.chmod(0o644)
    ErrorsFile(older, append=True).close()
    assert _mode(older) == 0o600


def test_the_notification_file_transport_is_private(tmp_path, open_umask):
    path = tmp_path / "notifications.jsonl"
    asyncio.run(FileTransport(path).send("R", "A", "k", "Anda dinyatakan TMS"))
    assert _mode(path) == 0o600


def test_open_private_does_not_follow_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError):
        open_private(link)


def test_generated_keys_are_private_and_a_wider_key_file_is_narrowed(tmp_path, open_umask):
    settings = load_settings(
        data_dir=tmp_path, temporal_address=None, payload_key=None, pseudonym_key=None,
        signing_key=None,
    )  # fmt: skip
    load_or_create_keys(settings)
    keys = tmp_path / "keys"
    assert {f.name: _mode(f) for f in keys.iterdir()} == dict.fromkeys(
        ["payload_key.b64", "pseudonym_key.b64", "signing_key.b64"], 0o600
    )
    assert _mode(keys) == 0o700

    (keys / "payload_key.b64").chmod(0o644)  # restored from a backup with the umask's mode
    load_or_create_keys(settings)
    assert _mode(keys / "payload_key.b64") == 0o600


def test_an_exported_audit_bundle_is_private(tmp_path, open_umask):
    histories = load_histories(Path(__file__).parent / "histories")

    write_bundle(histories, "recorded", tmp_path / "bundle", bytes(32))

    files = [f for f in (tmp_path / "bundle").rglob("*") if f.is_file()]
    assert len(files) == len(histories) + 3  # the histories, manifest, signature, public key
    assert {f.relative_to(tmp_path).as_posix(): _mode(f) for f in files} == {
        f.relative_to(tmp_path).as_posix(): 0o600 for f in files
    }
    assert check_bundle(tmp_path / "bundle").problems == []


def test_the_evaluation_report_is_private_and_a_wider_earlier_one_is_narrowed(tmp_path, open_umask):
    from apps.evaluation import write_report
    from auditing.evaluation import evaluation
    from tests.test_evaluation_tables import FACTS, READ

    out = tmp_path / "evaluation"
    out.mkdir()
    (out / "panel_flags.csv").write_text("from an earlier run\n")
    (out / "panel_flags.csv").chmod(0o644)

    written = write_report(evaluation(FACTS, READ, 25), out, "basis")

    files = [written.index, *written.csvs]
    assert out / "panel_flags.csv" in files
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
