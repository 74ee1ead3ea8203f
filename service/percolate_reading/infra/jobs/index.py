"""Pure pieces shared by the job stores: key layout, transitions, paging over the tenant index.

Layout (both stores):
    job.<job_id>                                -> JobRecord JSON (the truth)
    tenant.<tenant>.<reverse_ms>.<job_id>       -> status hint (index for listing)

`reverse_ms` is a fixed-width countdown from the creation time, so keys sort newest first and
a cursor is simply the last index key a page returned. The index is written after the record;
a terminal hint is always true (terminal states never change), a non-terminal hint may be
stale after a crash between the two writes, so readers confirm those against the record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from percolate_reading.contract.jobs import JobRecord, JobStatus, can_transition, utcnow
from percolate_reading.contract.keys import check_job_id
from percolate_reading.contract.subjects import validate_tenant_id
from percolate_reading.errors import InvalidTransitionError

_REVERSE_BASE = 10**13 - 1
_IMMUTABLE_FIELDS = frozenset({"job_id", "tenant_id", "status", "created_at"})


def record_key(job_id: str) -> str:
    return f"job.{check_job_id(job_id)}"


def tenant_prefix(tenant_id: str) -> str:
    return f"tenant.{validate_tenant_id(tenant_id)}."


def index_key(record: JobRecord) -> str:
    created = record.created_at if record.created_at.tzinfo else record.created_at.replace(tzinfo=UTC)
    millis = int(created.timestamp() * 1000)
    reverse = max(0, _REVERSE_BASE - millis)
    return f"{tenant_prefix(record.tenant_id)}{reverse:013d}.{check_job_id(record.job_id)}"


def job_id_of_index_key(key: str) -> str:
    return key.rsplit(".", 1)[1]


def apply_transition(record: JobRecord, status: JobStatus, fields: dict[str, Any]) -> JobRecord:
    """The record after moving to `status`; raises InvalidTransitionError for a backward move.

    Entering RUNNING counts an attempt and stamps started_at; a terminal state stamps
    finished_at; every change stamps updated_at. Explicit `fields` win over these defaults."""
    if not can_transition(record.status, status):
        raise InvalidTransitionError(
            f"job {record.job_id}: cannot go from {record.status.value} to {status.value}"
        )
    _check_fields(fields)
    now = utcnow()
    data = record.model_dump()
    data.update(status=status, updated_at=now)
    if status is JobStatus.RUNNING:
        data["attempts"] = record.attempts + 1
        if record.started_at is None:
            data["started_at"] = now
    if status.terminal:
        data["finished_at"] = now
    data.update(fields)
    return JobRecord.model_validate(data)


def apply_update(record: JobRecord, fields: dict[str, Any]) -> JobRecord:
    _check_fields(fields)
    data = record.model_dump()
    data.update(fields)
    data["updated_at"] = utcnow()
    return JobRecord.model_validate(data)


def apply_part_done(record: JobRecord, part: str) -> JobRecord:
    """The record with `part` among the split job's finished parts (kept in plan order); a
    finished job or a part already there is left as it is."""
    if record.status.terminal or part in record.parts_done:
        return record
    order = {name: i for i, name in enumerate(record.parts)}
    done = sorted([*record.parts_done, part], key=lambda p: (order.get(p, len(order)), p))
    return record.model_copy(update={"parts_done": done, "updated_at": utcnow()})


def _check_fields(fields: dict[str, Any]) -> None:
    bad = _IMMUTABLE_FIELDS.intersection(fields)
    if bad:
        raise ValueError(f"fields {sorted(bad)} cannot be set here")


def encode(record: JobRecord) -> bytes:
    return record.model_dump_json().encode()


def decode(data: bytes) -> JobRecord:
    return JobRecord.model_validate_json(data)


Fetch = Callable[[str], Awaitable[JobRecord | None]]


async def page_from_index(
    entries: Sequence[tuple[str, str]],
    fetch: Fetch,
    *,
    tenant_id: str,
    status: JobStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[JobRecord], str | None]:
    """One page of a tenant's jobs, newest first.

    `entries` are (index_key, status_hint) pairs of that tenant in any order. A record whose
    tenant differs from the index (never expected) is dropped, so a page can only hold the
    tenant's own jobs."""
    limit = max(1, min(limit, 1000))
    prefix = tenant_prefix(tenant_id)
    if cursor is not None and not cursor.startswith(prefix):
        raise ValueError("invalid cursor")
    ordered = sorted(k_h for k_h in entries if cursor is None or k_h[0] > cursor)
    page: list[JobRecord] = []
    last_key: str | None = None
    for i, (key, hint) in enumerate(ordered):
        if status is not None and _hint_excludes(hint, status):
            continue
        record = await fetch(job_id_of_index_key(key))
        if record is None or record.tenant_id != tenant_id:
            continue
        if status is not None and record.status is not status:
            continue
        page.append(record)
        last_key = key
        if len(page) == limit:
            more = i + 1 < len(ordered)
            return page, (last_key if more else None)
    return page, None


def _hint_excludes(hint: str, wanted: JobStatus) -> bool:
    try:
        hinted = JobStatus(hint)
    except ValueError:
        return False
    # Terminal hints are final, so they decide; non-terminal ones must be confirmed.
    return hinted.terminal and hinted is not wanted


def active_candidates(entries: Sequence[tuple[str, str]]) -> list[str]:
    """Job ids whose hint says queued/running (or is unreadable): to be confirmed."""
    out: list[str] = []
    for key, hint in entries:
        try:
            terminal = JobStatus(hint).terminal
        except ValueError:
            terminal = False
        if not terminal:
            out.append(job_id_of_index_key(key))
    return out


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)
