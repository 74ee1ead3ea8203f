"""Large scans split into page ranges that the pool's workers parse at once.

A worker that takes a job whose upload is a long PDF needing OCR (page count and the first
pages' text layers, `parse.parsing.probe_scan`) plans page ranges, records the plan in the
job record and publishes one sub-job per range on the job's own subject (message id: job id
and range, so a re-published plan is de-duplicated), then acks the job's message.

Each sub-job parses its range (sandboxed) into a part under `<tenant>/<job>/parts/` and adds
the range to the record's finished parts with compare-and-set. The worker whose range makes
the set complete merges the parts in page order and renders the artifacts exactly as one
parse of the whole document would; the job then gets its one final status and webhook
(`pipeline.finish_job`), and the parts are deleted. A redelivered range that is already
recorded changes nothing; a range that fails fails the job (the runner's usual paths), and
ranges still running when it does find the job finished and drop what they wrote.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from percolate_reading.contract.jobs import JobMessage, JobPart, JobRecord, JobStatus, part_name
from percolate_reading.contract.keys import PARTS_DIR, object_key, part_key
from percolate_reading.errors import InvalidTransitionError, PercolateError
from percolate_reading.parse.parsing import RenderRequest, ScanProbe, merge_and_render, parse_part, probe_scan
from percolate_reading.parse.parts import plan_ranges
from percolate_reading.parse.sandbox import SandboxLimits
from percolate_reading.worker.pipeline import (
    Buckets,
    Services,
    _finished_elsewhere,
    _input_file,
    download,
    finish_job,
    job_request,
    parse_in_slot,
    parse_options,
    run_blocking,
    with_staged_password,
)

log = logging.getLogger(__name__)


# --- the plan ------------------------------------------------------------------------------------


def split_ranges(
    probe: ScanProbe, page_range: tuple[int, int | None] | None, per_part: int, min_pages: int
) -> list[tuple[int, int]] | None:
    """The page ranges to parse apart, or None to parse the document whole: too few pages,
    or most of the first pages have a text layer (no OCR to share out)."""
    first, last = page_range or (1, None)
    last = min(last or probe.page_count, probe.page_count)
    if last - first + 1 < min_pages or probe.scanned * 2 <= probe.checked:
        return None
    ranges = plan_ranges(first, last, per_part)
    return ranges if len(ranges) > 1 else None


async def plan(svc: Services, msg: JobMessage, path: Path) -> list[tuple[int, int]] | None:
    """Page ranges for a job worth splitting (its message carries the job's password, if
    any), else None."""
    settings = svc.settings
    if svc.publish_job is None or settings.split_part_pages <= 0 or msg.file_type != "pdf":
        return None
    if os.stat(path).st_size < settings.split_min_bytes:
        return None
    options = parse_options(settings, msg.options)
    if not options.ocr_enabled or options.include_images:
        # Without OCR there is little to share out; extracted pictures are numbered
        # across the whole document, which one range alone cannot do.
        return None
    try:
        probe = await run_blocking(
            probe_scan, path, options, SandboxLimits.from_settings(settings), msg.file_name
        )
    except PercolateError as exc:
        # A PDF that cannot even be opened: the whole parse reports why.
        log.info("job %s not split: %s", msg.job_id, exc)
        return None
    return split_ranges(probe, options.page_range, settings.split_part_pages, settings.split_min_pages)


def recorded_ranges(record: JobRecord) -> list[tuple[int, int]]:
    """The plan an earlier delivery recorded."""
    out: list[tuple[int, int]] = []
    for name in record.parts:
        first, _, last = name.partition("-")
        out.append((int(first), int(last)))
    return out


async def publish_parts(svc: Services, msg: JobMessage, subject: str, ranges: list[tuple[int, int]]) -> str:
    """Record the plan (a plan already recorded wins), then publish one sub-job per range."""
    assert svc.publish_job is not None
    names = [part_name(first, last) for first, last in ranges]
    record = await svc.jobs.get(msg.job_id)
    if record is not None and record.parts:
        ranges, names = recorded_ranges(record), list(record.parts)
    else:
        await svc.jobs.update(msg.job_id, parts=names)
    for index, (first, last) in enumerate(ranges):
        part = JobPart(index=index, count=len(ranges), first_page=first, last_page=last)
        await svc.publish_job(msg.model_copy(update={"part": part}), subject)
    log.info("job %s split into %d page ranges: %s", msg.job_id, len(names), ", ".join(names))
    return "split"


# --- one range -----------------------------------------------------------------------------------


def _parse_part(path: Path, msg: JobMessage, part: JobPart, settings: Any) -> bytes:
    options = dataclasses.replace(
        parse_options(settings, msg.options), page_range=(part.first_page, part.last_page)
    )
    return parse_part(path, options, SandboxLimits.from_settings(settings), msg.file_name)


def _merge(
    path: Path, msg: JobMessage, parts: list[bytes], settings: Any
) -> tuple[dict[str, bytes], dict[str, Any]]:
    request = job_request(msg.options)
    render = RenderRequest(request.chunk_options(settings), request.outputs, msg.job_id)
    return merge_and_render(
        path,
        parse_options(settings, msg.options),
        SandboxLimits.from_settings(settings),
        parts,
        render,
        msg.file_name,
    )


async def process_part(
    svc: Services, msg: JobMessage, buckets: Buckets, source: tuple[str, str], record: JobRecord
) -> str:
    """One delivery of a sub-job: parse and store its range, record it, merge if it was the
    last one. Returns "part", "succeeded" (merged), "duplicate" or "cancelled"."""
    part = msg.part
    assert part is not None
    if part.name not in record.parts:
        return "duplicate"  # not of the recorded plan (a stray copy): nothing to do
    if part.name in record.parts_done and set(record.parts_done) != set(record.parts):
        return "part"  # a redelivered range, already stored; the last range merges
    if record.status is not JobStatus.RUNNING:
        try:  # back from a range's transient failure (queued): running again
            await svc.jobs.transition(msg.job_id, JobStatus.RUNNING, error=None)
        except InvalidTransitionError:
            return await _finished_elsewhere(svc, msg)
    src_bucket, src_key = source
    parse_msg = await with_staged_password(svc, msg, src_bucket)
    timings: dict[str, float] = {}
    with _input_file(msg.file_name) as path:
        await download(svc, src_bucket, src_key, path, timings)
        if part.name not in record.parts_done:
            key = part_key(msg.tenant_id, msg.job_id, part.name)
            data = await parse_in_slot(svc, msg, timings, _parse_part, path, parse_msg, part, svc.settings)
            await svc.store.put_bytes(buckets.artifacts, key, data, "application/json")
            record = await svc.jobs.complete_part(msg.job_id, part.name)
            if record.status.terminal:
                # The job failed (another range) or was cancelled meanwhile: drop this range.
                await _drop(svc, buckets.artifacts, [key], msg.job_id)
                return await _finished_elsewhere(svc, msg)
        if set(record.parts_done) != set(record.parts):
            return "part"
        # Every range is stored: merge (also when a merge before this one died half-way).
        keys = [part_key(msg.tenant_id, msg.job_id, name) for name in record.parts]
        parts = await asyncio.gather(*(svc.store.get_bytes(buckets.artifacts, k) for k in keys))
        merge_timings: dict[str, float] = {"download_s": timings["download_s"]}
        artifacts, metadata = await parse_in_slot(
            svc, msg, merge_timings, _merge, path, parse_msg, list(parts), svc.settings
        )
    merge_timings["merge_s"] = merge_timings.pop("parse_s")
    merge_timings["parts"] = float(len(keys))
    outcome = await finish_job(svc, msg, buckets, src_bucket, artifacts, metadata, merge_timings)
    await _drop(svc, buckets.artifacts, keys, msg.job_id)
    return outcome


async def _drop(svc: Services, bucket: str, keys: list[str], job_id: str) -> None:
    """Delete stored ranges (best effort: a failed job's clean-up removes its whole prefix)."""
    try:
        await asyncio.gather(*(svc.store.delete(bucket, k) for k in keys))
    except Exception as exc:
        log.warning("page ranges of job %s not deleted: %s", job_id, exc)


async def drop_parts(svc: Services, msg: JobMessage, bucket: str) -> None:
    """Delete whatever stored ranges a finished job still has (best effort)."""
    try:
        await svc.store.delete_prefix(bucket, object_key(msg.tenant_id, msg.job_id, PARTS_DIR))
    except Exception as exc:
        log.warning("page ranges of job %s not deleted: %s", msg.job_id, exc)
