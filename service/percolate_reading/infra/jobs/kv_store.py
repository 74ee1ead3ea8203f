"""JobStore on a JetStream key-value bucket (`JOBS_STATUS`): shared by every replica.

Status changes are compare-and-set (`kv.update(..., last=revision)`) in a retry loop, so two
workers racing on a redelivered job, or a late duplicate, can never move a job backwards.

Round trips are the cost of a job's bookkeeping, so: the record and its list-index hint are
written at once on create; a change is first tried against the revision this store last
read or wrote (a stale one fails the compare-and-set and is re-read, so this only saves the
read); and the hint is rewritten only when a job finishes, because readers confirm every
non-terminal hint against the record anyway (queued and running look alike there).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from percolate_reading.config import Settings
from percolate_reading.contract import topology
from percolate_reading.contract.jobs import JobRecord, JobStatus
from percolate_reading.contract.keys import check_job_id
from percolate_reading.errors import InvalidTransitionError, JobNotFoundError, QueueError
from percolate_reading.infra.jobs import index

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 100
_REVISIONS_KEPT = 4096  # jobs whose last known revision is remembered (a few per slot)
_NATS_ERRORS = (nats.errors.Error, TimeoutError)
# How long index entries may trail nats-py's end-of-initial-values marker (see _index_entries).
LATE_ENTRY_WAIT_S = 0.1


class KvJobStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        # job id -> (record, revision) as last read or written here: a first guess for CAS.
        self._last: OrderedDict[str, tuple[JobRecord, int]] = OrderedDict()

    def _remember(self, record: JobRecord, revision: int) -> None:
        self._last[record.job_id] = (record, revision)
        self._last.move_to_end(record.job_id)
        while len(self._last) > _REVISIONS_KEPT:
            self._last.popitem(last=False)

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> KvJobStore:
        from percolate_reading.infra.queue.topology import ensure_bucket

        bucket = topology.status_bucket(topology.TopologyLimits.from_settings(settings))
        return cls(await ensure_bucket(js, bucket, update=False))

    async def _get_entry(self, job_id: str) -> tuple[JobRecord, int] | None:
        try:
            entry = await self._kv.get(index.record_key(job_id))
        except nats.js.errors.KeyNotFoundError:
            return None
        except _NATS_ERRORS as exc:
            raise QueueError(f"job store unreachable: {exc}") from exc
        if entry.value is None or entry.revision is None:
            return None
        record = index.decode(entry.value)
        self._remember(record, entry.revision)
        return record, entry.revision

    async def create(self, record: JobRecord) -> None:
        # The hint goes out with the record, not after it: a hint without its record is
        # skipped by readers, and a queued hint is confirmed against the record anyway.
        created, _ = await asyncio.gather(
            self._kv.create(index.record_key(record.job_id), index.encode(record)),
            self._put_hint(record),
            return_exceptions=True,
        )
        if isinstance(created, nats.js.errors.KeyWrongLastSequenceError):
            # Already there: keep the existing record (idempotent create) and its hint.
            existing = await self._get_entry(record.job_id)
            if existing is not None and existing[0].status.terminal:
                await self._put_hint(existing[0])
            return
        if isinstance(created, _NATS_ERRORS):
            raise QueueError(f"job store unreachable: {created}") from created
        if isinstance(created, BaseException):
            raise created
        self._remember(record, created)

    async def get(self, job_id: str) -> JobRecord | None:
        try:
            check_job_id(job_id)
        except ValueError:
            return None
        got = await self._get_entry(job_id)
        return got[0] if got else None

    async def transition(self, job_id: str, status: JobStatus, **fields: Any) -> JobRecord:
        record = await self._cas(job_id, lambda r: index.apply_transition(r, status, fields))
        if record.status.terminal:
            await self._put_hint(record)
        return record

    async def update(self, job_id: str, **fields: Any) -> JobRecord:
        return await self._cas(job_id, lambda r: index.apply_update(r, fields))

    async def complete_part(self, job_id: str, part: str) -> JobRecord:
        current = await self.get(job_id)
        if current is not None and (current.status.terminal or part in current.parts_done):
            return current
        return await self._cas(job_id, lambda r: index.apply_part_done(r, part))

    async def _cas(self, job_id: str, change: Any) -> JobRecord:
        key = index.record_key(job_id)
        guess = self._last.get(job_id)
        for _ in range(_CAS_ATTEMPTS):
            remembered = guess is not None
            got = guess if guess is not None else await self._get_entry(job_id)
            guess = None
            if got is None:
                raise JobNotFoundError(f"job {job_id} not found")
            current, revision = got
            try:
                new: JobRecord = change(current)
            except InvalidTransitionError:
                if not remembered or current.status.terminal:
                    raise  # read just now, or terminal (final): the refusal stands
                continue  # judged on a remembered record that may be old: re-read
            try:
                written = await self._kv.update(key, index.encode(new), last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                await asyncio.sleep(0)  # someone else wrote first: re-read and re-check
                continue
            except _NATS_ERRORS as exc:
                raise QueueError(f"job store unreachable: {exc}") from exc
            self._remember(new, written)
            return new
        raise QueueError(f"job {job_id}: too much contention updating its status")

    async def _put_hint(self, record: JobRecord) -> None:
        try:
            await self._kv.put(index.index_key(record), record.status.value.encode())
        except _NATS_ERRORS as exc:
            # The record is the truth; a stale hint is confirmed against it by readers.
            log.warning("could not update list index of job %s: %s", record.job_id, exc)

    async def _index_entries(self, tenant_id: str) -> list[tuple[str, str]]:
        entries: list[tuple[str, str]] = []
        try:
            watcher = await self._kv.watch(index.tenant_prefix(tenant_id) + ">", ignore_deletes=True)
            try:
                late = False  # past an end marker that came before any entry
                while True:
                    try:
                        entry = await watcher.updates(timeout=LATE_ENTRY_WAIT_S if late else 10)  # type: ignore[no-untyped-call]
                    except nats.errors.TimeoutError:
                        if late:
                            break  # the late entries have all landed
                        raise
                    if entry is None:
                        if entries or late:
                            break
                        # nats-py marks the end before the first entry when the server had
                        # delivered it before the client's consumer-info call returned (nothing
                        # pending, nothing received yet): such entries are already in the
                        # subscription's queue and land within moments.
                        late = True
                        continue
                    entries.append((entry.key, (entry.value or b"").decode()))
            finally:
                await watcher.stop()  # type: ignore[no-untyped-call]
        except _NATS_ERRORS as exc:
            raise QueueError(f"job store unreachable: {exc}") from exc
        return entries

    async def list_for_tenant(
        self, tenant_id: str, status: JobStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        entries = await self._index_entries(tenant_id)
        return await index.page_from_index(
            entries, self.get, tenant_id=tenant_id, status=status, limit=limit, cursor=cursor
        )

    async def count_active(self, tenant_id: str) -> int:
        entries = await self._index_entries(tenant_id)
        ids = index.active_candidates(entries)
        count = 0
        for start in range(0, len(ids), 64):
            records = await asyncio.gather(*(self.get(j) for j in ids[start : start + 64]))
            for record in records:
                if record is None or record.tenant_id != tenant_id:
                    continue
                if record.status.terminal:
                    await self._put_hint(record)  # repair a hint left stale by a crash
                else:
                    count += 1
        return count

    async def close(self) -> None:
        return None  # the NATS connection belongs to the caller
