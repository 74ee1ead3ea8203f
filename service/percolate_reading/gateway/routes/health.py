"""Liveness, readiness and Prometheus metrics (no authentication: cluster-internal probes)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from percolate_reading.gateway.deps import GatewayDeps

router = APIRouter(tags=["health"])

PING_TIMEOUT_S = 2.0


@router.get("/health")
async def health() -> JSONResponse:
    """The process answers; says nothing about its dependencies."""
    return JSONResponse({"status": "ok"})


async def readiness(deps: GatewayDeps) -> dict[str, str]:
    """Each check's state: "ok" or why not."""
    checks: dict[str, str] = {}
    if deps.nc is None:
        checks["nats"] = "not configured"
    elif not deps.nc.is_connected:
        checks["nats"] = "disconnected"
    else:
        # A round-trip (PING/PONG), not the socket's state: a frozen server keeps the socket open.
        try:
            await deps.nc.flush(timeout=PING_TIMEOUT_S)
            checks["nats"] = "ok"
        except Exception as exc:
            checks["nats"] = f"no answer: {type(exc).__name__}"
    try:
        await asyncio.wait_for(deps.store.ping(), PING_TIMEOUT_S)
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"unreachable: {type(exc).__name__}"
    dead = deps.dead_tasks()
    checks["background_tasks"] = "ok" if not dead else "stopped: " + ", ".join(sorted(dead))
    return checks


@router.get("/ready", responses={"503": {"description": "A dependency or background task is down."}})
async def ready(request: Request) -> JSONResponse:
    deps: GatewayDeps | None = request.app.state.deps
    if deps is None:  # the lifespan still waits for NATS or S3
        startup = request.app.state.startup
        reason = startup.reason if startup is not None else "starting"
        return JSONResponse({"status": "not ready", "checks": {"startup": reason}}, status_code=503)
    checks = await readiness(deps)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={"200": {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    deps: GatewayDeps | None = request.app.state.deps
    if deps is None or deps.metrics is None:
        return Response(b"", media_type="text/plain; version=0.0.4")
    return Response(deps.metrics.render(), media_type=deps.metrics.content_type)
