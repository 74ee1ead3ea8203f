"""Tenant fairness in a shared pool: one tenant's burst does not queue another's job behind it.

A shared pool's consumer delivers in arrival order, and KEDA scales the pool on that
consumer's lag, so every waiting job stays on it. Before each free slot a worker looks at
what waits (the messages after the consumer's delivered sequence, indexed incrementally by
reading the stream, never by consuming it) and at its own jobs per tenant. When the tenant
at the head of the queue already has more jobs on this worker than another waiting tenant,
the worker moves that tenant's oldest waiting job to the pool's fair lane (publish a copy,
then delete the original) and takes it from there, so it runs next. Otherwise the head of
the queue goes first: with one tenant waiting nothing moves and nothing is spent.

A moved job is a first delivery (only jobs never delivered are moved), so it keeps its whole
delivery budget. The copy's message id is the job id plus `.fair`: two workers moving the
same job make one copy. If the original was delivered between the look and the delete, the
copy is deleted again; the narrow window that remains (a delivery during the move) runs the
job twice, which the job store's transitions and the job-keyed artifacts make harmless.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import nats.js.errors

from percolate_reading.contract.subjects import STREAM_NAME, fair_lane_durable, fair_lane_subject
from percolate_reading.infra.queue.jetstream import MSG_ID_HEADER

log = logging.getLogger(__name__)

# Messages indexed per decision at most: a huge backlog is read progressively, never at once.
SCAN_BATCH = 256


def message_tenant(data: bytes) -> str:
    """The tenant a job message names ("" when unreadable: such a message is not moved)."""
    try:
        fields = json.loads(data)
    except ValueError:
        return ""
    tenant = fields.get("tenant_id") if isinstance(fields, dict) else None
    return tenant if isinstance(tenant, str) else ""


def message_job_id(data: bytes, seq: int) -> str:
    try:
        fields = json.loads(data)
    except ValueError:
        fields = None
    job_id = fields.get("job_id") if isinstance(fields, dict) else None
    return job_id if isinstance(job_id, str) else f"seq-{seq}"


def choose_move(waiting: Mapping[str, deque[int]], running: Mapping[str, int]) -> int | None:
    """The stream sequence of the job to move ahead of the queue's head, or None.

    The tenant with the fewest jobs on this worker goes next (ties: the oldest waiting job);
    a move happens only when that tenant is not the one at the head anyway."""
    candidates = {tenant: seqs for tenant, seqs in waiting.items() if seqs and tenant}
    if len(candidates) < 2:
        return None
    head = min(candidates, key=lambda t: candidates[t][0])
    best = min(candidates, key=lambda t: (running.get(t, 0), candidates[t][0]))
    if best == head or running.get(best, 0) >= running.get(head, 0):
        return None
    return candidates[best][0]


class FairLane:
    """The waiting-job index of one shared pool and the moves to its fair lane."""

    def __init__(self, js: Any, pool_subject: str, pool_durable: str) -> None:
        self.js = js
        self.pool_subject = pool_subject
        self.pool_durable = pool_durable
        self.subject = fair_lane_subject(pool_subject)
        self.durable = fair_lane_durable(pool_durable)
        self._waiting: dict[str, deque[int]] = {}
        self._scanned = 0
        self.moved = 0

    async def next_move(self, running: Mapping[str, int]) -> int | None:
        """Refresh the index and say which job (stream sequence) to move, if any."""
        info = await self.js.consumer_info(STREAM_NAME, self.pool_durable)
        delivered = int(info.delivered.stream_seq or 0) if info.delivered is not None else 0
        self._forget_through(delivered)
        await self._scan(delivered)
        return choose_move(self._waiting, running)

    async def lane_pending(self) -> int:
        info = await self.js.consumer_info(STREAM_NAME, self.durable)
        return int(info.num_pending or 0)

    async def move(self, seq: int) -> bool:
        """Copy the waiting job at `seq` to the fair lane and delete the original; True when
        the lane now holds it."""
        self._forget(seq)
        try:
            raw = await self.js.get_msg(STREAM_NAME, seq)
        except nats.js.errors.NotFoundError:
            return False  # delivered and settled, or moved by another worker
        headers = dict(raw.headers or {})
        headers[MSG_ID_HEADER] = f"{message_job_id(raw.data or b'', seq)}.fair"
        ack = await self.js.publish(self.subject, raw.data or b"", headers=headers, stream=STREAM_NAME)
        if ack.duplicate:
            return True  # another worker moved it a moment ago
        try:
            await self.js.delete_msg(STREAM_NAME, seq)
        except nats.js.errors.NotFoundError:
            # Taken from the queue meanwhile: the copy would run the job a second time.
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.delete_msg(STREAM_NAME, ack.seq)
            return False
        self.moved += 1
        log.info("job at %s/%d moved to the fair lane %s", STREAM_NAME, seq, self.subject)
        return True

    async def _scan(self, delivered: int) -> None:
        seq = max(self._scanned, delivered) + 1
        for _ in range(SCAN_BATCH):
            try:
                raw = await self.js.get_msg(STREAM_NAME, seq=seq, subject=self.pool_subject, next=True)
            except nats.js.errors.NotFoundError:
                return  # nothing stored after `seq`
            stored = int(raw.seq or seq)
            self._waiting.setdefault(message_tenant(raw.data or b""), deque()).append(stored)
            self._scanned = seq = stored
            seq += 1

    def _forget_through(self, delivered: int) -> None:
        """Drop what the consumer has delivered (running somewhere, or done)."""
        for tenant in list(self._waiting):
            seqs = self._waiting[tenant]
            while seqs and seqs[0] <= delivered:
                seqs.popleft()
            if not seqs:
                del self._waiting[tenant]

    def _forget(self, seq: int) -> None:
        for tenant, seqs in list(self._waiting.items()):
            if seq in seqs:
                seqs.remove(seq)
                if not seqs:
                    del self._waiting[tenant]
                return
