"""The web UI at /ui: a static page (HTML, JS, CSS committed under gateway/static/ui) that
talks to the same /v1 API with the key the user pastes (kept in sessionStorage only).

No build step and no third-party script: nothing is fetched from elsewhere at run time, and
a strict Content-Security-Policy keeps it that way (no inline script, same-origin only)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from percolate_reading.gateway.api_errors import ApiError

router = APIRouter(include_in_schema=False)

UI_DIR = Path(__file__).parent / "static" / "ui"
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"no UI file {name!r}")
    return FileResponse(UI_DIR / name, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/ui")
async def ui_index() -> FileResponse:
    return _asset("index.html")


@router.get("/ui/{name}")
async def ui_asset(name: str) -> FileResponse:
    return _asset(name)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)
