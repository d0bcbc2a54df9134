"""How the engine's processes reach Temporal and PostgreSQL securely.

Temporal: TLS, or mTLS with a client certificate, from the PEM files of CASN_TEMPORAL_TLS_*.
PostgreSQL: the read model's DSN carries CASN_DATABASE_SSLMODE and CASN_DATABASE_SSLROOTCERT as
libpq parameters and the password of CASN_DATABASE_PASSWORD_FILE, which asyncpg reads from the DSN;
every connection and pool of the processes is made from that one DSN (StackInfo.database_url), so
none of them can forget a setting; the migrations' owner DSN (migration_dsn) carries the same TLS
settings and its own password file. Runtime/settings.py checks that the files exist; what is in
them is checked here, when they are used.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from temporalio.service import TLSConfig

from runtime.settings import TEMPORAL_TLS, Settings


class TransportError(ValueError):
    """A TLS or password setting cannot be used; the message names the variable and its value."""


def temporal_tls(settings: Settings) -> TLSConfig | None:
    """The Temporal client's TLS configuration, or None when no CASN_TEMPORAL_TLS_* is set.

    A CA file replaces the system's roots; a client certificate and its key make it mTLS; the
    server name is what the frontend's certificate is checked against (its address otherwise).
    """
    if all(getattr(settings, name) is None for name in TEMPORAL_TLS):
        return None
    ca = _pem(settings.temporal_tls_ca_file, "CASN_TEMPORAL_TLS_CA_FILE")
    cert = _pem(settings.temporal_tls_cert_file, "CASN_TEMPORAL_TLS_CERT_FILE")
    key = _pem(settings.temporal_tls_key_file, "CASN_TEMPORAL_TLS_KEY_FILE")
    if ca is not None:
        _certificate(ca, "CASN_TEMPORAL_TLS_CA_FILE", settings.temporal_tls_ca_file)
    if cert is not None and key is not None:
        _check_pair(cert, key, settings)
    return TLSConfig(
        server_root_ca_cert=ca,
        domain=settings.temporal_tls_server_name,
        client_cert=cert,
        client_private_key=key,
    )


def read_model_dsn(url: str, settings: Settings) -> str:
    """`url` with the read model's TLS settings and, for CASN_DATABASE_URL, the password of
    CASN_DATABASE_PASSWORD_FILE; a setting replaces the same parameter in the URL."""
    return _with_transport(
        url, settings, settings.database_password_file, "CASN_DATABASE_URL",
        "CASN_DATABASE_PASSWORD_FILE",
    )  # fmt: skip


def migration_dsn(settings: Settings) -> str | None:
    """CASN_DATABASE_MIGRATION_URL (the schema owner's) with the same TLS settings and the
    password of CASN_DATABASE_MIGRATION_PASSWORD_FILE; None when it is not set."""
    if not settings.database_migration_url:
        return None
    return _with_transport(
        settings.database_migration_url, settings, settings.database_migration_password_file,
        "CASN_DATABASE_MIGRATION_URL", "CASN_DATABASE_MIGRATION_PASSWORD_FILE",
    )  # fmt: skip


def _with_transport(
    url: str, settings: Settings, password_file: Path | None, url_variable: str, file_variable: str
) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if settings.database_sslmode is not None:
        query["sslmode"] = settings.database_sslmode
    if settings.database_sslrootcert is not None:
        query["sslrootcert"] = str(settings.database_sslrootcert.resolve())
    if password_file is not None:
        if parts.password is not None or "password" in query:
            raise TransportError(
                f"{url_variable}={masked(url)!r} holds a password and "
                f"{file_variable}={str(password_file)!r} is set too: keep the password in the "
                "file only"
            )
        query["password"] = _password(password_file, file_variable)
    return urlunsplit(parts._replace(query=urlencode(query, safe="/")))


def masked(dsn: str) -> str:
    """The DSN with its password (in the user part or as a parameter) shown as ***, for logs."""
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if parts.password is not None:
        credentials, host = netloc.rsplit("@", 1)
        netloc = f"{credentials.split(':', 1)[0]}:***@{host}"
    query = [
        (name, "***" if name == "password" else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="/*")))


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise TransportError(f"{variable}={str(path)!r} cannot be read: {err.strerror}") from None


def _pem(path: Path | None, variable: str) -> bytes | None:
    if path is None:
        return None
    data = _read(path, variable)
    if b"-----BEGIN " not in data:
        raise TransportError(f"{variable}={str(path)!r} is not a PEM file (no -----BEGIN line)")
    return data


def _certificate(data: bytes, variable: str, path: Path | None) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as err:
        raise TransportError(f"{variable}={str(path)!r} holds no PEM certificate: {err}") from None


def _check_pair(cert: bytes, key: bytes, settings: Settings) -> None:
    """The client certificate and the private key belong together."""
    certificate = _certificate(cert, "CASN_TEMPORAL_TLS_CERT_FILE", settings.temporal_tls_cert_file)
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as err:
        raise TransportError(
            f"CASN_TEMPORAL_TLS_KEY_FILE={str(settings.temporal_tls_key_file)!r} holds no "
            f"unencrypted PEM private key: {err}"
        ) from None
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(
        serialization.Encoding.DER, raw
    ) != private.public_key().public_bytes(serialization.Encoding.DER, raw):
        raise TransportError(
            f"CASN_TEMPORAL_TLS_KEY_FILE={str(settings.temporal_tls_key_file)!r} is not the "
            f"private key of CASN_TEMPORAL_TLS_CERT_FILE={str(settings.temporal_tls_cert_file)!r}"
        )


def _password(path: Path, variable: str) -> str:
    try:
        text = _read(path, variable).decode("utf-8").strip("\r\n")
    except UnicodeDecodeError:
        raise TransportError(f"{variable}={str(path)!r} is not UTF-8") from None
    if not text or "\n" in text:
        raise TransportError(
            f"{variable}={str(path)!r} must hold the password on one line "
            f"(it holds {len(text.splitlines())} lines)"
        )
    return text
