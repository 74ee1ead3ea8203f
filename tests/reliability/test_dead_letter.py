"""The last allowed delivery of a job never loses it: the failure is recorded, the copy in
JOBS_DLQ is retried until it is stored, and only then is the message terminated. A poison
document ends there too, without blocking the queue."""

from __future__ import annotations

import asyncio
import ctypes
from pathlib import Path
from typing import Any

import pytest

from percolate_reading.contract.jobs import JobMessage, JobStatus
from percolate_reading.contract.subjects import DLQ_STREAM_NAME, STREAM_NAME
from percolate_reading.contract.topology import TopologyLimits
from percolate_reading.infra.queue.jetstream import (
    DLQ_CODE_HEADER,
    DLQ_DELIVERIES_HEADER,
    DLQ_REASON_HEADER,
)
from percolate_reading.infra.queue.topology import ensure_topology
from percolate_reading.parse.sandbox import SandboxLimits, run_in_sandbox
from percolate_reading.worker import pipeline
from percolate_reading.worker.main import start_worker
from tests.harness.documents import make_pdf
from tests.service.worker.test_worker import Env, broken_s3_store, consumer_idle

pytestmark = pytest.mark.integration


async def stream_messages(env: Env, stream: str) -> int:
    return int((await env.js.stream_info(stream)).state.messages)


async def until_messages(env: Env, stream: str, count: int, wait_s: float = 60.0) -> None:
    async with asyncio.timeout(wait_s):
        while True:
            if await stream_messages(env, stream) == count:
                return
            await asyncio.sleep(0.1)


async def test_final_delivery_waits_for_the_dead_letter_copy(env: Env) -> None:
    # No outage hold: the store never comes back, the dead-letter path is under test.
    settings = await env.configure(nats_max_deliver=2, nats_ack_wait=1.5, dependency_outage_budget_s=0.0)
    bad_store = await broken_s3_store(env)  # every delivery fails transiently
    worker = await start_worker(settings, nc=env.nc, store=bad_store, jobs=env.jobs)
    try:
        # The dead-letter stream is gone: the copy on the last delivery cannot be stored.
        await env.js.delete_stream(DLQ_STREAM_NAME)
        job_id = await env.submit(make_pdf(["never parsed"]))
        record = await env.wait_status(job_id, JobStatus.FAILED, JobStatus.SUCCEEDED)
        assert record.status is JobStatus.FAILED  # recorded first, whatever the DLQ does
        assert record.error is not None
        assert "gave up after 2 deliveries" in record.error.message
        # Well past ack_wait the job is still in the queue, held by the worker (a nak here
        # would have stranded it: JetStream does not deliver it again after max_deliver).
        await asyncio.sleep(settings.nats_ack_wait * 3)
        assert await stream_messages(env, STREAM_NAME) == 1
        # The dead-letter stream comes back: the retried copy lands and the job leaves JOBS.
        await ensure_topology(env.js, TopologyLimits.from_settings(settings), update=False)
        await until_messages(env, DLQ_STREAM_NAME, 1)
        await consumer_idle(env, settings.nats_queue_group)
        await until_messages(env, STREAM_NAME, 0)
        dlq = await env.js.stream_info(DLQ_STREAM_NAME)
        assert dlq.state.messages == 1
        copy = await env.js.get_msg(DLQ_STREAM_NAME, dlq.state.last_seq)
        assert copy.headers is not None
        assert copy.headers[DLQ_CODE_HEADER] == "storage_unavailable"
        assert copy.headers[DLQ_DELIVERIES_HEADER] == "2"
        assert "gave up after 2 deliveries" in copy.headers[DLQ_REASON_HEADER]
        assert JobMessage.model_validate_json(copy.data).job_id == job_id
        assert b'nats_messages_processed_total{outcome="dead_lettered"} 1.0' in worker.metrics.render()
    finally:
        await worker.drain()
        await bad_store.close()


# --- poison document ------------------------------------------------------------------------


def _segfault() -> None:
    ctypes.string_at(0)


_real_parse_and_render = pipeline._parse_and_render


def _parse_with_poison(path: Path, msg: JobMessage, settings: Any) -> Any:
    """Test-only provider: a file named poison* crashes its (real, sandboxed) parser child
    with SIGSEGV every time; anything else parses normally."""
    if msg.file_name.startswith("poison"):
        run_in_sandbox(_segfault, limits=SandboxLimits.from_settings(settings))
    return _real_parse_and_render(path, msg, settings)


async def test_poison_document_is_dead_lettered_and_does_not_block(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "_parse_and_render", _parse_with_poison)
    settings = await env.configure(nats_max_deliver=3, worker_concurrency=1)
    worker = await start_worker(settings, nc=env.nc, store=env.store, jobs=env.jobs)
    try:
        poison = await env.submit(make_pdf(["crashes its parser"]), "poison.pdf")
        good = await env.submit(make_pdf(["The good job behind the poison one."]), "good.pdf")
        done = await env.wait_status(good, JobStatus.SUCCEEDED, JobStatus.FAILED)
        assert done.status is JobStatus.SUCCEEDED
        failed = await env.wait_status(poison, JobStatus.FAILED, JobStatus.SUCCEEDED)
        assert failed.status is JobStatus.FAILED
        assert failed.attempts == 3
        assert failed.error is not None
        assert failed.error.code == "crashed"
        assert "gave up after 3 deliveries" in failed.error.message
        assert "SIGSEGV" in failed.error.message
        await consumer_idle(env, settings.nats_queue_group)
        dlq = await env.js.stream_info(DLQ_STREAM_NAME)
        assert dlq.state.messages == 1
        copy = await env.js.get_msg(DLQ_STREAM_NAME, dlq.state.last_seq)
        assert copy.headers is not None
        assert copy.headers[DLQ_CODE_HEADER] == "crashed"
        assert "SIGSEGV" in copy.headers[DLQ_REASON_HEADER]
        assert JobMessage.model_validate_json(copy.data).job_id == poison
        assert await stream_messages(env, STREAM_NAME) == 0
        assert worker.ready() == (True, "ready")
    finally:
        await worker.drain()
