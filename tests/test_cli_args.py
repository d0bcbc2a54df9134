"""A command line's arguments are judged before anything connects: a round id, a registration
number, a formasi code, a message's field, a key file or a folder to write into that cannot be
used exits 2 naming the argument and its value. Each command here is run as an operator or an
auditor runs it, against a cluster nobody answers at: a check made only after connecting would
stop with `stopped:` (exit 3) instead, and in the embedded mode would have started the servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.signing import Signer
from tests.test_keys_settings import _command  # against a cluster and a database at port 1

NUMBER = "A" * 16  # a registration number no round gave


def _files(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def _refused_before_connecting(tmp_path: Path, script: str, args: list[str], said: str) -> None:
    """`args` exit 2 with one line that starts with `said`, and nothing was written."""
    before = _files(tmp_path)
    result = _command(tmp_path, script, *args)
    out = " ".join(result.stderr.split())
    assert result.returncode == 2, out
    assert out.startswith(said), out
    assert "stopped" not in out and "Traceback" not in out, out
    assert _files(tmp_path) == before  # no data dir, no key, no output file


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A report file, a signing key and a plain file, the inputs the commands below are given."""
    (tmp_path / "admin.csv").write_text("report_id,applicant_id,findings\n", encoding="utf-8")
    (tmp_path / "op.key.json").write_text(json.dumps(Signer.generate("op").jwk()))
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    return tmp_path


