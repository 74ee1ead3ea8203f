"""Job messages, records and the status store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from percolate_reading.config import Settings
from percolate_reading.infra.jobs.store import JobStore

if TYPE_CHECKING:
    from nats.js import JetStreamContext


async def open_job_store(settings: Settings, js: JetStreamContext | None = None) -> JobStore:
    """The JetStream KV store when a JetStream context is given, else RocksDB under data_dir."""
    if js is not None:
        from percolate_reading.infra.jobs.kv_store import KvJobStore

        return await KvJobStore.open(js, settings)
    from percolate_reading.infra.jobs.rocks_store import RocksJobStore

    return RocksJobStore(settings.data_dir / "jobs.rocksdb")
