"""The folders are the levels: every import points down, read from the source without importing it.

    0 domain/                     pure rules
    1 runtime/                    platform: settings, keys, codec, servers, logs, database
    2 workflows/ activities/      orchestration | side effects
    3 client/ auditing/           the client side and the auditor's side of the workflows
    4 apps/ gateway/              the worker fleet, the demo | the HTTP gateway
    5 entry points                worker.py starter.py audit.py bench.py run.py scripts/ bench/

Tests may import anything.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEVELS = {
    "domain": 0,
    "runtime": 1,
    "workflows": 2,
    "activities": 2,
    "client": 3,
    "auditing": 3,
    "apps": 4,
    "gateway": 4,
    "worker": 5,
    "starter": 5,
    "audit": 5,
    "bench": 5,  # bench.py and the bench/ harness
    "run": 5,
    "scripts": 5,
    "serve": 5,
}
ENTRY_POINT = 5
SKIPPED_DIRS = {"tests", "out", "__pycache__"}


@dataclass(frozen=True)
class Import:
    """One project module imported by one project file."""

    file: str  # relative to the project root
    line: int
    importer: str  # dotted module name of the file
    imported: str  # dotted module name it imports

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} imports {self.imported}"


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> list[Path]:
    """Every .py file of the project, outside tests/, hidden folders and generated output."""
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if not any(
            part.startswith(".") or part in SKIPPED_DIRS
            for part in path.relative_to(ROOT).parts[:-1]
        )
    )


def _imports_of(path: Path, modules: set[str]) -> list[Import]:
    importer = _module_name(path)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from runtime import attributes` imports the module runtime.attributes.
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        found += [
            Import(str(path.relative_to(ROOT)), node.lineno, importer, name)
            for name in dict.fromkeys(names)
            if _top(name) in LEVELS
        ]
    return found


def project_imports() -> list[Import]:
    """Every import of a project module by a project file that has a level."""
    files = project_files()
    modules = {_module_name(path) for path in files}
    return [
        imp
        for path in files
        if _top(_module_name(path)) in LEVELS
        for imp in _imports_of(path, modules)
    ]


def test_every_module_has_a_level():
    unplaced = sorted(
        {str(p.relative_to(ROOT)) for p in project_files() if _top(_module_name(p)) not in LEVELS}
    )

    assert not unplaced, f"give these a level in tests/test_layers.py: {unplaced}"


def test_no_module_imports_a_level_above_it():
    upward = [
        f"{imp} (level {LEVELS[_top(imp.importer)]} -> {LEVELS[_top(imp.imported)]})"
        for imp in project_imports()
        if LEVELS[_top(imp.imported)] > LEVELS[_top(imp.importer)]
    ]

    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_workflows_and_activities_do_not_import_each_other():
    across = [
        str(imp)
        for imp in project_imports()
        if _top(imp.importer) != _top(imp.imported)
        and LEVELS[_top(imp.importer)] == LEVELS[_top(imp.imported)] < ENTRY_POINT
    ]

    assert not across, "imports across packages of one level:\n" + "\n".join(across)


def test_only_entry_points_and_tests_import_worker():
    importers = [
        str(imp)
        for imp in project_imports()
        if _top(imp.imported) == "worker" and LEVELS[_top(imp.importer)] < ENTRY_POINT
    ]

    assert not importers, "import apps.fleet instead of worker:\n" + "\n".join(importers)


def test_no_import_cycle_between_packages():
    edges: dict[str, dict[str, Import]] = defaultdict(dict)
    for imp in project_imports():
        if _top(imp.importer) != _top(imp.imported):
            edges[_top(imp.importer)].setdefault(_top(imp.imported), imp)
    cycles = []

    def visit(package: str, path: list[str]) -> None:
        for target in edges[package]:
            if target == path[0]:
                cycle = [*path, target]
                witnesses = [str(edges[a][b]) for a, b in pairwise(cycle)]
                cycles.append(" -> ".join(cycle) + "\n  " + "\n  ".join(witnesses))
            elif target not in path and target > path[0]:  # each cycle once, from its least package
                visit(target, [*path, target])

    for package in sorted(edges):
        visit(package, [package])

    assert not cycles, "import cycles between packages:\n" + "\n".join(cycles)
