"""Files the project writes with personal data are readable by their owner alone (mode 0600),
whatever the umask, and a file that was there before is narrowed before it is written."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from activities.notify import FileTransport
from client.csvio import RowRefusal
from runtime.files import open_private
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
