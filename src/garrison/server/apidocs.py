"""``/api/docs``: Swagger UI for the OpenAPI document, from files bundled with Garrison.

The page and its assets come from this server only (no CDN: the docs work offline, and no outside
script runs on the console's origin), under a Content-Security-Policy that allows nothing else.
The assets are ``garrison/server/data/swagger-ui`` (see its PROVENANCE.md).
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from garrison.server.auth import public

SWAGGER_UI_VERSION = "5.35.0"
DOCS = "/api/docs"
ASSETS = DOCS + "/assets/{name}"
_DIR = Path(__file__).with_name("data") / "swagger-ui"
_SERVED = ("swagger-ui-bundle.js", "swagger-ui.css", "garrison-docs.js")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer"}


def _load() -> dict[str, tuple[bytes, str, str]]:
    out = {}
    for name in _SERVED:
        data = (_DIR / name).read_bytes()
        ctype = (mimetypes.guess_type(name)[0] or "application/octet-stream") + "; charset=utf-8"
        out[name] = (data, ctype, '"' + hashlib.sha256(data).hexdigest()[:16] + '"')
    return out


_ASSETS = _load()


def page(openapi_url: str, title: str) -> str:
    asset = DOCS + "/assets/"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} API</title>
<link rel="stylesheet" href="{asset}swagger-ui.css?v={SWAGGER_UI_VERSION}">
</head>
<body data-openapi="{html.escape(openapi_url)}">
<div id="swagger-ui"></div>
<script src="{asset}swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}"></script>
<script src="{asset}garrison-docs.js?v={SWAGGER_UI_VERSION}"></script>
</body>
</html>
"""


def setup(app: FastAPI) -> None:
    """Serve the docs page and its assets (public: the OpenAPI document is public too)."""
    text = page(app.openapi_url or "/api/openapi.json", app.title)

    @app.get(DOCS, include_in_schema=False)
    @public
    def docs() -> HTMLResponse:
        return HTMLResponse(text, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    @app.get(ASSETS, include_in_schema=False)
    @public
    def docs_asset(name: str, request: Request) -> Response:
        entry = _ASSETS.get(name)
        if entry is None:
            return Response("not found", status_code=404, media_type="text/plain")
        data, ctype, etag = entry
        headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": "public, max-age=86400"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=ctype, headers=headers)
