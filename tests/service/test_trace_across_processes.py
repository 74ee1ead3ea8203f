"""One job, one trace: the gateway and the worker as separate processes (`percolate-reading
run`), exporting over OTLP/HTTP to a receiver in this test, on real NATS and S3 servers."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.harness.documents import make_pdf
from tests.harness.otlp import OtlpReceiver, ReceivedSpan
from tests.harness.webhooks import WebhookReceiver
from tests.harness.worker_process import spawn_worker, worker_env
from tests.servers import NatsServer, SeaweedS3, free_port

pytestmark = pytest.mark.integration

API_KEY = "pr_trace-test-key-0123456789abcdef0123"
GATEWAY_SPANS = {"upload", "s3.put", "publish"}
WORKER_SPANS = {"job", "s3.download", "parse", "detect", "provider"}
WORKER_SPANS |= {"artifacts.write", "context.update", "webhook"}
SPAN_KIND_CLIENT = 3


@pytest.fixture
async def otlp() -> AsyncIterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def wait_healthy(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        async with asyncio.timeout(120):
            while True:
                assert proc.returncode is None, tail(log)
                try:
                    if (await client.get("/ready")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)


async def stop(proc: asyncio.subprocess.Process, log: Path) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):
        code = await proc.wait()
    assert code == 0, tail(log)


def tree_problems(spans: list[ReceivedSpan]) -> list[str]:
    """What keeps `spans` from being one connected tree with a single root."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_id]
    problems = [f"{len(roots)} roots: {[r.name for r in roots]}"] if len(roots) != 1 else []
    problems += [
        f"{s.name} has a parent outside the trace" for s in spans if s.parent_id and s.parent_id not in ids
    ]
    return problems


async def test_one_job_is_one_connected_trace(
    fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    hook = WebhookReceiver()
    await hook.start()
    port = free_port()
    common = {"dev_api_key": API_KEY, "webhook_allow_hosts": "127.0.0.1", "log_format": "json"}
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    gateway_env = worker_env(
        fresh_nats_server,
        seaweed_s3,
        tmp_path / "gateway",
        worker_mode="false",
        gateway_mode="true",
        host="127.0.0.1",
        port=str(port),
        **common,
    )
    worker_env_ = worker_env(fresh_nats_server, seaweed_s3, tmp_path / "worker", **common)
    logs = {"gateway": tmp_path / "gateway.log", "worker": tmp_path / "worker.log"}
    with logs["gateway"].open("wb") as gw_log, logs["worker"].open("wb") as wk_log:
        gateway = await spawn_worker(gateway_env | otel, gw_log)
        worker = await spawn_worker(worker_env_ | otel, wk_log)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, gateway, logs["gateway"])
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
        ) as client:
            pdf = make_pdf("Traced end to end")
            r = await client.post(
                "/v1/parse", files={"file": ("t.pdf", pdf)}, data={"callback_url": hook.url}
            )
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            async with asyncio.timeout(120):
                while True:
                    status = (await client.get(f"/v1/jobs/{job_id}")).json()["status"]
                    if status in ("succeeded", "failed"):
                        break
                    await asyncio.sleep(0.1)
            assert status == "succeeded", tail(logs["worker"])
        await hook.wait_for(1)
        spans = await otlp.wait_for(GATEWAY_SPANS | WORKER_SPANS, wait_s=60)
    finally:
        await stop(worker, logs["worker"])
        await stop(gateway, logs["gateway"])
        await hook.stop()

    upload = next(s for s in spans if s.name == "upload" and s.attributes.get("percolate.job_id") == job_id)
    trace = [s for s in spans if s.trace_id == upload.trace_id]
    by_name: dict[str, list[ReceivedSpan]] = {}
    for s in trace:
        by_name.setdefault(s.name, []).append(s)
    # Every stage of both processes is in this one trace, each process under its own name.
    assert set(by_name) >= GATEWAY_SPANS | WORKER_SPANS, sorted(by_name)
    assert {s.service for s in trace} == {"percolate-gateway", "percolate-worker"}
    assert all(s.service == "percolate-gateway" for n in GATEWAY_SPANS for s in by_name[n])
    assert all(s.service == "percolate-worker" for n in WORKER_SPANS for s in by_name[n])
    # Connected: one root (the FastAPI server span of the upload), every parent in the trace.
    assert tree_problems(trace) == []
    (root,) = [s for s in trace if not s.parent_id]
    assert root.service == "percolate-gateway"
    assert root.name.startswith("POST /v1/parse")
    # The worker's job span continues the gateway's publish span (traceparent in the headers).
    (publish,) = by_name["publish"]
    (job,) = by_name["job"]
    assert job.parent_id == publish.span_id
    # Parse stages ran in the parse thread and still hang under the parse span (hashing and
    # rendering run inside the sandboxed child, within "provider").
    (parse,) = by_name["parse"]
    for stage in ("detect", "provider"):
        assert [s.parent_id for s in by_name[stage]] == [parse.span_id], stage
    # The webhook's HTTP request is the aiohttp instrumentation's client span under it.
    (webhook,) = by_name["webhook"]
    assert any(s.parent_id == webhook.span_id and s.kind == SPAN_KIND_CLIENT for s in trace)
    # No other trace holds spans of this job.
    assert not [s for s in spans if s.trace_id != upload.trace_id and s.name in WORKER_SPANS]

    # The worker's JSON log lines about the job carry the same trace id and the job's fields.
    entries = [json.loads(line) for line in logs["worker"].read_text().splitlines() if line.startswith("{")]
    about_job = [e for e in entries if e["job_id"] == job_id]
    assert about_job, tail(logs["worker"])
    assert {e["trace_id"] for e in about_job} == {upload.trace_id}
    assert {e["tenant_id"] for e in about_job} == {"dev"}
