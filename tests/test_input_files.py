"""Files handed to the command lines that are not files, or never end.

An operator's CSV, round file or key and an auditor's bundle come from others. A FIFO among them
blocked the command for ever at the first read; a link to /dev/zero (or a sparse file of one
endless line) was read into memory until the machine ran out (3 GB in 8 s, on `report` and on
`audit.py verify` alike). Each is now refused naming the file and what it is, before a byte is
read, and a line longer than LINE_LIMIT is refused as a row without being held.

The commands run as processes under a 1.5 GB address-space limit and a time-out, so that a
regression fails the test instead of the machine."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from auditing.bundle import load_histories
from client.csvio import BoundedLines, records
from tests.forked import DRIVER
from tests.test_audit_tampering import SIGNED, bundle_of

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str) -> tuple[int, str]:
    """The command's exit code and output (stdout and stderr), within 60 s and 1.5 GB (a
    process forked from one that imported the scripts once: tests/forked.py)."""
    done = DRIVER.run(
        script,
        list(args),
        {**os.environ, "COLUMNS": "300"},
        ROOT,
        timeout=60,
        address_space=1_500_000_000,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def _not_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    return {"FIFO": fifo, "device": zero}


@pytest.mark.parametrize("kind", ["FIFO", "device"])
def test_a_report_file_that_is_a_fifo_or_dev_zero_is_refused_naming_it(tmp_path, kind):
    path = _not_files(tmp_path)[kind]

    code, out = _run(
        "starter.py", "report", "skd", "R-1", str(path), "--as", "cat-bkn",
        "--errors", str(tmp_path / "e.csv"),
    )  # fmt: skip

    assert code == 2, out
    assert f"{path}" in out and f"not a regular file but a {kind}" in out, out


@pytest.mark.parametrize("kind", ["FIFO", "device"])
def test_a_key_file_that_is_a_fifo_or_dev_zero_is_refused_naming_it(tmp_path, kind):
    path = _not_files(tmp_path)[kind]
    rows = tmp_path / "skd.csv"
    rows.write_text("report_id,applicant_id,twk,tiu,tkp,session_id\n", encoding="utf-8")

    code, out = _run(
        "starter.py", "report", "skd", "R-1", str(rows), "--as", "cat-bkn", "--key", str(path),
        "--errors", str(tmp_path / "e.csv"),
    )  # fmt: skip

    assert code == 2, out
    assert f"--key {path}: cannot be read (not a regular file but a {kind}" in out, out


@pytest.mark.parametrize("kind", ["FIFO", "device"])
def test_a_round_file_that_is_a_fifo_or_dev_zero_is_refused_naming_it(tmp_path, kind):
    path = _not_files(tmp_path)[kind]

    code, out = _run("starter.py", "create-round", str(path))

    assert code == 2, out
    assert f"{path}" in out and "cannot be read: not a regular file" in out, out


@pytest.mark.parametrize("kind", ["FIFO", "device"])
def test_a_bundle_whose_signature_file_is_a_fifo_or_dev_zero_is_named_not_ok(tmp_path, kind):
    bundle = bundle_of(tmp_path, load_histories(SIGNED))
    (bundle / "manifest.sig").unlink()
    (bundle / "manifest.sig").symlink_to(_not_files(tmp_path)[kind])

    code, out = _run("audit.py", "verify", str(bundle))

    assert code == 1, out
    assert f"manifest.sig: cannot be read: not a regular file but a {kind}" in out, out
    assert "not read further" in out


def test_a_bundle_whose_history_file_was_swapped_for_a_fifo_is_named_not_ok(tmp_path):
    bundle = bundle_of(tmp_path, load_histories(SIGNED))
    victim = sorted((bundle / "histories").iterdir())[0]
    victim.unlink()
    os.mkfifo(victim)

    code, out = _run(
        "audit.py", "verify", str(bundle), "--payload-key-file", str(SIGNED / "payload_key.b64")
    )

    assert code == 1, out
    assert f"{victim.name}: cannot be read: not a regular file but a FIFO" in out, out


class _Reads(io.StringIO):
    """A text file that remembers the most characters one readline was allowed to return."""

    most = 0

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        self.most = max(self.most, size if size is not None and size >= 0 else 1 << 62)
        return super().readline(size)


def test_a_line_longer_than_the_limit_is_refused_as_its_row_and_never_held_whole():
    text = "a,b\n1,2\n" + "x" * 250 + "\n3,4\n"
    handle = _Reads(text)
    reader = csv.reader(BoundedLines(handle, limit=40))
    next(reader)  # the header

    read = list(records(reader))

    assert [(line, cells) for line, cells, _ in read] == [
        (2, ["1", "2"]),
        (3, None),
        (4, ["3", "4"]),
    ]
    assert "larger than field limit" in read[1][2]
    assert handle.most == 40  # no line was asked for whole
