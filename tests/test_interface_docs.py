"""What a service, an operator or an applicant can send or open is in the docs they read: every
route of the gateway's app in docs/GATEWAY.md (or INTEGRATORS.md, ANNOUNCEMENTS.md, the README),
and every route those docs name is one the app serves; every update a service or an operator sends
is a row of INTEGRATORS.md's tables, naming each field of its message; every kind of report file is
a row of its columns table, naming each column; every setting and every metric of the engine's own
is a row of the README's tables; and every subcommand of worker.py, starter.py and audit.py is
named in the docs, which name none it lacks, nor an option it does not take. Found drifting in the
review of 2026-12: the panels' conflicts and reviews (their routes, updates and files), the round's
key change and announcement record, the final sanggah's corrected scores, the portal's pages after
the status page, the worker's activity slots and the codec server's settings, the status cache's
reads, `worker.py stop-stack` and `starter.py sanctions import`. Built in-process: the app's routes
ask neither Temporal nor PostgreSQL."""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path

import pytest
import typer
from fastapi.routing import APIRoute
from prometheus_client.metrics import MetricWrapperBase
from starlette.routing import Mount

import audit
import starter
import worker
from client.csvio import REGISTRATION_COLUMNS, REPORT_KINDS
from domain.messages import Report
from domain.protocol import COMMAND_KINDS, DISMISS, JOURNEY_REPORTS, RECORD_PUBLICATION
from gateway import operator_api, portal, public, service_api
from runtime import metrics
from runtime.settings import Settings
from tests.web.test_openapi_batch import app_without_engine

ROOT = Path(__file__).resolve().parent.parent
ROUTE_DOCS = ["README.md", "docs/GATEWAY.md", "docs/INTEGRATORS.md", "docs/ANNOUNCEMENTS.md"]
INTEGRATORS = ROOT / "docs" / "INTEGRATORS.md"
SPAN = re.compile(r"`([^`\n]+)`")
ALTERNATIVES = re.compile(r"\{([^{}/]*[,|][^{}/]*)\}")
PLACEHOLDER = "{}"
# What the docs write as a route: a path of the app, or the tail of one after `...`.
ROUTE_LIKE = re.compile(r"^(?:(?:GET|POST|HEAD) )?(/api/\S*|/pengumuman\S*|\.\.\./\S*)$")


def app_routes(tmp_path) -> set[str]:
    """Every path the gateway's app answers: its OpenAPI document's, the routes it keeps out of
    the document (the portal, the public pages, the probes), and the document's own two
    addresses (FastAPI's Swagger OAuth redirect aside: no route of the gateway's)."""
    app = app_without_engine(tmp_path)
    paths = set(app.openapi()["paths"])
    for router in (service_api.router, operator_api.router, portal.router, public.router):
        paths |= {r.path for r in router.routes if isinstance(r, APIRoute)}
    paths |= {r.path for r in app.routes if isinstance(r, APIRoute)}
    return paths | {app.openapi_url or "", app.docs_url or ""} - {""}


def expanded(span: str) -> list[str]:
    """A route as the docs write it, as the paths it stands for: no method, no query (`?a=b`,
    `[?a=b]`), each `{a,b}` or `{a|b}` read as each of its alternatives, and any other `{name}`
    a placeholder."""
    path = re.sub(r"^(GET|POST|HEAD) ", "", span.strip())
    path = re.sub(r"\[\?[^\]]*\]|\?\S*$", "", path)
    choices = ALTERNATIVES.findall(path)
    template = re.sub(r"\{[^{}/]*\}", PLACEHOLDER, ALTERNATIVES.sub("\0", path))
    paths = []
    for picked in product(*(re.split(r"[,|]", c) for c in choices)):
        filled = template
        for choice in picked:
            filled = filled.replace("\0", "{=" + choice.strip() + "}", 1)
        paths.append(filled)
    return paths


def documented_routes() -> dict[str, set[str]]:
    """Each route the docs name (expanded), with the files naming it."""
    named: dict[str, set[str]] = {}
    for doc in ROUTE_DOCS:
        for span in SPAN.findall((ROOT / doc).read_text(encoding="utf-8")):
            if ROUTE_LIKE.match(span.strip()):
                for path in expanded(span):
                    named.setdefault(path, set()).add(doc)
    return named


