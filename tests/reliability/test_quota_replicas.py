"""The active-job quota holds across gateway replicas (real nats-server, SeaweedFS, three
gateways on uvicorn, the real worker): one shared ledger in JetStream KV, written with
compare-and-set, released by the worker that ends a job, and robust to lost releases."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from percolate_reading.contract.jobs import JobErrorInfo, JobRecord, JobStatus
from percolate_reading.contract.topology import TopologyLimits
from percolate_reading.infra.jobs.kv_store import KvJobStore
from percolate_reading.infra.jobs.quota_ledger import QuotaLedger
from percolate_reading.infra.queue.jetstream import close_quietly, connect
from percolate_reading.worker.main import start_worker
from tests.harness.documents import make_pdf
from tests.servers import NatsServer, SeaweedS3
from tests.service.gateway.conftest import make_settings
from tests.service.gateway.harness import LiveGateway

pytestmark = pytest.mark.integration

LIMIT = 5
KEY = "quota-key-0123456789"


def _tenants_file(tmp_path: Path, tenant: str) -> Path:
    path = tmp_path / "tenants.json"
    path.write_text(
        json.dumps([{"tenant_id": tenant, "api_keys": [KEY], "quotas": {"max_active_jobs": LIMIT}}])
    )
    return path


async def _upload(c: httpx.AsyncClient, n: int) -> httpx.Response:
    return await c.post("/v1/parse", files={"file": (f"doc-{n}.pdf", make_pdf(f"document {n}"))})


async def _until_ended(c: httpx.AsyncClient, job_id: str) -> None:
    while (await c.get(f"/v1/jobs/{job_id}")).json()["status"] not in ("succeeded", "failed"):  # noqa: ASYNC110
        await asyncio.sleep(0.1)


async def test_three_gateways_accept_exactly_the_limit(
    tmp_path: Path, fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3
) -> None:
    tenant = "quota-" + uuid.uuid4().hex[:8]
    tenants_file = _tenants_file(tmp_path, tenant)
    settings = [
        make_settings(tmp_path / f"gw{i}", fresh_nats_server, seaweed_s3, tenants_file, nats_ack_wait=5.0)
        for i in range(3)
    ]
    with ExitStack() as stack:
        gateways = [stack.enter_context(LiveGateway.running(s)) for s in settings]
        clients = [
            httpx.AsyncClient(base_url=g.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
            for g in gateways
        ]
        try:
            # Fifteen uploads at once, five through each replica.
            answers = await asyncio.gather(*(_upload(clients[n % 3], n) for n in range(15)))
            codes = sorted(r.status_code for r in answers)
            assert codes == [202] * LIMIT + [429] * (15 - LIMIT), codes
            for r in answers:
                if r.status_code == 429:
                    assert r.json()["error"]["code"] == "too_many_jobs"
                    assert int(r.headers["Retry-After"]) > 0
            accepted = [r.json()["job_id"] for r in answers if r.status_code == 202]
            # Every replica refuses a sixth while the five wait.
            for c in clients:
                assert (await _upload(c, 99)).status_code == 429

            # A worker ends the five and frees their slots: each replica accepts again.
            worker = await start_worker(
                settings[0].model_copy(update={"worker_mode": True, "worker_concurrency": LIMIT})
            )
            try:
                async with asyncio.timeout(90):
                    for job_id in accepted:
                        await _until_ended(clients[0], job_id)
            finally:
                await worker.drain(timeout_s=5)
            again = await asyncio.gather(*(_upload(clients[n % 3], 100 + n) for n in range(7)))
            assert sorted(r.status_code for r in again) == [202] * LIMIT + [429] * 2
        finally:
            for c in clients:
                await c.aclose()


async def test_leases_of_ended_or_abandoned_jobs_are_reconciled(
    tmp_path: Path, fresh_nats_server: NatsServer
) -> None:
    """A worker that died between the final status and the release, and a gateway that died
    mid-upload, leave leases behind; a tenant at its limit gets those slots back."""
    from tests.harness.settings import settings_for

    settings = settings_for(fresh_nats_server, tmp_path)
    nc = await connect(settings)
    try:
        js = nc.jetstream()
        limits = TopologyLimits.from_settings(settings)
        jobs = await KvJobStore.open(js, settings)
        ledger = await QuotaLedger.open(js, limits)
        short = QuotaLedger(ledger.kv, reserve_ttl_s=0.5, active_ttl_s=limits.max_age_s)
        tenant = "lease-" + uuid.uuid4().hex[:8]
        ended = "job-ended"
        await jobs.create(JobRecord(job_id=ended, tenant_id=tenant, file_name="a.pdf", file_type="pdf"))
        assert await ledger.reserve(tenant, ended, 2) is None
        await ledger.accepted(tenant, ended)
        info = JobErrorInfo(code="corrupt", message="broken", permanent=True)
        await jobs.transition(ended, JobStatus.FAILED, error=info)
        # A reservation by a gateway that then died: no record, a short deadline.
        assert await short.reserve(tenant, "job-abandoned", 2) is None
        assert await ledger.count(tenant) == 2
        assert await ledger.reserve(tenant, "job-new", 2) == 2  # no records consulted: full
        time.sleep(0.6)  # the abandoned reservation's deadline passes
        # At the limit, the record of the ended job is checked and its lease dropped.
        assert await ledger.reserve(tenant, "job-new", 2, jobs.get) is None
        assert await ledger.count(tenant) == 2  # job-new and the reservation's slot
        assert await ledger.reserve(tenant, "job-next", 2, jobs.get) is None  # abandoned expired
        assert await ledger.reserve(tenant, "job-last", 2, jobs.get) == 2
        await jobs.close()
    finally:
        await close_quietly(nc)
