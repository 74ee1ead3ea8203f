"""The active-job quota, shared by every gateway replica: one JetStream KV entry per tenant.

The bucket (`QUOTAS`) is part of the contract's topology. The entry holds the tenant's
leases, `{job_id: deadline}`. A gateway takes a lease before it stages an upload and writes
the entry with compare-and-set on its revision, so replicas that race for the last slot
cannot both win: exactly `limit` leases exist at most. A lease starts short (`reserve_ttl_s`:
a gateway that dies mid-upload gives its slot back by itself), is extended to the queue's
message lifetime once JetStream holds the job, and is removed by the worker that records the
job's final status (or by the gateway when the upload fails).

Nothing depends on every release arriving: when a tenant is at its limit, the gateway checks
the job records behind the leases and drops those whose job has ended (a worker that died
between the final status and the release); a reservation whose upload never finished (a
gateway killed mid-upload) ends at its deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from percolate_reading.contract import topology
from percolate_reading.contract.jobs import JobRecord
from percolate_reading.contract.topology import TopologyLimits
from percolate_reading.errors import QueueError

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 50
# How often one replica re-checks the job records of a tenant at its limit.
RECONCILE_EVERY_S = 1.0

Leases = dict[str, float]
RecordLookup = Callable[[str], Awaitable[JobRecord | None]]


def _decode(raw: bytes | None) -> Leases:
    if not raw:
        return {}
    try:
        leases = json.loads(raw).get("leases", {})
    except (ValueError, AttributeError):
        return {}
    return {str(k): float(v) for k, v in leases.items()} if isinstance(leases, dict) else {}


def _encode(leases: Leases) -> bytes:
    return json.dumps({"leases": leases}, separators=(",", ":")).encode()


class QuotaLedger:
    def __init__(self, kv: KeyValue, *, reserve_ttl_s: float, active_ttl_s: float) -> None:
        self.kv = kv
        self.reserve_ttl_s = reserve_ttl_s
        self.active_ttl_s = active_ttl_s
        self._reconciled_at: dict[str, float] = {}

    @classmethod
    async def open(
        cls, js: JetStreamContext, limits: TopologyLimits, *, reserve_ttl_s: float = 900.0
    ) -> QuotaLedger:
        from percolate_reading.infra.queue.topology import ensure_bucket

        # Part of the contract's topology (every process creates it alike); ensured here too so
        # a ledger opened before the rest of the topology works.
        kv = await ensure_bucket(js, topology.quotas_bucket(limits), update=False)
        return cls(kv, reserve_ttl_s=reserve_ttl_s, active_ttl_s=limits.max_age_s)

    async def reserve(
        self, tenant_id: str, job_id: str, limit: int, records: RecordLookup | None = None
    ) -> int | None:
        """Take a lease for `job_id`: None when it fits, else the tenant's active count.
        With `records`, a tenant at its limit has the leases of ended jobs dropped first."""
        now = time.time()

        def take(leases: Leases) -> Leases | None:
            live = {j: d for j, d in leases.items() if d > now}
            if len(live) >= limit:
                return None
            live[job_id] = now + self.reserve_ttl_s
            return live

        over = await self._change(tenant_id, take)
        if over is None:
            return None
        if records is None or not self._may_reconcile(tenant_id):
            return over
        await self.reconcile(tenant_id, records)
        over = await self._change(tenant_id, take)
        return over

    async def accepted(self, tenant_id: str, job_id: str) -> None:
        """JetStream holds the job: its lease lasts as long as the queue keeps messages."""
        deadline = time.time() + self.active_ttl_s
        await self._change(tenant_id, lambda leases: {**leases, job_id: deadline})

    async def release(self, tenant_id: str, job_id: str) -> None:
        """The job ended (or its upload failed): its slot is free."""

        def drop(leases: Leases) -> Leases | None:
            if job_id not in leases:
                return None  # nothing to write
            return {j: d for j, d in leases.items() if j != job_id}

        await self._change(tenant_id, drop)

    async def count(self, tenant_id: str) -> int:
        entry = await self._get(tenant_id)
        now = time.time()
        return sum(1 for d in _decode(entry.value if entry else None).values() if d > now)

    async def reconcile(self, tenant_id: str, records: RecordLookup) -> int:
        """Drop the leases of jobs whose record says they ended; returns how many. (A lease
        without a record stays: an upload in progress, or a queued job whose record only its
        worker will write. Its deadline ends it if the job never comes.)"""
        self._reconciled_at[tenant_id] = time.monotonic()
        entry = await self._get(tenant_id)
        leases = _decode(entry.value if entry else None)
        found = await asyncio.gather(*(records(job_id) for job_id in leases))
        stale = {
            job_id for job_id, record in zip(leases, found, strict=True) if record and record.status.terminal
        }
        if stale:
            await self._change(tenant_id, lambda ls: {j: d for j, d in ls.items() if j not in stale})
            log.info("quota of %s: dropped %d lease(s) of ended jobs", tenant_id, len(stale))
        return len(stale)

    def _may_reconcile(self, tenant_id: str) -> bool:
        last = self._reconciled_at.get(tenant_id)
        return last is None or time.monotonic() - last >= RECONCILE_EVERY_S

    async def _get(self, tenant_id: str) -> KeyValue.Entry | None:
        try:
            return await self.kv.get(tenant_id)
        except nats.js.errors.KeyNotFoundError:
            return None

    async def _change(self, tenant_id: str, change: Callable[[Leases], Leases | None]) -> int | None:
        """Apply `change` to the tenant's leases with compare-and-set, retried on a conflict.
        `change` returns None to write nothing; the answer is then the live lease count."""
        for attempt in range(_CAS_ATTEMPTS):
            entry = await self._get(tenant_id)
            leases = _decode(entry.value if entry else None)
            wanted = change(leases)
            if wanted is None:
                now = time.time()
                return sum(1 for d in leases.values() if d > now)
            try:
                if entry is None:
                    await self.kv.create(tenant_id, _encode(wanted))
                else:
                    await self.kv.update(tenant_id, _encode(wanted), last=entry.revision)
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
                # Another writer was first: read again, after a jittered pause that grows with
                # the contention (a burst of uploads of one tenant through several replicas).
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 25)))  # noqa: S311
                continue
            return None
        raise QueueError(f"quota of {tenant_id}: too many concurrent changes")
