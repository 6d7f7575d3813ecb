"""Swagger UI and ReDoc served by the service itself, without a CDN (FastAPI's offline docs).

FastAPI's default ``/docs`` and ``/redoc`` pages load their JavaScript and CSS from a CDN, so
on an isolated edge network they stay blank. Following FastAPI's "self-hosting JavaScript and
CSS for docs" pattern, this module replaces both pages with ones whose assets the service
serves itself, from the files the ``fastapi-offline`` package ships (Swagger UI 5 — which
renders OpenAPI 3.1, as FastAPI writes it — and ReDoc 2); the package is part of
``pcnalloc[edge]``. The pages and their assets are open like the schema (``/openapi.json``):
they describe the API, never its data. Without the package the two pages say which extra to
install and link the schema; they never point a browser at a CDN.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse
from starlette.requests import Request

log = logging.getLogger(__name__)

ASSETS: dict[str, tuple[str, str]] = {
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript"),
    "/docs/swagger-ui.css": ("swagger-ui.css", "text/css"),
    "/docs/favicon.png": ("favicon.png", "image/png"),
    "/redoc/redoc.standalone.js": ("redoc.standalone.js", "text/javascript"),
}
"""URL path → (file in the package's ``static`` folder, media type)."""

DOCS_OPEN_PATHS = frozenset(ASSETS)
"""Asset paths that need no token (the pages themselves are open already)."""


def asset_folder() -> Path | None:
    """The folder of the Swagger UI / ReDoc files, or None when none is installed."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if all((folder / f).is_file() for f, _ in ASSETS.values()) else None


def _missing_page(title: str, openapi_url: str) -> str:
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body>"
        f"<p>{title}: the offline docs assets are not installed "
        "(install pcnalloc[edge]).</p>"
        f'<p>The OpenAPI schema is at <a href="{openapi_url}">{openapi_url}</a>.</p>'
        "</body></html>"
    )


def _asset(file: Path, media: str) -> Any:
    """A route serving one fixed file (it takes no parameter, so no client picks the path)."""

    async def asset() -> FileResponse:
        return FileResponse(file, media_type=media)

    return asset


def add_offline_docs(app: Any) -> bool:
    """Replace ``app``'s ``/docs`` and ``/redoc`` with pages served without a CDN.

    Returns False when the assets are not installed (the pages then say so).
    """
    docs_url = app.docs_url or "/docs"
    redoc_url = app.redoc_url or "/redoc"
    oauth2_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    ours = {docs_url, redoc_url, oauth2_url}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in ours]
    folder = asset_folder()
    if folder is None:
        log.warning("offline API docs off: fastapi-offline is not installed (pcnalloc[edge])")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        schema = f"{root}{app.openapi_url}"
        if folder is None:
            return HTMLResponse(_missing_page(f"{app.title} - Swagger UI", schema))
        return get_swagger_ui_html(
            openapi_url=schema,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_url}",
            swagger_js_url=f"{root}/docs/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(oauth2_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        schema = f"{root}{app.openapi_url}"
        if folder is None:
            return HTMLResponse(_missing_page(f"{app.title} - ReDoc", schema))
        return get_redoc_html(
            openapi_url=schema,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}/docs/favicon.png",
            with_google_fonts=False,
        )

    if folder is not None:
        for url, (name, media) in ASSETS.items():
            app.add_api_route(
                url, _asset(folder / name, media), methods=["GET"], include_in_schema=False
            )
    return folder is not None


__all__ = ["ASSETS", "DOCS_OPEN_PATHS", "add_offline_docs", "asset_folder"]
