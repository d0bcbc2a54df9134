"""starter.py keygen and --key: key files an operator or a service can use, refused when wrong."""

from __future__ import annotations

import json
import stat

from typer.testing import CliRunner

from client.csvio import REGISTRATION_COLUMNS
from domain.messages import SkdReport
from domain.signing import Signer, verify
from starter import cli


def _said(result) -> str:
    """The command's output with the console's line wrapping undone."""
    return " ".join(result.output.split())


def test_keygen_writes_a_private_key_only_its_owner_reads_and_prints_the_public_key(tmp_path):
    result = CliRunner().invoke(cli, ["keygen", "cat-bkn", "--out", str(tmp_path)])

    path = tmp_path / "cat-bkn.key.json"
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    signer = Signer.from_jwk(json.loads(path.read_text()))
    assert f'"cat-bkn" = "{signer.public}"' in _said(result)
    report = SkdReport(report_id="r", reported_by="cat-bkn", twk=100, tiu=100, tkp=150)
    journey = "R1/applicant/A1"
    assert verify(signer.sign(report, journey), {"cat-bkn": signer.public}, journey) is None


def test_keygen_never_overwrites_a_key(tmp_path):
    runner = CliRunner()
    runner.invoke(cli, ["keygen", "cat-bkn", "--out", str(tmp_path)])
    before = (tmp_path / "cat-bkn.key.json").read_text()

    again = runner.invoke(cli, ["keygen", "cat-bkn", "--out", str(tmp_path)])

    assert again.exit_code == 1 and "never overwritten" in _said(again)
    assert (tmp_path / "cat-bkn.key.json").read_text() == before


def test_a_key_of_another_identity_than_as_is_refused_before_anything_is_sent(tmp_path):
    runner = CliRunner()
    runner.invoke(cli, ["keygen", "rsud", "--out", str(tmp_path)])
    args = ["close-window", "R1", "skd", "--reason", "x", "--as", "panitia"]

    result = runner.invoke(cli, [*args, "--key", str(tmp_path / "rsud.key.json")])

    assert result.exit_code == 2
    assert "is rsud's key, but --as says panitia" in _said(result)


def test_a_file_that_is_not_a_key_is_refused_naming_it(tmp_path):
    bad = tmp_path / "key.json"
    bad.write_text('{"kty": "OKP"}')
    args = ["close-window", "R1", "skd", "--reason", "x", "--as", "panitia", "--key", str(bad)]

    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 2 and "not a key file made by starter.py keygen" in _said(result)


def test_import_registrations_takes_the_registering_identitys_key_only(tmp_path):
    runner = CliRunner()
    runner.invoke(cli, ["keygen", "cat-bkn", "--out", str(tmp_path)])
    rows = tmp_path / "sscasn.csv"
    rows.write_text(",".join(REGISTRATION_COLUMNS.all) + "\n", encoding="utf-8")
    args = ["import-registrations", "examples/round-kabupaten.toml", str(rows)]
    args += ["--errors", str(tmp_path / "e.csv"), "--as", "sscasn-portal"]

    result = runner.invoke(cli, [*args, "--key", str(tmp_path / "cat-bkn.key.json")])

    assert result.exit_code == 2
    assert "is cat-bkn's key, but --as says sscasn-portal" in _said(result)


def test_api_key_writes_a_key_only_its_owner_reads_and_the_digest_line_the_gateway_loads(tmp_path):
    from gateway.deps import ApiKeys
    from starter import gateway_target

    result = CliRunner().invoke(cli, ["api-key", "bkpsdm-kab-uji", "--out", str(tmp_path)])

    path = tmp_path / "bkpsdm-kab-uji.api-key"
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    line = next(x for x in result.output.splitlines() if x.startswith('"bkpsdm-kab-uji" = '))
    keys_file = tmp_path / "api-keys.toml"
    keys_file.write_text(line + "\n")
    key = path.read_text().strip()
    assert key not in result.output  # only its digest is printed
    # What to do with the line is what the gateways do (docs/GATEWAY.md): no restart.
    assert "restart the gateways" not in " ".join(result.output.split())
    assert "reads it again within a second" in " ".join(result.output.split())
    loaded = ApiKeys.load(keys_file)
    assert loaded.identity_of(key) == "bkpsdm-kab-uji"
    assert loaded.identity_of(key + "x") is None
    # The file is what --api-key-file takes.
    assert gateway_target("http://127.0.0.1:8000", path) == ("http://127.0.0.1:8000", key)
    assert CliRunner().invoke(cli, ["api-key", "rsud", "--out", str(tmp_path)]).exit_code == 0
    assert (tmp_path / "rsud.api-key").read_text().strip() != key


def test_api_key_never_overwrites_a_key_and_refuses_a_bad_identity(tmp_path):
    runner = CliRunner()
    runner.invoke(cli, ["api-key", "cat-bkn", "--out", str(tmp_path)])
    before = (tmp_path / "cat-bkn.api-key").read_text()

    again = runner.invoke(cli, ["api-key", "cat-bkn", "--out", str(tmp_path)])
    bad = runner.invoke(cli, ["api-key", "../cat-bkn", "--out", str(tmp_path)])

    assert again.exit_code == 1 and "never overwritten" in _said(again)
    assert (tmp_path / "cat-bkn.api-key").read_text() == before
    assert bad.exit_code == 2 and "no /" in _said(bad)