AS = ["--reason", "surat 12", "--as", "panitia"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["status", "KAB BDG"], "bad arguments: ROUND_ID='KAB BDG': not a round id (a letter"),
        (["survey-results", "kab/2024"], "bad arguments: ROUND_ID='kab/2024': not a round id"),
        (
            ["national-funnel", "CASN 2026"],
            "bad arguments: NATIONAL_ID='CASN 2026': not a national id",
        ),
        (
            ["report", "admin", "R 1", "admin.csv", "--as", "v", "--errors", "e.csv"],
            "bad arguments: ROUND_ID='R 1': not a round id",
        ),
        (
            ["extend-window", "R 1", "skd", "2027-08-30T10:00:00+07:00", *AS],
            "bad arguments: ROUND_ID='R 1'",
        ),
        (["close-window", "R/1", "skd", *AS], "bad arguments: ROUND_ID='R/1'"),
        (["move-tmt", "R/1", "2028-03-01", *AS], "bad arguments: ROUND_ID='R/1'"),
        (
            ["disqualify", "R1", "C1", *AS],
            "bad arguments: APPLICANT_ID='C1': not a registration number (16 capital letters",
        ),
        (
            ["disqualify", "R1", NUMBER, "--reason", "", "--as", "panitia"],
            "bad arguments: reason: String should have at least 1 character",
        ),
        (
            ["dismiss", "R1", NUMBER, "--decree", "", *AS],
            "bad arguments: decree_no: String should have at least 1 character",
        ),
        (
            ["withdraw", "R1", NUMBER.lower(), "--as", "portal"],
            f"bad arguments: APPLICANT_ID='{NUMBER.lower()}': not a registration number",
        ),
        (["withdraw", "R 1", NUMBER, "--as", "portal"], "bad arguments: ROUND_ID='R 1'"),
        (
            ["change-keys", "R1", "sscasn", "not-a-key", *AS],
            "bad arguments: PUBLIC_KEY='not-a-key': not a public key as keygen prints it",
        ),
        (
            ["lookup", "R1", "--applicant", "A1"],
            "bad arguments: --applicant='A1': not a registration number",
        ),
        (["lookup", "R 1", "--applicant", NUMBER], "bad arguments: ROUND_ID='R 1'"),
        (
            ["panel-sheet", "R1", "--panellist", "p1", "--formasi", "F 1"],
            "bad arguments: --formasi='F 1': not a formasi code",
        ),
        (
            ["panel-sheet", "R1", "--panellist", "p1", "--out", "a-file/sheet.csv"],
            "bad input: --out a-file/sheet.csv: cannot be written (a-file is a file, not a folder)",
        ),
        (["outstanding", "KAB BDG"], "bad arguments: ROUND_ID='KAB BDG': not a round id"),
        (
            ["outstanding", "R1", "--formasi", "F/1"],
            "bad arguments: --formasi='F/1': not a formasi code",
        ),
        (
            ["outstanding", "R1", "--gateway", "http://gateway.example"],
            "bad input: --gateway 'http://gateway.example': plain http would send the API key",
        ),
        (
            ["announce", "R1", "admin", "--key", "."],
            "bad input: --key .: a directory; give the key file made by keygen",
        ),
        (
            ["announce", "R1", "admin", "--key", "op.key.json", "--out", "a-file"],
            "bad input: --out a-file: cannot be written (it is a file: give a directory)",
        ),
        (["announce", "R 1", "admin", "--key", "op.key.json"], "bad arguments: ROUND_ID='R 1'"),
        (
            ["evaluate", "R1", "--out", "/proc/casn-evaluation"],
            "bad input: --out /proc/casn-evaluation: cannot be written",
        ),
        (
            ["evaluate", "R1", "--outlier-margin", "inf"],
            "bad arguments: --outlier-margin=inf: give a number of points",
        ),
        (["purge-personal-data", "R 1"], "bad arguments: ROUND_ID='R 1': not a round id"),
        (
            ["purge-personal-data", "R1", "--as", " dpo"],
            "bad arguments: --as=' dpo': 1-100 printable characters, no leading or trailing space",
        ),
        (
            ["purge-personal-data", "R1", "--before-retention-ends", "soon"],
            "bad arguments: --before-retention-ends='soon': give the reason, 10-500 printable",
        ),
        (
            ["purge-personal-data", "R1", "--retention-days", "0"],
            "bad arguments: --retention-days=0: give a number of days from 1 to 3650",
        ),
        (
            ["purge-personal-data", "R1", "--retention-days", "3651"],
            "bad arguments: --retention-days=3651: give a number of days from 1 to 3650",
        ),
        (
            ["purge-personal-data", "R1", "--batch", "0"],
            "bad arguments: --batch=0: give a number of rows from 1 to 100,000",
        ),
    ],
)
def test_an_operator_command_s_bad_argument_is_named_before_anything_connects(inputs, args, said):
    _refused_before_connecting(inputs, "starter.py", args, said)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["trail", "R1", "C1"],
            "bad arguments: APPLICANT_ID='C1': not a registration number (16 capital letters",
        ),
        (["trail", "R 1", NUMBER], "bad arguments: ROUND_ID='R 1': not a round or national id"),
        (["replay", "x' OR RoundId != '"], "bad arguments: ROUND_ID=\"x' OR RoundId != '\""),
        (
            ["replay", "R1", "--kind", "claims"],
            "bad arguments: --kind='claims': not one of journey, formasi,",
        ),
        (["export", "R1", "--out", "a-file"], "bad input: --out a-file: cannot be written"),
        (
            ["export", "R1", "--out", "/proc/casn-bundle"],
            "bad input: --out /proc/casn-bundle: cannot be written",
        ),
        (
            ["recompute", "R1", "--skd-listing", "a-file/skd.csv"],
            "bad input: --skd-listing a-file/skd.csv: cannot be written (no folder a-file)",
        ),
        (
            ["recompute", "R1", "--skd-listing", "/proc/skd.csv"],
            "bad input: --skd-listing /proc/skd.csv: cannot be written",
        ),
        (["recompute", "R1", "--bundle", "nowhere"], "bad input: --bundle nowhere: no such folder"),
        (["check-read-model", "kab/1"], "bad arguments: ROUND_ID='kab/1'"),
        (["check-pages", "R.1/x"], "bad arguments: ROUND_ID='R.1/x'"),
        (["registrations", "R 1"], "bad arguments: ROUND_ID='R 1'"),
        (
            ["access-log", "R1", "--applicant", "c1"],
            "bad arguments: --applicant='c1': not a registration number",
        ),
        (["verify-announcements", "--round-id", "R 1"], "bad arguments: --round-id='R 1'"),
        (
            ["verify-announcements", "--round-id", "R1", "nowhere.json"],
            "bad input: FILE nowhere.json: no such file",
        ),
    ],
)
def test_an_audit_command_s_bad_argument_is_named_before_anything_connects(inputs, args, said):
    _refused_before_connecting(inputs, "audit.py", args, said)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["verify", "nowhere"], "bad input: BUNDLE nowhere: no such folder"),
        (["verify", "a-file"], "bad input: BUNDLE a-file: not a folder"),
        (
            ["verify", ".", "--payload-key-file", "nowhere.b64"],
            "bad input: --payload-key-file nowhere.b64: no such file",
        ),
        (["verify", ".", "--public-key", "."], "bad input: --public-key .: a directory"),
    ],
)
def test_an_offline_audit_command_s_bad_file_is_named_before_anything_is_read(inputs, args, said):
    _refused_before_connecting(inputs, "audit.py", args, said)


def test_every_operator_command_and_group_help_ends_with_the_exit_codes():
    """README: every `starter.py` command's `--help` ends with the exit codes, the `sanctions`
    group's and its commands' included (the group's lacked them until 2026-12)."""
    from typer.testing import CliRunner

    import starter

    runner = CliRunner()
    paths = [
        [c.name or c.callback.__name__.replace("_", "-")] for c in starter.cli.registered_commands
    ]
    for group in starter.cli.registered_groups:
        paths.append([group.name])
        paths += [[group.name, c.name or c.callback.__name__.replace("_", "-")]
                  for c in group.typer_instance.registered_commands]  # fmt: skip
    lacking = []
    for path in paths:
        shown = runner.invoke(starter.cli, [*path, "--help"], env={"COLUMNS": "400"})
        assert shown.exit_code == 0, (path, shown.output)
        if "Exit codes: 0 ok; 1 refused" not in shown.output:
            lacking.append(" ".join(path))
    assert len(paths) > 20 and lacking == []
