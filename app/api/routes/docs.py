"""`/docs` (Swagger UI) and `/redoc`, served entirely from this origin.

The assets come from a pinned package (fastapi-offline's copies of swagger-ui-dist and redoc)
and our own start-up script, so the pages work offline and behind a strict proxy, load nothing
from a CDN, and carry a Content-Security-Policy that allows scripts from this origin only (and
no framing: `frame-ancestors 'none'`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

import aiofiles
from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

router = APIRouter(include_in_schema=False)

VENDOR_PREFIX = "/static/vendor"
OWN_PREFIX = "/static/app"
VENDOR_DIRECTORY = Path(str(files("fastapi_offline") / "static"))
OWN_DIRECTORY = Path(__file__).resolve().parent.parent.parent / "static"

# Swagger UI and ReDoc set inline styles and ReDoc starts a worker from a blob: scripts stay
# same-origin only.
_CSP = (
    "default-src 'self'; script-src 'self'{extra}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def html_headers(script_hash: str | None = None, *, csp: str | None = None) -> dict[str, str]:
    """Security headers for an HTML page of this app: the documentation pages' policy
    (optionally allowing one inline script), or the given `csp`."""
    extra = f" '{script_hash}'" if script_hash else ""
    return {
        "Content-Security-Policy": csp or _CSP.format(extra=extra),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


class AssetFiles(StaticFiles):
    """Static assets, never pages: an HTML file is not found here. A page is served by its own
    route with its security headers (the console at `/`), never as a bare copy that could be
    framed or run without its Content-Security-Policy."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file at `path`, or 404 for an HTML file."""
        if path.lower().endswith((".html", ".htm")):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


def static_files() -> list[tuple[str, StaticFiles]]:
    """The static mounts the documentation pages load from."""
    return [
        (VENDOR_PREFIX, AssetFiles(directory=VENDOR_DIRECTORY)),
        (OWN_PREFIX, AssetFiles(directory=OWN_DIRECTORY)),
    ]


_SWAGGER_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Resilient API - Swagger UI</title>
  <link rel="icon" href="{VENDOR_PREFIX}/favicon.png">
  <link rel="stylesheet" href="{VENDOR_PREFIX}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{VENDOR_PREFIX}/swagger-ui-bundle.js"></script>
  <script src="{OWN_PREFIX}/docs/swagger-init.js"></script>
</body>
</html>
"""

_REDOC_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Resilient API - ReDoc</title>
  <link rel="icon" href="{VENDOR_PREFIX}/favicon.png">
</head>
<body>
  <redoc spec-url="/openapi.json"></redoc>
  <script src="{VENDOR_PREFIX}/redoc.standalone.js"></script>
</body>
</html>
"""


def _oauth2_redirect() -> tuple[bytes, str]:
    # FastAPI's redirect page is one inline script: allow exactly it, by its hash.
    page = bytes(get_swagger_ui_oauth2_redirect_html().body)
    found = re.search(rb"<script>(.*?)</script>", page, re.DOTALL)
    script = found.group(1) if found else b""
    digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
    return page, f"sha256-{digest}"


_REDIRECT_PAGE, _REDIRECT_HASH = _oauth2_redirect()


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    """Swagger UI for this API."""
    return HTMLResponse(_SWAGGER_PAGE, headers=html_headers())


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    """Where the OAuth2 flow of Swagger UI returns."""
    return HTMLResponse(_REDIRECT_PAGE, headers=html_headers(_REDIRECT_HASH))


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    """ReDoc for this API."""
    return HTMLResponse(_REDOC_PAGE, headers=html_headers())


# ReDoc's menu always shows its maker's logo, fetched from their CDN: the page's policy refuses
# it (a console error on every load) and the docs must load nothing from another origin. The
# bundle is served from here with that one address pointing at this app's own icon.
_REDOC_BUNDLE = "redoc.standalone.js"
_REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_OWN_LOGO = f"{OWN_PREFIX}/console/favicon.svg".encode()
_redoc_bundle: bytes | None = None


@router.get(f"{VENDOR_PREFIX}/{_REDOC_BUNDLE}")
async def redoc_bundle() -> Response:
    """ReDoc's script, read once (with aiofiles), its CDN logo replaced by this app's icon."""
    global _redoc_bundle
    if _redoc_bundle is None:
        async with aiofiles.open(VENDOR_DIRECTORY / _REDOC_BUNDLE, "rb") as bundle:
            _redoc_bundle = (await bundle.read()).replace(_REDOC_CDN_LOGO, _OWN_LOGO)
    return Response(
        _redoc_bundle, media_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )
