"""Worker entry points.

`run_worker(settings)` is the blocking entry of `percolate-reading run` in worker mode: it
connects, serves /metrics and /ready, pulls until SIGTERM/SIGINT, drains and returns 0.
`start_worker(...)` is the async variant `serve` uses, with connections and stores it owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from nats.aio.client import Client as NATS

from percolate_reading import tracing
from percolate_reading.config import Settings
from percolate_reading.contract.jobs import JobMessage
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.contract.topology import TopologyLimits
from percolate_reading.infra.jobs.store import JobStore
from percolate_reading.infra.startup import StartupState, storage_name, until_up
from percolate_reading.infra.storage.base import ObjectStore
from percolate_reading.infra.webhook_queue import WebhookOutbox
from percolate_reading.infra.webhooks import WebhookSender
from percolate_reading.metrics import Metrics
from percolate_reading.worker.health import HealthServer
from percolate_reading.worker.pipeline import Services
from percolate_reading.worker.runner import PullRunner
from percolate_reading.worker.webhook_sender import WebhookDispatcher

log = logging.getLogger(__name__)

# One connection attempt while NATS is not up yet (then a retry with backoff).
CONNECT_WAIT_S = 5.0


class Worker:
    """A running worker: one pull loop on settings.nats_queue_subject / nats_queue_group."""

    def __init__(
        self,
        settings: Settings,
        nc: NATS,
        runner: PullRunner,
        stack: AsyncExitStack,
        webhooks: WebhookDispatcher | None = None,
    ) -> None:
        self.settings = settings
        self.webhooks = webhooks
        self.nc = nc
        self.runner = runner
        self.metrics = runner.svc.metrics
        self._stack = stack
        self._done = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None

    def ready(self) -> tuple[bool, str]:
        if not self.nc.is_connected:
            return False, "nats not connected"
        if not self.runner.alive:
            return False, "pull loop not running"
        if self.webhooks is not None and not self.webhooks.alive:
            return False, "webhook sender not running"
        if not self.runner.outage.is_open:
            return (
                False,
                f"dependency outage for {self.runner.outage.down_for():.0f}s: {self.runner.outage.reason}",
            )
        return True, "ready"

    async def drain(self, timeout_s: float | None = None) -> None:
        """Stop pulling, finish or return in-flight jobs, close what this worker owns.
        Safe to call more than once (later calls wait for the first)."""
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain(timeout_s))
        await asyncio.shield(self._drain_task)

    async def _drain(self, timeout_s: float | None) -> None:
        try:
            timeout = self.settings.drain_timeout_s if timeout_s is None else timeout_s
            await self.runner.drain(timeout)
            if self.webhooks is not None:
                # After the jobs: their webhooks are queued; attempts under way may finish.
                await self.webhooks.drain(min(timeout, self.settings.webhook_timeout_s))
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)  # push out the last acks/naks
            await self._stack.aclose()
        finally:
            self._done.set()

    async def wait(self) -> None:
        """Until the worker has drained and closed."""
        await self._done.wait()


async def start_worker(
    settings: Settings,
    *,
    nc: NATS | None = None,
    store: ObjectStore | None = None,
    jobs: JobStore | None = None,
    metrics: Metrics | None = None,
    tenants: Callable[[str], TenantRecord | None] | None = None,
    startup: StartupState | None = None,
    send_webhooks: bool = True,
) -> Worker:
    """Start a worker. Connections and stores passed in stay the caller's (not closed here);
    missing ones are opened from settings and closed by `drain()`. A dependency that does not
    answer yet is waited for (retried with backoff, logged, `startup.reason` says which).
    `send_webhooks`: run a webhook sender in this worker (`serve` runs one for its three)."""
    from percolate_reading.infra.queue.jetstream import connect
    from percolate_reading.infra.queue.topology import ensure_topology

    stack = AsyncExitStack()
    try:
        if nc is None:
            nc = await until_up(
                f"NATS at {settings.nats_url}",
                lambda: connect(settings, name="percolate-worker", connect_wait_s=CONNECT_WAIT_S),
                startup,
            )
            stack.push_async_callback(_close_nats, nc)
        js = nc.jetstream()
        limits = TopologyLimits.from_settings(settings)
        await until_up("JetStream", lambda: ensure_topology(js, limits, update=False), startup)
        if store is None:
            store = await until_up(
                storage_name(settings.s3_enabled, settings.s3_endpoint),
                lambda: _open_store(settings),
                startup,
            )
            stack.push_async_callback(store.close)
        if jobs is None:
            jobs = await until_up("the job store", lambda: _open_jobs(settings, js), startup)
            stack.push_async_callback(jobs.close)
        if tenants is None:
            tenants = await _tenant_lookup(settings, js, stack)
        metrics = metrics or Metrics()
        outbox = WebhookOutbox(js, metrics, settings.nats_publish_timeout_s)
        svc = Services(
            settings=settings,
            store=store,
            jobs=jobs,
            metrics=metrics,
            webhooks=outbox,
            tenants=tenants,
            publish_job=_job_publisher(js, settings),
        )
        runner = PullRunner(svc, js, subject=settings.nats_queue_subject, durable=settings.nats_queue_group)
        await until_up("the JetStream consumers", runner.start, startup)
        dispatcher: WebhookDispatcher | None = None
        if send_webhooks:
            sender = WebhookSender(settings, metrics=metrics)
            stack.push_async_callback(sender.close)
            dispatcher = WebhookDispatcher(settings, js, sender, tenants)
            await until_up("the webhook consumer", dispatcher.start, startup)
    except BaseException:
        await stack.aclose()
        raise
    log.info(
        "worker pulling %s (consumer %s, concurrency %d)",
        settings.nats_queue_subject,
        settings.nats_queue_group,
        settings.worker_concurrency,
    )
    from percolate_reading.parse.providers.legacy import soffice_path

    soffice = soffice_path()  # optional: legacy DOC/PPT are refused with a clear reason without it
    log.info("LibreOffice for legacy DOC/PPT: %s", soffice or "not installed (DOC/PPT: unsupported_type)")
    return Worker(settings, nc, runner, stack, dispatcher)


def _job_publisher(js: Any, settings: Settings) -> Callable[[JobMessage, str], Awaitable[None]]:
    """How the worker publishes a split job's page ranges: like the gateway, after a PubAck."""
    from percolate_reading.infra.queue.jetstream import publish_job

    async def publish(msg: JobMessage, subject: str) -> None:
        await publish_job(js, msg, subject, ack_timeout_s=settings.nats_publish_timeout_s)

    return publish


