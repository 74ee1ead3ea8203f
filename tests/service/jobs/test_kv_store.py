"""KvJobStore on a real JetStream KV bucket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from percolate_reading.config import load_settings
from percolate_reading.contract.jobs import JobStatus
from percolate_reading.contract.topology import JOBS_STATUS_BUCKET
from percolate_reading.errors import InvalidTransitionError
from percolate_reading.infra.jobs import index, open_job_store
from percolate_reading.infra.jobs.kv_store import KvJobStore
from percolate_reading.infra.jobs.store import JobStore
from percolate_reading.infra.queue.jetstream import connect
from tests.servers import NatsServer
from tests.service.jobs.contract import JobStoreContract, rec

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(fresh_nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[JobStore]:
    settings = load_settings(nats_url=fresh_nats_server.url, data_dir=tmp_path)
    nc = await connect(settings)
    s = await open_job_store(settings, nc.jetstream())
    assert isinstance(s, KvJobStore)
    yield s
    await s.close()
    await nc.close()


class TestKvJobStore(JobStoreContract):
    pass


async def test_bucket_config_and_stale_hint_repair(fresh_nats_server: NatsServer, tmp_path: Path) -> None:
    settings = load_settings(nats_url=fresh_nats_server.url, data_dir=tmp_path, nats_kv_history=2)
    nc = await connect(settings)
    try:
        js = nc.jetstream()
        store = await KvJobStore.open(js, settings)
        kv = await js.key_value(JOBS_STATUS_BUCKET)
        status = await kv.status()
        assert status.history == 2
        r = rec("s1")
        await store.create(r)
        await store.transition("s1", JobStatus.RUNNING)
        await store.transition("s1", JobStatus.SUCCEEDED)
        # Simulate a crash between the record write and the index write.
        await kv.put(index.index_key(r), b"running")
        assert await store.count_active("acme") == 0
        assert (await kv.get(index.index_key(r))).value == b"succeeded"
        page, _ = await store.list_for_tenant("acme", status=JobStatus.SUCCEEDED)
        assert [x.job_id for x in page] == ["s1"]
        # A second store on the same bucket sees the same state (another gateway replica).
        other = await KvJobStore.open(js, settings)
        got = await other.get("s1")
        assert got is not None
        assert got.status is JobStatus.SUCCEEDED
    finally:
        await nc.close()


async def test_remembered_revision_never_wins_over_another_writer(
    fresh_nats_server: NatsServer, tmp_path: Path
) -> None:
    """Two stores (two worker pods) on one bucket: a store that remembers an old revision of a
    job re-reads it when another store changed it meanwhile, so attempts are counted and a
    job cancelled elsewhere stays cancelled."""
    settings = load_settings(nats_url=fresh_nats_server.url, data_dir=tmp_path)
    nc = await connect(settings)
    try:
        js = nc.jetstream()
        a = await KvJobStore.open(js, settings)
        b = await KvJobStore.open(js, settings)
        await a.create(rec("r1"))
        await a.create(rec("r2"))
        await b.transition("r1", JobStatus.RUNNING)
        again = await a.transition("r1", JobStatus.RUNNING)  # a remembers the queued revision
        assert again.attempts == 2
        await b.transition("r2", JobStatus.CANCELLED)
        with pytest.raises(InvalidTransitionError):
            await a.transition("r2", JobStatus.RUNNING)
        got = await b.get("r2")
        assert got is not None
        assert got.status is JobStatus.CANCELLED
        # The list index: a finished job's hint says so; a running one may still say queued.
        kv = await js.key_value(JOBS_STATUS_BUCKET)
        assert (await kv.get(index.index_key(rec("r2")))).value == b"cancelled"
        done = await a.transition("r1", JobStatus.SUCCEEDED)
        assert (await kv.get(index.index_key(done))).value == b"succeeded"
        assert await a.count_active("acme") == 0
    finally:
        await nc.close()
