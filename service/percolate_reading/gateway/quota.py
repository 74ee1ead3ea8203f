"""Per-tenant active-job quota.

A gateway with JetStream (every cluster replica, and `serve`) uses the shared ledger
(`infra.jobs.quota_ledger`, `GatewayDeps.quota_ledger`): one compare-and-set entry per
tenant that all replicas and the workers write, so the limit holds across replicas.
A gateway without JetStream (some tests) keeps the per-replica estimate below.

Per-replica estimate, without a full count on every upload:

Counting a tenant's queued+running jobs reads its whole index, which would make each upload
slower the more jobs the tenant has. This replica instead keeps an estimate: the exact count
from at most `ttl_s` ago plus the uploads it reserved since. Jobs only leave the active set
after a count, so the estimate never undercounts this replica's work; when it reaches the
limit the exact count decides. Reservations are taken before the upload and released when a
submission fails, so concurrent uploads cannot overshoot the limit between them.

A stale estimate below the limit is refreshed in the background: uploads go on meanwhile.
(A tenant with thousands of queued jobs, a bulk ingestion, would otherwise see every upload
wait for a count of all of them every `ttl_s`.) Only the first count and an estimate at the
limit make an upload wait. Jobs whose records land while a count runs may be missing from
it, so they are added on top: an overcount is safe (the exact count then decides), an
undercount would let a tenant past its quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from percolate_reading.infra.jobs.store import JobStore

log = logging.getLogger(__name__)


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
    _landed: dict[str, int] = field(default_factory=dict)  # landings so far (only grows)
    _refreshing: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def reserve(self, jobs: JobStore, tenant_id: str, limit: int) -> int | None:
        """Take one slot; returns None when it fits, else the tenant's exact active count.

        Raises whatever the job store raises when it cannot count."""
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            entry = self._entries.get(tenant_id)
            if entry is None or entry.count >= limit:
                entry = await self._count(jobs, tenant_id)
            elif time.monotonic() - entry.counted_at > self.ttl_s:
                self._refresh_soon(jobs, tenant_id)
            if entry.count >= limit:
                return entry.count
            entry.count += 1
            self._pending[tenant_id] = self._pending.get(tenant_id, 0) + 1
            return None

    def landed(self, tenant_id: str) -> None:
        """The reserved job's record is written: a recount now sees it by itself."""
        self._unpend(tenant_id)
        self._landed[tenant_id] = self._landed.get(tenant_id, 0) + 1

    def release(self, tenant_id: str) -> None:
        """The reserved upload failed: give its slot back."""
        self._unpend(tenant_id)
        entry = self._entries.get(tenant_id)
        if entry is not None and entry.count > 0:
            entry.count -= 1

    async def close(self) -> None:
        """Stop background counts (at shutdown)."""
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refreshing.clear()

    async def _count(self, jobs: JobStore, tenant_id: str) -> _Entry:
        landed_before = self._landed.get(tenant_id, 0)
        counted = await jobs.count_active(tenant_id)
        # Reservations still in flight, and records that landed while we counted (perhaps
        # after the store's snapshot): both count, even if that counts some twice.
        landed_during = self._landed.get(tenant_id, 0) - landed_before
        entry = _Entry(time.monotonic(), counted + self._pending.get(tenant_id, 0) + landed_during)
        self._entries[tenant_id] = entry
        return entry

    def _refresh_soon(self, jobs: JobStore, tenant_id: str) -> None:
        running = self._refreshing.get(tenant_id)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(self._refresh(jobs, tenant_id), name=f"quota-count-{tenant_id}")
        self._refreshing[tenant_id] = task

    async def _refresh(self, jobs: JobStore, tenant_id: str) -> None:
        try:
            await self._count(jobs, tenant_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the estimate stays; the next stale reservation tries again
            log.warning("background quota count for %s failed: %s", tenant_id, exc)
        finally:
            with contextlib.suppress(KeyError):
                if self._refreshing[tenant_id] is asyncio.current_task():
                    del self._refreshing[tenant_id]

    def _unpend(self, tenant_id: str) -> None:
        pending = self._pending.get(tenant_id, 0)
        if pending > 1:
            self._pending[tenant_id] = pending - 1
        else:
            self._pending.pop(tenant_id, None)
