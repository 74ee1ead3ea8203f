"""URLs the gateway hands out (`status_url`, `Location`, artifact links).

Built from the configured `PUBLIC_BASE_URL`, or relative to the gateway's root when none is
set; never from the request's `Host` header, which the client chooses (a reflected Host would
let anyone plant links to their own server in answers and cached pages)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

# The routes whose URLs answers carry (names given in routes/jobs.py).
LINKED_ROUTES = {"get_job": {"job_id": "-"}, "get_artifact": {"job_id": "-", "path": "-"}}


def public_url(request: Request, name: str, **params: Any) -> str:
    path = str(request.scope.get("root_path", "")) + str(request.app.url_path_for(name, **params))
    base: str | None = request.app.state.deps.settings.public_base_url
    return base.rstrip("/") + path if base else path


def build_url_routes(app: FastAPI) -> None:
    """FastAPI builds a route's URL state on the first `url_path_for`; build it now, once,
    rather than inside concurrent first requests (routers are module objects: several apps in
    one process, as tests run them, would build the same route's state at the same time)."""
    for name, params in LINKED_ROUTES.items():
        app.url_path_for(name, **params)
