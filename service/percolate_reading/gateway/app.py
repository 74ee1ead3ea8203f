"""The gateway's FastAPI application: `create_app(settings, deps=None)`.

With no `deps` the lifespan connects to NATS, S3 and the job store itself (and closes them
at shutdown); `serve` and tests hand in their own. Either way the lifespan runs the
background tasks (tenant registry watch, clean-up sweeper) and /ready turns false when one
of them stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from percolate_reading import __version__, tracing
from percolate_reading.config import Settings
from percolate_reading.contract.topology import TopologyLimits
from percolate_reading.gateway.api_errors import RETRY_AFTER_S, error_body, install_error_handlers
from percolate_reading.gateway.deps import GatewayDeps
from percolate_reading.gateway.docs import install_docs
from percolate_reading.gateway.http_limits import HeaderCountLimit
from percolate_reading.gateway.routes import context, health, jobs, parse
from percolate_reading.gateway.ui import router as ui_router
from percolate_reading.gateway.urls import build_url_routes
from percolate_reading.infra.registry import TenantRegistry
from percolate_reading.infra.startup import StartupState, storage_name, until_up
from percolate_reading.metrics import Metrics

log = logging.getLogger(__name__)


# One connection attempt while NATS is not up yet (then a retry with backoff).
CONNECT_WAIT_S = 5.0

# What the lifespan calls to build the gateway's dependencies (serve adds its workers).
DepsOpener = Callable[[AsyncExitStack, StartupState], Awaitable[GatewayDeps]]


async def open_deps(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    single_node: bool = False,
    startup: StartupState | None = None,
) -> GatewayDeps:
    """Connect everything the gateway needs; `stack` closes it in reverse order. A dependency
    that does not answer yet is waited for (retried with backoff; `startup.reason` says which).

    `single_node` (for `serve`) keeps job state in RocksDB under data_dir instead of the
    JetStream KV bucket that gateway replicas share."""
    from percolate_reading.infra.jobs import open_job_store
    from percolate_reading.infra.queue.jetstream import close_quietly, connect
    from percolate_reading.infra.queue.topology import ensure_topology
    from percolate_reading.infra.storage import open_object_store

    registry = TenantRegistry.from_settings(settings)
    nc = await until_up(
        f"NATS at {settings.nats_url}",
        lambda: connect(settings, name="percolate-gateway", connect_wait_s=CONNECT_WAIT_S),
        startup,
    )
    stack.push_async_callback(close_quietly, nc)
    js = nc.jetstream()
    limits = TopologyLimits.from_settings(settings)
    await until_up("JetStream", lambda: ensure_topology(js, limits, update=False), startup)
    store = await until_up(
        storage_name(settings.s3_enabled, settings.s3_endpoint), lambda: open_object_store(settings), startup
    )
    stack.push_async_callback(store.close)
    job_store = await until_up(
        "the job store", lambda: open_job_store(settings, None if single_node else js), startup
    )
    stack.push_async_callback(job_store.close)
    return GatewayDeps(
        settings=settings,
        store=store,
        jobs=job_store,
        registry=registry,
        nc=nc,
        js=js,
        metrics=default_metrics(),
    )


def default_metrics() -> Metrics:
    return Metrics()


def _supervise(deps: GatewayDeps, name: str, coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(coro, name=name)

    def done(t: asyncio.Task[None]) -> None:
        if t.cancelled():
            return
        exc = t.exception()
        # /ready reports the task as stopped from here on; the orchestrator restarts us.
        log.error("background task %s stopped: %r", name, exc)

    task.add_done_callback(done)
    deps.tasks[name] = task


def start_background(deps: GatewayDeps) -> None:
    if deps.js is not None:
        _supervise(
            deps,
            "tenant-registry",
            deps.registry.watch_kv(deps.js, TopologyLimits.from_settings(deps.settings)),
        )
    interval = deps.settings.queue_stats_interval_s
    if deps.js is not None and deps.metrics is not None and interval > 0:
        from percolate_reading.contract.subjects import STREAM_NAME
        from percolate_reading.gateway.queue_stats import collect_forever

        _supervise(deps, "queue-stats", collect_forever(deps.js, STREAM_NAME, deps.metrics, interval))
    assert deps.sweeper is not None
    _supervise(deps, "sweeper", deps.sweeper.run())
    _supervise(
        deps,
        "leftover-scan",
        deps.sweeper.scan_forever(
            deps.registry.tenants,
            older_than_s=deps.settings.nats_max_age_s,
            uploads_older_than_s=deps.settings.s3_abort_incomplete_uploads_after_s,
        ),
    )


async def stop_background(deps: GatewayDeps) -> None:
    tasks = list(deps.tasks.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    deps.tasks.clear()
    await deps.quotas.close()


class RequestCounter:
    """Pure ASGI middleware counting requests by route template, method and status (no body
    buffering, unlike BaseHTTPMiddleware, so uploads still stream)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            deps = getattr(scope["app"].state, "deps", None)
            if deps is not None and deps.metrics is not None:
                # The route template, never the raw path: ids would explode the label set.
                endpoint = getattr(scope.get("route"), "path", "unmatched")
                deps.metrics.http_requests_total.labels(endpoint, scope["method"], str(status)).inc()