def names(documented: str, route: str) -> bool:
    """Whether a documented path (or a `...` tail) names the app's route: segment by segment, a
    parameter of the route is named by a placeholder, an elided value (`K-...`) or one of the
    docs' alternatives (`{admin|skd|final}`), which name a fixed segment too; a `.json` or `.csv`
    ending names the same route as the page."""
    if documented.endswith("..."):
        return False  # a family of routes (`/api/v1/...`), which names none of them
    doc = re.sub(r"\.(json|csv)$", "", documented).rstrip("/").split("/")
    app = route.rstrip("/").split("/") or [""]
    if doc[0] == "...":
        doc = doc[1:]
        app = app[-len(doc) :] if len(doc) <= len(app) - 1 else []
    if len(doc) != len(app):
        return False
    return all(_segment_names(d, a) for d, a in zip(doc, app, strict=True))


def _segment_names(documented: str, served: str) -> bool:
    if documented.startswith("{="):
        return served == documented[2:-1] or served.startswith("{")
    if served.startswith("{"):
        return documented == PLACEHOLDER or "..." in documented
    return documented == served


def under(family: str, route: str) -> bool:
    """Whether a family of routes the docs name (`/api/v1/rounds/{round}/...`) holds `route`."""
    prefix = family.removesuffix("...")
    served = re.sub(r"\{[^{}/]*\}", PLACEHOLDER, route)
    return family.endswith("...") and served.startswith(prefix)


def test_every_route_of_the_gateway_is_in_the_docs(tmp_path):
    documented = documented_routes()
    routes = app_routes(tmp_path)
    prose = "\n".join((ROOT / doc).read_text(encoding="utf-8") for doc in ROUTE_DOCS)

    # A page of the portal (`/status`) or a probe (`GET /healthz`) is named in the prose.
    missing = sorted(
        route
        for route in routes
        if not any(names(d, route) for d in documented)
        and f"`{route}`" not in prose
        and f"`GET {route}`" not in prose
    )

    assert "/api/v1/rounds/{round_id}/reports" in routes and "/status" in routes
    assert missing == [], f"routes the docs do not name: {missing}"


def test_every_route_the_docs_name_is_served(tmp_path):
    # A directory the app mounts (Swagger UI's files under /api/docs/assets/) is served too.
    mounts = {r.path for r in app_without_engine(tmp_path).routes if isinstance(r, Mount)}
    routes = app_routes(tmp_path) | mounts

    unknown = {
        path: sorted(where)
        for path, where in documented_routes().items()
        if not any(names(path, route) or under(path, route) for route in routes)
    }

    assert unknown == {}, f"routes the docs name that the app does not serve: {unknown}"


