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
import time
from dataclasses import dataclass, field

from percolate_reading.jobs.store import JobStore


@dataclass
class _Entry:
    counted_at: float
    count: int


@dataclass
class QuotaTracker:
    ttl_s: float = 5.0
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _pending: dict[str, int] = field(default_factory=dict)

    async def reserve(self, jobs: JobStore, tenant_id: str, limit: int) -> int | None:
        """Take one slot; returns None when it fits, else the tenant's exact active count.

        Raises whatever the job store raises when it cannot count."""
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            entry = self._entries.get(tenant_id)
            now = time.monotonic()
            if entry is None or now - entry.counted_at > self.ttl_s or entry.count >= limit:
                counted = await jobs.count_active(tenant_id)
                entry = _Entry(now, counted + self._pending.get(tenant_id, 0))
                self._entries[tenant_id] = entry
            if entry.count >= limit:
                return entry.count
            entry.count += 1
            self._pending[tenant_id] = self._pending.get(tenant_id, 0) + 1
            return None

    def landed(self, tenant_id: str) -> None:
        """The reserved job's record is written: a recount now sees it by itself."""
        self._unpend(tenant_id)

    def release(self, tenant_id: str) -> None:
        """The reserved upload failed: give its slot back."""
        self._unpend(tenant_id)
        entry = self._entries.get(tenant_id)
        if entry is not None and entry.count > 0:
            entry.count -= 1

    def _unpend(self, tenant_id: str) -> None:
        pending = self._pending.get(tenant_id, 0)
        if pending > 1:
            self._pending[tenant_id] = pending - 1
        else:
            self._pending.pop(tenant_id, None)
