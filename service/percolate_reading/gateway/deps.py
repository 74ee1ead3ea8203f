"""What the gateway's routes need, built by the lifespan or handed in (serve, tests)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from percolate_reading.config import Settings
from percolate_reading.contract.subjects import STREAM_NAME
from percolate_reading.gateway.pools import PoolDirectory
from percolate_reading.gateway.quota import QuotaTracker
from percolate_reading.gateway.sweeper import Sweeper
from percolate_reading.infra.jobs.quota_ledger import QuotaLedger
from percolate_reading.infra.jobs.store import JobStore
from percolate_reading.infra.registry import TenantRegistry
from percolate_reading.infra.storage.base import ObjectStore
from percolate_reading.metrics import Metrics


@dataclass
class GatewayDeps:
    """Connections and state shared by the routes.

    `nc`/`js` are the NATS client and its JetStream context (None only when a test runs the
    gateway without a queue). Whoever builds a GatewayDeps closes what is in it; the app's
    lifespan closes only what it opened itself.
    """

    settings: Settings
    store: ObjectStore
    jobs: JobStore
    registry: TenantRegistry
    nc: Any = None
    js: Any = None
    metrics: Metrics | None = None
    sweeper: Sweeper | None = None
    quotas: QuotaTracker = field(default_factory=QuotaTracker)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    pools: PoolDirectory | None = None
    ledger: QuotaLedger | None = None
    _ledger_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        if self.sweeper is None:
            self.sweeper = Sweeper(self.store, self.jobs)
        if self.pools is None and self.js is not None:
            self.pools = PoolDirectory(self.js, STREAM_NAME)

    async def quota_ledger(self) -> QuotaLedger | None:
        """The active-job quota shared by all replicas (None without JetStream), opened on
        first use; raises QueueError while NATS cannot create or open it."""
        if self.ledger is None and self.js is not None:
            async with self._ledger_lock:
                if self.ledger is None:
                    from percolate_reading.contract.topology import TopologyLimits

                    limits = TopologyLimits.from_settings(self.settings)
                    self.ledger = await QuotaLedger.open(self.js, limits)
        return self.ledger

    def dead_tasks(self) -> list[str]:
        return [name for name, task in self.tasks.items() if task.done()]
