"""A CASN_* variable that nothing reads is refused by every entry point, naming it and the known
variable nearest to it, where before it was ignored: a misspelt CASN_PAYLOAD_KYE left a
deployment's key unset (or, embedded, generated one), a CASN_QUERY_SECOND left the default. Every
CASN_* variable the project reads anywhere (settings, the operator's options, run.py, the bench,
the tests) is taken, and every one the code, the docs and the compose file name is known."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from runtime.settings import (
    OTHER_VARIABLES,
    describe_settings_error,
    known_variables,
    load_settings,
    unknown_variables,
)
from tests.test_keys_settings import KEY, _command  # against a cluster and a database at port 1

ROOT = Path(__file__).resolve().parent.parent
VARIABLE = re.compile(r"\bCASN_[A-Z0-9_]*[A-Z0-9]\b")
# Misspellings the docs show on purpose, as examples of what is refused.
EXAMPLES = {"CASN_PAYLOAD_KYE"}
ENTRY_POINTS = [
    ("worker.py", ["run"]),
    ("worker.py", ["deliver-notifications", "--once"]),
    ("serve.py", []),
    ("starter.py", ["status", "R1"]),
    ("audit.py", ["trail", "R1", "A" * 16]),
    ("audit.py", ["serve-codec"]),
]


def _said(result) -> str:
    return " ".join(result.stderr.split())


def _project_files(*suffixes: str) -> list[Path]:
    skip = {".venv", ".git", ".data", "out", "node_modules"}
    return [
        path
        for path in ROOT.rglob("*")
        if path.is_file()
        and path.suffix in suffixes
        and not skip & set(path.relative_to(ROOT).parts)
        and path != Path(__file__)
    ]


@pytest.mark.parametrize(("script", "args"), ENTRY_POINTS)
def test_every_entry_point_refuses_a_misspelt_variable_naming_the_one_meant(tmp_path, script, args):
    result = _command(tmp_path, script, *args, CASN_PAYLOAD_KYE=KEY)

    said = _said(result)
    assert result.returncode == 2, result.stderr
    assert said.startswith(
        "bad configuration: CASN_PAYLOAD_KYE=<hidden>: not a variable this engine reads; "
        "did you mean CASN_PAYLOAD_KEY?"
    ), said
    assert KEY[:8] not in said and "Traceback" not in said
    assert not (tmp_path / "data").exists()  # refused before any key or server was made


def test_an_operator_command_through_the_gateway_refuses_it_too(tmp_path):
    (tmp_path / "api.key").write_text("k" * 32, encoding="utf-8")
    (tmp_path / "api.key").chmod(0o600)

    result = _command(
        tmp_path,
        "starter.py",
        *["status", "R1", "--gateway", "http://127.0.0.1:1", "--api-key-file", "api.key"],
        CASN_GATEWAY_ULR="http://127.0.0.1:1",
    )

    assert result.returncode == 2, result.stderr
    assert _said(result).startswith(
        "bad configuration: CASN_GATEWAY_ULR='http://127.0.0.1:1': not a variable this engine "
        "reads; did you mean CASN_GATEWAY_URL?"
    ), _said(result)


def test_a_misspelt_variable_in_the_env_file_is_refused_naming_the_file(tmp_path):
    (tmp_path / ".env").write_text("CASN_QUERY_SECOND=60\n", encoding="utf-8")

    result = _command(tmp_path, "starter.py", "status", "R1")

    assert result.returncode == 2, result.stderr
    assert _said(result).startswith(
        "bad configuration: CASN_QUERY_SECOND='60' (in .env): not a variable this engine reads; "
        "did you mean CASN_QUERY_SECONDS?"
    ), _said(result)


def test_every_variable_the_project_reads_outside_the_settings_is_taken(tmp_path):
    """The operator's option variables, run.py's, the bench's and the tests': the command goes
    on to the cluster, which does not answer (exit 3), instead of refusing them (exit 2)."""
    given = {
        "CASN_KEY_FILE": str(tmp_path / "none.key.json"),
        "CASN_TEST_WORKERS": "3",
        "CASN_TEST_PORT_OFFSET": "7",
        "CASN_BENCH_PORT_OFFSET": "5",
        "CASN_RECORD_AFTERMATH": "",
        "CASN_RECORD_SIGNALS_SPENT": "",
        "CASN_SCREENSHOTS": str(tmp_path / "shots"),
    }

    result = _command(tmp_path, "audit.py", "trail", "R1", "A" * 16, **given)

    assert set(given) | {"CASN_GATEWAY_URL", "CASN_GATEWAY_API_KEY_FILE"} == set(OTHER_VARIABLES)
    assert result.returncode == 3, result.stderr
    assert _said(result).startswith("stopped: "), _said(result)


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {"casn_query_second": "60"},
            "casn_query_second='60': not a variable this engine reads; "
            "did you mean CASN_QUERY_SECONDS?",
        ),
        (
            {"CASN_DATABASE_ULR": "postgresql://casn:hunter2@db:5432/casn"},
            "CASN_DATABASE_ULR='postgresql://casn:***@db:5432/casn': not a variable this engine "
            "reads; did you mean CASN_DATABASE_URL?",
        ),
        (
            {"CASN_PAYLOAD_PREVIOUS_KEY": KEY},
            "CASN_PAYLOAD_PREVIOUS_KEY=<hidden>: not a variable this engine reads; "
            "did you mean CASN_PAYLOAD_PREVIOUS_KEYS?",
        ),
        (
            {"CASN_WIBBLE": "1"},
            "CASN_WIBBLE=<hidden>: not a variable this engine reads; "
            'see README.md, "Configuration", for the variables',
        ),
        # Near no known variable: nothing says its value is no secret.
        (
            {"CASN_DB_PASS": "hunter2"},
            "CASN_DB_PASS=<hidden>: not a variable this engine reads; "
            'see README.md, "Configuration", for the variables',
        ),
        # A password in the query string, which libpq and asyncpg read.
        (
            {"CASN_DATABSE_URL": "postgresql://casn@db/casn?sslmode=require&password=hunter2"},
            "CASN_DATABSE_URL='postgresql://casn@db/casn?sslmode=require&password=***': not a "
            "variable this engine reads; did you mean CASN_DATABASE_URL?",
        ),
        # A password holding an unescaped / (urlsplit would end the authority there) or @.
        (
            {"CASN_DATABASE_ULR": "postgresql://casn:hun/t@er2@db:5432/casn"},
            "CASN_DATABASE_ULR='postgresql://casn:***@db:5432/casn': not a variable this engine "
            "reads; did you mean CASN_DATABASE_URL?",
        ),
    ],
)
def test_an_unknown_variable_is_one_line_in_the_settings_error_style(environ, line):
    assert unknown_variables({"PATH": "/usr/bin", "CASN_LOG_LEVEL": "INFO", **environ}) == [line]


def test_every_casn_variable_the_code_reads_or_the_docs_name_is_known():
    """A variable read anywhere in the project, or named in its docs, its compose file or its
    Dockerfile, must be a setting or in OTHER_VARIABLES: else an entry point would refuse it."""
    named: dict[str, set[str]] = {}
    files = _project_files(".py", ".md", ".yml", ".yaml", ".toml", ".sh")
    files += [ROOT / "Dockerfile", ROOT / ".ci" / "run"]
    for path in files:
        for name in VARIABLE.findall(path.read_text(encoding="utf-8", errors="replace")):
            named.setdefault(name, set()).add(str(path.relative_to(ROOT)))

    unknown = {
        name: sorted(where)
        for name, where in named.items()
        if name not in known_variables()
        and not (name in EXAMPLES and all(w.endswith(".md") for w in where))
    }

    assert "CASN_PAYLOAD_KEY" in named and "CASN_TEST_PORT_OFFSET" in named
    assert unknown == {}


def test_every_variable_listed_outside_the_settings_is_read_somewhere():
    """OTHER_VARIABLES does not outlive the code that reads its variables."""
    code = {
        name
        for path in _project_files(".py")
        if path != ROOT / "runtime" / "settings.py"
        for name in VARIABLE.findall(path.read_text(encoding="utf-8"))
    }

    assert set(OTHER_VARIABLES) <= code, sorted(set(OTHER_VARIABLES) - code)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://casn@db/casn?password=hunter2",
        "mysql://casn:hun/ter2@db/casn",
        "mysql://casn:hun@ter2@db/casn",
    ],
)
def test_a_refused_database_url_never_shows_its_password(url, monkeypatch):
    monkeypatch.setenv("CASN_DATABASE_URL", url)

    with pytest.raises(ValidationError) as refused:
        load_settings()

    said = describe_settings_error(refused.value)
    assert "scheme 'mysql' is not postgresql" in said
    assert "hunter2" not in said and "ter2" not in said, said
