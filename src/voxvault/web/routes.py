"""The web console: ``/`` serves the page, ``/static/*`` its script and style, all from package data.

No build step and no external asset: three files under ``voxvault/web/static``. Every response carries a
strict Content-Security-Policy (scripts, styles and connections to this origin only; no inline code) and
the usual hardening headers. The page holds no data itself: it calls the API with the key the user types.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

router = APIRouter(include_in_schema=False)

# blob: media plays recorded takes and finished syntheses; MediaSource streams use blob: URLs too.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".ico": "image/x-icon",
}


def _index_html() -> str:
    return resources.files("voxvault.web").joinpath("static", "index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    """The console page (the key is typed in the page; nothing here needs one)."""
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return HTMLResponse(_index_html(), headers=headers)


@router.get("/favicon.ico")
def favicon() -> Response:
    """The icon browsers ask for on every page (the console's and the API docs'), instead of a 404."""
    data = resources.files("voxvault.web").joinpath("static", "favicon.ico").read_bytes()
    return Response(data, media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"})


class StaticAssets(StaticFiles):
    """Package-data files with fixed content types and the same security headers as the page."""

    def file_response(
        self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        suffix = "." + str(full_path).rsplit(".", 1)[-1].lower()
        if suffix in CONTENT_TYPES:
            response.headers["content-type"] = CONTENT_TYPES[suffix]
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_app() -> StaticAssets:
    """Mount at ``/static``: serves ``voxvault/web/static`` (directory listings off)."""
    return StaticAssets(packages=[("voxvault.web", "static")])