def table_rows(text: str) -> dict[str, list[str]]:
    """The rows of the markdown tables in `text` whose first cell is one `name`: name -> cells."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells and re.fullmatch(r"`[\w-]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


SENT = [
    *JOURNEY_REPORTS.values(),
    DISMISS,
    *COMMAND_KINDS.values(),
    RECORD_PUBLICATION,
]


@pytest.mark.parametrize("update", SENT, ids=[u.name for u in SENT])
def test_every_update_a_service_or_operator_sends_is_in_the_integrators_tables(update):
    rows = table_rows(INTEGRATORS.read_text(encoding="utf-8"))

    assert update.name in rows, f"INTEGRATORS.md has no row for the update {update.name!r}"
    model, fields = rows[update.name][0], rows[update.name][1]
    assert model == f"`{update.input.__name__}`"
    unnamed = [
        field
        for field in update.input.model_fields
        if field not in Report.model_fields and f"`{field}`" not in fields
    ]
    assert unnamed == [], f"{update.name}: fields INTEGRATORS.md does not name: {unnamed}"


def test_every_update_in_the_integrators_tables_is_one_the_engine_takes():
    rows = table_rows(INTEGRATORS.read_text(encoding="utf-8"))
    updates = {u.name: u.input.__name__ for u in SENT}

    tabled = {
        name: cells[0]
        for name, cells in rows.items()
        if len(cells) >= 2 and re.fullmatch(r"`[A-Z]\w+`", cells[0])
    }

    assert {name: model.strip("`") for name, model in tabled.items()} == updates


def unnamed_columns(columns, cell: str) -> list[str]:
    """The columns of a file `cell` does not name as a word (the ids every report file has aside)."""
    ids = {"report_id", "applicant_id"}
    every = (*columns.required, *columns.optional)
    return [c for c in every if c not in ids and not re.search(rf"\b{c}\b", cell)]


def test_every_kind_of_report_file_is_in_the_columns_table_with_its_columns():
    text = INTEGRATORS.read_text(encoding="utf-8")
    table = text[text.index("Columns (every report file") :]
    rows = {name: cells[0] for name, cells in table_rows(table).items() if len(cells) == 1}
    registrations = next(line for line in table.splitlines() if line.startswith("| registrations"))

    assert set(rows) == set(REPORT_KINDS), "the columns table's kinds are not the file kinds"
    assert {kind: unnamed_columns(k.columns, rows[kind]) for kind, k in REPORT_KINDS.items()} == {
        kind: [] for kind in REPORT_KINDS
    }
    assert unnamed_columns(REGISTRATION_COLUMNS, registrations) == []


def test_every_setting_is_a_row_of_the_readme_configuration_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration") :].split("\n\n")[2]
    named = {
        name
        for line in table.splitlines()
        if line.startswith("| `CASN_")
        for name in re.findall(r"`(CASN_\w+)`", line.split(" | ")[0])
    }

    settings = {f"CASN_{field.upper()}" for field in Settings.model_fields}

    assert sorted(settings - named) == [], "settings the README's table does not list"
    assert sorted(named - settings) == [], "variables the README's table lists that are none"


def test_every_metric_of_the_engine_is_a_row_of_the_readme_metrics_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| metric | what |") :].split("\n\n")[0]
    named = {
        name
        for line in table.splitlines()
        for name in re.findall(r"`(casn_\w+)", line.split(" | ")[0])
    }

    exported = {
        family.name + ("_total" if family.type == "counter" else "")
        for m in vars(metrics).values()
        if isinstance(m, MetricWrapperBase)
        for family in m.describe()
    }

    assert "casn_reports_total" in exported
    assert sorted(exported ^ named) == [], "metrics not in the README's table, or not exported"


def command_options() -> dict[tuple[str, ...], set[str] | None]:
    """Every command and subcommand of the three command lines, with its options (None for a
    group of subcommands, such as `starter.py sanctions`)."""
    found: dict[tuple[str, ...], set[str] | None] = {}

    def walk(command, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None) or {}
        options = {o for p in command.params if p.param_type_name == "option" for o in p.opts}
        options |= {o for p in command.params for o in getattr(p, "secondary_opts", [])}
        found[path] = None if subcommands else options
        for name, sub in subcommands.items():
            walk(sub, (*path, name))

    for script, app in (
        ("worker.py", worker.app),
        ("starter.py", starter.cli),
        ("audit.py", audit.app),
    ):
        walk(typer.main.get_command(app), (script,))
    return found


# A command as the docs write it: the script (or its console command) and, after one space or a
# line break, a subcommand (not the next file name of a list: `audit.py serve.py`).
COMMAND = re.compile(
    r"\b(worker\.py|starter\.py|audit\.py|casn-worker|casn-starter|casn-audit)"
    r"(?: |\n\s*)((?:sanctions )?[a-z][a-z0-9-]*)(?![\w.-])"
)
SCRIPTS = {"casn-worker": "worker.py", "casn-starter": "starter.py", "casn-audit": "audit.py"}
# Where a command's options end in the docs: a code span's end, a sentence's, a clause's.
OPTIONS_END = re.compile(r"`|\n\n|\.\s|;|\)|\n(?!\s)")
ALL_DOCS = ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))]


def named_commands() -> list[tuple[str, int, tuple[str, ...], list[str]]]:
    """Each command the docs name (file, line, command, the options written after it)."""
    named = []
    for doc in ALL_DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        for m in COMMAND.finditer(text):
            rest = text[m.end() :]
            ends = [e.start() for e in (OPTIONS_END.search(rest), COMMAND.search(rest)) if e]
            options = re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest[: min(ends, default=None)])
            command = (SCRIPTS.get(m[1], m[1]), *m[2].split())
            named.append((doc, text.count("\n", 0, m.start()) + 1, command, options))
    return named


def test_every_command_the_docs_name_exists_with_the_options_they_give_it():
    commands = command_options()

    wrong = [
        f"{doc}:{line}: {' '.join(command)} {' '.join(options)}"
        for doc, line, command, options in named_commands()
        if command not in commands or set(options) - (commands[command] or set()) - {"--help"}
    ]

    assert len(named_commands()) > 100
    assert wrong == [], "commands or options the docs name that the command lines lack"


def test_every_command_is_named_in_the_docs():
    named = {command for _, _, command, _ in named_commands()}
    prose = "\n".join((ROOT / doc).read_text(encoding="utf-8") for doc in ALL_DOCS)

    unnamed = sorted(
        " ".join(command)
        for command, options in command_options().items()
        if len(command) > 1
        and options is not None
        and command not in named
        and f"`{' '.join(command[1:])}`" not in prose
    )

    assert unnamed == [], "subcommands no doc names"