class StartingGuard:
    """While the lifespan still waits for NATS or S3, the API (/v1/...) answers 503 with
    Retry-After and why; probes, docs and the UI's pages need neither (pure ASGI, like
    RequestCounter)."""

    GUARDED_PREFIX = "/v1/"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.GUARDED_PREFIX):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        # startup is None without a lifespan that opens the dependencies (deps handed in, or
        # an ASGI transport that runs no lifespan): nothing to wait for.
        startup: StartupState | None = state.startup
        if startup is None or state.deps is not None:
            await self.app(scope, receive, send)
            return
        reason = startup.reason
        body = json.dumps(error_body("starting", f"the gateway is not ready: {reason}")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(RETRY_AFTER_S).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _start(app: FastAPI, stack: AsyncExitStack, startup: StartupState, opener: DepsOpener) -> None:
    """Open the dependencies (waiting for them), then serve with them."""
    try:
        active = await opener(stack, startup)
    except Exception as exc:
        log.error("gateway start-up failed: %r", exc)
        startup.done(exc)
        return
    app.state.deps = active
    start_background(active)
    startup.done()
    log.info("gateway ready")


async def _stop(active: GatewayDeps) -> None:
    await stop_background(active)
    assert active.sweeper is not None
    # One last try at leftovers while the connections are still open.
    await active.sweeper.sweep_once()


def create_app(
    settings: Settings, deps: GatewayDeps | None = None, *, opener: DepsOpener | None = None
) -> FastAPI:
    """The app. With `deps` it serves with those (the caller closes them); else the lifespan
    opens them with `opener` (default `open_deps`) in the background: the gateway answers
    /health at once and /ready 503 (other routes 503 + Retry-After) until NATS and S3 are up."""

    async def default_opener(stack: AsyncExitStack, startup: StartupState) -> GatewayDeps:
        return await open_deps(settings, stack, startup=startup)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if deps is not None:
            app.state.deps = deps
            start_background(deps)
            try:
                yield
            finally:
                await _stop(deps)
            return
        startup = StartupState()
        app.state.startup = startup
        async with AsyncExitStack() as stack:
            task = asyncio.create_task(_start(app, stack, startup, opener or default_opener))
            # Up at once, or blocked on a dependency: serve either way (not ready meanwhile).
            await startup.settled()
            if startup.failed is not None:
                raise startup.failed  # a configuration error: uvicorn exits 1
            try:
                yield
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                if startup.ready:
                    await _stop(app.state.deps)

    app = FastAPI(
        title="percolate-reading gateway",
        version=__version__,
        description="Upload documents for parsing; poll status; download artifacts.",
        lifespan=lifespan,
        # FastAPI's own pages load their scripts from a CDN: install_docs serves them locally.
        docs_url=None,
        redoc_url=None,
    )
    # Usable before the lifespan runs too (ASGI transports that skip lifespan events); None
    # until the lifespan has opened the dependencies.
    app.state.deps = deps
    app.state.startup = None
    install_error_handlers(app)
    app.include_router(parse.router)
    app.include_router(jobs.router)
    app.include_router(context.router)
    app.include_router(health.router)
    app.include_router(ui_router)
    install_docs(app)
    build_url_routes(app)

    app.add_middleware(RequestCounter)
    app.add_middleware(StartingGuard)
    tracing.instrument_app(app)  # server spans, when OTEL_* turned tracing on
    app.add_middleware(HeaderCountLimit, max_headers=settings.http_max_headers)
    return app
