"""TLS and password settings for Temporal and PostgreSQL: checked when read, named when wrong, and
built into what the clients use (a real TLS handshake with the SDK; a DSN that asyncpg reads)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import ValidationError

from runtime.connection import connect
from runtime.embedded import StackInfo
from runtime.keys import Keys
from runtime.settings import describe_settings_error, load_settings
from runtime.transport import (
    TransportError,
    masked,
    migration_dsn,
    read_model_dsn,
    temporal_tls,
)
from tests.pki import issue, write_pem

FRONTEND = "temporal.casn.internal"


@pytest.fixture
def pki(tmp_path) -> dict[str, Path]:
    """A throw-away CA, the frontend's certificate and a worker's client certificate, as PEM files."""
    ca_key, ca_cert = issue("casn test CA", ca=True)
    server_key, server_cert = issue(
        FRONTEND, ca_key, "casn test CA", usage=ExtendedKeyUsageOID.SERVER_AUTH, names=(FRONTEND,)
    )
    client_key, client_cert = issue(
        "casn-worker", ca_key, "casn test CA", usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    _, ca = write_pem(tmp_path, "ca", ca_key, ca_cert)
    server_key_path, server = write_pem(tmp_path, "server", server_key, server_cert)
    client_key_path, client = write_pem(tmp_path, "client", client_key, client_cert)
    other_key, _ = issue("someone else")
    other_key_path, _ = write_pem(tmp_path, "other", other_key, client_cert)
    return {
        "ca": ca,
        "server": server,
        "server_key": server_key_path,
        "client": client,
        "client_key": client_key_path,
        "other_key": other_key_path,
    }


def _deployment(**values):
    return load_settings(
        temporal_address="127.0.0.1:7233", database_url="postgresql://casn@db:5432/casn", **values
    )


# --- settings are checked when read --------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("temporal_tls_ca_file", "CASN_TEMPORAL_TLS_CA_FILE"),
        ("database_sslrootcert", "CASN_DATABASE_SSLROOTCERT"),
        ("database_password_file", "CASN_DATABASE_PASSWORD_FILE"),
    ],
)
def test_a_missing_file_is_named_with_its_variable_and_value(tmp_path, field, variable):
    missing = tmp_path / "nowhere.pem"

    with pytest.raises(ValidationError) as caught:
        _deployment(**{field: missing})

    assert f"{variable}='{missing}': no such file" in str(caught.value)


def test_a_client_certificate_without_its_key_is_refused(pki):
    with pytest.raises(ValidationError) as caught:
        _deployment(temporal_tls_cert_file=pki["client"])

    assert (
        f"CASN_TEMPORAL_TLS_CERT_FILE='{pki['client']}' is given without CASN_TEMPORAL_TLS_KEY_FILE"
        in str(caught.value)
    )


def test_a_key_without_its_certificate_is_refused(pki):
    with pytest.raises(ValidationError) as caught:
        _deployment(temporal_tls_key_file=pki["client_key"])

    assert "CASN_TEMPORAL_TLS_KEY_FILE=" in str(caught.value)
    assert "without CASN_TEMPORAL_TLS_CERT_FILE" in str(caught.value)


def test_temporal_tls_for_the_embedded_dev_server_is_refused(pki, tmp_path):
    with pytest.raises(ValidationError) as caught:
        load_settings(temporal_address=None, temporal_tls_ca_file=pki["ca"], data_dir=tmp_path)

    assert "CASN_TEMPORAL_TLS_CA_FILE=" in str(caught.value)
    assert "CASN_TEMPORAL_ADDRESS, which is not set" in str(caught.value)


def test_a_password_file_for_the_embedded_database_is_refused(tmp_path):
    password = tmp_path / "password"
    password.write_text("s3cret\n")

    with pytest.raises(ValidationError) as caught:
        load_settings(database_url=None, database_password_file=password, data_dir=tmp_path)

    assert f"CASN_DATABASE_PASSWORD_FILE='{password}' is for the database of CASN_DATABASE_URL" in (
        str(caught.value)
    )


def test_an_unknown_sslmode_is_refused():
    with pytest.raises(ValidationError) as caught:
        _deployment(database_sslmode="always")

    # The value is named by describe_settings_error (the settings hide inputs in their own message).
    assert describe_settings_error(caught.value).startswith("CASN_DATABASE_SSLMODE='always': ")


# --- Temporal: TLS built from the files ----------------------------------------------------------


def test_no_tls_setting_means_no_tls():
    assert temporal_tls(_deployment()) is None


def test_the_temporal_tls_config_is_built_from_the_files(pki):
    settings = _deployment(
        temporal_tls_ca_file=pki["ca"],
        temporal_tls_cert_file=pki["client"],
        temporal_tls_key_file=pki["client_key"],
        temporal_tls_server_name=FRONTEND,
    )

    tls = temporal_tls(settings)

    assert tls is not None
    assert (tls.server_root_ca_cert, tls.client_cert, tls.client_private_key, tls.domain) == (
        pki["ca"].read_bytes(),
        pki["client"].read_bytes(),
        pki["client_key"].read_bytes(),
        FRONTEND,
    )


def test_a_key_that_is_not_the_certificates_is_named(pki):
    settings = _deployment(
        temporal_tls_cert_file=pki["client"], temporal_tls_key_file=pki["other_key"]
    )

    with pytest.raises(TransportError) as caught:
        temporal_tls(settings)

    assert str(caught.value) == (
        f"CASN_TEMPORAL_TLS_KEY_FILE='{pki['other_key']}' is not the private key of "
        f"CASN_TEMPORAL_TLS_CERT_FILE='{pki['client']}'"
    )


def test_a_ca_file_that_is_not_pem_is_named(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")

    with pytest.raises(TransportError) as caught:
        temporal_tls(_deployment(temporal_tls_ca_file=ca))

    assert (
        str(caught.value)
        == f"CASN_TEMPORAL_TLS_CA_FILE='{ca}' is not a PEM file (no -----BEGIN line)"
    )


class _TlsFrontend:
    """A TLS listener that requires a client certificate from the test CA and records the
    handshakes it completed (subject of the client certificate, server name asked for)."""

    def __init__(self, pki: dict[str, Path]) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki["server"], pki["server_key"])
        self.context.load_verify_locations(pki["ca"])
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.set_alpn_protocols(["h2"])
        self.server_names: list[str | None] = []
        self.context.sni_callback = lambda _s, name, _c: self.server_names.append(name)
        self.clients: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with contextlib.suppress(OSError), conn:
                conn.settimeout(5)
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    subject = dict(x[0] for x in tls.getpeercert()["subject"])
                    self.clients.append(subject["commonName"])

    def close(self) -> None:
        self.listener.close()


async def test_the_sdk_presents_the_client_certificate_to_the_frontend(pki):
    frontend = _TlsFrontend(pki)
    settings = load_settings(
        temporal_address=f"127.0.0.1:{frontend.port}",
        temporal_tls_ca_file=pki["ca"],
        temporal_tls_cert_file=pki["client"],
        temporal_tls_key_file=pki["client_key"],
        temporal_tls_server_name=FRONTEND,
    )
    stack = StackInfo(
        temporal_address=str(settings.temporal_address),
        database_url="postgresql://casn@db/casn",
        ui_url=None,
        started_temporal=False,
        started_postgres=False,
    )
    try:
        # The project's own connect; no Temporal server behind the handshake, so it fails after it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connect(settings, stack, Keys(os.urandom(32), None, None)), 10)
    finally:
        frontend.close()

    assert "casn-worker" in frontend.clients
    assert FRONTEND in frontend.server_names


# --- PostgreSQL: the DSN carries the settings ----------------------------------------------------


def test_the_read_model_dsn_carries_sslmode_rootcert_and_the_password(pki, tmp_path):
    password = tmp_path / "password"
    password.write_text("pa:ss/word\n")
    settings = _deployment(
        database_sslmode="verify-full",
        database_sslrootcert=pki["ca"],
        database_password_file=password,
    )

    dsn = read_model_dsn("postgresql://casn@db:5432/casn?sslmode=disable", settings)

    assert parse_qs(urlsplit(dsn).query) == {
        "sslmode": ["verify-full"],
        "sslrootcert": [str(pki["ca"])],
        "password": ["pa:ss/word"],
    }
    assert "pa:ss" not in masked(dsn) and "password=***" in masked(dsn)


def test_a_password_in_the_url_and_in_a_file_is_refused(tmp_path):
    password = tmp_path / "password"
    password.write_text("one\n")
    settings = load_settings(
        database_url="postgresql://casn:two@db/casn", database_password_file=password
    )

    with pytest.raises(TransportError) as caught:
        read_model_dsn(str(settings.database_url), settings)

    assert "CASN_DATABASE_URL='postgresql://casn:***@db/casn' holds a password" in str(caught.value)
    assert "two" not in str(caught.value)


def test_an_empty_password_file_is_named(tmp_path):
    password = tmp_path / "password"
    password.write_text("\n")
    settings = _deployment(database_password_file=password)

    with pytest.raises(TransportError) as caught:
        read_model_dsn("postgresql://casn@db/casn", settings)

    assert f"CASN_DATABASE_PASSWORD_FILE='{password}' must hold the password on one line" in str(
        caught.value
    )


# --- the schema owner's URL, for `casn-worker migrate` only ---------------------------------------

RUNTIME_URL = "postgresql://casn_runtime@db:5432/casn"
OWNER_URL = "postgresql://casn@db:5432/casn"


def test_the_owners_dsn_carries_the_tls_settings_and_its_own_password_file(pki, tmp_path):
    runtime, owner = tmp_path / "runtime", tmp_path / "owner"
    runtime.write_text("runtime-pw\n")
    owner.write_text("owner-pw\n")
    settings = load_settings(
        database_url=RUNTIME_URL,
        database_password_file=runtime,
        database_migration_url=OWNER_URL,
        database_migration_password_file=owner,
        database_sslmode="verify-full",
        database_sslrootcert=pki["ca"],
    )

    dsn = migration_dsn(settings)

    assert dsn is not None and urlsplit(dsn).username == "casn"
    assert parse_qs(urlsplit(dsn).query) == {
        "sslmode": ["verify-full"],
        "sslrootcert": [str(pki["ca"])],
        "password": ["owner-pw"],
    }
    assert migration_dsn(load_settings(database_url=RUNTIME_URL)) is None


@pytest.mark.parametrize(
    ("values", "said"),
    [
        (
            {"database_migration_url": OWNER_URL},
            f"CASN_DATABASE_MIGRATION_URL='{OWNER_URL}' is for the database of CASN_DATABASE_URL, "
            "which is not set",
        ),
        (
            {"database_url": RUNTIME_URL, "database_migration_url": "postgresql://casn@db/other"},
            "names the database 'other', but CASN_DATABASE_URL names 'casn'",
        ),
        (
            {"database_url": OWNER_URL, "database_migration_url": "postgresql://casn:pw@db/casn"},
            "CASN_DATABASE_MIGRATION_URL='postgresql://casn:***@db/casn' names the same role as "
            "CASN_DATABASE_URL",
        ),
        (
            {"database_url": RUNTIME_URL, "database_migration_url": "mysql://casn@db/casn"},
            "CASN_DATABASE_MIGRATION_URL='mysql://casn@db/casn': scheme 'mysql' is not postgresql",
        ),
    ],
)
def test_a_migration_url_that_cannot_be_the_owners_is_refused_naming_it(values, said):
    with pytest.raises(ValidationError) as caught:
        load_settings(**values)

    described = describe_settings_error(caught.value)
    assert said in described, described
    assert ":pw@" not in described


def test_a_migration_password_file_without_its_url_is_refused(tmp_path):
    owner = tmp_path / "owner"
    owner.write_text("owner-pw\n")

    with pytest.raises(ValidationError) as caught:
        load_settings(database_url=RUNTIME_URL, database_migration_password_file=owner)

    assert (
        f"CASN_DATABASE_MIGRATION_PASSWORD_FILE='{owner}' is for the owner of "
        "CASN_DATABASE_MIGRATION_URL, which is not set"
    ) in describe_settings_error(caught.value)


def test_the_worker_stops_on_a_bad_tls_setting_naming_it(pki, tmp_path):
    env = {
        **os.environ,
        "CASN_TEMPORAL_ADDRESS": "127.0.0.1:1",
        "CASN_TEMPORAL_TLS_CERT_FILE": str(pki["client"]),
        "CASN_DATA_DIR": str(tmp_path / "data"),
        "CASN_METRICS_PORT": "0",
    }
    result = subprocess.run(
        [sys.executable, str(Path(__file__).parent.parent / "worker.py"), "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("bad configuration: ") and "Traceback" not in result.stderr
    assert f"CASN_TEMPORAL_TLS_CERT_FILE='{pki['client']}' is given without" in result.stderr