async def _open_store(settings: Settings) -> ObjectStore:
    from percolate_reading.infra.storage import open_object_store

    return await open_object_store(settings)


async def _open_jobs(settings: Settings, js: Any) -> JobStore:
    from percolate_reading.infra.jobs import open_job_store

    return await open_job_store(settings, js)


async def _close_nats(nc: NATS) -> None:
    with contextlib.suppress(Exception):
        await nc.drain()
    with contextlib.suppress(Exception):
        await nc.close()


async def _tenant_lookup(
    settings: Settings, js: Any, stack: AsyncExitStack
) -> Callable[[str], TenantRecord | None]:
    """Tenant records from the gateway's registry: settings/tenants file, plus the TENANTS
    bucket the operator writes, followed in the background."""
    from percolate_reading.infra.registry import TenantRegistry

    registry = TenantRegistry.from_settings(settings)
    task = asyncio.create_task(
        registry.watch_kv(js, TopologyLimits.from_settings(settings)), name="tenant-registry-watch"
    )

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    stack.push_async_callback(stop)
    return registry.get


async def worker_main(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    started: list[Worker] = []
    draining: list[asyncio.Task[None]] = []
    startup = StartupState()
    metrics = Metrics()

    def ready() -> tuple[bool, str]:
        return started[0].ready() if started else (False, startup.reason)

    # Health first: while NATS or S3 is not up yet the worker is alive, /ready says why not.
    health: HealthServer | None = None
    if settings.metrics_port:
        health = HealthServer(metrics, ready, settings.host, settings.metrics_port)
        await health.start()
    starting = asyncio.create_task(start_worker(settings, metrics=metrics, startup=startup))
    stop_requested = asyncio.Event()

    def on_signal(signame: str) -> None:
        log.info("%s: draining (up to %.0fs)", signame, settings.drain_timeout_s)
        stop_requested.set()
        if started:
            draining.append(asyncio.create_task(started[0].drain()))
        else:
            starting.cancel()  # still waiting for a dependency: nothing to drain

    # Installed before the (seconds-long) start-up, so a scale-in that arrives early still
    # ends in an orderly drain and exit 0 rather than death by the default SIGTERM action.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        try:
            worker = await starting
        except asyncio.CancelledError:
            log.info("stopped while starting")
            return 0
        started.append(worker)
        startup.done()
        if stop_requested.is_set():  # the signal came as start-up finished
            draining.append(asyncio.create_task(worker.drain()))
        await worker.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if health is not None:
            await health.close()
    log.info("worker stopped after %d message(s)", worker.runner.processed)
    return 0


def run_worker(settings: Settings) -> int:
    """Blocking entry point (`percolate-reading run` with WORKER_MODE)."""
    tracing.setup_tracing("percolate-worker")
    return asyncio.run(worker_main(settings))
