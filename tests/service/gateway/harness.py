"""Test harness for the gateway: the app on a real uvicorn server in a thread (documents and
the webhook receiver are in `tests.harness`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from percolate_reading.config import Settings
from percolate_reading.gateway.app import create_app
from percolate_reading.gateway.deps import GatewayDeps
from percolate_reading.gateway.server import GatewayServer, uvicorn_config


def ensure_shared_pools(settings: Settings) -> None:
    """What jobs-init (compose) or the operator does in a cluster: the JOBS stream and a
    consumer for each shared tier, so the gateway sees a pool for every tier."""
    from percolate_reading.contract.subjects import Tier, consumer_name, job_subject
    from percolate_reading.contract.topology import ConsumerLimits, TopologyLimits
    from percolate_reading.infra.queue.jetstream import close_quietly, connect
    from percolate_reading.infra.queue.topology import ensure_pool_consumers, ensure_topology

    async def ensure() -> None:
        nc = await connect(settings, name="test-pools")
        try:
            js = nc.jetstream()
            await ensure_topology(js, TopologyLimits.from_settings(settings), update=False)
            for tier in Tier:
                await ensure_pool_consumers(
                    js, job_subject(tier), consumer_name(tier), ConsumerLimits.from_settings(settings)
                )
        finally:
            await close_quietly(nc)

    # In a thread of its own: callers may be inside a running event loop.
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(ensure())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


class LiveGateway:
    """The gateway app on a real uvicorn server (own thread and event loop) on a free port.

    `shared_pools` (default) first creates a consumer per shared tier, as a cluster has."""

    def __init__(
        self, settings: Settings, deps: GatewayDeps | None = None, *, shared_pools: bool = True
    ) -> None:
        self.settings = settings
        self.shared_pools = shared_pools and bool(settings.nats_url)
        self.server = GatewayServer(uvicorn_config(settings, create_app(settings, deps), log_config=False))
        self.thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def start(self, timeout: float = 60.0) -> None:
        if self.shared_pools:
            ensure_shared_pools(self.settings)
        self.thread.start()
        done = threading.Event()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the gateway did not start (see the log)")
            done.wait(0.05)
            timeout -= 0.05
            if timeout <= 0:
                raise TimeoutError("the gateway did not start in time")

    @classmethod
    @contextlib.contextmanager
    def running(cls, settings: Settings, deps: GatewayDeps | None = None) -> Iterator[LiveGateway]:
        gateway = cls(settings, deps)
        gateway.start()
        try:
            yield gateway
        finally:
            gateway.stop()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
