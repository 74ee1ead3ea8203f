"""Per-tenant active-job quota without a full count on every upload.

Counting a tenant's queued+running jobs reads its whole index, which would make each upload
slower the more jobs the tenant has. This replica instead keeps an estimate: the exact count
from at most `ttl_s` ago plus the uploads it reserved since. Jobs only leave the active set
after a count, so the estimate never undercounts this replica's work; when it reaches the
limit the exact count decides. Reservations are taken before the upload and released when a
submission fails, so concurrent uploads cannot overshoot the limit between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from percolate_reading.jobs.store import JobStore

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    counted_at: float
    count: int
    # Reservations taken minus released since the entry was made: a recount started at
    # `net` = n adds what came in after it (counted twice at worst, never missed).
    net: int = 0
    refresh: asyncio.Task[None] | None = None


@dataclass
class QuotaTracker:
    ttl_s: float = 5.0
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def reserve(self, jobs: JobStore, tenant_id: str, limit: int) -> int | None:
        """Take one slot; returns None when it fits, else the tenant's exact active count.

        A stale estimate below the limit is recounted in the background (uploads do not wait
        for a count that reads the tenant's whole index); at the limit the exact count, taken
        now, decides. Raises whatever the job store raises when it cannot count."""
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            entry = self._entries.get(tenant_id)
            now = time.monotonic()
            if entry is None or entry.count >= limit:
                entry = _Entry(now, await jobs.count_active(tenant_id))
                self._entries[tenant_id] = entry
            elif now - entry.counted_at > self.ttl_s and (entry.refresh is None or entry.refresh.done()):
                entry.refresh = asyncio.create_task(self._recount(jobs, tenant_id, entry))
            if entry.count >= limit:
                return entry.count
            entry.count += 1
            entry.net += 1
            return None

    async def _recount(self, jobs: JobStore, tenant_id: str, entry: _Entry) -> None:
        started_net = entry.net
        try:
            counted = await jobs.count_active(tenant_id)
        except Exception as exc:  # the estimate stays; the next stale reservation retries
            log.warning("active-job count of %s failed: %s", tenant_id, exc)
            return
        if self._entries.get(tenant_id) is entry:
            entry.count = counted + (entry.net - started_net)
            entry.counted_at = time.monotonic()

    def release(self, tenant_id: str) -> None:
        entry = self._entries.get(tenant_id)
        if entry is not None and entry.count > 0:
            entry.count -= 1
            entry.net -= 1

    async def close(self) -> None:
        """Stop recounts still running (at shutdown)."""
        for entry in self._entries.values():
            if entry.refresh is not None and not entry.refresh.done():
                entry.refresh.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.refresh
