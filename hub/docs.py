"""``/docs`` without a CDN: Swagger UI from a local ``swagger-ui-bundle``, else a plain page.

FastAPI's own docs page loads Swagger UI from a CDN, which a hub on a closed network cannot
reach and which the dashboard's CSP would refuse anyway.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("hub", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class Operation:
    """One row of the plain docs page."""

    method: str
    path: str
    summary: str
    params: str
    auth: str


def swagger_assets() -> Path | None:
    """Swagger UI files from a locally installed package (``swagger-ui-bundle``), if any."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    for attr in ("swagger_ui_path", "swagger_ui_5_path", "swagger_ui_4_path", "swagger_ui_3_path"):
        path = getattr(swagger_ui_bundle, attr, None)
        if (
            path
            and (Path(path) / "swagger-ui-bundle.js").is_file()
            and (Path(path) / "swagger-ui.css").is_file()
        ):
            return Path(path)
    return None


def operations(schema: dict[str, Any]) -> list[Operation]:
    """The endpoints of an OpenAPI ``schema``, by path, each with its parameters and auth."""
    rows = []
    for path, ops in sorted(schema.get("paths", {}).items()):
        for method, op in ops.items():
            params = ", ".join(
                f"{p.get('name')}{'' if p.get('required') else '?'} ({p.get('in')})"
                for p in op.get("parameters", [])
            )
            if "requestBody" in op:
                params = (params + ", " if params else "") + "JSON body"
            rows.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=op.get("summary", ""),
                    params=params,
                    auth="token" if op.get("security") else "",
                )
            )
    return rows


def docs_page(schema: dict[str, Any]) -> str:
    """A self-contained page listing the endpoints of ``schema``; every string escaped."""
    info = schema.get("info", {})
    return _TEMPLATES.get_template("docs.html.j2").render(
        title=info.get("title", "API"),
        version=str(info.get("version", "")),
        operations=operations(schema),
    )


PLAIN_DOCS_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
)
"""The plain page: its inline styles, nothing else."""


def inline_script_csp(html: str) -> str:
    """A CSP for Swagger UI's page: its own files, and its one inline script by hash (so no
    other inline script can run)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    )


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``: Swagger UI when its files are installed here, else :func:`docs_page`."""
    assets = swagger_assets()
    if assets is not None:
        from fastapi.openapi.docs import get_swagger_ui_html

        app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            page = get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{app.title} docs",
                swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                swagger_css_url="/docs/assets/swagger-ui.css",
                swagger_favicon_url="data:,",
            )
            html = bytes(page.body).decode("utf-8")
            page.headers["Content-Security-Policy"] = inline_script_csp(html)
            return page
    else:

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return HTMLResponse(
                docs_page(app.openapi()), headers={"Content-Security-Policy": PLAIN_DOCS_CSP}
            )
