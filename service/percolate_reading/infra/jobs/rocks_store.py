"""JobStore on RocksDB (`rocksdict`) for single-node mode: one process owns the database.

An asyncio.Lock makes read-check-write atomic within the process; the record and its index
hint are written in one batch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rocksdict import Rdict, WriteBatch

from percolate_reading.contract.jobs import JobRecord, JobStatus
from percolate_reading.contract.keys import check_job_id
from percolate_reading.errors import JobNotFoundError
from percolate_reading.infra.jobs import index


class RocksJobStore:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path))
        self._lock = asyncio.Lock()
        self._closed = False

    def _read(self, job_id: str) -> JobRecord | None:
        raw = self._db.get(index.record_key(job_id))
        return None if raw is None else index.decode(raw)

    def _write(self, record: JobRecord) -> None:
        batch = WriteBatch()
        batch.put(index.record_key(record.job_id), index.encode(record))
        batch.put(index.index_key(record), record.status.value)
        self._db.write(batch)

    async def create(self, record: JobRecord) -> None:
        async with self._lock:
            if self._read(record.job_id) is None:
                self._write(record)

    async def get(self, job_id: str) -> JobRecord | None:
        try:
            check_job_id(job_id)
        except ValueError:
            return None
        return self._read(job_id)

    async def transition(self, job_id: str, status: JobStatus, **fields: Any) -> JobRecord:
        async with self._lock:
            current = self._read(job_id)
            if current is None:
                raise JobNotFoundError(f"job {job_id} not found")
            new = index.apply_transition(current, status, fields)
            self._write(new)
            return new

    async def update(self, job_id: str, **fields: Any) -> JobRecord:
        async with self._lock:
            current = self._read(job_id)
            if current is None:
                raise JobNotFoundError(f"job {job_id} not found")
            new = index.apply_update(current, fields)
            self._write(new)
            return new

    async def complete_part(self, job_id: str, part: str) -> JobRecord:
        async with self._lock:
            current = self._read(job_id)
            if current is None:
                raise JobNotFoundError(f"job {job_id} not found")
            new = index.apply_part_done(current, part)
            if new is not current:
                self._write(new)
            return new

    def _index_entries(self, tenant_id: str) -> list[tuple[str, str]]:
        prefix = index.tenant_prefix(tenant_id)
        entries: list[tuple[str, str]] = []
        for key, value in self._db.items(from_key=prefix):
            if not isinstance(key, str) or not key.startswith(prefix):
                break
            entries.append((key, str(value)))
        return entries

    async def list_for_tenant(
        self, tenant_id: str, status: JobStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        return await index.page_from_index(
            self._index_entries(tenant_id),
            self.get,
            tenant_id=tenant_id,
            status=status,
            limit=limit,
            cursor=cursor,
        )

    async def count_active(self, tenant_id: str) -> int:
        count = 0
        for job_id in index.active_candidates(self._index_entries(tenant_id)):
            record = self._read(job_id)
            if record is not None and record.tenant_id == tenant_id and not record.status.terminal:
                count += 1
        return count

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()
