"""The OpenAPI page (/api/docs): Swagger UI served by the gateway itself.

Its script and style sheet are Swagger UI's distribution files as the fastapi-offline package
ships them (pinned in requirements.lock, so a new Swagger UI comes in as a reviewed upgrade),
served under /api/docs/assets/; the page is started by /static/api-docs.js, a file of the
gateway's own, not an inline script. So the page's policy (gateway/headers.py) lets it run script
and style from the gateway's origin only, and nothing is fetched from anywhere else. Until 2026-12
FastAPI's page loaded them from a CDN, any 5.x, with no integrity hash: blank where the CDN cannot
be reached, and whatever the CDN served ran on the portal's own origin.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from gateway.headers import DOCS, DOCS_ASSETS

SWAGGER_UI = Path(str(files("fastapi_offline") / "static"))
SCRIPT, STYLE, ICON = "swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/{style}">
<link rel="icon" type="image/png" href="{assets}/{icon}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{assets}/{script}"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>
"""


def serve_api_docs(app: FastAPI) -> None:
    """Serve Swagger UI on `app` at /api/docs, for its OpenAPI document, from the gateway alone.

    Files missing from the package stop the start (RuntimeError naming them): a blank docs page
    would otherwise be found by the first integrator who opens it."""
    missing = [name for name in (SCRIPT, STYLE, ICON) if not (SWAGGER_UI / name).is_file()]
    if missing:
        raise RuntimeError(
            f"Swagger UI's files {missing} are not in {SWAGGER_UI}: install the fastapi-offline "
            "version requirements.lock names"
        )
    app.mount(DOCS_ASSETS, StaticFiles(directory=SWAGGER_UI), name="api-docs-assets")
    page = PAGE.format(
        title=escape(f"{app.title} - Swagger UI"),
        assets=DOCS_ASSETS,
        style=STYLE,
        icon=ICON,
        script=SCRIPT,
        openapi_url=escape(app.openapi_url or "/openapi.json"),
    )

    @app.get(DOCS, include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        """The OpenAPI page."""
        return HTMLResponse(page)
